//! Reads a Dockerfile as far as `lockship init` needs: its stages (base image, alias) and, per
//! stage, the instructions that configure the image (ENTRYPOINT, CMD, ENV, USER, WORKDIR,
//! EXPOSE, LABEL) and the RUN and COPY steps, with line continuations joined, comments and
//! parser directives dropped, and `${ARG}` filled in from ARG defaults. It runs nothing.

use std::collections::BTreeMap;

/// One `FROM` and what follows it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stage {
    /// The image as written (`python:3.12-slim`), or another stage's alias.
    pub from: String,
    pub alias: Option<String>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    /// `ENV` in order.
    pub env: Vec<(String, String)>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub expose: Vec<String>,
    pub labels: Vec<(String, String)>,
    /// `RUN` commands as written (shell or exec form joined).
    pub runs: Vec<String>,
    /// `COPY`/`ADD` as written.
    pub copies: Vec<String>,
}

/// A command in exec form (`["a", "b"]`) or shell form (`a b`, run by `/bin/sh -c` in Docker).
fn command(text: &str) -> Vec<String> {
    let text = text.trim();
    if text.starts_with('[') {
        if let Ok(list) = serde_json::from_str::<Vec<String>>(text) {
            return list;
        }
    }
    vec!["/bin/sh".into(), "-c".into(), text.to_string()]
}

/// `KEY=VALUE KEY2="a b"` or the old `KEY VALUE` form.
fn pairs(text: &str) -> Vec<(String, String)> {
    let text = text.trim();
    let words = shell_words::split(text).unwrap_or_else(|_| vec![text.to_string()]);
    if !words.is_empty() && !words[0].contains('=') {
        let (key, value) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
        return vec![(key.to_string(), value.trim().to_string())];
    }
    words
        .into_iter()
        .filter_map(|w| {
            w.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// Fills `${NAME}`, `$NAME` and `${NAME:-default}` from `args`; unknown names stay as written.
fn substitute(text: &str, args: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, default, used) = if let Some(inner) = after.strip_prefix('{') {
            match inner.find('}') {
                Some(end) => {
                    let body = &inner[..end];
                    let (name, default) = match body.split_once(":-") {
                        Some((n, d)) => (n, Some(d)),
                        None => (body, None),
                    };
                    (name, default, end + 2)
                }
                // No closing brace anywhere after: the rest is text (and no later `${` can
                // close either, so scanning stops).
                None => {
                    out.push_str(&rest[at..]);
                    return out;
                }
            }
        } else {
            let len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..len], None, len)
        };
        match args.get(name).map(String::as_str).or(default) {
            Some(value) if !name.is_empty() => out.push_str(value),
            _ => out.push_str(&rest[at..at + 1 + used]),
        }
        rest = &rest[at + 1 + used..];
    }
    out.push_str(rest);
    out
}

/// The stages of `text`, first to last.
pub fn parse(text: &str) -> Vec<Stage> {
    // Join continuation lines; drop comments (and parser directives, which look like them).
    let mut logical: Vec<String> = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') && current.is_empty() {
            continue;
        }
        if trimmed.starts_with('#') {
            continue;
        }
        if let Some(body) = trimmed.strip_suffix('\\') {
            current.push_str(body);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        if !current.trim().is_empty() {
            logical.push(std::mem::take(&mut current));
        }
        current.clear();
    }
    if !current.trim().is_empty() {
        logical.push(current);
    }

    let mut args: BTreeMap<String, String> = BTreeMap::new();
    let mut stages: Vec<Stage> = Vec::new();
    for line in logical {
        let (word, rest) = line
            .trim()
            .split_once(char::is_whitespace)
            .unwrap_or((line.trim(), ""));
        let rest = rest.trim();
        let instruction = word.to_ascii_uppercase();
        if instruction == "ARG" {
            let (name, value) = rest.split_once('=').unwrap_or((rest, ""));
            args.entry(name.trim().to_string())
                .or_insert_with(|| value.trim().trim_matches('"').to_string());
            continue;
        }
        let rest = substitute(rest, &args);
        if instruction == "FROM" {
            // FROM [--platform=…] image [AS name]
            let words: Vec<&str> = rest
                .split_whitespace()
                .filter(|w| !w.starts_with("--"))
                .collect();
            let alias = match words.as_slice() {
                [_, r#as, name] if r#as.eq_ignore_ascii_case("as") => Some(name.to_string()),
                _ => None,
            };
            stages.push(Stage {
                from: words.first().map(|w| w.to_string()).unwrap_or_default(),
                alias,
                ..Stage::default()
            });
            continue;
        }
        let Some(stage) = stages.last_mut() else {
            continue;
        };
        match instruction.as_str() {
            "ENTRYPOINT" => {
                stage.entrypoint = Some(command(&rest));
                // A new ENTRYPOINT resets CMD inherited from the base.
                stage.cmd = None;
            }
            "CMD" => stage.cmd = Some(command(&rest)),
            "ENV" => stage.env.extend(pairs(&rest)),
            "LABEL" => stage.labels.extend(pairs(&rest)),
            "USER" => stage.user = Some(rest.to_string()),
            "WORKDIR" => stage.workdir = Some(rest.to_string()),
            "EXPOSE" => stage
                .expose
                .extend(rest.split_whitespace().map(String::from)),
            "RUN" => stage.runs.push(rest.to_string()),
            "COPY" | "ADD" => stage.copies.push(rest.to_string()),
            _ => {}
        }
    }
    stages
}

/// The settings of `stages[index]` with what it inherits from earlier stages it is built
/// `FROM` (their config carries over, as in Docker), and the registry image at the root.
pub fn resolved(stages: &[Stage], index: usize) -> (Stage, String) {
    let mut chain = vec![stages[index].clone()];
    let mut from = stages[index].from.clone();
    // Follow aliases back to an image: a stage can only be built FROM an earlier one, so each
    // step looks strictly before the last, and the walk ends within `index` steps.
    let mut before = index;
    while let Some(parent) = stages[..before].iter().rposition(|s| {
        s.alias
            .as_deref()
            .is_some_and(|a| a.eq_ignore_ascii_case(&from))
    }) {
        chain.push(stages[parent].clone());
        from = stages[parent].from.clone();
        before = parent;
    }
    let mut merged = Stage {
        from: from.clone(),
        alias: stages[index].alias.clone(),
        ..Stage::default()
    };
    for s in chain.into_iter().rev() {
        if s.entrypoint.is_some() {
            merged.entrypoint = s.entrypoint;
            merged.cmd = None;
        }
        if s.cmd.is_some() {
            merged.cmd = s.cmd;
        }
        merged.env.extend(s.env);
        merged.labels.extend(s.labels);
        merged.user = s.user.or(merged.user);
        merged.workdir = s.workdir.or(merged.workdir);
        merged.expose.extend(s.expose);
        merged.runs.extend(s.runs);
        merged.copies.extend(s.copies);
    }
    (merged, from)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCKERFILE: &str = r#"# syntax=docker/dockerfile:1
ARG PY=3.12
FROM python:${PY} AS builder
COPY requirements.lock .
RUN pip wheel --no-deps -r requirements.lock \
      -w /wheels

FROM python:${PY}-slim AS runtime
RUN useradd -r -u 10001 app
ENV PYTHONUNBUFFERED=1 LOG_LEVEL="info level"
ENV OLD style
LABEL org.opencontainers.image.vendor="ACME"
USER app
WORKDIR /app
EXPOSE 8000 9000/udp
ENTRYPOINT ["python", "-m", "myapp"]
CMD --port 8000

FROM runtime AS test
RUN pip install pytest && pytest -q tests
"#;

    #[test]
    fn stages_and_their_settings() {
        let stages = parse(DOCKERFILE);
        assert_eq!(stages.len(), 3);
        assert_eq!(stages[0].from, "python:3.12");
        assert_eq!(
            stages[0].runs,
            ["pip wheel --no-deps -r requirements.lock  -w /wheels"]
        );
        let runtime = &stages[1];
        assert_eq!(runtime.from, "python:3.12-slim");
        assert_eq!(runtime.alias.as_deref(), Some("runtime"));
        assert_eq!(
            runtime.env,
            [
                ("PYTHONUNBUFFERED".to_string(), "1".to_string()),
                ("LOG_LEVEL".to_string(), "info level".to_string()),
                ("OLD".to_string(), "style".to_string()),
            ]
        );
        assert_eq!(
            runtime.entrypoint.as_deref().unwrap(),
            ["python", "-m", "myapp"]
        );
        assert_eq!(
            runtime.cmd.as_deref().unwrap(),
            ["/bin/sh", "-c", "--port 8000"]
        );
        assert_eq!(runtime.expose, ["8000", "9000/udp"]);
        assert_eq!(runtime.user.as_deref(), Some("app"));
        // The test stage inherits the runtime's settings and resolves to its image.
        let (test, image) = resolved(&stages, 2);
        assert_eq!(image, "python:3.12-slim");
        assert_eq!(test.workdir.as_deref(), Some("/app"));
        assert_eq!(
            test.runs.last().unwrap(),
            "pip install pytest && pytest -q tests"
        );
    }

    #[test]
    fn alias_cycles_end() {
        let text = "FROM b AS a\nFROM a AS b\n".to_string() + &"FROM b\n".repeat(2000);
        let stages = parse(&text);
        // b → stage `b` (FROM a) → stage `a` (FROM b), and nothing before it: `b`, at once.
        let (_, image) = resolved(&stages, stages.len() - 1);
        assert_eq!(image, "b");
    }

    #[test]
    fn unknown_args_stay_as_written() {
        let args = BTreeMap::from([("A".to_string(), "1".to_string())]);
        assert_eq!(substitute("x${A}y$A ${B} ${C:-d}", &args), "x1y1 ${B} d");
        // An unclosed `${` ends the scan: linear, however many follow.
        let long = "${".repeat(100_000);
        assert_eq!(substitute(&long, &args), long);
    }
}
