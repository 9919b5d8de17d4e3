//! Credentials for package indexes, from where each tool's users already keep them: uv's
//! `UV_INDEX_<NAME>_USERNAME`/`_PASSWORD`, poetry's `POETRY_HTTP_BASIC_<SOURCE>_USERNAME`/
//! `_PASSWORD`, and netrc. (User info in an index URL, pipenv's `${VAR}` in a Pipfile source and
//! `PIP_INDEX_URL` included, is taken off the URL by the HTTP client itself.) The CLI gathers
//! the variables and the netrc path; this module only matches them to indexes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;

/// A user name and password, never printed.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct UserPass {
    pub username: Option<String>,
    pub password: Option<String>,
}

impl std::fmt::Debug for UserPass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "UserPass({:?}, {})",
            self.username,
            if self.password.is_some() { "****" } else { "-" }
        )
    }
}

/// Every credential source the CLI found, by the name the variable gives the index.
#[derive(Clone, Debug, Default)]
pub struct IndexCredentials {
    /// `UV_INDEX_<NAME>_USERNAME` / `_PASSWORD`, keyed by NAME as the variable spells it.
    pub uv: BTreeMap<String, UserPass>,
    /// `POETRY_HTTP_BASIC_<SOURCE>_USERNAME` / `_PASSWORD`, keyed by SOURCE.
    pub poetry: BTreeMap<String, UserPass>,
    /// The netrc file: `NETRC`, else `~/.netrc` (read only when an index needs it).
    pub netrc: Option<PathBuf>,
}

/// Credentials found for an index, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub username: String,
    pub password: String,
    /// For messages: `UV_INDEX_PRIVATE_USERNAME/_PASSWORD`, `netrc (/root/.netrc)`.
    pub from: String,
}

/// How a variable names an index: upper case, every character that is not a letter or a digit
/// as `_` (uv's rule; poetry's `http-basic.my-source` maps the same way).
pub fn env_name(index_name: &str) -> String {
    index_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

impl IndexCredentials {
    /// Credentials for the index at `url`, named `names` in the project's uv indexes or poetry
    /// sources: uv's variables, then poetry's, then netrc for the URL's host. Also returns every
    /// place looked, for the message when the index refuses.
    pub fn lookup(&self, url: &str, names: &[&str]) -> (Option<Found>, Vec<String>) {
        let mut looked = Vec::new();
        for name in names {
            let key = env_name(name);
            for (prefix, map) in [("UV_INDEX", &self.uv), ("POETRY_HTTP_BASIC", &self.poetry)] {
                let vars = format!("{prefix}_{key}_USERNAME/_PASSWORD");
                if let Some(found) = map.get(&key).and_then(|up| complete(up, &vars)) {
                    return (Some(found), looked);
                }
                looked.push(vars);
            }
        }
        let host = url::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase));
        match (&self.netrc, host) {
            (Some(path), Some(host)) => {
                let shown = format!("netrc ({})", path.display());
                let found = std::fs::read(path)
                    .ok()
                    .and_then(|bytes| netrc::Netrc::from_str(&String::from_utf8_lossy(&bytes)).ok())
                    .and_then(|rc| {
                        let entry = rc.hosts.get(&host).or_else(|| rc.hosts.get("default"))?;
                        Some(Found {
                            username: entry.login.clone(),
                            password: entry.password.clone(),
                            from: shown.clone(),
                        })
                    });
                if found.is_some() {
                    return (found, looked);
                }
                looked.push(format!("{shown}, no entry for {host}"));
            }
            (None, _) => looked.push("netrc (no NETRC and no ~/.netrc)".into()),
            (Some(_), None) => {}
        }
        (None, looked)
    }
}

/// uv sends a user name alone (tokens as user names) and poetry a password with an empty user;
/// either half is enough.
fn complete(up: &UserPass, from: &str) -> Option<Found> {
    if up.username.is_none() && up.password.is_none() {
        return None;
    }
    Some(Found {
        username: up.username.clone().unwrap_or_default(),
        password: up.password.clone().unwrap_or_default(),
        from: from.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(user: &str, pass: &str) -> UserPass {
        UserPass {
            username: Some(user.into()),
            password: Some(pass.into()),
        }
    }

    #[test]
    fn names_map_to_variables_and_netrc_is_the_fallback() {
        let dir = tempfile::tempdir().unwrap();
        let netrc = dir.path().join("netrc");
        std::fs::write(
            &netrc,
            "machine nexus.example login ci password n3xus\nmachine other.example login a password b\n",
        )
        .unwrap();
        let creds = IndexCredentials {
            uv: [("MY_INDEX".to_string(), up("uvuser", "uvpass"))].into(),
            poetry: [("GITLAB".to_string(), up("gitlab-ci-token", "job-token"))].into(),
            netrc: Some(netrc.clone()),
        };
        let (found, _) = creds.lookup("https://uv.example/simple", &["my-index"]);
        assert_eq!(found.unwrap().from, "UV_INDEX_MY_INDEX_USERNAME/_PASSWORD");
        let (found, _) = creds.lookup("https://gitlab.example/api/v4/simple", &["gitlab"]);
        let found = found.unwrap();
        assert_eq!(
            (found.username.as_str(), found.password.as_str()),
            ("gitlab-ci-token", "job-token")
        );
        let (found, _) = creds.lookup("https://NEXUS.example:8443/repository/pypi/simple", &[]);
        let found = found.unwrap();
        assert_eq!(
            (found.username.as_str(), found.password.as_str()),
            ("ci", "n3xus")
        );
        assert!(found.from.starts_with("netrc ("));

        let (found, looked) = creds.lookup("https://none.example/simple", &["private"]);
        assert!(found.is_none());
        assert_eq!(looked[0], "UV_INDEX_PRIVATE_USERNAME/_PASSWORD");
        assert_eq!(looked[1], "POETRY_HTTP_BASIC_PRIVATE_USERNAME/_PASSWORD");
        assert!(
            looked[2].ends_with("no entry for none.example"),
            "{looked:?}"
        );
    }

    #[test]
    fn a_password_never_shows_in_debug_output() {
        let shown = format!("{:?}", up("user", "s3cret-value"));
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}
