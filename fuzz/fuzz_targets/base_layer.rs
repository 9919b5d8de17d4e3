//! The tar reader of base layers: a layer (plain, gzip or zstd, told by its first bytes)
//! scanned for Python, libc, passwd.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lockship_oci::layer_stream;
use lockship_python::probe::probe_readers;

fuzz_target!(|data: &[u8]| {
    let env = ["PYTHON_VERSION=3.12.7".to_string()];
    let tar = layer_stream::decode(std::io::Cursor::new(data.to_vec()));
    let _ = probe_readers("fuzz", [("layer".into(), tar)], &env);
});
