//! End-to-end tests: the `authtrail` binary against real programs (sshd, rsyslogd, ssh clients).
//!
//! The tests that need root and the real programs print a loud `SKIPPED` notice and return when
//! they cannot run (not root, a program missing, or `AUTHTRAIL_SKIP_E2E` set); `.ci/run` installs
//! the programs. Helpers are in `util.rs`; `AUTHTRAIL_E2E_KEEP=1` keeps the scratch directory.

mod cli;
mod demo;
mod detect;
mod nats;
mod shipping;
mod soak;
mod util;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use util::{
    Agent, Login, LoginResult, Scratch, SshdRsyslog, TestUser, announce_skip, authtrail_bin,
    e2e_skip_reason, free_port, mounts_below, read_ndjson, rotate_rename_create, run_ok,
    ssh_logins, wait_for, write_private,
};

/// Always runs: the harness finds (and if needed builds) the agent binary, and it starts.
#[test]
fn harness_finds_agent_binary() {
    let bin = authtrail_bin();
    assert!(bin.is_file(), "{}", bin.display());
    let out = run_ok(Command::new(&bin).arg("--version"));
    let version = String::from_utf8_lossy(&out.stdout);
    assert!(version.starts_with("authtrail "), "{version}");
}

/// Programs the sshd/rsyslog test needs.
const E2E_PROGRAMS: &[&str] = &[
    "sshd",
    "rsyslogd",
    "sshpass",
    "ssh",
    "ssh-keygen",
    "unshare",
    "useradd",
    "userdel",
    "chpasswd",
    "ss",
    "findmnt",
    "timeout",
];

/// What one login attempt must become.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Right password: `Accepted password for U from IP port P ssh2` -> `auth_success`.
    Success,
    /// Wrong password: `Failed password for U from IP port P ssh2` -> `auth_failure`.
    Failure,
    /// Unknown account: `Invalid user U from IP port P` -> `invalid_user`.
    InvalidUser,
}

impl Kind {
    fn action(self) -> &'static str {
        match self {
            Kind::Success => "auth_success",
            Kind::Failure => "auth_failure",
            Kind::InvalidUser => "invalid_user",
        }
    }
}

/// One login attempt of the scenario.
#[derive(Debug, Clone)]
struct Attempt {
    kind: Kind,
    login: Login,
    /// `auth.log.1` for attempts before the rotation, `auth.log` after it.
    file: &'static str,
}

/// The sshd line an attempt produced, found in the logs.
#[derive(Debug, Clone)]
struct Witness {
    attempt: Attempt,
    line: String,
    port: u16,
}

/// Prints progress with the time since the start, so the log shows where time goes.
struct Clock(Instant);

impl Clock {
    fn step(&self, what: &str) {
        eprintln!("[{:6.2}s] {what}", self.0.elapsed().as_secs_f64());
    }
}

/// Issue 3's end-to-end test. Real sshd and rsyslogd (in a private mount namespace) write a real
/// auth.log on loopback; real ssh password logins succeed and fail from distinct source
/// addresses; the log is rotated logrotate-style (rename, create, HUP) halfway; the agent is
/// SIGKILLed twice (right after some logins, right after the rotation) and restarted with the same
/// config, with logins happening while it is down. Then:
/// - every login appears exactly once in the NDJSON output with the right action, user, source
///   address, port and method (`auth_success`, `auth_failure`, `invalid_user`);
/// - every event that `authtrail parse` finds in the final auth.log.1 + auth.log is in the output
///   (nothing lost across rotation and crashes), each event's `log.offset` points at its line,
///   and no line is torn;
/// - SIGTERM stops the agent with exit 0 within 5 s, and a restart after that clean stop emits
///   nothing again.
#[test]
fn real_sshd_rsyslog_rotation_and_sigkill() {
    const TEST: &str = "real_sshd_rsyslog_rotation_and_sigkill";
    if let Some(reason) = e2e_skip_reason(E2E_PROGRAMS) {
        announce_skip(TEST, &reason);
        return;
    }
    let clock = Clock(Instant::now());
    let bin = authtrail_bin();
    clock.step(&format!("agent binary {}", bin.display()));

    // Declared first so that it is dropped last: the daemons and the account go before it.
    let scratch = Scratch::new();
    let dir = scratch.path().to_path_buf();
    let log_dir = dir.join("log");
    fs::create_dir_all(&log_dir).expect("mkdir log");
    let log = log_dir.join("auth.log");
    let rotated = log_dir.join("auth.log.1");
    let state = dir.join("state");
    let output = dir.join("events.ndjson");
    let agent_log = dir.join("agent.log");
    let config = dir.join("agent.toml");
    write_private(
        &config,
        &format!(
            "state-dir = {state:?}\n\
             \n\
             [[source]]\n\
             type = \"file\"\n\
             name = \"auth\"\n\
             paths = [{log:?}, {rotated:?}]\n\
             read-from = \"beginning\"\n\
             poll-interval = \"200ms\"\n\
             \n\
             [sink]\n\
             type = \"file\"\n\
             path = {output:?}\n"
        ),
    );

    let pid = std::process::id();
    let user = TestUser::create(&format!("ate2e{pid}"), "E2e-Pw-7781!", &dir.join("home"));
    let invalid = format!("ate2enouser{pid}");
    let mut host = SshdRsyslog::start(&dir, free_port());
    clock.step(&format!(
        "rsyslogd (pid {}) and sshd (pid {}, port {}) up; user {}; dir {}",
        host.rsyslogd_pid,
        host.sshd_pid,
        host.port,
        user.name,
        dir.display()
    ));

    let attempt = |kind: Kind, last_octet: u8, file: &'static str| {
        let (name, password) = match kind {
            Kind::Success => (user.name.clone(), user.password.clone()),
            Kind::Failure => (user.name.clone(), "wrong-password".to_owned()),
            Kind::InvalidUser => (invalid.clone(), "wrong-password".to_owned()),
        };
        Attempt {
            kind,
            login: Login {
                source: Ipv4Addr::new(127, 0, 0, last_octet),
                user: name,
                password,
            },
            file,
        }
    };
    let port = host.port;
    let mut attempts: Vec<Attempt> = Vec::new();
    let mut run_phase = |phase: &str, batch: Vec<Attempt>| {
        let logins: Vec<Login> = batch.iter().map(|a| a.login.clone()).collect();
        let results = ssh_logins(port, &logins);
        check_clients(&batch, &results);
        clock.step(&format!(
            "{phase}: {}",
            batch
                .iter()
                .map(|a| format!("{:?} from {}", a.kind, a.login.source))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        attempts.extend(batch);
    };

    let mut failures: Vec<String> = Vec::new();
    // Where each agent run's output begins, to tell which run wrote a duplicate.
    let mut starts: Vec<(&str, usize)> = Vec::new();

    // 1. Agent #1; logins; SIGKILL right after them.
    starts.push(("agent #1", read_ndjson(&output).0.len()));
    let mut agent = Agent::start(&config, &agent_log, "agent #1");
    run_phase(
        "logins with agent #1 running",
        vec![
            attempt(Kind::Success, 2, "auth.log.1"),
            attempt(Kind::Success, 3, "auth.log.1"),
            attempt(Kind::Failure, 20, "auth.log.1"),
        ],
    );
    // Make sure agent #1 did deliver something before it dies, so the restart has a checkpoint
    // to resume from (the kill still lands while the last lines are in flight).
    let delivered = wait_for(Duration::from_secs(10), || {
        let (events, _) = read_ndjson(&output);
        if events.iter().any(|e| action(e) == Some("auth_success")) {
            Some(true)
        } else {
            agent.try_status().map(|_| false)
        }
    });
    if delivered != Some(true) {
        failures.push("agent #1 wrote no auth_success event within 10 s".into());
    }
    check_still_running(&mut agent, "agent #1", &mut failures);
    agent.sigkill();
    clock.step("agent #1 SIGKILLed right after the logins");

    // 2. A login while no agent runs; agent #2; a login; rotation; SIGKILL right after it.
    run_phase(
        "login while no agent runs",
        vec![attempt(Kind::Success, 4, "auth.log.1")],
    );
    starts.push(("agent #2", read_ndjson(&output).0.len()));
    let mut agent = Agent::start(&config, &agent_log, "agent #2");
    run_phase(
        "login with agent #2 running",
        vec![attempt(Kind::Success, 5, "auth.log.1")],
    );
    rotate_rename_create(&log, &rotated);
    host.hup_rsyslogd();
    check_still_running(&mut agent, "agent #2", &mut failures);
    agent.sigkill();
    clock.step("rotated (rename, create, HUP rsyslogd); agent #2 SIGKILLed right after");

    // 3. Logins into the new file while no agent runs; agent #3; more logins.
    run_phase(
        "logins after the rotation while no agent runs",
        vec![
            attempt(Kind::Success, 6, "auth.log"),
            attempt(Kind::Failure, 21, "auth.log"),
        ],
    );
    starts.push(("agent #3", read_ndjson(&output).0.len()));
    let mut agent = Agent::start(&config, &agent_log, "agent #3");
    run_phase(
        "logins with agent #3 running",
        vec![
            attempt(Kind::Success, 7, "auth.log"),
            attempt(Kind::Failure, 22, "auth.log"),
            attempt(Kind::InvalidUser, 30, "auth.log"),
        ],
    );

    // The logs are complete once the login events are there and the daemons are stopped (sshd
    // may log while it stops; that is read like any other line).
    let witnesses = find_witnesses(&attempts, &log_dir);
    let want: Vec<&str> = witnesses.iter().map(|w| w.line.as_str()).collect();
    let seen_all = wait_for(Duration::from_secs(30), || {
        let (events, _) = read_ndjson(&output);
        if want
            .iter()
            .all(|line| events.iter().any(|e| message(e) == Some(line)))
        {
            Some(true)
        } else {
            agent.try_status().map(|_| false)
        }
    });
    clock.step(if seen_all == Some(true) {
        "every login line has an event"
    } else {
        "not every login line has an event (30 s timeout, or agent #3 died)"
    });
    let host_status = host.stop();
    clock.step(&format!("sshd and rsyslogd stopped ({host_status:?})"));

    // Everything `authtrail parse` finds in the final logs must arrive.
    let reference = parse_reference(&bin, &[&rotated, &log]);
    let complete = wait_for(Duration::from_secs(30), || {
        let (events, _) = read_ndjson(&output);
        if missing(&reference, &events).is_empty() {
            Some(true)
        } else {
            agent.try_status().map(|_| false)
        }
    });
    clock.step(&format!(
        "{} the {} events `authtrail parse` finds in the logs",
        if complete == Some(true) {
            "output holds"
        } else {
            "output still lacks (30 s timeout, or agent #3 died) some of"
        },
        reference.len()
    ));

    check_still_running(&mut agent, "agent #3", &mut failures);
    match agent.sigterm(Duration::from_secs(5)) {
        Ok(status) if status.success() => {}
        Ok(status) => failures.push(format!("agent #3 exited with {status} after SIGTERM")),
        Err(e) => failures.push(format!("agent #3 after SIGTERM: {e}")),
    }
    clock.step("agent #3 stopped with SIGTERM");

    // 4. The checks on the output.
    let (events, torn) = read_ndjson(&output);
    if !torn.is_empty() {
        failures.push(format!(
            "{} output lines are not JSON objects (torn or interleaved writes):\n  {}",
            torn.len(),
            listing(&torn)
        ));
    }
    check_logins(&witnesses, &events, &starts, &mut failures);
    let lost = missing(&reference, &events);
    if !lost.is_empty() {
        failures.push(format!(
            "{} events that `authtrail parse` finds in the logs are missing from the output:\n  {}",
            lost.len(),
            listing(&lost)
        ));
    }
    let extra_dups = duplicates(&events, &want);
    if !extra_dups.is_empty() {
        // ARCHITECTURE.md promises at-least-once: after a SIGKILL the lines after the last
        // persisted checkpoint are read again. The login lines above are held to exactly once
        // (the target); the others are reported, not failed.
        eprintln!(
            "NOTE: {} other log lines were delivered more than once (at-least-once after \
             SIGKILL):\n  {}",
            extra_dups.len(),
            listing(&extra_dups)
        );
    }
    check_offsets(&events, &log, &rotated, &mut failures);

    // 5. A restart after a clean stop reads nothing again.
    let before = events.len();
    let mut agent = Agent::start(&config, &agent_log, "agent #4 (after a clean stop)");
    std::thread::sleep(Duration::from_secs(2));
    check_still_running(&mut agent, "agent #4", &mut failures);
    match agent.sigterm(Duration::from_secs(5)) {
        Ok(status) if status.success() => {}
        Ok(status) => failures.push(format!("agent #4 exited with {status} after SIGTERM")),
        Err(e) => failures.push(format!("agent #4 after SIGTERM: {e}")),
    }
    let (after, _) = read_ndjson(&output);
    if after.len() != before {
        failures.push(format!(
            "a restart after a clean stop wrote {} events again (no duplicates are allowed \
             after a clean stop):\n  {}",
            after.len().saturating_sub(before),
            listing(&after.iter().skip(before).map(key).collect::<Vec<_>>())
        ));
    }
    clock.step("agent #4 started after the clean stop and stopped; checks done");

    if let Ok(out) = Command::new(&bin)
        .args(["status", "--config"])
        .arg(&config)
        .output()
    {
        eprintln!(
            "authtrail status ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    if !failures.is_empty() {
        eprintln!("----- agent log -----\n{}", tail(&agent_log, 80));
        eprintln!("----- sshd-rsyslog.sh -----\n{}", host.output());
        eprintln!(
            "----- {} events in {} (set AUTHTRAIL_E2E_KEEP=1 to keep {}) -----",
            after.len(),
            output.display(),
            dir.display()
        );
        panic!(
            "{TEST}: {} problem(s):\n- {}",
            failures.len(),
            failures.join("\n- ")
        );
    }
    drop(host);
    drop(user);
    assert!(mounts_below(&dir).is_empty(), "mounts left below {dir:?}");
}

/// The clients must have done what the scenario says, or the harness (not the agent) is broken.
fn check_clients(batch: &[Attempt], results: &[LoginResult]) {
    for (a, r) in batch.iter().zip(results) {
        let ok = r.status.success();
        let expected_ok = a.kind == Kind::Success;
        assert_eq!(
            ok, expected_ok,
            "ssh client for {:?} from {} as {}: {} ({})",
            a.kind, a.login.source, a.login.user, r.status, r.output
        );
    }
}

/// Finds each attempt's sshd line (exactly one) in the rotated and the current log.
fn find_witnesses(attempts: &[Attempt], log_dir: &Path) -> Vec<Witness> {
    // The last lines of a connection can trail the client's exit by a few milliseconds.
    let read = |name: &str| fs::read_to_string(log_dir.join(name)).unwrap_or_default();
    let needle = |a: &Attempt| {
        let verb = match a.kind {
            Kind::Success => "Accepted password for",
            Kind::Failure => "Failed password for",
            Kind::InvalidUser => "Invalid user",
        };
        format!(": {verb} {} from {} port ", a.login.user, a.login.source)
    };
    let found = wait_for(Duration::from_secs(5), || {
        let files = [
            ("auth.log.1", read("auth.log.1")),
            ("auth.log", read("auth.log")),
        ];
        let all: Vec<(&str, &str)> = files
            .iter()
            .flat_map(|(name, text)| text.lines().map(move |l| (*name, l)))
            .collect();
        attempts
            .iter()
            .map(|a| {
                let n = needle(a);
                let hits: Vec<&(&str, &str)> = all
                    .iter()
                    .filter(|(_, l)| l.contains(" sshd[") && l.contains(&n))
                    .collect();
                match hits[..] {
                    [(file, line)] => Some((a.clone(), *file, (*line).to_owned())),
                    _ => None,
                }
            })
            .collect::<Option<Vec<_>>>()
    });
    let Some(found) = found else {
        panic!(
            "the logs do not hold exactly one sshd line per login attempt:\n--- auth.log.1\n{}\n--- auth.log\n{}",
            read("auth.log.1"),
            read("auth.log")
        );
    };
    found
        .into_iter()
        .map(|(attempt, file, line)| {
            assert_eq!(
                file, attempt.file,
                "{:?} from {} was logged to {file}: the rotation did not happen where planned",
                attempt.kind, attempt.login.source
            );
            let port = line
                .rsplit_once(" port ")
                .and_then(|(_, rest)| rest.split(' ').next())
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| panic!("no port in {line}"));
            Witness {
                attempt,
                line,
                port,
            }
        })
        .collect()
}

fn message(e: &Value) -> Option<&str> {
    e.get("message").and_then(Value::as_str)
}

fn action(e: &Value) -> Option<&str> {
    e.pointer("/event/action").and_then(Value::as_str)
}

/// Each login line: exactly one event, with the right action, user, address, port and method.
fn check_logins(
    witnesses: &[Witness],
    events: &[Value],
    starts: &[(&str, usize)],
    failures: &mut Vec<String>,
) {
    for w in witnesses {
        let a = &w.attempt;
        let what = format!("{:?} from {} ({})", a.kind, a.login.source, w.line);
        let positions: Vec<usize> = events
            .iter()
            .enumerate()
            .filter(|(_, e)| message(e) == Some(w.line.as_str()))
            .map(|(i, _)| i)
            .collect();
        let matching: Vec<&Value> = positions.iter().map(|&i| &events[i]).collect();
        match matching.len() {
            0 => {
                failures.push(format!("{what}: no event"));
                continue;
            }
            1 => {}
            n => failures.push(format!(
                "{what}: {n} events, expected exactly one; written by {}",
                positions
                    .iter()
                    .map(|&i| writer(starts, i))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
        let e = matching[0];
        let mut check = |field: &str, got: Option<Value>, want: Value| {
            if got.as_ref() != Some(&want) {
                failures.push(format!("{what}: {field} is {got:?}, expected {want}"));
            }
        };
        check(
            "event.action",
            e.pointer("/event/action").cloned(),
            a.kind.action().into(),
        );
        check(
            "user.name",
            e.pointer("/user/name").cloned(),
            a.login.user.clone().into(),
        );
        check(
            "source.ip",
            e.pointer("/source/ip").cloned(),
            a.login.source.to_string().into(),
        );
        check(
            "source.port",
            e.pointer("/source/port").cloned(),
            w.port.into(),
        );
        check(
            "process.name",
            e.pointer("/process/name").cloned(),
            "sshd".into(),
        );
        if a.kind != Kind::InvalidUser {
            check(
                "authtrail.method",
                e.pointer("/authtrail/method").cloned(),
                "password".into(),
            );
        }
        let outcome = if a.kind == Kind::Success {
            "success"
        } else {
            "failure"
        };
        check(
            "event.outcome",
            e.pointer("/event/outcome").cloned(),
            outcome.into(),
        );
    }
}

/// Which agent run wrote the event at `index` of the output.
fn writer<'a>(starts: &[(&'a str, usize)], index: usize) -> &'a str {
    starts
        .iter()
        .rev()
        .find(|(_, start)| *start <= index)
        .map_or("?", |(name, _)| name)
}

/// An event's identity for comparing runs: its line, kind and action.
fn key(e: &Value) -> String {
    format!(
        "{} {} | {}",
        e.pointer("/event/kind")
            .and_then(Value::as_str)
            .unwrap_or("-"),
        action(e).unwrap_or("-"),
        message(e).unwrap_or("-")
    )
}

/// The events `authtrail parse` finds in `files`, by key, with their counts.
fn parse_reference(bin: &Path, files: &[&Path]) -> HashMap<String, usize> {
    let out = run_ok(Command::new(bin).arg("parse").args(files));
    let mut counts = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let e: Value =
            serde_json::from_str(line).unwrap_or_else(|err| panic!("parse output {line}: {err}"));
        *counts.entry(key(&e)).or_insert(0) += 1;
    }
    assert!(!counts.is_empty(), "authtrail parse found no events");
    counts
}

/// Reference events missing from `events`.
fn missing(reference: &HashMap<String, usize>, events: &[Value]) -> Vec<String> {
    let mut have: HashMap<String, usize> = HashMap::new();
    for e in events {
        *have.entry(key(e)).or_insert(0) += 1;
    }
    let mut lost: Vec<String> = reference
        .iter()
        .filter(|(k, n)| have.get(*k).copied().unwrap_or(0) < **n)
        .map(|(k, _)| k.clone())
        .collect();
    lost.sort();
    lost
}

/// Lines with more than one event of the same key, other than the login lines in `skip`
/// (checked on their own).
fn duplicates(events: &[Value], skip: &[&str]) -> Vec<String> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for e in events {
        if message(e).is_some_and(|m| skip.contains(&m)) {
            continue;
        }
        *counts.entry(key(e)).or_insert(0) += 1;
    }
    let mut dups: Vec<String> = counts
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(k, n)| format!("{n}x {k}"))
        .collect();
    dups.sort();
    dups
}

/// Each event's `log.file.path` + `log.offset` points at its line. A line read from `auth.log`
/// before the rotation now lives at the same offset in `auth.log.1`.
fn check_offsets(events: &[Value], log: &Path, rotated: &Path, failures: &mut Vec<String>) {
    let current = fs::read(log).unwrap_or_default();
    let old = fs::read(rotated).unwrap_or_default();
    let at = |bytes: &[u8], offset: usize| -> Option<String> {
        let rest = bytes.get(offset..)?;
        let end = rest.iter().position(|&b| b == b'\n')?;
        Some(String::from_utf8_lossy(&rest[..end]).into_owned())
    };
    let mut bad = String::new();
    let mut n_bad = 0;
    for e in events {
        let Some(msg) = message(e) else { continue };
        let path = e.pointer("/log/file/path").and_then(Value::as_str);
        let offset = e
            .pointer("/log/offset")
            .and_then(Value::as_u64)
            .and_then(|o| usize::try_from(o).ok());
        let candidates: Vec<&[u8]> = match path.map(PathBuf::from) {
            Some(p) if p == log => vec![&current, &old],
            Some(p) if p == rotated => vec![&old],
            _ => vec![],
        };
        let ok = offset.is_some_and(|o| {
            candidates
                .iter()
                .any(|bytes| at(bytes, o).as_deref() == Some(msg))
        });
        if !ok {
            n_bad += 1;
            if n_bad <= 10 {
                let _ = write!(bad, "\n  path {path:?} offset {offset:?}: {msg}");
            }
        }
    }
    if n_bad > 0 {
        failures.push(format!(
            "{n_bad} events whose log.file.path + log.offset do not point at their line:{bad}"
        ));
    }
}

fn check_still_running(agent: &mut Agent, name: &str, failures: &mut Vec<String>) {
    if let Some(status) = agent.try_status() {
        failures.push(format!(
            "{name} (pid {}) exited early: {status}",
            agent.pid()
        ));
    }
}

/// The last `n` lines of a file.
fn tail(path: &Path, n: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// At most 20 items, one per indented line.
fn listing(items: &[String]) -> String {
    let mut text = items
        .iter()
        .take(20)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join("\n  ");
    if items.len() > 20 {
        let _ = write!(text, "\n  ... and {} more", items.len() - 20);
    }
    text
}
