//! Text renderings for people: `lockship inspect`, `diff` and `push` results (their JSON is
//! the engine's structs as they are), and sizes as `du -h` shows them.

use std::fmt::Write;

use lockship_engine::builder::BuildReport;
use lockship_engine::image_commands::PushOutcome;
use lockship_engine::image_diff::{ImageDiff, VersionChange};
use lockship_engine::inspect::{Inspection, LayerSummary};

/// Bytes as `du -h` shows them (binary units).
pub fn human_size(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

/// Text read from an image (labels, env, names, paths) made safe for a terminal: unlike
/// `terminal_safe`, newlines too are escaped, so a hostile image can neither recolour the
/// screen nor fake a line of the listing.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| {
            if crate::disarmed(c) {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A signed size change (`+1.2 MiB`, `-300 B`).
fn delta(from: u64, to: u64) -> String {
    if to >= from {
        format!("+{}", human_size(to - from))
    } else {
        format!("-{}", human_size(from - to))
    }
}

/// The packages of a layer (`click 8.1.8, …`); empty for a layer that holds none.
pub fn package_list(layer: &LayerSummary) -> String {
    layer
        .packages
        .iter()
        .map(|p| format!("{} {}", p.name, p.version))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a layer holds, in a few words: its packages, else its biggest directories.
fn holds(layer: &LayerSummary) -> String {
    if !layer.packages.is_empty() {
        return package_list(layer);
    }
    let dirs = layer
        .top
        .iter()
        .take(3)
        .map(|d| format!("/{} {}", d.path, human_size(d.size)))
        .collect::<Vec<_>>()
        .join(", ");
    match (layer.created_by.is_empty(), dirs.is_empty()) {
        (false, false) => format!("{}: {dirs}", short(&layer.created_by, 60)),
        (false, true) => short(&layer.created_by, 60),
        (true, _) => dirs,
    }
}

fn short(text: &str, max: usize) -> String {
    let text = text.replace('\n', " ");
    if text.chars().count() <= max {
        text
    } else {
        format!("{}…", text.chars().take(max - 1).collect::<String>())
    }
}

pub fn inspection(i: &Inspection) -> String {
    let mut out = String::new();
    let mut field = |name: &str, value: String| {
        if !value.is_empty() {
            let _ = writeln!(out, "{name:<11} {}", clean(&value));
        }
    };
    field("image", i.image.clone());
    field("digest", i.digest.clone());
    field(
        "platform",
        if i.platforms.len() > 1 {
            format!("{} (the image has {})", i.platform, i.platforms.join(", "))
        } else {
            i.platform.clone()
        },
    );
    if let Some(base) = &i.base {
        let digest = i.base_digest.as_deref().unwrap_or("");
        field("base", format!("{base} {digest}").trim().to_string());
    }
    field("lock", i.lock_digest.clone().unwrap_or_default());
    field("target", i.target.clone().unwrap_or_default());
    field(
        "size",
        format!(
            "{} in {} layers ({} of files)",
            human_size(i.size),
            i.layers.len(),
            human_size(i.files_size)
        ),
    );
    let c = &i.config;
    field("user", c.user.clone().unwrap_or_default());
    field("entrypoint", shell_words::join(&c.entrypoint));
    field("cmd", shell_words::join(&c.cmd));
    field("workdir", c.workdir.clone().unwrap_or_default());
    field("ports", c.exposed_ports.join(", "));
    for env in &c.env {
        field("env", env.clone());
    }
    for (k, v) in &c.labels {
        field("label", format!("{k}={v}"));
    }
    let _ = writeln!(out, "\nlayers:");
    let _ = writeln!(out, "  {:>3}  {:>10}  {:>6}  holds", "#", "size", "files");
    for (n, layer) in i.layers.iter().enumerate() {
        let _ = writeln!(
            out,
            "  {:>3}  {:>10}  {:>6}  {}",
            n + 1,
            human_size(layer.size),
            layer.files,
            clean(&holds(layer))
        );
    }
    if !i.biggest_files.is_empty() {
        let _ = writeln!(out, "\nbiggest files:");
        for f in &i.biggest_files {
            let _ = writeln!(out, "  {:>10}  /{}", human_size(f.size), clean(&f.path));
        }
    }
    if !i.os_packages.is_empty() {
        let _ = writeln!(
            out,
            "\nos packages: {} (dpkg; --format json lists them)",
            i.os_packages.len()
        );
    }
    out
}

fn version_change(c: &VersionChange) -> String {
    let text = match (&c.from, &c.to) {
        (Some(a), Some(b)) => format!("~ {} {a} → {b}", c.name),
        (None, Some(b)) => format!("+ {} {b}", c.name),
        (Some(a), None) => format!("- {} {a}", c.name),
        (None, None) => c.name.clone(),
    };
    clean(&text)
}

pub fn diff(d: &ImageDiff) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "from {} ({})", clean(&d.from), d.from_digest);
    let _ = writeln!(out, "to   {} ({})", clean(&d.to), d.to_digest);
    if d.is_empty() {
        let _ = writeln!(out, "\nthe same image: nothing changed");
        return out;
    }
    let p = &d.packages;
    let _ = writeln!(
        out,
        "\npackages: {} added, {} removed, {} changed",
        p.added.len(),
        p.removed.len(),
        p.changed.len()
    );
    for a in &p.added {
        let _ = writeln!(out, "  + {} {}", clean(&a.name), clean(&a.version));
    }
    for r in &p.removed {
        let _ = writeln!(out, "  - {} {}", clean(&r.name), clean(&r.version));
    }
    for c in &p.changed {
        let _ = writeln!(out, "  {}", version_change(c));
    }
    let l = &d.layers;
    let _ = writeln!(
        out,
        "\nlayers: {} added, {} removed, {} unchanged",
        l.added.len(),
        l.removed.len(),
        l.unchanged
    );
    for (sign, list) in [("+", &l.added), ("-", &l.removed)] {
        for layer in list {
            let _ = writeln!(
                out,
                "  {sign} {:>10}  {}  {}",
                human_size(layer.size),
                &layer.digest[..layer.digest.len().min(19)],
                clean(&short(&layer.holds, 70))
            );
        }
    }
    let _ = writeln!(
        out,
        "\nsize: {} → {} ({})",
        human_size(d.size_from),
        human_size(d.size_to),
        delta(d.size_from, d.size_to)
    );
    if !d.config.is_empty() {
        let _ = writeln!(out, "\nconfig:");
        for c in &d.config {
            let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
            let line = format!("{}: {} → {}", c.field, show(&c.from), show(&c.to));
            let _ = writeln!(out, "  ~ {}", clean(&line));
        }
    }
    if !d.os_packages.is_empty() {
        let _ = writeln!(out, "\nos packages: {} changed", d.os_packages.len());
        for c in &d.os_packages {
            let _ = writeln!(out, "  {}", version_change(c));
        }
    }
    out
}

/// What a push moved: `3 uploaded (1.2 MiB), 1 mounted, 5 already there`.
fn moved(r: &lockship_oci::registry::PushReport) -> String {
    format!(
        "{} uploaded ({}), {} mounted, {} already there",
        r.uploaded,
        human_size(r.uploaded_bytes),
        r.mounted,
        r.skipped
    )
}

pub fn push(outcome: &PushOutcome) -> String {
    let mut out = String::new();
    for p in &outcome.pushed {
        let r = &p.report;
        let _ = writeln!(
            out,
            "pushed {}@{} ({})",
            p.reference,
            outcome.digest,
            moved(r)
        );
    }
    out
}

/// What a build did, for its end on stderr: layers built and reused with their sizes, what each
/// push moved, and the time of each phase.
pub fn summary(report: &BuildReport) -> String {
    let reports: Vec<&BuildReport> = if report.platforms.is_empty() {
        vec![report]
    } else {
        report.platforms.iter().collect()
    };
    let mut out = String::new();
    for r in &reports {
        let (built, reused): (Vec<_>, Vec<_>) = r.layers.iter().partition(|l| l.built);
        let bytes =
            |ls: &[&lockship_engine::builder::LayerReport]| ls.iter().map(|l| l.size).sum::<u64>();
        let platform = if reports.len() > 1 {
            format!("{}: ", r.target.architecture)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "lockship: {platform}{} built ({}), {} reused ({}); image {}",
            lockship_engine::builder::counted(built.len(), "layer", "layers"),
            human_size(bytes(&built)),
            reused.len(),
            human_size(bytes(&reused)),
            human_size(r.layers.iter().map(|l| l.size).sum())
        );
        let phases: Vec<String> = r
            .timings
            .iter()
            .filter(|(_, secs)| *secs >= 0.005)
            .map(|(phase, secs)| format!("{phase} {secs:.2}s"))
            .collect();
        // Every report with timings gets its line, even when each phase was too quick to
        // list (a platform whose layers were all cached).
        if !r.timings.is_empty() {
            let total: f64 = r.timings.iter().map(|t| t.1).sum();
            let phases = if phases.is_empty() {
                String::new()
            } else {
                format!(": {}", phases.join(", "))
            };
            let _ = writeln!(out, "lockship: {platform}{total:.2}s{phases}");
        }
    }
    for p in &report.pushed {
        let r = &p.report;
        let _ = writeln!(out, "lockship: pushed {}: {}", p.reference, moved(r));
    }
    out
}
