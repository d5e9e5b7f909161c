//! Helpers for the end-to-end tests: the `authtrail` binary, a scratch directory that is safe to
//! delete, a throw-away login account, real rsyslogd + sshd in a private mount namespace, ssh
//! password logins, the agent as a child process, and reading its NDJSON output.
//!
//! Everything here cleans up after itself in `Drop`, also when a test panics: processes are
//! stopped by the PIDs we started (never by name), the account is deleted, and the scratch
//! directory is removed only when nothing is mounted below it, with `rm -rf --one-file-system`.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The workspace root (the parent of this crate).
pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The `authtrail` binary next to this test binary (`<target>/<profile>/authtrail`), built
/// with `cargo build -p agent --bin authtrail` first unless it is fresh.
///
/// A test crate cannot name another package's binary (`CARGO_BIN_EXE_*` covers only its own),
/// so the binary is found through the test executable's own location, which also honours
/// `CARGO_TARGET_DIR` and the profile. A stale binary is never tested (see [`workspace_bin`]);
/// set `AUTHTRAIL_BIN` to test a given binary instead.
pub(crate) fn authtrail_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("AUTHTRAIL_BIN") {
            return PathBuf::from(bin);
        }
        workspace_bin("agent", "authtrail")
    })
    .clone()
}

/// The `authtrail-collector` binary, found and built like [`authtrail_bin`]
/// (`AUTHTRAIL_COLLECTOR_BIN` overrides it).
pub(crate) fn collector_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("AUTHTRAIL_COLLECTOR_BIN") {
            return PathBuf::from(bin);
        }
        workspace_bin("collector", "authtrail-collector")
    })
    .clone()
}

/// The `xtask` binary (`cargo xtask`), built like [`authtrail_bin`].
pub(crate) fn xtask_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| workspace_bin("xtask", "xtask")).clone()
}

/// `package`'s binary `bin` in this test binary's target dir and profile: the one there when
/// it is fresh ([`built_after_its_sources`]), else built with `cargo build -p package --bin
/// bin` first.
///
/// A fresh binary is not built again because `cargo build -p package` resolves the features of
/// shared dependencies for that package alone, unlike a workspace build (`cargo nextest run
/// --workspace`, `cargo test --workspace`), which unifies them across every member and its
/// dev-dependencies: it would compile the dependencies again and replace
/// `<target>/<profile>/<bin>` in the middle of the run, under the other crates' tests that run
/// it as `CARGO_BIN_EXE_<bin>` (and the next workspace build would replace it back).
fn workspace_bin(package: &str, bin: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // <target>/<profile>/deps/e2e-HASH
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in <target>/<profile>/deps")
        .to_path_buf();
    let path = profile_dir.join(bin);
    if built_after_its_sources(&path) {
        return path;
    }
    {
        let target_dir = profile_dir.parent().expect("<target>/<profile>");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.arg("build")
            .arg("--manifest-path")
            .arg(workspace_root().join("Cargo.toml"))
            .arg("--target-dir")
            .arg(target_dir)
            .args(["-p", package, "--bin", bin]);
        match profile_dir.file_name().and_then(OsStr::to_str) {
            Some("debug") => {}
            Some("release") => {
                cmd.arg("--release");
            }
            Some(other) => {
                cmd.args(["--profile", other]);
            }
            None => {}
        }
        let status = cmd
            .status()
            .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
        assert!(status.success(), "{cmd:?} failed: {status}");
        assert!(path.is_file(), "{} was not built", path.display());
        path
    }
}

/// True when the binary `bin` is newer than every source file cargo's dep-info beside it
/// (`<bin>.d`) lists and than the workspace's manifests, lock file and cargo config: what a
/// build would make of today's tree, whichever feature resolution made it. False when the
/// binary, its dep-info or a listed source is missing or unreadable (then it is built).
fn built_after_its_sources(bin: &Path) -> bool {
    let modified = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    let Some(built) = modified(bin) else {
        return false;
    };
    let Ok(dep_info) = fs::read_to_string(bin.with_extension("d")) else {
        return false;
    };
    // `<bin>: <source> <source> ...`, a space in a path escaped with a backslash.
    let Some((_, listed)) = dep_info.lines().next().and_then(|l| l.split_once(": ")) else {
        return false;
    };
    let mut sources: Vec<PathBuf> = Vec::new();
    let mut current = String::new();
    let mut chars = listed.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => current.extend(chars.next()),
            ' ' if current.is_empty() => {}
            ' ' => sources.push(PathBuf::from(std::mem::take(&mut current))),
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        sources.push(PathBuf::from(current));
    }
    let root = workspace_root();
    let mut manifests: Vec<PathBuf> = ["Cargo.toml", "Cargo.lock", ".cargo/config.toml"]
        .map(|f| root.join(f))
        .into();
    if let Ok(members) = fs::read_dir(&root) {
        manifests.extend(members.flatten().map(|e| e.path().join("Cargo.toml")));
    }
    !sources.is_empty()
        && sources
            .iter()
            .all(|p| modified(p).is_some_and(|t| t <= built))
        && manifests
            .iter()
            .all(|p| modified(p).is_none_or(|t| t <= built))
}

/// Why the end-to-end tests that need root and real programs cannot run here, if they cannot.
pub(crate) fn e2e_skip_reason(programs: &[&str]) -> Option<String> {
    if std::env::var_os("AUTHTRAIL_SKIP_E2E").is_some() {
        return Some("AUTHTRAIL_SKIP_E2E is set".into());
    }
    if !is_root() {
        return Some("not running as root (needs useradd, mount namespaces, sshd)".into());
    }
    let missing: Vec<&str> = programs
        .iter()
        .copied()
        .filter(|p| find_program(p).is_none())
        .collect();
    if !missing.is_empty() {
        return Some(format!(
            "missing programs: {} (apt-get install openssh-server openssh-client sshpass rsyslog; \
             .ci/run installs them)",
            missing.join(" ")
        ));
    }
    None
}

/// Prints a loud skip notice; the caller returns.
pub(crate) fn announce_skip(test: &str, reason: &str) {
    let bar = "=".repeat(78);
    eprintln!("{bar}\nSKIPPED {test}: {reason}\n{bar}");
}

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|rest| rest.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// `name` on `PATH` or in the sbin directories (which a non-login root shell may lack).
pub(crate) fn find_program(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        return Path::new(name).is_file().then(|| PathBuf::from(name));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Runs a command to completion, failing with its output when it fails.
pub(crate) fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Sends `signal` (a `kill -s` name such as `TERM`) to `pid`.
pub(crate) fn signal(pid: u32, signal: &str) -> io::Result<()> {
    let status = Command::new("kill")
        .args(["-s", signal, &pid.to_string()])
        .stderr(Stdio::null())
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "kill -s {signal} {pid}: {status}"
        )))
    }
}

/// `/proc/PID/comm`, if the process exists.
fn comm(pid: u32) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim_end().to_owned())
}

/// True while `pid` exists and is not a zombie (zombies are reaped late on these machines).
fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        // pid (comm) STATE ...; comm may contain spaces and parentheses.
        s.rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X')
    })
}

/// Polls `f` every 50 ms until it returns `Some` or `timeout` passes.
pub(crate) fn wait_for<T>(timeout: Duration, f: impl FnMut() -> Option<T>) -> Option<T> {
    wait_for_every(timeout, Duration::from_millis(50), f)
}

/// Polls `f` every `every` until it returns `Some` or `timeout` passes.
pub(crate) fn wait_for_every<T>(
    timeout: Duration,
    every: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(every);
    }
}

/// Waits for a child to exit, up to `timeout`.
fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    wait_for(timeout, || child.try_wait().ok().flatten())
}

/// A free TCP port on 127.0.0.1 (free when this returns; sshd binds it right after).
pub(crate) fn free_port() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

// ------------------------------------------------------------------------------------------------
// Scratch directory
// ------------------------------------------------------------------------------------------------

/// A fresh directory `/tmp/authtrail-e2e.XXXXXX` (mode 0755, so that a test user can enter its
/// home below it). Dropping it deletes it with `rm -rf --one-file-system`, but only when no
/// mount point lies below it (checked in `/proc/self/mountinfo`); otherwise it is left in place
/// with a loud message. `AUTHTRAIL_E2E_KEEP=1` keeps it for debugging.
#[derive(Debug)]
pub(crate) struct Scratch {
    path: PathBuf,
}

impl Scratch {
    pub(crate) fn new() -> Scratch {
        let path = tempfile::Builder::new()
            .prefix("authtrail-e2e.")
            .tempdir_in("/tmp")
            .expect("create a temp dir in /tmp")
            .keep();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod 755");
        Scratch { path }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// Mount points at or below `dir`, as this process's mount namespace sees them.
pub(crate) fn mounts_below(dir: &Path) -> Vec<PathBuf> {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        // Cannot tell: report the directory itself so that nothing is deleted.
        return vec![dir.to_path_buf()];
    };
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mountinfo)
        .filter(|m| m.starts_with(dir))
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> PathBuf {
    use std::os::unix::ffi::OsStringExt as _;
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && let Some(v) = s
                .get(i + 1..i + 4)
                .and_then(|o| u8::from_str_radix(o, 8).ok())
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::env::var_os("AUTHTRAIL_E2E_KEEP").is_some() {
            eprintln!("AUTHTRAIL_E2E_KEEP: keeping {}", self.path.display());
            return;
        }
        let mounts = mounts_below(&self.path);
        if !mounts.is_empty() {
            eprintln!(
                "NOT deleting {}: mounted below it: {mounts:?}",
                self.path.display()
            );
            return;
        }
        let status = Command::new("rm")
            .arg("-rf")
            .arg("--one-file-system")
            .arg("--")
            .arg(&self.path)
            .status();
        if !status.as_ref().is_ok_and(|s| s.success()) {
            eprintln!("could not delete {}: {status:?}", self.path.display());
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Test account
// ------------------------------------------------------------------------------------------------

/// A local account with a password, home directory inside the scratch directory. Deleted on
/// drop (its home goes with the scratch directory).
#[derive(Debug)]
pub(crate) struct TestUser {
    pub(crate) name: String,
    pub(crate) password: String,
}

impl TestUser {
    pub(crate) fn create(name: &str, password: &str, home: &Path) -> TestUser {
        if user_exists(name) {
            // A leftover of an aborted run with the same pid.
            delete_user(name);
        }
        run_ok(
            Command::new(find_program("useradd").expect("useradd"))
                .args(["-m", "-s", "/bin/sh", "-d"])
                .arg(home)
                .arg(name),
        );
        // From here on the guard deletes the account whatever happens.
        let user = TestUser {
            name: name.to_owned(),
            password: password.to_owned(),
        };
        let mut chpasswd = Command::new(find_program("chpasswd").expect("chpasswd"))
            .stdin(Stdio::piped())
            .spawn()
            .expect("spawn chpasswd");
        chpasswd
            .stdin
            .take()
            .expect("stdin")
            .write_all(format!("{name}:{password}\n").as_bytes())
            .expect("write to chpasswd");
        assert!(chpasswd.wait().expect("chpasswd").success(), "chpasswd");
        user
    }
}

fn user_exists(name: &str) -> bool {
    Command::new("getent")
        .args(["passwd", name])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn delete_user(name: &str) {
    let Some(userdel) = find_program("userdel") else {
        eprintln!("userdel not found: delete the account {name} by hand");
        return;
    };
    // userdel refuses while a process of the user runs (an sshd session still closing): retry,
    // then force.
    for attempt in 0..20 {
        let mut cmd = Command::new(&userdel);
        if attempt == 19 {
            cmd.arg("-f");
        }
        let ok = cmd
            .arg(name)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok || !user_exists(name) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("could not delete the test account {name}: delete it by hand");
}

impl Drop for TestUser {
    fn drop(&mut self) {
        delete_user(&self.name);
    }
}

// ------------------------------------------------------------------------------------------------
// rsyslogd + sshd
// ------------------------------------------------------------------------------------------------

/// Real rsyslogd and sshd, started by `tests/e2e/sshd-rsyslog.sh` in a private mount namespace
/// (see the script). rsyslogd writes `auth,authpriv.*` to `<dir>/log/auth.log`.
#[derive(Debug)]
pub(crate) struct SshdRsyslog {
    /// The script (bash, exec'd by unshare): it owns the namespace.
    child: Child,
    dir: PathBuf,
    pub(crate) port: u16,
    pub(crate) rsyslogd_pid: u32,
    pub(crate) sshd_pid: u32,
}

impl SshdRsyslog {
    /// Starts both and waits until sshd listens.
    pub(crate) fn start(dir: &Path, port: u16) -> SshdRsyslog {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/sshd-rsyslog.sh");
        let out = File::create(dir.join("sshd-rsyslog.out")).expect("create sshd-rsyslog.out");
        let child = Command::new(find_program("unshare").expect("unshare"))
            .args(["-m", "--propagation", "private", "bash"])
            .arg(&script)
            .arg(dir)
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup"))
            .stderr(out)
            .spawn()
            .expect("spawn unshare sshd-rsyslog.sh");
        let mut host = SshdRsyslog {
            child,
            dir: dir.to_path_buf(),
            port,
            rsyslogd_pid: 0,
            sshd_pid: 0,
        };
        let ready = wait_for(Duration::from_secs(20), || {
            if dir.join("ready").exists() {
                return Some(Ok(()));
            }
            match host.child.try_wait() {
                Ok(Some(status)) => Some(Err(format!("exited early: {status}"))),
                _ => None,
            }
        });
        // Read the pids first, so that Drop can stop whatever did start.
        host.read_pids();
        match ready {
            Some(Ok(())) => {}
            Some(Err(e)) => panic!("sshd-rsyslog.sh {e}:\n{}", host.output()),
            None => panic!("sshd-rsyslog.sh not ready in 20 s:\n{}", host.output()),
        }
        assert!(
            host.rsyslogd_pid != 0 && host.sshd_pid != 0,
            "{}",
            host.output()
        );
        host
    }

    fn read_pids(&mut self) {
        let text = fs::read_to_string(self.dir.join("pids")).unwrap_or_default();
        for line in text.lines() {
            match line.split_once(' ') {
                Some(("rsyslogd", pid)) => self.rsyslogd_pid = pid.parse().unwrap_or(0),
                Some(("sshd", pid)) => self.sshd_pid = pid.parse().unwrap_or(0),
                _ => {}
            }
        }
    }

    /// What the script printed.
    pub(crate) fn output(&self) -> String {
        fs::read_to_string(self.dir.join("sshd-rsyslog.out")).unwrap_or_default()
    }

    /// `kill -HUP` rsyslogd: it closes its files and reopens them by name on the next message.
    pub(crate) fn hup_rsyslogd(&self) {
        assert_eq!(
            comm(self.rsyslogd_pid).as_deref(),
            Some("rsyslogd"),
            "rsyslogd (pid {}) is gone",
            self.rsyslogd_pid
        );
        signal(self.rsyslogd_pid, "HUP").expect("kill -HUP rsyslogd");
    }

    /// Stops sshd and rsyslogd through the script; returns its exit status.
    pub(crate) fn stop(&mut self) -> Option<ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        let _ = signal(self.child.id(), "TERM");
        let status = wait_child(&mut self.child, Duration::from_secs(10));
        if status.is_none() {
            eprintln!("sshd-rsyslog.sh did not stop in 10 s: killing it and its daemons");
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // Whatever survived (the script was killed, or it hung): by the PIDs we started, only if
        // they still are what we started.
        for (pid, name) in [(self.sshd_pid, "sshd"), (self.rsyslogd_pid, "rsyslogd")] {
            if pid != 0 && comm(pid).is_some_and(|c| c.starts_with(name)) && alive(pid) {
                let _ = signal(pid, "KILL");
            }
        }
        status
    }
}

impl Drop for SshdRsyslog {
    fn drop(&mut self) {
        self.stop();
    }
}

// ------------------------------------------------------------------------------------------------
// ssh logins
// ------------------------------------------------------------------------------------------------

/// One ssh password login attempt from a loopback source address.
#[derive(Debug, Clone)]
pub(crate) struct Login {
    pub(crate) source: Ipv4Addr,
    pub(crate) user: String,
    pub(crate) password: String,
}

/// How a login attempt went, from the client's side.
#[derive(Debug)]
pub(crate) struct LoginResult {
    pub(crate) status: ExitStatus,
    pub(crate) output: String,
}

/// Runs the logins in parallel (a wrong password costs 2-3 s of PAM delay) with `sshpass` and
/// `ssh -b SOURCE`, each running `true`, and returns when all have finished.
pub(crate) fn ssh_logins(port: u16, logins: &[Login]) -> Vec<LoginResult> {
    std::thread::scope(|s| {
        let handles: Vec<_> = logins
            .iter()
            .map(|login| s.spawn(move || ssh_login(port, login)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("login thread"))
            .collect()
    })
}

fn ssh_login(port: u16, login: &Login) -> LoginResult {
    let out = ssh_command(port, login, 30, "true")
        .stdin(Stdio::null())
        .output()
        .expect("run sshpass ssh");
    LoginResult {
        status: out.status,
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// `timeout SECS sshpass -e ssh -b SOURCE ... USER@127.0.0.1 -p PORT REMOTE`: one password
/// attempt from `login.source`, running `remote` if it logs in.
pub(crate) fn ssh_command(port: u16, login: &Login, timeout_secs: u32, remote: &str) -> Command {
    let mut cmd = Command::new("timeout");
    cmd.arg(timeout_secs.to_string())
        .arg(find_program("sshpass").expect("sshpass"))
        .arg("-e") // password from $SSHPASS, not on the command line
        .arg(find_program("ssh").expect("ssh"))
        .args(["-F", "/dev/null", "-b"])
        .arg(login.source.to_string())
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "PreferredAuthentications=password",
            "-o",
            "NumberOfPasswordPrompts=1",
            "-o",
            "ConnectTimeout=10",
            "-p",
        ])
        .arg(port.to_string())
        .arg(format!("{}@127.0.0.1", login.user))
        .arg(remote)
        .env("SSHPASS", &login.password)
        .env_remove("SSH_AUTH_SOCK");
    cmd
}

// ------------------------------------------------------------------------------------------------
// The agent
// ------------------------------------------------------------------------------------------------

/// Writes `text` to `path` with mode 0600 (the agent refuses a config others can write).
pub(crate) fn write_private(path: &Path, text: &str) {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    f.write_all(text.as_bytes()).expect("write config");
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).expect("chmod 600");
}

/// `authtrail run --config FILE` as a child; stdout and stderr are appended to a log file.
#[derive(Debug)]
pub(crate) struct Agent {
    child: Option<Child>,
}

impl Agent {
    pub(crate) fn start(config: &Path, log: &Path, label: &str) -> Agent {
        let mut out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open the agent log");
        writeln!(
            out,
            "===== {label}: authtrail run --config {}",
            config.display()
        )
        .expect("write the agent log");
        let child = Command::new(authtrail_bin())
            .arg("run")
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup"))
            .stderr(out)
            .spawn()
            .expect("spawn authtrail run");
        Agent { child: Some(child) }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Exit status if it already exited.
    pub(crate) fn try_status(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// SIGKILL, and reap it.
    pub(crate) fn sigkill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM; the exit status if it exits within `timeout` (else it is SIGKILLed and `Err`
    /// says so).
    pub(crate) fn sigterm(&mut self, timeout: Duration) -> Result<ExitStatus, String> {
        let Some(mut child) = self.child.take() else {
            return Err("not running".into());
        };
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("had already exited: {status}"));
        }
        let started = Instant::now();
        signal(child.id(), "TERM").map_err(|e| e.to_string())?;
        match wait_child(&mut child, timeout) {
            Some(status) => Ok(status),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!(
                    "did not exit within {:?} of SIGTERM (killed)",
                    started.elapsed()
                ))
            }
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.sigkill();
    }
}

/// The events in an NDJSON file: complete lines only (a line still being written is left for
/// the next look). Lines that are not JSON objects are returned apart, as text.
pub(crate) fn read_ndjson(path: &Path) -> (Vec<serde_json::Value>, Vec<String>) {
    let Ok(bytes) = fs::read(path) else {
        return (Vec::new(), Vec::new());
    };
    let complete = match bytes.iter().rposition(|&b| b == b'\n') {
        Some(last) => &bytes[..=last],
        None => return (Vec::new(), Vec::new()),
    };
    let mut events = Vec::new();
    let mut bad = Vec::new();
    for line in complete.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        match serde_json::from_slice::<serde_json::Value>(line) {
            Ok(v) if v.is_object() => events.push(v),
            _ => bad.push(String::from_utf8_lossy(line).into_owned()),
        }
    }
    (events, bad)
}

/// Renames `log` to `rotated` and creates a new empty `log` with the same owner and mode, the
/// way logrotate's `create` does; the caller then HUPs the writer.
pub(crate) fn rotate_rename_create(log: &Path, rotated: &Path) {
    let meta = fs::metadata(log).expect("stat the log");
    fs::rename(log, rotated).expect("rename the log");
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(meta.mode() & 0o7777)
        .open(log)
        .expect("create the new log");
    fs::set_permissions(log, fs::Permissions::from_mode(meta.mode() & 0o7777)).expect("chmod");
    std::os::unix::fs::chown(log, Some(meta.uid()), Some(meta.gid())).expect("chown");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binary_is_fresh_only_when_built_after_every_source_its_dep_info_lists() {
        let dir = tempfile::tempdir().unwrap();
        let (spaced, plain) = (dir.path().join("a b.rs"), dir.path().join("c.rs"));
        let bin = dir.path().join("bin");
        for f in [&spaced, &plain, &bin] {
            fs::write(f, "").unwrap();
        }
        let at = |f: &Path, secs: u64| {
            let t = std::time::SystemTime::now() - Duration::from_secs(secs);
            File::options()
                .write(true)
                .open(f)
                .unwrap()
                .set_modified(t)
                .unwrap();
        };
        at(&spaced, 60);
        at(&plain, 60);
        // No dep-info: not known to be fresh.
        assert!(!built_after_its_sources(&bin));
        let escaped = spaced.display().to_string().replace(' ', "\\ ");
        fs::write(
            bin.with_extension("d"),
            format!("{}: {escaped} {}\n", bin.display(), plain.display()),
        )
        .unwrap();
        assert!(built_after_its_sources(&bin));
        // A source edited after the build (the one whose name holds a space, too).
        for source in [&plain, &spaced] {
            fs::write(source, "// edited").unwrap();
            assert!(!built_after_its_sources(&bin), "{}", source.display());
            at(source, 60);
        }
        assert!(built_after_its_sources(&bin));
        fs::remove_file(&plain).unwrap();
        assert!(!built_after_its_sources(&bin), "a listed source is gone");
    }
}
