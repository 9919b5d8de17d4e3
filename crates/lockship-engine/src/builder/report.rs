//! What a build reports: its digest, layers, pushes, smoke results and timings.

use serde::Serialize;

use crate::plan::Plan;
use crate::smoke::SmokeResult;
use lockship_oci::registry::PushReport;
use lockship_python::target::PythonTarget;

/// One layer of the result.
#[derive(Clone, Debug, Serialize)]
pub struct LayerReport {
    pub digest: String,
    pub size: u64,
    /// Size of the uncompressed tar; 0 when unknown (layers of a registry base).
    pub uncompressed_size: u64,
    pub description: String,
    /// Whether lockship wrote this layer in this build (false: base layer or cache hit).
    pub built: bool,
}

/// The result of a build.
#[derive(Clone, Debug, Serialize)]
pub struct BuildReport {
    /// Manifest digest (empty for a dry run).
    pub digest: String,
    pub base: String,
    /// The lock file read, relative to the project, and its format.
    pub lock: String,
    pub lock_format: String,
    /// Packages the lock pins without hashes, let in by `allow-unhashed` (`name==version`).
    pub unhashed: Vec<String>,
    /// How the Debian base lock changed in this build (`+ pkg ver`, `- pkg ver`, `pkg a → b`).
    pub base_changes: Vec<String>,
    /// Whether `--upgrade-base` re-resolved a Debian base's lock (with `base_changes` empty:
    /// nothing newer in the archives).
    #[serde(skip)]
    pub base_upgraded: bool,
    pub target: PythonTarget,
    pub layers: Vec<LayerReport>,
    pub pushed: Vec<PushedReport>,
    /// The smoke commands run in this build.
    pub smoke: Vec<SmokeResult>,
    /// The image had already passed these smoke commands: they were not run again.
    pub smoke_remembered: bool,
    /// Seconds spent per phase, in order.
    pub timings: Vec<(String, f64)>,
    #[serde(skip)]
    pub plan: Plan,
    /// A multi-platform build: each platform's own report (its manifest digest, layers and
    /// smoke results), while `digest` is the index's and `layers` is empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<BuildReport>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PushedReport {
    pub reference: String,
    #[serde(flatten)]
    pub report: PushReport,
}

/// `1 layer`, `3 layers`: a count with its noun in the number it needs.
pub fn counted(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_take_the_noun_in_their_number() {
        assert_eq!(counted(1, "layer", "layers"), "1 layer");
        assert_eq!(counted(0, "layer", "layers"), "0 layers");
        assert_eq!(counted(2, "change", "changes"), "2 changes");
    }
}
