//! URLs as lockship shows and records them. User info (`user:password@`) is a credential: it is
//! split off into the credential store before any request, replaced by `****` in messages, and
//! dropped entirely from anything written down (labels, cache files, reports).

use std::fmt;

/// A URL fit for messages and logs: the password, or a lone user name (often a token, as in
/// `https://TOKEN@host/…`), is shown as `****`. The only way to make one is [`redact`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redacted(String);

impl fmt::Display for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Redacted {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where the user info of `url` sits: the byte range of `user[:password]` (without the `@`),
/// for `scheme://user:pass@host/…` and for scp-like git remotes (`user@host:path`).
fn userinfo_span(url: &str) -> Option<(usize, usize)> {
    let start = match url.find("://") {
        Some(i) => i + 3,
        None => {
            // `git@host:path`: an `@` before the first `:` and no `/` before it.
            let at = url.find('@')?;
            let colon = url.find(':')?;
            if at < colon && !url[..at].contains('/') {
                return Some((0, at));
            }
            return None;
        }
    };
    let rest = &url[start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    // The last `@` of the authority ends the user info (user names may hold an escaped `@`).
    let at = rest[..authority_end].rfind('@')?;
    Some((start, start + at))
}

/// `url` for a message: `https://user:****@host/x`, or `https://****@host/x` for a lone user.
pub fn redact(url: &str) -> Redacted {
    match userinfo_span(url) {
        None => Redacted(url.to_string()),
        Some((start, end)) => {
            let info = &url[start..end];
            let shown = match info.split_once(':') {
                Some((user, _)) if !user.is_empty() => format!("{user}:****"),
                _ => "****".to_string(),
            };
            Redacted(format!("{}{shown}{}", &url[..start], &url[end..]))
        }
    }
}

/// `text` (a tool's output) with the user info of every URL in it hidden, as [`redact`] does.
pub fn redact_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        // The URL starts after the last delimiter before its scheme separator.
        let start = rest[..at]
            .rfind(|c: char| c.is_whitespace() || "\"'<>([{=,".contains(c))
            .map_or(0, |i| i + 1);
        let end = rest[at..]
            .find(|c: char| c.is_whitespace() || "\"'<>)]},".contains(c))
            .map_or(rest.len(), |i| at + i);
        out.push_str(&rest[..start]);
        out.push_str(redact(&rest[start..end]).as_str());
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// `url` (which carries no user info) as shown when requests to it go with `user`'s
/// credentials: `https://user:****@host/x`.
pub fn redact_with_user(url: &str, user: &str) -> Redacted {
    let Some(at) = url.find("://").map(|i| i + 3) else {
        return redact(url);
    };
    let user: String = percent_encoding::utf8_percent_encode(user, USERINFO).to_string();
    Redacted(format!("{}{user}:****@{}", &url[..at], &url[at..]))
}

/// Characters that cannot stand in the user part of a URL as they are.
const USERINFO: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'@')
    .add(b':')
    .add(b'/')
    .add(b'?')
    .add(b'#')
    .add(b'%');

/// `url` with no user info at all, for what lockship records: `https://host/x`, `host:path`.
pub fn strip_userinfo(url: &str) -> String {
    match userinfo_span(url) {
        None => url.to_string(),
        Some((start, end)) => format!("{}{}", &url[..start], &url[end + 1..]),
    }
}

/// A URL split into what may be sent anywhere and the credentials it carried (percent-decoded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitUrl {
    pub url: String,
    pub credentials: Option<(String, String)>,
}

/// Splits `scheme://user:pass@host/…` into `scheme://host/…` and `(user, pass)`.
pub fn split_credentials(url: &str) -> SplitUrl {
    let credentials = userinfo_span(url)
        .filter(|_| url.contains("://"))
        .map(|(start, end)| {
            let info = &url[start..end];
            let (user, pass) = info.split_once(':').unwrap_or((info, ""));
            (percent_decode(user), percent_decode(pass))
        });
    SplitUrl {
        url: strip_userinfo(url),
        credentials,
    }
}

/// `%XX` escapes decoded (invalid UTF-8 replaced); `+` stays `+`, as in a URL path.
pub fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// The origin (scheme, host, port) credentials are bound to; None for what is not a URL.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Origin {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl Origin {
    pub fn of(url: &str) -> Option<Origin> {
        let parsed = ::url::Url::parse(url).ok()?;
        Some(Origin {
            scheme: parsed.scheme().to_string(),
            host: parsed.host_str()?.to_ascii_lowercase(),
            port: parsed.port_or_known_default(),
        })
    }
}

/// A source URL for the `org.opencontainers.image.source` label: no user info, and no query or
/// fragment (where CI systems and forges also put tokens).
pub fn source_label(url: &str) -> String {
    let clean = strip_userinfo(url.trim());
    let end = clean.find(['?', '#']).unwrap_or(clean.len());
    clean[..end].to_string()
}

#[cfg(test)]
mod tests {

    #[test]
    fn urls_in_text_lose_their_user_info() {
        let text = "ERROR: 401 for url: https://ci:s3cret@git.example/simple/six/ (\"http://tok@h/x\")\nno url here";
        let shown = redact_text(text);
        assert!(
            !shown.contains("s3cret") && !shown.contains("tok@"),
            "{shown}"
        );
        assert_eq!(
            shown,
            "ERROR: 401 for url: https://ci:****@git.example/simple/six/ (\"http://****@h/x\")\nno url here"
        );
    }
    use super::*;

    #[test]
    fn passwords_and_lone_tokens_are_hidden() {
        assert_eq!(
            redact("https://alice:s3cret@index.example/simple/").as_str(),
            "https://alice:****@index.example/simple/"
        );
        assert_eq!(
            redact("https://ghp_TOKEN@git.example/a.git").as_str(),
            "https://****@git.example/a.git"
        );
        assert_eq!(redact("https://:pw@host/x").as_str(), "https://****@host/x");
        assert_eq!(
            redact("https://host/a@b").as_str(),
            "https://host/a@b",
            "an @ in the path is not user info"
        );
        assert_eq!(
            redact("https://u:p%40ss@host@evil/x").as_str(),
            "https://u:****@evil/x",
            "the last @ of the authority ends the user info"
        );
        assert_eq!(redact("not a url").as_str(), "not a url");
    }

    #[test]
    fn records_carry_no_user_info() {
        assert_eq!(
            strip_userinfo("https://gitlab-ci-token:glcbt-XYZ@gitlab.example/team/app.git"),
            "https://gitlab.example/team/app.git"
        );
        assert_eq!(
            strip_userinfo("git@forge.example:team/app.git"),
            "forge.example:team/app.git"
        );
        assert_eq!(strip_userinfo("/srv/git/app.git"), "/srv/git/app.git");
        assert_eq!(
            source_label("https://u:p@forge.example/app.git?private_token=x#frag"),
            "https://forge.example/app.git"
        );
    }

    #[test]
    fn credentials_are_split_and_decoded() {
        let split = split_credentials("https://bob:p%40ss%3Aword@index.example:8443/simple");
        assert_eq!(split.url, "https://index.example:8443/simple");
        assert_eq!(
            split.credentials,
            Some(("bob".to_string(), "p@ss:word".to_string()))
        );
        assert_eq!(
            split_credentials("https://index.example/simple").credentials,
            None
        );
        assert_eq!(
            Origin::of("https://INDEX.example/a"),
            Origin::of("https://index.example:443/b")
        );
        assert_ne!(
            Origin::of("https://index.example/a"),
            Origin::of("http://index.example/a")
        );
        assert_ne!(
            Origin::of("https://index.example/a"),
            Origin::of("https://files.example/a")
        );
    }
}
