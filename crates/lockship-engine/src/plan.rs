//! The build plan: which wheel goes into which layer, and each layer's cache key. Pure: it takes
//! the resolved inputs and does no I/O, so it can be printed (`--dry-run`) and tested alone.

use std::path::PathBuf;

use serde::Serialize;

use lockship_oci::digest::Digest;
use lockship_python::select::ChosenWheel;
use lockship_python::target::PythonTarget;

/// Bump when the bytes of any layer lockship writes would change, to invalidate cached layers.
/// v2: a wheel's entries for empty directories make none (as pip).
const LAYER_FORMAT: &str = "lockship-layer-v2";

/// Added to the key of a package layer that carries bytecode, with what identifies the
/// interpreter that compiles it ([`PlanInputs::bytecode`]). v2: keyed by that interpreter, not
/// only by the target's Python version: pycs are whatever that interpreter writes, so a layer
/// compiled by one base's interpreter must never be reused for another's.
const BYTECODE: &str = "bytecode-unchecked-hash-v2";

/// Past this many dependency layers, the smallest packages share one layer: runtimes limit
/// layer counts (overlayfs stacks ~128 lower directories) and each layer costs a round trip.
pub const MAX_DEPENDENCY_LAYERS: usize = 40;

/// The same limit for the dependencies a target (dev, test…) adds.
pub const MAX_TARGET_LAYERS: usize = 20;

/// What a layer holds.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LayerContent {
    /// The venv skeleton, the user's passwd/group entries, home and workdir.
    Runtime,
    /// Locked dependencies, with their bytecode when `bytecode` is set.
    Wheels {
        wheels: Vec<ChosenWheel>,
        bytecode: bool,
    },
    /// The project built as a wheel.
    AppWheel { bytecode: bool },
    /// Project files copied into the workdir.
    AppFiles { files: Vec<PathBuf> },
    /// Pycs of the base's standard library (under `stdlib`), compiled from the sources in the
    /// base's `layers`: for a base that has none (one lockship assembles from Debian packages,
    /// whose py3compile runs at install time, which lockship does not run).
    StdlibBytecode { layers: Vec<Digest>, stdlib: String },
}

impl LayerContent {
    /// Whether writing the layer compiles bytecode.
    pub fn has_bytecode(&self) -> bool {
        matches!(
            self,
            LayerContent::Wheels { bytecode: true, .. }
                | LayerContent::AppWheel { bytecode: true }
                | LayerContent::StdlibBytecode { .. }
        )
    }
}

/// A layer to produce.
#[derive(Clone, Debug, Serialize)]
pub struct PlannedLayer {
    /// Short description, used as the history entry (`created_by`).
    pub description: String,
    pub content: LayerContent,
    /// Inputs digest: equal keys mean equal layer bytes.
    pub key: String,
}

/// Everything the build will produce on top of the base.
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    pub target: PythonTarget,
    pub layers: Vec<PlannedLayer>,
}

/// Inputs to the plan that are not wheels.
pub struct PlanInputs<'a> {
    pub target: &'a PythonTarget,
    /// Digest of everything the runtime layer depends on (user, passwd, workdir…).
    pub runtime_key: String,
    /// Digest of the app's inputs (source files and mode).
    pub app_key: String,
    pub app: AppPlan,
    /// A target's own files (name of the target, files, digest of their contents).
    pub target_files: Option<(String, Vec<PathBuf>, String)>,
    pub mtime: u64,
    /// When package layers carry `.pyc` files: what identifies the interpreter that compiles
    /// them (the layers of the base it is unpacked from, and its path there).
    pub bytecode: Option<String>,
    /// How the layers are compressed.
    pub compression: lockship_oci::layer::Compression,
    /// With bytecode, a base whose standard library has no pycs: its layers and the standard
    /// library's directory (`usr/lib/python3.11`).
    pub stdlib_bytecode: Option<(Vec<Digest>, String)>,
}

/// How the app goes in.
pub enum AppPlan {
    Wheel,
    Files(Vec<PathBuf>),
}

fn key(parts: &[&str]) -> String {
    lockship_oci::digest::Digest::of_parts(parts)
        .hex()
        .to_string()
}

/// Lays out the layers: runtime, dependencies (one per package, the smallest grouped past
/// [`MAX_DEPENDENCY_LAYERS`]), the target's own dependencies, the app, the target's files.
pub fn plan_layers(
    inputs: PlanInputs<'_>,
    wheels: &[ChosenWheel],
    target_wheels: &[ChosenWheel],
) -> Plan {
    // Without the architecture: a layer's bytes follow from its wheels (whose hashes are in the
    // key, and differ where a package is built per architecture), the interpreter's version and
    // paths, and the venv; nothing lockship writes depends on the machine. So the layers of
    // pure-Python packages, the app and their bytecode are one blob for every platform of a
    // multi-platform build, made and pushed once.
    let keyed = PythonTarget {
        architecture: String::new(),
        ..inputs.target.clone()
    };
    let target_json = serde_json::to_string(&keyed).expect("target serializes");
    let mtime = inputs.mtime.to_string();
    let common = [LAYER_FORMAT, target_json.as_str(), mtime.as_str()];
    let mut layers = vec![PlannedLayer {
        description: format!(
            "lockship: virtual environment {} and user",
            inputs.target.venv
        ),
        content: LayerContent::Runtime,
        key: key(&[&common[..], &["runtime", &inputs.runtime_key]].concat()),
    }];

    // Layers with bytecode have keys of their own; layers without keep the keys they had.
    let compiled_by = inputs.bytecode.as_deref();
    let bytecode = compiled_by.is_some();
    let with_bytecode;
    let packages: &[&str] = match compiled_by {
        Some(interpreter) => {
            with_bytecode = [
                LAYER_FORMAT,
                target_json.as_str(),
                mtime.as_str(),
                BYTECODE,
                interpreter,
            ];
            &with_bytecode
        }
        None => &common,
    };
    if let (true, Some((base_layers, stdlib))) = (bytecode, inputs.stdlib_bytecode.as_ref()) {
        let mut parts = [packages, &["stdlib", stdlib.as_str()]].concat();
        parts.extend(base_layers.iter().map(Digest::as_str));
        layers.push(PlannedLayer {
            description: format!("lockship: bytecode of the base's /{stdlib}"),
            content: LayerContent::StdlibBytecode {
                layers: base_layers.clone(),
                stdlib: stdlib.clone(),
            },
            key: key(&parts),
        });
    }
    layers.extend(dependency_layers(
        wheels,
        packages,
        MAX_DEPENDENCY_LAYERS,
        bytecode,
    ));
    // A target's extra dependencies come after the production ones, so every production layer
    // is shared, byte for byte, between the targets.
    layers.extend(dependency_layers(
        target_wheels,
        packages,
        MAX_TARGET_LAYERS,
        bytecode,
    ));

    // The app's wheel may have extension modules (then the builder makes it per platform),
    // which its key cannot know before it is built: its layer is the one package layer keyed
    // by the architecture.
    let app_key = key(&[
        packages,
        &["app", &inputs.app_key, &inputs.target.architecture],
    ]
    .concat());
    layers.push(match inputs.app {
        AppPlan::Wheel => PlannedLayer {
            description: "lockship: the project, built as a wheel".into(),
            content: LayerContent::AppWheel { bytecode },
            key: app_key,
        },
        AppPlan::Files(files) => PlannedLayer {
            description: format!("lockship: {} project files", files.len()),
            content: LayerContent::AppFiles { files },
            key: key(&[&common[..], &["app", &inputs.app_key]].concat()),
        },
    });
    if let Some((name, files, digest)) = inputs.target_files {
        layers.push(PlannedLayer {
            description: format!("lockship: {} files of target {name}", files.len()),
            key: key(&[&common[..], &["target-files", &name, &digest]].concat()),
            content: LayerContent::AppFiles { files },
        });
    }
    // Another compression makes other bytes of the same tar: other keys. Gzip layers keep the
    // keys they always had, so caches stay warm.
    let compression = inputs.compression;
    if compression != lockship_oci::layer::Compression::Gzip {
        for layer in &mut layers {
            layer.key = key(&[&layer.key, "compression", compression.name()]);
        }
    }
    Plan {
        target: inputs.target.clone(),
        layers,
    }
}

/// One layer per package, the smallest grouped into one past `max` layers.
fn dependency_layers(
    wheels: &[ChosenWheel],
    common: &[&str],
    max: usize,
    bytecode: bool,
) -> Vec<PlannedLayer> {
    let mut wheels: Vec<ChosenWheel> = wheels.to_vec();
    if wheels.is_empty() {
        return Vec::new();
    }
    wheels.sort_by(|a, b| a.name.cmp(&b.name));
    let mut groups: Vec<Vec<ChosenWheel>> = if wheels.len() <= max {
        wheels.into_iter().map(|w| vec![w]).collect()
    } else {
        let mut by_size = wheels.clone();
        by_size.sort_by(|a, b| {
            b.wheel
                .size
                .unwrap_or(0)
                .cmp(&a.wheel.size.unwrap_or(0))
                .then(a.name.cmp(&b.name))
        });
        let big: Vec<String> = by_size[..max - 1].iter().map(|w| w.name.clone()).collect();
        let (own, rest): (Vec<_>, Vec<_>) = wheels.into_iter().partition(|w| big.contains(&w.name));
        let mut g: Vec<Vec<_>> = own.into_iter().map(|w| vec![w]).collect();
        g.push(rest);
        g
    };
    groups.sort_by(|a, b| a[0].name.cmp(&b[0].name));
    groups
        .into_iter()
        .map(|group| {
            let mut parts: Vec<&str> = common.to_vec();
            parts.push("wheels");
            for w in &group {
                parts.push(w.wheel.sha256.as_str());
            }
            let description = if group.len() == 1 {
                format!(
                    "lockship: {} {} ({})",
                    group[0].name, group[0].version, group[0].wheel.filename
                )
            } else {
                format!(
                    "lockship: {}",
                    group
                        .iter()
                        .map(|w| format!("{} {}", w.name, w.version))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            PlannedLayer {
                description,
                key: key(&parts),
                content: LayerContent::Wheels {
                    wheels: group,
                    bytecode,
                },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockship_python::lock::LockedWheel;
    use lockship_python::target::bookworm;

    fn wheel(name: &str, size: u64) -> ChosenWheel {
        let filename = format!("{name}-1.0-py3-none-any.whl");
        ChosenWheel {
            name: name.into(),
            version: "1.0".into(),
            wheel: LockedWheel {
                url: format!("https://files.example/{filename}"),
                sha256: Digest::of_bytes(filename.as_bytes()),
                filename,
                size: Some(size),
            },
        }
    }

    fn inputs(target: &PythonTarget) -> PlanInputs<'_> {
        PlanInputs {
            target,
            runtime_key: "runtime".into(),
            app_key: "app".into(),
            app: AppPlan::Wheel,
            target_files: None,
            mtime: 0,
            bytecode: Some("python:3.11 layers".into()),
            compression: Default::default(),
            stdlib_bytecode: None,
        }
    }

    #[test]
    fn another_compression_changes_every_key_and_gzip_none() {
        use lockship_oci::layer::Compression;
        let target = bookworm();
        let wheels = [wheel("click", 1)];
        let keys = |compression| {
            plan_layers(
                PlanInputs {
                    compression,
                    ..inputs(&target)
                },
                &wheels,
                &[],
            )
            .layers
            .into_iter()
            .map(|l| l.key)
            .collect::<Vec<_>>()
        };
        let gzip = keys(Compression::Gzip);
        // Gzip keys are the ones every earlier build used.
        let bare = plan_layers(inputs(&target), &wheels, &[]);
        assert_eq!(
            gzip,
            bare.layers.into_iter().map(|l| l.key).collect::<Vec<_>>()
        );
        for other in [Compression::GzipSingle, Compression::Zstd] {
            let k = keys(other);
            assert!(k.iter().zip(&gzip).all(|(a, b)| a != b), "{other:?}");
        }
        assert_ne!(keys(Compression::GzipSingle), keys(Compression::Zstd));
    }

    fn names(layer: &PlannedLayer) -> Vec<&str> {
        match &layer.content {
            LayerContent::Wheels { wheels, .. } => wheels.iter().map(|w| w.name.as_str()).collect(),
            _ => Vec::new(),
        }
    }

    #[test]
    fn runtime_then_one_layer_per_package_by_name_then_the_app() {
        let target = bookworm();
        let plan = plan_layers(
            inputs(&target),
            &[wheel("numpy", 9), wheel("click", 1)],
            &[],
        );
        let kinds: Vec<String> = plan.layers.iter().map(|l| l.description.clone()).collect();
        insta::assert_debug_snapshot!(kinds, @r#"
        [
            "lockship: virtual environment /opt/venv and user",
            "lockship: click 1.0 (click-1.0-py3-none-any.whl)",
            "lockship: numpy 1.0 (numpy-1.0-py3-none-any.whl)",
            "lockship: the project, built as a wheel",
        ]
        "#);
        // The same inputs, the same keys; every key differs from the others.
        let again = plan_layers(
            inputs(&target),
            &[wheel("click", 1), wheel("numpy", 9)],
            &[],
        );
        let keys = |p: &Plan| p.layers.iter().map(|l| l.key.clone()).collect::<Vec<_>>();
        assert_eq!(keys(&plan), keys(&again));
        let mut unique = keys(&plan);
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), plan.layers.len());
    }

    #[test]
    fn bytecode_changes_the_package_and_app_keys_only() {
        let target = bookworm();
        let wheels = [wheel("click", 1), wheel("numpy", 9)];
        let with = plan_layers(inputs(&target), &wheels, &[]);
        let without = plan_layers(
            PlanInputs {
                bytecode: None,
                ..inputs(&target)
            },
            &wheels,
            &[],
        );
        // Another interpreter (another base's) compiles other layers.
        let other = plan_layers(
            PlanInputs {
                bytecode: Some("hostile base layers".into()),
                ..inputs(&target)
            },
            &wheels,
            &[],
        );
        let same_as_other: Vec<bool> = with
            .layers
            .iter()
            .zip(&other.layers)
            .map(|(a, b)| a.key == b.key)
            .collect();
        assert_eq!(same_as_other, [true, false, false, false]);
        let same: Vec<bool> = with
            .layers
            .iter()
            .zip(&without.layers)
            .map(|(a, b)| a.key == b.key)
            .collect();
        assert_eq!(same, [true, false, false, false]);
        assert!(with.layers[1].content.has_bytecode());
        assert!(!without.layers[1].content.has_bytecode());
        assert!(!with.layers[0].content.has_bytecode());
    }

    #[test]
    fn a_changed_wheel_changes_only_its_own_layer_key() {
        let target = bookworm();
        let before = plan_layers(
            inputs(&target),
            &[wheel("click", 1), wheel("numpy", 9)],
            &[],
        );
        let mut newer = wheel("numpy", 9);
        newer.wheel.sha256 = Digest::of_bytes(b"numpy 2");
        let after = plan_layers(inputs(&target), &[wheel("click", 1), newer], &[]);
        let changed: Vec<usize> = (0..before.layers.len())
            .filter(|&i| before.layers[i].key != after.layers[i].key)
            .collect();
        assert_eq!(changed, [2]);
        // Anything the target says about the interpreter changes every key.
        let mut other = bookworm();
        other.version = (3, 11, 9);
        let moved = plan_layers(inputs(&other), &[wheel("click", 1), wheel("numpy", 9)], &[]);
        assert!(before
            .layers
            .iter()
            .zip(&moved.layers)
            .all(|(a, b)| a.key != b.key));
        // The architecture alone changes none but the app's (its wheel may have extensions):
        // another platform's wheels do.
        let mut arm = bookworm();
        arm.architecture = "arm64".into();
        let same = plan_layers(inputs(&arm), &[wheel("click", 1), wheel("numpy", 9)], &[]);
        let equal: Vec<bool> = before
            .layers
            .iter()
            .zip(&same.layers)
            .map(|(a, b)| a.key == b.key)
            .collect();
        assert_eq!(equal, [true, true, true, false]);
    }

    /// What writing layers ahead of the sdists relies on (`builder/ahead.rs`): within the
    /// limit, a package's layer is the same whatever other packages join the plan later.
    #[test]
    fn within_the_limit_a_package_layer_does_not_depend_on_the_others() {
        let target = bookworm();
        let package_layers = |plan: &Plan| -> Vec<(String, String)> {
            plan.layers
                .iter()
                .filter(|l| matches!(l.content, LayerContent::Wheels { .. }))
                .map(|l| (l.description.clone(), l.key.clone()))
                .collect()
        };
        let without: Vec<ChosenWheel> = (0..MAX_DEPENDENCY_LAYERS - 1)
            .map(|i| wheel(&format!("p{i:02}"), i as u64 + 1))
            .collect();
        let mut with = without.clone();
        with.push(wheel("built-from-sdist", 500));
        let before = package_layers(&plan_layers(inputs(&target), &without, &[]));
        let after = package_layers(&plan_layers(inputs(&target), &with, &[]));
        assert_eq!(after.len(), before.len() + 1);
        assert!(before.iter().all(|layer| after.contains(layer)));
        // Past the limit it would: the smallest are grouped, so `ahead::exact` refuses it.
        with.push(wheel("another", 600));
        let grouped = package_layers(&plan_layers(inputs(&target), &with, &[]));
        assert!(!before.iter().all(|layer| grouped.contains(layer)));
    }

    #[test]
    fn past_the_layer_limit_the_smallest_packages_share_one_layer() {
        let target = bookworm();
        // 45 packages: p00 is the smallest, p44 the biggest.
        let wheels: Vec<ChosenWheel> = (0..45)
            .map(|i| wheel(&format!("p{i:02}"), 1000 + i))
            .collect();
        let plan = plan_layers(inputs(&target), &wheels, &[]);
        let deps: Vec<&PlannedLayer> = plan
            .layers
            .iter()
            .filter(|l| matches!(l.content, LayerContent::Wheels { .. }))
            .collect();
        assert_eq!(deps.len(), MAX_DEPENDENCY_LAYERS);
        // The 39 biggest keep a layer each; the six smallest share the first, by name.
        assert_eq!(names(deps[0]), ["p00", "p01", "p02", "p03", "p04", "p05"]);
        assert_eq!(
            deps[0].description,
            "lockship: p00 1.0, p01 1.0, p02 1.0, p03 1.0, p04 1.0, p05 1.0"
        );
        for (i, layer) in deps[1..].iter().enumerate() {
            assert_eq!(names(layer), [format!("p{:02}", i + 6)]);
        }
        // Exactly at the limit nothing is grouped.
        let plan = plan_layers(inputs(&target), &wheels[..40], &[]);
        assert!(plan.layers.iter().all(|l| names(l).len() <= 1));
    }

    #[test]
    fn a_targets_layers_follow_production_whose_keys_do_not_change() {
        let target = bookworm();
        let production = [wheel("click", 1)];
        let alone = plan_layers(inputs(&target), &production, &[]);
        let mut with_target = inputs(&target);
        with_target.target_files = Some(("test".into(), vec!["tests/t.py".into()], "d".into()));
        let dev = plan_layers(with_target, &production, &[wheel("pytest", 5)]);
        let descriptions: Vec<&str> = dev.layers.iter().map(|l| l.description.as_str()).collect();
        assert_eq!(
            descriptions,
            [
                "lockship: virtual environment /opt/venv and user",
                "lockship: click 1.0 (click-1.0-py3-none-any.whl)",
                "lockship: pytest 1.0 (pytest-1.0-py3-none-any.whl)",
                "lockship: the project, built as a wheel",
                "lockship: 1 files of target test",
            ]
        );
        // Production's runtime and dependency layers are shared byte for byte.
        assert_eq!(alone.layers[0].key, dev.layers[0].key);
        assert_eq!(alone.layers[1].key, dev.layers[1].key);
    }
}
