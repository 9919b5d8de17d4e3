//! The shared-library check: a wheel whose native code needs a library that the image does not
//! have fails the build, naming the package, the file and the library, and leaves no image
//! behind; the same wheel with the library bundled the way auditwheel does (`NAME.libs/`, found
//! through RPATH) builds, and the image's Python loads it. The ELF files are made by the real
//! gcc; the lock is a pylock.toml naming the wheel in the project.

mod support;

use std::path::Path;
use std::process::Command;

use support::wheels::{Item, WheelBuilder};
use support::*;

fn gcc(dir: &Path, args: &[&str]) {
    let out = Command::new("gcc")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "gcc {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const INIT: &str = "import ctypes, os\n_lib = ctypes.CDLL(os.path.join(os.path.dirname(__file__), '_ext.so'))\n\ndef answer():\n    return _lib.answer()\n";

#[test]
fn a_library_missing_from_the_image_fails_the_build() {
    if services_missing() {
        return;
    }
    let env = env();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("c");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("greet.c"), "int greet(void) { return 42; }\n").unwrap();
    std::fs::write(
        src.join("ext.c"),
        "int greet(void);\nint answer(void) { return greet(); }\n",
    )
    .unwrap();
    gcc(
        &src,
        &[
            "-shared",
            "-fPIC",
            "-Wl,-soname,libgreet.so.1",
            "-o",
            "libgreet.so.1",
            "greet.c",
        ],
    );
    gcc(
        &src,
        &[
            "-shared",
            "-fPIC",
            "-o",
            "_ext.so",
            "ext.c",
            "-L.",
            "-l:libgreet.so.1",
            "-Wl,-rpath,$ORIGIN/../native.libs",
        ],
    );
    let ext = std::fs::read(src.join("_ext.so")).unwrap();
    let greet = std::fs::read(src.join("libgreet.so.1")).unwrap();

    let project = tmp.path().join("native-app");
    std::fs::create_dir_all(project.join("wheels")).unwrap();
    std::fs::write(
        project.join("pyproject.toml"),
        "[project]\nname = \"native-app\"\nversion = \"0.1.0\"\nrequires-python = \">=3.11\"\ndependencies = [\"native==1.0\"]\n\n[tool.lockship]\napp = \"copy\"\ninclude = [\"main.py\"]\nentrypoint = [\"python\", \"main.py\"]\n",
    )
    .unwrap();
    std::fs::write(
        project.join("main.py"),
        "import native\nprint(native.answer())\n",
    )
    .unwrap();
    let cache = tmp.path().join("cache");
    let tar = tmp.path().join("image.tar");
    let build = |bundled: bool| {
        let mut items = vec![
            Item::File("native/__init__.py".into(), INIT.as_bytes().to_vec()),
            Item::File("native/_ext.so".into(), ext.clone()),
        ];
        if bundled {
            items.push(Item::File(
                "native.libs/libgreet.so.1".into(),
                greet.clone(),
            ));
        }
        let wheel = WheelBuilder {
            items,
            ..WheelBuilder::new("native", "1.0")
        };
        let bytes = wheel.build();
        std::fs::write(project.join("wheels").join(wheel.filename()), &bytes).unwrap();
        std::fs::write(
            project.join("pylock.toml"),
            format!(
                "lock-version = \"1.0\"\ncreated-by = \"hand\"\nrequires-python = \">=3.11\"\n\n[[packages]]\nname = \"native\"\nversion = \"1.0\"\nwheels = [{{ path = \"wheels/{}\", hashes = {{ sha256 = \"{}\" }} }}]\n",
                wheel.filename(),
                lockship_oci::digest::Digest::of_bytes(&bytes).hex()
            ),
        )
        .unwrap();
        let mut cmd = lockship(&cache);
        cmd.arg("build")
            .arg(&project)
            .args(["--base", &env.base, "--tag", "native-app:1", "--output"])
            .arg(format!("docker:{}", tar.display()));
        cmd
    };

    let out = run_err(&mut build(false));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("error: native 1.0: native/_ext.so needs libgreet.so.1, which is in no wheel of the image and not in the base's library directories\n")
            && stderr.contains("hint: add the package that provides it to the base"),
        "{stderr}"
    );
    assert!(!tar.exists(), "no image is written");

    run_ok(&mut build(true));
    docker_load(&tar);
    assert_eq!(docker_run("native-app:1", None, &[]).trim(), "42");
    docker(&["rmi", "native-app:1"]);
}
