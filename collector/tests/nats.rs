//! `[store] type = "nats"` against a real `nats-server` with JetStream (one node, on a free
//! loopback port, its store in a temp dir): the collector answers after the publish, JetStream
//! de-duplicates within its window (a digest check telling a re-send from a conflict), and
//! `consume` stores what the stream holds once, whatever comes twice.
//! The 3-node cluster with agents and kills is `tests/nats.rs` at the workspace root.

use std::io::Read as _;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use collector::config::{Config, Require};
use collector::nats::{NatsConfig, StoreConfig};

use crate::util::*;

/// A single JetStream node, killed on drop.
struct NatsServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl NatsServer {
    /// `None` (and a loud notice) when nats-server is not installed.
    fn start() -> Option<NatsServer> {
        if Command::new("nats-server")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!(
                "SKIPPED: nats-server is missing (apt-get install nats-server; .ci/run installs it)"
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(NatsServer {
            child,
            port,
            _dir: dir,
        })
    }

    fn store(&self, window: Duration) -> StoreConfig {
        StoreConfig::Nats(Box::new(NatsConfig {
            servers: vec![format!("nats://127.0.0.1:{}", self.port)],
            duplicate_window: window,
            max_bytes: 64 << 20,
            publish_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(10),
            ..NatsConfig::default()
        }))
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `consume` in-process until the store in `data` holds `batches` batches, then a little
/// longer (a batch stored twice would show), and stops it.
fn consume_until(config: &Config, batches: i64) {
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let c = config.clone();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(collector::consume::run(&c, |_| {}, async {
            let _ = stop_rx.await;
        }))
        .unwrap();
    });
    let db = config.db_path();
    let count = || {
        db.exists()
            .then(|| {
                rusqlite_conn(&db)
                    .query_row("SELECT count(*) FROM batches", [], |r| r.get::<_, i64>(0))
                    .ok()
            })
            .flatten()
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while count() < batches {
        assert!(Instant::now() < deadline, "stored {} of {batches}", count());
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let _ = stop.send(());
    thread.join().unwrap();
    assert_eq!(count(), batches);
}

fn nats_config(pki: &Pki, data: &Path, nats: &NatsServer, window: Duration) -> Config {
    let mut c = config(pki, data, Require::Mtls);
    c.store = nats.store(window);
    c
}

fn consumer_config(root: &Path, nats: &NatsServer, window: Duration) -> Config {
    Config {
        data_dir: root.join("consumer"),
        store: nats.store(window),
        ..Config::default()
    }
}

fn healthz(client: &ureq::Agent, server: &TestServer) -> (u16, String) {
    let mut r = client.get(server.url("/healthz")).call().unwrap();
    let mut body = String::new();
    r.body_mut().as_reader().read_to_string(&mut body).unwrap();
    (r.status().as_u16(), body)
}

#[test]
fn nats_store_answers_after_the_publish_and_tells_a_resend_from_a_conflict() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"));
    let data: PathBuf = dir.path().join("data");
    let window = Duration::from_secs(60);
    let server = TestServer::start(nats_config(&pki, &data, &nats, window));
    let agent = pki.agent();
    let client = client(&pki.ca(), Some(&agent));
    assert_eq!(healthz(&client, &server), (200, "ok\n".to_owned()));

    let body = events();
    let n = body.lines().count();
    let p = Post::new(agent.id, 7, zstd(body.as_bytes()));
    let a = post(&client, &server, &p).unwrap();
    assert_eq!(
        (a.status, a.body.trim()),
        (
            200,
            format!("{{\"status\":\"stored\",\"events\":{n}}}").as_str()
        )
    );
    // The same batch again within the window: JetStream drops it, the digests agree.
    let a = post(&client, &server, &p).unwrap();
    assert_eq!(
        (a.status, a.body.trim()),
        (200, "{\"status\":\"duplicate\"}")
    );
    // The same key with other content: 409, as the SQLite store answers.
    let other = Post::new(agent.id, 7, zstd(body.lines().next().unwrap().as_bytes()));
    let a = post(&client, &server, &other).unwrap();
    assert_eq!(a.status, 409, "{}", a.body);
    assert!(a.body.contains("other content"), "{}", a.body);
    // gzip, plain and a heartbeat with host facts go through the stream as sent.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, body.as_bytes()).unwrap();
    let mut p = Post::new(agent.id, 8, gz.finish().unwrap());
    p.encoding = Some("gzip");
    assert_eq!(post(&client, &server, &p).unwrap().status, 200);
    let state = r#"{"@timestamp":"2026-01-01T00:00:00Z","event":{"kind":"state"},"host":{"hostname":"web-9","os":{"name":"Debian"}},"agent":{"version":"0.1.0"}}"#;
    let mut p = Post::new(agent.id, 9, state.as_bytes().to_vec());
    p.encoding = None;
    assert_eq!(post(&client, &server, &p).unwrap().status, 200);
    // The collector itself stored nothing.
    assert!(!server.config.db_path().exists());

    // The consumer stores the three batches, once.
    let consumer = consumer_config(dir.path(), &nats, window);
    consume_until(&consumer, 3);
    let conn = rusqlite_conn(&consumer.db_path());
    let (events, host): (i64, String) = conn
        .query_row(
            "SELECT (SELECT sum(events) FROM batches), hostname FROM agents",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((events, host.as_str()), (2 * n as i64, "web-9"));

    // /healthz says when NATS is gone, and batches get 503 (the agent keeps them).
    drop(nats);
    let deadline = Instant::now() + Duration::from_secs(10);
    let (status, why) = loop {
        let h = healthz(&client, &server);
        if h.0 != 200 || Instant::now() > deadline {
            break h;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status, 503, "{why}");
    assert!(why.contains("NATS connection"), "{why}");
    let a = post(
        &client,
        &server,
        &Post::new(agent.id, 10, zstd(body.as_bytes())),
    )
    .unwrap();
    assert_eq!(a.status, 503, "{}", a.body);
}

#[test]
fn resends_after_the_window_and_redeliveries_are_stored_once_and_conflicts_kept() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"));
    let data: PathBuf = dir.path().join("data");
    // A short window, so that re-sends fall outside it.
    let window = Duration::from_millis(300);
    let server = TestServer::start(nats_config(&pki, &data, &nats, window));
    let agent = pki.agent();
    let client = client(&pki.ca(), Some(&agent));
    let body = events();
    let n = body.lines().count() as i64;
    let first = Post::new(agent.id, 1, zstd(body.as_bytes()));
    let one_line = body.lines().next().unwrap().to_owned();
    let other = Post::new(agent.id, 1, zstd(one_line.as_bytes()));
    for p in [&first, &first, &other] {
        std::thread::sleep(window + Duration::from_millis(200));
        let a = post(&client, &server, p).unwrap();
        assert_eq!(a.status, 200, "{}", a.body);
    }
    // The stream holds three messages for one key. The store already holds the first, as
    // when a consumer committed it and died before its acknowledgement reached JetStream: the
    // message comes again and must not be stored twice.
    let consumer = consumer_config(dir.path(), &nats, window);
    std::fs::create_dir_all(&consumer.data_dir).unwrap();
    let mut batch = collector::ingest::decode(
        collector::ingest::Encoding::Zstd,
        first.body.clone(),
        1 << 26,
        Some(agent.id),
    )
    .unwrap();
    batch.stream = "s1".to_owned();
    let mut store = collector::store::Store::open(&consumer.db_path()).unwrap();
    store.insert(agent.id, 1, &batch, 0).unwrap();
    drop(store);
    consume_until(&consumer, 2);
    let conn = rusqlite_conn(&consumer.db_path());
    let mut rows: Vec<(String, i64)> = conn
        .prepare("SELECT stream, events FROM batches ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    rows.sort();
    assert_eq!(rows[0], ("s1".to_owned(), n));
    assert!(rows[1].0.starts_with("s1-conflict-"), "{rows:?}");
    assert_eq!(rows[1].1, 1);
}

#[test]
fn validate_checks_the_store_section() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"));
    let c = config(&pki, &dir.path().join("data"), Require::Mtls);
    let path = dir.path().join("collector.toml");
    let write = |store: &str| {
        let base = c.to_toml().unwrap();
        let base = base.replace("[store]\ntype = \"sqlite\"\n", "");
        assert!(!base.contains("[store]"), "{base}");
        std::fs::write(&path, format!("{base}\n{store}")).unwrap();
    };
    let validate = || {
        let out = Command::new(crate::BIN)
            .args(["validate", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    write("[store]\ntype = \"nats\"\nservers = [\"nats://10.0.0.1:4222\"]\n");
    let (ok, out, err) = validate();
    assert!(ok, "{err}");
    assert!(out.contains("type = \"nats\""), "{out}");
    assert!(out.contains("duplicate-window = \"2m\""), "{out}");
    write("[store]\ntype = \"nats\"\nreplicas = 9\nsubject-prefix = \"a.*\"\n");
    let (ok, _, err) = validate();
    assert!(!ok);
    assert!(err.contains("[store] replicas 9: from 1 to 5"), "{err}");
    assert!(err.contains("[store] subject-prefix"), "{err}");
    let creds = dir.path().join("nats.creds");
    std::fs::write(&creds, "x").unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o644)).unwrap();
    write(&format!(
        "[store]\ntype = \"nats\"\ncredentials-file = {:?}\n",
        creds.display().to_string()
    ));
    let (ok, _, err) = validate();
    assert!(!ok);
    assert!(
        err.contains("credentials-file") && err.contains("chmod 600"),
        "{err}"
    );
}
