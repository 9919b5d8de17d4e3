//! Reads a PEP 503 project page (HTML), the form pypiserver, Artifactory, Nexus and GitLab's
//! package registry serve: each `<a>` is a file, its `href` the URL, whose `#sha256=` fragment
//! is the hash. Only what lockship uses is kept; anything else on the page is ignored.

use std::collections::BTreeMap;

/// One file a project page links to.
#[derive(Debug, PartialEq, Eq)]
pub struct HtmlFile {
    pub filename: String,
    /// As the page wrote it (relative to the page or to its `<base href>`), fragment removed.
    pub url: String,
    pub hashes: BTreeMap<String, String>,
}

/// A parsed page: its files, and the `<base href>` relative links resolve against, if any.
#[derive(Debug, Default)]
pub struct HtmlPage {
    pub base: Option<String>,
    pub files: Vec<HtmlFile>,
}

/// Parses a PEP 503 project page. Links without a file name are skipped; the page must at
/// least be HTML.
pub fn parse(body: &[u8]) -> Result<HtmlPage, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the page is not UTF-8".to_string())?;
    let dom = tl::parse(text, tl::ParserOptions::default())
        .map_err(|e| format!("not an HTML project page: {e}"))?;
    let parser = dom.parser();
    let mut page = HtmlPage::default();
    for node in dom.nodes() {
        let Some(tag) = node.as_tag() else { continue };
        let name = tag.name().as_utf8_str();
        let href = || {
            tag.attributes()
                .get("href")
                .flatten()
                .map(|v| html_escape::decode_html_entities(&v.as_utf8_str()).into_owned())
        };
        if name.eq_ignore_ascii_case("base") {
            if page.base.is_none() {
                page.base = href();
            }
            continue;
        }
        if !name.eq_ignore_ascii_case("a") {
            continue;
        }
        let Some(href) = href() else { continue };
        let (url, fragment) = match href.split_once('#') {
            Some((u, f)) => (u.to_string(), Some(f.to_string())),
            None => (href.clone(), None),
        };
        // The file name is the link's last path segment (what pip uses), else its text.
        let from_url = url
            .split(['?'])
            .next()
            .unwrap_or("")
            .rsplit('/')
            .next()
            .unwrap_or("")
            .to_string();
        let filename = if from_url.is_empty() {
            html_escape::decode_html_entities(&tag.inner_text(parser))
                .trim()
                .to_string()
        } else {
            // `+` in local versions is often sent as `%2B`.
            lockship_net::url::percent_decode(&from_url)
        };
        if filename.is_empty() {
            continue;
        }
        let mut hashes = BTreeMap::new();
        if let Some((algorithm, digest)) = fragment.as_deref().and_then(|f| f.split_once('=')) {
            hashes.insert(algorithm.to_ascii_lowercase(), digest.to_ascii_lowercase());
        }
        page.files.push(HtmlFile {
            filename,
            url,
            hashes,
        });
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What pypiserver 2.4 serves for a project (trimmed), plus the forms other servers use:
    /// entities in the href, absolute URLs, a `<base>`, `data-` attributes.
    const PAGE: &str = r#"<!DOCTYPE html>
<html lang="en"><head><title>Links for six</title><base href="https://files.example/root/"></head>
<body><h1>Links for six</h1>
<a href="/packages/six-1.16.0-py2.py3-none-any.whl#sha256=8ABB2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254">six-1.16.0-py2.py3-none-any.whl</a><br>
<a href="../../packages/six-1.16.0.tar.gz#md5=abc" data-requires-python="&gt;=2.7">six-1.16.0.tar.gz</a>
<a href="https://files.example/p/pkg-1.0%2Blocal-py3-none-any.whl?a=1&amp;b=2#sha256=00">x</a>
<a name="anchor">no href</a>
</body></html>"#;

    #[test]
    fn reads_links_hashes_and_base() {
        let page = parse(PAGE.as_bytes()).unwrap();
        assert_eq!(page.base.as_deref(), Some("https://files.example/root/"));
        assert_eq!(page.files.len(), 3);
        assert_eq!(page.files[0].filename, "six-1.16.0-py2.py3-none-any.whl");
        assert_eq!(
            page.files[0].url,
            "/packages/six-1.16.0-py2.py3-none-any.whl"
        );
        assert_eq!(
            page.files[0].hashes["sha256"],
            "8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254"
        );
        assert_eq!(page.files[1].hashes["md5"], "abc");
        assert_eq!(page.files[2].filename, "pkg-1.0+local-py3-none-any.whl");
        assert_eq!(
            page.files[2].url,
            "https://files.example/p/pkg-1.0%2Blocal-py3-none-any.whl?a=1&b=2"
        );
    }

    #[test]
    fn hostile_pages_do_not_panic() {
        for body in [
            &b"\xff\xfe"[..],
            b"",
            b"<a href=",
            b"<a href='#'>",
            b"<a href='#sha256'>x</a>",
            b"<<<>>><a href=\"/\">/</a>",
        ] {
            let _ = parse(body);
        }
    }
}
