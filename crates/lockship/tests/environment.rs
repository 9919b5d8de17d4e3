//! The environment Python and container teams already set is honoured: HTTP_PROXY /
//! HTTPS_PROXY with NO_PROXY (registry traffic goes through the proxy, or around it), and
//! SSL_CERT_FILE / SSL_CERT_DIR (naming no usable CA is a one-line error, not a crash).
//! SOURCE_DATE_EPOCH and DOCKER_CONFIG have their own tests (build.rs, registry.rs).

mod support;

use support::servers::FaultProxy;
use support::*;

/// lockship with no proxy variable inherited from the machine running the tests.
fn lockship_clean(cache: &std::path::Path) -> std::process::Command {
    let mut cmd = lockship(cache);
    for var in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

#[test]
fn registry_traffic_goes_through_the_proxy_unless_no_proxy_says_otherwise() {
    if services_missing() {
        return;
    }
    let env = env();
    let project = fixture("hello-cli", true);
    let reference = format!("{}/{}:1", env.registry, unique("proxied"));
    run_ok(
        lockship(&shared_cache())
            .arg("build")
            .arg(&project.dir)
            .args(["--base", &env.base, "--push", &reference]),
    );
    // A forwarding proxy on loopback: it logs what passes through it.
    let proxy = FaultProxy::start(&env.registry);
    let cache = tempfile::tempdir().unwrap();
    let inspect = |extra: &[(&str, String)]| {
        let mut cmd = lockship_clean(cache.path());
        cmd.args(["inspect", &reference, "--format", "json"]);
        for (k, v) in extra {
            cmd.env(k, v);
        }
        json(&run_ok(&mut cmd))
    };
    let through = inspect(&[("HTTP_PROXY", format!("http://{}", proxy.addr()))]);
    let log = proxy.log();
    assert!(
        log.iter()
            .any(|l| l.path.contains("/v2/") && l.path.contains("/manifests/")),
        "the proxy saw {} requests",
        log.len()
    );
    // NO_PROXY names the registry: the proxy sees nothing more, and the answer is the same.
    let before = proxy.log().len();
    let around = inspect(&[
        ("http_proxy", format!("http://{}", proxy.addr())),
        ("NO_PROXY", "127.0.0.1".to_string()),
    ]);
    assert_eq!(proxy.log().len(), before, "NO_PROXY was ignored");
    assert_eq!(through["digest"], around["digest"]);
}

#[test]
fn ca_variables_naming_no_certificate_are_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let empty_file = dir.path().join("empty.pem");
    std::fs::write(&empty_file, "").unwrap();
    let empty_dir = dir.path().join("certs");
    std::fs::create_dir(&empty_dir).unwrap();
    // The store is read at the first HTTPS request: a plain-HTTP registry needs none.
    let out = run_err(
        lockship_clean(dir.path())
            .env("SSL_CERT_FILE", &empty_file)
            .env("SSL_CERT_DIR", &empty_dir)
            .args(["inspect", "127.0.0.1:9/none:1"]),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("HTTPS"), "{err}");
    let out = run_err(
        lockship_clean(dir.path())
            .env("SSL_CERT_FILE", &empty_file)
            .env("SSL_CERT_DIR", &empty_dir)
            .args(["inspect", "registry.invalid/none:1"]),
    );
    assert_eq!(out.status.code(), Some(1), "a crash is not an error");
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines[0].starts_with("error: ")
            && lines[0]
                .contains("https://registry.invalid/v2/none/manifests/1: cannot set up HTTPS: "),
        "{err}"
    );
    assert!(
        lines[1].starts_with("hint: SSL_CERT_FILE and SSL_CERT_DIR"),
        "{err}"
    );
    assert_eq!(lines.len(), 2, "{err}");
}

#[test]
fn ci_logs_get_plain_steps_and_a_summary_and_stdout_only_the_result() {
    if services_missing() {
        return;
    }
    let env = env();
    let project = fixture("hello-cli", true);
    let reference = format!("{}/{}:1", env.registry, unique("ci-log"));
    let build = |ci: Option<&str>| {
        let mut cmd = lockship_clean(&shared_cache());
        cmd.env_remove("CI")
            .arg("build")
            .arg(&project.dir)
            .args(["--base", &env.base, "--push", &reference]);
        if let Some(value) = ci {
            cmd.env("CI", value);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (stdout, stderr) = build(Some("true"));
    assert_eq!(
        stdout.trim().len(),
        "sha256:".len() + 64,
        "stdout: {stdout}"
    );
    assert!(stderr.contains("lockship: resolving base"), "{stderr}");
    assert!(stderr.contains(" layers built ("), "{stderr}");
    assert!(
        stderr.contains(&format!("lockship: pushed {reference}: ")),
        "{stderr}"
    );
    // No spinner frames or escape sequences in a log.
    assert!(
        !stderr.contains('\u{1b}') && !stderr.contains('\r'),
        "{stderr:?}"
    );
    // Outside CI and off a terminal: quiet, as Unix tools are.
    let (quiet_out, quiet_err) = build(None);
    assert_eq!(quiet_out, stdout);
    assert_eq!(quiet_err, "");
    let (_, off) = build(Some("false"));
    assert_eq!(off, "");
}

/// Builds `project` and pushes it to `reference` with lockship on a terminal (`script` gives it
/// one, as a person at one has), `extra` set; returns what the terminal received.
fn on_a_terminal(
    project: &Project,
    cache: &std::path::Path,
    reference: &str,
    extra: &[(&str, &str)],
) -> String {
    let env = env();
    let typescript = cache.join(format!("typescript-{}", unique("t")));
    let command = format!(
        "{} build {} --base {} --push {reference}",
        env!("CARGO_BIN_EXE_lockship"),
        project.dir.display(),
        env.base
    );
    let mut cmd = std::process::Command::new("script");
    cmd.args(["-qec", &command])
        .arg(&typescript)
        .env("LOCKSHIP_CACHE_DIR", cache)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .env("TERM", "xterm")
        .env_remove("CI")
        .env_remove("NO_COLOR");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&std::fs::read(&typescript).unwrap()).into_owned()
}

#[test]
fn a_terminal_gets_bars_for_transfers_and_layers() {
    if services_missing() {
        return;
    }
    let env = env();
    let project = fixture("hello-cli", true);
    // A cold cache, so that there is something to download, write and upload.
    let cache = tempfile::tempdir().unwrap();
    let reference = format!("{}/{}:1", env.registry, unique("bars"));
    let screen = on_a_terminal(&project, cache.path(), &reference, &[]);
    // Download and upload bars (bytes and rate), the layer bar, then the summary.
    assert!(screen.contains("pull "), "no download bar");
    assert!(screen.contains("push sha256:"), "no upload bar");
    assert!(screen.contains("layers "), "no layer bar");
    assert!(screen.contains("/s"), "no rate");
    assert!(screen.contains(" layers built ("), "no summary");
    assert!(
        screen.contains("\u{1b}[36m"),
        "the bars have no colour to take away"
    );

    // NO_COLOR: the same bars, no colour.
    let reference = format!("{}/{}:2", env.registry, unique("bars"));
    let screen = on_a_terminal(&project, cache.path(), &reference, &[("NO_COLOR", "1")]);
    assert!(screen.contains("push sha256:"), "no upload bar");
    assert!(
        !screen.contains("\u{1b}[36m") && !screen.contains("\u{1b}[34m"),
        "colour despite NO_COLOR"
    );
}
