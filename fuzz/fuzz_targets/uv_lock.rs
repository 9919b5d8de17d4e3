//! uv.lock reader: parse, then walk the graph from a root for a target, with extras and groups.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lockship_oci::digest::Digest;
use lockship_python::lock::Selection;
use lockship_python::lock::{LockFile, LockKind};
use lockship_python::target::PythonTarget;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env = target().marker_env();
    let lock = LockFile {
        path: "uv.lock".into(),
        kind: LockKind::UvLock,
        text: text.to_string(),
        digest: Digest::of_bytes(data),
        made_from: None,
    };
    let _ = lock.packages(&env, Some("app"), &Selection::default(), &|_| None);
    let _ = lock.packages(
        &env,
        None,
        &Selection {
            extras: vec!["plot".into()],
            groups: vec!["dev".into()],
        },
        &|_| None,
    );
});

fn target() -> PythonTarget {
    lockship_python::target::bookworm()
}
