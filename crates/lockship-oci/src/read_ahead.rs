//! A reader that runs another reader on its own thread, a few chunks ahead: inflating a base
//! layer then overlaps with what is done with its bytes (parsing the tar, writing files),
//! instead of taking turns on one core.

use std::io::{self, Read};
use std::sync::mpsc::{sync_channel, Receiver};

/// Bytes read per chunk.
const CHUNK: usize = 256 << 10;
/// Chunks read ahead of the consumer: what the reader may hold in memory at most.
const AHEAD: usize = 4;

/// What the thread hands over: a chunk, the error that ended the stream, or its clean end.
/// A thread gone without saying `End` (it panicked) is an error, never a short stream.
enum Message {
    Chunk(Vec<u8>),
    Failed(io::Error),
    End,
}

/// Reads `inner` on a new thread, ahead of the returned reader's caller. An error of `inner`
/// reaches the caller where it happened in the stream; dropping the returned reader stops the
/// thread at its next chunk. Fails only when no thread can be started.
pub fn read_ahead<R: Read + Send + 'static>(mut inner: R) -> io::Result<ReadAhead> {
    let (send, receive) = sync_channel::<Message>(AHEAD);
    std::thread::Builder::new()
        .name("read-ahead".into())
        .spawn(move || loop {
            let mut chunk = vec![0u8; CHUNK];
            let mut filled = 0;
            // Fill the chunk (inflate hands out a few KB per call) or reach the end.
            let result = loop {
                match inner.read(&mut chunk[filled..]) {
                    Ok(0) => break Ok(()),
                    Ok(n) => {
                        filled += n;
                        if filled == CHUNK {
                            break Ok(());
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            };
            chunk.truncate(filled);
            let last = filled < CHUNK;
            if filled > 0 && send.send(Message::Chunk(chunk)).is_err() {
                return;
            }
            match result {
                Err(e) => {
                    let _ = send.send(Message::Failed(e));
                    return;
                }
                Ok(()) if last => {
                    let _ = send.send(Message::End);
                    return;
                }
                Ok(()) => {}
            }
        })?;
    Ok(ReadAhead {
        receive,
        chunk: Vec::new(),
        at: 0,
        done: false,
    })
}

/// The consuming end of [`read_ahead`].
pub struct ReadAhead {
    receive: Receiver<Message>,
    chunk: Vec<u8>,
    at: usize,
    done: bool,
}

impl Read for ReadAhead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.chunk.len() {
            if self.done {
                return Ok(0);
            }
            match self.receive.recv() {
                Ok(Message::Chunk(chunk)) => {
                    self.chunk = chunk;
                    self.at = 0;
                }
                Ok(Message::End) => self.done = true,
                Ok(Message::Failed(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(_) => {
                    self.done = true;
                    return Err(io::Error::other(
                        "the thread reading ahead stopped before the end of the stream",
                    ));
                }
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out `data` a few bytes per call, then fails if `fail` is set.
    struct Trickle {
        data: Vec<u8>,
        at: usize,
        fail: bool,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.at == self.data.len() {
                return if self.fail {
                    Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "corrupt deflate stream",
                    ))
                } else {
                    Ok(0)
                };
            }
            let n = buf.len().min(7).min(self.data.len() - self.at);
            buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn hands_over_every_byte_in_order() {
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17] {
            let expected = data(len);
            let mut got = Vec::new();
            read_ahead(Trickle {
                data: expected.clone(),
                at: 0,
                fail: false,
            })
            .unwrap()
            .read_to_end(&mut got)
            .unwrap();
            assert_eq!(got, expected, "length {len}");
        }
    }

    #[test]
    fn an_error_arrives_after_the_bytes_before_it() {
        let expected = data(CHUNK + 100);
        let mut reader = read_ahead(Trickle {
            data: expected.clone(),
            at: 0,
            fail: true,
        })
        .unwrap();
        let mut got = vec![0u8; expected.len()];
        reader.read_exact(&mut got).unwrap();
        assert_eq!(got, expected);
        let err = reader.read(&mut [0u8; 16]).unwrap_err();
        assert_eq!(err.to_string(), "corrupt deflate stream");
        // And stays at its end.
        assert_eq!(reader.read(&mut [0u8; 16]).unwrap(), 0);
    }

    #[test]
    fn dropping_the_reader_stops_the_thread() {
        // An endless source the thread owns: it is dropped when the thread ends.
        struct Endless(#[allow(dead_code)] std::sync::Arc<()>);
        impl Read for Endless {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                buf.fill(1);
                Ok(buf.len())
            }
        }
        let alive = std::sync::Arc::new(());
        let mut reader = read_ahead(Endless(alive.clone())).unwrap();
        let mut first = [0u8; 10];
        reader.read_exact(&mut first).unwrap();
        assert_eq!(first, [1u8; 10]);
        drop(reader);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::sync::Arc::strong_count(&alive) > 1 {
            assert!(
                std::time::Instant::now() < deadline,
                "the read-ahead thread outlived its reader"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    #[test]
    fn a_reader_that_panics_is_an_error_not_an_end() {
        struct Panics(usize);
        impl Read for Panics {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    panic!("inflate bug");
                }
                let n = buf.len().min(self.0);
                buf[..n].fill(2);
                self.0 -= n;
                Ok(n)
            }
        }
        let mut got = Vec::new();
        let err = read_ahead(Panics(CHUNK))
            .unwrap()
            .read_to_end(&mut got)
            .unwrap_err();
        assert!(err.to_string().contains("stopped before the end"), "{err}");
        assert_eq!(got.len(), CHUNK);
    }
}
