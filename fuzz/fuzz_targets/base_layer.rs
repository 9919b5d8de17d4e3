//! The tar reader of base layers: a layer (plain or gzip) scanned for Python, libc, passwd.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lockship_python::probe::probe_readers;

fuzz_target!(|data: &[u8]| {
    let gzip = data.starts_with(&[0x1f, 0x8b]);
    let env = ["PYTHON_VERSION=3.12.7".to_string()];
    let _ = probe_readers("fuzz", [("layer".into(), gzip, data)], &env);
});
