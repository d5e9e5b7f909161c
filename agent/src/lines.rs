//! [`LineReader`]: newline-delimited lines from any reader, each capped at a byte bound.
//!
//! A log line can be megabytes long (a hostile client can make sshd log a huge user name); the
//! agent's memory must not follow. Bytes past [`LineReader::max_line`] are skipped, not buffered,
//! and the line is returned with `truncated` set. Offsets are byte offsets of each line's start in
//! the stream, so a checkpoint or `log.offset` points exactly at the line.

use std::io::{self, BufRead};

/// One line, without its newline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Line<'a> {
    /// The line's bytes (at most the reader's bound), without `\n`.
    pub bytes: &'a [u8],
    /// Byte offset of the line's first byte in the stream.
    pub offset: u64,
    /// Byte offset just past the line's newline (where the next line starts).
    pub end: u64,
    /// True when the line was longer than the bound and its tail was skipped.
    pub truncated: bool,
    /// False for a last line that ended without a newline (the stream ended mid-line).
    pub complete: bool,
}

/// Reads capped lines from a [`BufRead`].
#[derive(Debug)]
pub(crate) struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    max_line: usize,
    offset: u64,
}

impl<R: BufRead> LineReader<R> {
    /// A reader whose lines hold at most `max_line` bytes. Offsets start at `start_offset`.
    pub(crate) fn new(inner: R, max_line: usize, start_offset: u64) -> Self {
        LineReader {
            inner,
            buf: Vec::with_capacity(max_line.min(4096)),
            max_line: max_line.max(1),
            offset: start_offset,
        }
    }

    /// The next line, or `None` at the end of the stream.
    pub(crate) fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        self.buf.clear();
        let start = self.offset;
        let mut truncated = false;
        let mut complete = false;
        loop {
            let chunk = match self.inner.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                break;
            }
            let (take, used, found) = match memchr::memchr(b'\n', chunk) {
                Some(i) => (i, i + 1, true),
                None => (chunk.len(), chunk.len(), false),
            };
            let room = self.max_line - self.buf.len();
            if take > room {
                truncated = true;
            }
            self.buf.extend_from_slice(&chunk[..take.min(room)]);
            self.inner.consume(used);
            self.offset += used as u64;
            if found {
                complete = true;
                break;
            }
        }
        if !complete && self.offset == start {
            return Ok(None);
        }
        Ok(Some(Line {
            bytes: &self.buf,
            offset: start,
            end: self.offset,
            truncated,
            complete,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> Vec<(Vec<u8>, u64, bool, bool)> {
        let mut r = LineReader::new(io::BufReader::with_capacity(7, input), max, 0);
        let mut out = Vec::new();
        while let Some(l) = r.next_line().unwrap() {
            out.push((l.bytes.to_vec(), l.offset, l.truncated, l.complete));
        }
        out
    }

    #[test]
    fn splits_and_tracks_offsets() {
        let got = lines(b"ab\n\ncdef\ngh", 100);
        assert_eq!(
            got,
            vec![
                (b"ab".to_vec(), 0, false, true),
                (b"".to_vec(), 3, false, true),
                (b"cdef".to_vec(), 4, false, true),
                (b"gh".to_vec(), 9, false, false),
            ]
        );
    }

    #[test]
    fn long_lines_are_capped_and_the_rest_skipped() {
        let mut input = vec![b'x'; 10_000];
        input.extend_from_slice(b"\nnext\n");
        let got = lines(&input, 16);
        assert_eq!(got[0], (vec![b'x'; 16], 0, true, true));
        assert_eq!(got[1], (b"next".to_vec(), 10_001, false, true));
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn exact_bound_is_not_truncated() {
        let got = lines(b"12345678\n", 8);
        assert_eq!(got[0], (b"12345678".to_vec(), 0, false, true));
    }
}
