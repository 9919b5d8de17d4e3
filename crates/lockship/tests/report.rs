//! `--report FILE.html` on build and inspect: a self-contained page, rendered by a real
//! browser (Debian's headless Chromium) to check that the treemap is what a reader sees: the
//! screenshot is mostly the layers' colours, and the same page without its treemap is not.

mod support;

use std::path::Path;
use std::process::Command;

use support::*;

/// The colours the report gives layers (src/report_html.rs `PALETTE`), as RGB.
const PALETTE: [[u8; 3]; 10] = [
    [0x4e, 0x79, 0xa7],
    [0xf2, 0x8e, 0x2b],
    [0xe1, 0x57, 0x59],
    [0x76, 0xb7, 0xb2],
    [0x59, 0xa1, 0x4f],
    [0xed, 0xc9, 0x48],
    [0xb0, 0x7a, 0xa1],
    [0xff, 0x9d, 0xa7],
    [0x9c, 0x75, 0x5f],
    [0xba, 0xb0, 0xac],
];

/// Renders `html` in headless Chromium (no network) and returns, of the screenshot's pixels,
/// the share in the layer colours and how many of those colours appear.
fn rendered_palette(html: &Path) -> (f64, usize) {
    let png = html.with_extension("png");
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--force-color-profile=srgb",
            "--proxy-server=127.0.0.1:9",
            "--window-size=1280,1000",
        ])
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .expect("chromium is installed by scripts/test");
    assert!(
        png.is_file(),
        "no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let pixels = &buf[..info.buffer_size()];
    let mut seen = [false; PALETTE.len()];
    let mut matching = 0usize;
    let total = pixels.len() / channels;
    for px in pixels.chunks(channels) {
        if let Some(n) = PALETTE.iter().position(|c| {
            c.iter()
                .zip(px)
                .all(|(a, b)| (*a as i16 - *b as i16).abs() <= 3)
        }) {
            matching += 1;
            seen[n] = true;
        }
    }
    (
        matching as f64 / total as f64,
        seen.iter().filter(|s| **s).count(),
    )
}

#[test]
fn build_and_inspect_reports_render_a_treemap() {
    if services_missing() {
        return;
    }
    let project = fixture("hello-cli", true);
    let dir = project.tmp.path();
    let layout = format!("oci:{}", dir.join("app.oci").display());
    let built = dir.join("build.html");
    run_ok(
        lockship(&shared_cache())
            .arg("build")
            .arg(&project.dir)
            .args(["--base", &env().base, "--output", &layout, "--report"])
            .arg(&built),
    );
    let html = std::fs::read_to_string(&built).unwrap();
    assert!(html.contains(r#"id="treemap""#) && html.contains(r#"id="timeline""#));
    for package in ["click ", "rich ", "hello-cli 0.1.0"] {
        assert!(html.contains(package), "{package} is not on the page");
    }
    let (share, colours) = rendered_palette(&built);
    assert!(
        share > 0.25,
        "the treemap covers {share:.2} of the screenshot"
    );
    assert!(colours >= 4, "only {colours} layer colours are visible");

    // The check can fail: the page without its treemap shows hardly any layer colour.
    let start = html.find(r#"<svg id="treemap""#).unwrap();
    let end = start + html[start..].find("</svg>").unwrap() + "</svg>".len();
    let bare = dir.join("bare.html");
    std::fs::write(&bare, format!("{}{}", &html[..start], &html[end..])).unwrap();
    let (bare_share, _) = rendered_palette(&bare);
    assert!(bare_share < 0.05, "without a treemap: {bare_share:.2}");

    // inspect writes one too (no build, so no timeline).
    let inspected = dir.join("inspect.html");
    run_ok(
        lockship(&shared_cache())
            .args(["inspect", &layout, "--report"])
            .arg(&inspected),
    );
    let html = std::fs::read_to_string(&inspected).unwrap();
    assert!(html.contains(r#"id="treemap""#) && !html.contains(r#"id="timeline""#));
    let (share, _) = rendered_palette(&inspected);
    assert!(
        share > 0.25,
        "the treemap covers {share:.2} of the screenshot"
    );

    // A report path that is a symlink stays one: the page it names is what changes.
    let real = dir.join("real.html");
    std::fs::write(&real, "<!doctype html><p>old</p>").unwrap();
    let link = dir.join("link.html");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    run_ok(
        lockship(&shared_cache())
            .args(["inspect", &layout, "--report"])
            .arg(&link),
    );
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(std::fs::read_to_string(&real)
        .unwrap()
        .contains(r#"id="treemap""#));
}

#[test]
fn a_report_never_replaces_what_is_not_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let notes = dir.path().join("notes.html");
    std::fs::write(&notes, "my notes").unwrap();
    let out = run_err(
        lockship(dir.path())
            .args(["inspect", "oci:/nonexistent", "--report"])
            .arg(&notes),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(&format!(
            "error: {} exists and is not an HTML page",
            notes.display()
        )),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "my notes");
}

#[test]
fn a_fifo_is_never_opened_as_a_report() {
    let dir = tempfile::tempdir().unwrap();
    // Not an image at all: the report check comes first, before any reading.
    let fifo = dir.path().join("fifo.html");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let out = run_err(
        lockship(dir.path())
            .args(["inspect", "oci:/nonexistent", "--report"])
            .arg(&fifo),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not an HTML page"), "{err}");
}
