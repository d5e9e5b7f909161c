//! The memory buffer's note of what is in flight: exactly once across a crash of the agent.
//!
//! A memory buffer keeps its batches in the process, so a SIGKILL loses them, and what the
//! collector acknowledged since the last checkpoint persist would be read and sent again under
//! new keys: stored twice. So before it sends a batch the sender notes, unless the note already
//! holds it, the batch's *group* and where reading resumes after that group:
//!
//! - a group is the batches one pipeline commit put into the ring; the pipeline hands the sink,
//!   with each commit, its **resume point** (every stream's position after the commit and the
//!   next event sequence, opaque here) and the sink keeps it with the commit's last batch;
//! - the note holds that resume point, the number it stands at (the group's last batch) and
//!   every batch still in the ring that carries events from at or before it, byte for byte
//!   (header, stream, sequence number and body as they are sent).
//!
//! Batches go one at a time and in order, so everything before the note's batches was
//! acknowledged, and nothing after them was sent. At the next start the sink sends the noted
//! batches again under their own keys, in the same bytes: the collector stores what it lacks
//! and answers "duplicate" (same key, same digest) for what it has, and the NATS tier the
//! same (`Nats-Msg-Id` and the digest). Reading resumes at the resume point. Positions are
//! persisted only once those batches are acknowledged, as for any batch of the memory buffer.
//!
//! The note is written in place (`pwrite` at offset 0) and never fsync'd: the page cache
//! outlives the process, and the kernel writes a file rewritten in place back at most once per
//! `vm.dirty_expire_centisecs` (30 s), so there is no flash write per batch. Two files are
//! written in turn, each with a counter and a SHA-256 of its content, so that a write cut short
//! by the kill leaves the previous note whole; the newest whole note wins. A power cut may leave
//! an older note, or none: a note older than the persisted checkpoints (its number is below
//! their sink mark) is ignored, and reading resumes at the checkpoints, as without a note: at
//! least once, bounded by `buffer.checkpoint-interval`.
//!
//! File format (little-endian): magic `ATIF`, version u16, 2 bytes zero, counter u64, total
//! length u64 (up to the end of the digest), mark u64, resume point length u64 (`u64::MAX`: none,
//! written at a clean stop with nothing left), batch count u64, the resume point, each batch as
//! a u64 length and a spool batch file's bytes ([`SpooledBatch::to_file_bytes`]), then the
//! SHA-256 of everything before it.

use std::fs::{File, OpenOptions};
use std::io::{self, Read as _};
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::Path;

use super::spool::SpooledBatch;

/// The note's two files, in the spool directory, written in turn.
pub(crate) const FILES: [&str; 2] = ["in-flight.0", "in-flight.1"];
const MAGIC: [u8; 4] = *b"ATIF";
const VERSION: u16 = 1;
const HEADER_LEN: usize = 48;
const DIGEST_LEN: usize = 32;

/// A note read back at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Note {
    /// Which write it was (the newest whole one wins).
    pub counter: u64,
    /// The batch sequence number the resume point stands at (the group's last batch).
    pub mark: u64,
    /// Where reading resumes once `batches` are acknowledged (the pipeline's bytes); `None`:
    /// nothing to resume (a clean stop with an empty buffer).
    pub resume: Option<Vec<u8>>,
    /// The batches to send again under their own keys, in sequence order.
    pub batches: Vec<SpooledBatch>,
}

/// The two files, open for writing in place.
#[derive(Debug)]
pub(crate) struct InFlight {
    files: [File; 2],
    counter: u64,
    buf: Vec<u8>,
}

impl InFlight {
    /// Opens (creating, mode 0600) the two files in `dir` and reads the newest whole note.
    /// The second value says why a file that holds something is not a whole note (a write cut
    /// short; the other file then holds the note).
    pub(crate) fn open(dir: &Path) -> io::Result<(InFlight, Option<Note>, Vec<String>)> {
        let mut notes = Vec::new();
        let mut damaged = Vec::new();
        let open = |name: &str| {
            let path = dir.join(name);
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&path)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
        };
        let files = [open(FILES[0])?, open(FILES[1])?];
        for (file, name) in files.iter().zip(FILES) {
            let mut bytes = Vec::new();
            (&*file).read_to_end(&mut bytes)?;
            if bytes.is_empty() {
                continue;
            }
            match parse(&bytes) {
                Ok(note) => notes.push(note),
                Err(why) => damaged.push(format!("{}: {why}", dir.join(name).display())),
            }
        }
        let note = notes.into_iter().max_by_key(|n| n.counter);
        let counter = note.as_ref().map_or(0, |n| n.counter);
        Ok((
            InFlight {
                files,
                counter,
                buf: Vec::new(),
            },
            note,
            damaged,
        ))
    }

    /// Writes a note over the older of the two files (in place, no fsync; see the module
    /// docs). `batches` are spool batch files' bytes.
    pub(crate) fn write(
        &mut self,
        mark: u64,
        resume: Option<&[u8]>,
        batches: &[&[u8]],
    ) -> io::Result<()> {
        let counter = self.counter + 1;
        let buf = &mut self.buf;
        buf.clear();
        buf.extend_from_slice(&MAGIC);
        buf.extend_from_slice(&VERSION.to_le_bytes());
        buf.extend_from_slice(&[0, 0]);
        buf.extend_from_slice(&counter.to_le_bytes());
        let total = HEADER_LEN
            + resume.map_or(0, <[u8]>::len)
            + batches.iter().map(|b| 8 + b.len()).sum::<usize>()
            + DIGEST_LEN;
        buf.extend_from_slice(&(total as u64).to_le_bytes());
        buf.extend_from_slice(&mark.to_le_bytes());
        buf.extend_from_slice(&resume.map_or(u64::MAX, |r| r.len() as u64).to_le_bytes());
        buf.extend_from_slice(&(batches.len() as u64).to_le_bytes());
        buf.extend_from_slice(resume.unwrap_or_default());
        for b in batches {
            buf.extend_from_slice(&(b.len() as u64).to_le_bytes());
            buf.extend_from_slice(b);
        }
        let digest = ring::digest::digest(&ring::digest::SHA256, buf);
        buf.extend_from_slice(digest.as_ref());
        let slot = (counter % 2) as usize;
        self.files[slot].write_all_at(buf, 0)?;
        self.counter = counter;
        // A note of many batches leaves a large buffer behind; keep at most a small one.
        if buf.capacity() > 1 << 20 {
            *buf = Vec::new();
        }
        Ok(())
    }
}

fn parse(bytes: &[u8]) -> Result<Note, &'static str> {
    let header = bytes.get(..HEADER_LEN).ok_or("shorter than its header")?;
    if header[..4] != MAGIC {
        return Err("bad magic");
    }
    if u16::from_le_bytes([header[4], header[5]]) != VERSION {
        return Err("unknown version");
    }
    let u64_at = |b: &[u8], at: usize| {
        let mut v = [0u8; 8];
        v.copy_from_slice(&b[at..at + 8]);
        u64::from_le_bytes(v)
    };
    let total = usize::try_from(u64_at(header, 16)).map_err(|_| "impossible length")?;
    if total < HEADER_LEN + DIGEST_LEN || total > bytes.len() {
        return Err("length beyond the file (a write cut short)");
    }
    let (body, digest) = bytes[..total].split_at(total - DIGEST_LEN);
    if ring::digest::digest(&ring::digest::SHA256, body).as_ref() != digest {
        return Err("checksum mismatch (a write cut short)");
    }
    let resume_len = u64_at(header, 32);
    let count = u64_at(header, 40);
    let mut rest = &body[HEADER_LEN..];
    let resume = if resume_len == u64::MAX {
        None
    } else {
        let n = usize::try_from(resume_len).map_err(|_| "impossible length")?;
        let r = rest.get(..n).ok_or("resume point beyond the note")?;
        rest = &rest[n..];
        Some(r.to_vec())
    };
    let mut batches = Vec::new();
    for _ in 0..count {
        let n = rest.get(..8).ok_or("batch beyond the note")?;
        let n = usize::try_from(u64_at(n, 0)).map_err(|_| "impossible length")?;
        let b = rest.get(8..8 + n).ok_or("batch beyond the note")?;
        batches.push(SpooledBatch::from_file_bytes(b)?);
        rest = &rest[8 + n..];
    }
    if !rest.is_empty() {
        return Err("trailing bytes");
    }
    Ok(Note {
        counter: u64_at(header, 8),
        mark: u64_at(header, 24),
        resume,
        batches,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ship::batch::Encoding;

    fn batch(seq: u64, body: &[u8]) -> SpooledBatch {
        SpooledBatch {
            stream: uuid::Uuid::new_v4(),
            seq,
            encoding: Encoding::Identity,
            split_of: 0,
            flags: 0,
            events: 1,
            ndjson_len: body.len() as u32,
            created: 0,
            body: body.to_vec(),
        }
    }

    #[test]
    fn the_newest_whole_note_wins_and_a_write_cut_short_leaves_the_one_before() {
        let dir = tempfile::tempdir().unwrap();
        let (mut f, note, damaged) = InFlight::open(dir.path()).unwrap();
        assert_eq!((note, damaged.len()), (None, 0));
        let (a, b) = (batch(3, b"{\"a\":1}\n"), batch(4, b"{\"b\":2}\n"));
        f.write(
            4,
            Some(b"after 4"),
            &[&a.to_file_bytes(), &b.to_file_bytes()],
        )
        .unwrap();
        // A longer note first, then a shorter one over the same file: its length field bounds it.
        f.write(
            5,
            Some(b"after 5, a longer resume point"),
            &[&b.to_file_bytes()],
        )
        .unwrap();
        f.write(6, None, &[]).unwrap();
        drop(f);
        let (mut f, note, _) = InFlight::open(dir.path()).unwrap();
        let note = note.unwrap();
        assert_eq!((note.counter, note.mark, note.resume), (3, 6, None));
        assert!(note.batches.is_empty());
        f.write(
            7,
            Some(b"after 7"),
            &[&a.to_file_bytes(), &b.to_file_bytes()],
        )
        .unwrap();
        drop(f);
        let (_, note, _) = InFlight::open(dir.path()).unwrap();
        let note = note.unwrap();
        assert_eq!((note.counter, note.mark), (4, 7));
        assert_eq!(note.resume.as_deref(), Some(&b"after 7"[..]));
        assert_eq!(note.batches, [a.clone(), b.clone()]);

        // The kill cuts the next write short: the file it went to is damaged, the other whole.
        let newer = dir.path().join(FILES[0]);
        let mut bytes = std::fs::read(&newer).unwrap();
        bytes[HEADER_LEN + 3] ^= 0xff;
        std::fs::write(&newer, &bytes).unwrap();
        let (_, note, damaged) = InFlight::open(dir.path()).unwrap();
        assert_eq!(note.unwrap().counter, 3);
        assert_eq!(damaged.len(), 1, "{damaged:?}");
    }
}
