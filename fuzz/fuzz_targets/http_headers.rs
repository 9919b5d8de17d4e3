//! What servers put in headers and URLs: WWW-Authenticate challenges, Retry-After, and the
//! URL redaction every message goes through (it must never show a password it was given).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lockship_net::retry::parse_retry_after;
use lockship_net::url::{redact, split_credentials, strip_userinfo};
use lockship_oci::registry::parse_challenges;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_challenges(text);
    let _ = parse_retry_after(text, std::time::SystemTime::UNIX_EPOCH);
    let split = split_credentials(text);
    let shown = redact(text).to_string();
    let _ = strip_userinfo(text);
    if split.credentials.is_some() {
        // Whatever stood in the user info's place (the password, or a lone token) is `****` in
        // what is shown: the user info of the shown URL ends with it.
        let rest = shown.split_once("://").map(|(_, r)| r).unwrap_or("");
        let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
        let info = authority.rsplit_once('@').map(|(info, _)| info);
        assert!(
            info.is_some_and(|i| i.ends_with("****")),
            "{text:?} shown as {shown:?}"
        );
    }
});
