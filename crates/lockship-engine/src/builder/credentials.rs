//! Which credentials go to which index host: every host the build will ask (the configured
//! index, a package's own index, the hosts of the lock's file URLs) gets those the user keeps
//! for it: the URL's own user info first, then uv's or poetry's variables for the index's name
//! in pyproject.toml, then netrc. Where none are found, the places looked are noted for the
//! message an index's 401 brings.

use lockship_net::Http;
use lockship_python::credentials::IndexCredentials;

use crate::project::Project;

/// The names pyproject.toml gives indexes on `url`'s host: `[[tool.uv.index]]` and
/// `[[tool.poetry.source]]` entries.
fn names_for<'a>(project: &'a Project, url: &str) -> Vec<&'a str> {
    let host = |u: &str| {
        url::Url::parse(u).ok().map(|u| {
            (
                u.host_str().map(str::to_ascii_lowercase),
                u.port_or_known_default(),
            )
        })
    };
    let Some(wanted) = host(url) else {
        return Vec::new();
    };
    let tool = project.pyproject.as_ref().and_then(|p| p.get("tool"));
    let lists = [
        tool.and_then(|t| t.get("uv")?.get("index")?.as_array()),
        tool.and_then(|t| t.get("poetry")?.get("source")?.as_array()),
    ];
    lists
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| {
            entry
                .get("url")
                .and_then(|u| u.as_str())
                .and_then(host)
                .is_some_and(|h| h == wanted)
        })
        .filter_map(|entry| entry.get("name")?.as_str())
        .collect()
}

/// Gives `http` the credentials for each of `urls` (index pages or files) that it has none for.
pub(super) fn register<'a>(
    project: &Project,
    urls: impl IntoIterator<Item = &'a str>,
    creds: &IndexCredentials,
    http: &Http,
) {
    let mut seen = std::collections::BTreeSet::new();
    for url in urls {
        if http.has_credentials(url) {
            continue;
        }
        let Some(origin) = url::Url::parse(url)
            .ok()
            .map(|u| u.origin().ascii_serialization())
        else {
            continue;
        };
        if !seen.insert(origin) {
            continue;
        }
        let names = names_for(project, url);
        match creds.lookup(url, &names) {
            (Some(found), _) => http.add_basic(url, &found.username, &found.password, &found.from),
            (None, looked) => http.note(
                url,
                &format!("no credentials (looked in: {})", looked.join(", ")),
            ),
        }
    }
}
