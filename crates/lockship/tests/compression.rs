//! `compression = "gzip" | "gzip-single" | "zstd"`: the same tar under each. gzip-single
//! layers are one member, so the readers that stop after the first member (Python's
//! `tarfile` in stream mode, `flate2::read::GzDecoder`) read them whole, where they cut the
//! default multi-member layers short; zstd layers carry their media type and a runtime that
//! reads zstd (Podman) unpacks them; an unknown value is a one-line error naming the field.

mod support;

use std::io::Read;
use std::path::Path;
use std::process::Command;

use support::*;

/// The fixture with `compression = VALUE` in its [tool.lockship] table.
fn with_compression(value: &str) -> Project {
    let project = fixture("hello-cli", true);
    let path = project.path("pyproject.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text.replacen(
        "[tool.lockship]\n",
        &format!("[tool.lockship]\ncompression = \"{value}\"\n"),
        1,
    );
    std::fs::write(&path, text).unwrap();
    project
}

/// (media type, blob path, diff id) of each layer lockship wrote (not the base's) in the OCI
/// layout at `dir`.
fn own_layers(dir: &Path) -> Vec<(String, std::path::PathBuf, String)> {
    let read = |digest: &str| {
        let hex = digest.strip_prefix("sha256:").unwrap();
        dir.join("blobs/sha256").join(hex)
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(read(index["manifests"][0]["digest"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    let config: serde_json::Value = serde_json::from_slice(
        &std::fs::read(read(manifest["config"]["digest"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .zip(diff_ids)
        .filter(|(l, _)| l["annotations"]["dev.lockship.layer.key"].is_string())
        .map(|(l, d)| {
            (
                l["mediaType"].as_str().unwrap().to_string(),
                read(l["digest"].as_str().unwrap()),
                d.as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// What a reader that stops after the first gzip member makes of `blob`: its sha256.
fn first_member_digest(blob: &Path) -> String {
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(blob).unwrap())
        .read_to_end(&mut tar)
        .unwrap();
    lockship_oci::digest::Digest::of_bytes(&tar).to_string()
}

fn build_layout(project: &Project) -> std::path::PathBuf {
    let dir = project.tmp.path().join("app.oci");
    run_ok(
        lockship(&shared_cache())
            .arg("build")
            .arg(&project.dir)
            .args(["--base", &env().base, "--output"])
            .arg(format!("oci:{}", dir.display())),
    );
    dir
}

#[test]
fn gzip_single_layers_are_read_whole_by_first_member_readers() {
    if services_missing() {
        return;
    }
    // The project owns the temporary directory the layout is in: kept to the end.
    let project = with_compression("gzip-single");
    let single = build_layout(&project);
    let layers = own_layers(&single);
    assert!(layers.len() >= 4);
    for (media_type, blob, diff_id) in &layers {
        assert_eq!(media_type, "application/vnd.oci.image.layer.v1.tar+gzip");
        assert_eq!(&first_member_digest(blob), diff_id, "{}", blob.display());
        // Python's tarfile in stream mode lists every entry the layer holds.
        let listed = run_ok(
            Command::new("python3")
                .arg("-c")
                .arg(
                    "import sys, tarfile\n\
             with tarfile.open(fileobj=open(sys.argv[1], 'rb'), mode='r|gz') as t:\n\
             \x20   print(sum(1 for _ in t))",
                )
                .arg(blob),
        );
        let expected = run_ok(Command::new("tar").arg("-tzf").arg(blob))
            .lines()
            .count();
        assert_eq!(listed.trim().parse::<usize>().unwrap(), expected);
    }

    // The default layers are several members: the same reader stops short on a wheel's layer,
    // which is what gzip-single is for.
    let plain = fixture("hello-cli", true);
    let default = build_layout(&plain);
    let cut_short = own_layers(&default)
        .iter()
        .filter(|(_, blob, diff_id)| &first_member_digest(blob) != diff_id)
        .count();
    assert!(cut_short > 0, "every default layer was one member");
}

#[test]
fn zstd_layers_carry_their_media_type_and_podman_unpacks_them() {
    if services_missing() {
        return;
    }
    let env = env();
    let project = with_compression("zstd");
    let reference = format!("{}/{}:1", env.registry, unique("zstd"));
    run_ok(
        lockship(&shared_cache())
            .arg("build")
            .arg(&project.dir)
            .args(["--base", &env.base, "--push", &reference]),
    );
    let report = json(&run_ok(
        lockship(&shared_cache()).args(["inspect", &reference, "--format", "json"]),
    ));
    let types: Vec<&str> = report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["media_type"].as_str().unwrap())
        .collect();
    // The base's layer stays as it was; every layer lockship wrote is zstd.
    assert_eq!(types[0], "application/vnd.oci.image.layer.v1.tar+gzip");
    assert!(
        types[1..]
            .iter()
            .all(|t| *t == "application/vnd.oci.image.layer.v1.tar+zstd"),
        "{types:?}"
    );
    // inspect read the packages out of the zstd layers.
    let names: Vec<&str> = report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| l["packages"].as_array().unwrap())
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"click") && names.contains(&"hello-cli"),
        "{names:?}"
    );

    // A runtime that reads zstd unpacks the image: Podman pulls it, and the files are there.
    let podman = |args: &[&str]| run_ok(Command::new("podman").args(args));
    podman(&["pull", "-q", "--tls-verify=false", &reference]);
    let container = podman(&["create", "--network", "none", &reference]);
    let container = container.trim();
    let export = Command::new("podman")
        .args(["export", container])
        .output()
        .unwrap();
    podman(&["rm", container]);
    podman(&["rmi", &reference]);
    assert!(export.status.success());
    let mut archive = tar::Archive::new(export.stdout.as_slice());
    let paths: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(paths
        .iter()
        .any(|p| p.ends_with("site-packages/click/__init__.py")));
    assert!(paths.iter().any(|p| p == "opt/venv/bin/hello"));
}

#[test]
fn an_unknown_compression_is_a_one_line_error() {
    if services_missing() {
        return;
    }
    let project = with_compression("lz4");
    let out = run_err(
        lockship(&shared_cache())
            .arg("build")
            .arg(&project.dir)
            .args(["--base", &env().base, "--dry-run"]),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    let first = err.lines().next().unwrap();
    assert!(first.starts_with("error: "), "{err}");
    assert!(first.contains("pyproject.toml"), "{first}");
    assert!(
        first.contains(r#"compression = "lz4": expected "gzip", "gzip-single" or "zstd""#),
        "{first}"
    );
}
