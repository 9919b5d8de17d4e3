//! `lockship init`: a `[tool.lockship]` table for a project, from what it already has: its lock,
//! its console scripts or `python -m` module, and its Dockerfile if there is one (base image,
//! ENTRYPOINT/CMD, ENV, USER, WORKDIR, LABEL, a builder stage, a test stage). What cannot be
//! carried over (arbitrary RUN steps, EXPOSE) is listed with what to do instead. The table is
//! appended to pyproject.toml, whole or not at all, and only if the file has none yet.

use std::path::{Path, PathBuf};

use crate::dockerfile::{self, Stage};
use crate::error::Error;
use crate::project::{Project, ProjectError};

/// What `init` is asked to do.
#[derive(Clone, Debug)]
pub struct InitOptions {
    pub project_dir: PathBuf,
    /// The Dockerfile to read (default: `Dockerfile`, else `Containerfile`, in the project).
    pub dockerfile: Option<PathBuf>,
    /// Only show the table; write nothing.
    pub print_only: bool,
}

/// What `init` found and wrote.
#[derive(Clone, Debug, serde::Serialize)]
pub struct InitReport {
    /// The TOML written (or to write).
    pub table: String,
    /// What came from where (`base from Dockerfile stage runtime`).
    pub carried: Vec<String>,
    /// What could not be carried over, and what to do instead.
    pub not_carried: Vec<String>,
    /// The file written; None with `print_only`.
    pub written: Option<PathBuf>,
}

/// Why a value with credentials in it is left out (never written to pyproject.toml or shown).
const CREDENTIALS: &str = "its value holds a URL with credentials; lockship does not copy it (pass it when the container runs, from a secret)";

/// Whether `value` has a URL with user info in it (`https://user:token@host/…`).
fn holds_credentials(value: &str) -> bool {
    value.split_whitespace().any(|w| {
        lockship_net::url::split_credentials(w)
            .credentials
            .is_some()
    })
}

/// Variables lockship sets itself or that only matter to pip/uv at build time.
fn dropped_env(key: &str) -> Option<&'static str> {
    match key {
        "PATH" | "VIRTUAL_ENV" | "PYTHONUNBUFFERED" | "PYTHONDONTWRITEBYTECODE" => {
            Some("lockship sets it")
        }
        k if k.starts_with("PIP_") || k.starts_with("UV_") || k.starts_with("POETRY_") => {
            Some("it configures an installer at build time; lockship installs from the lock")
        }
        _ => None,
    }
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn toml_list(items: &[String]) -> String {
    toml::Value::Array(
        items
            .iter()
            .map(|s| toml::Value::String(s.clone()))
            .collect(),
    )
    .to_string()
}

/// The stage that is the shipped image: one called runtime/production/prod/final/app, else the
/// last stage that is not a test, lint or dev stage, else the last.
fn shipped_stage(stages: &[Stage]) -> usize {
    let named = |names: &[&str]| {
        stages.iter().rposition(|s| {
            s.alias
                .as_deref()
                .is_some_and(|a| names.iter().any(|n| a.eq_ignore_ascii_case(n)))
        })
    };
    named(&["runtime", "production", "prod", "final", "app", "release"])
        .or_else(|| {
            stages.iter().rposition(|s| {
                !s.alias.as_deref().is_some_and(|a| {
                    let a = a.to_ascii_lowercase();
                    ["test", "lint", "dev", "ci", "check"]
                        .iter()
                        .any(|w| a.contains(w))
                })
            })
        })
        .unwrap_or(stages.len() - 1)
}

/// `python`, a console script or a path in the base, as the command to run in lockship's venv.
fn in_venv(word: &str, scripts: &[String]) -> String {
    let name = word.rsplit('/').next().unwrap_or(word);
    if matches!(name, "python" | "python3") || name.starts_with("python3.") {
        return "/opt/venv/bin/python".into();
    }
    if scripts.iter().any(|s| s == name) {
        return format!("/opt/venv/bin/{name}");
    }
    word.to_string()
}

/// A command as lockship writes it: exec form, the program mapped into the venv. Shell form
/// is split when it has no shell syntax (the image has no shell); else None.
fn exec_form(argv: &[String], scripts: &[String], map_program: bool) -> Option<Vec<String>> {
    let argv: Vec<String> = match argv {
        [sh, c, script] if sh == "/bin/sh" && c == "-c" => {
            if script.contains(['&', '|', ';', '$', '>', '<', '`', '*']) {
                return None;
            }
            shell_words::split(script).ok()?
        }
        other => other.to_vec(),
    };
    let mut argv = argv;
    if map_program {
        if let Some(first) = argv.first_mut() {
            *first = in_venv(first, scripts);
        }
    }
    Some(argv)
}

/// `useradd … -u UID [-g GID] NAME` (or adduser) in `runs`: UID:GID for NAME.
fn created_user(runs: &[String], name: &str) -> Option<String> {
    for run in runs {
        for part in run.split("&&") {
            let words = shell_words::split(part.trim()).unwrap_or_default();
            if !words
                .first()
                .is_some_and(|w| w.ends_with("useradd") || w.ends_with("adduser"))
            {
                continue;
            }
            if words.last().map(String::as_str) != Some(name) {
                continue;
            }
            let flag = |names: &[&str]| {
                words
                    .windows(2)
                    .find(|w| names.contains(&w[0].as_str()))
                    .map(|w| w[1].clone())
            };
            let uid = flag(&["-u", "--uid"])?;
            let gid = flag(&["-g", "--gid"])
                .filter(|g| g.chars().all(|c| c.is_ascii_digit()))
                .unwrap_or_else(|| uid.clone());
            return Some(format!("{uid}:{gid}"));
        }
    }
    None
}

/// Debian packages an `apt-get install` in `run` asks for.
fn apt_packages(run: &str) -> Vec<String> {
    let mut packages = Vec::new();
    for part in run.split("&&") {
        let words = shell_words::split(part.trim()).unwrap_or_default();
        if let Some(at) = words.iter().position(|w| w == "install") {
            if words
                .iter()
                .take(at)
                .any(|w| w.ends_with("apt-get") || w == "apt")
            {
                packages.extend(
                    words[at + 1..]
                        .iter()
                        .filter(|w| !w.starts_with('-'))
                        .cloned(),
                );
            }
        }
    }
    packages
}

pub fn init(opts: &InitOptions) -> Result<InitReport, Error> {
    let dir = &opts.project_dir;
    let pyproject = dir.join("pyproject.toml");
    if !pyproject.is_file() {
        return Err(ProjectError::NotAProject { dir: dir.clone() }.into());
    }
    let project = Project::load(dir)?;
    if !opts.print_only && has_lockship_table(&project) {
        return Err(Error::Usage(format!(
            "{} already has a [tool.lockship] table: lockship init leaves it as it is (--print shows what it would write)",
            project.config_path.display()
        )));
    }
    let scripts: Vec<String> = project.scripts.keys().cloned().collect();
    let mut lines: Vec<String> = Vec::new();
    let mut extra_tables: Vec<String> = Vec::new();
    let mut carried = Vec::new();
    let mut not_carried = Vec::new();

    let lock = lockship_python::lock::LOOKED_FOR
        .iter()
        .find(|n| dir.join(n).is_file());
    match lock {
        Some(name) => carried.push(format!("lock: {name} (found; no key needed)")),
        None => not_carried.push(
            "no lock file: run `uv lock` (or poetry lock, pipenv lock) before `lockship build`"
                .into(),
        ),
    }

    let dockerfile = opts.dockerfile.clone().or_else(|| {
        ["Dockerfile", "Containerfile"]
            .iter()
            .map(|n| dir.join(n))
            .find(|p| p.is_file())
    });
    let mut entrypoint_set = false;
    if let Some(path) = &dockerfile {
        let text = read_dockerfile(path)?;
        let stages = dockerfile::parse(&text);
        if stages.is_empty() {
            not_carried.push(format!(
                "{}: no FROM line; nothing read from it",
                path.display()
            ));
        } else {
            let shipped = shipped_stage(&stages);
            let (stage, image) = dockerfile::resolved(&stages, shipped);
            let from = format!(
                "{} stage {}",
                path.file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                stage
                    .alias
                    .clone()
                    .unwrap_or_else(|| (shipped + 1).to_string())
            );
            from_stage(
                &stage,
                &image,
                &from,
                &scripts,
                &mut lines,
                &mut carried,
                &mut not_carried,
                &mut entrypoint_set,
            );
            other_stages(
                &project,
                &stages,
                shipped,
                &image,
                &mut extra_tables,
                &mut carried,
            );
        }
    }
    if !entrypoint_set {
        if scripts.len() > 1 {
            lines.push(format!(
                "entrypoint = {}",
                toml_list(&[format!("/opt/venv/bin/{}", scripts[0])])
            ));
            not_carried.push(format!(
                "several console scripts ({}): the entrypoint is {}; change it if another is the app",
                scripts.join(", "),
                scripts[0]
            ));
        } else if scripts.is_empty() {
            if let Some(module) = main_module(dir) {
                lines.push(format!(
                    "entrypoint = {}",
                    toml_list(&["/opt/venv/bin/python".into(), "-m".into(), module.clone()])
                ));
                carried.push(format!(
                    "entrypoint: python -m {module} (it has a __main__.py)"
                ));
            }
        } else {
            carried.push(format!(
                "entrypoint: the console script {} (the default)",
                scripts[0]
            ));
        }
    }
    if let Some(module) = smoke_module(&project, dir) {
        lines.push(format!(
            "smoke = {}",
            toml_list(&[format!("python -c 'import {module}'")])
        ));
    }
    let mut table = String::from("[tool.lockship]\n");
    for line in &lines {
        table.push_str(line);
        table.push('\n');
    }
    for t in &extra_tables {
        table.push('\n');
        table.push_str(t);
    }
    let written = if opts.print_only {
        None
    } else {
        append(&pyproject, &table)?;
        Some(pyproject)
    };
    Ok(InitReport {
        table,
        carried,
        not_carried,
        written,
    })
}

/// A Dockerfile of at most 1 MiB of UTF-8 text.
fn read_dockerfile(path: &Path) -> Result<String, Error> {
    use std::io::Read;
    let unreadable = |message: String| Error::Unreadable {
        path: path.to_path_buf(),
        message,
    };
    let meta = std::fs::metadata(path).map_err(|e| unreadable(e.to_string()))?;
    if !meta.is_file() {
        return Err(unreadable("not a regular file".into()));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take((1 << 20) + 1).read_to_end(&mut bytes))
        .map_err(|e| unreadable(e.to_string()))?;
    if bytes.len() > 1 << 20 {
        return Err(unreadable("larger than 1 MiB".into()));
    }
    String::from_utf8(bytes).map_err(|_| unreadable("not UTF-8 text".into()))
}

/// Pairs with each key once, the last value winning (as a later ENV or LABEL does), in the
/// order keys first appeared.
fn last_wins(pairs: &[(String, String)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in pairs {
        match out.iter_mut().find(|(key, _)| key == k) {
            Some(slot) => slot.1 = v.clone(),
            None => out.push((k.clone(), v.clone())),
        }
    }
    out
}

fn has_lockship_table(project: &Project) -> bool {
    project
        .pyproject
        .as_ref()
        .and_then(|p| p.get("tool"))
        .and_then(|t| t.get("lockship"))
        .is_some()
        || project
            .config_path
            .file_name()
            .is_some_and(|n| n == "lockship.toml")
}

/// The settings of the shipped stage.
#[allow(clippy::too_many_arguments)]
fn from_stage(
    stage: &Stage,
    image: &str,
    from: &str,
    scripts: &[String],
    lines: &mut Vec<String>,
    carried: &mut Vec<String>,
    not_carried: &mut Vec<String>,
    entrypoint_set: &mut bool,
) {
    if !image.is_empty() {
        lines.push(format!("base = {}", toml_string(image)));
        carried.push(format!("base {image} from {from}"));
    }
    if let Some(entrypoint) = &stage.entrypoint {
        match exec_form(entrypoint, scripts, true) {
            Some(argv) => {
                lines.push(format!("entrypoint = {}", toml_list(&argv)));
                carried.push(format!("ENTRYPOINT as {}", shell_words::join(&argv)));
                *entrypoint_set = true;
            }
            None => not_carried.push(format!(
                "ENTRYPOINT {}: it needs a shell, and the image has none; write it as a list of words in `entrypoint`",
                entrypoint.last().cloned().unwrap_or_default()
            )),
        }
    }
    if let Some(cmd) = &stage.cmd {
        // Without an ENTRYPOINT, CMD is the program; with one, its arguments.
        let program = stage.entrypoint.is_none();
        match exec_form(cmd, scripts, program) {
            Some(argv) if program => {
                lines.push(format!("entrypoint = {}", toml_list(&argv)));
                carried.push(format!(
                    "CMD as the entrypoint {}",
                    shell_words::join(&argv)
                ));
                *entrypoint_set = true;
            }
            Some(argv) => {
                lines.push(format!("cmd = {}", toml_list(&argv)));
                carried.push("CMD".into());
            }
            None => not_carried.push(
                "CMD needs a shell, and the image has none; write it as a list of words in `cmd`"
                    .into(),
            ),
        }
    }
    let mut env = Vec::new();
    for (k, v) in &last_wins(&stage.env) {
        match dropped_env(k).or(holds_credentials(v).then_some(CREDENTIALS)) {
            Some(why) => not_carried.push(format!("ENV {k}: {why}")),
            None => env.push(format!("{} = {}", toml_key(k), toml_string(v))),
        }
    }
    if !env.is_empty() {
        lines.push(format!("env = {{ {} }}", env.join(", ")));
        carried.push(format!("ENV ({} variables)", env.len()));
    }
    if let Some(user) = &stage.user {
        let numeric = user
            .split(':')
            .all(|p| p.chars().all(|c| c.is_ascii_digit()));
        if numeric || user == "root" {
            lines.push(format!("user = {}", toml_string(user)));
            carried.push(format!("USER {user}"));
        } else if let Some(ids) = created_user(&stage.runs, user) {
            lines.push(format!("user = {}", toml_string(&ids)));
            carried.push(format!(
                "USER {user} as {ids} (the ids its useradd gave it)"
            ));
        } else {
            not_carried.push(format!(
                "USER {user}: a name only its RUN steps create; lockship runs as the nonroot user 65532 unless `user` names one the base has, or \"UID:GID\""
            ));
        }
    }
    if let Some(workdir) = &stage.workdir {
        lines.push(format!("workdir = {}", toml_string(workdir)));
        carried.push(format!("WORKDIR {workdir}"));
    }
    let mut labels = Vec::new();
    for (k, v) in &last_wins(&stage.labels) {
        if holds_credentials(v) {
            not_carried.push(format!("LABEL {k}: {CREDENTIALS}"));
        } else {
            labels.push(format!("{} = {}", toml_key(k), toml_string(v)));
        }
    }
    if !labels.is_empty() {
        lines.push(format!("labels = {{ {} }}", labels.join(", ")));
        carried.push(format!("LABEL ({})", labels.len()));
    }
    if !stage.expose.is_empty() {
        not_carried.push(format!(
            "EXPOSE {}: documentation only (ports are published by whoever runs the image); record it as a label if you want it in the image",
            stage.expose.join(" ")
        ));
    }
    for run in &stage.runs {
        let apt = apt_packages(run);
        let words = run.split_whitespace().collect::<Vec<_>>();
        let note = if !apt.is_empty() {
            format!(
                "RUN {}: for run-time libraries, use a Debian-package base ([tool.lockship.base] debian = \"bookworm\", packages = [\"python3\", {}]) or a base image that has them",
                short(run),
                apt.iter().map(|p| toml_string(p)).collect::<Vec<_>>().join(", ")
            )
        } else if words
            .iter()
            .any(|w| matches!(*w, "pip" | "pip3" | "uv" | "poetry" | "pipenv"))
        {
            format!(
                "RUN {}: dependencies come from the lock; nothing to do",
                short(run)
            )
        } else if words
            .iter()
            .any(|w| w.ends_with("useradd") || w.ends_with("adduser"))
        {
            format!(
                "RUN {}: lockship writes the image's user (`user`)",
                short(run)
            )
        } else {
            format!(
                "RUN {}: not carried over; run it before the build (its output becomes project files, `include`) or when the app starts",
                short(run)
            )
        };
        not_carried.push(note);
    }
}

/// A builder stage and a test stage, when the Dockerfile has them.
fn other_stages(
    project: &Project,
    stages: &[Stage],
    shipped: usize,
    base: &str,
    tables: &mut Vec<String>,
    carried: &mut Vec<String>,
) {
    for (i, stage) in stages.iter().enumerate() {
        if i == shipped {
            continue;
        }
        let (merged, image) = dockerfile::resolved(stages, i);
        let runs = merged.runs.join(" ");
        let builds_wheels = runs.contains("pip wheel")
            || runs.contains("uv build")
            || runs.contains("build-essential")
            || runs.contains("gcc");
        if builds_wheels && !image.is_empty() && image != base && i < shipped {
            tables.push(format!(
                "[tool.lockship.builder]\nimage = {}\n",
                toml_string(&image)
            ));
            carried.push(format!(
                "builder stage {} as [tool.lockship.builder] (only packages without a wheel are built there)",
                stage.alias.clone().unwrap_or_else(|| (i + 1).to_string())
            ));
        }
        if stage.runs.iter().any(|r| r.contains("pytest")) {
            let mut t = String::from("[tool.lockship.targets.test]\n");
            let groups = dependency_groups(project);
            if let Some(group) = groups
                .iter()
                .find(|g| matches!(g.as_str(), "test" | "tests" | "dev"))
            {
                t.push_str(&format!(
                    "groups = {}\n",
                    toml_list(std::slice::from_ref(group))
                ));
            }
            if project.dir.join("tests").is_dir() {
                t.push_str("include = [\"tests/**/*.py\"]\n");
            }
            t.push_str("smoke = [\"python -m pytest -q tests\"]\n");
            tables.push(t);
            carried.push(format!(
                "test stage {} as [tool.lockship.targets.test] (`lockship test --target test`)",
                stage.alias.clone().unwrap_or_else(|| (i + 1).to_string())
            ));
        }
    }
}

fn dependency_groups(project: &Project) -> Vec<String> {
    project
        .pyproject
        .as_ref()
        .and_then(|p| p.get("dependency-groups"))
        .and_then(|g| g.as_table())
        .map(|t| t.keys().cloned().collect())
        .unwrap_or_default()
}

fn short(text: &str) -> String {
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(59).collect::<String>())
    } else {
        text.to_string()
    }
}

/// A bare key when TOML allows it, else quoted.
fn toml_key(key: &str) -> String {
    if !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        key.to_string()
    } else {
        toml_string(key)
    }
}

/// The package with a `__main__.py` (src layout or flat), for `python -m`.
fn main_module(dir: &Path) -> Option<String> {
    for root in [dir.join("src"), dir.to_path_buf()] {
        let Ok(entries) = std::fs::read_dir(&root) else {
            continue;
        };
        let mut found: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("__main__.py").is_file())
            .filter_map(|e| e.file_name().to_str().map(String::from))
            .collect();
        found.sort();
        if let Some(first) = found.into_iter().next() {
            return Some(first);
        }
    }
    None
}

/// The module a smoke command can import: the first console script's, else the package with
/// the project's name.
fn smoke_module(project: &Project, dir: &Path) -> Option<String> {
    if let Some(target) = project.scripts.values().next() {
        let module = target.split(':').next()?.split('.').next()?.trim();
        if !module.is_empty() {
            return Some(module.to_string());
        }
    }
    let name = project.name.replace('-', "_").to_ascii_lowercase();
    [dir.join("src").join(&name), dir.join(&name)]
        .iter()
        .any(|p| p.join("__init__.py").is_file())
        .then_some(name)
}

/// Appends `table` to pyproject.toml, whole or not at all, after checking the result parses
/// and configures a project lockship accepts.
fn append(pyproject: &Path, table: &str) -> Result<(), Error> {
    let io = |source| Error::Io {
        path: pyproject.to_path_buf(),
        source,
    };
    let mut text = std::fs::read_to_string(pyproject).map_err(io)?;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text.push('\n');
    text.push_str(table);
    let check: toml::Value = toml::from_str(&text).map_err(|e| ProjectError::Invalid {
        path: pyproject.to_path_buf(),
        message: format!(
            "the table init wrote does not parse (a bug): {}",
            e.message()
        ),
    })?;
    drop(check);
    // The file's own permissions kept; a symlinked pyproject.toml stays a symlink.
    lockship_sys::scratch::write_whole(pyproject, text.as_bytes(), None).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_with_credentials_are_not_carried_over() {
        assert!(holds_credentials("https://ci:t0ken@pypi.internal/simple"));
        assert!(holds_credentials(
            "--index-url https://ci:t0ken@host/simple"
        ));
        assert!(!holds_credentials("https://host/simple"));
        assert!(!holds_credentials("info"));
        let stage = Stage {
            env: vec![
                ("INDEX".into(), "https://ci:t0ken@host/simple".into()),
                ("LEVEL".into(), "info".into()),
            ],
            labels: vec![("src".into(), "https://u:p@git.host/x".into())],
            ..Stage::default()
        };
        let (mut lines, mut carried, mut not_carried, mut set) =
            (Vec::new(), Vec::new(), Vec::new(), false);
        from_stage(
            &stage,
            "",
            "Dockerfile",
            &[],
            &mut lines,
            &mut carried,
            &mut not_carried,
            &mut set,
        );
        let table = lines.join("\n");
        assert!(
            !table.contains("t0ken") && !table.contains("u:p@"),
            "{table}"
        );
        assert!(table.contains(r#"LEVEL = "info""#), "{table}");
        let said = not_carried.join("\n");
        assert!(
            said.contains("ENV INDEX: its value holds a URL with credentials"),
            "{said}"
        );
        assert!(
            said.contains("LABEL src: its value holds a URL with credentials"),
            "{said}"
        );
        assert!(!said.contains("t0ken"), "{said}");
    }
}
