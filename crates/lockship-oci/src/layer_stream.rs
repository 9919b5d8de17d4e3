//! A layer blob opened as its tar stream: decompressed as its media type says (gzip, zstd or
//! none), a compressed one on its own thread ahead of the reader ([`read_ahead`]), so that
//! decompressing overlaps whatever is done with the tar.

use std::io::{self, BufReader, Read};
use std::path::Path;

use crate::read_ahead::read_ahead;

/// How a layer's tar is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Plain,
    Gzip,
    Zstd,
}

impl Encoding {
    /// The encoding a layer media type names by its suffix (`+gzip` and Docker's `.gzip`,
    /// `+zstd`); anything else is read as a plain tar, which a tar reader refuses if it is not.
    pub fn of(media_type: &str) -> Encoding {
        if media_type.ends_with("+zstd") {
            Encoding::Zstd
        } else if media_type.ends_with("+gzip") || media_type.ends_with(".tar.gzip") {
            Encoding::Gzip
        } else {
            Encoding::Plain
        }
    }
}

/// The tar stream of the layer blob at `path`.
pub fn open(path: &Path, encoding: Encoding) -> io::Result<Box<dyn Read>> {
    let file = BufReader::new(std::fs::File::open(path)?);
    Ok(match encoding {
        Encoding::Plain => Box::new(file),
        Encoding::Gzip => Box::new(read_ahead(flate2::read::MultiGzDecoder::new(file))),
        Encoding::Zstd => Box::new(read_ahead(zstd::stream::read::Decoder::with_buffer(file)?)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media_types;
    use std::io::Write;

    #[test]
    fn the_media_type_says_how_to_read_the_layer() {
        for (media_type, encoding) in [
            (media_types::OCI_LAYER_GZIP, Encoding::Gzip),
            (media_types::DOCKER_LAYER_GZIP, Encoding::Gzip),
            (media_types::OCI_LAYER_ZSTD, Encoding::Zstd),
            (media_types::OCI_LAYER_TAR, Encoding::Plain),
            (
                "application/vnd.docker.image.rootfs.diff.tar",
                Encoding::Plain,
            ),
            (
                "application/vnd.dev.lockship.interpreter.v1.tar+gzip",
                Encoding::Gzip,
            ),
            (
                "application/vnd.dev.lockship.interpreter.v2.tar+zstd",
                Encoding::Zstd,
            ),
        ] {
            assert_eq!(Encoding::of(media_type), encoding, "{media_type}");
        }
    }

    #[test]
    fn each_encoding_reads_back_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let tar: Vec<u8> = (0..300_000u32).map(|i| (i % 97) as u8).collect();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        for (name, bytes, encoding) in [
            ("plain", tar.clone(), Encoding::Plain),
            ("gzip", gz.finish().unwrap(), Encoding::Gzip),
            (
                "zstd",
                zstd::stream::encode_all(tar.as_slice(), 3).unwrap(),
                Encoding::Zstd,
            ),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            let mut got = Vec::new();
            open(&path, encoding)
                .unwrap()
                .read_to_end(&mut got)
                .unwrap();
            assert!(got == tar, "{name}");
        }
    }

    #[test]
    fn a_damaged_stream_is_an_error_not_a_short_tar() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad");
        let mut zst = zstd::stream::encode_all(&[7u8; 100_000][..], 3).unwrap();
        zst.truncate(zst.len() / 2);
        std::fs::write(&path, &zst).unwrap();
        let mut got = Vec::new();
        assert!(open(&path, Encoding::Zstd)
            .unwrap()
            .read_to_end(&mut got)
            .is_err());
    }
}
