//! lockship against the reference registry and a package index behind a fault-injecting proxy
//! (tests/support/servers.rs): failed requests, `Retry-After`, connections dropped mid-body,
//! stalls and altered bytes. Transient faults must cost retries and nothing else (the same
//! digest as a clean build); permanent ones must fail in bounded time with one clear line,
//! leaving nothing half-written.

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::servers::{Fault, FaultProxy, Rule, StaticServer};
use support::wheels::WheelBuilder;
use support::*;

fn build(cache: &Path, project: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    lockship(cache)
        .envs(env.iter().copied())
        .arg("build")
        .arg(project)
        .args(args)
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn succeeded(out: &Output) -> String {
    assert!(out.status.success(), "{}", stderr(out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The test base, reached through `proxy`.
fn base_through(proxy: &FaultProxy) -> String {
    let env = env();
    env.base.replace(&env.registry, proxy.addr())
}

#[test]
fn transient_registry_faults_cost_retries_and_change_nothing() {
    if services_missing() {
        return;
    }
    let proxy = FaultProxy::start(&env().registry);
    let project = fixture("hello-cli", true);
    let base = base_through(&proxy);
    let push = |name: &str| format!("{}/tests/{}:1", proxy.addr(), unique(name));
    let clean_cache = tempfile::tempdir().unwrap();
    let clean = succeeded(&build(
        clean_cache.path(),
        &project.dir,
        &["--base", &base, "--push", &push("clean")],
        &[],
    ));

    proxy.set_rules(vec![
        // The first manifest request is told to come back in a second.
        Rule::on("/manifests/", Fault::RetryAfter(429, "1".into())).times(1),
        // The base layer's download is cut off half-way, once.
        Rule::on("/blobs/sha256:", Fault::Drop(20_000))
            .method("GET")
            .times(1),
        // The first upload's data is refused by a failing server: the upload starts over.
        Rule::on("/blobs/uploads/", Fault::Status(500))
            .method("PUT")
            .times(1),
        // And every third request of any kind fails with a 502.
        Rule::every(3, Fault::Status(502)),
    ]);
    // A cold cache, and a docker tarball too, so that base layers are downloaded as well.
    let cache = tempfile::tempdir().unwrap();
    let target = push("faulty");
    let tar = project.tmp.path().join("faulty.tar");
    let digest = succeeded(&build(
        cache.path(),
        &project.dir,
        &[
            "--base",
            &base,
            "--push",
            &target,
            "--output",
            &format!("docker:{}", tar.display()),
        ],
        &[],
    ));
    assert_eq!(digest, clean, "faults changed the image");
    let log = proxy.log();
    let injected: Vec<_> = log.iter().filter(|l| l.fault.is_some()).collect();
    assert!(injected.len() >= 8, "too few faults injected: {injected:?}");
    eprintln!(
        "reliability: registry: {} faults injected into {} requests, digest unchanged",
        injected.len(),
        log.len()
    );
    for kind in ["RetryAfter", "Drop", "Status(500)", "Status(502)"] {
        assert!(
            injected
                .iter()
                .any(|l| l.fault.as_deref().unwrap().starts_with(kind)),
            "no {kind} fault was injected: {injected:?}"
        );
    }
    // The request told to wait came back no sooner than asked.
    let told = log
        .iter()
        .position(|l| {
            l.fault
                .as_deref()
                .is_some_and(|f| f.starts_with("RetryAfter"))
        })
        .unwrap();
    let again = log[told + 1..]
        .iter()
        .find(|l| l.path == log[told].path)
        .expect("the 429'd request was sent again");
    assert!(
        again.at - log[told].at >= Duration::from_millis(950),
        "Retry-After not honoured: {:?}",
        again.at - log[told].at
    );
    // What was pushed is complete and what was written loads.
    proxy.set_rules(Vec::new());
    let inspect = json(&run_ok(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        &format!("docker://{target}"),
    ])));
    assert_eq!(inspect["Digest"].as_str().unwrap(), digest);
    docker_load(&tar);
    assert!(temp_leftovers(cache.path()).is_empty());
}

#[test]
fn a_stalled_registry_fails_in_bounded_time_and_a_brief_stall_is_survived() {
    if services_missing() {
        return;
    }
    let proxy = FaultProxy::start(&env().registry);
    let project = fixture("hello-cli", true);
    let base = base_through(&proxy);
    let tar = project.tmp.path().join("img.tar");
    let args = [
        "--base",
        base.as_str(),
        "--output",
        &format!("docker:{}", tar.display()),
    ];
    let patient = [
        ("LOCKSHIP_HTTP_TIMEOUT", "2"),
        ("LOCKSHIP_HTTP_RETRIES", "1"),
    ];

    // Every blob download sends a little, then nothing for a minute.
    proxy.set_rules(vec![Rule::on(
        "/blobs/sha256:",
        Fault::Stall(100, Duration::from_secs(60)),
    )
    .method("GET")]);
    let cache = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = build(cache.path(), &project.dir, &args, &patient);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let line = err.lines().next().unwrap();
    assert!(
        line.starts_with(&format!(
            "error: cannot reach registry {} while pulling",
            proxy.addr()
        )) && line.ends_with("the server sent nothing for 2 s (after 2 attempts)"),
        "{err}"
    );
    assert!(err.contains("--http-timeout"), "{err}");
    // Two attempts of two seconds and a backoff: far from the minute the server would take.
    assert!(took < Duration::from_secs(30), "took {took:?}");
    assert!(!tar.exists());
    assert!(temp_leftovers(cache.path()).is_empty());
    let blobs = std::fs::read_dir(cache.path().join("blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(blobs, 0, "a half-downloaded blob was cached");

    // One stall, then the server recovers: the build goes through.
    proxy.set_rules(vec![Rule::on(
        "/blobs/sha256:",
        Fault::Stall(100, Duration::from_secs(60)),
    )
    .method("GET")
    .times(1)]);
    succeeded(&build(cache.path(), &project.dir, &args, &patient));
    assert!(tar.is_file());
}

/// The first `error:` line of `stderr` (warnings may come before it).
fn first_error(stderr: &str) -> &str {
    stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_default()
}

/// What a `--dry-run` of hello-cli made of a registry whose blob downloads all meet `fault`.
struct BlobFault {
    /// The registry as lockship saw it (the proxy) and the base through it.
    registry: String,
    base: String,
    /// stderr of the run, which must have failed with exit 1.
    err: String,
    took: Duration,
    /// Blobs in the cache afterwards.
    cached: usize,
}

fn dry_run_with_blob_fault(fault: Fault, env_vars: &[(&str, &str)]) -> Option<BlobFault> {
    if services_missing() {
        return None;
    }
    let proxy = FaultProxy::start(&env().registry);
    let project = fixture("hello-cli", true);
    let base = base_through(&proxy);
    proxy.set_rules(vec![Rule::on("/blobs/sha256:", fault).method("GET")]);
    let cache = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = build(
        cache.path(),
        &project.dir,
        &["--base", &base, "--dry-run"],
        env_vars,
    );
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1));
    Some(BlobFault {
        registry: proxy.addr().to_string(),
        base,
        err: stderr(&out),
        took,
        cached: std::fs::read_dir(cache.path().join("blobs/sha256"))
            .map(|d| d.count())
            .unwrap_or(0),
    })
}

#[test]
fn a_registry_that_alters_a_blob_is_named_for_it() {
    let Some(run) = dry_run_with_blob_fault(Fault::Flip(10), &[]) else {
        return;
    };
    let (err, base) = (&run.err, &run.base);
    let line = err.lines().next().unwrap();
    assert!(
        line.starts_with(&format!(
            "error: registry {} sent config of {base}",
            run.registry
        )) && line.contains("with the wrong content: its digest is sha256:"),
        "{err}"
    );
    assert!(err.contains("hint: nothing was cached"), "{err}");
    assert_eq!(run.cached, 0);
}

#[test]
fn a_registry_that_trickles_fails_in_bounded_time() {
    // A byte every 0.2 s: never silent for the 1 s stall timeout, never done either.
    let Some(run) = dry_run_with_blob_fault(
        Fault::Trickle(Duration::from_millis(200)),
        &[
            ("LOCKSHIP_HTTP_TIMEOUT", "1"),
            ("LOCKSHIP_HTTP_RETRIES", "1"),
        ],
    ) else {
        return;
    };
    let err = &run.err;
    let line = err.lines().next().unwrap();
    assert!(
        line.starts_with(&format!(
            "error: cannot reach registry {} while pulling",
            run.registry
        )) && line.contains("too slowly to finish (after 2 attempts)"),
        "{err}"
    );
    // Two windows of a second and a backoff; the base's blobs would take hours this way.
    assert!(run.took < Duration::from_secs(30), "took {:?}", run.took);
    assert_eq!(run.cached, 0, "nothing half-fetched is cached");
}

#[test]
fn a_blob_missing_from_the_registry_is_named_not_the_image() {
    let Some(run) = dry_run_with_blob_fault(Fault::Status(404), &[]) else {
        return;
    };
    let (err, base) = (&run.err, &run.base);
    assert!(
        err.starts_with(&format!(
            "error: registry {} has no config of {base} (sha256:",
            run.registry
        )) && err.contains(&format!("), which the image {base} names (HTTP 404)")),
        "{err}"
    );
    assert!(
        err.contains("hint: the image is damaged in that registry"),
        "{err}"
    );
    assert_eq!(run.cached, 0);
}

#[test]
fn transient_index_faults_cost_retries() {
    if services_missing() {
        return;
    }
    let index = StaticServer::start(None);
    let proxy = FaultProxy::start(index.addr());
    let tiny = WheelBuilder::new("tiny", "1.0").build();
    let url = format!("http://{}/simple/", proxy.addr());
    let project = index_project(&index, &url, &[("tiny", "1.0", tiny)]);
    proxy.set_rules(vec![
        Rule::on("/simple/", Fault::Status(503)).times(1),
        Rule::on("/files/", Fault::Drop(100)).times(1),
        Rule::on("/files/", Fault::RetryAfter(429, "1".into())).times(1),
    ]);
    let cache = tempfile::tempdir().unwrap();
    let tar = project.tmp.path().join("img.tar");
    succeeded(&build(
        cache.path(),
        &project.dir,
        &[
            "--base",
            &env().base,
            "--output",
            &format!("docker:{}", tar.display()),
        ],
        &[],
    ));
    assert_eq!(proxy.injected(), 3, "{:?}", proxy.log());
    eprintln!(
        "reliability: index: 3 faults injected into {} requests",
        proxy.log().len()
    );
    assert!(tar.is_file());
}

#[test]
fn a_refused_push_says_how_to_log_in() {
    if services_missing() {
        return;
    }
    let proxy = FaultProxy::start(&env().registry);
    let project = fixture("hello-cli", true);
    proxy.set_rules(vec![
        Rule::on("/blobs/uploads/", Fault::Status(401)).method("POST")
    ]);
    let target = format!("{}/tests/{}:1", proxy.addr(), unique("refused"));
    let out = build(
        &shared_cache(),
        &project.dir,
        &["--base", &env().base, "--push", &target],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    // The built wheels' sharing, pushed meanwhile, may warn first that it failed too.
    assert!(
        first_error(&err).starts_with(&format!(
            "error: registry {} denied access while pushing",
            proxy.addr()
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "hint: log in with `docker login {}`",
            proxy.addr()
        )) && err.contains("write access"),
        "{err}"
    );
}

#[test]
fn a_second_target_that_fails_leaves_the_first_tag_unmoved() {
    if services_missing() {
        return;
    }
    let env = env();
    let project = fixture("hello-cli", true);
    let first = format!("{}/tests/{}:1", env.registry, unique("first"));
    let out = build(
        &shared_cache(),
        &project.dir,
        &[
            "--base",
            &env.base,
            "--push",
            &first,
            "--push",
            "127.0.0.1:1/tests/second:1",
        ],
        &[("LOCKSHIP_HTTP_RETRIES", "0")],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        first_error(&err).starts_with("error: cannot reach registry 127.0.0.1:1"),
        "{err}"
    );
    let inspect = Command::new("skopeo")
        .args([
            "inspect",
            "--tls-verify=false",
            &format!("docker://{first}"),
        ])
        .output()
        .unwrap();
    assert!(!inspect.status.success(), "the first tag moved");
}

#[test]
fn an_explicit_platform_must_match_a_single_platform_base() {
    if services_missing() {
        return;
    }
    let env = env();
    let project = fixture("hello-cli", true);
    let out = build(
        &shared_cache(),
        &project.dir,
        &[
            "--base",
            &env.base,
            "--platform",
            "linux/arm64",
            "--dry-run",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(
        err.lines().next().unwrap(),
        format!(
            "error: image {} is for linux/amd64 only, and --platform asks for linux/arm64",
            env.base
        )
    );
    assert!(err.contains("hint: use a multi-platform base"), "{err}");
}

#[test]
fn large_blobs_go_up_in_chunks_and_resume_after_a_lost_answer() {
    if services_missing() {
        return;
    }
    let env = env();
    let proxy = FaultProxy::start(&env.registry);
    let project = fixture("hello-cli", true);
    let target = format!("{}/tests/{}:1", proxy.addr(), unique("chunked"));
    // The second chunk never reaches the registry; the fifth does, and its answer is lost.
    // Each time lockship asks the session how much it holds and goes on from there.
    proxy.set_rules(vec![
        Rule::every(2, Fault::Status(502)).method("PATCH").times(1),
        Rule::every(5, Fault::Lost(502)).method("PATCH").times(1),
    ]);
    let cache = tempfile::tempdir().unwrap();
    let out = build(
        cache.path(),
        &project.dir,
        &[
            "--base",
            &base_through(&proxy),
            "--push",
            &target,
            "--no-test",
            "--format",
            "json",
        ],
        &[("LOCKSHIP_UPLOAD_CHUNK", "64K")],
    );
    let digest = succeeded(&out);
    assert_eq!(proxy.injected(), 2, "both faults fired");
    let log = proxy.log();
    let patches = log.iter().filter(|l| l.method == "PATCH").count();
    assert!(
        patches > 3,
        "uploads went in chunks: {patches} PATCH requests"
    );
    // After the lost answer, the session is asked how much it holds. The reference registry's
    // session token carries its offset, so a token from before the lost chunk is refused
    // (404): the blob then starts over in a new session, which must still end right.
    assert!(
        log.iter()
            .any(|l| l.method == "GET" && l.path.contains("/blobs/uploads/") && l.status == 204),
        "an upload resumed where its session stood"
    );
    let lost = log
        .iter()
        .position(|l| l.fault.as_deref().is_some_and(|f| f.contains("Lost")))
        .unwrap();
    assert!(
        log[lost..]
            .iter()
            .any(|l| l.method == "GET" && l.path.contains("/blobs/uploads/")),
        "the upload's progress was asked for"
    );
    // What the registry holds is the image, whole: pulled, it runs.
    let report = json(&digest);
    let pulled = format!("{target}@{}", report["digest"].as_str().unwrap());
    let pulled = pulled.replace(proxy.addr(), &env.registry);
    docker(&["pull", "-q", &pulled]);
    let hello = docker_run(&pulled, None, &["--help"]);
    assert!(hello.to_lowercase().contains("usage"), "{hello}");
    // A size that is not one is refused, naming the variable.
    let bad = build(
        cache.path(),
        &project.dir,
        &["--base", &env.base, "--push", &target],
        &[("LOCKSHIP_UPLOAD_CHUNK", "lots")],
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stderr(&bad).starts_with("error: LOCKSHIP_UPLOAD_CHUNK"),
        "{}",
        stderr(&bad)
    );
}
