//! Hot paths of a build, with criterion: writing a layer's tar, compressing it (gzip level 6,
//! what lockship ships, next to level 1 and zstd 3 as peers), hashing, and turning a wheel into a
//! layer blob (lockship keeps the wheel's deflated members; the peer unzips to disk, tars and
//! gzips, as lockship did before). Inputs are made here, deterministically; no network.

use std::io::Write;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use lockship_oci::blob_store::BlobStore;
use lockship_oci::digest::Digest;
use lockship_oci::layer::write_layer;
use lockship_oci::tar_tree::TarTree;

/// A tree shaped like an installed package: many small, compressible Python files.
fn tree(files: usize, size: usize) -> TarTree {
    let mut tree = TarTree::new();
    for i in 0..files {
        let body: String = (0..size / 32)
            .map(|j| format!("value_{i}_{j} = {j} * 2\n"))
            .collect();
        tree.bytes(
            &format!(
                "opt/venv/lib/python3.11/site-packages/pkg{}/mod{i}.py",
                i % 40
            ),
            body,
            0o644,
        );
    }
    tree
}

fn bench_tar_and_compress(c: &mut Criterion) {
    let tree = tree(2000, 8192);
    let tar = tree.write_tar(Vec::new(), 0).unwrap();
    let mut group = c.benchmark_group("layer");
    group.throughput(Throughput::Bytes(tar.len() as u64));
    group.sample_size(10);
    group.bench_function("tar (16 MB, 2000 files)", |b| {
        b.iter(|| tree.write_tar(std::io::sink(), 0).unwrap())
    });
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).unwrap();
    group.bench_function("tar+gzip6+sha256 into the store (lockship)", |b| {
        b.iter(|| write_layer(&tree, 0, &store).unwrap())
    });
    for (name, level) in [("gzip level 1 (peer)", 1), ("gzip level 6", 6)] {
        group.bench_with_input(BenchmarkId::new("compress", name), &level, |b, &level| {
            b.iter(|| {
                let mut gz =
                    flate2::write::GzEncoder::new(std::io::sink(), flate2::Compression::new(level));
                gz.write_all(&tar).unwrap();
                gz.finish().unwrap()
            })
        });
    }
    group.bench_function("compress/zstd level 3 (peer)", |b| {
        b.iter(|| zstd::stream::encode_all(tar.as_slice(), 3).unwrap())
    });
    group.finish();
}

fn bench_hash(c: &mut Criterion) {
    let data = vec![0x5au8; 32 << 20];
    let mut group = c.benchmark_group("hash");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.sample_size(10);
    group.bench_function("sha256 32 MB", |b| b.iter(|| Digest::of_bytes(&data)));
    group.finish();
}

/// A valid wheel with `modules` modules and a console script.
fn wheel(dir: &std::path::Path, modules: usize) -> std::path::PathBuf {
    let path = dir.join("demo-1.0-py3-none-any.whl");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let opts = zip::write::SimpleFileOptions::default();
    let mut record = String::new();
    let mut add = |zip: &mut zip::ZipWriter<std::fs::File>, name: &str, body: &str| {
        use base64::Engine;
        use sha2::Digest;
        zip.start_file(name, opts).unwrap();
        zip.write_all(body.as_bytes()).unwrap();
        // RECORD vouches for every file, as lockship requires (PEP 427).
        let hash = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(body.as_bytes()));
        record.push_str(&format!("{name},sha256={hash},{}\n", body.len()));
    };
    // Modules of ~120 KB that deflate to ~25 KB, the size of member that makes up most of a
    // data-science wheel's bytes (and above the 16 KiB at which members are kept deflated).
    for i in 0..modules {
        let body: String = (0..3000)
            .map(|j| format!("v{} = {}\n", (i * 7919 + j * 104_729) % 99_991, j * i))
            .collect();
        add(&mut zip, &format!("demo/mod{i}.py"), &body);
    }
    add(&mut zip, "demo/__init__.py", "def main():\n    pass\n");
    add(
        &mut zip,
        "demo-1.0.dist-info/METADATA",
        "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n",
    );
    add(
        &mut zip,
        "demo-1.0.dist-info/WHEEL",
        "Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    );
    add(
        &mut zip,
        "demo-1.0.dist-info/entry_points.txt",
        "[console_scripts]\ndemo = demo:main\n",
    );
    record.push_str("demo-1.0.dist-info/RECORD,,\n");
    zip.start_file("demo-1.0.dist-info/RECORD", opts).unwrap();
    zip.write_all(record.as_bytes()).unwrap();
    zip.finish().unwrap();
    path
}

fn bench_install(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let wheel = wheel(dir.path(), 200);
    let target = lockship_python::target::bookworm();
    let store = BlobStore::open(dir.path().join("store")).unwrap();
    let mut group = c.benchmark_group("wheel to layer");
    group.sample_size(10);
    group.bench_function(
        "200 modules, 24 MB: install + layer, members kept deflated (lockship)",
        |b| {
            b.iter_with_setup(
                || tempfile::tempdir_in(dir.path()).unwrap(),
                |root| {
                    let r = root.path().join("root");
                    std::fs::create_dir_all(&r).unwrap();
                    let mut tree = TarTree::new();
                    lockship_python::install::install(
                        &wheel,
                        "demo-1.0-py3-none-any.whl",
                        &target,
                        &r,
                        &mut tree,
                    )
                    .unwrap();
                    tree.add_host_dir(&r, "").unwrap();
                    write_layer(&tree, 0, &store).unwrap();
                },
            )
        },
    );
    group.bench_function(
        "200 modules, 24 MB: unzip to disk, tar, gzip level 6 (peer)",
        |b| {
            b.iter_with_setup(
                || tempfile::tempdir_in(dir.path()).unwrap(),
                |root| {
                    let r = root.path().join("site-packages");
                    let mut archive =
                        zip::ZipArchive::new(std::fs::File::open(&wheel).unwrap()).unwrap();
                    archive.extract(&r).unwrap();
                    let mut tree = TarTree::new();
                    tree.add_host_dir(&r, "opt/venv/lib/python3.11/site-packages")
                        .unwrap();
                    let gz =
                        flate2::write::GzEncoder::new(std::io::sink(), flate2::Compression::new(6));
                    tree.write_tar(gz, 0).unwrap().finish().unwrap();
                },
            )
        },
    );
    group.finish();
}

criterion_group!(benches, bench_tar_and_compress, bench_hash, bench_install);
criterion_main!(benches);
