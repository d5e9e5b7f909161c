//! `authtrail run` as a process: SIGHUP reloads sources without losing or repeating a line,
//! SIGTERM stops cleanly, and memory stays bounded whatever the input (a 100 MB line, thousands of
//! files matching a glob).

#![allow(
    clippy::unwrap_used,
    reason = "a test that cannot set itself up should fail loudly"
)]

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_authtrail");

struct Agent {
    child: Child,
}

impl Agent {
    fn start(config: &Path) -> Agent {
        let child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(fs::File::create(config.with_extension("err")).unwrap())
            .spawn()
            .unwrap();
        Agent { child }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} failed");
    }

    fn stop(mut self) -> std::process::ExitStatus {
        self.signal("-TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "agent did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn peak_rss_kib(&self) -> u64 {
        let status = fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn write_config(path: &Path, body: &str) {
    fs::write(path, body).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
}

fn config(dir: &Path, sources: &[(&str, &Path)]) -> String {
    let mut text = format!(
        "state-dir = {:?}\ntimezone = \"UTC\"\n[detect]\nenabled = false\n[sink]\ntype = \"file\"\npath = {:?}\n",
        dir.join("state").display().to_string(),
        dir.join("events.ndjson").display().to_string()
    );
    for (name, path) in sources {
        text.push_str(&format!(
            "[[source]]\ntype = \"file\"\nname = {name:?}\npaths = [{:?}]\nread-from = \"beginning\"\npoll-interval = \"100ms\"\n",
            path.display().to_string()
        ));
    }
    text
}

/// Appends the lines `line(i)` for `i` in `range`.
fn append_lines(path: &Path, range: std::ops::Range<usize>, line: impl Fn(usize) -> String) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for i in range {
        writeln!(f, "{}", line(i)).unwrap();
    }
}

/// Appends `n` unique sshd lines tagged `tag`.
fn append(path: &Path, tag: &str, from: usize, n: usize) {
    append_lines(path, from..from + n, |i| {
        format!(
            "2026-11-28T06:55:33.{i:06}+00:00 web1 sshd[{}]: Accepted password for {tag} from 192.0.2.1 port {} ssh2",
            1000 + i,
            1024 + i
        )
    });
}

fn events(dir: &Path) -> Vec<serde_json::Value> {
    match fs::read_to_string(dir.join("events.ndjson")) {
        Ok(text) => text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn wait_for(dir: &Path, n: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ev = events(dir);
        if ev.len() >= n {
            return ev;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {n} events arrived",
            ev.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn messages(ev: &[serde_json::Value]) -> Vec<String> {
    ev.iter()
        .map(|e| e["message"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn sighup_adds_and_removes_sources_without_losing_or_repeating_lines() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.log"), dir.path().join("b.log"));
    let cfg = dir.path().join("agent.toml");
    append(&a, "alice", 0, 100);
    append(&b, "bob", 0, 50);
    write_config(&cfg, &config(dir.path(), &[("a", &a)]));
    let agent = Agent::start(&cfg);
    wait_for(dir.path(), 100);

    // Add source b: its existing lines are read, a keeps its position.
    write_config(&cfg, &config(dir.path(), &[("a", &a), ("b", &b)]));
    agent.signal("-HUP");
    append(&a, "alice", 100, 10);
    wait_for(dir.path(), 160);

    // Remove b: its new lines are not read; a goes on. The sink's path changes too, which a
    // reload does not apply: events go on to the old file, and the agent says so.
    write_config(
        &cfg,
        &config(dir.path(), &[("a", &a)]).replace("events.ndjson", "other.ndjson"),
    );
    agent.signal("-HUP");
    std::thread::sleep(Duration::from_millis(1500));
    append(&b, "bob", 50, 5);
    append(&a, "alice", 110, 5);
    let ev = wait_for(dir.path(), 165);

    // A broken config on reload is refused; the agent keeps running with the old one.
    fs::write(&cfg, "this is = not [valid toml").unwrap();
    agent.signal("-HUP");
    append(&a, "alice", 115, 1);
    let ev2 = wait_for(dir.path(), 166);
    assert!(ev2.len() >= ev.len());

    let status = agent.stop();
    assert!(status.success(), "SIGTERM exit: {status}");
    let log = fs::read_to_string(cfg.with_extension("err")).unwrap();
    assert!(
        log.contains("[sink] changed; a reload applies [[source]] and [detect] only"),
        "{log}"
    );
    assert!(!dir.path().join("other.ndjson").exists());
    let all = messages(&events(dir.path()));
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "a line was delivered twice");
    assert_eq!(all.len(), 166, "lines lost or extra");
    assert_eq!(all.iter().filter(|m| m.contains("for bob")).count(), 50);
}

#[test]
fn a_source_added_later_honours_read_from_end() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.log"), dir.path().join("b.log"));
    let cfg = dir.path().join("agent.toml");
    append(&a, "alice", 0, 10);
    append(&b, "bob", 0, 40);
    write_config(&cfg, &config(dir.path(), &[("a", &a)]));
    let agent = Agent::start(&cfg);
    wait_for(dir.path(), 10);

    // b is new to this state directory: `read-from = "end"` applies to it as on a first start,
    // so its 40 old lines are skipped and only what is written after it starts is read.
    let with_b = config(dir.path(), &[("a", &a), ("b", &b)]);
    let (head, tail) = with_b.split_at(with_b.find("name = \"b\"").unwrap());
    let tail = tail.replacen("read-from = \"beginning\"", "read-from = \"end\"", 1);
    write_config(&cfg, &format!("{head}{tail}"));
    agent.signal("-HUP");
    std::thread::sleep(Duration::from_millis(1500));
    append(&b, "bob", 40, 5);
    append(&a, "alice", 10, 1);
    wait_for(dir.path(), 16);
    std::thread::sleep(Duration::from_millis(500));
    assert!(agent.stop().success());

    // Restarted, b is no longer new: a file it finds without a position is read whole.
    let c = dir.path().join("b.log.1");
    fs::rename(&b, &c).unwrap();
    append(&b, "bob", 45, 3);
    let agent = Agent::start(&cfg);
    wait_for(dir.path(), 19);
    std::thread::sleep(Duration::from_millis(500));
    assert!(agent.stop().success());

    let all = messages(&events(dir.path()));
    let bob: Vec<&String> = all.iter().filter(|m| m.contains("for bob")).collect();
    assert_eq!(bob.len(), 8, "{bob:#?}");
    assert_eq!(all.len(), 19);
}

#[test]
fn restart_after_sigterm_repeats_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.log");
    let cfg = dir.path().join("agent.toml");
    append(&a, "carol", 0, 20);
    write_config(&cfg, &config(dir.path(), &[("a", &a)]));
    let agent = Agent::start(&cfg);
    wait_for(dir.path(), 20);
    assert!(agent.stop().success());
    append(&a, "carol", 20, 5);
    let agent = Agent::start(&cfg);
    let ev = wait_for(dir.path(), 25);
    std::thread::sleep(Duration::from_millis(800));
    assert!(agent.stop().success());
    let all = messages(&events(dir.path()));
    assert_eq!(all.len(), 25, "{ev:?}");
}

/// The bound: the channel holds at most 16 chunks of at most 256 KiB, each followed file holds a
/// read buffer and one line of at most `max-line-bytes`; nothing grows with the input. The bound
/// checked here is loose (a debug build), but a 100 MB line or 3,000 open files would break it.
#[test]
fn memory_is_bounded_by_a_huge_line_and_thousands_of_files() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    fs::create_dir(&logs).unwrap();
    // One 100 MB line between two ordinary ones.
    let big = logs.join("big.log");
    append(&big, "dave", 0, 1);
    {
        let mut f = OpenOptions::new().append(true).open(&big).unwrap();
        let chunk = vec![b'x'; 1 << 20];
        f.write_all(b"2026-11-28T06:55:34+00:00 web1 sshd[7]: Invalid user ")
            .unwrap();
        for _ in 0..100 {
            f.write_all(&chunk).unwrap();
        }
        f.write_all(b" from 192.0.2.9 port 4\n").unwrap();
    }
    append(&big, "dave", 1, 1);
    // 3,000 files matching the glob (max-files 256 follows the first ones).
    for i in 0..3000 {
        append(&logs.join(format!("many-{i:04}.log")), "erin", i, 1);
    }
    let cfg = dir.path().join("agent.toml");
    let glob = logs.join("*.log");
    write_config(&cfg, &config(dir.path(), &[("all", &glob)]));
    let agent = Agent::start(&cfg);
    // The lines either side of the huge one arrive; the huge one is cut at 64 KiB (losing its
    // source, so no event) and counted.
    let deadline = Instant::now() + Duration::from_secs(30);
    while messages(&events(dir.path()))
        .iter()
        .filter(|m| m.contains("for dave"))
        .count()
        < 2
    {
        assert!(
            Instant::now() < deadline,
            "the lines around the huge one did not arrive"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The status file is rewritten within a second of a change.
    let status = loop {
        let out = Command::new(BIN)
            .args(["status", "--json", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        let status: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        if status["sources"][0]["counters"]["truncated"].as_u64() >= Some(1) {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "no truncated line counted: {status}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let followed = status["sources"][0]["streams"].as_array().unwrap().len();
    assert!(
        followed <= 256,
        "{followed} files followed, max-files is 256"
    );
    std::thread::sleep(Duration::from_secs(2));
    let peak = agent.peak_rss_kib();
    assert!(agent.stop().success());
    assert!(peak < 64 * 1024, "peak RSS {peak} KiB");
}

/// Under systemd (`Type=notify`) the agent says `READY=1` once its sources run, and
/// `STOPPING=1` on SIGTERM.
#[test]
fn tells_systemd_it_is_ready_and_stopping() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let a = dir.path().join("a.log");
    append(&a, "frank", 0, 1);
    let cfg = dir.path().join("agent.toml");
    write_config(&cfg, &config(dir.path(), &[("a", &a)]));
    let child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&cfg)
        .env("NOTIFY_SOCKET", &socket_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let agent = Agent { child };
    let mut buf = [0u8; 512];
    let n = socket.recv(&mut buf).unwrap();
    let first = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(first.starts_with("READY=1\nSTATUS="), "{first}");
    let status = agent.stop();
    assert!(status.success());
    let n = socket.recv(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("STOPPING=1"));
}

/// Appends `n` failed sshd logins for root from `from`, a second apart from second `at`.
fn append_failures(path: &Path, from: &str, at: usize, n: usize) {
    append_lines(path, at..at + n, |i| {
        format!(
            "2026-11-28T07:00:{i:02}.000000+00:00 web1 sshd[{}]: Failed password for root from {from} port {} ssh2",
            2000 + i,
            40000 + i
        )
    });
}

#[test]
fn a_brute_force_split_by_a_restart_is_still_seen() {
    // Ten failures in five minutes raise a brute-force alert (the default); six come before a
    // restart, four after. Then the same again with the memory file removed, and with one that
    // claims to be ahead of the checkpoints (from another state directory): nothing.
    for mode in ["kept", "removed", "ahead"] {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.log");
        let cfg = dir.path().join("agent.toml");
        let text = config(dir.path(), &[("a", &a)]).replace("[detect]\nenabled = false\n", "");
        write_config(&cfg, &text);
        append_failures(&a, "203.0.113.50", 0, 6);
        let agent = Agent::start(&cfg);
        wait_for(dir.path(), 6);
        assert!(agent.stop().success());
        let memory = dir.path().join("state").join(agent::memory::FILE_NAME);
        assert!(memory.exists(), "a clean stop saves the detector memory");
        let state = dir.path().join("state");
        match mode {
            "removed" => fs::remove_file(&memory).unwrap(),
            "ahead" => {
                let saved = agent::memory::load(&state).unwrap().unwrap();
                agent::memory::save(&state, saved.sequence + 1, &saved.memory).unwrap();
            }
            _ => {}
        }
        append_failures(&a, "203.0.113.50", 6, 4);
        let agent = Agent::start(&cfg);
        wait_for(dir.path(), 10);
        std::thread::sleep(Duration::from_millis(500));
        assert!(agent.stop().success());
        let log = fs::read_to_string(cfg.with_extension("err")).unwrap();
        let alerts: Vec<serde_json::Value> = events(dir.path())
            .into_iter()
            .filter(|e| e["event"]["kind"] == "alert")
            .collect();
        if mode == "kept" {
            assert!(log.contains("detector memory restored"), "{log}");
            assert_eq!(alerts.len(), 1, "{alerts:?}");
            assert_eq!(alerts[0]["event"]["action"], "brute_force");
            assert_eq!(alerts[0]["authtrail"]["count"], 10);
        } else {
            assert!(alerts.is_empty(), "{mode}: {alerts:?}");
            assert_eq!(
                mode == "ahead",
                log.contains("ahead of the checkpoints"),
                "{log}"
            );
        }
    }
}

#[test]
fn a_reload_applies_detect_and_keeps_what_was_counted() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.log");
    let cfg = dir.path().join("agent.toml");
    let base = config(dir.path(), &[("a", &a)]);
    let with_threshold = |n: u32| {
        base.replace(
            "[detect]\nenabled = false\n",
            &format!("[detect]\nbrute-force-threshold = {n}\n"),
        )
    };
    write_config(&cfg, &with_threshold(20));
    append_failures(&a, "203.0.113.60", 0, 12);
    let agent = Agent::start(&cfg);
    wait_for(dir.path(), 12);
    // Twelve failures, under a threshold of 20: no alert. Lowered to 10 by a reload, the next
    // failure from that address makes thirteen in the window: an alert that counts them all.
    write_config(&cfg, &with_threshold(10));
    agent.signal("-HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    let err = cfg.with_extension("err");
    while !fs::read_to_string(&err)
        .unwrap()
        .contains("configuration reloaded")
    {
        assert!(Instant::now() < deadline, "no reload");
        std::thread::sleep(Duration::from_millis(50));
    }
    append_failures(&a, "203.0.113.60", 12, 1);
    let ev = wait_for(dir.path(), 14);
    assert!(agent.stop().success());
    let log = fs::read_to_string(&err).unwrap();
    assert!(log.contains("detections reconfigured"), "{log}");
    assert!(!log.contains("[detect] changed"), "{log}");
    let alerts: Vec<&serde_json::Value> = ev
        .iter()
        .filter(|e| e["event"]["kind"] == "alert")
        .collect();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["event"]["action"], "brute_force");
    assert_eq!(alerts[0]["authtrail"]["count"], 13);
}

#[test]
fn status_of_a_killed_agent_says_it_is_not_running_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    append(&log, "live", 0, 3);
    let cfg = dir.path().join("agent.toml");
    write_config(&cfg, &config(dir.path(), &[("auth", &log)]));
    let status = || {
        Command::new(BIN)
            .args(["status", "--config"])
            .arg(&cfg)
            .output()
            .unwrap()
    };
    let mut agent = Agent::start(&cfg);
    wait_for(dir.path(), 3);
    let deadline = Instant::now() + Duration::from_secs(10);
    let live = loop {
        let out = status();
        if out.status.success() {
            break out;
        }
        assert!(Instant::now() < deadline, "status never succeeded: {out:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = String::from_utf8_lossy(&live.stdout);
    assert!(
        !text.contains("NOT RUNNING") && !text.contains("stale"),
        "{text}"
    );

    agent.child.kill().unwrap();
    agent.child.wait().unwrap();
    let dead = status();
    let text = String::from_utf8_lossy(&dead.stdout);
    assert_eq!(dead.status.code(), Some(1), "{text}");
    assert!(text.starts_with("NOT RUNNING: pid "), "{text}");
    assert!(text.contains("ago, stale)"), "{text}");
    let json = Command::new(BIN)
        .args(["status", "--json", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(json.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["running"], false);
    assert_eq!(v["stale"], true);
}

/// The checkpoint file of a busy server gained an entry for every file ever read (each rotation
/// is a new file) and never lost one. Entries of streams no source has live and not seen for the
/// retention period (7 days) are forgotten; the live file's entry is kept however old, so
/// nothing is read twice.
#[test]
fn checkpoints_of_gone_files_are_forgotten_and_live_ones_kept() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.log");
    let cfg = dir.path().join("agent.toml");
    append(&a, "dave", 0, 20);
    write_config(&cfg, &config(dir.path(), &[("a", &a)]));
    let agent = Agent::start(&cfg);
    wait_for(dir.path(), 20);
    assert!(agent.stop().success());

    // As if the agent had been down a month, and had read files that are gone since.
    let file = dir.path().join("state/checkpoints.json");
    let mut doc: serde_json::Value = serde_json::from_slice(&fs::read(&file).unwrap()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (month, day) = (now - 30 * 86_400, now - 86_400);
    let streams = doc["streams"].as_array_mut().unwrap();
    assert_eq!(streams.len(), 1, "{streams:?}");
    streams[0]["updated"] = month.into();
    let live = streams[0].clone();
    for (i, updated) in [month, month, month, day].into_iter().enumerate() {
        let mut gone = live.clone();
        gone["key"]["fingerprint"]["ino"] = (u64::from(u32::MAX) + i as u64).into();
        gone["path"] = format!("/var/log/gone.log.{i}").into();
        gone["updated"] = updated.into();
        streams.push(gone);
    }
    streams.push(serde_json::json!({
        "key": {"kind": "journal", "source": "removed-from-the-config"},
        "position": {"cursor": "s=1;i=2"},
        "updated": month,
    }));
    fs::write(&file, serde_json::to_vec(&doc).unwrap()).unwrap();

    let agent = Agent::start(&cfg);
    append(&a, "dave", 20, 5);
    wait_for(dir.path(), 25);
    std::thread::sleep(Duration::from_millis(500));
    assert!(agent.stop().success());

    let all = messages(&events(dir.path()));
    assert_eq!(all.len(), 25, "the live file was read again or lost lines");
    let doc: serde_json::Value = serde_json::from_slice(&fs::read(&file).unwrap()).unwrap();
    let paths: Vec<&str> = doc["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["path"].as_str().unwrap_or("(journal)"))
        .collect();
    assert_eq!(
        paths,
        [a.to_str().unwrap(), "/var/log/gone.log.3"],
        "only the live file and the gone file seen a day ago are kept"
    );
    let updated = doc["streams"][0]["updated"].as_u64().unwrap();
    assert!(updated + 3600 >= now, "the live stream was not touched");
    let log = fs::read_to_string(cfg.with_extension("err")).unwrap();
    assert!(
        log.contains("forgot the checkpoints of 4 stream(s)"),
        "{log}"
    );
}

/// The `lost-bytes` of source `name` in the status file the agent wrote.
fn lost_bytes(dir: &Path, name: &str) -> u64 {
    let text = fs::read_to_string(dir.join("state/status.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap()["lost-bytes"]
        .as_u64()
        .unwrap()
}

/// Logs truncated or deleted while the agent was stopped, before it had read them to the end:
/// the bytes it had seen but not read are lost, which it says (a warning with the count, and
/// `lost-bytes` in the status) instead of carrying on silently, and only once: a restart after
/// that counts nothing again.
#[test]
fn logs_truncated_or_deleted_while_stopped_count_the_unread_bytes_lost_once() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.log");
    let cfg = dir.path().join("agent.toml");
    append(&a, "dave", 0, 20);
    write_config(
        &cfg,
        &config(dir.path(), &[("logs", &dir.path().join("*.log"))]),
    );
    let agent = Agent::start(&cfg);
    wait_for(dir.path(), 20);
    std::thread::sleep(Duration::from_millis(300));
    assert!(agent.stop().success());

    // The checkpoint keeps the file's size as last seen.
    let file = dir.path().join("state/checkpoints.json");
    let mut doc: serde_json::Value = serde_json::from_slice(&fs::read(&file).unwrap()).unwrap();
    let streams = doc["streams"].as_array_mut().unwrap();
    assert_eq!(streams.len(), 1, "{streams:?}");
    let size = fs::metadata(&a).unwrap().len();
    assert_eq!(streams[0]["size"].as_u64(), Some(size), "{streams:?}");

    // As if the agent had stopped while it was behind: the last 5 lines of a.log seen, not
    // read; and a file it had read 100 of 350 bytes of, deleted since.
    let text = fs::read_to_string(&a).unwrap();
    let behind: u64 = text.lines().skip(15).map(|l| l.len() as u64 + 1).sum();
    streams[0]["position"]["offset"] = (size - behind).into();
    let mut gone = streams[0].clone();
    gone["key"]["fingerprint"]["ino"] = u64::from(u32::MAX).into();
    gone["path"] = dir.path().join("gone.log").display().to_string().into();
    gone["position"]["offset"] = 100.into();
    gone["size"] = 350.into();
    streams.push(gone);
    fs::write(&file, serde_json::to_vec(&doc).unwrap()).unwrap();
    // While stopped, a.log is truncated and written anew.
    fs::write(&a, "").unwrap();
    append(&a, "erin", 100, 3);

    let agent = Agent::start(&cfg);
    wait_for(dir.path(), 23);
    std::thread::sleep(Duration::from_millis(300));
    assert!(agent.stop().success());
    let log = fs::read_to_string(cfg.with_extension("err")).unwrap();
    assert_eq!(lost_bytes(dir.path(), "logs"), behind + 250, "{log}");
    for (path, n) in [(&a, behind), (&dir.path().join("gone.log"), 250)] {
        let said = format!(
            "{}: {n} byte(s) seen but not yet read were lost",
            path.display()
        );
        assert!(
            log.lines()
                .any(|l| l.contains("warning") && l.contains(&said)),
            "{said:?} not in {log}"
        );
    }

    // A restart counts nothing twice, and reads nothing twice.
    let agent = Agent::start(&cfg);
    std::thread::sleep(Duration::from_millis(800));
    assert!(agent.stop().success());
    let log = fs::read_to_string(cfg.with_extension("err")).unwrap();
    assert_eq!(lost_bytes(dir.path(), "logs"), 0, "{log}");
    assert!(!log.contains("were lost"), "{log}");
    assert_eq!(events(dir.path()).len(), 23);
}

/// A config in `dir` whose agent reads a three-line log (users `tag0`...) and ships to a
/// loopback port nothing listens on (every attempt is refused at once), retrying after
/// `initial` up to `max`; the config's path and the port.
fn shipping_to_a_closed_port(
    dir: &std::path::Path,
    tag: &str,
    initial: &str,
    max: &str,
) -> (std::path::PathBuf, u16) {
    let log = dir.join("auth.log");
    append(&log, tag, 0, 3);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = dir.join("agent.toml");
    write_config(
        &cfg,
        &format!(
            "state-dir = {:?}\n[detect]\nenabled = false\n[[source]]\ntype = \"file\"\n\
             paths = [{:?}]\nread-from = \"beginning\"\n[sink]\ntype = \"collector\"\n\
             url = \"https://127.0.0.1:{port}\"\n[sink.retry]\ninitial = \"{initial}\"\nmax = \"{max}\"\n",
            dir.join("state").display().to_string(),
            log.display().to_string(),
        ),
    );
    (cfg, port)
}

/// While the collector is down, `authtrail status` showed `0 failed attempt(s)` and no last
/// error for up to a minute (the file was rewritten only on input, a commit, or every 60 s),
/// while the agent's log already held one refused connection after another.
#[test]
fn status_shows_failed_sends_while_the_collector_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, port) = shipping_to_a_closed_port(dir.path(), "down", "50ms", "100ms");
    let _agent = Agent::start(&cfg);
    let status = || -> serde_json::Value {
        let out = Command::new(BIN)
            .args(["status", "--json", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or_default()
    };
    let failures = |v: &serde_json::Value| v["shipping"]["failures"].as_u64().unwrap_or(0);
    // The first status written after the commit shows the first failures...
    let deadline = Instant::now() + Duration::from_secs(10);
    let first = loop {
        let v = status();
        if failures(&v) > 0 || Instant::now() > deadline {
            break v;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(failures(&first) > 0, "{first:#}");
    let error = first["shipping"]["last-error"].as_str().unwrap_or_default();
    assert!(error.contains(&format!("127.0.0.1:{port}")), "{first:#}");
    // ... and, with no new input, the ones that follow (about ten a second) within seconds.
    std::thread::sleep(Duration::from_millis(2500));
    let later = status();
    assert!(
        failures(&later) > failures(&first),
        "still {} failed attempts after 2.5 s: {later:#}",
        failures(&first)
    );
}

/// While sends fail and the agent waits to try again, the status says until when: with a
/// one-hour retry ceiling the wait is long, and nothing else would tell a waiting operator
/// that the agent is not stuck.
#[test]
fn status_says_when_the_next_attempt_is_due() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, _) = shipping_to_a_closed_port(dir.path(), "wait", "1h", "1h");
    let _agent = Agent::start(&cfg);
    let status = |json: bool| {
        let mut cmd = Command::new(BIN);
        cmd.arg("status");
        if json {
            cmd.arg("--json");
        }
        let out = cmd.arg("--config").arg(&cfg).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let v = loop {
        let v: serde_json::Value = serde_json::from_str(&status(true)).unwrap_or_default();
        if v["shipping"]["next-attempt"].is_string() || Instant::now() > deadline {
            break v;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let at: jiff::Timestamp = v["shipping"]["next-attempt"]
        .as_str()
        .unwrap_or_else(|| panic!("no next attempt while sends fail: {v:#}"))
        .parse()
        .unwrap();
    let updated: jiff::Timestamp = v["updated"].as_str().unwrap().parse().unwrap();
    let ahead = at.as_second() - updated.as_second();
    assert!((0..=3_601).contains(&ahead), "{ahead} s ahead: {v:#}");
    let text = status(false);
    assert!(
        text.contains(&format!("; next attempt at {}", at)),
        "{text}"
    );
}
