//! A layer blob opened as its tar stream: decompressed as its first bytes say (gzip, zstd or
//! none), as containerd does, whatever its media type claims; a compressed one on its own
//! thread ahead of the reader ([`read_ahead`]), so that decompressing overlaps whatever is done
//! with the tar.

use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use crate::media_types;
use crate::read_ahead::read_ahead;

/// How a layer's tar is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Plain,
    Gzip,
    Zstd,
}

impl Encoding {
    /// The encoding of a blob that starts with `head` (its magic number; a tar has none).
    pub fn sniff(head: &[u8]) -> Encoding {
        if head.starts_with(&[0x1f, 0x8b]) {
            Encoding::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Encoding::Zstd
        } else {
            Encoding::Plain
        }
    }

    /// The OCI layer media type of a blob in this encoding.
    pub fn oci_media_type(self) -> &'static str {
        match self {
            Encoding::Plain => media_types::OCI_LAYER_TAR,
            Encoding::Gzip => media_types::OCI_LAYER_GZIP,
            Encoding::Zstd => media_types::OCI_LAYER_ZSTD,
        }
    }
}

/// A layer's tar may not decompress to more than this: real layers stay far below it (the
/// largest CUDA layers are ~10 GiB), and a decompression bomb (zstd reaches ~30,000:1) stops
/// here instead of running for hours.
pub const MAX_TAR: u64 = 64 << 30;

/// zstd frames asking for a window above 2^27 bytes (128 MiB of memory per reader) are refused:
/// libzstd's own default, which `zstd --long` layers above 27 exceed (rare: containerd reads
/// them, lockship says the layer cannot be read).
const ZSTD_WINDOW_LOG_MAX: u32 = 27;

/// The tar stream of the layer blob at `path`.
pub fn open(path: &Path) -> io::Result<Box<dyn Read + Send>> {
    decode(BufReader::new(std::fs::File::open(path)?))
}

/// The tar stream of a layer blob read from `blob`.
pub fn decode<R: BufRead + Send + 'static>(mut blob: R) -> io::Result<Box<dyn Read + Send>> {
    let encoding = Encoding::sniff(blob.fill_buf()?);
    Ok(match encoding {
        Encoding::Plain => Box::new(Capped::new(blob)),
        Encoding::Gzip => Box::new(read_ahead(Capped::new(
            flate2::bufread::MultiGzDecoder::new(blob),
        ))?),
        Encoding::Zstd => {
            let mut zstd = zstd::stream::read::Decoder::with_buffer(blob)?;
            zstd.window_log_max(ZSTD_WINDOW_LOG_MAX)?;
            Box::new(read_ahead(Capped::new(zstd))?)
        }
    })
}

/// A reader that fails once more than [`MAX_TAR`] bytes came out of it.
struct Capped<R> {
    inner: R,
    left: u64,
}

impl<R> Capped<R> {
    fn new(inner: R) -> Self {
        Capped {
            inner,
            left: MAX_TAR,
        }
    }
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.left = self.left.checked_sub(n as u64).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("it decompresses to more than {} GiB", MAX_TAR >> 30),
            )
        })?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn tar_bytes() -> Vec<u8> {
        (0..300_000u32).map(|i| (i % 97) as u8).collect()
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn the_first_bytes_say_how_to_read_the_layer_whatever_its_label() {
        let tar = tar_bytes();
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes, encoding) in [
            ("plain", tar.clone(), Encoding::Plain),
            ("gzip", gzip(&tar), Encoding::Gzip),
            (
                "zstd",
                zstd::stream::encode_all(tar.as_slice(), 3).unwrap(),
                Encoding::Zstd,
            ),
        ] {
            assert_eq!(Encoding::sniff(&bytes), encoding, "{name}");
            let path = dir.path().join(name);
            std::fs::write(&path, &bytes).unwrap();
            let mut got = Vec::new();
            open(&path).unwrap().read_to_end(&mut got).unwrap();
            assert!(got == tar, "{name}");
        }
        assert_eq!(Encoding::Zstd.oci_media_type(), media_types::OCI_LAYER_ZSTD);
        assert_eq!(Encoding::sniff(b""), Encoding::Plain);
    }

    #[test]
    fn a_damaged_stream_is_an_error_not_a_short_tar() {
        let tar = tar_bytes();
        let mut zst = zstd::stream::encode_all(tar.as_slice(), 3).unwrap();
        zst.truncate(zst.len() / 2);
        let mut gz = gzip(&tar);
        gz.truncate(gz.len() / 2);
        for bytes in [zst, gz] {
            let mut got = Vec::new();
            let read = decode(io::Cursor::new(bytes))
                .unwrap()
                .read_to_end(&mut got);
            assert!(read.is_err());
        }
    }

    #[test]
    fn a_zstd_frame_asking_for_a_huge_window_is_refused() {
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        encoder.long_distance_matching(true).unwrap();
        encoder.window_log(30).unwrap();
        encoder.write_all(&tar_bytes()).unwrap();
        let bytes = encoder.finish().unwrap();
        let mut got = Vec::new();
        assert!(decode(io::Cursor::new(bytes))
            .unwrap()
            .read_to_end(&mut got)
            .is_err());
    }

    #[test]
    fn past_the_cap_reading_fails() {
        let mut capped = Capped {
            inner: io::repeat(0),
            left: 1000,
        };
        let mut buf = [0u8; 600];
        capped.read_exact(&mut buf).unwrap();
        let err = capped.read_exact(&mut buf).unwrap_err();
        assert!(
            err.to_string().contains("decompresses to more than"),
            "{err}"
        );
    }
}
