//! `[[source]] type = "journald"`: the journald source's settings.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::source::{ReadFrom, SourceProblem};

/// `[[source]] type = "journald"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct JournaldSourceConfig {
    /// Name used in checkpoints, status and events (letters, digits, `.`, `_`, `-`).
    /// Defaults to `journald`, then `journald-2`...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The `journalctl` binary: a bare name looked up on `PATH`, or an absolute path.
    /// Defaults to `journalctl`.
    pub journalctl: PathBuf,
    /// Read this journal directory instead of the system journal (`--directory`).
    /// Defaults to none (the system journal).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub directory: Option<PathBuf>,
    /// Read these journal files instead of the system journal (`--file`); not with `directory`.
    /// Defaults to none (the system journal).
    pub files: Vec<PathBuf>,
    /// Programs (`SYSLOG_IDENTIFIER`) to read besides facilities 4 and 10 (auth, authpriv; the
    /// journal's own audit records are facility 4). Defaults to sshd, sshd-session, sshd-auth,
    /// sudo, doas, su, login, systemd-logind, dropbear, the shadow tools (useradd, usermod,
    /// passwd...), the FTP daemons (vsftpd, proftpd, pure-ftpd, ftpd, in.ftpd) and klogind/kshd.
    pub identifiers: Vec<String>,
    /// Start at the end of the journal on first start, or at its beginning. Defaults to `end`.
    pub read_from: ReadFrom,
}

impl Default for JournaldSourceConfig {
    fn default() -> Self {
        JournaldSourceConfig {
            name: None,
            journalctl: PathBuf::from("journalctl"),
            directory: None,
            files: Vec::new(),
            identifiers: [
                "sshd",
                "sshd-session",
                "sshd-auth",
                "sudo",
                "su",
                "login",
                "systemd-logind",
                "useradd",
                "userdel",
                "usermod",
                "groupadd",
                "groupdel",
                "groupmod",
                "gpasswd",
                "passwd",
                "chpasswd",
                "chage",
                "dropbear",
                "doas",
                // FTP daemons log with facility ftp or daemon; Kerberos rlogin/rsh daemons.
                "vsftpd",
                "proftpd",
                "pure-ftpd",
                "ftpd",
                "in.ftpd",
                "klogind",
                "kshd",
            ]
            .map(String::from)
            .to_vec(),
            read_from: ReadFrom::End,
        }
    }
}

impl JournaldSourceConfig {
    /// The semantic checks of these settings, each with the key it is about: `journalctl` a
    /// bare name or an absolute path (and, with `programs`, one that can be run); `directory`
    /// and `files` absolute and not both set.
    pub(crate) fn problems(&self, programs: bool) -> Vec<(&'static str, SourceProblem)> {
        let mut out = Vec::new();
        // A bare name is looked up on PATH; anything with a slash must be absolute.
        let bin = self.journalctl.as_os_str().as_encoded_bytes();
        if bin.is_empty() || (bin.contains(&b'/') && !self.journalctl.is_absolute()) {
            out.push((
                "journalctl",
                SourceProblem::RelativePath {
                    what: "journalctl",
                    path: self.journalctl.display().to_string(),
                },
            ));
        } else if programs && let Err(reason) = find_program(&self.journalctl) {
            out.push((
                "journalctl",
                SourceProblem::Program {
                    path: self.journalctl.clone(),
                    reason,
                },
            ));
        }
        if self.directory.is_some() && !self.files.is_empty() {
            out.push((
                "files",
                SourceProblem::Conflict {
                    a: "directory",
                    b: "files",
                },
            ));
        }
        for (key, p) in self
            .directory
            .iter()
            .map(|d| ("directory", d))
            .chain(self.files.iter().map(|f| ("files", f)))
        {
            if !p.is_absolute() {
                out.push((
                    key,
                    SourceProblem::RelativePath {
                        what: "directory/files",
                        path: p.display().to_string(),
                    },
                ));
            }
        }
        out
    }
}

/// Whether `program` can be run: an absolute path to an executable file, or a bare name found
/// on `PATH` (as `Command` will look it up).
fn find_program(program: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt as _;
    let runnable = |p: &Path| {
        fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.is_absolute() {
        return match fs::metadata(program) {
            Err(e) => Err(format!("cannot be run ({e})")),
            Ok(_) if !runnable(program) => Err("is not an executable file".to_owned()),
            Ok(_) => Ok(()),
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    if std::env::split_paths(&path).any(|dir| runnable(&dir.join(program))) {
        Ok(())
    } else {
        Err(format!(
            "not found on PATH ({}); install it (systemd) or give its absolute path",
            path.to_string_lossy()
        ))
    }
}
