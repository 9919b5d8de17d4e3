//! requirements.txt reader: options (`--index-url`) and pinned, hashed requirements with markers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lockship_python::lock::requirements_txt;
use lockship_python::target::{Libc, PythonTarget};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let target = PythonTarget {
        version: (3, 12, 7),
        interpreter: "/usr/local/bin/python3.12".into(),
        libc: Libc::Musl { major: 1, minor: 2 },
        architecture: "arm64".into(),
        venv: "/opt/venv".into(),
    };
    let _ = requirements_txt::options(text);
    let _ = requirements_txt::parse("requirements.txt".as_ref(), text, &target.marker_env());
});
