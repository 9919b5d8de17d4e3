//! Wheels made by tests: honest ones (a module, METADATA, WHEEL, a RECORD with true hashes),
//! and the hostile ones a compromised index could serve, each breaking one rule.

use std::io::Write;

use base64::Engine;
use sha2::Digest as _;

/// An entry of a wheel being made.
#[derive(Clone)]
pub enum Item {
    File(String, Vec<u8>),
    Symlink(String, String),
}

/// A wheel named `NAME-VERSION-py3-none-any.whl`.
#[derive(Clone)]
pub struct WheelBuilder {
    pub name: String,
    pub version: String,
    pub items: Vec<Item>,
    /// Entries left out of RECORD (to make a dishonest one).
    pub unlisted: Vec<String>,
    /// Entries RECORD gives a wrong hash for.
    pub misrecorded: Vec<String>,
}

impl WheelBuilder {
    /// A wheel with one module, `NAME/__init__.py`, printing `greeting` when imported.
    pub fn new(name: &str, version: &str) -> WheelBuilder {
        WheelBuilder {
            name: name.to_string(),
            version: version.to_string(),
            items: vec![Item::File(
                format!("{name}/__init__.py"),
                format!("GREETING = 'hello from {name}'\n").into_bytes(),
            )],
            unlisted: Vec::new(),
            misrecorded: Vec::new(),
        }
    }

    pub fn filename(&self) -> String {
        format!("{}-{}-py3-none-any.whl", self.name, self.version)
    }

    fn dist_info(&self) -> String {
        format!("{}-{}.dist-info", self.name, self.version)
    }

    pub fn file(mut self, path: &str, contents: &[u8]) -> Self {
        self.items
            .push(Item::File(path.to_string(), contents.to_vec()));
        self
    }

    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        self.items
            .push(Item::Symlink(path.to_string(), target.to_string()));
        self
    }

    /// The wheel's bytes.
    pub fn build(&self) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        let mut zip = zip::ZipWriter::new(&mut out);
        let opts = zip::write::SimpleFileOptions::default();
        let dist_info = self.dist_info();
        let mut items: Vec<(String, Vec<u8>, bool)> = self
            .items
            .iter()
            .map(|i| match i {
                Item::File(p, c) => (p.clone(), c.clone(), false),
                Item::Symlink(p, t) => (p.clone(), t.clone().into_bytes(), true),
            })
            .collect();
        items.push((
            format!("{dist_info}/METADATA"),
            format!(
                "Metadata-Version: 2.1\nName: {}\nVersion: {}\n",
                self.name, self.version
            )
            .into_bytes(),
            false,
        ));
        items.push((
            format!("{dist_info}/WHEEL"),
            b"Wheel-Version: 1.0\nGenerator: lockship-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
                .to_vec(),
            false,
        ));
        let mut record = String::new();
        for (path, contents, link) in &items {
            if *link {
                zip.add_symlink(path.as_str(), String::from_utf8_lossy(contents), opts)
                    .unwrap();
            } else {
                zip.start_file(path.as_str(), opts).unwrap();
                zip.write_all(contents).unwrap();
            }
            if self.unlisted.contains(path) {
                continue;
            }
            let hashed: &[u8] = if self.misrecorded.contains(path) {
                b"something else"
            } else {
                contents
            };
            let hash = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(sha2::Sha256::digest(hashed));
            record.push_str(&format!("{path},sha256={hash},{}\n", contents.len()));
        }
        record.push_str(&format!("{dist_info}/RECORD,,\n"));
        zip.start_file(format!("{dist_info}/RECORD"), opts).unwrap();
        zip.write_all(record.as_bytes()).unwrap();
        zip.finish().unwrap();
        out.into_inner()
    }
}

/// A zip bomb in the shape of a wheel: one deflate stream of `inflated` zero bytes, and `copies`
/// central-directory entries that all point at it (a "non-recursive" bomb: `copies × inflated`
/// bytes from an archive the size of one stream), plus an honest-looking RECORD.
pub fn overlapping_bomb(name: &str, inflated: usize, copies: usize) -> Vec<u8> {
    let mut deflate = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    let chunk = vec![0u8; 1 << 20];
    let mut left = inflated;
    let mut crc = flate2::Crc::new();
    while left > 0 {
        let n = left.min(chunk.len());
        deflate.write_all(&chunk[..n]).unwrap();
        crc.update(&chunk[..n]);
        left -= n;
    }
    let data = deflate.finish().unwrap();
    let crc = crc.sum();
    let le16 = |v: u16| v.to_le_bytes().to_vec();
    let le32 = |v: u32| v.to_le_bytes().to_vec();
    let local_name = format!("{name}/data0.bin");
    let mut out = Vec::new();
    out.extend(le32(0x0403_4b50));
    out.extend([le16(20), le16(0), le16(8), le16(0), le16(0)].concat());
    out.extend([le32(crc), le32(data.len() as u32), le32(inflated as u32)].concat());
    out.extend([le16(local_name.len() as u16), le16(0)].concat());
    out.extend(local_name.as_bytes());
    out.extend(&data);
    let cd_start = out.len() as u32;
    for i in 0..copies {
        let central = format!("{name}/data{i}.bin");
        out.extend(le32(0x0201_4b50));
        out.extend([le16(20), le16(20), le16(0), le16(8), le16(0), le16(0)].concat());
        out.extend([le32(crc), le32(data.len() as u32), le32(inflated as u32)].concat());
        out.extend(
            [
                le16(central.len() as u16),
                le16(0),
                le16(0),
                le16(0),
                le16(0),
            ]
            .concat(),
        );
        out.extend([le32(0), le32(0)].concat());
        out.extend(central.as_bytes());
    }
    let cd_len = out.len() as u32 - cd_start;
    out.extend(le32(0x0605_4b50));
    out.extend([le16(0), le16(0), le16(copies as u16), le16(copies as u16)].concat());
    out.extend([le32(cd_len), le32(cd_start), le16(0)].concat());
    out
}
