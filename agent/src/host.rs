//! Facts about this host that go on every event (`host.*`), and the agent's own stable id
//! (`agent.id`).

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::Path;

use crate::durable::DurableFile;
use agent_core::Timestamp;
use sysinfo::System;
use uuid::Uuid;

/// Name of the agent id file inside the state directory.
pub(crate) const AGENT_ID_FILE: &str = "agent-id";

/// What the system says about itself. Each field is `None` when the system does not say (an
/// event then leaves the field out rather than sending an empty string).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    /// The host name (`host.hostname`).
    pub hostname: Option<String>,
    /// The OS name, e.g. `Debian GNU/Linux` (`host.os.name`).
    pub os_name: Option<String>,
    /// The OS version, e.g. `12` (`host.os.version`).
    pub os_version: Option<String>,
    /// The kernel release, e.g. `6.1.0-18-amd64` (`host.os.kernel`).
    pub kernel: Option<String>,
    /// The CPU architecture, e.g. `x86_64` (`host.architecture`).
    pub arch: String,
    /// When the system booted.
    pub boot_time: Option<Timestamp>,
    /// `/etc/machine-id` (`host.id`), when present and well-formed.
    pub host_id: Option<String>,
}

impl HostFacts {
    /// Asks the running system (through `sysinfo`, and `/etc/machine-id`).
    pub(crate) fn collect() -> HostFacts {
        HostFacts::collect_with_root(Path::new("/"))
    }

    /// As [`HostFacts::collect`], but `machine-id` is read under `root` (for tests).
    pub(crate) fn collect_with_root(root: &Path) -> HostFacts {
        let non_empty = |s: Result<String, sysinfo::Error>| {
            s.ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        };
        HostFacts {
            hostname: non_empty(System::host_name()),
            os_name: non_empty(System::name()),
            os_version: non_empty(System::os_version()),
            kernel: non_empty(System::kernel_version()),
            arch: System::cpu_arch(),
            boot_time: System::boot_time()
                .ok()
                .filter(|s| *s > 0)
                .and_then(|s| i64::try_from(s).ok())
                .map(|secs| Timestamp { secs, nanos: 0 }),
            host_id: machine_id(root),
        }
    }
}

/// The machine id (machine-id(5)): 32 lowercase hex digits in `/etc/machine-id`, or in
/// `/var/lib/dbus/machine-id` on older systems. `None` when absent, empty (an image not yet
/// booted) or malformed.
pub(crate) fn machine_id(root: &Path) -> Option<String> {
    ["etc/machine-id", "var/lib/dbus/machine-id"]
        .iter()
        .filter_map(|p| fs::read_to_string(root.join(p)).ok())
        .map(|s| s.trim().to_owned())
        .find(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(|id| id.to_ascii_lowercase())
}

/// The agent's id: a random UUID made on the first start and kept in `state_dir/agent-id`.
///
/// The collector keys de-duplication on (agent id, batch sequence), so the id must never change
/// behind the operator's back: a file that exists but does not hold a UUID is an error (naming
/// the file and what to do), not a reason to make a new id.
///
/// The file holds just the UUID and a newline, so operators can read and copy it; its format is
/// its version (a different format would get a different file name). It is written to a
/// temporary file, fsync'd, and renamed into place, so a crash leaves either no file or a whole
/// one. Creates `state_dir` (mode 0750) if needed. One agent per state directory.
pub(crate) fn agent_id(state_dir: &Path) -> io::Result<Uuid> {
    let path = state_dir.join(AGENT_ID_FILE);
    match fs::read(&path) {
        Ok(bytes) => return parse_agent_id(&path, &bytes),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(annotate(e, &path, "cannot read the agent id")),
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(state_dir)
        .map_err(|e| annotate(e, state_dir, "cannot create the state directory"))?;
    let id = Uuid::new_v4();
    write_durably(&path, format!("{}\n", id.hyphenated()).as_bytes(), 0o644)
        .map_err(|e| annotate(e, &path, "cannot write the agent id"))?;
    Ok(id)
}

fn parse_agent_id(path: &Path, bytes: &[u8]) -> io::Result<Uuid> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| Uuid::try_parse(s.trim()).ok())
        .filter(|id| !id.is_nil())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "agent id file {} is corrupt ({} bytes, not a UUID). It is not replaced \
                     automatically: a new id would start a new batch sequence, and the collector \
                     would see a new agent. Restore the file from a backup, or delete it to \
                     register this host as a new agent",
                    path.display(),
                    bytes.len()
                ),
            )
        })
}

fn annotate(e: io::Error, path: &Path, what: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

/// Writes `bytes` to `path` durably (`crate::durable`) under a per-process temporary name, so
/// that two processes creating the file at once never write into the same temporary file.
fn write_durably(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_owned();
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    DurableFile::new()
        .exact_mode(mode)
        .temp_name(&tmp_name.to_string_lossy())
        .write(path, bytes)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt as _;

    use super::*;

    #[test]
    fn agent_id_is_created_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let id = agent_id(&state).unwrap();
        assert_eq!(id.get_version_num(), 4);
        let path = state.join(AGENT_ID_FILE);
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            format!("{}\n", id.hyphenated())
        );
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o644);
        assert_eq!(fs::metadata(&state).unwrap().mode() & 0o777, 0o750);
        // Later starts read it back.
        assert_eq!(agent_id(&state).unwrap(), id);
        assert_eq!(agent_id(&state).unwrap(), id);
        // No temporary file left behind.
        let names: Vec<_> = fs::read_dir(&state)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [AGENT_ID_FILE]);
    }

    #[test]
    fn agent_id_accepts_a_hand_written_id() {
        let dir = tempfile::tempdir().unwrap();
        let id = "67e55044-10b1-426f-9247-bb680e5fe0c8";
        fs::write(dir.path().join(AGENT_ID_FILE), id).unwrap();
        assert_eq!(agent_id(dir.path()).unwrap().to_string(), id);
    }

    #[test]
    fn corrupt_agent_id_is_an_error_not_a_new_id() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(AGENT_ID_FILE);
        for corrupt in [
            &b"not-a-uuid\n"[..],
            b"",
            b"\xff\xfe",
            b"00000000-0000-0000-0000-000000000000",
        ] {
            fs::write(&path, corrupt).unwrap();
            let err = agent_id(dir.path()).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
            let msg = err.to_string();
            assert!(msg.contains(&path.display().to_string()), "{msg}");
            assert!(msg.contains("corrupt"), "{msg}");
            assert!(msg.contains("delete it"), "{msg}");
            // Left as it was, for the operator to look at.
            assert_eq!(fs::read(&path).unwrap(), corrupt);
        }
    }

    #[test]
    fn unwritable_state_dir_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain-file");
        fs::write(&file, "").unwrap();
        let err = agent_id(&file.join("state")).unwrap_err();
        assert!(err.to_string().contains("plain-file"), "{err}");
    }

    #[test]
    fn machine_id_is_read_and_checked() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(machine_id(root.path()), None);
        fs::create_dir_all(root.path().join("etc")).unwrap();
        fs::write(root.path().join("etc/machine-id"), "\n").unwrap();
        assert_eq!(machine_id(root.path()), None);
        fs::write(
            root.path().join("etc/machine-id"),
            "0123456789ABCDEF0123456789abcdef\n",
        )
        .unwrap();
        assert_eq!(
            machine_id(root.path()).as_deref(),
            Some("0123456789abcdef0123456789abcdef")
        );
    }

    #[test]
    fn host_facts_have_no_empty_strings() {
        let facts = HostFacts::collect();
        assert!(!facts.arch.is_empty());
        for s in [
            &facts.hostname,
            &facts.os_name,
            &facts.os_version,
            &facts.kernel,
        ]
        .into_iter()
        .flatten()
        {
            assert!(!s.is_empty() && s.trim() == s, "{facts:?}");
        }
    }
}
