//! The `type = "audit"` source end to end with real programs: a private auditd (its own config and
//! log file) records a real sshd login; `authtrail run` follows that log, is SIGKILLed after the
//! login's `USER_LOGIN` record arrived and started again, and the record is in the output once.
//!
//! Needs root, auditd, sshd and sshpass, and a kernel that lets auditd register (one auditd per
//! machine). Where auditd cannot start, the test says so and runs the same agent steps over the
//! real records of `agent-core/testdata/audit/debian12-raw.log` (captured from auditd by
//! `tests/capture/capture-audit.sh`) instead.

#![allow(
    clippy::unwrap_used,
    reason = "a test that cannot set itself up should fail loudly"
)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_authtrail");
/// The login's source address: distinct from the other tests' clients.
const CLIENT: &str = "127.0.0.163";
const USER: &str = "atauditt";

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The test user, removed when dropped.
struct TestUser;

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").args(["-r", USER]).output();
    }
}

fn have(bin: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {bin}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_until(what: &str, secs: u64, mut ok: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("gave up waiting for {what}");
    false
}

/// Starts a private auditd writing `dir/audit.log`; `None` when it cannot run here.
fn start_auditd(dir: &Path) -> Option<Proc> {
    if !(have("auditd") && have("sshd") && have("sshpass") && is_root()) {
        eprintln!("auditd, sshd, sshpass or root missing");
        return None;
    }
    let conf = dir.join("auditd-conf");
    fs::create_dir_all(dir.join("plugins")).unwrap();
    fs::create_dir_all(&conf).unwrap();
    let log = dir.join("audit.log");
    fs::write(
        conf.join("auditd.conf"),
        format!(
            "local_events = yes\nwrite_logs = yes\nlog_file = {}\nlog_format = RAW\nflush = INCREMENTAL_ASYNC\nfreq = 1\nmax_log_file = 8\nnum_logs = 2\nmax_log_file_action = ROTATE\nspace_left = 2\nadmin_space_left = 1\ndisk_full_action = IGNORE\ndisk_error_action = IGNORE\nplugin_dir = {}\n",
            log.display(),
            dir.join("plugins").display()
        ),
    )
    .unwrap();
    let child = Command::new("auditd")
        .arg("-c")
        .arg(&conf)
        .arg("-n")
        .stdout(Stdio::null())
        .stderr(fs::File::create(dir.join("auditd.err")).unwrap())
        .spawn()
        .ok()?;
    let mut auditd = Proc(child);
    let started = wait_until("auditd's DAEMON_START", 10, || {
        fs::read_to_string(&log).is_ok_and(|t| t.contains("type=DAEMON_START"))
    });
    if !started || auditd.0.try_wait().ok().flatten().is_some() {
        eprintln!(
            "auditd did not start: {}",
            fs::read_to_string(dir.join("auditd.err")).unwrap_or_default()
        );
        return None;
    }
    Some(auditd)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// A real sshd login with a pty from [`CLIENT`], which auditd records as `USER_LOGIN`.
fn ssh_login(dir: &Path) -> TestUser {
    let user = TestUser;
    let _ = Command::new("userdel").args(["-r", USER]).output();
    assert!(
        Command::new("useradd")
            .args(["-m", USER])
            .status()
            .unwrap()
            .success()
    );
    let mut chpasswd = Command::new("chpasswd")
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        chpasswd.stdin.as_mut().unwrap(),
        format!("{USER}:Audit-Pw-4711\n").as_bytes(),
    )
    .unwrap();
    assert!(chpasswd.wait().unwrap().success());
    fs::create_dir_all("/run/sshd").unwrap();
    let key = dir.join("host_key");
    assert!(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .status()
            .unwrap()
            .success()
    );
    let port = free_port();
    let conf = dir.join("sshd_config");
    fs::write(
        &conf,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nUsePAM yes\nPasswordAuthentication yes\nKbdInteractiveAuthentication no\nPidFile {}\n",
            key.display(),
            dir.join("sshd.pid").display()
        ),
    )
    .unwrap();
    let _sshd = Proc(
        Command::new("/usr/sbin/sshd")
            .args(["-D", "-f"])
            .arg(&conf)
            .arg("-E")
            .arg(dir.join("sshd.log"))
            .spawn()
            .unwrap(),
    );
    assert!(wait_until("sshd", 10, || std::net::TcpStream::connect((
        "127.0.0.1",
        port
    ))
    .is_ok()));
    let out = Command::new("sshpass")
        .args(["-p", "Audit-Pw-4711", "ssh", "-F", "/dev/null"])
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
        ])
        .args([
            "-o",
            "PreferredAuthentications=password",
            "-tt",
            "-b",
            CLIENT,
        ])
        .args(["-p", &port.to_string()])
        .arg(format!("{USER}@127.0.0.1"))
        .arg("exit")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ssh login failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    user
}

fn start_agent(config: &Path) -> Proc {
    Proc(
        Command::new(BIN)
            .args(["run", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(fs::File::create(config.with_extension("err")).unwrap())
            .spawn()
            .unwrap(),
    )
}

fn events(path: &Path) -> Vec<serde_json::Value> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The `USER_LOGIN` success records from the client, as events.
fn logins(path: &Path, client: &str) -> Vec<serde_json::Value> {
    events(path)
        .into_iter()
        .filter(|e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.contains("type=USER_LOGIN") && m.contains("res=success"))
                && e["source"]["ip"] == client
        })
        .collect()
}

#[test]
fn a_real_sshd_login_recorded_by_auditd_is_shipped_once_across_a_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let log: PathBuf = dir.path().join("audit.log");
    let (_auditd, _user, client) = match start_auditd(dir.path()) {
        Some(auditd) => {
            eprintln!("real auditd: recording a real sshd login from {CLIENT}");
            let user = ssh_login(dir.path());
            // auditd flushes asynchronously.
            assert!(wait_until("the USER_LOGIN record", 10, || {
                fs::read_to_string(&log).is_ok_and(|t| {
                    t.lines().any(|l| {
                        l.contains("type=USER_LOGIN")
                            && l.contains(&format!("addr={CLIENT} "))
                            && l.contains("res=success")
                    })
                })
            }));
            (Some(auditd), Some(user), CLIENT)
        }
        None => {
            eprintln!(
                "auditd cannot run here: using the real records of agent-core/testdata/audit/debian12-raw.log"
            );
            let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../agent-core/testdata/audit/debian12-raw.log");
            let text = fs::read_to_string(fixture).unwrap();
            let records: String = text
                .lines()
                .filter(|l| !l.starts_with('#'))
                .map(|l| format!("{l}\n"))
                .collect();
            fs::write(&log, records).unwrap();
            (None, None, "127.0.0.6")
        }
    };
    let out = dir.path().join("events.ndjson");
    let cfg = dir.path().join("agent.toml");
    fs::write(
        &cfg,
        format!(
            "state-dir = {:?}\ntimezone = \"UTC\"\n[detect]\nenabled = false\n[sink]\ntype = \"file\"\npath = {:?}\n[[source]]\ntype = \"audit\"\npaths = [{:?}]\nread-from = \"beginning\"\npoll-interval = \"100ms\"\n",
            dir.path().join("state").display().to_string(),
            out.display().to_string(),
            log.display().to_string(),
        ),
    )
    .unwrap();
    fs::set_permissions(&cfg, fs::Permissions::from_mode(0o600)).unwrap();

    let mut agent = start_agent(&cfg);
    assert!(
        wait_until("the USER_LOGIN event", 30, || !logins(&out, client)
            .is_empty()),
        "agent output: {:?}; agent stderr: {}",
        events(&out).len(),
        fs::read_to_string(cfg.with_extension("err")).unwrap_or_default()
    );
    let first = logins(&out, client);
    assert_eq!(first.len(), 1, "{first:?}");
    let ev = &first[0];
    assert_eq!(ev["event"]["action"], "auth_success");
    assert_eq!(ev["process"]["name"], "sshd");
    assert!(ev["user"]["id"].is_string(), "{ev}");

    // SIGKILL, then a fresh start: the record is not shipped again.
    agent.0.kill().unwrap();
    agent.0.wait().unwrap();
    let before = events(&out).len();
    let agent = start_agent(&cfg);
    std::thread::sleep(Duration::from_millis(1500));
    drop(agent);
    let after = logins(&out, client);
    assert_eq!(after.len(), 1, "USER_LOGIN shipped {} times", after.len());
    assert!(events(&out).len() >= before);
}
