//! The configuration reference: every key of `[tool.lockship]` and its tables, with its type,
//! default and meaning, in one table the docs page (`docs/configuration.md`) is generated from.
//! Tests hold it to the code: the keys listed are exactly the keys the config structs accept
//! (serde names them when refusing an unknown one), and the page in the repository is exactly
//! what [`markdown`] renders (`LOCKSHIP_UPDATE_DOCS=1 cargo test` rewrites it).

/// One table of the configuration.
pub struct Table {
    /// As written in pyproject.toml.
    pub header: &'static str,
    pub about: &'static str,
    pub keys: &'static [Key],
}

/// One key.
pub struct Key {
    pub name: &'static str,
    pub kind: &'static str,
    pub default: &'static str,
    pub meaning: &'static str,
}

const fn key(
    name: &'static str,
    kind: &'static str,
    default: &'static str,
    meaning: &'static str,
) -> Key {
    Key {
        name,
        kind,
        default,
        meaning,
    }
}

pub const TABLES: &[Table] = &[
    Table {
        header: "[tool.lockship]",
        about: "In `pyproject.toml`, or at the top level of a standalone `lockship.toml`. Unknown keys are errors, so a typo never passes silently.",
        keys: &[
            key("base", "string or table", "`\"python:3.12-slim\"`", "The base image: a registry reference (tag or digest), `\"oci-layout://DIR[:TAG|@sha256:…]\"` for an image in an OCI layout on disk (relative to the project), or the `[tool.lockship.base]` table below for a distroless base made from Debian packages. Its Python version, libc and architecture decide which wheels fit. `--base` overrides it."),
            key("app", "`\"wheel\"` or `\"copy\"`", "`\"wheel\"` when the project declares a build system, else `\"copy\"`", "How the project itself goes in: built into a wheel by its own PEP 517 backend and installed, or its files (`include`) copied into the workdir."),
            key("include", "list of globs", "`[\"**/*.py\"]`", "For `app = \"copy\"`: the project files copied into the workdir."),
            key("entrypoint", "string or list", "the project's only console script, else the venv's `python`", "The image's entrypoint. A string is split as a shell would split it (no shell runs)."),
            key("cmd", "string or list", "none", "The image's command (arguments to the entrypoint)."),
            key("env", "table of strings", "`{}`", "Environment variables set in the image, after `PATH`, `VIRTUAL_ENV`, `PYTHONUNBUFFERED` and `PYTHONDONTWRITEBYTECODE`."),
            key("workdir", "string", "`\"/app\"`", "The image's working directory."),
            key("user", "string", "a new user `nonroot`, uid and gid 65532", "Who the container runs as: a name the base knows, `\"UID:GID\"`, or `\"root\"`."),
            key("labels", "table of strings", "`{}`", "Image labels, added to the ones lockship writes (created, title, version, base, lock digest, target, source, revision)."),
            key("lock", "path", "the first of `uv.lock`, `poetry.lock`, `pylock.toml`, `Pipfile.lock`, `requirements.txt`", "The lock file, relative to the project."),
            key("allow-unhashed", "boolean", "`false`", "Accept packages the lock pins without hashes, taking their files' sha256 from the index (listed in a warning)."),
            key("venv", "string", "`\"/opt/venv\"`", "Where the virtual environment is in the image."),
            key("source", "string", "the git remote `origin`, user info stripped", "The `org.opencontainers.image.source` label."),
            key("bytecode", "boolean", "`true`", "Put unchecked-hash `.pyc` files (PEP 552) in each package's layer, compiled by the base's own interpreter. `--no-bytecode` turns it off for one build."),
            key("compression", "`\"gzip\"`, `\"gzip-single\"` or `\"zstd\"`", "`\"gzip\"`", "How lockship compresses the layers it writes. `gzip`: several gzip members, files from wheels copied without compressing them again (fastest to write, read by everything); `gzip-single`: one member, for readers that stop after the first (Python's `tarfile` in stream mode, Rust's `flate2::read::GzDecoder`); `zstd`: smaller and faster to unpack, for runtimes that read it (see the compatibility matrix in `how-it-works.md`). The base's layers stay as they are."),
            key("platforms", "list of strings", "this machine's platform", "Platforms to build (`[\"linux/amd64\", \"linux/arm64\"]`): one image each, under one OCI index. `--platform` overrides it."),
            key("smoke", "list of commands", "`[]`", "Commands run inside the built image before anything is pushed (`build --push`, `push`) and by `lockship test`; each a string (split as a shell would) or a list."),
            key("targets", "tables", "none", "Image variants, `[tool.lockship.targets.NAME]` below."),
            key("builder", "table", "none", "Where packages with no wheel for the target are built, `[tool.lockship.builder]` below."),
        ],
    },
    Table {
        header: "[tool.lockship.base]",
        about: "A distroless base assembled from Debian packages, with no registry: lockship verifies the suite's signed `InRelease`, resolves the packages' dependencies, and writes one layer. The resolved set is pinned in `lockship-base.lock`; `--upgrade-base` resolves it again.",
        keys: &[
            key("debian", "string", "required", "The suite: `\"bookworm\"`, `\"trixie\"`."),
            key("packages", "list of strings", "`[]`", "Packages to install with their dependencies (`\"python3\"`, and what the app needs at run time: `\"libpq5\"`…)."),
            key("mirror", "URL", "the host's apt sources", "Where the suite and `SUITE-updates` are fetched from (a snapshot archive keeps every version)."),
            key("security-mirror", "URL", "the host's apt sources", "Where `SUITE-security` is fetched from."),
            key("exclude", "list of strings", "`[]`", "Packages that Depends pull in but the image does without (`\"dpkg\"`, `\"tar\"`); refused when a remaining package needs them."),
            key("keyring", "path", "`/usr/share/keyrings/debian-archive-keyring.gpg`", "The OpenPGP keyring `InRelease` files are verified against."),
        ],
    },
    Table {
        header: "[tool.lockship.builder]",
        about: "The container that builds sdists (and an app with extension modules) into wheels for the target. It never reaches the image.",
        keys: &[
            key("image", "string", "none (required for a registry base that needs a builder)", "For a registry base: the image with compilers and the same Python (`\"python:3.12\"` beside a `\"python:3.12-slim\"` base)."),
            key("packages", "list of strings", "`[]`", "For a Debian-package base: packages the builder gets beyond the base's, `build-essential` and `pythonX.Y-dev` (`\"libpq-dev\"`…)."),
        ],
    },
    Table {
        header: "[tool.lockship.targets.NAME]",
        about: "A variant of the production image (`--target NAME`): it adds to it, so every production layer is shared. Images of other targets are named `PROJECT:VERSION-NAME` in local outputs.",
        keys: &[
            key("groups", "list of strings", "`[]`", "Dependency groups to add: `[dependency-groups]`, poetry's `[tool.poetry.group.NAME]`, a Pipfile's `dev-packages` (`\"dev\"`), a pylock.toml's dependency groups."),
            key("extras", "list of strings", "`[]`", "The project's extras to add."),
            key("include", "list of globs", "`[]`", "Project files copied into the workdir in a layer of their own (tests)."),
            key("env", "table of strings", "`{}`", "Environment variables, over the production ones."),
            key("entrypoint", "string or list", "production's", "The target's entrypoint."),
            key("cmd", "string or list", "production's", "The target's command."),
            key("smoke", "list of commands", "`[]`", "Smoke commands run after the production ones."),
        ],
    },
];

/// The reference as a Markdown page.
pub fn markdown() -> String {
    let mut out = String::from(
        "<!-- Generated from crates/lockship-engine/src/config_reference.rs; a test fails when it is stale. Rewrite it with: LOCKSHIP_UPDATE_DOCS=1 cargo test -p lockship-engine config_reference -->\n\n# Configuration reference\n\nEvery key lockship reads, with its type, its default and what it does. A worked example is in the [README](../README.md#configuration).\n",
    );
    for table in TABLES {
        out.push_str(&format!("\n## `{}`\n\n{}\n\n", table.header, table.about));
        out.push_str("| key | type | default | meaning |\n| --- | --- | --- | --- |\n");
        for k in table.keys {
            out.push_str(&format!(
                "| `{}` | {} | {} | {} |\n",
                k.name,
                k.kind,
                k.default,
                k.meaning.replace('|', "\\|")
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys a table accepts, as serde lists them when it refuses an unknown one.
    fn accepted(header: &str) -> Vec<String> {
        let toml_text = match header {
            "[tool.lockship]" => "[tool.lockship]\nno-such-key = 1\n".to_string(),
            "[tool.lockship.base]" => {
                "[tool.lockship.base]\ndebian = \"bookworm\"\nno-such-key = 1\n".to_string()
            }
            other => format!("{other}\nno-such-key = 1\n").replace("NAME", "x"),
        };
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("pyproject.toml"),
            format!("[project]\nname = \"x\"\nversion = \"1\"\n{toml_text}"),
        )
        .unwrap();
        let message = match crate::project::Project::load(dir.path()) {
            Ok(p) => p.base().err().map(|e| e.to_string()).unwrap_or_default(),
            Err(e) => e.to_string(),
        };
        // "(expected a)", "(expected a or b)", "(expected one of a, b, …)".
        let list = message
            .split_once("(expected ")
            .and_then(|(_, rest)| rest.strip_suffix(')'))
            .unwrap_or_else(|| panic!("{header}: the message did not list the keys: {message}"));
        let list = list.strip_prefix("one of ").unwrap_or(list);
        list.split(", ")
            .flat_map(|keys| keys.split(" or "))
            .map(String::from)
            .collect()
    }

    #[test]
    fn every_key_the_code_accepts_is_documented_and_no_other() {
        for table in TABLES {
            let mut documented: Vec<String> =
                table.keys.iter().map(|k| k.name.to_string()).collect();
            let mut code = accepted(table.header);
            documented.sort();
            code.sort();
            assert_eq!(documented, code, "{}", table.header);
        }
    }

    #[test]
    fn the_docs_page_is_current() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
        let rendered = markdown();
        if std::env::var_os("LOCKSHIP_UPDATE_DOCS").is_some() {
            std::fs::write(&path, &rendered).unwrap();
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == rendered,
            "docs/configuration.md is stale: run LOCKSHIP_UPDATE_DOCS=1 cargo test -p lockship-engine config_reference"
        );
    }
}
