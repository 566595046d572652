//! Limits on what a producer may send, enforced while reading (issue 16, item 4).
//!
//! A limit checked after reading is no limit: a 204 KB gzip file can unpack to 200 MB, and a
//! bundle may hold one object of a gigabyte. Two mechanisms, used by every ingress (TAXII
//! POST, `concord import`, the web UI's import, sync pulls, MISP import):
//!
//! - [`CappedReader`] wraps any byte stream (typically *after* decompression) and fails the
//!   read that would cross a total cap, so a gzip bomb stops at the cap, not at the end of
//!   the bomb;
//! - [`crate::BundleReader::max_object_size`] caps each element of `objects` while it is being
//!   read, so the one object held in memory is bounded too.

use std::io::{self, Read};

/// Default largest STIX object accepted, in bytes as written (8 MiB).
///
/// Why 8 MiB: real objects are small (the largest of MITRE ATT&CK is under 100 KB; a report
/// with ten thousand `object_refs` is about 600 KB); the large ones are `artifact`s carrying a
/// sample in `payload_bin`, and a sample of a few MiB still fits. Parsing and validating one
/// object costs a few times its size in memory, so 8 MiB keeps one ingest well under 100 MB
/// whatever the bundle holds.
pub const DEFAULT_MAX_OBJECT_SIZE: u64 = 8 << 20;

/// Default largest upload once decompressed, in bytes (256 MiB).
pub const DEFAULT_MAX_UNPACKED: u64 = 256 << 20;

/// The error a [`CappedReader`] returns, inside an [`io::Error`] of kind
/// [`io::ErrorKind::InvalidData`]; find it with [`TooLarge::find`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("more than {limit} bytes (the limit on input once decompressed)")]
pub struct TooLarge {
    /// The cap that was crossed, in bytes.
    pub limit: u64,
}

impl TooLarge {
    /// The [`TooLarge`] inside `e`, if `e` is one.
    pub fn find(e: &io::Error) -> Option<TooLarge> {
        e.get_ref()?.downcast_ref::<TooLarge>().copied()
    }
}

/// A reader that counts the bytes it hands out and fails once more than `limit` would be
/// read. Nothing past the limit is ever returned, so a caller's memory is bounded by the
/// limit whatever the source claims.
#[derive(Debug)]
pub struct CappedReader<R> {
    inner: R,
    read: u64,
    limit: u64,
}

impl<R: Read> CappedReader<R> {
    /// Caps `inner` at `limit` bytes.
    pub fn new(inner: R, limit: u64) -> Self {
        CappedReader {
            inner,
            read: 0,
            limit,
        }
    }

    /// Bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }
}

impl<R: Read> Read for CappedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        // Read at most one byte past the cap: it tells "exactly at the cap" (fine) from
        // "more than the cap" (refused) without reading further.
        let room = (self.limit - self.read.min(self.limit)).saturating_add(1);
        let want = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.read += n as u64;
        if self.read > self.limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                TooLarge { limit: self.limit },
            ));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_cap_is_fine_past_it_is_an_error() {
        let mut out = Vec::new();
        CappedReader::new(&[7u8; 100][..], 100)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out.len(), 100);
        let mut out = Vec::new();
        let e = CappedReader::new(&[7u8; 101][..], 100)
            .read_to_end(&mut out)
            .unwrap_err();
        assert_eq!(TooLarge::find(&e), Some(TooLarge { limit: 100 }));
        assert!(out.len() <= 100, "{}", out.len());
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_cap() {
        use std::io::Write;
        // 64 MiB of zeros compress to about 64 KB.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            gz.write_all(&zeros).unwrap();
        }
        let small = gz.finish().unwrap();
        assert!(small.len() < 1 << 20, "{}", small.len());
        let mut capped = CappedReader::new(flate2::read::MultiGzDecoder::new(&small[..]), 1 << 20);
        let e = io::copy(&mut capped, &mut io::sink()).unwrap_err();
        assert_eq!(TooLarge::find(&e), Some(TooLarge { limit: 1 << 20 }));
        assert!(capped.bytes_read() <= (1 << 20) + 1);
    }
}
