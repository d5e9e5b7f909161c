//! The detector's memory across restarts: `state-dir/detector-memory`.
//!
//! Without it every restart forgot a brute force in progress, a cooldown, and the user/source
//! pairs the first-seen rule had learnt (whose learning period then started over). The file
//! holds what [`agent_core::detect::Detector::save_state`] writes, with the checkpoint's event
//! sequence it goes with, written after a checkpoint is persisted: at a clean stop, and at most
//! every [`SAVE_INTERVAL`] while running.
//!
//! File, integers little-endian:
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0  | 4  | magic `ATDF` |
//! | 4  | 2  | version (1) |
//! | 6  | 2  | zero |
//! | 8  | 8  | the checkpoint's `event.sequence` when it was saved |
//! | 16 | 8  | length of the memory |
//! | 24 | 32 | SHA-256 of bytes 0..24 followed by the memory |
//! | 56 |    | the memory |
//!
//! At start the memory is restored when its sequence is at or below the checkpoint's. Below it
//! (the agent did not stop cleanly after its last save, or ran with detections off since) the
//! events in between are not in it: the detector may then miss or repeat an alert about them, as
//! a detector that forgot all would, but remembers everything before. Above it (a checkpoint file from elsewhere), or
//! damaged, it is ignored with a warning.

use std::fs;
use std::io;
use std::path::Path;
use std::time::Duration;

/// The file's name in the state directory.
pub const FILE_NAME: &str = "detector-memory";
/// The file's magic.
pub(crate) const MAGIC: [u8; 4] = *b"ATDF";
/// The file format version.
pub(crate) const VERSION: u16 = 1;
/// Header bytes before the memory.
pub(crate) const HEADER_LEN: usize = 56;
/// How often a running agent saves the memory (after a commit), at most.
pub(crate) const SAVE_INTERVAL: Duration = Duration::from_secs(60);

const TEMP_FILE_NAME: &str = ".detector-memory.tmp";

/// A saved memory and the checkpoint sequence it goes with.
#[derive(Debug, PartialEq, Eq)]
pub struct Saved {
    /// The checkpoint's `event.sequence` when it was saved.
    pub sequence: u64,
    /// What the detector wrote.
    pub memory: Vec<u8>,
}

fn digest(head: &[u8], memory: &[u8]) -> ring::digest::Digest {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(head);
    ctx.update(memory);
    ctx.finish()
}

/// Writes the memory for checkpoint sequence `sequence` durably (`crate::durable`: a crash
/// leaves the previous file or this one, never a mix).
pub fn save(dir: &Path, sequence: u64, memory: &[u8]) -> io::Result<()> {
    let mut bytes = Vec::with_capacity(HEADER_LEN + memory.len());
    bytes.extend_from_slice(&MAGIC);
    bytes.extend_from_slice(&VERSION.to_le_bytes());
    bytes.extend_from_slice(&0u16.to_le_bytes());
    bytes.extend_from_slice(&sequence.to_le_bytes());
    bytes.extend_from_slice(&(memory.len() as u64).to_le_bytes());
    let sum = digest(&bytes, memory);
    bytes.extend_from_slice(sum.as_ref());
    bytes.extend_from_slice(memory);
    crate::durable::DurableFile::new()
        .temp_name(TEMP_FILE_NAME)
        .write(&dir.join(FILE_NAME), &bytes)
}

/// Reads the saved memory: `Ok(None)` when there is none, `Err` saying why it cannot be used.
pub fn load(dir: &Path) -> Result<Option<Saved>, String> {
    let path = dir.join(FILE_NAME);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("reading {}: {e}", path.display())),
    };
    let damaged = || format!("{} is damaged", path.display());
    let (head, rest) = bytes.split_at_checked(24).ok_or_else(damaged)?;
    if head[..4] != MAGIC {
        return Err(format!("{} is not a detector memory file", path.display()));
    }
    let word = |at: usize| u64::from_le_bytes(head[at..at + 8].try_into().unwrap_or_default());
    let version = u16::from_le_bytes([head[4], head[5]]);
    if version != VERSION {
        return Err(format!(
            "{} has format version {version}, newer than this agent's",
            path.display()
        ));
    }
    let (sum, memory) = rest.split_at_checked(32).ok_or_else(damaged)?;
    if word(16) != memory.len() as u64 || digest(head, memory).as_ref() != sum {
        return Err(damaged());
    }
    Ok(Some(Saved {
        sequence: word(8),
        memory: memory.to_vec(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_memory_reads_back_and_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()), Ok(None));
        save(dir.path(), 41, b"memory bytes").unwrap();
        save(dir.path(), 42, b"later memory").unwrap();
        let saved = load(dir.path()).unwrap().unwrap();
        assert_eq!(
            saved,
            Saved {
                sequence: 42,
                memory: b"later memory".to_vec()
            }
        );
        assert!(!dir.path().join(TEMP_FILE_NAME).exists());

        let path = dir.path().join(FILE_NAME);
        let good = fs::read(&path).unwrap();
        for len in 0..good.len() {
            fs::write(&path, &good[..len]).unwrap();
            assert!(load(dir.path()).is_err(), "{len} bytes");
        }
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 1;
            fs::write(&path, &bad).unwrap();
            assert!(load(dir.path()).is_err(), "byte {i} flipped");
        }
        let mut newer = good.clone();
        newer[4] = 2;
        fs::write(&path, &newer).unwrap();
        assert!(load(dir.path()).unwrap_err().contains("version 2"));
    }
}
