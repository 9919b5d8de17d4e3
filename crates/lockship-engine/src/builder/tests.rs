//! The build's stages with an injected base (an image already in the store), so they run with
//! no registry, no index and no network: a copied app on a one-layer base, to an OCI layout.

use std::path::Path;

use super::registry_cache::RegistryCache;
use lockship_net::{Http, NetOptions};
use lockship_oci::image::{BlobOrigin, ImageLayer};
use lockship_oci::layer::write_layer;
use lockship_oci::registry::{Registry, RegistryAccess};
use lockship_oci::tar_tree::TarTree;
use lockship_python::probe::BaseFacts;
use lockship_python::target::Libc;

use super::base::{ResolvedBase, StoredBase};
use super::*;
use crate::plan::LayerContent;

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n";

/// A base of one layer, written into `store`: what a registry base resolves to.
fn stored_base(store: &BlobStore) -> StoredBase {
    let mut tree = TarTree::new();
    tree.bytes("etc/passwd", PASSWD, 0o644);
    tree.bytes("etc/group", "root:x:0:\n", 0o644);
    tree.bytes("usr/bin/python3.11", "#!stub\n", 0o755);
    let info = write_layer(&tree, 0, store).unwrap();
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/usr/bin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [info.diff_id.to_string()]},
        "history": [{"created_by": "test base"}],
    });
    StoredBase(ResolvedBase {
        name: "test-base".into(),
        pinned: "test-base@sha256:0".into(),
        digest_label: (
            "org.opencontainers.image.base.digest".into(),
            "sha256:0".into(),
        ),
        config,
        layers: vec![ImageLayer {
            info,
            created_by: String::new(),
            origin: BlobOrigin::Local,
            annotations: Default::default(),
        }],
        facts: BaseFacts {
            python_version: (3, 11, 2),
            interpreter: "/usr/bin/python3.11".into(),
            libc: Libc::Glibc {
                major: 2,
                minor: 36,
            },
            passwd: Some(PASSWD.into()),
            group: Some("root:x:0:\n".into()),
            libraries: None,
        },
        reference: None,
        built: false,
        changes: Vec::new(),
        upgraded: false,
    })
}

/// A project with no dependencies whose app is copied (no build backend needed).
fn project(dir: &Path) {
    std::fs::write(
        dir.join("pyproject.toml"),
        "[project]\nname = \"demo\"\nversion = \"1.0\"\ndependencies = []\n\n[tool.lockship]\napp = \"copy\"\ncmd = [\"python\", \"/app/main.py\"]\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("uv.lock"),
        "version = 1\nrevision = 2\nrequires-python = \">=3.11\"\n\n[[package]]\nname = \"demo\"\nversion = \"1.0\"\nsource = { virtual = \".\" }\n",
    )
    .unwrap();
    std::fs::write(dir.join("main.py"), "print('hello')\n").unwrap();
}

fn options(project_dir: &Path, cache_dir: &Path, out: &Path) -> BuildOptions {
    BuildOptions {
        project_dir: project_dir.to_path_buf(),
        base: None,
        platform: None,
        platforms: Vec::new(),
        outputs: vec![Output::OciLayout(out.to_path_buf())],
        cache_dir: cache_dir.to_path_buf(),
        source_date_epoch: 0,
        tag: Some("demo:test".into()),
        dry_run: false,
        upgrade_base: false,
        smoke: SmokeMode::Skip,
        runtime: None,
        network: false,
        target: crate::project::PRODUCTION.into(),
        net: NetOptions::default(),
        registry: RegistryAccess::default(),
        uv: "uv".into(),
        index_sources: IndexSources::default(),
        index_credentials: Default::default(),
        url_vars: Default::default(),
        no_bytecode: true,
        ca_bundle: None,
        cache_from: Vec::new(),
        cache_to: Vec::new(),
        registry_cache: true,
    }
}

struct Setup {
    _dirs: tempfile::TempDir,
    remote: RegistryCache,
    opts: BuildOptions,
    store: BlobStore,
    source: StoredBase,
    http: Http,
    registry: Registry,
}

fn setup() -> Setup {
    let dirs = tempfile::tempdir().unwrap();
    let (proj, cache, out) = (
        dirs.path().join("project"),
        dirs.path().join("cache"),
        dirs.path().join("out"),
    );
    std::fs::create_dir_all(&proj).unwrap();
    project(&proj);
    let opts = options(&proj, &cache, &out);
    let store = open_cache(&cache).unwrap();
    let source = stored_base(&store);
    let http = Http::new(&opts.net).unwrap();
    let registry = Registry::new(http.clone(), RegistryAccess::default());
    Setup {
        _dirs: dirs,
        opts,
        store,
        source,
        http,
        registry,
        remote: RegistryCache::default(),
    }
}

impl Setup {
    fn session(&self) -> Session<'_> {
        Session {
            opts: &self.opts,
            http: &self.http,
            registry: &self.registry,
            store: &self.store,
            reporter: &Silent,
            pycs: None,
            single_platform: true,
            remote: &self.remote,
        }
    }
}

async fn build(s: &Setup) -> BuildReport {
    let project = Project::load(&s.opts.project_dir).unwrap();
    let lock = LockFile::find(&project.dir, None).unwrap();
    build_from(&s.session(), project, lock, &s.source)
        .await
        .unwrap()
}

#[tokio::test]
async fn each_stage_alone_on_an_injected_base() {
    let s = setup();
    let project = Project::load(&s.opts.project_dir).unwrap();
    let lock = LockFile::find(&project.dir, None).unwrap();
    let mut timer = Timer {
        start: Instant::now(),
        timings: Vec::new(),
    };

    let session = s.session();
    let mut prepared = prepare(&session, project, lock, &s.source, &mut timer)
        .await
        .unwrap();
    assert_eq!(prepared.target.interpreter, "/usr/bin/python3.11");
    assert!(prepared.app_wheel.is_none());
    assert_eq!(prepared.user.name, "nonroot");
    let kinds: Vec<&LayerContent> = prepared.plan.layers.iter().map(|l| &l.content).collect();
    assert!(matches!(
        kinds[..],
        [LayerContent::Runtime, LayerContent::AppFiles { .. }]
    ));

    let produced = produce_layers(&session, &mut prepared, &s.source)
        .await
        .unwrap();
    assert_eq!(produced.fresh, [true, true]);
    for info in &produced.layers {
        assert!(s.store.verify(&info.digest, "layer").unwrap());
    }

    let image = assemble(&s.opts, &prepared, &produced, &Default::default());
    assert_eq!(image.layers.len(), 3);
    let config: serde_json::Value = serde_json::from_slice(&image.config).unwrap();
    assert_eq!(
        config["config"]["Cmd"],
        serde_json::json!(["python", "/app/main.py"])
    );
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 3);
    // Pure: the same inputs, the same bytes.
    assert_eq!(
        assemble(&s.opts, &prepared, &produced, &Default::default()).manifest,
        image.manifest
    );

    let published = publish(
        &session, &prepared, &image, &produced, &s.source, &mut timer,
    )
    .await
    .unwrap();
    assert!(published.pushed.is_empty() && published.smoke.is_empty());
    let Output::OciLayout(out) = &s.opts.outputs[0] else {
        unreachable!()
    };
    let index = std::fs::read_to_string(out.join("index.json")).unwrap();
    assert!(index.contains(image.manifest_digest.as_str()), "{index}");
    for layer in &image.layers {
        assert!(out
            .join("blobs/sha256")
            .join(layer.info.digest.hex())
            .is_file());
    }
}

#[tokio::test]
async fn a_second_build_takes_every_layer_from_the_cache_and_repeats_the_digest() {
    let s = setup();
    let first = build(&s).await;
    assert!(first.layers[1..].iter().all(|l| l.built));
    let second = build(&s).await;
    assert_eq!(first.digest, second.digest);
    assert!(second.layers.iter().all(|l| !l.built));
    // A changed app file changes only the app layer.
    std::fs::write(s.opts.project_dir.join("main.py"), "print('bye')\n").unwrap();
    let third = build(&s).await;
    assert_ne!(third.digest, first.digest);
    let changed: Vec<bool> = first
        .layers
        .iter()
        .zip(&third.layers)
        .map(|(a, b)| a.digest != b.digest)
        .collect();
    assert_eq!(changed, [false, false, true]);
}

#[tokio::test]
async fn a_dry_run_fails_as_the_build_would_when_no_builder_can_build_an_sdist() {
    let mut s = setup();
    s.opts.dry_run = true;
    let project = Project::load(&s.opts.project_dir).unwrap();
    let resolved = s.source.0.clone();
    let target = base::python_target(&project, &resolved, &s.opts);
    let sdist = lockship_python::lock::LockedWheel {
        filename: "docopt-0.6.2.tar.gz".into(),
        url: "https://files.example/docopt-0.6.2.tar.gz".into(),
        sha256: lockship_oci::digest::Digest::of_bytes(b"docopt sdist"),
        size: Some(1),
    };
    let missing = || {
        vec![lockship_python::select::Unsatisfied {
            name: "docopt".into(),
            version: "0.6.2".into(),
            wheels: 0,
            sdist: Some(sdist.clone()),
        }]
    };
    let ctx = |project| sdists::BuildContext {
        project,
        target: &target,
        source: &s.source,
        index_url: None,
    };
    // A registry-like base assembles no builder and none is configured: the real build's error.
    let err = sdists::build_missing(&s.session(), &ctx(&project), missing())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("building its sdist needs a builder image"),
        "{err}"
    );
    // With a builder image named, the dry run plans the sdist and starts no container.
    let mut configured = project.clone();
    configured.config.builder = Some(crate::project::BuilderConfig {
        image: Some("registry.example/builder:1".into()),
        packages: Vec::new(),
    });
    let planned = sdists::build_missing(&s.session(), &ctx(&configured), missing())
        .await
        .unwrap();
    assert_eq!(planned[0].wheel.filename, "docopt-0.6.2.tar.gz");
}

#[test]
fn upgrade_base_concerns_a_debian_base_only() {
    let s = setup();
    let project = Project::load(&s.opts.project_dir).unwrap();
    // No base configured: the default image, which --upgrade-base leaves alone.
    assert_eq!(
        base::not_debian(&project, &s.opts).unwrap().as_deref(),
        Some(DEFAULT_BASE)
    );
    let mut debian = project.clone();
    debian.config.base = Some(toml::Value::Table(
        toml::from_str("debian = \"bookworm\"\npackages = [\"python3\"]").unwrap(),
    ));
    assert_eq!(base::not_debian(&debian, &s.opts).unwrap(), None);
}
