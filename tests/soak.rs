//! The soak (issue 12's evidence): 20 real agents (`authtrail run`, each with its own log, state
//! dir and certificate) ship to one collector that is SIGKILLed and restarted several times,
//! while other clients upload slowly and send zstd bombs; at the end every agent's events are
//! stored exactly once, and the collector's peak resident memory is printed.
//!
//! CI-sized by default (about 30 s of faults, under 90 s in all); `AUTHTRAIL_SOAK_SECS=600` runs the 10-minute form.

#![allow(
    clippy::unwrap_used,
    reason = "a test that cannot set itself up should fail loudly"
)]

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::shipping::{
    Proc, agent_toml, assert_exactly_once, collector_toml, issue_agent, kill, parsed_messages,
    serve_collector,
};
use crate::util::{Scratch, authtrail_bin, collector_bin, free_port, run_ok, write_private};

/// Agents shipping at once.
const AGENTS: usize = 20;
/// Log lines each agent's log ends up with.
const LINES_PER_AGENT: u64 = 4_000;
/// Seconds of faults in the CI-sized run.
const CI_SECS: u64 = 30;
/// Time between two SIGKILLs of the collector.
const KILL_EVERY: Duration = Duration::from_secs(5);
/// Concurrent slow uploaders and bomb senders.
const SLOW_CLIENTS: usize = 3;
const BOMB_CLIENTS: usize = 2;

/// One agent: its log (all of it, to be appended in steps), state dir and process.
struct SoakAgent {
    id: String,
    log: PathBuf,
    state: PathBuf,
    config: PathBuf,
    content: Vec<u8>,
    written: usize,
}

impl SoakAgent {
    /// Appends the next part of the log (up to `upto` of its bytes, cut at a line end).
    fn append_upto(&mut self, upto: usize) {
        let upto = upto.min(self.content.len());
        if upto <= self.written {
            return;
        }
        let end = self.content[..upto]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(self.written, |i| i + 1)
            .max(self.written);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.log)
            .unwrap();
        f.write_all(&self.content[self.written..end]).unwrap();
        self.written = end;
    }

    fn start(&self) -> Proc {
        let out = std::fs::File::create(self.state.join("agent.log")).unwrap();
        Proc(
            Command::new(authtrail_bin())
                .args(["run", "--config"])
                .arg(&self.config)
                .stdout(Stdio::null())
                .stderr(out)
                .spawn()
                .unwrap(),
        )
    }

    /// Whether the agent has committed its whole log and shipped everything.
    fn shipped(&self, pid: u32) -> bool {
        let len = std::fs::metadata(&self.log).unwrap().len();
        let read = |name: &str| {
            std::fs::read_to_string(self.state.join(name))
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        };
        let committed = read("checkpoints.json")
            .is_some_and(|v| v["streams"][0]["position"]["offset"].as_u64() == Some(len));
        let modified = |name: &str| {
            std::fs::metadata(self.state.join(name))
                .and_then(|m| m.modified())
                .ok()
        };
        let after = matches!(
            (modified("status.json"), modified("checkpoints.json")),
            (Some(s), Some(c)) if s > c
        );
        committed
            && after
            && read("status.json").is_some_and(|v| {
                v["pid"].as_u64() == Some(u64::from(pid))
                    && v["shipping"]["backlog-batches"].as_u64() == Some(0)
            })
    }
}

/// The collector, restartable on one port; remembers the highest peak resident memory of its
/// runs.
struct Collector {
    config: PathBuf,
    port: u16,
    proc: Option<Proc>,
    peak: u64,
}

impl Collector {
    fn start(&mut self) {
        // As the shipped unit sets it (targets/systemd/authtrail-collector.service).
        let env = [("MIMALLOC_PURGE_DELAY", "0")];
        self.proc = Some(serve_collector(&self.config, self.port, &env));
    }

    /// Reads the running collector's peak resident memory into [`Collector::peak`].
    fn sample(&mut self) {
        if let Some(p) = &self.proc
            && let Ok(status) = std::fs::read_to_string(format!("/proc/{}/status", p.0.id()))
            && let Some(kb) = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))
        {
            let kb: u64 = kb.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
            self.peak = self.peak.max(kb * 1024);
        }
    }

    fn sigkill(&mut self) {
        self.sample();
        if let Some(mut p) = self.proc.take() {
            kill(&mut p, "-KILL");
        }
    }
}

/// `curl` posting `body` as a batch of agent `id` (certificate in `pki`), with `extra` args;
/// its HTTP status (0 when the connection failed).
fn curl_post(pki: &Path, id: &str, port: u16, seq: u64, body: &Path, extra: &[&str]) -> u16 {
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "40",
        ])
        .arg("--cacert")
        .arg(pki.join("ca.pem"))
        .arg("--cert")
        .arg(pki.join(format!("agent-{id}.pem")))
        .arg("--key")
        .arg(pki.join(format!("agent-{id}-key.pem")))
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
        .args(["-H", &format!("Authtrail-Agent-Id: {id}")])
        .args(["-H", "Authtrail-Stream: attacker"])
        .args(["-H", &format!("Authtrail-Batch-Seq: {seq}")])
        .args(["-H", "Authtrail-Schema: 1"])
        .args(["-H", "Content-Encoding: zstd"])
        .args(["-H", "Content-Type: application/x-ndjson"])
        .args(extra)
        .arg("--data-binary")
        .arg(format!("@{}", body.display()))
        .arg(format!("https://localhost:{port}/v1/batches"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

#[test]
fn soak_20_agents_collector_sigkills_slow_clients_and_bombs_store_every_event_once() {
    if Command::new("curl").arg("--version").output().is_err() {
        crate::util::announce_skip(
            "soak_20_agents_collector_sigkills_slow_clients_and_bombs_store_every_event_once",
            "curl is not installed",
        );
        return;
    }
    let secs = std::env::var("AUTHTRAIL_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(CI_SECS);
    // Found (and built if needed) before the clock starts.
    let (_, _) = (authtrail_bin(), collector_bin());
    let setup = Instant::now();
    let scratch = Scratch::new();
    let dir = scratch.path();
    let pki = dir.join("pki");
    run_ok(
        Command::new(collector_bin())
            .args(["certs", "init", "--dir"])
            .arg(&pki),
    );
    let port = free_port();
    let collector_cfg = dir.join("collector.toml");
    write_private(&collector_cfg, &collector_toml(dir, port, &pki));
    let mut agents: Vec<SoakAgent> = (0..AGENTS)
        .map(|i| {
            let state = dir.join(format!("agent-{i}"));
            let id = issue_agent(&pki, &state);
            let log = state.join("auth.log");
            let mut content = Vec::new();
            loggen::generate(
                &mut content,
                &loggen::Options {
                    lines: LINES_PER_AGENT,
                    seed: 100 + i as u64,
                    format: loggen::Format::Rfc3339,
                    hosts: vec![format!("host{i}")],
                    ..loggen::Options::default()
                },
            )
            .unwrap();
            std::fs::write(&log, b"").unwrap();
            let config = state.join("agent.toml");
            write_private(&config, &agent_toml(&state, &log, port, &pki, &id, 200));
            SoakAgent {
                id,
                log,
                state,
                config,
                content,
                written: 0,
            }
        })
        .collect();
    // The attackers: another agent's certificate, a 1 MiB body to upload slowly and a zstd
    // bomb (256 MiB of zeros, four times the decompressed bound, in a frame that does not
    // state its size).
    let attacker = issue_agent(&pki, &dir.join("attacker"));
    let slow_body = dir.join("slow.zst");
    std::fs::write(&slow_body, vec![b'x'; 1 << 20]).unwrap();
    let bomb = dir.join("bomb.zst");
    run_ok(Command::new("sh").arg("-c").arg(format!(
        "head -c 268435456 /dev/zero | zstd -q -1 -c > {}",
        bomb.display()
    )));

    let mut collector = Collector {
        config: collector_cfg.clone(),
        port,
        proc: None,
        peak: 0,
    };
    collector.start();
    let mut procs: Vec<Proc> = agents.iter().map(SoakAgent::start).collect();

    let stop = AtomicBool::new(false);
    let (slow_answers, bomb_answers) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let start = Instant::now();
    let mut kills = 0;
    std::thread::scope(|scope| {
        for c in 0..SLOW_CLIENTS + BOMB_CLIENTS {
            let (stop, pki, attacker) = (&stop, &pki, &attacker);
            let (slow_body, bomb) = (&slow_body, &bomb);
            let (slow_answers, bomb_answers) = (&slow_answers, &bomb_answers);
            scope.spawn(move || {
                let mut seq = 1_000_000 * (c as u64 + 1);
                while !stop.load(Ordering::Relaxed) {
                    seq += 1;
                    if c < SLOW_CLIENTS {
                        let got =
                            curl_post(pki, attacker, port, seq, slow_body, &["--limit-rate", "4k"]);
                        if got == 0 {
                            // The collector is down (killed): try again shortly.
                            std::thread::sleep(Duration::from_millis(200));
                        } else {
                            slow_answers.fetch_add(1, Ordering::Relaxed);
                        }
                    } else {
                        let got = curl_post(pki, attacker, port, seq, bomb, &[]);
                        if got != 0 {
                            // A bomb is never stored: 413, or 429/503 while busy.
                            assert!(matches!(got, 413 | 429 | 503), "bomb answered {got}");
                            bomb_answers.fetch_add(1, Ordering::Relaxed);
                        }
                        std::thread::sleep(Duration::from_millis(200));
                    }
                }
            });
        }
        // The logs grow in steps while the collector is killed and restarted.
        let faults = Duration::from_secs(secs);
        let mut next_kill = start + KILL_EVERY;
        loop {
            let done = start.elapsed().min(faults);
            for a in &mut agents {
                let upto =
                    (a.content.len() as f64 * done.as_secs_f64() / faults.as_secs_f64()) as usize;
                a.append_upto(upto);
            }
            if done >= faults {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
            collector.sample();
            if Instant::now() >= next_kill {
                collector.sigkill();
                kills += 1;
                std::thread::sleep(Duration::from_millis(300));
                collector.start();
                next_kill = Instant::now() + KILL_EVERY;
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    let faults = start.elapsed();

    // Every agent ships all it has read.
    let deadline = Instant::now() + Duration::from_secs(90);
    for (a, p) in agents.iter().zip(&procs) {
        while !a.shipped(p.0.id()) {
            assert!(
                Instant::now() < deadline,
                "agent {} did not ship everything: {}",
                a.id,
                std::fs::read_to_string(a.state.join("status.json")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    for p in &mut procs {
        kill(p, "-TERM");
    }
    collector.sample();
    let out = run_ok(
        Command::new(collector_bin())
            .args(["query", "--config"])
            .arg(&collector_cfg)
            .args(["--since", "100000d", "--limit", "100000000", "--json"]),
    );
    let mut stored: HashMap<String, HashMap<String, usize>> = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["event"]["kind"] == "alert" {
            continue;
        }
        if let (Some(agent), Some(m)) = (v["agent"]["id"].as_str(), v["message"].as_str()) {
            *stored
                .entry(agent.to_owned())
                .or_default()
                .entry(m.to_owned())
                .or_insert(0) += 1;
        }
    }
    let mut events = 0;
    for a in &agents {
        let want = parsed_messages(&a.log);
        events += want.values().sum::<usize>();
        let got = stored.remove(&a.id).unwrap_or_default();
        assert_exactly_once(&want, &got);
    }
    assert!(
        stored.is_empty(),
        "events stored under unknown agents: {:?}",
        stored.keys().collect::<Vec<_>>()
    );
    eprintln!(
        "soak: {AGENTS} agents, {events} events each stored once; {kills} collector SIGKILLs \
         in {faults:?} of faults, {:?} in all; {} slow uploads and {} bombs answered; \
         collector peak resident {} MiB",
        setup.elapsed(),
        slow_answers.load(Ordering::Relaxed),
        bomb_answers.load(Ordering::Relaxed),
        collector.peak >> 20
    );
    assert!(kills >= 3, "{kills} SIGKILLs");
    assert_eq!(
        agents
            .iter()
            .filter(|a| a.written < a.content.len())
            .count(),
        0
    );
}
