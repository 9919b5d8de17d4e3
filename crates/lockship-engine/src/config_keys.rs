//! Config tables read from a TOML file's text, so that an error names the key it is about
//! (`[tool.lockship.builder] imag: unknown field`), found from the error's span.

use serde::de::DeserializeOwned;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

/// A TOML document, parsed with the position of every key and value.
pub(crate) struct Document<'t>(Spanned<DeTable<'t>>);

impl<'t> Document<'t> {
    /// Parses `text`; the error is toml's message (it has no key to name yet).
    pub(crate) fn parse(text: &'t str) -> Result<Document<'t>, String> {
        DeTable::parse(text)
            .map(Document)
            .map_err(|e| e.message().to_string())
    }

    /// The value at `path` (`["tool", "lockship"]`), if there is one.
    pub(crate) fn get(&self, path: &[&str]) -> Option<&Spanned<DeValue<'t>>> {
        let (first, rest) = path.split_first()?;
        let mut value = entry(self.0.get_ref(), first)?;
        for key in rest {
            let DeValue::Table(table) = value.get_ref() else {
                return None;
            };
            value = entry(table, key)?;
        }
        Some(value)
    }

    /// `T` from the value at `path` (`None` when absent). An error reads `[TABLE] KEY: what is
    /// wrong`, the key found from where the error points in the text; the keys of a
    /// standalone file's top level (`path` empty) read `KEY: …` and `[TABLE] KEY: …`.
    pub(crate) fn read<T: DeserializeOwned>(&self, path: &[&str]) -> Result<Option<T>, String> {
        let value = if path.is_empty() {
            Spanned::new(self.0.span(), DeValue::Table(self.0.get_ref().clone()))
        } else {
            match self.get(path) {
                Some(v) => v.clone(),
                None => return Ok(None),
            }
        };
        T::deserialize(ValueDeserializer::from(value))
            .map(Some)
            .map_err(|e| self.describe(path, &e))
    }

    /// An error as `[TABLE] KEY: message`: the deepest key at the error's position, else the
    /// table at `path` that was being read.
    fn describe(&self, path: &[&str], error: &toml::de::Error) -> String {
        let message = plain_message(error.message());
        let found = error.span().and_then(|span| {
            let mut keys = Vec::new();
            key_at(self.0.get_ref(), span.start, &mut keys).then_some(keys)
        });
        match found {
            // A position inside the table being read: the key under it.
            Some(keys) if keys.len() > path.len() && keys.iter().zip(path).all(|(k, p)| k == p) => {
                format!("{}: {message}", key_name(&keys))
            }
            _ if path.is_empty() => message,
            _ => format!("[{}]: {message}", path.join(".")),
        }
    }
}

fn entry<'a, 't>(table: &'a DeTable<'t>, key: &str) -> Option<&'a Spanned<DeValue<'t>>> {
    table
        .iter()
        .find(|(k, _)| k.get_ref().as_ref() == key)
        .map(|(_, v)| v)
}

/// Pushes onto `keys` the path of the deepest key whose name or value holds byte `at`. Every
/// table is searched, not only those whose span holds it: a `[header]` table's span is its
/// header, not the keys under it.
fn key_at(table: &DeTable<'_>, at: usize, keys: &mut Vec<String>) -> bool {
    for (key, value) in table.iter() {
        keys.push(key.get_ref().to_string());
        if descend(value, at, keys) || key.span().contains(&at) || value.span().contains(&at) {
            return true;
        }
        keys.pop();
    }
    false
}

fn descend(value: &Spanned<DeValue<'_>>, at: usize, keys: &mut Vec<String>) -> bool {
    match value.get_ref() {
        DeValue::Table(table) => key_at(table, at, keys),
        DeValue::Array(items) => items.iter().enumerate().any(|(i, item)| {
            keys.push(format!("[{i}]"));
            let hit = descend(item, at, keys) || item.span().contains(&at);
            if !hit {
                keys.pop();
            }
            hit
        }),
        _ => false,
    }
}

/// `[tool.lockship.builder] imag`, `smoke[1]`, `[tool.lockship.targets.dev] smoke[0]`: the
/// last key with its array positions, after the table that holds it.
fn key_name(keys: &[String]) -> String {
    let last_key = keys
        .iter()
        .rposition(|k| !k.starts_with('['))
        .unwrap_or_default();
    let key = keys[last_key..].concat();
    match &keys[..last_key] {
        [] => key,
        table => format!("[{}] {key}", table.join(".")),
    }
}

/// serde's messages in the order a reader needs them: what was expected, then what is there;
/// an unknown field with the fields there are (its name is already in the key).
fn plain_message(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("invalid type: ") {
        if let Some((found, expected)) = rest.split_once(", expected ") {
            return format!("expected {expected}, found {found}");
        }
    }
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let known = rest.split_once("`, ").map_or("", |(_, known)| known);
        let known = known.replace('`', "");
        return match known.strip_prefix("expected ") {
            Some(fields) => format!("unknown field (expected {fields})"),
            None => "unknown field".to_string(),
        };
    }
    message.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Table {
        flag: Option<bool>,
        #[serde(default)]
        list: Vec<String>,
        inner: Option<Inner>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        image: Option<String>,
        #[serde(default)]
        packages: Vec<String>,
    }

    fn error(text: &str, path: &[&str]) -> String {
        Document::parse(text)
            .unwrap()
            .read::<Table>(path)
            .unwrap_err()
    }

    #[test]
    fn errors_name_the_key_and_its_table() {
        let nested = |body: &str| error(&format!("[tool.t]\n{body}\n"), &["tool", "t"]);
        assert_eq!(
            nested("flag = \"no\""),
            "[tool.t] flag: expected a boolean, found string \"no\""
        );
        assert_eq!(
            nested("list = \"linux/amd64\""),
            "[tool.t] list: expected a sequence, found string \"linux/amd64\""
        );
        assert_eq!(
            nested("list = [\"a\", 5]"),
            "[tool.t] list[1]: expected a string, found integer `5`"
        );
        assert_eq!(
            nested("[tool.t.inner]\nimag = \"x\""),
            "[tool.t.inner] imag: unknown field (expected image or packages)"
        );
        assert_eq!(
            nested("inner = { image = 3 }"),
            "[tool.t.inner] image: expected a string, found integer `3`"
        );
        assert_eq!(
            nested("nope = 1"),
            "[tool.t] nope: unknown field (expected one of flag, list, inner)"
        );
        // A standalone file's keys are at the top level.
        assert_eq!(
            error("flag = 1\n", &[]),
            "flag: expected a boolean, found integer `1`"
        );
        assert_eq!(
            error("[inner]\nimag = 1\n", &[]),
            "[inner] imag: unknown field (expected image or packages)"
        );
    }

    #[test]
    fn an_absent_table_is_none() {
        let doc = Document::parse("[project]\nname = \"x\"\n").unwrap();
        assert!(doc.read::<Table>(&["tool", "t"]).unwrap().is_none());
        assert!(doc.get(&["project", "name"]).is_some());
    }
}
