//! Debian control files: Release (after its signature checked out), Packages stanzas, the
//! dependency resolver over them, and version comparison.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lockship_debian::{control, release, resolve::Universe, version};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = release::parse(text, "http://mirror.invalid/dists/x/InRelease");
    for (fields, _) in control::stanzas(text) {
        if let [(_, a), (_, b), ..] = fields.as_slice() {
            let _ = version::compare(a, b);
        }
    }
    let entries = control::parse_packages(text, "amd64");
    let names: Vec<String> = entries.iter().take(4).map(|e| e.name.clone()).collect();
    // The fifth package excluded from their closure: the exclusion checks are reached too.
    let exclude: Vec<String> = entries.iter().skip(4).take(1).map(|e| e.name.clone()).collect();
    let universe = Universe::new(entries, "bookworm", "amd64");
    let _ = universe.resolve(&names, &exclude);
});
