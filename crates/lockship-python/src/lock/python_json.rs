//! JSON as Python's `json.dumps` writes it (`ensure_ascii`, float `repr`), for the hashes
//! poetry and pipenv take of their project files: lockship must produce the same bytes to tell
//! a fresh lock from a stale one.

use std::fmt::Write;

/// A JSON string as `json.dumps` writes it with `ensure_ascii=True`: `\"`, `\\`, `\b`, `\f`,
/// `\n`, `\r`, `\t`, every other character outside space..`~` as `\u` + 4 lowercase hex digits,
/// beyond the BMP as a surrogate pair.
pub(crate) fn push_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

/// A float as `json.dumps` writes it: `NaN`, `Infinity`, `-Infinity`, else Python's `repr`:
/// the shortest digits that read back as the same float, positional for exponents -5 to 15
/// (`0.0001`, `1e+16`, `1e-05`), `.0` added to integral values.
pub(crate) fn push_float(out: &mut String, f: f64) {
    if f.is_nan() {
        out.push_str("NaN");
        return;
    }
    if f.is_infinite() {
        out.push_str(if f > 0.0 { "Infinity" } else { "-Infinity" });
        return;
    }
    if f == 0.0 {
        out.push_str(if f.is_sign_negative() { "-0.0" } else { "0.0" });
        return;
    }
    // Rust's `{:e}` gives the shortest round-trip digits too: `d[.ddd]e<exp>`.
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if f < 0.0 {
        out.push('-');
    }
    // Python's float_repr_style 'short': positional when -4 < decpt <= 16.
    let decpt = exp + 1;
    if decpt > -4 && decpt <= 16 {
        if decpt <= 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-decpt) as usize));
            out.push_str(&digits);
        } else {
            let point = decpt as usize;
            if point >= digits.len() {
                out.push_str(&digits);
                out.extend(std::iter::repeat_n('0', point - digits.len()));
                out.push_str(".0");
            } else {
                out.push_str(&digits[..point]);
                out.push('.');
                out.push_str(&digits[point..]);
            }
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
}

/// The separators given to `json.dumps`: its defaults, or pipenv's compact pair.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Separators {
    pub item: &'static str,
    pub key: &'static str,
}

/// `json.dumps`'s default separators, `", "` and `": "` (poetry's content-hash).
pub(crate) const DEFAULT: Separators = Separators {
    item: ", ",
    key: ": ",
};

/// `separators=(",", ":")` (pipenv's Pipfile hash).
pub(crate) const COMPACT: Separators = Separators {
    item: ",",
    key: ":",
};

/// A TOML date or time met while writing: `json.dumps` cannot serialize what tomllib reads
/// from one, so neither tool can hash it.
#[derive(Debug)]
pub(crate) struct DateInToml {
    /// The innermost key it stands under (`key` as given, for a value at the top).
    pub key: String,
    pub value: toml::value::Datetime,
}

/// Writes `value` as `json.dumps(v, sort_keys=True, separators=sep)` writes what tomllib read
/// from it. `key` is the key `value` stands under, for [`DateInToml`].
pub(crate) fn push_toml(
    out: &mut String,
    value: &toml::Value,
    sep: Separators,
    key: &str,
) -> Result<(), DateInToml> {
    match value {
        toml::Value::String(s) => push_str(out, s),
        toml::Value::Integer(n) => {
            let _ = write!(out, "{n}");
        }
        toml::Value::Float(f) => push_float(out, *f),
        toml::Value::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        toml::Value::Datetime(d) => {
            return Err(DateInToml {
                key: key.to_string(),
                value: *d,
            })
        }
        toml::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep.item);
                }
                push_toml(out, item, sep, key)?;
            }
            out.push(']');
        }
        toml::Value::Table(table) => {
            // Sorted explicitly: the map keeps document order if a crate in the build enables
            // toml's `preserve_order`. String order is code point order, Python's str sort.
            let mut entries: Vec<(&String, &toml::Value)> = table.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(sep.item);
                }
                push_str(out, k);
                out.push_str(sep.key);
                push_toml(out, v, sep, k)?;
            }
            out.push('}');
        }
    }
    Ok(())
}
