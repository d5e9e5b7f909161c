//! Writing a file so that a crash leaves the old content or the new, never a mix.
//!
//! Every file the agent keeps across restarts goes through [`DurableFile::write`]: a temporary
//! file in the same directory, write, fsync, rename over the target, fsync of the directory (so
//! the rename itself survives a power loss). The formats stay each owner's own (checkpoints and
//! the detector memory carry a version field, a spool batch its framing and checksum, `next-seq`
//! a header line); this module only moves bytes to disk.
//!
//! The options exist for what the callers really differ in: the file's mode (and owner, for
//! `authtrail install`), the temporary file's name (a spool directory scan removes `.*.tmp`
//! leftovers; the agent id is written under a per-process name so that two processes creating
//! it at once never interleave), a directory sync left to the caller (the spool syncs its
//! directory once for several batch files), and no fsync at all for a file that only reports
//! (the status file, see `run.rs`).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// How a file is written: see the module documentation. `DurableFile::new()` writes with mode
/// 0o644 less the umask, fsyncs the file and its directory, and uses `.<name>.tmp` as the
/// temporary file.
#[derive(Clone, Debug)]
pub(crate) struct DurableFile<'a> {
    mode: u32,
    exact_mode: bool,
    owner: Option<(u32, u32)>,
    temp_name: Option<&'a str>,
    sync: bool,
    sync_dir: bool,
}

impl<'a> DurableFile<'a> {
    /// Mode 0o644 (less the umask), file and directory fsync'd, temporary file `.<name>.tmp`.
    pub(crate) const fn new() -> Self {
        DurableFile {
            mode: 0o644,
            exact_mode: false,
            owner: None,
            temp_name: None,
            sync: true,
            sync_dir: true,
        }
    }

    /// The mode the file is created with; the umask may narrow it. Defaults to 0o644.
    pub(crate) const fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self.exact_mode = false;
        self
    }

    /// The file gets exactly `mode`, whatever the umask.
    pub(crate) const fn exact_mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self.exact_mode = true;
        self
    }

    /// The file gets this owner (uid, gid) before it is renamed into place. Defaults to the
    /// writer's.
    pub(crate) const fn owner(mut self, owner: Option<(u32, u32)>) -> Self {
        self.owner = owner;
        self
    }

    /// The temporary file's name in the target's directory. Defaults to `.<name>.tmp`.
    pub(crate) const fn temp_name(mut self, name: &'a str) -> Self {
        self.temp_name = Some(name);
        self
    }

    /// Leave the directory fsync to the caller ([`sync_dir`]), who makes several renames durable
    /// at once. Defaults to syncing the directory on every write.
    pub(crate) const fn defer_dir_sync(mut self) -> Self {
        self.sync_dir = false;
        self
    }

    /// Neither the file nor the directory is fsync'd: the rename still makes the replacement
    /// atomic for readers, but a power loss may leave the old content or an empty file. Only
    /// for files that report, never for state. Defaults to fsync.
    pub(crate) const fn without_fsync(mut self) -> Self {
        self.sync = false;
        self.sync_dir = false;
        self
    }

    /// Replaces `path` by `bytes`. On error the previous file is left as it was and the
    /// temporary file is removed (best effort).
    pub(crate) fn write(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let tmp: PathBuf = match self.temp_name {
            Some(name) => dir.join(name),
            None => {
                let mut name = std::ffi::OsString::from(".");
                name.push(path.file_name().unwrap_or_default());
                name.push(".tmp");
                dir.join(name)
            }
        };
        let written = self
            .write_temp(&tmp, bytes)
            .and_then(|()| fs::rename(&tmp, path));
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
            return written;
        }
        if self.sync_dir {
            sync_dir(dir)?;
        }
        Ok(())
    }

    fn write_temp(&self, tmp: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(self.mode)
            .open(tmp)?;
        if self.exact_mode {
            file.set_permissions(fs::Permissions::from_mode(self.mode))?;
        }
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
        }
        file.write_all(bytes)?;
        if self.sync {
            file.sync_all()?;
        }
        Ok(())
    }
}

/// Makes the renames and deletions in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt as _;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        DurableFile::new().write(&path, b"one").unwrap();
        DurableFile::new().write(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn a_failed_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        DurableFile::new().write(&path, b"old").unwrap();
        // A directory where the temporary file goes makes the write fail, even for root.
        fs::create_dir(dir.path().join(".state.tmp")).unwrap();
        assert!(DurableFile::new().write(&path, b"new").is_err());
        assert_eq!(fs::read(&path).unwrap(), b"old");
    }

    #[test]
    fn exact_mode_ignores_the_umask_and_temp_name_is_used() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id");
        fs::create_dir(dir.path().join("blocker")).unwrap();
        // The custom temporary name is taken: a directory there makes the write fail.
        assert!(
            DurableFile::new()
                .temp_name("blocker")
                .write(&path, b"x")
                .is_err()
        );
        DurableFile::new()
            .exact_mode(0o604)
            .write(&path, b"x")
            .unwrap();
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o604);
        DurableFile::new()
            .without_fsync()
            .write(&path, b"y")
            .unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"y");
    }
}
