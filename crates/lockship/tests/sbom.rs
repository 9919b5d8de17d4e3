//! `lockship sbom`: CycloneDX 1.6 and SPDX 2.3 documents made from an image alone, checked
//! against the standards' published JSON schemas (CycloneDX's own validator, and the SPDX
//! schema in tests/schemas), carrying the lock's hashes, the wheels' licenses and, on the
//! Debian-package base, the OS packages; the same image gives the same bytes; `--attach`
//! pushes the document as an OCI referrer of the image.

mod support;

use std::path::Path;
use std::process::Command;

use support::*;

/// Validates `file` with tests/schemas/validate.py (the schema tools installed by uv).
fn validate(file: &Path) {
    let script = repo_root().join("tests/schemas/validate.py");
    let out = Command::new("uv")
        .args([
            "run",
            "--quiet",
            "--no-project",
            "--with",
            "cyclonedx-python-lib[json-validation]==11.*",
            "--with",
            "jsonschema==4.*",
            "python",
        ])
        .arg(&script)
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} breaks its schema:\n{}{}",
        file.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn curl_json(url: &str, accept: &str) -> serde_json::Value {
    json(&run_ok(Command::new("curl").args([
        "-fsS",
        "-H",
        &format!("Accept: {accept}"),
        url,
    ])))
}

#[test]
fn sboms_validate_carry_the_lock_and_os_packages_and_attach_as_referrers() {
    if services_missing() {
        return;
    }
    let env = env();
    let project = fixture("hello-cli", true);
    let repo = unique("sbom");
    let reference = format!("{}/{repo}:1", env.registry);
    // The fixture's own Debian-package base: dpkg's records are lockship's status.d stanzas.
    run_ok(
        lockship(&shared_cache())
            .arg("build")
            .arg(&project.dir)
            .args(["--push", &reference]),
    );
    let out = project.tmp.path();
    let lock = std::fs::read_to_string(project.path("uv.lock")).unwrap();

    let cdx_file = out.join("bom.cdx.json");
    run_ok(
        lockship(&shared_cache())
            .args(["sbom", &reference, "--output"])
            .arg(&cdx_file),
    );
    validate(&cdx_file);
    let cdx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cdx_file).unwrap()).unwrap();
    let components = cdx["components"].as_array().unwrap();
    let by_purl = |prefix: &str| {
        components
            .iter()
            .find(|c| c["purl"].as_str().unwrap().starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in {components:?}"))
    };
    let click = by_purl("pkg:pypi/click@");
    let sha = click["hashes"][0]["content"].as_str().unwrap();
    assert_eq!(sha.len(), 64);
    assert!(lock.contains(sha), "click's hash {sha} is not the lock's");
    assert!(
        click["licenses"].as_array().is_some_and(|l| !l.is_empty()),
        "{click}"
    );
    // The app itself is listed, without a lock hash (it is built from source).
    assert!(by_purl("pkg:pypi/hello-cli@0.1.0").get("hashes").is_none());
    let python = by_purl("pkg:deb/debian/python3@");
    assert!(
        python["purl"].as_str().unwrap().contains("?arch=amd64"),
        "{python}"
    );
    assert!(cdx["metadata"]["component"]["version"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));

    // The same image, the same bytes (the id and time come from the image).
    let again = run_ok(lockship(&shared_cache()).args(["sbom", &reference]));
    assert_eq!(again.as_bytes(), std::fs::read(&cdx_file).unwrap());

    // SPDX, attached to the image as a referrer.
    let spdx_file = out.join("bom.spdx.json");
    let attached = lockship(&shared_cache())
        .args([
            "sbom", &reference, "--format", "spdx", "--attach", "--output",
        ])
        .arg(&spdx_file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&attached.stderr);
    assert!(attached.status.success(), "{stderr}");
    assert!(stderr.contains("attached the SBOM"), "{stderr}");
    validate(&spdx_file);
    let spdx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&spdx_file).unwrap()).unwrap();
    let names: Vec<&str> = spdx["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"rich") && names.contains(&"libc6"),
        "{names:?}"
    );

    // Distribution 2.x has no referrers API: the spec's fallback tag lists the referrer.
    let image_digest = cdx["metadata"]["component"]["version"].as_str().unwrap();
    let base = format!("http://{}/v2/{repo}", env.registry);
    let index = curl_json(
        &format!(
            "{base}/manifests/sha256-{}",
            &image_digest["sha256:".len()..]
        ),
        "application/vnd.oci.image.index.v1+json",
    );
    // The build's own wheels artifact may be listed too.
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["artifactType"] == "application/spdx+json")
        .unwrap_or_else(|| panic!("no SBOM among the referrers: {index}"));
    let referrer = curl_json(
        &format!("{base}/manifests/{}", entry["digest"].as_str().unwrap()),
        "application/vnd.oci.image.manifest.v1+json",
    );
    assert_eq!(referrer["subject"]["digest"], image_digest);
    let blob = run_ok(Command::new("curl").args([
        "-fsS",
        &format!(
            "{base}/blobs/{}",
            referrer["layers"][0]["digest"].as_str().unwrap()
        ),
    ]));
    assert_eq!(blob.as_bytes(), std::fs::read(&spdx_file).unwrap());
    // Attaching the same document again adds nothing.
    run_ok(lockship(&shared_cache()).args(["sbom", &reference, "--format", "spdx", "--attach"]));
    let index = curl_json(
        &format!(
            "{base}/manifests/sha256-{}",
            &image_digest["sha256:".len()..]
        ),
        "application/vnd.oci.image.index.v1+json",
    );
    let sboms = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["artifactType"] == "application/spdx+json")
        .count();
    assert_eq!(sboms, 1, "{index}");
}

#[test]
fn sbom_output_never_replaces_what_is_not_an_sbom() {
    let dir = tempfile::tempdir().unwrap();
    let notes = dir.path().join("notes.json");
    std::fs::write(&notes, r#"{"mine": true}"#).unwrap();
    let out = run_err(
        lockship(dir.path())
            .args(["sbom", "oci:/nonexistent", "--output"])
            .arg(&notes),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(&format!(
            "error: {} exists and is not an SBOM",
            notes.display()
        )),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&notes).unwrap(),
        r#"{"mine": true}"#
    );
    // --attach needs a registry.
    let out = run_err(lockship(dir.path()).args(["sbom", "oci:/nonexistent", "--attach"]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--attach pushes the SBOM beside the image in its registry"),
        "{err}"
    );
}
