//! Registry authentication as Docker does it. The registry's `WWW-Authenticate` challenge on
//! `/v2/` says Basic or Bearer: Basic sends the Docker config's credentials with every request;
//! Bearer trades them (or nothing, for anonymous pulls, or an identity token) for a short-lived
//! token from the realm the registry names, scoped to the repositories and actions at hand.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine;

/// What a registry asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Challenge {
    /// No authentication (a 401 named no scheme lockship speaks).
    None,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// Parses a `WWW-Authenticate` header into its challenges: (scheme in lowercase, parameters
/// with lowercase names). Tolerant: what cannot be parsed is skipped.
pub fn parse_challenges(header: &str) -> Vec<(String, BTreeMap<String, String>)> {
    let bytes = header.as_bytes();
    let mut pos = 0;
    let mut out: Vec<(String, BTreeMap<String, String>)> = Vec::new();
    let is_token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    let skip = |pos: &mut usize, set: &[u8]| {
        while *pos < bytes.len() && set.contains(&bytes[*pos]) {
            *pos += 1;
        }
    };
    let token = |pos: &mut usize| -> String {
        let start = *pos;
        while *pos < bytes.len() && is_token(bytes[*pos]) {
            *pos += 1;
        }
        // Bytes, not `str` slicing: after skipping a stray byte, `start` may sit inside a
        // multi-byte character, and token characters are all ASCII.
        String::from_utf8_lossy(&bytes[start..*pos]).into_owned()
    };
    while pos < bytes.len() {
        skip(&mut pos, b" \t,");
        let scheme = token(&mut pos);
        if scheme.is_empty() {
            // Not a token character where a scheme should start: skip it.
            pos += 1;
            continue;
        }
        let mut params = BTreeMap::new();
        loop {
            skip(&mut pos, b" \t");
            let save = pos;
            let name = token(&mut pos);
            skip(&mut pos, b" \t");
            if name.is_empty() || pos >= bytes.len() || bytes[pos] != b'=' {
                pos = save;
                break;
            }
            pos += 1;
            skip(&mut pos, b" \t");
            let value = if pos < bytes.len() && bytes[pos] == b'"' {
                pos += 1;
                let mut value = String::new();
                let mut chars = header[pos..].char_indices();
                let mut end = header.len() - pos;
                while let Some((i, c)) = chars.next() {
                    match c {
                        '"' => {
                            end = i + 1;
                            break;
                        }
                        '\\' => {
                            if let Some((_, escaped)) = chars.next() {
                                value.push(escaped);
                            }
                        }
                        c => value.push(c),
                    }
                }
                pos += end;
                value
            } else {
                token(&mut pos)
            };
            params.insert(name.to_ascii_lowercase(), value);
            skip(&mut pos, b" \t");
            if pos < bytes.len() && bytes[pos] == b',' {
                pos += 1;
            } else {
                break;
            }
        }
        out.push((scheme.to_ascii_lowercase(), params));
    }
    out
}

/// The challenge lockship answers: Bearer when offered (with a realm), else Basic.
pub(super) fn challenge(header: &str) -> Challenge {
    let all = parse_challenges(header);
    for (scheme, params) in &all {
        if scheme == "bearer" {
            if let Some(realm) = params.get("realm").filter(|r| !r.is_empty()) {
                return Challenge::Bearer {
                    realm: realm.clone(),
                    service: params.get("service").cloned(),
                };
            }
        }
    }
    if all.iter().any(|(scheme, _)| scheme == "basic") {
        Challenge::Basic
    } else {
        Challenge::None
    }
}

/// A registry credential from the Docker config file the caller names (and the credential
/// helpers it lists).
#[derive(Clone)]
pub(super) enum Credential {
    Anonymous,
    Password {
        user: String,
        password: String,
    },
    /// A refresh token (`docker login` to registries with OAuth2 identity tokens).
    IdentityToken(String),
}

impl std::fmt::Debug for Credential {
    // Never print a secret, even in debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Credential::Anonymous => "Anonymous",
            Credential::Password { .. } => "Password(****)",
            Credential::IdentityToken(_) => "IdentityToken(****)",
        })
    }
}

impl Credential {
    /// The credential the first of `files` (Docker `config.json` or Podman `auth.json`) with
    /// an entry for `registry` (a host, with port if any) holds. No such file: anonymous, as
    /// `docker pull` does.
    pub(super) fn for_registry(files: &[PathBuf], registry: &str) -> Credential {
        // Docker Hub's credentials are stored under its v1 address.
        let server = if registry == "docker.io" || registry == "index.docker.io" {
            "https://index.docker.io/v1/"
        } else {
            registry
        };
        for path in files {
            let Ok(file) = std::fs::File::open(path) else {
                continue;
            };
            let reader = std::io::BufReader::new(file);
            match docker_credential::get_credential_from_reader(reader, server) {
                Ok(docker_credential::DockerCredential::UsernamePassword(user, password)) => {
                    return Credential::Password { user, password }
                }
                Ok(docker_credential::DockerCredential::IdentityToken(token)) => {
                    return Credential::IdentityToken(token)
                }
                Err(_) => continue,
            }
        }
        Credential::Anonymous
    }

    /// The `Authorization` value for Basic auth, when there is a user and password.
    pub(super) fn basic(&self) -> Option<String> {
        match self {
            Credential::Password { user, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            )),
            _ => None,
        }
    }
}

/// A bearer token and when to stop using it.
#[derive(Clone, Debug)]
pub(super) struct Token {
    pub(super) value: String,
    pub(super) expires: Instant,
}

#[derive(serde::Deserialize)]
struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

/// Reads a token server's answer: `token` or `access_token`, valid `expires_in` seconds
/// (60 when absent, as the token spec says), minus a margin for the requests in flight.
pub(super) fn parse_token(body: &[u8]) -> Option<Token> {
    let answer: TokenResponse = serde_json::from_slice(body).ok()?;
    let value = answer
        .token
        .or(answer.access_token)
        .filter(|t| !t.is_empty())?;
    let life = Duration::from_secs(answer.expires_in.unwrap_or(60).clamp(10, 86_400));
    Some(Token {
        value,
        expires: Instant::now() + life - Duration::from_secs(5),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_as_registries_send_them() {
        let header = r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:library/python:pull""#;
        assert_eq!(
            challenge(header),
            Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into())
            }
        );
        let all = parse_challenges(header);
        assert_eq!(all[0].1["scope"], "repository:library/python:pull");
        assert_eq!(
            challenge(r#"Basic realm="Registry Realm""#),
            Challenge::Basic
        );
        // Several challenges, spacing and escapes.
        let header =
            r#"Basic realm="a, b", Bearer  realm = "https://t.example/x\"y" , service=svc"#;
        let all = parse_challenges(header);
        assert_eq!(all.len(), 2, "{all:?}");
        assert_eq!(all[0].1["realm"], "a, b");
        assert_eq!(all[1].1["realm"], "https://t.example/x\"y");
        assert_eq!(all[1].1["service"], "svc");
        assert!(matches!(challenge(header), Challenge::Bearer { .. }));
        for junk in [
            "",
            "=",
            "\"",
            "Bearer realm=\"unterminated",
            "Bearer realm=",
            ",,,",
            "é Bearer realm=\"é\"",
        ] {
            let _ = challenge(junk);
        }
        assert_eq!(challenge("Bearer service=x"), Challenge::None, "no realm");
    }

    #[test]
    fn tokens_and_their_lifetime() {
        let t = parse_token(br#"{"token":"abc","expires_in":300}"#).unwrap();
        assert_eq!(t.value, "abc");
        assert!(t.expires > Instant::now() + Duration::from_secs(290));
        let t = parse_token(br#"{"access_token":"xyz"}"#).unwrap();
        assert_eq!(t.value, "xyz");
        assert!(parse_token(br#"{"token":""}"#).is_none());
        assert!(parse_token(b"not json").is_none());
    }

    #[test]
    fn the_first_auth_file_with_an_entry_answers() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, registry: &str, user: &str| {
            let path = dir.path().join(name);
            let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:pw"));
            let json = format!(r#"{{"auths": {{"{registry}": {{"auth": "{auth}"}}}}}}"#);
            std::fs::write(&path, json).unwrap();
            path
        };
        let podman = write("auth.json", "podman.test", "from-podman");
        let docker = write("config.json", "both.test", "from-docker");
        let both = write("auth2.json", "both.test", "from-second");
        let files = vec![dir.path().join("missing.json"), docker, podman, both];
        let user = |registry: &str| match Credential::for_registry(&files, registry) {
            Credential::Password { user, .. } => user,
            other => format!("{other:?}"),
        };
        assert_eq!(user("podman.test"), "from-podman");
        assert_eq!(user("both.test"), "from-docker");
        assert_eq!(user("nobody.test"), "Anonymous");
    }
}
