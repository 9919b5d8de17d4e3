//! Small readers of pyproject.toml tables shared by the app build and the engine's config.

/// The strings of the array `key` in `table` (non-strings skipped; missing: empty).
pub fn string_list(table: Option<&toml::Value>, key: &str) -> Vec<String> {
    table
        .and_then(|t| t.get(key))
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}
