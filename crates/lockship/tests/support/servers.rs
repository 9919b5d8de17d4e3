//! Loopback HTTP servers for tests, all bound to 127.0.0.1 and stopped when dropped:
//!
//! - [`FaultProxy`] forwards to a real server (the reference registry, an index) and breaks
//!   the requests its rules pick: an error status (with `Retry-After`), a connection dropped
//!   mid-body, a stall, a flipped byte. Faults a real server cannot be made to produce on cue,
//!   which is the one thing a fake is for here; everything else is the real server's answer.
//! - [`StaticServer`] serves fixed files (a PEP 691 index and the wheels a test crafted),
//!   optionally behind basic auth, and logs what reached it (to check where credentials went).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};

type Body = BoxBody<Bytes, std::io::Error>;

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A server thread with its own runtime; dropping it stops both.
struct Running {
    addr: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve<F, Fut>(handler: F) -> Running
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let mut stopped = stopped;
            loop {
                let (stream, _) = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok(a) => a,
                        Err(_) => continue,
                    },
                    _ = &mut stopped => break,
                };
                let handler = handler.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let handler = handler.clone();
                        async move { Ok::<_, Infallible>(handler(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        runtime.shutdown_background();
    });
    Running {
        addr,
        stop: Some(stop),
        thread: Some(thread),
    }
}

/// One request as a server saw it.
#[derive(Clone, Debug)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub status: u16,
    pub authorization: Option<String>,
    /// The fault injected, if any.
    pub fault: Option<String>,
    /// When the request arrived.
    pub at: std::time::Instant,
}

/// What to do to a request a rule picks.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer this status instead of forwarding.
    Status(u16),
    /// Answer this status with `Retry-After: <value>`.
    RetryAfter(u16, String),
    /// Forward, then cut the connection after this many bytes of the answer's body.
    Drop(usize),
    /// Forward, send this many bytes of the body, then go silent for this long.
    Stall(usize, Duration),
    /// Forward, sending the body one byte at a time, this long apart: never silent for long,
    /// never done.
    Trickle(Duration),
    /// Forward, with the body's byte at this offset flipped.
    Flip(usize),
    /// Forward, then answer this status instead of the upstream's: the request took effect,
    /// and its answer was lost on the way back.
    Lost(u16),
}

/// Which requests a fault hits: those matching `method` and containing `path`, every `every`th
/// of them (1: all), at most `times` times.
#[derive(Clone, Debug)]
pub struct Rule {
    pub method: Option<&'static str>,
    pub path: Option<String>,
    pub every: usize,
    pub times: usize,
    pub fault: Fault,
}

impl Rule {
    /// Every `every`th request, whatever it is.
    pub fn every(every: usize, fault: Fault) -> Rule {
        Rule {
            method: None,
            path: None,
            every,
            times: usize::MAX,
            fault,
        }
    }

    /// Requests whose path contains `path`.
    pub fn on(path: &str, fault: Fault) -> Rule {
        Rule {
            method: None,
            path: Some(path.to_string()),
            every: 1,
            times: usize::MAX,
            fault,
        }
    }

    pub fn method(mut self, method: &'static str) -> Rule {
        self.method = Some(method);
        self
    }

    pub fn times(mut self, times: usize) -> Rule {
        self.times = times;
        self
    }

    pub fn every_nth(mut self, every: usize) -> Rule {
        self.every = every;
        self
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.method.is_none_or(|m| m == method)
            && self.path.as_deref().is_none_or(|p| path.contains(p))
    }
}

#[derive(Default)]
struct ProxyState {
    rules: Vec<(Rule, usize, usize)>,
    log: Vec<Logged>,
    /// Method and path of requests whose last attempt got a fault.
    faulted: std::collections::HashSet<String>,
    /// Faults periodic rules gave each method and path. Concurrent requests can share one
    /// (every upload POSTs to the same path), so sparing "the retry" cannot tell them apart;
    /// capping the faults per path below lockship's attempts keeps every one transient.
    periodic_faults: std::collections::HashMap<String, usize>,
}

/// At most this many periodic faults per method and path: one fewer than lockship's default
/// attempts (5), so no request can meet a periodic fault on every attempt.
const PERIODIC_FAULTS_PER_PATH: usize = 4;

/// A fault-injecting proxy in front of `upstream` (host:port, plain HTTP).
pub struct FaultProxy {
    running: Running,
    state: Arc<Mutex<ProxyState>>,
}

impl FaultProxy {
    pub fn start(upstream: &str) -> FaultProxy {
        let state: Arc<Mutex<ProxyState>> = Arc::default();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let upstream = upstream.to_string();
        // The proxy's own address is known once it listens; handlers read it from here.
        let own: Arc<Mutex<String>> = Arc::default();
        let running = {
            let (state, own) = (state.clone(), own.clone());
            serve(move |req| {
                let (state, client, upstream, own) =
                    (state.clone(), client.clone(), upstream.clone(), own.clone());
                async move { proxy(req, &state, &client, &upstream, &own).await }
            })
        };
        *own.lock().unwrap() = running.addr.clone();
        FaultProxy { running, state }
    }

    pub fn addr(&self) -> &str {
        &self.running.addr
    }

    /// Replaces the rules (counts start over).
    pub fn set_rules(&self, rules: Vec<Rule>) {
        self.state.lock().unwrap().rules = rules.into_iter().map(|r| (r, 0, 0)).collect();
    }

    pub fn log(&self) -> Vec<Logged> {
        self.state.lock().unwrap().log.clone()
    }

    /// How many faults were injected so far.
    pub fn injected(&self) -> usize {
        self.state
            .lock()
            .unwrap()
            .log
            .iter()
            .filter(|l| l.fault.is_some())
            .count()
    }
}

async fn proxy(
    req: Request<Incoming>,
    state: &Mutex<ProxyState>,
    client: &reqwest::Client,
    upstream: &str,
    own: &Mutex<String>,
) -> Response<Body> {
    let arrived = std::time::Instant::now();
    let method = req.method().to_string();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let authorization = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let fault = {
        let mut s = state.lock().unwrap();
        let mut picked = None;
        // Every matching rule counts the request; the first that fires injects its fault. A
        // periodic rule spares the retry of a request it (or another rule) just failed: its
        // faults are transient, and concurrent requests could otherwise line one request's
        // every attempt up with the period.
        // An upload's closing PUT goes to a new session's URL on every attempt: it is the
        // same request when it names the same blob.
        let key = match path.split_once("digest=") {
            Some((_, digest)) if path.contains("/blobs/uploads/") => {
                format!(
                    "{method} upload of {}",
                    digest.split('&').next().unwrap_or("")
                )
            }
            _ => format!("{method} {path}"),
        };
        let retried = s.faulted.contains(&key);
        let capped = s.periodic_faults.get(&key).copied().unwrap_or(0) >= PERIODIC_FAULTS_PER_PATH;
        let mut periodic = false;
        for (rule, seen, injected) in s.rules.iter_mut() {
            if rule.matches(&method, &path) {
                *seen += 1;
                let spared = rule.every > 1 && (retried || capped);
                if picked.is_none() && *seen % rule.every == 0 && *injected < rule.times && !spared
                {
                    *injected += 1;
                    picked = Some(rule.fault.clone());
                    periodic = rule.every > 1;
                }
            }
        }
        if periodic {
            *s.periodic_faults.entry(key.clone()).or_default() += 1;
        }
        if picked.is_some() {
            s.faulted.insert(key);
        } else {
            s.faulted.remove(&key);
        }
        picked
    };
    let log = |status: u16, fault: &Option<Fault>| {
        state.lock().unwrap().log.push(Logged {
            method: method.clone(),
            path: path.clone(),
            status,
            authorization: authorization.clone(),
            fault: fault.as_ref().map(|f| format!("{f:?}")),
            at: arrived,
        });
    };
    let headers = req.headers().clone();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    match &fault {
        Some(Fault::Status(code)) | Some(Fault::RetryAfter(code, _)) => {
            log(*code, &fault);
            let mut response = Response::builder().status(*code);
            if let Some(Fault::RetryAfter(_, after)) = &fault {
                response = response.header("retry-after", after.as_str());
            }
            return response.body(full("injected fault\n")).unwrap();
        }
        _ => {}
    }
    let proxy_addr = own.lock().unwrap().clone();
    let mut forward = client.request(
        reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
        format!("http://{upstream}{path}"),
    );
    for (name, value) in &headers {
        if !["host", "content-length", "transfer-encoding", "connection"].contains(&name.as_str()) {
            forward = forward.header(name.as_str(), value.as_bytes());
        }
    }
    // The registry builds upload locations from Host: keep them pointing at the proxy.
    forward = forward
        .header("host", proxy_addr.as_str())
        .header("x-forwarded-host", proxy_addr.as_str())
        .body(body);
    let answer = match forward.send().await {
        Ok(a) => a,
        Err(e) => {
            log(502, &fault);
            return Response::builder()
                .status(502)
                .body(full(format!("proxy: {e}\n")))
                .unwrap();
        }
    };
    if let Some(Fault::Lost(code)) = fault {
        log(code, &fault);
        return Response::builder()
            .status(code)
            .body(full("injected fault after forwarding\n"))
            .unwrap();
    }
    let status = answer.status().as_u16();
    let mut response = Response::builder().status(status);
    for (name, value) in answer.headers() {
        if ["content-length", "transfer-encoding", "connection"].contains(&name.as_str()) {
            continue;
        }
        if name == "location" {
            let text = value.to_str().unwrap_or("").replace(upstream, &proxy_addr);
            response = response.header("location", text);
        } else {
            response = response.header(name.as_str(), value.as_bytes());
        }
    }
    let mut bytes = answer.bytes().await.unwrap_or_default().to_vec();
    log(status, &fault);
    let len = bytes.len();
    let is_head = method == "HEAD";
    match fault {
        Some(Fault::Flip(at)) if at < len => {
            bytes[at] ^= 0xff;
            response.body(full(bytes)).unwrap()
        }
        Some(Fault::Drop(after)) if !is_head => {
            let part = Bytes::from(bytes[..after.min(len)].to_vec());
            let frames = futures::stream::iter(vec![
                Ok(Frame::data(part)),
                Err(std::io::Error::other(
                    "connection dropped by the fault proxy",
                )),
            ]);
            response
                .header("content-length", len)
                .body(BodyExt::boxed(StreamBody::new(frames)))
                .unwrap()
        }
        Some(Fault::Trickle(pause)) if !is_head => {
            let bytes = Bytes::from(bytes.to_vec());
            let frames = futures::stream::unfold(0usize, move |at| {
                let bytes = bytes.clone();
                async move {
                    if at >= bytes.len() {
                        return None;
                    }
                    if at > 0 {
                        tokio::time::sleep(pause).await;
                    }
                    Some((Ok(Frame::data(bytes.slice(at..at + 1))), at + 1))
                }
            });
            response
                .header("content-length", len)
                .body(BodyExt::boxed(StreamBody::new(frames)))
                .unwrap()
        }
        Some(Fault::Stall(after, pause)) if !is_head => {
            let (head, tail) = bytes.split_at(after.min(len));
            let (head, tail) = (Bytes::from(head.to_vec()), Bytes::from(tail.to_vec()));
            let frames = futures::stream::unfold(0u8, move |step| {
                let (head, tail) = (head.clone(), tail.clone());
                async move {
                    match step {
                        0 => Some((Ok(Frame::data(head)), 1)),
                        1 => {
                            tokio::time::sleep(pause).await;
                            Some((Ok(Frame::data(tail)), 2))
                        }
                        _ => None,
                    }
                }
            });
            response
                .header("content-length", len)
                .body(BodyExt::boxed(StreamBody::new(frames)))
                .unwrap()
        }
        _ => {
            if is_head {
                response.body(full(Bytes::new())).unwrap()
            } else {
                response.body(full(bytes)).unwrap()
            }
        }
    }
}

#[derive(Default)]
struct StaticState {
    files: HashMap<String, (String, Bytes)>,
    auth: Option<String>,
    log: Vec<Logged>,
}

/// Fixed files on a loopback port, optionally behind basic auth.
pub struct StaticServer {
    running: Running,
    state: Arc<Mutex<StaticState>>,
}

impl StaticServer {
    /// A server that answers every request with 401 unless it carries `user:password`.
    pub fn start(auth: Option<(&str, &str)>) -> StaticServer {
        use base64::Engine;
        let state = Arc::new(Mutex::new(StaticState {
            auth: auth.map(|(u, p)| {
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
                )
            }),
            ..Default::default()
        }));
        let running = {
            let state = state.clone();
            serve(move |req| {
                let state = state.clone();
                async move { serve_static(req, &state) }
            })
        };
        StaticServer { running, state }
    }

    pub fn addr(&self) -> &str {
        &self.running.addr
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.running.addr)
    }

    /// Serves `bytes` at `path`.
    pub fn put(&self, path: &str, content_type: &str, bytes: impl Into<Bytes>) {
        self.state
            .lock()
            .unwrap()
            .files
            .insert(path.to_string(), (content_type.to_string(), bytes.into()));
    }

    pub fn log(&self) -> Vec<Logged> {
        self.state.lock().unwrap().log.clone()
    }
}

fn serve_static(req: Request<Incoming>, state: &Mutex<StaticState>) -> Response<Body> {
    let mut s = state.lock().unwrap();
    let path = req.uri().path().to_string();
    let authorization = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let (status, response) = if s.auth.is_some() && authorization != s.auth {
        (
            401,
            Response::builder()
                .status(401)
                .header("www-authenticate", "Basic realm=\"test index\"")
                .body(full("unauthorized\n")),
        )
    } else {
        match s.files.get(&path) {
            Some((content_type, bytes)) => (
                200,
                Response::builder()
                    .status(200)
                    .header("content-type", content_type.as_str())
                    .body(full(bytes.clone())),
            ),
            None => (
                404,
                Response::builder().status(404).body(full("not found\n")),
            ),
        }
    };
    s.log.push(Logged {
        method: req.method().to_string(),
        path,
        status,
        authorization,
        fault: None,
        at: std::time::Instant::now(),
    });
    response.unwrap()
}

/// A PEP 691 project page listing `files` (file name, URL, content).
pub fn project_page(files: &[(&str, &str, &[u8])]) -> Vec<u8> {
    let files: Vec<serde_json::Value> = files
        .iter()
        .map(|(name, url, bytes)| {
            serde_json::json!({
                "filename": name,
                "url": url,
                "hashes": {"sha256": lockship_oci::digest::Digest::of_bytes(bytes).hex()},
                "size": bytes.len(),
            })
        })
        .collect();
    serde_json::json!({"meta": {"api-version": "1.1"}, "name": "x", "files": files})
        .to_string()
        .into_bytes()
}

/// A token server as Docker Hub, GHCR, GitLab and Harbor run one: `GET /token?service=…&scope=…`
/// answers a JWT (RS256, signed with `openssl` by a key whose self-signed certificate the
/// registry trusts) granting the asked actions to the one user with the right password and
/// `pull` to anyone, and logs who asked for which scopes.
pub struct TokenServer {
    running: Running,
    /// The certificate the registry's `rootcertbundle` names.
    pub cert: std::path::PathBuf,
    log: Arc<Mutex<Vec<TokenRequest>>>,
    _dir: tempfile::TempDir,
}

/// One request to the token server.
#[derive(Clone, Debug)]
pub struct TokenRequest {
    pub user: Option<String>,
    pub scopes: Vec<String>,
    /// Whether it came as an OAuth2 refresh-token grant (a `docker login` identity token).
    pub refresh: bool,
}

impl TokenServer {
    pub const ISSUER: &'static str = "lockship-test-issuer";
    pub const SERVICE: &'static str = "lockship-test-registry";

    /// The identity token (OAuth2 refresh token) the token server takes for its user.
    pub const IDENTITY_TOKEN: &'static str = "idtok-5b2c-SECRET";

    pub fn start(user: &str, password: &str) -> TokenServer {
        let dir = tempfile::tempdir().unwrap();
        let (key, cert) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
        let status = std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=lockship-token",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "openssl made the token key");
        let der = std::process::Command::new("openssl")
            .args(["x509", "-outform", "der", "-in"])
            .arg(&cert)
            .output()
            .unwrap()
            .stdout;
        let log: Arc<Mutex<Vec<TokenRequest>>> = Arc::default();
        let expected = format!(
            "Basic {}",
            base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                format!("{user}:{password}")
            )
        );
        let user = user.to_string();
        let running = {
            let (log, key, der) = (log.clone(), key.clone(), der.clone());
            serve(move |req: Request<Incoming>| {
                let (log, key, der, expected, user) = (
                    log.clone(),
                    key.clone(),
                    der.clone(),
                    expected.clone(),
                    user.clone(),
                );
                async move {
                    let authorization = req
                        .headers()
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .map(String::from);
                    let refresh = req.method() == hyper::Method::POST;
                    // A GET carries its scopes in the query (and Basic auth); a POST is a
                    // refresh-token grant with its scopes in the form.
                    let params = if refresh {
                        let body = req.into_body().collect().await;
                        String::from_utf8_lossy(&body.map(|b| b.to_bytes()).unwrap_or_default())
                            .into_owned()
                    } else {
                        req.uri().query().unwrap_or("").to_string()
                    };
                    let pairs: Vec<(String, String)> =
                        url::form_urlencoded::parse(params.as_bytes())
                            .map(|(k, v)| (k.into_owned(), v.into_owned()))
                            .collect();
                    let has =
                        |key: &str, value: &str| pairs.iter().any(|(k, v)| k == key && v == value);
                    let known = if refresh {
                        has("grant_type", "refresh_token")
                            && has("refresh_token", TokenServer::IDENTITY_TOKEN)
                    } else {
                        authorization.as_deref() == Some(expected.as_str())
                    };
                    if (refresh || authorization.is_some()) && !known {
                        return Response::builder()
                            .status(401)
                            .body(full("bad credentials\n"))
                            .unwrap();
                    }
                    let scopes: Vec<String> = pairs
                        .iter()
                        .filter(|(k, _)| k == "scope")
                        .flat_map(|(_, v)| v.split(' ').map(String::from).collect::<Vec<_>>())
                        .collect();
                    log.lock().unwrap().push(TokenRequest {
                        user: known.then(|| user.clone()),
                        scopes: scopes.clone(),
                        refresh,
                    });
                    let access: Vec<serde_json::Value> = scopes
                        .iter()
                        .filter_map(|s| {
                            let mut parts = s.splitn(3, ':');
                            let (kind, name, actions) =
                                (parts.next()?, parts.next()?, parts.next()?);
                            let granted: Vec<&str> = actions
                                .split(',')
                                .filter(|a| known || *a == "pull")
                                .collect();
                            Some(
                                serde_json::json!({"type": kind, "name": name, "actions": granted}),
                            )
                        })
                        .collect();
                    let token = jwt(&key, &der, known.then_some(user.as_str()), &access);
                    // OAuth2 answers name it `access_token`; the Docker token spec, `token`.
                    let field = if refresh { "access_token" } else { "token" };
                    let body = serde_json::json!({field: token, "expires_in": 300}).to_string();
                    Response::builder()
                        .header("content-type", "application/json")
                        .body(full(body))
                        .unwrap()
                }
            })
        };
        TokenServer {
            running,
            cert,
            log,
            _dir: dir,
        }
    }

    /// The realm the registry sends clients to.
    pub fn realm(&self) -> String {
        format!("http://{}/token", self.running.addr)
    }

    pub fn log(&self) -> Vec<TokenRequest> {
        self.log.lock().unwrap().clone()
    }
}

/// A JWT for the registry: RS256 over header and claims, the certificate in `x5c`.
fn jwt(
    key: &std::path::Path,
    der: &[u8],
    user: Option<&str>,
    access: &[serde_json::Value],
) -> String {
    use base64::Engine;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = serde_json::json!({
        "typ": "JWT",
        "alg": "RS256",
        "x5c": [base64::engine::general_purpose::STANDARD.encode(der)],
    });
    let claims = serde_json::json!({
        "iss": TokenServer::ISSUER,
        "sub": user.unwrap_or(""),
        "aud": TokenServer::SERVICE,
        "exp": now + 300,
        "nbf": now - 10,
        "iat": now,
        "jti": format!("{now}-{}", std::process::id()),
        "access": access,
    });
    let signing = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let mut openssl = std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    openssl
        .stdin
        .take()
        .unwrap()
        .write_all(signing.as_bytes())
        .unwrap();
    let signature = openssl.wait_with_output().unwrap().stdout;
    format!("{signing}.{}", b64(&signature))
}
