//! `[[source]] type = "journald"`: the journald source's settings.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::source::ReadFrom;

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
