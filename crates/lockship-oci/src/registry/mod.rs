//! Talks to OCI / Docker v2 registries (the distribution spec): resolves a base image (index →
//! platform → manifest → config), fetches blobs into the local store, and pushes images sending
//! only the blobs the registry lacks, with the manifests last so a failed push leaves no tag.
//! Every request goes through [`lockship_net`]: stall timeouts, retries with backoff that honour
//! `Retry-After`, and uploads that start over when they break.

mod auth;
mod chunked;
mod error;
mod pull;
mod push;
mod reference;
mod referrer;

pub use pull::CachedLayerError;
pub use push::declared_media_type;
pub use referrer::{ArtifactBlob, ArtifactManifest, Subject};

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use oci_spec::distribution::Reference;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, Response};
use serde::Deserialize;

pub use crate::manifest::parse_manifest;
use crate::manifest::MAX_MANIFEST;
pub use auth::parse_challenges;
use auth::{Challenge, Credential, Token};
pub use error::RegistryError;
use error::{lift, net_error};

use super::digest::Digest;
use super::media_types;
use lockship_net::{Failure, Http, NetError, Progress};

/// Token server answers and error bodies are small; more is refused or cut.
const MAX_SMALL_BODY: u64 = 1 << 20;

/// Parses an image reference (`python:3.12-slim`, `host:5000/team/app@sha256:…`).
pub fn parse_reference(text: &str) -> Result<Reference, RegistryError> {
    let bad = |message: String| RegistryError::BadReference {
        reference: text.to_string(),
        message,
    };
    let reference = match reference::fast(text) {
        Some(reference) => reference,
        None => Reference::from_str(text).map_err(|e| bad(e.to_string()))?,
    };
    if let Some(d) = reference.digest() {
        Digest::parse(d).ok_or_else(|| {
            bad(format!(
                "unsupported digest `{d}` (lockship handles sha256)"
            ))
        })?;
    }
    Ok(reference)
}

/// A layer as a manifest lists it.
#[derive(Clone, Debug)]
pub struct RemoteLayer {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    /// The descriptor's annotations.
    pub annotations: BTreeMap<String, String>,
}

/// A resolved single-platform image in a registry.
#[derive(Clone, Debug)]
pub struct RemoteImage {
    pub reference: Reference,
    pub manifest_digest: Digest,
    pub config: Vec<u8>,
    pub config_digest: Digest,
    pub layers: Vec<RemoteLayer>,
    /// The manifest's annotations.
    pub annotations: BTreeMap<String, String>,
}

/// What a reference names for one platform, read without its config (see [`Registry::peek`]).
#[derive(Clone, Debug)]
pub struct RemoteManifest {
    /// The reference, by the platform manifest's digest when it went through an index.
    pub reference: Reference,
    /// The digest of what the reference itself names: an index, or the manifest.
    pub tag_digest: Digest,
    pub manifest_digest: Digest,
    pub config_digest: Digest,
    pub layers: Vec<RemoteLayer>,
    pub annotations: BTreeMap<String, String>,
}

/// What a push did with each blob.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct PushReport {
    pub uploaded: usize,
    pub uploaded_bytes: u64,
    pub mounted: usize,
    pub skipped: usize,
}

/// What pushing one layer came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerPush {
    /// The registry had it.
    Skipped,
    /// Mounted from the base's repository.
    Mounted,
    /// Uploaded, this many bytes.
    Uploaded(u64),
}

/// How lockship is authenticated to one registry.
#[derive(Debug)]
struct Session {
    /// What the registry asks for, learnt from its first 401 (None: nothing asked yet, so
    /// requests go without credentials: no round trip is spent asking).
    challenge: Option<Challenge>,
    credential: Credential,
    /// Bearer tokens by scope set.
    tokens: HashMap<String, Token>,
}

/// Who may do what in a request: the repositories and actions a bearer token must cover.
#[derive(Clone, Debug)]
struct Scope {
    registry: String,
    entries: Vec<String>,
}

impl Scope {
    fn pull(reference: &Reference) -> Scope {
        Scope {
            registry: reference.resolve_registry().to_string(),
            entries: vec![format!("repository:{}:pull", reference.repository())],
        }
    }

    fn push(reference: &Reference) -> Scope {
        Scope {
            registry: reference.resolve_registry().to_string(),
            entries: vec![format!("repository:{}:pull,push", reference.repository())],
        }
    }

    fn and_pull(mut self, other: &Reference) -> Scope {
        self.entries
            .push(format!("repository:{}:pull", other.repository()));
        self
    }

    fn key(&self) -> String {
        self.entries.join(" ")
    }
}

/// How to reach registries, decided at the edge (the CLI reads the environment for it).
#[derive(Clone, Debug, Default)]
pub struct RegistryAccess {
    /// Registries (host:port) spoken to over plain HTTP besides loopback ones.
    pub insecure: Vec<String>,
    /// Files with registry credentials in the Docker config format (`auths`, `credsStore`,
    /// `credHelpers`, identity tokens), in the order they are asked: the first that has an
    /// entry for a registry answers for it. The CLI lists `REGISTRY_AUTH_FILE`, Docker's
    /// config and Podman's `auth.json`. None: anonymous only.
    pub auth_files: Vec<PathBuf>,
    /// Blobs larger than this go up in chunks of this size (None: 16 MiB), for registries
    /// whose proxies cap request bodies lower.
    pub upload_chunk: Option<u64>,
}

/// A registry client for all registries a build touches.
pub struct Registry {
    http: Http,
    access: RegistryAccess,
    sessions: Mutex<HashMap<String, Arc<Mutex<Session>>>>,
}

/// Whether `registry` (a host with optional port) is spoken to over plain HTTP: loopback
/// addresses and `localhost`, as Docker does, and the ones listed in `insecure`. The host is
/// parsed as an address: `127.0.0.1.evil.example` is not loopback.
pub fn is_plain_http(registry: &str, insecure: &[String]) -> bool {
    if insecure.iter().any(|h| h.trim() == registry) {
        return true;
    }
    let host = match registry.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => registry
            .rsplit_once(':')
            .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
            .map_or(registry, |(h, _)| h),
    };
    host.eq_ignore_ascii_case("localhost")
        || Ipv4Addr::from_str(host).is_ok_and(|ip| ip.is_loopback())
        || Ipv6Addr::from_str(host).is_ok_and(|ip| ip.is_loopback())
}

impl Registry {
    /// A client over `http`, speaking plain HTTP to loopback registries and to the insecure
    /// ones `access` lists, with the credentials its Docker config holds.
    pub fn new(http: Http, access: RegistryAccess) -> Registry {
        Registry {
            http,
            access,
            sessions: Mutex::default(),
        }
    }

    fn base_url(&self, registry: &str) -> String {
        let scheme = if is_plain_http(registry, &self.access.insecure) {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{registry}")
    }

    fn url(&self, reference: &Reference, rest: &str) -> String {
        format!(
            "{}/v2/{}/{rest}",
            self.base_url(reference.resolve_registry()),
            reference.repository()
        )
    }

    /// The session with `registry`. Nothing is asked of the registry up front (no `/v2/`
    /// ping): the first request goes without credentials, and a 401 says what to send.
    fn session(&self, registry: &str) -> Arc<Mutex<Session>> {
        self.lock_sessions()
            .entry(registry.to_string())
            .or_insert_with(|| {
                Arc::new(Mutex::new(Session {
                    challenge: None,
                    credential: Credential::for_registry(&self.access.auth_files, registry),
                    tokens: HashMap::new(),
                }))
            })
            .clone()
    }

    /// Takes the challenge of a 401 from `registry` (unless one was learnt already, by this
    /// request or a concurrent one); whether the session now knows what to send, so that a
    /// request that went without credentials is worth sending again.
    fn learn_challenge(&self, registry: &str, response: &Response) -> bool {
        let challenge = response
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(auth::challenge)
            .unwrap_or(Challenge::None);
        let session = self.session(registry);
        let mut s = session.lock().unwrap_or_else(|e| e.into_inner());
        if s.challenge.is_none() && challenge != Challenge::None {
            s.challenge = Some(challenge);
        }
        s.challenge.as_ref().is_some_and(|c| *c != Challenge::None)
    }

    /// Whether the session has credentials but no challenge yet (nothing sent them so far).
    fn has_unused_credential(&self, registry: &str) -> bool {
        let session = self.session(registry);
        let s = session.lock().unwrap_or_else(|e| e.into_inner());
        s.challenge.is_none() && !matches!(s.credential, Credential::Anonymous)
    }

    /// Asks `/v2/` for the registry's challenge; whether the session now knows one. Whatever
    /// the answer, the session stops asking.
    async fn ping(&self, registry: &str) -> bool {
        let url = format!("{}/v2/", self.base_url(registry));
        let response = self
            .http
            .send(&url, self.http.bare_request(Method::GET, &url))
            .await;
        let known = match response {
            Ok(r) if r.status() == reqwest::StatusCode::UNAUTHORIZED => {
                self.learn_challenge(registry, &r)
            }
            _ => false,
        };
        if !known {
            let session = self.session(registry);
            let mut s = session.lock().unwrap_or_else(|e| e.into_inner());
            s.challenge.get_or_insert(Challenge::None);
        }
        known
    }

    fn lock_sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Mutex<Session>>>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The `Authorization` header for requests within `scope` (None: send none). `renew`
    /// drops a cached token first (the registry refused it).
    async fn authorization(
        &self,
        scope: &Scope,
        action: &str,
        renew: bool,
    ) -> Result<Option<String>, RegistryError> {
        let session = self.session(&scope.registry);
        let (challenge, credential, cached) = {
            let mut s = session.lock().unwrap_or_else(|e| e.into_inner());
            if renew {
                s.tokens.remove(&scope.key());
            }
            let cached = s
                .tokens
                .get(&scope.key())
                .filter(|t| t.expires > Instant::now())
                .map(|t| t.value.clone());
            (s.challenge.clone(), s.credential.clone(), cached)
        };
        let (realm, service) = match challenge.unwrap_or(Challenge::None) {
            Challenge::None => return Ok(None),
            Challenge::Basic => return Ok(credential.basic()),
            Challenge::Bearer { realm, service } => (realm, service),
        };
        if let Some(token) = cached {
            return Ok(Some(format!("Bearer {token}")));
        }
        let token = self
            .fetch_token(scope, &realm, service.as_deref(), &credential, action)
            .await?;
        let header = format!("Bearer {}", token.value);
        session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .tokens
            .insert(scope.key(), token);
        Ok(Some(header))
    }

    /// Asks the realm for a token covering `scope`, with the registry's credential. The
    /// credential goes to the realm only over HTTPS or when the realm is the registry itself.
    async fn fetch_token(
        &self,
        scope: &Scope,
        realm: &str,
        service: Option<&str>,
        credential: &Credential,
        action: &str,
    ) -> Result<Token, RegistryError> {
        let registry = scope.registry.as_str();
        let mut url = ::url::Url::parse(realm).map_err(|e| RegistryError::Protocol {
            registry: registry.to_string(),
            action: action.to_string(),
            message: format!(
                "its token realm `{}` is not a URL: {e}",
                lockship_net::url::redact(realm)
            ),
        })?;
        let same_host = url.host_str() == registry.split(':').next();
        let may_send = url.scheme() == "https" || same_host;
        let identity = match credential {
            Credential::IdentityToken(t) if may_send => Some(t.clone()),
            _ => None,
        };
        let basic = credential.basic().filter(|_| may_send);
        if identity.is_none() {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            for entry in &scope.entries {
                query.append_pair("scope", entry);
            }
        }
        let url = url.to_string();
        let body = self
            .http
            .retry(&url, |_| async {
                let request = match &identity {
                    // OAuth2 refresh-token grant, as `docker login` identity tokens require.
                    Some(token) => {
                        let mut form = vec![
                            ("grant_type", "refresh_token".to_string()),
                            ("refresh_token", token.clone()),
                            ("client_id", "lockship".to_string()),
                            ("scope", scope.entries.join(" ")),
                        ];
                        if let Some(service) = service {
                            form.push(("service", service.to_string()));
                        }
                        let body = ::url::form_urlencoded::Serializer::new(String::new())
                            .extend_pairs(&form)
                            .finish();
                        self.http
                            .bare_request(Method::POST, &url)
                            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                            .body(body)
                    }
                    None => {
                        let request = self.http.bare_request(Method::GET, &url);
                        match &basic {
                            Some(b) => request.header(AUTHORIZATION, b),
                            None => request,
                        }
                    }
                };
                let response = self.http.send(&url, request).await?;
                let response = self.http.success(&url, response)?;
                self.http.body(&url, response, MAX_SMALL_BODY).await
            })
            .await
            .map_err(|e| match e.status() {
                Some(401 | 403) => RegistryError::Denied {
                    registry: registry.to_string(),
                    action: action.to_string(),
                },
                _ => net_error(registry, action, e),
            })?;
        auth::parse_token(&body).ok_or_else(|| RegistryError::Protocol {
            registry: registry.to_string(),
            action: action.to_string(),
            message: "its token server sent no token".into(),
        })
    }

    /// One request within `scope`, with its authorization; a 401 is answered once by
    /// authenticating again (a token may have expired). Transient statuses are failures to
    /// retry; every other answer is the caller's to read.
    async fn attempt(
        &self,
        scope: &Scope,
        action: &str,
        url: &str,
        make: &(dyn Fn() -> reqwest::RequestBuilder + Sync),
        progress: Option<&Progress>,
    ) -> Result<Response, Failure<RegistryError>> {
        // A streamed body (an upload) cannot be sent twice: its 401 is final.
        let replayable = progress.is_none();
        let mut renew = false;
        let mut sent_anonymous = false;
        loop {
            let authorization = self
                .authorization(scope, action, renew)
                .await
                .map_err(Failure::fatal)?;
            let mut request = make();
            if let Some(a) = &authorization {
                request = request.header(AUTHORIZATION, a);
            }
            let sent = match progress {
                Some(p) => self.http.send_with_progress(url, request, p).await,
                None => self.http.send(url, request).await,
            };
            let response = sent.map_err(|f| lift(&scope.registry, action, f))?;
            // Some registries hide private repositories from anonymous requests (404 or 403
            // instead of 401): with credentials at hand, ask `/v2/` what to send, once.
            if matches!(response.status().as_u16(), 403 | 404)
                && replayable
                && authorization.is_none()
                && !sent_anonymous
                && self.has_unused_credential(&scope.registry)
            {
                sent_anonymous = true;
                if self.ping(&scope.registry).await {
                    continue;
                }
            }
            if response.status() == reqwest::StatusCode::UNAUTHORIZED && replayable {
                // Sent before lockship knew what the registry asks for: now it knows (from this
                // 401 or a concurrent one), so once more, with credentials.
                if authorization.is_none()
                    && !sent_anonymous
                    && self.learn_challenge(&scope.registry, &response)
                {
                    sent_anonymous = true;
                    continue;
                }
                if !renew && authorization.is_some() {
                    renew = true;
                    continue;
                }
            }
            return transient_status(&self.http, url, response)
                .map_err(|f| lift(&scope.registry, action, f));
        }
    }

    /// [`Registry::attempt`], retried while failures are transient.
    async fn request(
        &self,
        scope: &Scope,
        action: &str,
        url: &str,
        make: &(dyn Fn() -> reqwest::RequestBuilder + Sync),
    ) -> Result<Response, RegistryError> {
        self.http
            .retry(url, |_| self.attempt(scope, action, url, make, None))
            .await
    }

    /// `response` when it is a success; else the error its status means (404: not found,
    /// 401/403: denied, anything else: the registry's own error text).
    async fn expect_success(
        &self,
        response: Response,
        reference: &Reference,
        action: &str,
    ) -> Result<Response, Failure<RegistryError>> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let registry = reference.resolve_registry().to_string();
        let error = match status.as_u16() {
            401 | 403 => RegistryError::Denied {
                registry,
                action: action.to_string(),
            },
            404 => RegistryError::NotFound {
                reference: reference.to_string(),
            },
            code => RegistryError::Protocol {
                registry,
                action: action.to_string(),
                message: format!("HTTP {code}{}", error_detail(response).await),
            },
        };
        Err(Failure::fatal(error))
    }

    /// The tags of `reference`'s repository.
    pub async fn list_tags(&self, reference: &Reference) -> Result<Vec<String>, RegistryError> {
        let action = format!("listing tags of {}", reference.repository());
        let url = self.url(reference, "tags/list");
        let scope = Scope::pull(reference);
        let make = || self.http.bare_request(Method::GET, &url);
        let response = self.request(&scope, &action, &url, &make).await?;
        let response = self
            .expect_success(response, reference, &action)
            .await
            .map_err(|f| f.error)?;
        let registry = reference.resolve_registry();
        let body = self
            .http
            .body(&url, response, MAX_MANIFEST)
            .await
            .map_err(|f| net_error(registry, &action, f.error))?;
        #[derive(Deserialize)]
        struct Tags {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let tags: Tags = parse_json(&body, reference, &action)?;
        Ok(tags.tags.unwrap_or_default())
    }
}

/// A response whose status is transient (5xx, 429, 408) as a failure to retry, anything else as
/// the response (a `Retry-After` beyond what lockship waits is a failure too, a fatal one).
fn transient_status(http: &Http, url: &str, response: Response) -> Result<Response, Failure> {
    if response.status().is_success() {
        return Ok(response);
    }
    let failure = http.status_failure(url, response.status().as_u16(), response.headers());
    match (&failure.verdict, &failure.error) {
        (lockship_net::retry::Verdict::Retry { .. }, _) | (_, NetError::RetryTooLate { .. }) => {
            Err(failure)
        }
        (lockship_net::retry::Verdict::Fatal, _) => Ok(response),
    }
}

/// The registry's own words for an error (`: CODE: message`), from its JSON error body; plain
/// text, control characters dropped, at most 200 characters.
async fn error_detail(response: Response) -> String {
    #[derive(Deserialize)]
    struct Envelope {
        errors: Vec<ErrorItem>,
    }
    #[derive(Deserialize)]
    struct ErrorItem {
        code: String,
        #[serde(default)]
        message: String,
    }
    let Ok(body) = tokio::time::timeout(std::time::Duration::from_secs(5), response.bytes()).await
    else {
        return String::new();
    };
    let Some(first) = body
        .ok()
        .and_then(|b| {
            serde_json::from_slice::<Envelope>(&b[..b.len().min(MAX_SMALL_BODY as usize)]).ok()
        })
        .and_then(|e| e.errors.into_iter().next())
    else {
        return String::new();
    };
    let text: String = format!("{}: {}", first.code, first.message)
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    format!(" ({text})")
}

fn parse_json<T: for<'de> Deserialize<'de>>(
    bytes: &[u8],
    reference: &Reference,
    action: &str,
) -> Result<T, RegistryError> {
    serde_json::from_slice(bytes).map_err(|e| RegistryError::Protocol {
        registry: reference.resolve_registry().to_string(),
        action: action.to_string(),
        message: format!("invalid JSON: {e}"),
    })
}

fn parse_digest(text: &str, reference: &Reference, action: &str) -> Result<Digest, RegistryError> {
    Digest::parse(text).ok_or_else(|| RegistryError::Protocol {
        registry: reference.resolve_registry().to_string(),
        action: action.to_string(),
        message: format!(
            "unsupported digest `{}` (lockship handles sha256)",
            text.chars()
                .filter(|c| !c.is_control())
                .take(80)
                .collect::<String>()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_real_loopback_addresses_are_plain_http() {
        for plain in [
            "127.0.0.1:5000",
            "127.1.2.3",
            "localhost:5000",
            "[::1]:5000",
            "LOCALHOST",
        ] {
            assert!(is_plain_http(plain, &[]), "{plain}");
        }
        for tls in [
            "127.0.0.1.evil.example",
            "127.evil.example:5000",
            "ghcr.io",
            "localhost.example",
            "[::2]:5000",
        ] {
            assert!(!is_plain_http(tls, &[]), "{tls}");
        }
        assert!(is_plain_http(
            "registry.internal:5000",
            &["registry.internal:5000".into()]
        ));
    }

    #[test]
    fn references_with_other_digests_are_refused() {
        assert!(parse_reference("host:5000/a/b@sha256:zz").is_err());
        assert!(parse_reference(&format!("host/a@sha512:{}", "a".repeat(128))).is_err());
        let r = parse_reference("python:3.12-slim").unwrap();
        assert_eq!(r.resolve_registry(), "index.docker.io");
        assert_eq!(r.repository(), "library/python");
    }
}
