//! Talks to OCI / Docker v2 registries (the distribution spec): resolves a base image (index →
//! platform → manifest → config), fetches blobs into the local store, and pushes images sending
//! only the blobs the registry lacks, with the manifests last so a failed push leaves no tag.
//! Every request goes through [`crate::net`]: stall timeouts, retries with backoff that honour
//! `Retry-After`, and uploads that start over when they break.

mod auth;

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use oci_spec::distribution::Reference;
use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{Method, Response};
use serde::Deserialize;

pub use auth::parse_challenges;
use auth::{Challenge, Credential, Token};

use super::blob_store::{BlobStore, BlobStoreError};
use super::digest::{Digest, Hasher};
use super::image::{BlobOrigin, Image, ImageLayer};
use super::media_types;
use super::platform::Platform;
use crate::net::{self, Attempts, Failure, Http, NetError, Progress};

/// Manifests and indexes larger than this are refused (containerd's limit is 4 MiB as well).
const MAX_MANIFEST: u64 = 4 << 20;
/// Token server answers and error bodies are small; more is refused or cut.
const MAX_SMALL_BODY: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("`{reference}` is not a valid image reference: {message}")]
    BadReference { reference: String, message: String },
    #[error("cannot reach registry {registry} while {action}: {source}")]
    Unreachable {
        registry: String,
        action: String,
        #[source]
        source: NetError,
    },
    #[error("registry {registry} denied access while {action}")]
    Denied { registry: String, action: String },
    #[error("image {reference} not found")]
    NotFound { reference: String },
    #[error("image {reference} has no manifest for {platform} (it has: {available})")]
    NoPlatform {
        reference: String,
        platform: String,
        available: String,
    },
    #[error("image {reference} is for {has} only, and --platform asks for {wanted}")]
    WrongPlatform {
        reference: String,
        wanted: String,
        has: String,
    },
    #[error("registry {registry} sent {what} with the wrong content: its digest is {actual}, expected {expected}")]
    Tampered {
        registry: String,
        what: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("registry {registry} failed while {action}: {message}")]
    Protocol {
        registry: String,
        action: String,
        message: String,
    },
    #[error("registry {registry} failed while {action}: {source}")]
    Failed {
        registry: String,
        action: String,
        #[source]
        source: NetError,
    },
    #[error(transparent)]
    Store(#[from] BlobStoreError),
}

impl RegistryError {
    /// What the user can do about it, when there is something.
    pub fn hint(&self) -> Option<String> {
        match self {
            RegistryError::Denied { registry, action } => Some(if action.starts_with("pushing") {
                format!("log in with `docker login {registry}` (lockship reads ~/.docker/config.json); the account needs write access to the repository")
            } else {
                format!(
                    "log in with `docker login {registry}` (lockship reads ~/.docker/config.json)"
                )
            }),
            RegistryError::NotFound { .. } => {
                Some("check `base` in [tool.lockship] (or --base), and that the tag exists".into())
            }
            RegistryError::Unreachable { .. } => Some(
                "check the registry address and that it is up; plain-HTTP registries other than \
                 loopback go in LOCKSHIP_INSECURE_REGISTRIES; --http-timeout and --http-retries \
                 set how patient lockship is"
                    .into(),
            ),
            RegistryError::NoPlatform { .. } => {
                Some("choose one of the listed platforms with --platform".into())
            }
            RegistryError::WrongPlatform { .. } => Some(
                "use a multi-platform base (an image index), or a base built for that platform"
                    .into(),
            ),
            RegistryError::Tampered { .. } => Some(
                "nothing was cached; the registry, or something between it and lockship, altered the data"
                    .into(),
            ),
            _ => None,
        }
    }

    /// Whether the error is a damaged local cache entry (evicted already; a rebuild repairs it).
    pub fn is_corrupt_cache(&self) -> bool {
        matches!(self, RegistryError::Store(e) if e.is_corrupt())
    }
}

impl Attempts for RegistryError {
    fn set_attempts(&mut self, n: u32) {
        if let RegistryError::Unreachable { source, .. } | RegistryError::Failed { source, .. } =
            self
        {
            source.set_attempts(n);
        }
    }
}

/// Parses an image reference (`python:3.12-slim`, `host:5000/team/app@sha256:…`).
pub fn parse_reference(text: &str) -> Result<Reference, RegistryError> {
    let bad = |message: String| RegistryError::BadReference {
        reference: text.to_string(),
        message,
    };
    let reference = Reference::from_str(text).map_err(|e| bad(e.to_string()))?;
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
}

/// A resolved single-platform image in a registry.
#[derive(Clone, Debug)]
pub struct RemoteImage {
    pub reference: Reference,
    pub manifest_digest: Digest,
    pub config: Vec<u8>,
    pub config_digest: Digest,
    pub layers: Vec<RemoteLayer>,
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

#[derive(Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    size: u64,
    platform: Option<PlatformJson>,
}

#[derive(Deserialize)]
struct PlatformJson {
    os: String,
    architecture: String,
    variant: Option<String>,
}

#[derive(Deserialize)]
struct ManifestJson {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

/// How lockship is authenticated to one registry.
#[derive(Debug)]
struct Session {
    challenge: Challenge,
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

/// A registry client for all registries a build touches.
pub struct Registry {
    http: Http,
    /// Registries spoken to over plain HTTP besides loopback ones.
    insecure: Vec<String>,
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
    /// A client over `http`, speaking plain HTTP to loopback registries and to `insecure` ones.
    pub fn new(http: Http, insecure: Vec<String>) -> Registry {
        Registry {
            http,
            insecure,
            sessions: Mutex::default(),
        }
    }

    fn base_url(&self, registry: &str) -> String {
        let scheme = if is_plain_http(registry, &self.insecure) {
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

    /// The session with `registry`, pinging `/v2/` the first time to learn its challenge.
    async fn session(
        &self,
        registry: &str,
        action: &str,
    ) -> Result<Arc<Mutex<Session>>, RegistryError> {
        if let Some(s) = self.lock_sessions().get(registry) {
            return Ok(s.clone());
        }
        let url = format!("{}/v2/", self.base_url(registry));
        let response = self
            .http
            .retry(&url, |_| async {
                let response = self
                    .http
                    .send(&url, self.http.bare_request(Method::GET, &url))
                    .await?;
                transient_status(&self.http, &url, response)
            })
            .await
            .map_err(|e| net_error(registry, action, e))?;
        let challenge = if response.status() == reqwest::StatusCode::UNAUTHORIZED {
            response
                .headers()
                .get(reqwest::header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .map(auth::challenge)
                .unwrap_or(Challenge::None)
        } else {
            Challenge::None
        };
        let session = Arc::new(Mutex::new(Session {
            challenge,
            credential: Credential::for_registry(registry),
            tokens: HashMap::new(),
        }));
        Ok(self
            .lock_sessions()
            .entry(registry.to_string())
            .or_insert(session)
            .clone())
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
        let session = self.session(&scope.registry, action).await?;
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
        let (realm, service) = match challenge {
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
                net::url::redact(realm)
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
            if response.status() == reqwest::StatusCode::UNAUTHORIZED
                && replayable
                && !renew
                && authorization.is_some()
            {
                renew = true;
                continue;
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

    /// Resolves `reference` to the manifest for `platform` and fetches its config. A
    /// single-platform image must match `platform` when `platform_required` (the user asked).
    pub async fn resolve(
        &self,
        reference: &Reference,
        platform: &Platform,
        platform_required: bool,
        store: &BlobStore,
    ) -> Result<RemoteImage, RegistryError> {
        let action = format!("pulling the manifest of {reference}");
        let (bytes, mut manifest_digest) = self.manifest(reference, &action).await?;
        let mut manifest: ManifestJson = parse_json(&bytes, reference, &action)?;
        let mut resolved = reference.clone();
        let is_index = !manifest.manifests.is_empty()
            || manifest.media_type == media_types::OCI_INDEX
            || manifest.media_type == media_types::DOCKER_LIST;
        if is_index {
            let entry = manifest
                .manifests
                .iter()
                .find(|m| {
                    m.platform.as_ref().is_some_and(|p| {
                        platform.matches(&p.os, &p.architecture, p.variant.as_deref())
                    })
                })
                .ok_or_else(|| RegistryError::NoPlatform {
                    reference: reference.to_string(),
                    platform: platform.to_string(),
                    available: manifest
                        .manifests
                        .iter()
                        .filter_map(|m| m.platform.as_ref())
                        .filter(|p| p.os != "unknown")
                        .map(|p| match &p.variant {
                            Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
                            None => format!("{}/{}", p.os, p.architecture),
                        })
                        .collect::<Vec<_>>()
                        .join(", "),
                })?;
            let digest = parse_digest(&entry.digest, reference, &action)?;
            resolved = reference.clone_with_digest(digest.to_string());
            let (bytes, digest) = self.manifest(&resolved, &action).await?;
            manifest_digest = digest;
            manifest = parse_json(&bytes, reference, &action)?;
        }
        let config_desc = manifest.config.ok_or_else(|| RegistryError::Protocol {
            registry: reference.resolve_registry().to_string(),
            action: action.clone(),
            message: "manifest has no config".into(),
        })?;
        let config_digest = parse_digest(&config_desc.digest, reference, &action)?;
        let what = format!("config of {reference}");
        // Configs are content-addressed: one pulled before never needs pulling again.
        self.fetch_blob(
            &resolved,
            &config_digest,
            Some(config_desc.size),
            &what,
            store,
        )
        .await?;
        let config = match store.read(&config_digest, &what) {
            Ok(bytes) => bytes,
            Err(e) if e.is_corrupt() => {
                // Damaged on disk (and evicted): fetch it again.
                self.fetch_blob(
                    &resolved,
                    &config_digest,
                    Some(config_desc.size),
                    &what,
                    store,
                )
                .await?;
                store.read(&config_digest, &what)?
            }
            Err(e) => return Err(e.into()),
        };
        if !is_index && platform_required {
            check_platform(&config, reference, platform)?;
        }
        let layers = manifest
            .layers
            .iter()
            .map(|l| {
                Ok(RemoteLayer {
                    media_type: l.media_type.clone(),
                    digest: parse_digest(&l.digest, reference, &action)?,
                    size: l.size,
                })
            })
            .collect::<Result<Vec<_>, RegistryError>>()?;
        Ok(RemoteImage {
            reference: resolved,
            manifest_digest,
            config,
            config_digest,
            layers,
        })
    }

    /// The manifest bytes of `reference` and their digest, checked against the reference's
    /// digest when it has one.
    async fn manifest(
        &self,
        reference: &Reference,
        action: &str,
    ) -> Result<(Vec<u8>, Digest), RegistryError> {
        let tag_or_digest = reference
            .digest()
            .or(reference.tag())
            .unwrap_or("latest")
            .to_string();
        let url = self.url(reference, &format!("manifests/{tag_or_digest}"));
        let accept = [
            media_types::OCI_INDEX,
            media_types::DOCKER_LIST,
            media_types::OCI_MANIFEST,
            media_types::DOCKER_MANIFEST,
        ]
        .join(", ");
        let scope = Scope::pull(reference);
        let registry = reference.resolve_registry();
        let bytes = self
            .http
            .retry(&url, |_| async {
                let make = || {
                    self.http
                        .bare_request(Method::GET, &url)
                        .header(reqwest::header::ACCEPT, &accept)
                };
                let response = self.attempt(&scope, action, &url, &make, None).await?;
                let response = self.expect_success(response, reference, action).await?;
                self.http
                    .body(&url, response, MAX_MANIFEST)
                    .await
                    .map_err(|f| lift(registry, action, f))
            })
            .await?;
        let digest = Digest::of_bytes(&bytes);
        if let Some(expected) = reference.digest().and_then(Digest::parse) {
            if expected != digest {
                return Err(RegistryError::Tampered {
                    registry: registry.to_string(),
                    what: format!("the manifest of {reference}"),
                    expected,
                    actual: digest,
                });
            }
        }
        Ok((bytes.to_vec(), digest))
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

    /// Downloads a blob of `reference`'s repository into `store`, verified against `digest` and,
    /// when known, its size: a body longer than the manifest says is cut off and refused. An
    /// intact copy already in the store is kept; a damaged one is evicted and fetched again.
    pub async fn fetch_blob(
        &self,
        reference: &Reference,
        digest: &Digest,
        size: Option<u64>,
        what: &str,
        store: &BlobStore,
    ) -> Result<(), RegistryError> {
        if store.verify(digest, what)? {
            return Ok(());
        }
        let action = format!("pulling {what} ({digest})");
        let url = self.url(reference, &format!("blobs/{digest}"));
        let scope = Scope::pull(reference);
        let registry = reference.resolve_registry();
        self.http
            .retry(&url, |attempt| {
                let (scope, action, url) = (&scope, &action, &url);
                async move {
                    let make = || self.http.bare_request(Method::GET, url);
                    let response = self.attempt(scope, action, url, &make, None).await?;
                    let mut response = self.expect_success(response, reference, action).await?;
                    let mut pending = store.begin().map_err(|e| Failure::fatal(e.into()))?;
                    let mut received = 0u64;
                    while let Some(chunk) = self
                        .http
                        .chunk(url, &mut response)
                        .await
                        .map_err(|f| lift(registry, action, f))?
                    {
                        received += chunk.len() as u64;
                        if size.is_some_and(|s| received > s) {
                            return Err(Failure::fatal(RegistryError::Protocol {
                                registry: registry.to_string(),
                                action: action.clone(),
                                message: format!(
                                    "it sent more than the {} bytes the manifest lists",
                                    size.unwrap_or(0)
                                ),
                            }));
                        }
                        std::io::Write::write_all(&mut pending, &chunk).map_err(|source| {
                            Failure::fatal(
                                BlobStoreError::Io {
                                    path: store.tmp_dir(),
                                    source,
                                }
                                .into(),
                            )
                        })?;
                    }
                    match store.commit(pending, Some(digest), what) {
                        Ok(_) => Ok(()),
                        Err(BlobStoreError::DigestMismatch { actual, .. }) => {
                            let error = RegistryError::Tampered {
                                registry: registry.to_string(),
                                what: format!("{what} ({digest})"),
                                expected: digest.clone(),
                                actual,
                            };
                            // A byte flipped in transit is worth one more try; twice is a pattern.
                            Err(if attempt == 0 {
                                Failure::transient(error)
                            } else {
                                Failure::fatal(error)
                            })
                        }
                        Err(e) => Err(Failure::fatal(e.into())),
                    }
                }
            })
            .await
    }

    /// Downloads the blobs of `reference`'s repository that `store` lacks, a few at a time.
    pub async fn fetch_blobs(
        &self,
        reference: &Reference,
        blobs: impl Iterator<Item = (&Digest, u64)>,
        what: &str,
        store: &BlobStore,
    ) -> Result<(), RegistryError> {
        futures::stream::iter(blobs)
            .map(|(d, size)| self.fetch_blob(reference, d, Some(size), what, store))
            .buffer_unordered(4)
            .try_collect::<Vec<()>>()
            .await
            .map(|_| ())
    }

    /// Whether `target`'s repository has the blob `digest`.
    async fn has_blob(
        &self,
        target: &Reference,
        scope: &Scope,
        digest: &Digest,
        action: &str,
    ) -> Result<bool, RegistryError> {
        let url = self.url(target, &format!("blobs/{digest}"));
        let make = || self.http.bare_request(Method::HEAD, &url);
        let response = self.request(scope, action, &url, &make).await?;
        match response.status().as_u16() {
            200..=299 => Ok(true),
            404 => Ok(false),
            401 | 403 => Err(RegistryError::Denied {
                registry: target.resolve_registry().to_string(),
                action: action.to_string(),
            }),
            code => Err(RegistryError::Protocol {
                registry: target.resolve_registry().to_string(),
                action: action.to_string(),
                message: format!("HTTP {code} to a blob check"),
            }),
        }
    }

    /// Pushes one layer blob to `target`: skipped if the registry has it, mounted from `base`
    /// when that is another repository of the same registry, else uploaded (a base layer never
    /// pulled is fetched from `base` first). Builds call this as soon as a layer is written, so
    /// uploads overlap the rest of the build; the manifest still goes last.
    pub async fn push_layer(
        &self,
        layer: &ImageLayer,
        target: &Reference,
        base: Option<&Reference>,
        store: &BlobStore,
    ) -> Result<LayerPush, RegistryError> {
        let digest = &layer.info.digest;
        let action = format!("pushing layer {digest} to {target}");
        let scope = Scope::push(target);
        if self.has_blob(target, &scope, digest, &action).await? {
            return Ok(LayerPush::Skipped);
        }
        let mut session = None;
        if layer.origin == BlobOrigin::Base {
            if let Some(base) = base {
                if base.resolve_registry() == target.resolve_registry()
                    && base.repository() != target.repository()
                {
                    match self.mount(target, base, digest, &action).await? {
                        Mount::Mounted => return Ok(LayerPush::Mounted),
                        Mount::Upload(location) => session = location,
                    }
                }
                let what = format!("base layer of {base}");
                self.fetch_blob(base, digest, Some(layer.info.size), &what, store)
                    .await?;
            }
        }
        let size = self
            .upload(target, digest, Upload::Stored(store), session, &action)
            .await?;
        Ok(LayerPush::Uploaded(size))
    }

    /// Tries a cross-repository mount of `digest` from `base` into `target`.
    async fn mount(
        &self,
        target: &Reference,
        base: &Reference,
        digest: &Digest,
        action: &str,
    ) -> Result<Mount, RegistryError> {
        let url = format!(
            "{}?mount={digest}&from={}",
            self.url(target, "blobs/uploads/"),
            base.repository()
        );
        let scope = Scope::push(target).and_pull(base);
        let make = || {
            self.http
                .bare_request(Method::POST, &url)
                .header(CONTENT_LENGTH, "0")
        };
        let response = self.request(&scope, action, &url, &make).await?;
        Ok(match response.status().as_u16() {
            201 => Mount::Mounted,
            // The registry could not mount and opened an upload instead.
            202 => Mount::Upload(location(
                &response,
                &self.base_url(target.resolve_registry()),
            )),
            _ => Mount::Upload(None),
        })
    }

    /// Uploads a blob (POST for a session, one PUT with the whole body). Any failure of the PUT
    /// restarts from a new session, with the file read again from the start; the bytes are
    /// hashed as they go, so a blob damaged in the cache is caught (and evicted) rather than
    /// sent under the wrong name.
    async fn upload(
        &self,
        target: &Reference,
        digest: &Digest,
        source: Upload<'_>,
        session: Option<String>,
        action: &str,
    ) -> Result<u64, RegistryError> {
        let scope = Scope::push(target);
        let registry = target.resolve_registry();
        let start_url = self.url(target, "blobs/uploads/");
        let base_url = self.base_url(registry);
        let session = Mutex::new(session);
        self.http
            .retry(&start_url, |_| async {
                let given = session.lock().unwrap_or_else(|e| e.into_inner()).take();
                let location = match given {
                    Some(l) => l,
                    None => {
                        let make = || {
                            self.http
                                .bare_request(Method::POST, &start_url)
                                .header(CONTENT_LENGTH, "0")
                        };
                        let response = self
                            .attempt(&scope, action, &start_url, &make, None)
                            .await?;
                        if response.status().as_u16() != 202 {
                            let target_error = self.expect_success(response, target, action).await;
                            return Err(match target_error {
                                Err(f) => f,
                                Ok(_) => Failure::fatal(RegistryError::Protocol {
                                    registry: registry.to_string(),
                                    action: action.to_string(),
                                    message: "it did not open an upload session (no 202)".into(),
                                }),
                            });
                        }
                        location(&response, &base_url).ok_or_else(|| {
                            Failure::fatal(RegistryError::Protocol {
                                registry: registry.to_string(),
                                action: action.to_string(),
                                message: "its upload session has no Location".into(),
                            })
                        })?
                    }
                };
                let separator = if location.contains('?') { '&' } else { '?' };
                let put_url = format!("{location}{separator}digest={digest}");
                let progress = Progress::default();
                let (body, size, check) = source
                    .body(digest, &progress)
                    .map_err(|e| Failure::fatal(e.into()))?;
                // `attempt` calls `make` once for a request with progress (no 401 replay).
                let body = Mutex::new(Some(body));
                let make = || {
                    let request = self
                        .http
                        .bare_request(Method::PUT, &put_url)
                        .header(CONTENT_TYPE, "application/octet-stream")
                        .header(CONTENT_LENGTH, size);
                    match body.lock().unwrap_or_else(|e| e.into_inner()).take() {
                        Some(b) => request.body(b),
                        None => request.body(Vec::new()),
                    }
                };
                let result = self
                    .attempt(&scope, action, &put_url, &make, Some(&progress))
                    .await;
                if let Some(UploadCheck::Corrupt) = check.result() {
                    if let Upload::Stored(store) = source {
                        store.evict(digest, "layer");
                    }
                    return Err(Failure::fatal(
                        BlobStoreError::Corrupt {
                            digest: digest.clone(),
                            what: "layer".into(),
                        }
                        .into(),
                    ));
                }
                let response = result?;
                if response.status().as_u16() == 201 {
                    return Ok(size);
                }
                let status = response.status().as_u16();
                let detail = error_detail(response).await;
                // The registry hashed something else than the name says: if the cached blob is
                // damaged (verify evicts it), say so, so that the build makes it again.
                if let (Upload::Stored(store), true) = (source, detail.contains("DIGEST_INVALID")) {
                    if !store.verify(digest, "layer").unwrap_or(true) {
                        return Err(Failure::fatal(
                            BlobStoreError::Corrupt {
                                digest: digest.clone(),
                                what: "layer".into(),
                            }
                            .into(),
                        ));
                    }
                }
                Err(match status {
                    401 | 403 => Failure::fatal(RegistryError::Denied {
                        registry: registry.to_string(),
                        action: action.to_string(),
                    }),
                    // The session may be gone (a 404 after a restart): open another.
                    404 | 416 => Failure::transient(RegistryError::Protocol {
                        registry: registry.to_string(),
                        action: action.to_string(),
                        message: format!("HTTP {status} to the upload{detail}"),
                    }),
                    _ => Failure::fatal(RegistryError::Protocol {
                        registry: registry.to_string(),
                        action: action.to_string(),
                        message: format!("HTTP {status} to the upload{detail}"),
                    }),
                })
            })
            .await
    }

    /// Sends every layer of `image` (see [`Registry::push_layer`]) except those in `done`,
    /// pushed already during the build, and then the config: everything but the manifest.
    pub async fn push_blobs(
        &self,
        image: &Image,
        target: &Reference,
        base: Option<&Reference>,
        store: &BlobStore,
        done: &HashMap<Digest, LayerPush>,
    ) -> Result<PushReport, RegistryError> {
        let results: Vec<LayerPush> = futures::stream::iter(image.layers.iter())
            .map(|layer| async move {
                match done.get(&layer.info.digest) {
                    Some(outcome) => Ok(*outcome),
                    None => self.push_layer(layer, target, base, store).await,
                }
            })
            .buffer_unordered(4)
            .try_collect()
            .await?;
        let mut report = PushReport::default();
        for outcome in results {
            match outcome {
                LayerPush::Skipped => report.skipped += 1,
                LayerPush::Mounted => report.mounted += 1,
                LayerPush::Uploaded(bytes) => {
                    report.uploaded += 1;
                    report.uploaded_bytes += bytes;
                }
            }
        }
        let action = format!("pushing the config to {target}");
        let scope = Scope::push(target);
        if !self
            .has_blob(target, &scope, &image.config_digest, &action)
            .await?
        {
            let size = self
                .upload(
                    target,
                    &image.config_digest,
                    Upload::Bytes(&image.config),
                    None,
                    &action,
                )
                .await?;
            report.uploaded += 1;
            report.uploaded_bytes += size;
        }
        Ok(report)
    }

    /// Puts the manifest under `target`'s tag (or digest): the step that makes the image exist.
    pub async fn push_manifest(
        &self,
        image: &Image,
        target: &Reference,
    ) -> Result<(), RegistryError> {
        let action = format!("pushing the manifest to {target}");
        let reference = target
            .tag()
            .map(String::from)
            .unwrap_or_else(|| image.manifest_digest.to_string());
        let url = self.url(target, &format!("manifests/{reference}"));
        let scope = Scope::push(target);
        let make = || {
            self.http
                .bare_request(Method::PUT, &url)
                .header(CONTENT_TYPE, media_types::OCI_MANIFEST)
                .body(image.manifest.clone())
        };
        let response = self.request(&scope, &action, &url, &make).await?;
        self.expect_success(response, target, &action)
            .await
            .map_err(|f| f.error)?;
        Ok(())
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

/// Where an upload's bytes come from.
#[derive(Clone, Copy)]
enum Upload<'a> {
    /// A blob in the store (read afresh for every attempt, hashed on the way).
    Stored(&'a BlobStore),
    /// Small bytes in memory (a config).
    Bytes(&'a [u8]),
}

/// How the bytes of an upload compared with the blob's name, once all were read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum UploadCheck {
    Intact,
    Corrupt,
}

/// The verdict of an upload's hashing, filled in when its body ends.
#[derive(Clone, Default)]
struct CheckSlot(Arc<Mutex<Option<UploadCheck>>>);

impl CheckSlot {
    fn result(&self) -> Option<UploadCheck> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Upload<'_> {
    /// A fresh request body, its length, and the slot its digest check will be reported in.
    fn body(
        &self,
        digest: &Digest,
        progress: &Progress,
    ) -> Result<(reqwest::Body, u64, CheckSlot), BlobStoreError> {
        let slot = CheckSlot::default();
        match self {
            Upload::Bytes(bytes) => {
                progress.tick();
                Ok((
                    reqwest::Body::from(bytes.to_vec()),
                    bytes.len() as u64,
                    slot,
                ))
            }
            Upload::Stored(store) => {
                let path = store.path(digest);
                let file = std::fs::File::open(&path).map_err(|source| BlobStoreError::Io {
                    path: path.clone(),
                    source,
                })?;
                let size = file
                    .metadata()
                    .map_err(|source| BlobStoreError::Io {
                        path: path.clone(),
                        source,
                    })?
                    .len();
                let reader = tokio_util::io::ReaderStream::with_capacity(
                    tokio::fs::File::from_std(file),
                    1 << 20,
                );
                // The last chunk is held back until the whole file has hashed to its name: a
                // body with a Content-Length is done once that many bytes went, so an error
                // after the last byte would never be read, and the registry would get the
                // damaged blob. Failing instead of the last chunk aborts the upload.
                let state = UploadBody {
                    reader,
                    held: None,
                    hasher: Some(Hasher::default()),
                    expected: digest.clone(),
                    slot: slot.clone(),
                    progress: progress.clone(),
                };
                let chunks = futures::stream::unfold(state, UploadBody::next);
                Ok((reqwest::Body::wrap_stream(chunks), size, slot))
            }
        }
    }
}

/// The body of a blob upload read from the store, hashed as it goes (see [`Upload::body`]).
struct UploadBody {
    reader: tokio_util::io::ReaderStream<tokio::fs::File>,
    /// The chunk read but not yet sent.
    held: Option<bytes::Bytes>,
    /// None once the end was reached.
    hasher: Option<Hasher>,
    expected: Digest,
    slot: CheckSlot,
    progress: Progress,
}

impl UploadBody {
    async fn next(mut self) -> Option<(std::io::Result<bytes::Bytes>, UploadBody)> {
        loop {
            let hasher = self.hasher.as_mut()?;
            match self.reader.next().await {
                Some(Ok(chunk)) => {
                    hasher.update(&chunk);
                    self.progress.tick();
                    if let Some(previous) = self.held.replace(chunk) {
                        return Some((Ok(previous), self));
                    }
                }
                Some(Err(e)) => {
                    self.hasher = None;
                    return Some((Err(e), self));
                }
                None => {
                    let intact =
                        self.hasher.take().map(Hasher::finish).as_ref() == Some(&self.expected);
                    *self.slot.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(if intact {
                        UploadCheck::Intact
                    } else {
                        UploadCheck::Corrupt
                    });
                    return match (intact, self.held.take()) {
                        (true, Some(last)) => Some((Ok(last), self)),
                        (true, None) => None,
                        (false, _) => Some((
                            Err(std::io::Error::other("the cached blob is damaged")),
                            self,
                        )),
                    };
                }
            }
        }
    }
}

/// What a mount attempt came to.
enum Mount {
    Mounted,
    /// Not mounted; the registry may have opened an upload session at this location.
    Upload(Option<String>),
}

/// The `Location` of a response, made absolute against `base`.
fn location(response: &Response, base: &str) -> Option<String> {
    let value = response.headers().get(LOCATION)?.to_str().ok()?;
    let base = ::url::Url::parse(&format!("{base}/")).ok()?;
    base.join(value).ok().map(|u| u.to_string())
}

/// A response whose status is transient (5xx, 429, 408) as a failure to retry, anything else as
/// the response (a `Retry-After` beyond what lockship waits is a failure too, a fatal one).
fn transient_status(http: &Http, url: &str, response: Response) -> Result<Response, Failure> {
    if response.status().is_success() {
        return Ok(response);
    }
    let failure = http.status_failure(url, response.status().as_u16(), response.headers());
    match (&failure.verdict, &failure.error) {
        (net::retry::Verdict::Retry { .. }, _) | (_, NetError::RetryTooLate { .. }) => Err(failure),
        (net::retry::Verdict::Fatal, _) => Ok(response),
    }
}

/// A network failure in registry terms.
fn lift(registry: &str, action: &str, failure: Failure) -> Failure<RegistryError> {
    Failure {
        verdict: failure.verdict,
        error: net_error(registry, action, failure.error),
    }
}

fn net_error(registry: &str, action: &str, e: NetError) -> RegistryError {
    let (registry, action) = (registry.to_string(), action.to_string());
    match e {
        NetError::Status { .. } | NetError::RetryTooLate { .. } | NetError::TooLarge { .. } => {
            RegistryError::Failed {
                registry,
                action,
                source: e,
            }
        }
        NetError::Transport { .. } | NetError::Stalled { .. } => RegistryError::Unreachable {
            registry,
            action,
            source: e,
        },
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

/// Checks that a single-platform image's config is for `platform`.
fn check_platform(
    config: &[u8],
    reference: &Reference,
    platform: &Platform,
) -> Result<(), RegistryError> {
    #[derive(Deserialize)]
    struct ConfigPlatform {
        #[serde(default)]
        os: String,
        #[serde(default)]
        architecture: String,
        variant: Option<String>,
    }
    let Ok(has) = serde_json::from_slice::<ConfigPlatform>(config) else {
        return Ok(());
    };
    if has.architecture.is_empty()
        || platform.matches(&has.os, &has.architecture, has.variant.as_deref())
    {
        return Ok(());
    }
    let mut shown = format!("{}/{}", has.os, has.architecture);
    if let Some(v) = &has.variant {
        shown.push('/');
        shown.push_str(v);
    }
    Err(RegistryError::WrongPlatform {
        reference: reference.to_string(),
        wanted: platform.to_string(),
        has: shown,
    })
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

/// Parses a manifest or index (for fuzzing the parser the build trusts with registry answers).
pub fn parse_manifest(bytes: &[u8]) -> Result<usize, String> {
    let m: ManifestJson = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let digests = m
        .layers
        .iter()
        .chain(&m.manifests)
        .chain(m.config.as_ref())
        .filter(|d| Digest::parse(&d.digest).is_some())
        .count();
    Ok(digests)
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
