//! poetry.lock's `content-hash`: the sha256 of Python's `json.dumps(…, sort_keys=True)` of the
//! pyproject.toml sections poetry's `Locker._get_content_hash` counts, in the way of each
//! generation of poetry.

use toml::{Table, Value};

use crate::lock::python_json;
use lockship_oci::digest::Digest;

/// The ways poetry has hashed pyproject.toml (poetry/packages/locker.py).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Algorithm {
    /// Poetry 1.x: `[tool.poetry]`'s dependencies, source, extras and dev-dependencies (null
    /// when absent) and group (when present), at the top level.
    Poetry1,
    /// Poetry 2.0 to 2.2: also `[project]`'s requires-python, dependencies and
    /// optional-dependencies; when any is present the `[tool.poetry]` part moves under
    /// `tool.poetry` and keeps only the keys present.
    Poetry2,
    /// Poetry 2.3 and later: Poetry 2 plus `[dependency-groups]` (PEP 735).
    Poetry23,
}

/// Keys of `[tool.poetry]` written even when absent (as null) by every poetry, for
/// compatibility with the first lock files.
const LEGACY_KEYS: [&str; 4] = ["dependencies", "source", "extras", "dev-dependencies"];
/// `LEGACY_KEYS` and `group`, in poetry's order (the order does not matter: keys are sorted).
const POETRY_KEYS: [&str; 5] = [
    "dependencies",
    "source",
    "extras",
    "dev-dependencies",
    "group",
];
const PROJECT_KEYS: [&str; 3] = ["requires-python", "dependencies", "optional-dependencies"];

/// The JSON value poetry dumps: TOML values, objects it builds, and null.
enum Json<'a> {
    Null,
    Toml(&'a Value),
    Object(Vec<(&'a str, Json<'a>)>),
}

/// The content-hash `algorithm` gives `pyproject` (hex, as poetry.lock records it). Fails, as
/// poetry would, on values JSON cannot hold (dates and times) or sections that are not tables.
pub(super) fn content_hash(pyproject: &Table, algorithm: Algorithm) -> Result<String, String> {
    let empty = Table::new();
    let tool_poetry = match pyproject.get("tool") {
        None => &empty,
        Some(Value::Table(tool)) => match tool.get("poetry") {
            None => &empty,
            Some(Value::Table(poetry)) => poetry,
            Some(_) => return Err("[tool.poetry] is not a table".into()),
        },
        Some(_) => return Err("`tool` is not a table".into()),
    };
    let content = match algorithm {
        Algorithm::Poetry1 => Json::Object(
            POETRY_KEYS
                .iter()
                .filter_map(|&key| match tool_poetry.get(key) {
                    Some(v) => Some((key, Json::Toml(v))),
                    None if LEGACY_KEYS.contains(&key) => Some((key, Json::Null)),
                    None => None,
                })
                .collect(),
        ),
        Algorithm::Poetry2 | Algorithm::Poetry23 => {
            let project = match pyproject.get("project") {
                None => &empty,
                Some(Value::Table(project)) => project,
                Some(_) => return Err("`project` is not a table".into()),
            };
            let relevant_project: Vec<(&str, Json)> = PROJECT_KEYS
                .iter()
                .filter_map(|&key| project.get(key).map(|v| (key, Json::Toml(v))))
                .collect();
            let groups = match pyproject.get("dependency-groups") {
                Some(v) if algorithm == Algorithm::Poetry23 && truthy(v) => Some(v),
                _ => None,
            };
            // Legacy keys are written as null only when nothing else is hashed.
            let bare = relevant_project.is_empty() && groups.is_none();
            let relevant_poetry: Vec<(&str, Json)> = POETRY_KEYS
                .iter()
                .filter_map(|&key| match tool_poetry.get(key) {
                    Some(v) => Some((key, Json::Toml(v))),
                    None if bare && LEGACY_KEYS.contains(&key) => Some((key, Json::Null)),
                    None => None,
                })
                .collect();
            if bare {
                // Backwards compatible: the [tool.poetry] part at the top level.
                Json::Object(relevant_poetry)
            } else {
                let mut top = Vec::new();
                if !relevant_project.is_empty() {
                    top.push(("project", Json::Object(relevant_project)));
                }
                if let Some(groups) = groups {
                    top.push(("dependency-groups", Json::Toml(groups)));
                }
                top.push((
                    "tool",
                    Json::Object(vec![("poetry", Json::Object(relevant_poetry))]),
                ));
                Json::Object(top)
            }
        }
    };
    let mut out = String::new();
    dump(&content, &mut out)?;
    Ok(Digest::of_bytes(out.as_bytes()).hex().to_string())
}

/// Python's truthiness of a value read by tomllib (`if group_content:`).
fn truthy(v: &Value) -> bool {
    match v {
        Value::String(s) => !s.is_empty(),
        Value::Integer(i) => *i != 0,
        Value::Float(f) => *f != 0.0,
        Value::Boolean(b) => *b,
        Value::Datetime(_) => true,
        Value::Array(a) => !a.is_empty(),
        Value::Table(t) => !t.is_empty(),
    }
}

/// `json.dumps(value, sort_keys=True)` with its defaults: `", "` and `": "` separators,
/// ASCII-only output, Python's float repr, NaN and Infinity allowed.
fn dump(value: &Json, out: &mut String) -> Result<(), String> {
    match value {
        Json::Null => out.push_str("null"),
        Json::Object(entries) => {
            let mut sorted: Vec<&(&str, Json)> = entries.iter().collect();
            sorted.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, v)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(python_json::DEFAULT.item);
                }
                python_json::push_str(out, key);
                out.push_str(python_json::DEFAULT.key);
                dump(v, out)?;
            }
            out.push('}');
        }
        Json::Toml(v) => dump_toml(v, out)?,
    }
    Ok(())
}

fn dump_toml(value: &Value, out: &mut String) -> Result<(), String> {
    python_json::push_toml(out, value, python_json::DEFAULT, "").map_err(|date| {
        format!(
            "the date/time {} cannot be hashed (poetry fails on it too)",
            date.value
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dumped(toml_text: &str) -> String {
        let table: Table = toml::from_str(toml_text).unwrap();
        let mut out = String::new();
        dump_toml(&table["v"], &mut out).unwrap();
        out
    }

    #[test]
    fn floats_print_as_python_repr() {
        // Each pair checked against CPython 3.11: json.dumps(tomllib.loads(f"v = {toml}")["v"]).
        for (toml, python) in [
            ("1.0", "1.0"),
            ("-0.0", "-0.0"),
            ("0.1", "0.1"),
            ("1e15", "1000000000000000.0"),
            ("1e16", "1e+16"),
            ("1.5e16", "1.5e+16"),
            ("0.0001", "0.0001"),
            ("0.00001", "1e-05"),
            ("1.25e-7", "1.25e-07"),
            ("123456.789", "123456.789"),
            ("3.141592653589793", "3.141592653589793"),
            ("1e300", "1e+300"),
            ("inf", "Infinity"),
            ("-inf", "-Infinity"),
            ("nan", "NaN"),
        ] {
            assert_eq!(dumped(&format!("v = {toml}")), python, "{toml}");
        }
    }

    #[test]
    fn strings_and_tables_print_as_python_json() {
        assert_eq!(
            dumped(r#"v = "é \"q\" \\ \t\n\u0001\u007f 😀 ~""#),
            r#""\u00e9 \"q\" \\ \t\n\u0001\u007f \ud83d\ude00 ~""#
        );
        assert_eq!(
            dumped(r#"v = { b = [1, true, { z = [] }], a = {}, "é" = -3 }"#),
            r#"{"a": {}, "b": [1, true, {"z": []}], "\u00e9": -3}"#
        );
        let table: Table = toml::from_str("v = 1979-05-27").unwrap();
        assert!(dump_toml(&table["v"], &mut String::new()).is_err());
    }

    /// Every kind of value poetry hashes: non-ASCII and escaped strings, floats, booleans,
    /// empty arrays, [dependency-groups] with an include, keys in need of sorting.
    const EDGE: &str = r##"[project]
name = "edge"
requires-python = ">=3.10"
dependencies = ["naïve-pkg>=1.0 ; sys_platform == 'win32'", "emoji-😀", "tab\there \"q\" \\ back"]

[project.optional-dependencies]
Zeta = ["a"]
alpha = []

[dependency-groups]
test = ["pytest", { include-group = "lint" }]
lint = []

[tool.poetry]
ignored = 1.5e300

[tool.poetry.dependencies]
foo = { version = "^1", optional = true, n = 1.0, m = -0.0, big = 12345678901234, f = 1e-7, g = 1e16, h = 0.1, b = false, inf = inf, nan = nan }

[tool.poetry.group.dev.dependencies]
"é" = "*"

[[tool.poetry.source]]
name = "s"
url = "https://index.example/simple"
priority = "explicit"
"##;
    /// No relevant key at all: poetry hashes the legacy keys as null.
    const BARE: &str = r##"[tool.poetry]
name = "bare"
version = "1"
"##;
    /// `[project]` without relevant keys and an empty [dependency-groups]: hashed as 1.x does.
    const NAMES_ONLY: &str = r##"[project]
name = "names-only"
version = "1"

[dependency-groups]

[tool.poetry.dependencies]
python = "^3.11"
requests = "*"

[tool.poetry.extras]
all = []
"##;

    #[test]
    fn hashes_as_each_poetry_does() {
        // Expected values from poetry's own Locker on these texts: 2.5.1
        // (`_get_content_hash()`, and `with_dependency_groups=False`, which 2.2.1 gives too)
        // and 1.8.5 (`Locker(path, data["tool"]["poetry"])._get_content_hash()`).
        let hash = |text: &str, algorithm| {
            content_hash(&toml::from_str(text).unwrap(), algorithm).unwrap()
        };
        assert_eq!(
            hash(EDGE, Algorithm::Poetry23),
            "7dc61d3920464950d6ac6d6321e6d90ca790ad266416650b0eaf79e500992ac5"
        );
        assert_eq!(
            hash(EDGE, Algorithm::Poetry2),
            "c537fb44a5c301e60e59d8197e38681ae14386c8e685b2be6ec225c1684f9f23"
        );
        assert_eq!(
            hash(EDGE, Algorithm::Poetry1),
            "93c2b0cac7a48e2a90f66242cf0840a693fa9c14d8412f6c15b7c39c15a1dbcf"
        );
        for algorithm in [Algorithm::Poetry1, Algorithm::Poetry2, Algorithm::Poetry23] {
            assert_eq!(
                hash(BARE, algorithm),
                "115cf985d932e9bf5f540555bbdd75decbb62cac81e399375fc19f6277f8c1d8"
            );
            assert_eq!(
                hash(NAMES_ONLY, algorithm),
                "39c787686ca0960f9aeafa224563e8cf2dc45b1f623253d0ab93393512ca9950"
            );
        }
        let not_a_table: Table = toml::from_str("tool = 3").unwrap();
        assert!(content_hash(&not_a_table, Algorithm::Poetry23).is_err());
    }
}
