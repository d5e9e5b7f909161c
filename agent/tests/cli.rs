//! The `authtrail` binary's commands as an operator meets them: `validate` on bad configs.

#![allow(clippy::unwrap_used)] // Tests: a failed unwrap is a failed test.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_authtrail");

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("agent.toml");
    fs::write(&path, text).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
    path
}

fn validate(config: &Path) -> Output {
    Command::new(BIN)
        .args(["validate", "--config"])
        .arg(config)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

/// The line of `err` that reports `needle`, asserting it names `line` of the config.
fn assert_reported(err: &str, config: &Path, line: usize, needle: &str) {
    let at = format!("{}:{line}:", config.display());
    assert!(
        err.lines().any(|l| l.contains(&at) && l.contains(needle)),
        "no error at line {line} with {needle:?} in:\n{err}"
    );
}

/// One run of `validate` on a config with many kinds of error reports each one with its line:
/// TOML type errors (not just the first), semantic ones, files `run` would fail to read, a
/// helper program that is missing, and a threshold of zero.
#[test]
fn validate_reports_every_error_with_its_line_in_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("cert.pem");
    fs::write(&not_pem, "this is not a certificate\n").unwrap();
    let key = dir.path().join("key.pem");
    fs::write(&key, "").unwrap();
    let text = format!(
        r#"timezone = "Mars/Olympus"
max-line-bytes = "lots"
include-message = 1

[[source]]
type = "file"
paths = ["/var/log/auth.log"]
poll-interval = 5
max-files = "many"

[[source]]
type = "journald"
journalctl = "/nonexistent/bin/journalctl"

[detect]
brute-force-threshold = 0
spray-window = "soon"

[sink]
type = "collector"
url = "https://collector.example:8443"
batch-max-events = "all"

[sink.tls]
ca-file = "/nonexistent/ca.pem"
cert-file = {cert:?}
key-file = {key:?}
"#,
        cert = not_pem.display().to_string(),
        key = key.display().to_string(),
    );
    let config = write_config(dir.path(), &text);
    let out = validate(&config);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(out.stdout.is_empty());
    assert_reported(&err, &config, 1, "expected `local`, `UTC`");
    assert_reported(&err, &config, 2, "expected a size like 64KiB");
    assert_reported(&err, &config, 3, "expected `true` or `false`");
    assert_reported(&err, &config, 8, "poll-interval");
    assert_reported(&err, &config, 9, "expected a whole number");
    assert_reported(&err, &config, 13, "cannot be run");
    assert_reported(&err, &config, 16, "[detect] brute-force-threshold = 0");
    assert_reported(&err, &config, 17, "spray-window");
    assert_reported(&err, &config, 22, "batch-max-events");
    assert_reported(
        &err,
        &config,
        25,
        "tls.ca-file: /nonexistent/ca.pem: cannot read it",
    );
    assert_reported(&err, &config, 26, "holds no PEM CERTIFICATE block");
    assert_reported(&err, &config, 27, "no usable PEM private key");
    assert!(err.ends_with("12 errors in the configuration\n"), "{err}");
    // Said in words, not in Rust's types.
    for rust in ["u32", "usize", "u64", "invalid type"] {
        assert!(!err.contains(rust), "{rust} in {err}");
    }
}

/// A threshold of 0 used to validate and be treated as 1.
#[test]
fn validate_refuses_a_zero_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "[detect]\n\nbrute-force-threshold = 0\n");
    let out = validate(&config);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_reported(&err, &config, 3, "must be greater than zero");
}

/// A size can be written with its unit.
#[test]
fn validate_accepts_sizes_with_units() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "max-line-bytes = \"64KiB\"\n");
    let out = validate(&config);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("max-line-bytes = 65536"), "{stdout}");
}

/// `authtrail run` on one log file, with standard error into `err`: killed on drop.
struct Running(std::process::Child);

impl Running {
    fn start(dir: &Path, err: &Path, args: &[&str], env: &[(&str, String)]) -> Running {
        let log = dir.join("auth.log");
        fs::write(&log, "").unwrap();
        let config = write_config(
            dir,
            &format!(
                "state-dir = {:?}\n[[source]]\ntype = \"file\"\npaths = [{:?}]\n\
                 [sink]\ntype = \"file\"\npath = {:?}\n",
                dir.join("state").display().to_string(),
                log.display().to_string(),
                dir.join("events.ndjson").display().to_string(),
            ),
        );
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .args(["run", "--config"])
            .arg(&config)
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::null())
            .stderr(fs::File::create(err).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        Running(cmd.spawn().unwrap())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Standard error once it holds `needle` (or after 10 s).
fn wait_for(err: &Path, needle: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = fs::read_to_string(err).unwrap_or_default();
        if text.contains(needle) || std::time::Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Under systemd (`JOURNAL_STREAM` names standard error) each line starts with its syslog
/// priority for journald; a `JOURNAL_STREAM` that names another file is ignored.
#[test]
fn journal_lines_carry_syslog_priorities() {
    use std::os::unix::fs::MetadataExt as _;
    let dir = tempfile::tempdir().unwrap();
    let err = dir.path().join("agent.err");
    fs::write(&err, "").unwrap();
    let meta = fs::metadata(&err).unwrap();
    let stream = format!("{}:{}", meta.dev(), meta.ino());
    // Truncated, not recreated by Running::start: the inode stays.
    let _agent = Running::start(dir.path(), &err, &["-v"], &[("JOURNAL_STREAM", stream)]);
    let text = wait_for(&err, "running");
    assert!(text.lines().any(|l| l.starts_with("<6>agent ")), "{text}");
    assert!(!text.contains("authtrail: "), "{text}");
    drop(_agent);

    let dir = tempfile::tempdir().unwrap();
    let err = dir.path().join("agent.err");
    let _agent = Running::start(
        dir.path(),
        &err,
        &[],
        &[("JOURNAL_STREAM", "1:2".to_owned())],
    );
    let text = wait_for(&err, "running");
    assert!(
        text.lines().any(|l| l.starts_with("authtrail: agent ")),
        "{text}"
    );
    assert!(!text.contains("<6>"), "{text}");
}

/// A config reading `lines` lines of sshd failures from the beginning into a file sink.
fn backlog_config(dir: &Path, lines: usize) -> PathBuf {
    let log = dir.join("auth.log");
    let mut text = String::with_capacity(lines * 110);
    for i in 0..lines {
        text.push_str(&format!(
            "Nov 28 06:49:30 host sshd[{}]: Failed password for invalid user u{i} from 203.0.113.{} port 22 ssh2\n",
            1000 + i % 30000,
            i % 250
        ));
    }
    fs::write(&log, text).unwrap();
    write_config(
        dir,
        &format!(
            "state-dir = {:?}\ntimezone = \"UTC\"\n[[source]]\ntype = \"file\"\npaths = [{:?}]\n\
             read-from = \"beginning\"\n[sink]\ntype = \"file\"\npath = {:?}\n",
            dir.join("state").display().to_string(),
            log.display().to_string(),
            dir.join("events.ndjson").display().to_string(),
        ),
    )
}

/// A tmux server of our own (its own socket), killed on drop.
struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    /// A server with its socket in `dir` and one 160x20 session `progress` running `script`.
    fn start(dir: &Path, script: &str) -> Tmux {
        let tmux = Tmux {
            socket: dir.join("tmux.sock"),
        };
        let ok = tmux
            .cmd()
            .args([
                "new-session",
                "-d",
                "-s",
                "progress",
                "-x",
                "160",
                "-y",
                "20",
            ])
            .arg(script)
            .env_remove("RUST_LOG")
            .env_remove("NO_COLOR")
            .env_remove("JOURNAL_STREAM")
            .status()
            .unwrap()
            .success();
        assert!(ok, "tmux new-session failed");
        tmux
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.arg("-S").arg(&self.socket);
        c
    }

    fn capture(&self) -> String {
        let out = self
            .cmd()
            .args(["capture-pane", "-p", "-t", "progress"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").status();
    }
}

/// On a terminal (a tmux pane) the backlog's progress is redrawn in place with the rate and
/// the time left; piped, the same run writes log lines only, without control characters.
#[test]
fn progress_shows_on_a_terminal_and_not_when_piped() {
    const LINES: usize = 200_000;
    if Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("tmux is not installed; skipping");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = backlog_config(dir.path(), LINES);
    let pid_file = dir.path().join("agent.pid");
    // `exec` so that the pid is the agent's: stopped with SIGTERM (a SIGHUP reloads it).
    let script = format!(
        "echo $$ > {}; exec {BIN} run --config {}",
        pid_file.display(),
        config.display()
    );
    let tmux = Tmux::start(dir.path(), &script);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let (mut seen_progress, mut screen) = (false, String::new());
    while std::time::Instant::now() < deadline {
        screen = tmux.capture();
        seen_progress |= screen.contains("MB/s") && screen.contains("ETA");
        if screen.contains("backlog read:") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    if let Ok(pid) = fs::read_to_string(&pid_file) {
        let _ = Command::new("kill").args(["-TERM", pid.trim()]).status();
    }
    assert!(seen_progress, "no progress line on the terminal:\n{screen}");
    assert!(
        screen.contains(&format!("backlog read: {LINES} lines")),
        "{screen}"
    );

    // The same, piped: log lines, no redrawing.
    let dir = tempfile::tempdir().unwrap();
    let config = backlog_config(dir.path(), LINES);
    let err = dir.path().join("agent.err");
    let mut child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .env_remove("RUST_LOG")
        .env_remove("JOURNAL_STREAM")
        .stdout(std::process::Stdio::null())
        .stderr(fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let text = wait_for_within(&err, "backlog read:", std::time::Duration::from_secs(120));
    let _ = child.kill();
    let _ = child.wait();
    assert!(text.contains("authtrail: reading a backlog of "), "{text}");
    assert!(
        text.contains(&format!("authtrail: backlog read: {LINES} lines")),
        "{text}"
    );
    assert!(!text.contains('\r') && !text.contains('\x1b'), "{text:?}");
}

fn wait_for_within(err: &Path, needle: &str, within: std::time::Duration) -> String {
    let deadline = std::time::Instant::now() + within;
    loop {
        let text = fs::read_to_string(err).unwrap_or_default();
        if text.contains(needle) || std::time::Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// On a terminal the level of a warning is coloured; `NO_COLOR` turns colour off.
#[test]
fn warnings_are_coloured_on_a_terminal_unless_no_color() {
    if Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("tmux is not installed; skipping");
        return;
    }
    for no_color in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let config = backlog_config(dir.path(), 1);
        let pid_file = dir.path().join("agent.pid");
        // A NOTIFY_SOCKET that is no socket: the agent warns and runs on.
        let script = format!(
            "echo $$ > {}; exec env NOTIFY_SOCKET=relative {} {BIN} run --config {}",
            pid_file.display(),
            if no_color { "NO_COLOR=1" } else { "" },
            config.display()
        );
        let tmux = Tmux::start(dir.path(), &script);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut screen = String::new();
        while std::time::Instant::now() < deadline {
            // -e: with the escape sequences of colours.
            let out = tmux
                .cmd()
                .args(["capture-pane", "-e", "-p", "-t", "progress"])
                .output()
                .unwrap();
            screen = String::from_utf8_lossy(&out.stdout).into_owned();
            if screen.contains("sd_notify") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        if let Ok(pid) = fs::read_to_string(&pid_file) {
            let _ = Command::new("kill").args(["-TERM", pid.trim()]).status();
        }
        let line = screen
            .lines()
            .find(|l| l.contains("sd_notify"))
            .unwrap_or_else(|| panic!("no warning on the terminal:\n{screen}"));
        assert!(line.starts_with("authtrail: "), "{line:?}");
        assert_eq!(
            line.contains('\x1b'),
            !no_color,
            "NO_COLOR={no_color}: {line:?}"
        );
    }
}

/// A log the agent's user cannot open was listed by `sources` with its size as if it would be
/// read (and `validate` passed); `run` only warned and read nothing. `sources` now says so, with
/// the fix. Run as root, the command runs as `nobody` (root reads every file).
#[test]
fn sources_flags_a_log_its_user_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let log = dir.path().join("auth.log");
    fs::write(
        &log,
        "Dec  5 17:00:00 web1 sshd[1]: Accepted password for a from 192.0.2.1 port 1 ssh2\n",
    )
    .unwrap();
    fs::set_permissions(&log, fs::Permissions::from_mode(0o000)).unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "state-dir = {:?}\n[[source]]\ntype = \"file\"\npaths = [{:?}]\n",
            dir.path().join("state").display().to_string(),
            log.display().to_string(),
        ),
    );
    fs::set_permissions(&config, fs::Permissions::from_mode(0o644)).unwrap();
    let root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    let mut cmd = if root {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN]);
        c
    } else {
        Command::new(BIN)
    };
    let out = cmd
        .args(["sources", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = text
        .lines()
        // The match (indented 4), not the pattern (indented 2).
        .find(|l| l.starts_with(&format!("    {}", log.display())))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("cannot be read by this user"), "{line}");
    assert!(line.contains("Permission denied"), "{line}");
}

/// A file source whose paths match nothing (a typo) ran in silence, reading nothing: `run`
/// now warns at the start, naming the pattern.
#[test]
fn run_warns_when_a_source_matches_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("auht.log");
    let config = write_config(
        dir.path(),
        &format!(
            "state-dir = {:?}\n[[source]]\ntype = \"file\"\npaths = [{:?}]\n\
             [sink]\ntype = \"file\"\npath = {:?}\n",
            dir.path().join("state").display().to_string(),
            missing.display().to_string(),
            dir.path().join("events.ndjson").display().to_string(),
        ),
    );
    let err = dir.path().join("agent.err");
    let mut child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .env_remove("RUST_LOG")
        .env_remove("JOURNAL_STREAM")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let text = wait_for(&err, "no file matches");
    let _ = child.kill();
    let _ = child.wait();
    let line = text
        .lines()
        .find(|l| l.contains("no file matches"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("warning"), "{line}");
    assert!(line.contains(&missing.display().to_string()), "{line}");
}

/// `validate` prints the effective configuration, but its `[sink.buffer]` had no `type`: which
/// buffer the agent would use (disk, or none with the older `spool.enabled = false`) was left
/// to guess.
#[test]
fn validate_prints_the_buffer_type_in_effect() {
    let dir = tempfile::tempdir().unwrap();
    for (extra, kind) in [
        ("", "disk"),
        ("[sink.spool]\nenabled = false\n", "none"),
        ("[sink.buffer]\ntype = \"memory\"\n", "memory"),
    ] {
        let config = write_config(
            dir.path(),
            &format!(
                "state-dir = \"/var/lib/authtrail\"\n[[source]]\ntype = \"file\"\npaths = [\"/var/log/auth.log\"]\n\
                 [sink]\ntype = \"collector\"\nurl = \"https://collector.example:8443\"\n{extra}"
            ),
        );
        let out = validate(&config);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let buffer = stdout
            .split("[sink.buffer]\n")
            .nth(1)
            .unwrap_or_else(|| panic!("{stdout}"));
        assert!(
            buffer.starts_with(&format!("type = \"{kind}\"\n")),
            "{extra}: {stdout}"
        );
        // What validate prints is itself a valid config.
        let again = write_config(dir.path(), &stdout);
        assert!(validate(&again).status.success(), "{stdout}");
    }
}
