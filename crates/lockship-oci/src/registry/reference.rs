//! Image references without a regex. oci-spec parses them with one large Unicode regex that
//! takes ~40 ms to compile, once per process: most of a warm build's time. The common shapes
//! (ASCII names, tags, sha256 digests) are checked here against the distribution grammar and
//! built with oci-spec's own constructors; anything else (an error, a Unicode tag, a tag and a
//! digest together) goes to oci-spec's parser, so the answer and its error are always its own.
//! A test holds the two to the same answers.

use oci_spec::distribution::Reference;

/// The longest repository name the distribution spec allows.
const NAME_MAX: usize = 255;

/// `text` as oci-spec would parse it, when it is in the common shape; None otherwise.
pub(super) fn fast(text: &str) -> Option<Reference> {
    let (rest, digest) = match text.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (text, None),
    };
    let (name, tag) = match rest.rfind(':') {
        Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
        _ => (rest, None),
    };
    if !is_name(name) {
        return None;
    }
    let (registry, repository) = split_domain(name);
    if repository.len() > NAME_MAX {
        return None;
    }
    match (tag, digest) {
        (Some(tag), None) if is_tag(tag) => {
            Some(Reference::with_tag(registry, repository, tag.to_string()))
        }
        (None, Some(digest)) if is_sha256(digest) => Some(Reference::with_digest(
            registry,
            repository,
            digest.to_string(),
        )),
        (None, None) => Some(Reference::with_tag(
            registry,
            repository,
            "latest".to_string(),
        )),
        _ => None,
    }
}

/// `[domain/]component(/component)*`.
fn is_name(name: &str) -> bool {
    let mut parts = name.split('/');
    let Some(first) = parts.next() else {
        return false;
    };
    let rest: Vec<&str> = parts.collect();
    let first_ok = if rest.is_empty() {
        is_component(first)
    } else {
        is_component(first) || is_domain(first)
    };
    first_ok && rest.iter().all(|c| is_component(c))
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*`: lowercase alphanumeric runs joined by one `.`,
/// one `_`, `__`, or any number of `-`.
fn is_component(c: &str) -> bool {
    let bytes = c.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let separator = &c[start..i];
        let ok = matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `label(.label)*(:port)?`, a label being ASCII alphanumerics with inner `-`.
fn is_domain(d: &str) -> bool {
    let (host, port) = match d.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (d, None),
    };
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    host.split('.').all(|label| {
        let b = label.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
    })
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}` (ASCII only: a Unicode tag goes to oci-spec).
fn is_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    !b.is_empty()
        && b.len() <= 128
        && word(b[0])
        && b.iter().all(|&c| word(c) || c == b'.' || c == b'-')
}

/// `sha256:` and 64 lowercase hex digits.
fn is_sha256(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Docker Hub's defaults, as the distribution spec has them: a first component without `.` or
/// `:` (and not `localhost`) is a path on `docker.io`, and an official image is `library/`.
fn split_domain(name: &str) -> (String, String) {
    let (mut domain, mut remainder) = match name.split_once('/') {
        Some((left, right)) if left.contains('.') || left.contains(':') || left == "localhost" => {
            (left.to_string(), right.to_string())
        }
        _ => ("docker.io".to_string(), name.to_string()),
    };
    if domain == "index.docker.io" {
        domain = "docker.io".to_string();
    }
    if domain == "docker.io" && !remainder.contains('/') {
        remainder = format!("library/{remainder}");
    }
    (domain, remainder)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    /// Every input the fast path takes, it takes as oci-spec does; what it leaves, oci-spec
    /// either refuses or parses in a shape the fast path does not claim.
    #[test]
    fn the_fast_path_agrees_with_oci_spec() {
        let hex = "a".repeat(64);
        let cases = [
            "python".to_string(),
            "python:3.12-slim".into(),
            "library/python:3.12".into(),
            "docker.io/python".into(),
            "index.docker.io/python:3".into(),
            "index.docker.io/team/app:3".into(),
            "127.0.0.1:5000/tests/app:main".into(),
            "localhost/app".into(),
            "localhost:5000/a/b/c:v1.2_3-x".into(),
            "ghcr.io/owner/repo".into(),
            "my-registry.example.com:443/team/app@sha256:".to_string() + &hex,
            format!("app@sha256:{hex}"),
            format!("app:tag@sha256:{hex}"),
            format!("app@sha256:{}", "A".repeat(64)),
            format!("app@sha512:{}", "a".repeat(128)),
            "app@sha256:abc".into(),
            "a__b/c--d/e.f/g_h:t".into(),
            "a___b".into(),
            "a..b".into(),
            "a._b".into(),
            "A/b".into(),
            "Upper.example/b".into(),
            "-a".into(),
            "a-".into(),
            "a/".into(),
            "/a".into(),
            "a//b".into(),
            "".into(),
            ":tag".into(),
            "a:".into(),
            "a:-tag".into(),
            "a:.tag".into(),
            "a:_tag".into(),
            format!("a:{}", "t".repeat(128)),
            format!("a:{}", "t".repeat(129)),
            "a:täg".into(),
            "host:port/a".into(),
            "host:/a".into(),
            "host.-x/a".into(),
            "ex-ample.com/a".into(),
            format!("a/{}", "b".repeat(260)),
            "a b".into(),
            "a@".into(),
            "a:b:c".into(),
            "host:5000/a:b".into(),
            "host:5000".into(),
            "x/y@sha256:".to_string() + &hex + "x",
        ];
        for case in &cases {
            let slow = Reference::from_str(case).ok();
            // What the fast path leaves goes to oci-spec: fine, as long as the common shapes
            // are taken (below).
            if let Some(fast) = fast(case) {
                assert_eq!(Some(&fast), slow.as_ref(), "{case}");
            }
        }
        for common in [
            "python:3.12-slim",
            "127.0.0.1:5000/tests/app:main",
            "ghcr.io/owner/repo",
        ] {
            assert!(fast(common).is_some(), "{common}");
        }
        assert!(fast(&format!("app@sha256:{hex}")).is_some());
    }

    /// Short strings over the grammar's alphabet, from a fixed generator: wherever the fast
    /// path answers, oci-spec gives the same answer.
    #[test]
    fn the_fast_path_agrees_with_oci_spec_on_generated_references() {
        let alphabet = b"ab0Z.-_/:@";
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut taken = 0;
        for _ in 0..50_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = 1 + (state % 10) as usize;
            let text: String = (0..len)
                .map(|i| alphabet[((state >> (i * 4)) % alphabet.len() as u64) as usize] as char)
                .collect();
            if let Some(fast) = fast(&text) {
                taken += 1;
                assert_eq!(Some(fast), Reference::from_str(&text).ok(), "{text}");
            }
        }
        assert!(
            taken > 1000,
            "the generator reaches the fast path ({taken})"
        );
    }
}
