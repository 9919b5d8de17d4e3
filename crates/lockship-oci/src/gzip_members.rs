//! A gzip stream written as a series of members (RFC 1952 §2.2): bytes that need compressing go
//! through one deflate member after another, and data that is already deflated (a file inside a
//! wheel, which is a zip) becomes a member of its own, copied verbatim. Every gzip reader in the
//! container world (Go's compress/gzip, pigz, zlib, Python) reads all members as one stream;
//! eStargz layers rely on the same property. This is how a layer of a 150 MB wheel is written
//! without compressing 500 MB again.

use std::io::{self, Write};

use flate2::{Compress, Compression, Crc, Decompress, FlushCompress, FlushDecompress, Status};

/// The fixed member header: deflate, no flags, no mtime, no extra flags, OS unknown. Fixed bytes
/// keep layers reproducible.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];

/// Writes a multi-member gzip stream to `inner`.
pub struct MemberWriter<W: Write> {
    inner: W,
    compress: Compress,
    crc: Crc,
    /// A deflate member is open (its header written, its trailer not yet).
    open: bool,
    /// Any member at all was written; an empty stream still gets one so it stays valid gzip.
    wrote_member: bool,
    out: Vec<u8>,
}

impl<W: Write> MemberWriter<W> {
    pub fn new(inner: W, level: u32) -> Self {
        MemberWriter {
            inner,
            compress: Compress::new(Compression::new(level), false),
            crc: Crc::new(),
            open: false,
            wrote_member: false,
            out: Vec::with_capacity(128 * 1024),
        }
    }

    /// Appends `deflated`, a complete raw deflate stream whose output has CRC-32 `crc` and length
    /// `len`, as a member of its own. The caller vouches for the three agreeing (see
    /// [`inflate_verified`]).
    pub fn raw_member(&mut self, deflated: &[u8], crc: u32, len: u64) -> io::Result<()> {
        self.close_member()?;
        self.inner.write_all(&HEADER)?;
        self.inner.write_all(deflated)?;
        self.inner.write_all(&crc.to_le_bytes())?;
        // ISIZE is the length modulo 2^32.
        self.inner.write_all(&(len as u32).to_le_bytes())?;
        self.wrote_member = true;
        Ok(())
    }

    /// Ends the stream and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        if !self.wrote_member && !self.open {
            self.start_member()?;
        }
        self.close_member()?;
        self.inner.flush()?;
        Ok(self.inner)
    }

    fn start_member(&mut self) -> io::Result<()> {
        self.inner.write_all(&HEADER)?;
        self.open = true;
        self.wrote_member = true;
        Ok(())
    }

    fn close_member(&mut self) -> io::Result<()> {
        if !self.open {
            return Ok(());
        }
        loop {
            self.out.clear();
            let status = self
                .compress
                .compress_vec(&[], &mut self.out, FlushCompress::Finish)
                .map_err(io::Error::other)?;
            self.inner.write_all(&self.out)?;
            if status == Status::StreamEnd {
                break;
            }
        }
        self.inner.write_all(&self.crc.sum().to_le_bytes())?;
        self.inner.write_all(&self.crc.amount().to_le_bytes())?;
        self.compress.reset();
        self.crc.reset();
        self.open = false;
        Ok(())
    }
}

impl<W: Write> Write for MemberWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if !self.open {
            self.start_member()?;
        }
        let mut input = buf;
        while !input.is_empty() {
            self.out.clear();
            let before = self.compress.total_in();
            self.compress
                .compress_vec(input, &mut self.out, FlushCompress::None)
                .map_err(io::Error::other)?;
            let used = (self.compress.total_in() - before) as usize;
            self.inner.write_all(&self.out)?;
            input = &input[used..];
        }
        self.crc.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// How a deflated file checked out.
#[derive(Debug, PartialEq, Eq)]
pub enum Inflated {
    /// The stream decodes to `len` bytes with CRC-32 `crc` and ends exactly at its last byte: it
    /// can stand as a gzip member as it is.
    Exact,
    /// The contents are right, but bytes follow the end of the deflate stream; a gzip reader
    /// would take them for the member's trailer, so the data must be compressed afresh.
    TrailingBytes,
}

/// Inflates `deflated` chunk by chunk into `sink`, checking that it yields exactly `len` bytes
/// with CRC-32 `crc`. A mismatch is an `InvalidData` error: the archive is corrupt.
pub fn inflate_verified(
    deflated: &[u8],
    len: u64,
    crc: u32,
    sink: &mut dyn FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<Inflated> {
    let mut inflate = Decompress::new(false);
    let mut check = Crc::new();
    let mut out = Vec::with_capacity(256 * 1024);
    let mut produced: u64 = 0;
    loop {
        out.clear();
        let consumed = inflate.total_in() as usize;
        let status = inflate
            .decompress_vec(&deflated[consumed..], &mut out, FlushDecompress::None)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        check.update(&out);
        produced += out.len() as u64;
        if produced > len {
            break;
        }
        sink(&out)?;
        match status {
            Status::StreamEnd => break,
            _ if out.is_empty() && inflate.total_in() as usize == consumed => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "deflate stream ends early",
                ))
            }
            _ => {}
        }
    }
    if produced != len || check.sum() != crc {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "contents do not match the archive's record ({produced} bytes, crc {:08x}; expected {len} bytes, crc {crc:08x})",
                check.sum()
            ),
        ));
    }
    Ok(if inflate.total_in() as usize == deflated.len() {
        Inflated::Exact
    } else {
        Inflated::TrailingBytes
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn deflate(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), Compression::new(6));
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn crc_of(data: &[u8]) -> u32 {
        let mut c = Crc::new();
        c.update(data);
        c.sum()
    }

    #[test]
    fn members_read_back_as_one_stream() {
        let file: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let mut w = MemberWriter::new(Vec::new(), 6);
        w.write_all(b"header bytes ").unwrap();
        let raw = deflate(&file);
        w.raw_member(&raw, crc_of(&file), file.len() as u64)
            .unwrap();
        w.raw_member(&raw, crc_of(&file), file.len() as u64)
            .unwrap();
        w.write_all(b" and a tail").unwrap();
        let gz = w.finish().unwrap();
        assert!(gz.windows(2).filter(|p| *p == [0x1f, 0x8b]).count() >= 4);
        let mut plain = Vec::new();
        flate2::read::MultiGzDecoder::new(gz.as_slice())
            .read_to_end(&mut plain)
            .unwrap();
        let mut expected = b"header bytes ".to_vec();
        expected.extend_from_slice(&file);
        expected.extend_from_slice(&file);
        expected.extend_from_slice(b" and a tail");
        assert_eq!(plain, expected);
        // The system gzip agrees (it checks every member's CRC and length).
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x.gz"), &gz).unwrap();
        let status = std::process::Command::new("gzip")
            .arg("-t")
            .arg(dir.path().join("x.gz"))
            .status();
        if let Ok(status) = status {
            assert!(status.success(), "gzip -t rejects the stream");
        }
    }

    #[test]
    fn empty_stream_is_valid_gzip() {
        let gz = MemberWriter::new(Vec::new(), 6).finish().unwrap();
        let mut plain = Vec::new();
        flate2::read::MultiGzDecoder::new(gz.as_slice())
            .read_to_end(&mut plain)
            .unwrap();
        assert!(plain.is_empty());
        assert_eq!(&gz[..2], &[0x1f, 0x8b]);
    }

    #[test]
    fn inflation_is_checked() {
        let data = b"some file contents, some file contents".repeat(100);
        let raw = deflate(&data);
        let mut seen = Vec::new();
        let ok = inflate_verified(&raw, data.len() as u64, crc_of(&data), &mut |c| {
            seen.extend_from_slice(c);
            Ok(())
        })
        .unwrap();
        assert_eq!(ok, Inflated::Exact);
        assert_eq!(seen, data);

        let mut padded = raw.clone();
        padded.extend_from_slice(b"junk");
        let trailing = inflate_verified(&padded, data.len() as u64, crc_of(&data), &mut |_| Ok(()));
        assert_eq!(trailing.unwrap(), Inflated::TrailingBytes);

        let bad_crc = inflate_verified(&raw, data.len() as u64, 7, &mut |_| Ok(()));
        assert_eq!(bad_crc.unwrap_err().kind(), io::ErrorKind::InvalidData);
        let bad_len = inflate_verified(&raw, 10, crc_of(&data), &mut |_| Ok(()));
        assert_eq!(bad_len.unwrap_err().kind(), io::ErrorKind::InvalidData);
        let truncated = inflate_verified(
            &raw[..raw.len() / 2],
            data.len() as u64,
            crc_of(&data),
            &mut |_| Ok(()),
        );
        assert!(truncated.is_err());
    }
}
