//! `--report FILE.html`: one self-contained page (no script, no font or style from the
//! network) showing an image as a treemap by layer and package, its biggest files, its layers,
//! and, for a build, its phases on a timeline. Everything read from the image is escaped: a
//! package name cannot become markup.

use std::fmt::Write;
use std::path::Path;

use lockship_engine::error::Error;
use lockship_engine::inspect::{Inspection, LayerSummary};

use crate::image_render::human_size;
use crate::treemap;

/// Colours of the layers, in turn (Tableau 10: distinct for most readers).
pub const PALETTE: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac",
];
const WIDTH: f64 = 1160.0;
const HEIGHT: f64 = 560.0;

fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// What a layer is called on the map.
fn layer_label(n: usize, layer: &LayerSummary) -> String {
    if !layer.packages.is_empty() {
        return crate::image_render::package_list(layer);
    }
    let what: String = layer.created_by.chars().take(60).collect();
    if what.is_empty() {
        format!("layer {}", n + 1)
    } else {
        format!("layer {}: {what}", n + 1)
    }
}

/// A label inside a cell, when the cell has room for it.
fn label(svg: &mut String, c: &treemap::Cell, text: &str, size: u64) {
    if c.w < 60.0 || c.h < 18.0 {
        return;
    }
    let chars = ((c.w - 8.0) / 7.0) as usize;
    let shown: String = text.chars().take(chars).collect();
    let _ = write!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" class="l">{}</text>"#,
        c.x + 4.0,
        c.y + 14.0,
        esc(&shown)
    );
    if c.h >= 34.0 {
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" class="s">{}</text>"#,
            c.x + 4.0,
            c.y + 29.0,
            human_size(size)
        );
    }
}

/// The treemap: a cell per layer (sized by its files), split by directory for layers that are
/// not packages.
fn treemap_svg(i: &Inspection) -> String {
    let mut svg = format!(
        r#"<svg id="treemap" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="treemap of the image by layer and package">"#
    );
    let sizes: Vec<u64> = i.layers.iter().map(|l| l.files_size).collect();
    for cell in treemap::layout(&sizes, 0.0, 0.0, WIDTH, HEIGHT) {
        let layer = &i.layers[cell.item];
        let colour = PALETTE[cell.item % PALETTE.len()];
        let name = layer_label(cell.item, layer);
        let _ = write!(
            svg,
            r#"<g><title>{} ({}, {} files)</title>"#,
            esc(&name),
            human_size(layer.files_size),
            layer.files
        );
        let parts: Vec<(String, u64)> = if layer.packages.is_empty() && !layer.top.is_empty() {
            let listed: u64 = layer.top.iter().map(|t| t.size).sum();
            let mut parts: Vec<(String, u64)> = layer
                .top
                .iter()
                .map(|t| (format!("/{}", t.path), t.size))
                .collect();
            parts.push(("other".into(), layer.files_size.saturating_sub(listed)));
            parts
        } else {
            vec![(name.clone(), layer.files_size)]
        };
        let part_sizes: Vec<u64> = parts.iter().map(|p| p.1).collect();
        for sub in treemap::layout(&part_sizes, cell.x, cell.y, cell.w, cell.h) {
            let (text, size) = &parts[sub.item];
            let _ = write!(
                svg,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{colour}"><title>{} · {}</title></rect>"#,
                sub.x,
                sub.y,
                sub.w,
                sub.h,
                esc(&name),
                esc(text)
            );
            label(&mut svg, &sub, text, *size);
        }
        let _ = write!(
            svg,
            r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" class="b"/></g>"#,
            cell.x, cell.y, cell.w, cell.h
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The build's phases as consecutive bars.
fn timeline_svg(timings: &[(String, f64)]) -> String {
    let total: f64 = timings.iter().map(|t| t.1).sum::<f64>().max(1e-9);
    let mut svg = format!(
        r#"<svg id="timeline" viewBox="0 0 {WIDTH} 70" width="{WIDTH}" height="70" role="img" aria-label="build phases">"#
    );
    let mut x = 0.0;
    for (n, (phase, secs)) in timings.iter().enumerate() {
        let w = secs / total * WIDTH;
        let _ = write!(
            svg,
            r#"<rect x="{x:.1}" y="8" width="{w:.1}" height="30" fill="{}"><title>{}: {secs:.2} s</title></rect>"#,
            PALETTE[n % PALETTE.len()],
            esc(phase)
        );
        if w > 50.0 {
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="55" class="s">{} {secs:.2} s</text>"#,
                x + 2.0,
                esc(phase)
            );
        }
        x += w;
    }
    svg.push_str("</svg>");
    svg
}

/// The whole page.
pub fn page(i: &Inspection, timings: Option<&[(String, f64)]>) -> String {
    let mut html = String::new();
    let _ = write!(
        html,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>lockship: {}</title><style>
body{{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}}
h1{{font-size:20px;margin:0 0 4px}} h2{{font-size:16px;margin:24px 0 8px}}
.meta{{color:#555}} table{{border-collapse:collapse}} td,th{{padding:2px 10px;text-align:left}}
td.n{{text-align:right;font-variant-numeric:tabular-nums}} tr:nth-child(even){{background:#f4f4f4}}
svg text.l{{font:12px sans-serif;fill:#fff}} svg text.s{{font:11px sans-serif;fill:#fff}}
#timeline text.s{{fill:#222}} svg rect.b{{fill:none;stroke:#fff;stroke-width:2}}
</style></head><body>"#,
        esc(&i.image)
    );
    let _ = write!(
        html,
        r#"<h1>{}</h1><div class="meta">{} · {} · {} in {} layers ({} of files)</div>"#,
        esc(&i.image),
        esc(&i.digest),
        esc(&i.platform),
        human_size(i.size),
        i.layers.len(),
        human_size(i.files_size)
    );
    if let Some(base) = &i.base {
        let _ = write!(html, r#"<div class="meta">base {}</div>"#, esc(base));
    }
    html.push_str("<h2>What takes the space</h2>");
    html.push_str(&treemap_svg(i));
    if let Some(timings) = timings.filter(|t| !t.is_empty()) {
        html.push_str("<h2>Build phases</h2>");
        html.push_str(&timeline_svg(timings));
    }
    html.push_str(
        "<h2>Layers</h2><table><tr><th>#</th><th>blob</th><th>files</th><th>holds</th></tr>",
    );
    for (n, layer) in i.layers.iter().enumerate() {
        let _ = write!(
            html,
            r#"<tr><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td>{}</td></tr>"#,
            n + 1,
            human_size(layer.size),
            layer.files,
            esc(&layer_label(n, layer))
        );
    }
    html.push_str("</table><h2>Biggest files</h2><table>");
    for f in &i.biggest_files {
        let _ = write!(
            html,
            r#"<tr><td class="n">{}</td><td>/{}</td></tr>"#,
            human_size(f.size),
            esc(&f.path)
        );
    }
    html.push_str("</table></body></html>\n");
    html
}

/// Writes the page to `path` whole or not at all; an existing file is replaced only if it is
/// an HTML page.
pub fn write(path: &Path, html: &str) -> Result<(), Error> {
    check_replaceable(path)?;
    // A document for people and other tools to read, not a secret.
    lockship_sys::scratch::write_whole(path, html.as_bytes(), Some(0o644)).map_err(|source| {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// Whether `path` may be written: missing, or an HTML page (an earlier report).
pub fn check_replaceable(path: &Path) -> Result<(), Error> {
    let refuse = || {
        Error::Usage(format!(
            "{} exists and is not an HTML page: lockship replaces only a report it could have written (choose another --report)",
            path.display()
        ))
    };
    match std::fs::metadata(path) {
        Err(_) => Ok(()),
        // Not a regular file (a directory, a FIFO, a device): never opened.
        Ok(meta) if !meta.is_file() => Err(refuse()),
        Ok(_) => {
            use std::io::Read;
            let mut head = Vec::with_capacity(64);
            std::fs::File::open(path)
                .and_then(|f| f.take(64).read_to_end(&mut head))
                .map_err(|_| refuse())?;
            let is_html = String::from_utf8_lossy(&head)
                .trim_start()
                .to_ascii_lowercase()
                .starts_with("<!doctype html");
            if is_html {
                Ok(())
            } else {
                Err(refuse())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockship_engine::inspect::{Package, RunConfig};

    #[test]
    fn names_from_the_image_cannot_become_markup() {
        let layer = LayerSummary {
            digest: "sha256:x".into(),
            media_type: String::new(),
            size: 10,
            files: 1,
            files_size: 100,
            created_by: String::new(),
            packages: vec![Package {
                name: "<script>alert(1)</script>".into(),
                version: "1\"><img src=x>".into(),
                dist_info: String::new(),
                license_expression: None,
                license: None,
                file: None,
                sha256: None,
            }],
            top: Vec::new(),
        };
        let i = Inspection {
            image: "oci:<b>".into(),
            digest: "sha256:y".into(),
            platform: "linux/amd64".into(),
            platforms: Vec::new(),
            size: 10,
            files_size: 100,
            config: RunConfig::default(),
            base: None,
            base_digest: None,
            lock_digest: None,
            target: None,
            layers: vec![layer],
            biggest_files: Vec::new(),
            os_packages: Vec::new(),
        };
        let html = page(&i, Some(&[("layers".into(), 1.5)]));
        assert!(!html.contains("<script>"));
        assert!(!html.contains("<img"));
        assert!(!html.contains("<b>"));
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains(r#"id="treemap""#) && html.contains(r#"id="timeline""#));
        // Self-contained: nothing fetched from anywhere.
        assert!(!html.contains("http://") && !html.contains("https://"));
    }
}
