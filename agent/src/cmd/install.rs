//! `authtrail install [--prefix /] [--dry-run]`: set up a host without packages.
//!
//! What the .deb's maintainer scripts do, from the binary itself: the `authtrail` system user
//! (member of `adm` and `systemd-journal` where they exist, so it reads logs through groups),
//! `/etc/authtrail` (0750 root:authtrail), `/var/lib/authtrail` (0750 authtrail:authtrail), this
//! binary copied to `/usr/local/bin/authtrail`, the unit in `/etc/systemd/system/`, and the
//! annotated example config, but only when there is none: an edited config is never
//! overwritten. Running it again changes nothing that is already right.
//!
//! `--prefix DIR` does all of it under DIR instead of `/` (the user goes into DIR's
//! `etc/passwd` through `useradd --prefix`), so tests and image builders never touch the host.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

/// The unit, as shipped in `targets/systemd/` (the .deb installs the same file).
pub(crate) const UNIT: &str = include_str!("../../../targets/systemd/authtrail.service");
/// The annotated example config (`targets/agent.toml`).
pub(crate) const EXAMPLE_CONFIG: &str = include_str!("../../../targets/agent.toml");

/// The service's user and group.
pub(crate) const USER: &str = "authtrail";
/// Groups that can read the logs, joined when they exist: `adm` (`/var/log/auth.log` on
/// Debian and Ubuntu) and `systemd-journal` (the system journal).
pub(crate) const LOG_GROUPS: &[&str] = &["adm", "systemd-journal"];
/// Where the binary goes (the packaged one lives in `/usr/bin`).
pub(crate) const BIN_PATH: &str = "usr/local/bin/authtrail";
/// The unit's path; `/etc/systemd/system` is the administrator's unit directory.
pub(crate) const UNIT_PATH: &str = "etc/systemd/system/authtrail.service";
/// The config directory.
pub(crate) const CONFIG_DIR: &str = "etc/authtrail";
/// The config file.
pub(crate) const CONFIG_PATH: &str = "etc/authtrail/agent.toml";
/// The state directory.
pub(crate) const STATE_DIR: &str = "var/lib/authtrail";

/// Options of `authtrail install`.
#[derive(Debug, Clone)]
pub struct Options {
    /// The root to install under. Defaults to `/`.
    pub prefix: PathBuf,
    /// Print what would be done and change nothing. Defaults to false.
    pub dry_run: bool,
    /// The binary to copy (the running one).
    pub binary: PathBuf,
}

/// One line of the plan, printed whether or not it is carried out.
struct Step<'a> {
    out: &'a mut dyn Write,
    dry_run: bool,
}

impl Step<'_> {
    fn say(&mut self, what: std::fmt::Arguments<'_>) -> std::io::Result<()> {
        let tag = if self.dry_run { "would" } else { "" };
        if tag.is_empty() {
            writeln!(self.out, "  {what}")
        } else {
            writeln!(self.out, "  ({tag}) {what}")
        }
    }
}

/// A user or group from the prefix's `etc/passwd` / `etc/group`.
fn lookup(prefix: &Path, file: &str, name: &str) -> anyhow::Result<Option<(u32, u32)>> {
    let path = prefix.join("etc").join(file);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    for line in text.lines() {
        let mut fields = line.split(':');
        if fields.next() != Some(name) {
            continue;
        }
        let _password = fields.next();
        let id = fields.next().and_then(|f| f.parse().ok());
        // passwd: name:x:uid:gid:...; group: name:x:gid:members
        let second = fields.next().and_then(|f| f.parse().ok()).unwrap_or(0);
        return Ok(id.map(|id| (id, second)));
    }
    Ok(None)
}

/// The members of group `name`, from the prefix's `etc/group`.
fn group_members(prefix: &Path, name: &str) -> Vec<String> {
    let text = fs::read_to_string(prefix.join("etc/group")).unwrap_or_default();
    text.lines()
        .find(|l| l.split(':').next() == Some(name))
        .and_then(|l| l.split(':').nth(3))
        .map(|m| {
            m.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .map(|u| u.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// `useradd`/`usermod` with `--prefix` when not installing to `/`.
fn shadow_tool(program: &str, prefix: &Path) -> Command {
    let mut cmd = Command::new(program);
    if prefix != Path::new("/") {
        cmd.arg("--prefix").arg(prefix);
    }
    cmd
}

fn run_tool(cmd: &mut Command) -> anyhow::Result<()> {
    let line = format!("{cmd:?}");
    let out = cmd
        .output()
        .with_context(|| format!("cannot start {line}"))?;
    if !out.status.success() {
        bail!(
            "{line} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Creates `dir` (and parents) with `mode` and owner `uid:gid`; fixes mode and owner of an
/// existing one.
fn ensure_dir(
    step: &mut Step<'_>,
    dir: &Path,
    shown: &str,
    mode: u32,
    owner: Option<(u32, u32)>,
    owner_name: &str,
) -> anyhow::Result<()> {
    let exists = dir.is_dir();
    step.say(format_args!(
        "{} {shown} ({mode:04o} {owner_name})",
        if exists { "directory" } else { "create" }
    ))?;
    if step.dry_run {
        return Ok(());
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {mode:o} {}", dir.display()))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(dir, Some(uid), Some(gid))
            .with_context(|| format!("chown {owner_name} {}", dir.display()))?;
    }
    Ok(())
}

/// Writes `contents` to `path` durably (`crate::durable`), with exactly `mode` and the owner.
fn write_file(
    path: &Path,
    contents: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> anyhow::Result<()> {
    let dir = path.parent().context("a file path has a parent")?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = format!(
        ".{}.authtrail-install",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    );
    crate::durable::DurableFile::new()
        .exact_mode(mode)
        .owner(owner)
        .temp_name(&tmp)
        .write(path, contents)
        .with_context(|| format!("writing {}", path.display()))
}

/// The unit with the binary's path where the package would have it.
pub(crate) fn unit_text() -> String {
    UNIT.replace("/usr/bin/authtrail", &format!("/{BIN_PATH}"))
}

/// Runs the command, writing what it does (or would do) on `out`.
pub fn run(opts: &Options, out: &mut dyn Write) -> anyhow::Result<()> {
    let prefix = opts.prefix.as_path();
    if !prefix.is_absolute() {
        bail!(
            "--prefix must be an absolute path, not {}",
            prefix.display()
        );
    }
    if !opts.dry_run && !is_root() {
        bail!(
            "install creates a system user and root-owned directories: run it as root \
             (or with --dry-run to see what it would do)"
        );
    }
    if prefix != Path::new("/") && !opts.dry_run && !prefix.join("etc/passwd").is_file() {
        bail!(
            "{} has no etc/passwd: --prefix needs a root with a user database (a debootstrap \
             tree, an image's root), where the `authtrail` user is added",
            prefix.display()
        );
    }
    let shown = |rel: &str| {
        if prefix == Path::new("/") {
            format!("/{rel}")
        } else {
            prefix.join(rel).display().to_string()
        }
    };
    writeln!(
        out,
        "authtrail install{} into {}:",
        if opts.dry_run {
            " (dry run: nothing is changed)"
        } else {
            ""
        },
        prefix.display()
    )?;
    let mut step = Step {
        out,
        dry_run: opts.dry_run,
    };

    // 1. The user, its group, and the log-reading groups that exist here.
    let groups: Vec<&str> = LOG_GROUPS
        .iter()
        .copied()
        .filter(|g| lookup(prefix, "group", g).ok().flatten().is_some())
        .collect();
    let mut user = lookup(prefix, "passwd", USER)?;
    match user {
        Some((uid, gid)) => step.say(format_args!("user {USER} exists (uid {uid}, gid {gid})"))?,
        None => {
            step.say(format_args!(
                "create system user {USER} (home /{STATE_DIR}, no login shell, groups: {})",
                if groups.is_empty() {
                    "none".to_owned()
                } else {
                    groups.join(",")
                }
            ))?;
            if !opts.dry_run {
                let mut cmd = shadow_tool("useradd", prefix);
                cmd.args(["--system", "--user-group", "--no-create-home"])
                    .args(["--home-dir", &format!("/{STATE_DIR}")])
                    .args(["--shell", "/usr/sbin/nologin"])
                    .args(["--comment", "authtrail login-telemetry agent"]);
                if !groups.is_empty() {
                    cmd.args(["--groups", &groups.join(",")]);
                }
                cmd.arg(USER);
                run_tool(&mut cmd)?;
                user = lookup(prefix, "passwd", USER)?;
                if user.is_none() {
                    bail!(
                        "useradd succeeded but {USER} is not in {}",
                        shown("etc/passwd")
                    );
                }
            }
        }
    }
    // An existing user that lacks a log group (added to the system later) joins it.
    let missing: Vec<&str> = groups
        .iter()
        .copied()
        .filter(|g| !group_members(prefix, g).iter().any(|m| m == USER))
        .collect();
    if user.is_some() && !missing.is_empty() {
        step.say(format_args!("add {USER} to groups {}", missing.join(",")))?;
        if !opts.dry_run {
            let mut cmd = shadow_tool("usermod", prefix);
            cmd.args(["--append", "--groups", &missing.join(","), USER]);
            run_tool(&mut cmd)?;
        }
    }
    let ids = user;
    let group_gid = ids.map(|(_, gid)| (0, gid));

    // 2. Directories.
    ensure_dir(
        &mut step,
        &prefix.join(CONFIG_DIR),
        &shown(CONFIG_DIR),
        0o750,
        group_gid,
        "root:authtrail",
    )?;
    ensure_dir(
        &mut step,
        &prefix.join(STATE_DIR),
        &shown(STATE_DIR),
        0o750,
        ids,
        "authtrail:authtrail",
    )?;

    // 3. The binary, unless it is already the installed one.
    let bin = prefix.join(BIN_PATH);
    let same = fs::canonicalize(&opts.binary).ok() == fs::canonicalize(&bin).ok() && bin.exists();
    let identical = || match (fs::read(&opts.binary), fs::read(&bin)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same {
        step.say(format_args!(
            "binary {} is the running one",
            shown(BIN_PATH)
        ))?;
    } else if identical() {
        step.say(format_args!("binary {} is up to date", shown(BIN_PATH)))?;
    } else {
        step.say(format_args!(
            "install {} as {} (0755 root:root)",
            opts.binary.display(),
            shown(BIN_PATH)
        ))?;
        if !opts.dry_run {
            let bytes = fs::read(&opts.binary)
                .with_context(|| format!("reading {}", opts.binary.display()))?;
            write_file(&bin, &bytes, 0o755, Some((0, 0)))?;
        }
    }

    // 4. The unit (ours: replaced on every install; local changes belong in a drop-in,
    //    `systemctl edit authtrail`).
    let unit = unit_text();
    let unit_path = prefix.join(UNIT_PATH);
    let current = fs::read_to_string(&unit_path).ok();
    if current.as_deref() == Some(unit.as_str()) {
        step.say(format_args!("unit {} is up to date", shown(UNIT_PATH)))?;
    } else {
        step.say(format_args!(
            "{} unit {} (0644)",
            if current.is_some() {
                "replace"
            } else {
                "write"
            },
            shown(UNIT_PATH)
        ))?;
        if !opts.dry_run {
            write_file(&unit_path, unit.as_bytes(), 0o644, Some((0, 0)))?;
        }
    }

    // 5. The config, only if there is none: never overwrite an edited one.
    let config = prefix.join(CONFIG_PATH);
    match fs::symlink_metadata(&config) {
        Ok(meta) => step.say(format_args!(
            "keep existing config {} ({:04o}, not overwritten)",
            shown(CONFIG_PATH),
            meta.mode() & 0o7777
        ))?,
        Err(_) => {
            step.say(format_args!(
                "write example config {} (0640 root:authtrail)",
                shown(CONFIG_PATH)
            ))?;
            if !opts.dry_run {
                write_file(&config, EXAMPLE_CONFIG.as_bytes(), 0o640, group_gid)?;
            }
        }
    }

    let out = step.out;
    writeln!(out)?;
    writeln!(out, "Next steps:")?;
    writeln!(
        out,
        "  1. Edit /{CONFIG_PATH} (sources, and a [sink] type = \"collector\" to ship events)."
    )?;
    writeln!(
        out,
        "  2. Check it:  /{BIN_PATH} validate --config /{CONFIG_PATH}"
    )?;
    writeln!(
        out,
        "  3. Start it:  systemctl daemon-reload && systemctl enable --now authtrail"
    )?;
    writeln!(
        out,
        "  4. Watch it:  systemctl status authtrail; journalctl -u authtrail -f"
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A root with the `etc` files useradd needs.
    fn fake_root() -> tempfile::TempDir {
        let root = tempfile::tempdir().expect("tempdir");
        let etc = root.path().join("etc");
        fs::create_dir_all(&etc).expect("etc");
        fs::write(etc.join("passwd"), "root:x:0:0:root:/root:/bin/bash\n").expect("passwd");
        fs::write(etc.join("group"), "root:x:0:\nadm:x:4:\n").expect("group");
        fs::write(etc.join("shadow"), "root:*:20000:0:99999:7:::\n").expect("shadow");
        fs::write(etc.join("gshadow"), "root:*::\nadm:*::\n").expect("gshadow");
        for f in ["shadow", "gshadow"] {
            fs::set_permissions(etc.join(f), fs::Permissions::from_mode(0o640)).expect("chmod");
        }
        root
    }

    fn fake_binary(dir: &Path) -> PathBuf {
        let bin = dir.join("authtrail-built");
        fs::write(&bin, b"#!/bin/sh\necho authtrail\n").expect("binary");
        bin
    }

    fn install(root: &Path, bin: &Path, dry_run: bool) -> anyhow::Result<String> {
        let mut out = Vec::new();
        run(
            &Options {
                prefix: root.to_owned(),
                dry_run,
                binary: bin.to_owned(),
            },
            &mut out,
        )?;
        Ok(String::from_utf8(out).expect("utf-8"))
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("exists").mode() & 0o7777
    }

    #[test]
    fn the_embedded_unit_is_the_shipped_one() {
        assert!(UNIT.contains("Type=notify"));
        assert!(UNIT.contains("ExecStart=/usr/bin/authtrail run"));
        let unit = unit_text();
        assert!(unit.contains("ExecStart=/usr/local/bin/authtrail run"));
        assert!(unit.contains("ExecStartPre=/usr/local/bin/authtrail validate"));
        assert!(!unit.contains("/usr/bin/authtrail"));
        assert!(EXAMPLE_CONFIG.contains("state-dir = \"/var/lib/authtrail\""));
    }

    #[test]
    fn dry_run_changes_nothing() {
        let root = fake_root();
        let bin = fake_binary(root.path());
        let out = install(root.path(), &bin, true).expect("dry run");
        assert!(
            out.contains("(would) create system user authtrail"),
            "{out}"
        );
        assert!(out.contains("groups: adm"), "{out}");
        assert!(out.contains("systemctl enable --now authtrail"), "{out}");
        assert!(!root.path().join(CONFIG_DIR).exists());
        assert!(!root.path().join(STATE_DIR).exists());
        assert!(!root.path().join(UNIT_PATH).exists());
        let passwd = fs::read_to_string(root.path().join("etc/passwd")).expect("passwd");
        assert!(!passwd.contains("authtrail"));
    }

    #[test]
    fn a_prefix_without_a_user_database_is_refused() {
        if !is_root() {
            return; // refused earlier, for not being root
        }
        let root = tempfile::tempdir().expect("tempdir");
        let err = install(root.path(), Path::new("/bin/true"), false).expect_err("refused");
        assert!(err.to_string().contains("etc/passwd"), "{err}");
        assert!(fs::read_dir(root.path()).expect("dir").next().is_none());
    }

    #[test]
    fn a_relative_prefix_is_refused() {
        let err =
            install(Path::new("relative"), Path::new("/bin/true"), true).expect_err("refused");
        assert!(err.to_string().contains("absolute"), "{err}");
    }

    /// Needs root (chown) and shadow's useradd; skips otherwise.
    #[test]
    fn installs_into_a_prefix_and_never_overwrites_the_config() {
        if !is_root() || Command::new("useradd").arg("--help").output().is_err() {
            eprintln!("skipped: needs root and useradd");
            return;
        }
        let root = fake_root();
        let bin = fake_binary(root.path());
        let host = fs::read_to_string("/etc/passwd").unwrap_or_default();
        let was_there = host.lines().any(|l| l.starts_with("authtrail:"));
        let out = install(root.path(), &bin, false).expect("install");
        assert!(out.contains("create system user authtrail"), "{out}");

        let (uid, gid) = lookup(root.path(), "passwd", USER)
            .expect("read")
            .expect("user created in the prefix");
        assert_ne!(uid, 0);
        assert!(group_members(root.path(), "adm").contains(&USER.to_owned()));

        let cfg_dir = root.path().join(CONFIG_DIR);
        assert_eq!(mode(&cfg_dir), 0o750);
        assert_eq!(fs::metadata(&cfg_dir).expect("dir").uid(), 0);
        assert_eq!(fs::metadata(&cfg_dir).expect("dir").gid(), gid);
        let state = root.path().join(STATE_DIR);
        assert_eq!(mode(&state), 0o750);
        assert_eq!(fs::metadata(&state).expect("dir").uid(), uid);
        let config = root.path().join(CONFIG_PATH);
        assert_eq!(mode(&config), 0o640);
        assert_eq!(fs::read_to_string(&config).expect("config"), EXAMPLE_CONFIG);
        assert_eq!(mode(&root.path().join(BIN_PATH)), 0o755);
        assert_eq!(
            fs::read_to_string(root.path().join(UNIT_PATH)).expect("unit"),
            unit_text()
        );

        // An edited config survives a second install; the rest is already right.
        fs::write(&config, "# edited by the admin\n").expect("edit");
        let out = install(root.path(), &bin, false).expect("again");
        assert!(out.contains("user authtrail exists"), "{out}");
        assert!(out.contains("keep existing config"), "{out}");
        assert!(out.contains("authtrail.service is up to date"), "{out}");
        assert!(out.contains("bin/authtrail is up to date"), "{out}");
        assert_eq!(
            fs::read_to_string(&config).expect("config"),
            "# edited by the admin\n"
        );
        let passwd = fs::read_to_string(root.path().join("etc/passwd")).expect("passwd");
        assert_eq!(
            passwd
                .lines()
                .filter(|l| l.starts_with("authtrail:"))
                .count(),
            1,
            "{passwd}"
        );
        // The host's own user database is untouched.
        let host_now = fs::read_to_string("/etc/passwd").unwrap_or_default();
        assert_eq!(
            host_now.lines().any(|l| l.starts_with("authtrail:")),
            was_there
        );
    }
}
