//! HTTP for every server lockship talks to: package indexes, file hosts, Debian mirrors and
//! registries. One reqwest client trusting the platform's certificate store (so corporate and
//! TLS-intercepting proxies work), a connect timeout and a stall timeout on every request and
//! every body, retries with backoff for what is safe to repeat, and credentials that are sent
//! only to the origin they came with. Knows nothing of Python or images.

pub mod retry;
pub mod url;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use self::retry::{RetryPolicy, Verdict};
use self::url::{Origin, Redacted};

/// How patient to be with servers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetOptions {
    /// How long a request may go without a byte moving either way before it counts as stalled.
    pub stall_timeout: Duration,
    pub connect_timeout: Duration,
    pub retry: RetryPolicy,
    /// Load the CA store when the client is made, not at the first HTTPS request: a proxy is
    /// reached over HTTPS, so plain-HTTP requests need TLS too.
    pub eager_tls: bool,
}

impl Default for NetOptions {
    fn default() -> Self {
        NetOptions {
            stall_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            eager_tls: false,
        }
    }
}

/// Why a request failed for good. URLs are redacted; `attempts` says how many were made.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("{url}: {message}{}", after(*attempts))]
    Transport {
        url: Redacted,
        message: String,
        attempts: u32,
    },
    #[error("{url}: the server sent nothing for {seconds} s{}", after(*attempts))]
    Stalled {
        url: Redacted,
        seconds: u64,
        attempts: u32,
    },
    /// A body that keeps arriving, too slowly to ever end (a byte every few seconds).
    #[error("{url}: the server sent {bytes} bytes in {seconds} s, too slowly to finish{}", after(*attempts))]
    Trickling {
        url: Redacted,
        bytes: u64,
        seconds: u64,
        attempts: u32,
    },
    #[error("{url}: HTTP {status}{}{}", reason(*status), after(*attempts))]
    Status {
        url: Redacted,
        status: u16,
        attempts: u32,
    },
    #[error("{url}: the server asked to wait {seconds} s before trying again (lockship waits at most {limit} s)")]
    RetryTooLate {
        url: Redacted,
        seconds: u64,
        limit: u64,
    },
    #[error("{url}: the answer is larger than {limit} bytes")]
    TooLarge { url: Redacted, limit: u64 },
    /// The CA store could not be read, at the first HTTPS request (nothing was sent).
    #[error("{url}: cannot set up HTTPS: {message}")]
    Tls { url: Redacted, message: String },
}

fn after(attempts: u32) -> String {
    if attempts > 1 {
        format!(" (after {attempts} attempts)")
    } else {
        String::new()
    }
}

fn reason(status: u16) -> String {
    reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .map(|r| format!(" {r}"))
        .unwrap_or_default()
}

impl NetError {
    /// The HTTP status, when the server answered with one.
    pub fn status(&self) -> Option<u16> {
        match self {
            NetError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    fn set_attempts(&mut self, n: u32) {
        match self {
            NetError::Transport { attempts, .. }
            | NetError::Stalled { attempts, .. }
            | NetError::Trickling { attempts, .. }
            | NetError::Status { attempts, .. } => *attempts = n,
            NetError::RetryTooLate { .. } | NetError::TooLarge { .. } | NetError::Tls { .. } => {}
        }
    }
}

/// How fast a body arrives, over windows as long as the stall timeout: a server that sends a
/// byte now and then never stalls, but must not hold a build forever. Each window must bring
/// [`Pace::MIN_RATE`] bytes a second on average (curl's `--speed-limit` idea; any real link
/// does, and at 1 KiB/s a large layer would take days anyway).
#[derive(Debug)]
pub struct Pace {
    window_start: std::time::Instant,
    in_window: u64,
}

impl Default for Pace {
    fn default() -> Self {
        Pace {
            window_start: std::time::Instant::now(),
            in_window: 0,
        }
    }
}

impl Pace {
    pub const MIN_RATE: u64 = 1024;

    /// Counts `bytes` received; when a window of `window` ended with less than
    /// [`Pace::MIN_RATE`] a second, returns what it brought and how long it lasted.
    pub fn add(&mut self, bytes: u64, window: Duration) -> Option<(u64, u64)> {
        self.in_window += bytes;
        let elapsed = self.window_start.elapsed();
        if elapsed < window {
            return None;
        }
        let wanted = (Self::MIN_RATE as f64 * elapsed.as_secs_f64()) as u64;
        let slow = (self.in_window < wanted).then_some((self.in_window, elapsed.as_secs()));
        *self = Pace::default();
        slow
    }
}

/// One failed attempt and whether it may be repeated.
#[derive(Debug)]
pub struct Failure<E = NetError> {
    pub error: E,
    pub verdict: Verdict,
}

impl<E> Failure<E> {
    pub fn fatal(error: E) -> Self {
        Failure {
            error,
            verdict: Verdict::Fatal,
        }
    }
    pub fn transient(error: E) -> Self {
        Failure {
            error,
            verdict: Verdict::Retry { after: None },
        }
    }

    /// The same failure, its error converted (a network failure inside a download, say).
    pub fn lift<F: From<E>>(self) -> Failure<F> {
        Failure {
            error: self.error.into(),
            verdict: self.verdict,
        }
    }
}

impl From<Failure<NetError>> for NetError {
    fn from(f: Failure<NetError>) -> Self {
        f.error
    }
}

/// Watches bytes move (downloads and uploads), for progress bars. Library code never draws:
/// the CLI implements this.
pub trait TransferObserver: Send + Sync {
    /// A transfer starts: `label` says what (a file name, a digest), `total` its size if known.
    /// Returns an id for the calls that follow.
    fn begin(&self, label: &str, total: Option<u64>, upload: bool) -> u64;
    fn advance(&self, id: u64, bytes: u64);
    /// The transfer ended (done, failed or dropped).
    fn end(&self, id: u64);
}

/// One transfer being watched; ends when dropped.
pub struct Transfer {
    observer: Option<Arc<dyn TransferObserver>>,
    id: u64,
}

impl Transfer {
    pub fn advance(&self, bytes: u64) {
        if let Some(o) = &self.observer {
            o.advance(self.id, bytes);
        }
    }
}

impl Drop for Transfer {
    fn drop(&mut self) {
        if let Some(o) = &self.observer {
            o.end(self.id);
        }
    }
}

/// The HTTP client, cheap to clone. Credentials registered with [`Http::add_credentials`] go
/// with requests to their own origin (scheme, host, port) and nowhere else; reqwest drops them
/// on redirects to another origin.
#[derive(Clone)]
pub struct Http {
    /// For plain-HTTP URLs: no CA store loaded (reading the system's costs ~30 ms, which a
    /// build against a loopback registry, or one that needs no network, need not pay).
    plain: reqwest::Client,
    /// For HTTPS: made at the first HTTPS request, trusting the platform's store.
    tls: Arc<std::sync::OnceLock<Result<reqwest::Client, String>>>,
    opts: NetOptions,
    credentials: Arc<RwLock<HashMap<Origin, (String, String)>>>,
    /// Where each origin's credentials came from, or where lockship looked and found none: for
    /// the message when a server refuses (never the secret itself).
    credential_notes: Arc<RwLock<HashMap<Origin, String>>>,
    observer: Option<Arc<dyn TransferObserver>>,
}

/// Where a response redirects to, when that is an HTTPS URL (which the plain client does not
/// follow).
fn https_redirect(response: &reqwest::Response) -> Option<::url::Url> {
    if !response.status().is_redirection() {
        return None;
    }
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)?
        .to_str()
        .ok()?;
    let url = response.url().join(location).ok()?;
    (url.scheme() == "https").then_some(url)
}

/// The client settings every request shares.
fn client_builder(opts: &NetOptions) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .user_agent(concat!("lockship/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(opts.connect_timeout)
        // Belt and braces: lockship times each send and each body chunk itself (and says so
        // more clearly); reqwest's own timeout, a little later, catches any read it misses.
        .read_timeout(opts.stall_timeout + Duration::from_secs(5))
}

/// The client trusting the platform's CA store (or what `SSL_CERT_FILE`/`SSL_CERT_DIR` name).
fn tls_client(opts: &NetOptions) -> Result<reqwest::Client, String> {
    client_builder(opts).build().map_err(|e| root_cause(&e))
}

/// Why no HTTP client could be made.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up HTTPS: {message}")]
pub struct ClientError {
    pub message: String,
}

impl Http {
    /// The client, trusting the platform's certificate store (which `SSL_CERT_FILE` and
    /// `SSL_CERT_DIR` replace when set) and taking proxies from `HTTPS_PROXY`, `HTTP_PROXY`,
    /// `ALL_PROXY` and `NO_PROXY`, as curl and pip do. The store is read at the first HTTPS
    /// request (then a store with no CA certificate is that request's `NetError::Tls`), or
    /// here with `eager_tls` (then it fails here).
    pub fn new(opts: &NetOptions) -> Result<Http, ClientError> {
        let tls = Arc::new(std::sync::OnceLock::new());
        let plain = if opts.eager_tls {
            let client = tls_client(opts).map_err(|message| ClientError { message })?;
            let _ = tls.set(Ok(client.clone()));
            client
        } else {
            // A redirect to HTTPS is not followed by this client (it could not verify the
            // server): `send` sends it again through the one that can.
            let policy = reqwest::redirect::Policy::custom(|attempt| {
                if attempt.url().scheme() == "https" {
                    attempt.stop()
                } else if attempt.previous().len() >= 10 {
                    attempt.error("too many redirects")
                } else {
                    attempt.follow()
                }
            });
            client_builder(opts)
                .tls_certs_only(Vec::new())
                .redirect(policy)
                .build()
                .map_err(|e| ClientError {
                    message: root_cause(&e),
                })?
        };
        Ok(Http {
            plain,
            tls,
            opts: opts.clone(),
            credentials: Arc::default(),
            credential_notes: Arc::default(),
            observer: None,
        })
    }

    /// The client for `url`: the plain one for `http://`, else the one trusting the CA store
    /// (made now if it was not yet); why HTTPS cannot be set up, when it cannot.
    fn client(&self, url: &str) -> Result<&reqwest::Client, &str> {
        let plain = url
            .get(..7)
            .is_some_and(|s| s.eq_ignore_ascii_case("http://"));
        if plain {
            return Ok(&self.plain);
        }
        self.tls
            .get_or_init(|| tls_client(&self.opts))
            .as_ref()
            .map_err(String::as_str)
    }

    /// A failure for `url` when HTTPS cannot be set up (checked before anything is sent).
    fn tls_unavailable(&self, url: &str) -> Option<Failure> {
        let message = self.client(url).err()?;
        Some(Failure::fatal(NetError::Tls {
            url: self.shown(url),
            message: message.to_string(),
        }))
    }

    /// The same client, reporting the bytes of downloads and uploads to `observer`.
    pub fn observed(mut self, observer: Option<Arc<dyn TransferObserver>>) -> Http {
        self.observer = observer;
        self
    }

    /// Starts watching a transfer of `total` bytes (if known) labelled by `url`'s last path
    /// segment (never its query or user info).
    pub fn transfer(&self, url: &str, total: Option<u64>, upload: bool) -> Transfer {
        if self.observer.is_none() {
            return self.transfer_labelled("", total, upload);
        }
        let label = ::url::Url::parse(url)
            .ok()
            .and_then(|u| {
                u.path_segments()
                    .and_then(|mut s| s.rfind(|p| !p.is_empty()).map(String::from))
            })
            .unwrap_or_default();
        self.transfer_labelled(&label, total, upload)
    }

    /// Starts watching a transfer shown as `label`.
    pub fn transfer_labelled(&self, label: &str, total: Option<u64>, upload: bool) -> Transfer {
        match &self.observer {
            Some(observer) => Transfer {
                id: observer.begin(label, total, upload),
                observer: Some(observer.clone()),
            },
            None => Transfer {
                observer: None,
                id: 0,
            },
        }
    }

    pub fn options(&self) -> &NetOptions {
        &self.opts
    }

    /// Takes the user info out of `url`, remembers it for that URL's origin, and returns the
    /// URL without it (the only form lockship passes around).
    pub fn add_credentials(&self, url: &str) -> String {
        let split = url::split_credentials(url);
        if let (Some(creds), Some(origin)) = (split.credentials, Origin::of(&split.url)) {
            if let Ok(mut map) = self.credentials.write() {
                map.insert(origin, creds);
            }
        }
        split.url
    }

    /// Sends `user` and `password` with requests to `url`'s origin, unless that origin has
    /// credentials already (user info in a URL wins); `from` says where they came from.
    pub fn add_basic(&self, url: &str, user: &str, password: &str, from: &str) {
        let Some(origin) = Origin::of(url) else {
            return;
        };
        if let Ok(mut map) = self.credentials.write() {
            if map.contains_key(&origin) {
                return;
            }
            map.insert(origin.clone(), (user.to_string(), password.to_string()));
        }
        self.note(url, &format!("credentials from {from}"));
    }

    /// `url` with the credentials registered for its origin as user info, for a tool lockship
    /// hands the URL to (pip in a builder container). Never for a message or a record.
    pub fn with_credentials(&self, url: &str) -> String {
        let creds = Origin::of(url).and_then(|origin| {
            self.credentials
                .read()
                .ok()
                .and_then(|map| map.get(&origin).cloned())
        });
        match (creds, ::url::Url::parse(url)) {
            (Some((user, password)), Ok(mut parsed)) => {
                if parsed.set_username(&user).is_ok()
                    && parsed.set_password(Some(&password)).is_ok()
                {
                    parsed.to_string()
                } else {
                    url.to_string()
                }
            }
            _ => url.to_string(),
        }
    }

    /// Whether requests to `url`'s origin carry credentials.
    pub fn has_credentials(&self, url: &str) -> bool {
        Origin::of(url).is_some_and(|origin| {
            self.credentials
                .read()
                .is_ok_and(|map| map.contains_key(&origin))
        })
    }

    /// Records, for messages, where `url`'s credentials came from or where none were found.
    pub fn note(&self, url: &str, note: &str) {
        if let (Some(origin), Ok(mut map)) = (Origin::of(url), self.credential_notes.write()) {
            map.insert(origin, note.to_string());
        }
    }

    /// What [`Http::note`] recorded for `url`'s origin: which credentials were sent, or where
    /// lockship looked for them.
    pub fn credential_note(&self, url: &str) -> String {
        let origin = Origin::of(url);
        let note = origin.as_ref().and_then(|o| {
            self.credential_notes
                .read()
                .ok()
                .and_then(|map| map.get(o).cloned())
        });
        match note {
            Some(note) => note,
            None if self.has_credentials(url) => "credentials from the URL's user info".into(),
            None => "no credentials".into(),
        }
    }

    /// `url` for a message: with `user:****@` when requests to its origin carry credentials, so
    /// the reader knows which account was used and never sees its password.
    pub fn shown(&self, url: &str) -> Redacted {
        let user = Origin::of(url).and_then(|origin| {
            self.credentials
                .read()
                .ok()
                .and_then(|map| map.get(&origin).map(|(user, _)| user.clone()))
        });
        match user {
            Some(user) if url::split_credentials(url).credentials.is_none() => {
                url::redact_with_user(url, &user)
            }
            _ => url::redact(url),
        }
    }

    /// A request to `url` carrying the credentials of its origin, if any were registered.
    pub fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let builder = self.client(url).unwrap_or(&self.plain).request(method, url);
        let creds = Origin::of(url).and_then(|origin| {
            self.credentials
                .read()
                .ok()
                .and_then(|map| map.get(&origin).cloned())
        });
        match creds {
            Some((user, pass)) => builder.basic_auth(user, Some(pass)),
            None => builder,
        }
    }

    /// A request with no credentials attached (registries authenticate their own way).
    pub fn bare_request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.client(url).unwrap_or(&self.plain).request(method, url)
    }

    /// Runs `attempt` (given its number, from 0) until it succeeds or fails for good, waiting
    /// between attempts as the retry policy says. The final error says how many attempts ran.
    pub async fn retry<T, E, F, Fut>(&self, _url: &str, mut attempt: F) -> Result<T, E>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, Failure<E>>>,
        E: Attempts,
    {
        let mut waited = Duration::ZERO;
        let mut n = 0;
        loop {
            match attempt(n).await {
                Ok(value) => return Ok(value),
                Err(Failure {
                    mut error, verdict, ..
                }) => {
                    n += 1;
                    let after = match verdict {
                        Verdict::Fatal => None,
                        Verdict::Retry { after } => Some(after),
                    };
                    let Some(asked) = after else {
                        error.set_attempts(n);
                        return Err(error);
                    };
                    match self.opts.retry.wait(n, asked, waited) {
                        Some(wait) => {
                            tokio::time::sleep(wait).await;
                            waited += wait;
                        }
                        None => {
                            error.set_attempts(n);
                            return Err(error);
                        }
                    }
                }
            }
        }
    }

    /// Sends `request`, failing as stalled if no answer starts within the stall timeout.
    pub async fn send(
        &self,
        url: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, Failure> {
        if let Some(failure) = self.tls_unavailable(url) {
            return Err(failure);
        }
        let again = request.try_clone();
        let response = match tokio::time::timeout(self.opts.stall_timeout, request.send()).await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => return Err(self.transport_failure(url, &e)),
            Err(_) => return Err(self.stalled(url)),
        };
        match (https_redirect(&response), again) {
            (Some(location), Some(again)) => self.follow(response.status(), location, again).await,
            _ => Ok(response),
        }
    }

    /// A plain-HTTP request that was redirected to `location` (HTTPS), sent there through the
    /// client that trusts the CA store, as reqwest would have followed it: credentials only to
    /// the same origin, and after a 303 (or a 301/302 to anything but GET or HEAD) as a GET
    /// with no body.
    async fn follow(
        &self,
        status: reqwest::StatusCode,
        location: ::url::Url,
        again: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, Failure> {
        let shown = location.to_string();
        if let Some(failure) = self.tls_unavailable(&shown) {
            return Err(failure);
        }
        let (_, request) = again.build_split();
        let mut request = request.map_err(|e| self.transport_failure(&shown, &e))?;
        if Origin::of(request.url().as_str()) != Origin::of(&shown) {
            for header in [
                reqwest::header::AUTHORIZATION,
                reqwest::header::COOKIE,
                reqwest::header::PROXY_AUTHORIZATION,
            ] {
                request.headers_mut().remove(header);
            }
        }
        let keeps_method = matches!(
            *request.method(),
            reqwest::Method::GET | reqwest::Method::HEAD
        ) || !matches!(status.as_u16(), 301..=303);
        if status.as_u16() == 303 || !keeps_method {
            *request.method_mut() = reqwest::Method::GET;
            *request.body_mut() = None;
        }
        *request.url_mut() = location;
        let client = self.client(&shown).unwrap_or(&self.plain).clone();
        let request = reqwest::RequestBuilder::from_parts(client, request);
        match tokio::time::timeout(self.opts.stall_timeout, request.send()).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => Err(self.transport_failure(&shown, &e)),
            Err(_) => Err(self.stalled(&shown)),
        }
    }

    /// Sends a request whose body reports its progress in `progress`: it fails as stalled only
    /// when neither the body moves nor an answer comes for the stall timeout, so a big upload
    /// on a slow link is fine and an upload the server stopped reading is not.
    pub async fn send_with_progress(
        &self,
        url: &str,
        request: reqwest::RequestBuilder,
        progress: &Progress,
    ) -> Result<reqwest::Response, Failure> {
        if let Some(failure) = self.tls_unavailable(url) {
            return Err(failure);
        }
        let stall = self.opts.stall_timeout;
        let watchdog = async {
            loop {
                let idle = progress.idle();
                if idle >= stall {
                    return;
                }
                tokio::time::sleep(stall - idle).await;
            }
        };
        tokio::select! {
            result = request.send() => result.map_err(|e| self.transport_failure(url, &e)),
            () = watchdog => Err(self.stalled(url)),
        }
    }

    /// The next chunk of a response body, failing as stalled after the stall timeout with
    /// nothing, and as trickling when `pace` finds the body too slow to ever end.
    pub async fn chunk(
        &self,
        url: &str,
        response: &mut reqwest::Response,
        pace: &mut Pace,
    ) -> Result<Option<Bytes>, Failure> {
        let chunk = match tokio::time::timeout(self.opts.stall_timeout, response.chunk()).await {
            Ok(Ok(chunk)) => chunk,
            Ok(Err(e)) => return Err(self.transport_failure(url, &e)),
            Err(_) => return Err(self.stalled(url)),
        };
        let received = chunk.as_ref().map_or(0, |c| c.len() as u64);
        if let Some((bytes, seconds)) = pace.add(received, self.opts.stall_timeout) {
            if chunk.is_some() {
                return Err(Failure::transient(NetError::Trickling {
                    url: self.shown(url),
                    bytes,
                    seconds,
                    attempts: 1,
                }));
            }
        }
        Ok(chunk)
    }

    /// Reads a whole (small) body, refusing more than `limit` bytes.
    pub async fn body(
        &self,
        url: &str,
        mut response: reqwest::Response,
        limit: u64,
    ) -> Result<Bytes, Failure> {
        if response.content_length().is_some_and(|n| n > limit) {
            return Err(Failure::fatal(NetError::TooLarge {
                url: self.shown(url),
                limit,
            }));
        }
        let mut body = Vec::new();
        let mut pace = Pace::default();
        while let Some(chunk) = self.chunk(url, &mut response, &mut pace).await? {
            if body.len() as u64 + chunk.len() as u64 > limit {
                return Err(Failure::fatal(NetError::TooLarge {
                    url: self.shown(url),
                    limit,
                }));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(body))
    }

    /// GETs `url` (with its origin's credentials and the given headers), retrying transient
    /// failures, and returns the final URL (after redirects) and the body, at most `limit` bytes.
    pub async fn get_bytes(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        limit: u64,
    ) -> Result<(String, Bytes), NetError> {
        self.retry(url, |_| async {
            let mut request = self.request(reqwest::Method::GET, url);
            for (k, v) in headers {
                request = request.header(*k, *v);
            }
            let response = self.success(url, self.send(url, request).await?)?;
            let final_url = response.url().to_string();
            let body = self.body(url, response, limit).await?;
            Ok((final_url, body))
        })
        .await
    }

    /// `response` if its status is a success, else the failure it stands for.
    pub fn success(
        &self,
        url: &str,
        response: reqwest::Response,
    ) -> Result<reqwest::Response, Failure> {
        let status = response.status().as_u16();
        if response.status().is_success() {
            return Ok(response);
        }
        Err(self.status_failure(url, status, response.headers()))
    }

    /// The failure an unsuccessful status stands for: transient or not, and when to come back.
    /// A server asking to wait longer than the policy allows gets a fatal error, not a hang.
    pub fn status_failure(
        &self,
        url: &str,
        status: u16,
        headers: &reqwest::header::HeaderMap,
    ) -> Failure {
        let retry_after = headers
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry::parse_retry_after(v, SystemTime::now()));
        let limit = self.opts.retry.max_retry_after;
        let verdict = retry::status_verdict(status, retry_after);
        if let (Verdict::Retry { .. }, Some(asked)) = (verdict, retry_after) {
            if asked > limit {
                return Failure::fatal(NetError::RetryTooLate {
                    url: self.shown(url),
                    seconds: asked.as_secs(),
                    limit: limit.as_secs(),
                });
            }
        }
        Failure {
            error: NetError::Status {
                url: self.shown(url),
                status,
                attempts: 1,
            },
            verdict,
        }
    }

    /// A transport error (connect, reset, timeout, broken body) as a failure worth retrying,
    /// with the innermost cause as the message (reqwest's own text would repeat the URL).
    pub fn transport_failure(&self, url: &str, e: &reqwest::Error) -> Failure {
        if e.is_timeout() && !e.is_connect() {
            return self.stalled(url);
        }
        let verdict = if e.is_builder() || e.is_redirect() {
            Verdict::Fatal
        } else {
            Verdict::Retry { after: None }
        };
        Failure {
            error: NetError::Transport {
                url: self.shown(url),
                message: root_cause(e),
                attempts: 1,
            },
            verdict,
        }
    }

    fn stalled(&self, url: &str) -> Failure {
        Failure::transient(NetError::Stalled {
            url: self.shown(url),
            seconds: self.opts.stall_timeout.as_secs(),
            attempts: 1,
        })
    }
}

/// Errors that carry an attempt count, so [`Http::retry`] can say how hard it tried.
pub trait Attempts {
    fn set_attempts(&mut self, n: u32);
}

impl Attempts for NetError {
    fn set_attempts(&mut self, n: u32) {
        NetError::set_attempts(self, n)
    }
}

/// The innermost cause of a reqwest error, without its URL.
fn root_cause(e: &reqwest::Error) -> String {
    let mut message = if e.is_timeout() {
        "timed out".to_string()
    } else {
        e.to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message = s.to_string();
        source = s.source();
    }
    url::redact(&message).to_string()
}

/// When the body of a streaming request last moved.
#[derive(Clone, Debug)]
pub struct Progress {
    start: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Default for Progress {
    fn default() -> Self {
        Progress {
            start: Instant::now(),
            last_ms: Arc::default(),
        }
    }
}

impl Progress {
    /// Notes that bytes moved now.
    pub fn tick(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn idle(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_that_trickles_is_slow_and_one_that_flows_is_not() {
        let window = Duration::from_millis(30);
        let mut trickle = Pace::default();
        assert_eq!(trickle.add(1, window), None, "the window is not over");
        std::thread::sleep(window);
        let (bytes, _) = trickle.add(1, window).expect("a window ended with 2 bytes");
        assert_eq!(bytes, 2);
        let mut flow = Pace::default();
        flow.add(Pace::MIN_RATE, window);
        std::thread::sleep(window);
        assert_eq!(flow.add(1, window), None);
    }

    #[test]
    fn the_ca_store_is_read_at_the_first_https_request_only() {
        let http = Http::new(&NetOptions::default()).unwrap();
        let _ = http.bare_request(reqwest::Method::GET, "http://127.0.0.1:9/v2/");
        let _ = http.request(reqwest::Method::GET, "HTTP://localhost:9/simple/");
        assert!(http.tls.get().is_none(), "plain HTTP needs no CA store");
        let _ = http.bare_request(reqwest::Method::GET, "https://registry.invalid/v2/");
        assert!(http.tls.get().is_some());

        let eager = Http::new(&NetOptions {
            eager_tls: true,
            ..NetOptions::default()
        })
        .unwrap();
        assert!(eager.tls.get().is_some(), "read when the client is made");
    }

    #[test]
    fn only_redirects_to_https_are_sent_again_through_the_tls_client() {
        let response = |status: u16, location: &str| {
            reqwest::Response::from(
                ::http::Response::builder()
                    .status(status)
                    .header("location", location)
                    .body(Vec::<u8>::new())
                    .unwrap(),
            )
        };
        let to = |r: &reqwest::Response| https_redirect(r).map(|u| u.to_string());
        assert_eq!(
            to(&response(302, "https://blobs.example/x?sig=1")).as_deref(),
            Some("https://blobs.example/x?sig=1")
        );
        assert_eq!(to(&response(307, "http://other.example/x")), None);
        assert_eq!(to(&response(200, "https://blobs.example/x")), None);
        assert_eq!(to(&response(302, "/relative")), None);
    }
}
