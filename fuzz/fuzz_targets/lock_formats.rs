//! The poetry.lock, Pipfile.lock and pylock.toml readers and their freshness checks. The first
//! byte picks the format; the rest is the lock and, after a NUL, the file it was made from
//! (pyproject.toml, Pipfile).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lockship_python::lock::{pipfile_lock, poetry_lock, pylock, Selection};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let (lock, made_from) = text.split_once('\0').unwrap_or((text, ""));
    let env = lockship_python::target::bookworm().marker_env();
    let dev = Selection {
        extras: vec!["plot".into()],
        groups: vec!["dev".into()],
    };
    let vars = |name: &str| (name == "TOKEN").then(|| "user:p@ss".to_string());
    match pick % 3 {
        0 => {
            let path = "poetry.lock".as_ref();
            for selection in [&Selection::default(), &dev] {
                let _ = poetry_lock::parse(path, lock, made_from, &env, selection);
            }
            let _ = poetry_lock::check_fresh(path, lock, made_from);
        }
        1 => {
            let path = "Pipfile.lock".as_ref();
            for selection in [&Selection::default(), &dev] {
                let _ = pipfile_lock::parse(path, lock, &env, selection, &vars);
            }
            let _ = pipfile_lock::check_fresh(path, lock, made_from);
        }
        _ => {
            let path = "pylock.toml".as_ref();
            for selection in [&Selection::default(), &dev] {
                let _ = pylock::parse(path, lock, &env, selection);
            }
        }
    }
});
