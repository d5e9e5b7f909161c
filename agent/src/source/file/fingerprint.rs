//! The fingerprinter: a file's identity from its device, inode and first bytes.
//!
//! The head checksum covers the first line *including* its newline, at most [`HEAD_BYTES`]
//! bytes. While the first line is still incomplete (no newline yet, fewer than [`HEAD_BYTES`]
//! bytes) the head is "unstable": it changes as the line grows, and the file source re-keys the
//! stream (the old key's checksum is then the checksum of a prefix of the new head region, which
//! is how a checkpoint taken under the old key is still recognised after a restart, see
//! [`prefix_checksums`]). An empty file has head 0.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};

use agent_core::hash::{FNV1A_64_START, fnv1a_64};

use super::Framing;
use crate::source::Fingerprint;

/// Most bytes the head checksum covers.
pub(crate) const HEAD_BYTES: usize = 256;

/// The head region of a file and what was derived from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Head {
    /// The region: the first line with its newline, or the first [`HEAD_BYTES`] bytes, or the
    /// whole (short, newline-less) file.
    pub(crate) bytes: Vec<u8>,
    /// Checksum of `bytes`; 0 only when `bytes` is empty.
    pub(crate) checksum: u64,
    /// The region can no longer change while the file only grows (a newline was seen, or the
    /// region is full).
    pub(crate) stable: bool,
}

/// The head checksum of a region (FNV-1a 64, with 0 kept for "empty").
pub(crate) fn checksum(region: &[u8]) -> u64 {
    if region.is_empty() {
        return 0;
    }
    nonzero(fnv1a_64(FNV1A_64_START, region))
}

fn nonzero(h: u64) -> u64 {
    if h == 0 { 1 } else { h }
}

/// Checksums of every non-empty proper prefix of `region` (what the head was while the file was
/// shorter).
pub(crate) fn prefix_checksums(region: &[u8]) -> Vec<u64> {
    let mut h = FNV1A_64_START;
    let mut out = Vec::with_capacity(region.len());
    for b in region.iter().take(region.len().saturating_sub(1)) {
        h = fnv1a_64(h, std::slice::from_ref(b));
        out.push(nonzero(h));
    }
    out
}

/// Builds a [`Head`] from the first bytes of a file framed as `framing`: for lines, the first
/// line (at most [`HEAD_BYTES`]); for records, the first whole record, and nothing (head 0)
/// while the file holds none.
pub(crate) fn head_of(first: &[u8], framing: Framing) -> Head {
    let (bytes, stable) = match framing {
        Framing::Lines => {
            let first = &first[..first.len().min(HEAD_BYTES)];
            match memchr::memchr(b'\n', first) {
                Some(i) => (&first[..=i], true),
                None => (first, first.len() == HEAD_BYTES),
            }
        }
        Framing::Records { len, .. } => match first.get(..len) {
            Some(record) => (record, true),
            None => (&first[..0], false),
        },
    };
    Head {
        bytes: bytes.to_vec(),
        checksum: checksum(bytes),
        stable,
    }
}

/// Reads the head of an open file (with `pread`, so the file's cursor is not moved).
pub(crate) fn read_head(file: &File, framing: Framing) -> io::Result<Head> {
    let mut buf = vec![0u8; framing.head_len()];
    let n = read_full_at(file, &mut buf, 0)?;
    Ok(head_of(&buf[..n], framing))
}

/// Reads as much of `buf` as the file holds at `offset`; the count read.
pub(crate) fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], offset + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The fingerprint of an open file, and its head.
pub(crate) fn fingerprint(file: &File, framing: Framing) -> io::Result<(Fingerprint, Head)> {
    let md = file.metadata()?;
    let head = read_head(file, framing)?;
    Ok((
        Fingerprint {
            dev: md.dev(),
            ino: md.ino(),
            head: head.checksum,
        },
        head,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn empty_file_has_head_zero_and_short_files_are_not_skipped() {
        assert_eq!(head_of(b"", Framing::Lines).checksum, 0);
        let one_byte = head_of(b"x", Framing::Lines);
        assert_ne!(one_byte.checksum, 0);
        assert!(!one_byte.stable);
        let one_line = head_of(b"Nov 28 sshd[1]: hi\n", Framing::Lines);
        assert!(one_line.stable);
        assert_eq!(one_line.bytes, b"Nov 28 sshd[1]: hi\n");
    }

    #[test]
    fn head_covers_the_first_line_only() {
        let a = head_of(b"first line\nsecond", Framing::Lines);
        let b = head_of(b"first line\nsomething else entirely\n", Framing::Lines);
        assert_eq!(a.checksum, b.checksum);
        assert_ne!(
            a.checksum,
            head_of(b"first linf\n", Framing::Lines).checksum
        );
        // The newline is part of the region: a partial first line differs from the whole one.
        assert_ne!(head_of(b"first line", Framing::Lines).checksum, a.checksum);
    }

    #[test]
    fn head_is_capped_and_then_stable() {
        let long = vec![b'a'; 1000];
        let h = head_of(&long, Framing::Lines);
        assert_eq!(h.bytes.len(), HEAD_BYTES);
        assert!(h.stable);
        let mut longer = long.clone();
        longer[500] = b'b';
        assert_eq!(
            head_of(&longer, Framing::Lines).checksum,
            h.checksum,
            "bytes past the cap don't count"
        );
    }

    #[test]
    fn prefixes_are_the_heads_of_a_growing_first_line() {
        let full = head_of(b"abcdef\nrest", Framing::Lines);
        let prefixes = prefix_checksums(&full.bytes);
        assert_eq!(prefixes.len(), full.bytes.len() - 1);
        for k in 1..full.bytes.len() {
            assert_eq!(
                prefixes[k - 1],
                head_of(&full.bytes[..k], Framing::Lines).checksum
            );
        }
        assert!(!prefixes.contains(&full.checksum));
    }

    #[test]
    fn fingerprint_reads_dev_ino_and_head_without_moving_the_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("auth.log");
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&p)
            .unwrap();
        let (fp0, h0) = fingerprint(&f, Framing::Lines).unwrap();
        assert_eq!(fp0.head, 0);
        assert!(h0.bytes.is_empty());
        f.write_all(b"line one\nline two\n").unwrap();
        let (fp1, h1) = fingerprint(&f, Framing::Lines).unwrap();
        assert_eq!((fp1.dev, fp1.ino), (fp0.dev, fp0.ino));
        assert_eq!(fp1.head, checksum(b"line one\n"));
        assert!(h1.stable);
        let md = std::fs::metadata(&p).unwrap();
        assert_eq!((md.dev(), md.ino()), (fp1.dev, fp1.ino));
    }

    #[test]
    fn same_inode_different_head_is_a_different_fingerprint() {
        // Inode reuse built directly: same dev and ino, other first line.
        let a = Fingerprint {
            dev: 1,
            ino: 2,
            head: head_of(b"old file first line\n", Framing::Lines).checksum,
        };
        let b = Fingerprint {
            head: head_of(b"new file first line\n", Framing::Lines).checksum,
            ..a
        };
        assert_ne!(a, b);
    }
}

#[cfg(test)]
mod record_tests {
    use super::*;

    const RECORDS: Framing = Framing::Records {
        len: 8,
        payload: crate::source::Payload::Utmp,
    };

    #[test]
    fn a_record_file_is_known_by_its_first_whole_record() {
        assert_eq!(head_of(b"", RECORDS).checksum, 0);
        // Less than one record: no identity yet (head 0), and not stable.
        let short = head_of(b"abcdefg", RECORDS);
        assert_eq!((short.checksum, short.stable), (0, false));
        let one = head_of(b"abcdefgh", RECORDS);
        assert!(one.stable);
        assert_eq!(one.checksum, checksum(b"abcdefgh"));
        // A newline means nothing in a record, and later records do not change the head.
        assert_eq!(head_of(b"ab\ndefghXYZ", RECORDS).bytes, b"ab\ndefgh");
        assert_eq!(head_of(b"abcdefgh12345678", RECORDS).checksum, one.checksum);
    }
}
