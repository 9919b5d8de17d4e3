//! Wheel reader: the table-of-contents checks (escapes, duplicates, conflicts, symlink chains,
//! bombs, RECORD), then reading every entry the checks let through, and RECORD on its own.
#![no_main]

use std::io::Read;

use libfuzzer_sys::fuzz_target;
use lockship_python::wheel::{parse_record, read_entries, Kind, Limits};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_record(text);
    }
    let Ok(mut archive) = zip::ZipArchive::new(std::io::Cursor::new(data)) else {
        return;
    };
    // Small limits keep each run fast; the checks are the same.
    let limits = Limits {
        max_unpacked: 64 << 20,
        max_ratio: 250,
        ratio_floor: 1 << 16,
        max_entries: 10_000,
    };
    let Ok(entries) = read_entries(&mut archive, data.len() as u64, &limits) else {
        return;
    };
    for entry in entries {
        if entry.kind == Kind::File {
            if let Ok(member) = archive.by_index(entry.index) {
                let mut sink = Vec::new();
                let _ = member.take(entry.size + 1).read_to_end(&mut sink);
            }
        }
    }
});
