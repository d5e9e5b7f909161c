//! The scaled-out tier with the real binaries and a real NATS JetStream cluster: several
//! `authtrail run` agents ship through one address (a TCP relay in this test, as a load
//! balancer would be) to two `authtrail-collector serve` with `[store] type = "nats"`, which
//! publish to an R3 stream on a 3-node `nats-server` cluster; one `authtrail-collector consume`
//! stores the stream in SQLite. A NATS node and a collector are SIGKILLed mid-run; every event
//! must be stored exactly once.

#![allow(
    clippy::unwrap_used,
    reason = "a test that cannot set itself up should fail loudly"
)]

use std::collections::HashMap;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::shipping::{
    Proc, agent_toml, assert_exactly_once, issue_agent, kill, parsed_messages, run_agent,
    start_until_ready,
};
use crate::util::{
    Scratch, announce_skip, collector_bin, find_program, free_port, run_ok, write_private,
};

/// A 3-node JetStream cluster on loopback, each node with its own store directory.
struct Cluster {
    nodes: Vec<Option<Proc>>,
    client_ports: Vec<u16>,
}

impl Cluster {
    fn start(dir: &Path) -> Cluster {
        let client_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let route_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let mut nodes = Vec::new();
        for i in 0..3 {
            let store = dir.join(format!("nats-{i}"));
            std::fs::create_dir_all(&store).unwrap();
            let routes: Vec<String> = route_ports
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, p)| format!("nats-route://127.0.0.1:{p}"))
                .collect();
            let conf = store.join("nats.conf");
            std::fs::write(
                &conf,
                format!(
                    "server_name: n{i}\nlisten: 127.0.0.1:{}\njetstream {{\n  store_dir: {:?}\n  \
                     max_memory_store: 64MB\n  max_file_store: 1GB\n}}\ncluster {{\n  name: \
                     authtrail\n  listen: 127.0.0.1:{}\n  routes: [{}]\n}}\n",
                    client_ports[i],
                    store.display().to_string(),
                    route_ports[i],
                    routes.join(", ")
                ),
            )
            .unwrap();
            let child = Command::new("nats-server")
                .arg("-c")
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(
                    std::fs::File::create(store.join("nats.log"))
                        .map_or_else(|_| Stdio::null(), Stdio::from),
                )
                .spawn()
                .unwrap();
            nodes.push(Some(Proc(child)));
        }
        for port in &client_ports {
            let deadline = Instant::now() + Duration::from_secs(10);
            while TcpStream::connect((Ipv4Addr::LOCALHOST, *port)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "nats-server on {port} did not start"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Cluster {
            nodes,
            client_ports,
        }
    }

    /// The `servers = [...]` value of a `[store]` section.
    fn servers(&self) -> String {
        let list: Vec<String> = self
            .client_ports
            .iter()
            .map(|p| format!("\"nats://127.0.0.1:{p}\""))
            .collect();
        format!("[{}]", list.join(", "))
    }
}

/// One address in front of several collectors: each connection goes to the next backend that
/// accepts it (round robin), bytes relayed both ways, as a TCP load balancer does.
fn relay(backends: Vec<u16>) -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let next = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let start = next.fetch_add(1, Ordering::Relaxed);
            let backend = (0..backends.len()).find_map(|k| {
                let port = backends[(start + k) % backends.len()];
                TcpStream::connect((Ipv4Addr::LOCALHOST, port)).ok()
            });
            let Some(backend) = backend else { continue };
            let (mut c1, mut b1) = (client.try_clone().unwrap(), backend.try_clone().unwrap());
            let (mut c2, mut b2) = (client, backend);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c1, &mut b1);
                let _ = b1.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut b2, &mut c2);
                let _ = c2.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    port
}

/// One agent: its id, state directory, log and config.
struct Agent {
    id: String,
    state: PathBuf,
    log: PathBuf,
    config: PathBuf,
}

/// Starts `cmd` with its stderr in `log`; its first line on stdout (the readiness line).
fn start(cmd: &mut Command, log: &Path) -> (Proc, String) {
    start_until_ready(cmd.stderr(std::fs::File::create(log).unwrap()))
}

/// Waits until the agent committed its whole log and its spool is empty.
fn wait_shipped(agent: &Agent, proc: &Proc, timeout: Duration) {
    let len = std::fs::metadata(&agent.log).unwrap().len();
    let deadline = Instant::now() + timeout;
    loop {
        let read = |name: &str| {
            std::fs::read_to_string(agent.state.join(name))
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        };
        let committed = read("checkpoints.json")
            .is_some_and(|v| v["streams"][0]["position"]["offset"].as_u64() == Some(len));
        if committed
            && let Some(v) = read("status.json")
            && v["pid"].as_u64() == Some(u64::from(proc.0.id()))
            && v["shipping"]["backlog-batches"].as_u64() == Some(0)
            && v["sources"][0]["streams"][0]["offset"].as_u64() == Some(len)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "agent {} not shipped in {timeout:?}: {:?}",
            agent.id,
            read("status.json")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The stored login events as (agent id, message), with how often each is stored.
fn stored(db: &Path) -> HashMap<String, usize> {
    let out = run_ok(
        Command::new(collector_bin())
            .args(["query", "--db"])
            .arg(db)
            .args(["--since", "100000d", "--limit", "100000000", "--json"]),
    );
    let mut got = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["event"]["kind"] == "alert" {
            continue;
        }
        if let (Some(a), Some(m)) = (v["agent"]["id"].as_str(), v["message"].as_str()) {
            *got.entry(format!("{a} {m}")).or_insert(0) += 1;
        }
    }
    got
}

#[test]
fn nats_cluster_node_collector_and_consumer_killed_mid_run_store_every_event_once() {
    const TEST: &str =
        "nats_cluster_node_collector_and_consumer_killed_mid_run_store_every_event_once";
    if find_program("nats-server").is_none() {
        announce_skip(
            TEST,
            "nats-server is missing (apt-get install nats-server; .ci/run installs it)",
        );
        return;
    }
    let scratch = Scratch::new();
    let dir = scratch.path();
    let mut cluster = Cluster::start(dir);
    let pki = dir.join("pki");
    run_ok(
        Command::new(collector_bin())
            .args(["certs", "init", "--dir"])
            .arg(&pki),
    );
    let p = |name: &str| pki.join(name).display().to_string();
    let store = format!(
        "[store]\ntype = \"nats\"\nservers = {}\nreplicas = 3\nduplicate-window = \"1m\"\n\
         publish-timeout = \"3s\"\nconnect-timeout = \"30s\"\nmax-bytes = 268435456\nack-wait = \"2s\"\n",
        cluster.servers()
    );

    // Two stateless collectors, sharing nothing but the stream, behind one address.
    let collector_ports = [free_port(), free_port()];
    let mut collectors = Vec::new();
    for (i, port) in collector_ports.iter().enumerate() {
        let cfg = dir.join(format!("collector-{i}.toml"));
        write_private(
            &cfg,
            &format!(
                "listen = \"127.0.0.1:{port}\"\ndata-dir = {:?}\n[tls]\ncert-file = {:?}\n\
                 key-file = {:?}\nclient-ca-file = {:?}\n[auth]\nrequire = \"mtls\"\n{store}",
                dir.join(format!("collector-{i}")).display().to_string(),
                p("server.pem"),
                p("server-key.pem"),
                p("ca.pem"),
            ),
        );
        let log = dir.join(format!("collector-{i}.log"));
        let (proc, line) = start(
            Command::new(collector_bin())
                .args(["serve", "--config"])
                .arg(&cfg),
            &log,
        );
        assert_eq!(
            line.trim(),
            format!("listening on 127.0.0.1:{port}"),
            "{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        collectors.push(proc);
    }
    let front = relay(collector_ports.to_vec());

    // One consumer into SQLite.
    let consumer_cfg = dir.join("consumer.toml");
    let consumer_dir = dir.join("consumer");
    write_private(
        &consumer_cfg,
        &format!(
            "data-dir = {:?}\n{store}",
            consumer_dir.display().to_string()
        ),
    );
    let (mut consumer, line) = start(
        Command::new(collector_bin())
            .args(["consume", "--config"])
            .arg(&consumer_cfg),
        &dir.join("consumer.log"),
    );
    assert!(
        line.starts_with("consuming authtrail.batches.> from AUTHTRAIL"),
        "{line}{}",
        std::fs::read_to_string(dir.join("consumer.log")).unwrap_or_default()
    );

    // Several agents, each with its own identity and log.
    let mut agents = Vec::new();
    for seed in 0..3u64 {
        let home = dir.join(format!("agent-{seed}"));
        let state = home.join("state");
        let id = issue_agent(&pki, &state);
        let log = home.join("auth.log");
        let mut file = std::io::BufWriter::new(std::fs::File::create(&log).unwrap());
        loggen::generate(
            &mut file,
            &loggen::Options {
                lines: 6_000,
                seed: 11 + seed,
                format: loggen::Format::Rfc3339,
                ..loggen::Options::default()
            },
        )
        .unwrap();
        drop(file);
        let config = home.join("agent.toml");
        write_private(&config, &agent_toml(&state, &log, front, &pki, &id, 100));
        agents.push(Agent {
            id,
            state,
            log,
            config,
        });
    }
    let mut running: Vec<Proc> = agents.iter().map(|a| run_agent(&a.config)).collect();

    // Mid-run: a NATS node dies (the R3 stream keeps its quorum), then a collector, while
    // batches flow through both.
    std::thread::sleep(Duration::from_millis(600));
    let mut node = cluster.nodes[1].take().unwrap();
    kill(&mut node, "-KILL");
    std::thread::sleep(Duration::from_millis(400));
    let mut first = collectors.remove(0);
    kill(&mut first, "-KILL");
    // And the consumer, between a commit and its acknowledgements at some point: what it
    // committed comes again and must not be stored twice.
    std::thread::sleep(Duration::from_millis(300));
    kill(&mut consumer, "-KILL");
    let (again, line) = start(
        Command::new(collector_bin())
            .args(["consume", "--config"])
            .arg(&consumer_cfg),
        &dir.join("consumer-2.log"),
    );
    assert!(
        line.starts_with("consuming "),
        "the consumer did not restart: {line}{}",
        std::fs::read_to_string(dir.join("consumer-2.log")).unwrap_or_default()
    );
    consumer = again;

    for (agent, proc) in agents.iter().zip(&running) {
        wait_shipped(agent, proc, Duration::from_secs(60));
    }
    for proc in &mut running {
        kill(proc, "-TERM");
    }
    let mut want = HashMap::new();
    for agent in &agents {
        for (m, n) in parsed_messages(&agent.log) {
            *want.entry(format!("{} {m}", agent.id)).or_insert(0) += n;
        }
    }
    // Everything acknowledged is in the stream; the consumer catches up.
    let db = consumer_dir.join("authtrail.db");
    let total: usize = want.values().sum();
    let deadline = Instant::now() + Duration::from_secs(30);
    let got = loop {
        let got = stored(&db);
        if got.values().sum::<usize>() >= total || Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    // A few more moments: a duplicate stored late would show now.
    std::thread::sleep(Duration::from_millis(500));
    let got_again = stored(&db);
    kill(&mut consumer, "-TERM");
    assert_eq!(
        got, got_again,
        "the store changed after it held every event"
    );
    assert_exactly_once(&want, &got);
}
