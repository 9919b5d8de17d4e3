//! Progress on stderr, never stdout: on a terminal a spinner for the current step, a bar per
//! download and upload (bytes and rate) and one for layer writing; in CI (`CI` set) or with
//! --verbose, plain lines: each step, each transfer of a MiB or more when it ends, and the
//! layers written; otherwise nothing. `NO_COLOR` keeps the bars plain.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use lockship_engine::builder::Reporter;
use lockship_engine::smoke::SmokeResult;
use lockship_net::TransferObserver;

use crate::host_env;
use crate::image_render::human_size;
use crate::terminal_safe;

/// A transfer in flight.
struct Live {
    bar: Option<ProgressBar>,
    label: String,
    upload: bool,
    bytes: u64,
    start: Instant,
}

/// What is drawn: the step spinner and the bars under it.
struct Drawn {
    multi: Option<MultiProgress>,
    spinner: Option<ProgressBar>,
    transfers: Mutex<HashMap<u64, Live>>,
    next: AtomicU64,
    /// Plain lines instead of bars.
    lines: bool,
    color: bool,
}

/// Layer writing under way: a bar on a terminal, a line at the end in a log.
struct LayerWriting {
    bar: Option<ProgressBar>,
    done: usize,
    count: usize,
    /// Bytes of wheels the layers hold.
    bytes: u64,
    start: Instant,
}

pub struct Progress {
    drawn: Arc<Drawn>,
    layers: Mutex<Option<LayerWriting>>,
}

fn style(template: &str, color: bool) -> ProgressStyle {
    let template = if color {
        template.to_string()
    } else {
        // Drop the colour specs (`{bar:25.cyan}` → `{bar:25}`).
        template.replace(".cyan/blue", "").replace(".cyan", "")
    };
    ProgressStyle::with_template(&template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

impl Progress {
    /// Bars on a terminal (not in CI, whose log would keep every frame); plain lines with
    /// --verbose or in CI; else silence.
    pub fn new(verbose: bool) -> Progress {
        let ci = host_env::in_ci();
        let color = !host_env::no_color();
        let terminal = std::io::stderr().is_terminal() && !ci;
        let multi = terminal.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        let spinner = multi.as_ref().map(|m| {
            let bar = m.add(ProgressBar::new_spinner());
            bar.set_style(style("{spinner:.cyan} {msg}", color));
            bar.enable_steady_tick(std::time::Duration::from_millis(100));
            bar
        });
        Progress {
            drawn: Arc::new(Drawn {
                multi,
                spinner,
                transfers: Mutex::default(),
                next: AtomicU64::new(1),
                lines: verbose || ci,
                color,
            }),
            layers: Mutex::default(),
        }
    }

    /// Whether a person or a CI log is watching (a summary is worth printing).
    pub fn watched(&self) -> bool {
        self.drawn.multi.is_some() || self.drawn.lines
    }

    /// Prints a line on stderr without tearing the bars.
    pub fn line(&self, text: &str) {
        self.drawn.line(text);
    }

    pub fn finish(&self) {
        if let Some(s) = &self.drawn.spinner {
            s.finish_and_clear();
        }
        let layers = self.layers.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(bar) = layers.and_then(|l| l.bar) {
            bar.finish_and_clear();
        }
        if let Some(m) = &self.drawn.multi {
            let _ = m.clear();
        }
    }
}

impl Drawn {
    fn line(&self, text: &str) {
        // While stopping, what goes wrong is the stop's doing: its message says it all.
        if lockship_sys::interrupt::stopping().is_some() {
            return;
        }
        match &self.multi {
            Some(m) => {
                let _ = m.println(text);
            }
            None => eprintln!("{text}"),
        }
    }
}

impl TransferObserver for Drawn {
    fn begin(&self, label: &str, total: Option<u64>, upload: bool) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let label = terminal_safe(label);
        let bar = self.multi.as_ref().map(|m| {
            let bar = m.add(ProgressBar::new(total.unwrap_or(0)));
            let verb = if upload { "push" } else { "pull" };
            let template = if total.is_some() {
                format!("  {verb} {{msg:32!}} [{{bar:25.cyan/blue}}] {{bytes:>9}}/{{total_bytes:<9}} {{bytes_per_sec:>11}}")
            } else {
                format!("  {verb} {{msg:32!}} {{bytes:>9}} {{bytes_per_sec:>11}}")
            };
            bar.set_style(style(&template, self.color));
            bar.set_message(label.clone());
            bar
        });
        self.transfers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                id,
                Live {
                    bar,
                    label,
                    upload,
                    bytes: 0,
                    start: Instant::now(),
                },
            );
        id
    }

    fn advance(&self, id: u64, bytes: u64) {
        let mut live = self.transfers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = live.get_mut(&id) {
            t.bytes += bytes;
            if let Some(bar) = &t.bar {
                bar.inc(bytes);
            }
        }
    }

    fn end(&self, id: u64) {
        let Some(t) = self
            .transfers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id)
        else {
            return;
        };
        if let Some(bar) = t.bar {
            bar.finish_and_clear();
        } else if self.lines && t.bytes >= 1 << 20 {
            let secs = t.start.elapsed().as_secs_f64().max(1e-3);
            let verb = if t.upload { "pushed" } else { "pulled" };
            self.line(&format!(
                "lockship: {verb} {} ({} in {secs:.1}s, {}/s)",
                t.label,
                human_size(t.bytes),
                human_size((t.bytes as f64 / secs) as u64)
            ));
        }
    }
}

impl Reporter for Progress {
    fn step(&self, message: &str) {
        if lockship_sys::interrupt::stopping().is_some() {
            return;
        }
        let message = terminal_safe(message);
        if let Some(spinner) = &self.drawn.spinner {
            spinner.set_message(message);
        } else if self.drawn.lines {
            eprintln!("lockship: {message}");
        }
    }

    fn warn(&self, message: &str) {
        self.line(&format!("warning: {}", terminal_safe(message)));
    }

    fn smoke(&self, result: &SmokeResult) {
        let verdict = if result.exit_code == 0 {
            "ok".to_string()
        } else {
            format!("FAILED (exit code {})", result.exit_code)
        };
        // The output comes from the image (which `push` may not have built): escaped.
        let text = format!(
            "smoke: {}  {verdict} in {:.1}s\n{}",
            terminal_safe(&result.command),
            result.seconds,
            result
                .output
                .lines()
                .map(|l| format!("  | {}\n", terminal_safe(l)))
                .collect::<String>()
        );
        self.line(text.trim_end());
    }

    fn transfers(&self) -> Option<Arc<dyn TransferObserver>> {
        (self.drawn.multi.is_some() || self.drawn.lines)
            .then(|| self.drawn.clone() as Arc<dyn TransferObserver>)
    }

    fn layers_begin(&self, count: usize, bytes: u64) {
        let bar = self.drawn.multi.as_ref().map(|m| {
            let bar = m.add(ProgressBar::new(bytes.max(1)));
            bar.set_style(style(
                "  layers {msg:>8} [{bar:25.cyan/blue}] {bytes:>9}/{total_bytes:<9} {bytes_per_sec:>11}",
                self.drawn.color,
            ));
            bar.set_message(format!("0/{count}"));
            bar
        });
        *self.layers.lock().unwrap_or_else(|e| e.into_inner()) = Some(LayerWriting {
            bar,
            done: 0,
            count,
            bytes,
            start: Instant::now(),
        });
    }

    fn layer_written(&self, _description: &str, bytes: u64) {
        let mut layers = self.layers.lock().unwrap_or_else(|e| e.into_inner());
        let Some(l) = layers.as_mut() else {
            return;
        };
        l.done += 1;
        if let Some(bar) = &l.bar {
            bar.inc(bytes);
            bar.set_message(format!("{}/{}", l.done, l.count));
        }
        if l.done < l.count {
            return;
        }
        // The last one: the bar goes, or in a log one line says it all.
        if let Some(bar) = &l.bar {
            bar.finish_and_clear();
        } else if self.drawn.lines {
            self.line(&format!(
                "lockship: wrote {} ({} of wheels) in {:.1}s",
                lockship_engine::builder::counted(l.count, "layer", "layers"),
                human_size(l.bytes),
                l.start.elapsed().as_secs_f64()
            ));
        }
        *layers = None;
    }
}
