//! Fault tests of the whole chain with the real binaries: `authtrail run` shipping to
//! `authtrail-collector serve` over mTLS on loopback. Whatever is killed, and whenever, the
//! store ends up holding every event exactly once.

#![allow(
    clippy::unwrap_used,
    reason = "a test that cannot set itself up should fail loudly"
)]

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{Scratch, authtrail_bin, collector_bin, free_port, run_ok, write_private};

/// A child process that is killed when the test ends, also when it fails.
pub(crate) struct Proc(pub(crate) Child);

impl Drop for Proc {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Issues a certificate for a new agent from the CA in `pki` and writes its id into the agent's
/// `state` directory (created); the id.
pub(crate) fn issue_agent(pki: &Path, state: &Path) -> String {
    let out = run_ok(
        Command::new(collector_bin())
            .args(["certs", "issue-agent", "--dir"])
            .arg(pki),
    );
    let agent_id = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("agent id: ").map(|s| s.trim().to_owned()))
        .expect("certs issue-agent prints the agent id");
    std::fs::create_dir_all(state).unwrap();
    std::fs::write(state.join("agent-id"), format!("{agent_id}\n")).unwrap();
    agent_id
}

/// An agent config: `log` from its beginning, shipped to `https://127.0.0.1:port` with the
/// client certificate `issue_agent` made for `agent_id`, quick retries.
pub(crate) fn agent_toml(
    state: &Path,
    log: &Path,
    port: u16,
    pki: &Path,
    agent_id: &str,
    batch_max_events: u32,
) -> String {
    let p = |name: &str| pki.join(name).display().to_string();
    format!(
        "state-dir = {:?}\ntimezone = \"UTC\"\n[[source]]\ntype = \"file\"\nname = \"auth\"\npaths = [{:?}]\nread-from = \"beginning\"\n[sink]\ntype = \"collector\"\nurl = \"https://127.0.0.1:{port}\"\nbatch-max-events = {batch_max_events}\n[sink.tls]\nca-file = {:?}\nserver-name = \"localhost\"\ncert-file = {:?}\nkey-file = {:?}\n[sink.retry]\ninitial = \"100ms\"\nmax = \"500ms\"\n",
        state.display().to_string(),
        log.display().to_string(),
        p("ca.pem"),
        p(&format!("agent-{agent_id}.pem")),
        p(&format!("agent-{agent_id}-key.pem")),
    )
}

/// A collector config: mTLS on `127.0.0.1:port` with the certificates `certs init` made in
/// `pki`, data in `dir/data`.
pub(crate) fn collector_toml(dir: &Path, port: u16, pki: &Path) -> String {
    let p = |name: &str| pki.join(name).display().to_string();
    format!(
        "listen = \"127.0.0.1:{port}\"\ndata-dir = {:?}\n[tls]\ncert-file = {:?}\nkey-file = {:?}\nclient-ca-file = {:?}\n[auth]\nrequire = \"mtls\"\n",
        dir.join("data").display().to_string(),
        p("server.pem"),
        p("server-key.pem"),
        p("ca.pem"),
    )
}

/// `authtrail run --config config`, its log appended to `agent.log` beside the config (shown
/// when a wait for it fails).
pub(crate) fn run_agent(config: &Path) -> Proc {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(config.with_file_name("agent.log"))
        .unwrap();
    Proc(
        Command::new(authtrail_bin())
            .args(["run", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

/// The last `n` lines of the agents' log beside `config`.
fn agent_log_tail(config: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(config.with_file_name("agent.log")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Starts `cmd` (its stderr as the caller set it); the process and its first line on stdout,
/// the readiness line.
pub(crate) fn start_until_ready(cmd: &mut Command) -> (Proc, String) {
    let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (Proc(child), line)
}

/// `authtrail-collector serve --config config` with `env`, once it says it listens on `port`.
pub(crate) fn serve_collector(config: &Path, port: u16, env: &[(&str, &str)]) -> Proc {
    let (child, line) = start_until_ready(
        Command::new(collector_bin())
            .envs(env.iter().copied())
            .args(["serve", "--config"])
            .arg(config)
            .stderr(Stdio::null()),
    );
    assert_eq!(line.trim(), format!("listening on 127.0.0.1:{port}"));
    child
}

/// One collector, its PKI and data dir, and an agent configuration shipping to it.
pub(crate) struct Chain {
    dir: PathBuf,
    port: u16,
    pub(crate) agent_cfg: PathBuf,
    pub(crate) collector_cfg: PathBuf,
    log: PathBuf,
}

impl Chain {
    /// Sets up certificates, configs and a generated log of `lines` lines.
    fn new(scratch: &Scratch, lines: u64) -> Chain {
        let log = scratch.path().join("auth.log");
        let mut file = std::io::BufWriter::new(std::fs::File::create(&log).unwrap());
        loggen::generate(
            &mut file,
            &loggen::Options {
                lines,
                seed: 3,
                format: loggen::Format::Rfc3339,
                ..loggen::Options::default()
            },
        )
        .unwrap();
        drop(file);
        Chain::for_log(scratch, log)
    }

    /// Sets up certificates and configs: the agent reads `log` (from its beginning) and ships
    /// to the collector; both keep their files in `scratch`.
    pub(crate) fn for_log(scratch: &Scratch, log: PathBuf) -> Chain {
        let dir = scratch.path().to_path_buf();
        let pki = dir.join("pki");
        run_ok(
            Command::new(collector_bin())
                .args(["certs", "init", "--dir"])
                .arg(&pki),
        );
        let state = dir.join("state");
        let agent_id = issue_agent(&pki, &state);

        let port = free_port();
        let collector_cfg = dir.join("collector.toml");
        write_private(&collector_cfg, &collector_toml(&dir, port, &pki));
        let agent_cfg = dir.join("agent.toml");
        write_private(
            &agent_cfg,
            &agent_toml(&state, &log, port, &pki, &agent_id, 500),
        );
        Chain {
            dir,
            port,
            agent_cfg,
            collector_cfg,
            log,
        }
    }

    pub(crate) fn start_collector(&self) -> Proc {
        serve_collector(&self.collector_cfg, self.port, &[])
    }

    pub(crate) fn start_agent(&self) -> Proc {
        run_agent(&self.agent_cfg)
    }

    /// The messages `authtrail parse` finds in the log: what must be stored, once each.
    fn expected(&self) -> HashMap<String, usize> {
        parsed_messages(&self.log)
    }

    /// The stored login events' messages, with how often each is stored (detection alerts,
    /// which carry a message of their own, are counted by [`Chain::stored_alerts`]).
    fn stored(&self) -> HashMap<String, usize> {
        let out = run_ok(
            Command::new(collector_bin())
                .args(["query", "--config"])
                .arg(&self.collector_cfg)
                .args(["--since", "100000d", "--limit", "100000000", "--json"]),
        );
        let mut got = HashMap::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            if v["event"]["kind"] == "alert" {
                continue;
            }
            if let Some(m) = v["message"].as_str() {
                *got.entry(m.to_owned()).or_insert(0) += 1;
            }
        }
        got
    }

    /// How many detection alerts are stored.
    fn stored_alerts(&self) -> usize {
        let out = run_ok(
            Command::new(collector_bin())
                .args(["query", "--config"])
                .arg(&self.collector_cfg)
                .args(["--since", "100000d", "--limit", "100000000", "--json"]),
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["event"]["kind"] == "alert"
            })
            .count()
    }

    /// Waits until `agent` has committed the whole log and the collector took all of it: the
    /// checkpoint file (which moves only after a commit) is at the log's end, and a status
    /// file the agent wrote with or after that checkpoint shows no backlog. (The status's read offset
    /// alone would not do: it counts lines still on their way through the pipeline, and a
    /// status left by an agent killed earlier can show it at the end.)
    fn wait_shipped(&self, agent: &Proc, timeout: Duration) {
        let len = std::fs::metadata(&self.log).unwrap().len();
        let state = self.dir.join("state");
        let (status, checkpoints) = (state.join("status.json"), state.join("checkpoints.json"));
        let modified = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        let deadline = Instant::now() + timeout;
        loop {
            let committed = std::fs::read_to_string(&checkpoints)
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .is_some_and(|v| v["streams"][0]["position"]["offset"].as_u64() == Some(len));
            // File times are kept at the kernel's tick (a few ms): the status the run loop writes
            // right after a commit's checkpoint can carry the same time.
            let after = matches!(
                (modified(&status), modified(&checkpoints)),
                (Some(s), Some(c)) if s >= c
            );
            let idle = std::fs::read_to_string(&status)
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .is_some_and(|v| {
                    v["pid"].as_u64() == Some(u64::from(agent.0.id()))
                        && v["shipping"]["backlog-batches"].as_u64() == Some(0)
                });
            // A memory buffer persists its positions once the collector acknowledged them, at
            // most a checkpoint interval later, also when the agent has nothing else to do
            // (it only sent again what a killed one had in flight).
            if committed && after && idle {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not shipped in {timeout:?}: {}\ncheckpoints: {}\nagent log:\n{}",
                std::fs::read_to_string(&status).unwrap_or_default(),
                std::fs::read_to_string(&checkpoints).unwrap_or_default(),
                agent_log_tail(&self.agent_cfg, 40)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Chain {
    /// Switches the agent to the memory buffer (`[sink.buffer] type = "memory"`), with
    /// checkpoints at most once a second.
    fn use_memory_buffer(&self) {
        let mut text = std::fs::read_to_string(&self.agent_cfg).unwrap();
        text.push_str("[sink.buffer]\ntype = \"memory\"\ncheckpoint-interval = \"1s\"\n");
        write_private(&self.agent_cfg, &text);
    }

    /// Waits until the agent's status shows the whole log read and nothing waiting in the
    /// spool (events may still wait in the pipeline's open batch).
    fn wait_read(&self, timeout: Duration) {
        let len = std::fs::metadata(&self.log).unwrap().len();
        let status = self.dir.join("state").join("status.json");
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(text) = std::fs::read_to_string(&status)
                && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
                && v["sources"][0]["streams"][0]["offset"].as_u64() == Some(len)
                && v["shipping"]["backlog-batches"].as_u64() == Some(0)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not read in {timeout:?}: {}",
                std::fs::read_to_string(&status).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

pub(crate) fn kill(child: &mut Proc, signal: &str) {
    let _ = Command::new("kill")
        .args([signal, &child.0.id().to_string()])
        .status();
    let _ = child.0.wait();
}

pub(crate) fn assert_exactly_once(want: &HashMap<String, usize>, got: &HashMap<String, usize>) {
    let missing: Vec<&String> = want.keys().filter(|m| !got.contains_key(*m)).collect();
    let repeated: Vec<(&String, &usize)> = got
        .iter()
        .filter(|(m, n)| **n > want.get(*m).copied().unwrap_or(0))
        .collect();
    assert!(
        missing.is_empty() && repeated.is_empty(),
        "{} of {} events missing (first: {:?}); {} stored more than once (first: {:?})",
        missing.len(),
        want.len(),
        missing.first(),
        repeated.len(),
        repeated.first()
    );
}

/// A small deterministic PRNG for the kill times (the test must be reproducible).
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Starts the agent and SIGKILLs it 50 times, each after 20 ms plus up to `spread_ms`, then
/// lets one run ship everything and stops it: (the events the log holds, those stored).
fn sigkill_50_times_then_ship(
    chain: &Chain,
    spread_ms: u64,
) -> (HashMap<String, usize>, HashMap<String, usize>) {
    let mut rng = 42u64;
    for _ in 0..50 {
        let mut agent = chain.start_agent();
        std::thread::sleep(Duration::from_millis(20 + next(&mut rng) % spread_ms));
        kill(&mut agent, "-KILL");
    }
    let mut agent = chain.start_agent();
    chain.wait_shipped(&agent, Duration::from_secs(120));
    kill(&mut agent, "-TERM");
    (chain.expected(), chain.stored())
}

#[test]
fn agent_sigkilled_50_times_during_a_backlog_stores_every_event_once() {
    let scratch = Scratch::new();
    let chain = Chain::new(&scratch, 30_000);
    let mut collector = chain.start_collector();
    let (want, got) = sigkill_50_times_then_ship(&chain, 300);
    // Detections ran (the default): their alerts rode in the same commits as the events.
    let alerts = chain.stored_alerts();
    kill(&mut collector, "-TERM");
    assert_exactly_once(&want, &got);
    assert!(alerts > 0, "the log raises alerts, none stored");
}

#[test]
fn collector_down_then_up_and_killed_mid_batch_loses_nothing() {
    collector_down_then_up_and_killed_mid_batch(false);
}

#[test]
fn memory_buffer_collector_down_then_up_and_killed_mid_batch_loses_nothing() {
    collector_down_then_up_and_killed_mid_batch(true);
}

/// The memory buffer keeps no batch across a crash, yet a SIGKILL at any point stores every
/// event once: before it sends a group of batches the agent notes them and where reading
/// resumes after them (in place, no fsync: the page cache outlives the process), and a restart
/// sends those same bytes under the same keys (the collector answers "duplicate" for what it
/// has) and reads on from there. The kills come later than in the disk spool's test (up to
/// 1.3 s), while batches are being shipped.
#[test]
fn memory_buffer_agent_sigkilled_50_times_during_a_backlog_stores_every_event_once() {
    let scratch = Scratch::new();
    let chain = Chain::new(&scratch, 30_000);
    chain.use_memory_buffer();
    let mut collector = chain.start_collector();
    let (want, got) = sigkill_50_times_then_ship(&chain, 1300);
    kill(&mut collector, "-TERM");
    // Nothing is written per batch: no spool file, no `next-seq`; only the in-flight note.
    let spool = chain.dir.join("state").join("spool");
    let mut files: Vec<_> = std::fs::read_dir(&spool)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("in-flight."))
        .collect();
    files.sort();
    assert_eq!(files, ["dead-letter"], "{}", spool.display());
    report_extra_copies(&want, &got);
    assert_exactly_once(&want, &got);
}

/// The last run of the 50-kill test, made certain: an agent killed with its whole log in
/// flight (the collector down, so nothing was ever acknowledged or persisted), restarted with
/// the collector up and no new line to read. It sends the in-flight batches again, the
/// collector acknowledges them, and then, with nothing else happening, the checkpoints must
/// reach the end of the log within a few checkpoint intervals (1 s here): an agent that idles
/// after its last acknowledgement must not leave them stale, or every restart re-sends.
#[test]
fn memory_buffer_agent_that_only_resends_its_in_flight_batches_persists_its_checkpoints() {
    let scratch = Scratch::new();
    let chain = Chain::new(&scratch, 3_000);
    chain.use_memory_buffer();
    let state = chain.dir.join("state");
    let len = std::fs::metadata(&chain.log).unwrap().len();
    let checkpoint_offset = || {
        std::fs::read_to_string(state.join("checkpoints.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["streams"][0]["position"]["offset"].as_u64())
    };
    // No collector: the agent reads the whole log, notes the batches it tries to send, and
    // is killed with all of them in flight.
    let mut agent = chain.start_agent();
    let note_bytes = || {
        ["in-flight.0", "in-flight.1"]
            .iter()
            .filter_map(|n| std::fs::metadata(state.join("spool").join(n)).ok())
            .map(|m| m.len())
            .max()
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let read = std::fs::read_to_string(state.join("status.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .is_some_and(|v| {
                v["sources"][0]["streams"][0]["offset"].as_u64() == Some(len)
                    && v["shipping"]["backlog-batches"].as_u64() > Some(0)
            });
        // Whole batches of compressed events are noted: far more than a note's header.
        if read && note_bytes() > 10_000 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the log not read and noted in flight in 60 s: note {} bytes\n{}",
            note_bytes(),
            agent_log_tail(&chain.agent_cfg, 20)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    kill(&mut agent, "-KILL");
    assert_eq!(checkpoint_offset(), None, "nothing was acknowledged yet");

    let mut collector = chain.start_collector();
    let agent = chain.start_agent();
    let want = chain.expected();
    let deadline = Instant::now() + Duration::from_secs(60);
    while chain.stored().values().sum::<usize>() < want.values().sum::<usize>() {
        assert!(
            Instant::now() < deadline,
            "the in-flight batches not stored again in 60 s\n{}",
            agent_log_tail(&chain.agent_cfg, 20)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Everything is acknowledged; nothing else happens. A few checkpoint intervals later the
    // positions are persisted at the end of the log.
    let stored_at = Instant::now();
    while checkpoint_offset() != Some(len) {
        assert!(
            stored_at.elapsed() < Duration::from_secs(5),
            "checkpoints not at the end of the log ({len}) 5 s after the collector stored \
             everything: {}\nagent log:\n{}",
            std::fs::read_to_string(state.join("checkpoints.json")).unwrap_or_default(),
            agent_log_tail(&chain.agent_cfg, 20)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(agent);
    let got = chain.stored();
    kill(&mut collector, "-TERM");
    assert_exactly_once(&want, &got);
}

/// A disk spool on a file system that fills up: the agent writes batches while no collector
/// listens until its state directory (a 1 MiB tmpfs, in a private mount namespace) has no room
/// left. It must not exit or skip lines: it says why it cannot commit, keeps the unspooled lines
/// in the log, and once the collector takes the spooled batches (freeing room) reads on, so the
/// store ends up with every event once.
#[test]
fn an_agent_whose_state_dir_fills_up_loses_nothing_and_reads_on_when_room_returns() {
    let scratch = Scratch::new();
    let chain = Chain::new(&scratch, 40_000);
    let state = chain.dir.join("state");
    let id = std::fs::read(state.join("agent-id")).unwrap();
    let ok = Command::new("unshare")
        .args(["-m", "true"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|st| st.success());
    if !ok {
        eprintln!("skipped: no private mount namespace here (needs root and unshare)");
        return;
    }
    let saved_id = chain.dir.join("agent-id.saved");
    std::fs::write(&saved_id, &id).unwrap();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(chain.agent_cfg.with_file_name("agent.log"))
        .unwrap();
    let mut agent = Proc(
        Command::new("unshare")
            .args(["-m", "sh", "-c"])
            .arg(
                "mount -t tmpfs -o size=1m tmpfs \"$1\" && cp \"$2\" \"$1/agent-id\" && \
                 exec \"$3\" run --config \"$4\"",
            )
            .arg("sh")
            .arg(&state)
            .arg(&saved_id)
            .arg(authtrail_bin())
            .arg(&chain.agent_cfg)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    // The agent's view of its state directory (the tmpfs is only mounted in its namespace).
    let inside = PathBuf::from(format!("/proc/{}/root", agent.0.id())).join(
        state
            .strip_prefix("/")
            .expect("the scratch directory is an absolute path"),
    );
    let full = while_running(&mut agent, &chain.agent_cfg, 60, || {
        let text = std::fs::read_to_string(chain.agent_cfg.with_file_name("agent.log"))
            .unwrap_or_default();
        if text.contains("No space left on device") {
            Ok(text)
        } else {
            Err("the spool did not fill the 1 MiB state directory".to_string())
        }
    });
    assert!(
        full.lines()
            .any(|l| l.contains("No space left on device") && l.contains("spool")),
        "the error does not say what could not be written:\n{full}"
    );
    // Full for a while: the agent stays up and keeps trying.
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        agent.0.try_wait().unwrap().is_none(),
        "the agent exited on a full disk:\n{}",
        agent_log_tail(&chain.agent_cfg, 20)
    );
    // `authtrail status` (run in the agent's mount namespace, where its state directory is)
    // says that commits fail and why.
    let status = Command::new("nsenter")
        .args(["-t", &agent.0.id().to_string(), "-m"])
        .arg(authtrail_bin())
        .args(["status", "--config"])
        .arg(&chain.agent_cfg)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("COMMITS FAILING: ") && l.contains("No space left on device")),
        "status does not say that commits fail: {text}{}",
        String::from_utf8_lossy(&status.stderr)
    );
    // What was not spooled is not committed: the checkpoint stays short of the log's end.
    let checkpoints = std::fs::read_to_string(inside.join("checkpoints.json")).unwrap_or_default();
    let committed = serde_json::from_str::<serde_json::Value>(&checkpoints)
        .ok()
        .and_then(|v| v["streams"][0]["position"]["offset"].as_u64());
    let len = std::fs::metadata(&chain.log).unwrap().len();
    assert!(
        committed < Some(len),
        "the whole log committed on a full disk: {checkpoints}"
    );
    // The collector comes: the spool drains, room returns, the rest of the log is read.
    let mut collector = chain.start_collector();
    let want = chain.expected();
    while_running(&mut agent, &chain.agent_cfg, 120, || {
        let stored = chain.stored().values().sum::<usize>();
        if stored >= want.values().sum::<usize>() {
            return Ok(());
        }
        Err(format!(
            "{stored} of {} events stored after the collector started\nstatus: {}",
            want.values().sum::<usize>(),
            std::fs::read_to_string(inside.join("status.json")).unwrap_or_default(),
        ))
    });
    kill(&mut agent, "-TERM");
    let got = chain.stored();
    kill(&mut collector, "-TERM");
    report_extra_copies(&want, &got);
    assert_exactly_once(&want, &got);
}

/// Polls `done` until it gives `Ok`, for at most `secs` seconds, while `agent` (run with
/// `config`) keeps running; panics with the agent's log when it exits or with `done`'s last
/// `Err` (what has not happened) at the deadline.
fn while_running<T>(
    agent: &mut Proc,
    config: &Path,
    secs: u64,
    mut done: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let why = match done() {
            Ok(v) => return v,
            Err(why) => why,
        };
        assert!(
            agent.0.try_wait().unwrap().is_none(),
            "the agent exited:\n{}",
            agent_log_tail(config, 20)
        );
        assert!(
            Instant::now() < deadline,
            "{why} in {secs} s\nagent log:\n{}",
            agent_log_tail(config, 20)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Prints how many copies beyond one were stored (what a failure of exactly once looks like).
fn report_extra_copies(want: &HashMap<String, usize>, got: &HashMap<String, usize>) {
    let extra: usize = got
        .iter()
        .map(|(m, n)| n.saturating_sub(want.get(m).copied().unwrap_or(0)))
        .sum();
    eprintln!("{} events wanted; {extra} extra copies stored", want.len());
}

fn collector_down_then_up_and_killed_mid_batch(memory: bool) {
    let scratch = Scratch::new();
    let chain = Chain::new(&scratch, 20_000);
    if memory {
        chain.use_memory_buffer();
    }
    // The agent starts while no collector listens: it spools and retries.
    let mut agent = chain.start_agent();
    std::thread::sleep(Duration::from_secs(2));
    let mut collector = chain.start_collector();
    // Kill the collector while batches flow, three times; what it acknowledged must survive.
    for pause in [150, 400, 250] {
        std::thread::sleep(Duration::from_millis(pause));
        kill(&mut collector, "-KILL");
        std::thread::sleep(Duration::from_millis(300));
        collector = chain.start_collector();
    }
    chain.wait_shipped(&agent, Duration::from_secs(120));
    kill(&mut agent, "-TERM");
    let (want, got) = (chain.expected(), chain.stored());
    kill(&mut collector, "-TERM");
    assert_exactly_once(&want, &got);
}

#[test]
fn a_live_alert_ships_with_its_batch_long_before_the_batch_is_due() {
    let scratch = Scratch::new();
    let chain = Chain::new(&scratch, 200);
    // Batches that would otherwise wait a minute (or 5,000 events). The generated log's many
    // scanners raise a distributed-spray alert, which would ship them at once: out of reach here.
    let cfg = std::fs::read_to_string(&chain.agent_cfg).unwrap().replace(
        "batch-max-events = 500\n",
        "batch-max-events = 5000\nbatch-max-age = \"60s\"\n",
    ) + "[detect]\ndistributed-spray-sources = 100000\n";
    assert!(cfg.contains("batch-max-age"));
    write_private(&chain.agent_cfg, &cfg);
    let mut collector = chain.start_collector();
    let mut agent = chain.start_agent();
    // The log is read, and its events wait in an open batch for their minute.
    chain.wait_read(Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(chain.stored().values().sum::<usize>(), 0);

    // A brute force against root from one address: the tenth failure raises the alert.
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(&chain.log)
        .unwrap();
    for i in 0..10 {
        let line = format!(
            "2026-11-28T10:00:{i:02}.000000+00:00 web1 sshd[{}]: Failed password for root from \
             198.51.100.77 port {} ssh2\n",
            4000 + i,
            50000 + i
        );
        std::io::Write::write_all(&mut log, line.as_bytes()).unwrap();
    }
    drop(log);
    let deadline = Instant::now() + Duration::from_secs(20);
    let alerts = loop {
        let out = run_ok(
            Command::new(collector_bin())
                .args(["query", "--config"])
                .arg(&chain.collector_cfg)
                .args(["--since", "100000d", "--action", "brute_force", "--json"]),
        );
        let alerts: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if !alerts.is_empty() || Instant::now() >= deadline {
            break alerts;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        alerts.len(),
        1,
        "one brute-force alert within 20 s: {alerts:?}"
    );
    assert_eq!(alerts[0]["event"]["kind"], "alert");
    assert_eq!(alerts[0]["source"]["ip"], "198.51.100.77");
    // Everything read before it travelled with it, the failures that raised it included.
    assert_exactly_once(&chain.expected(), &chain.stored());
    kill(&mut agent, "-TERM");
    kill(&mut collector, "-TERM");
}

/// The messages `authtrail parse` finds in `log`, with how often each appears.
pub(crate) fn parsed_messages(log: &std::path::Path) -> HashMap<String, usize> {
    let out = run_ok(
        Command::new(authtrail_bin())
            .args(["parse", "--timezone", "UTC"])
            .arg(log),
    );
    let mut want = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        *want
            .entry(v["message"].as_str().unwrap().to_owned())
            .or_insert(0) += 1;
    }
    want
}

#[test]
fn a_state_dir_reset_reuses_sequence_numbers_yet_stores_every_event() {
    // A reinstall or a restored image keeps `agent-id` but not the rest of the state dir: the
    // agent numbers its batches from 1 again. They are a new stream, so the collector stores
    // them instead of answering "duplicate" to batches it has never seen.
    let scratch = Scratch::new();
    let chain = Chain::new(&scratch, 3_000);
    let mut collector = chain.start_collector();
    let mut agent = chain.start_agent();
    chain.wait_shipped(&agent, Duration::from_secs(60));
    kill(&mut agent, "-TERM");
    let mut want = chain.expected();

    // The state dir reset (only the agent id kept), and a log with other lines.
    let state = chain.dir.join("state");
    for entry in std::fs::read_dir(&state).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap() == "agent-id" {
            continue;
        }
        if path.is_dir() {
            std::fs::remove_dir_all(&path).unwrap();
        } else {
            std::fs::remove_file(&path).unwrap();
        }
    }
    std::fs::rename(&chain.log, chain.dir.join("auth.log.1")).unwrap();
    let mut file = std::io::BufWriter::new(std::fs::File::create(&chain.log).unwrap());
    loggen::generate(
        &mut file,
        &loggen::Options {
            lines: 3_000,
            seed: 4,
            format: loggen::Format::Rfc3339,
            ..loggen::Options::default()
        },
    )
    .unwrap();
    drop(file);
    for (m, n) in parsed_messages(&chain.log) {
        *want.entry(m).or_insert(0) += n;
    }

    let mut agent = chain.start_agent();
    chain.wait_shipped(&agent, Duration::from_secs(60));
    kill(&mut agent, "-TERM");
    let got = chain.stored();
    kill(&mut collector, "-TERM");
    assert_exactly_once(&want, &got);
}

#[test]
fn a_poison_timestamp_loses_nothing_and_keeps_the_original() {
    // A line dated 9999-12-31T23:59:59 among real ones: every event is stored, that one at the
    // time the agent read it, with its own time kept beside it.
    let scratch = Scratch::new();
    let chain = Chain::new(&scratch, 1_000);
    let poison = "9999-12-31T23:59:59.000000+00:00 web1 sshd[4242]: Failed password for root \
                  from 198.51.100.99 port 4242 ssh2";
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(&chain.log)
        .unwrap();
    std::io::Write::write_all(&mut log, format!("{poison}\n").as_bytes()).unwrap();
    drop(log);
    let mut collector = chain.start_collector();
    let mut agent = chain.start_agent();
    chain.wait_shipped(&agent, Duration::from_secs(60));
    kill(&mut agent, "-TERM");
    let (want, got) = (chain.expected(), chain.stored());
    assert!(want.contains_key(poison));
    assert_exactly_once(&want, &got);
    let out = run_ok(
        Command::new(collector_bin())
            .args(["query", "--config"])
            .arg(&chain.collector_cfg)
            .args([
                "--since",
                "100000d",
                "--source-ip",
                "198.51.100.99",
                "--json",
            ]),
    );
    kill(&mut collector, "-TERM");
    let doc: serde_json::Value = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["message"] == poison)
        .unwrap();
    assert_eq!(
        doc["authtrail"]["original_timestamp"], "9999-12-31T23:59:59Z",
        "{doc}"
    );
    assert!(doc["@timestamp"].as_str().unwrap() < "2100", "{doc}");
}
