//! The collector sink over real TLS on loopback, against a small HTTPS test server (the real
//! collector lives in `collector/`; this server lets each test script the answers: 200, 400,
//! 401, 413, 429, a bad certificate...).

#![allow(
    clippy::unwrap_used,
    reason = "helpers of the test server and fixtures fail the test loudly, which is the point"
)]

mod configs;

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agent::config::{
    BodyFormat, BufferKind, ByteSize, CollectorConfig, Compression, Config, ConfigError,
    SinkConfig, SpoolPolicy,
};
use agent::host::HostFacts;
use agent::ship::CollectorSink;
use agent::ship::batch::{Codec, Encoding};
use agent::ship::{CollectorUrl, ProxyUrl};
use agent::sink::Sink;
use configs::errors;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

const AGENT_ID: &str = "67e55044-10b1-426f-9247-bb680e5fe0c8";

// ---------------------------------------------------------------------------------------------
// Certificates

struct Ca {
    cert_pem: String,
    cert_der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
}

struct Leaf {
    cert_pem: String,
    cert_der: Vec<u8>,
    key_pem: String,
    key_der: Vec<u8>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).unwrap();
        Ca {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            issuer: Issuer::new(params, key),
        }
    }

    fn leaf(&self, names: &[&str], expired: bool) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        for n in names {
            params.subject_alt_names.push(match n.parse() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName((*n).try_into().unwrap()),
            });
        }
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("agent"),
        );
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            key_pem: key.serialize_pem(),
            key_der: key.serialize_der(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The test server

#[derive(Debug, Clone)]
enum Reply {
    Status(u16, Vec<(&'static str, String)>, String),
    Close,
}

fn ok() -> Reply {
    Reply::Status(200, vec![], "{\"accepted\":true}".into())
}

#[derive(Debug, Clone)]
struct Request {
    at: Instant,
    headers: HashMap<String, String>,
    body: Vec<u8>,
    client_cert: Option<Vec<u8>>,
}

impl Request {
    fn seq(&self) -> u64 {
        self.headers["authtrail-batch-seq"].parse().unwrap()
    }

    fn ndjson(&self) -> String {
        let enc = match self.headers.get("content-encoding").map(String::as_str) {
            Some("zstd") => Encoding::Zstd,
            Some("gzip") => Encoding::Gzip,
            None => Encoding::Identity,
            Some(other) => panic!("unexpected encoding {other}"),
        };
        let body = enc.decode(&self.body, 64 << 20).unwrap();
        if self.headers["content-type"] == agent_core::wire::CONTENT_TYPE_BATCH {
            let mut ndjson = Vec::new();
            agent_core::batch::decode(&body, 64 << 20, &mut ndjson).unwrap();
            return String::from_utf8(ndjson).unwrap();
        }
        String::from_utf8(body).unwrap()
    }

    fn lines(&self) -> Vec<String> {
        self.ndjson().lines().map(str::to_owned).collect()
    }
}

#[derive(Default)]
struct ServerState {
    requests: Vec<Request>,
    script: VecDeque<Reply>,
    /// When set, requests without `Authorization: Bearer <token>` get 401.
    token: Option<String>,
    /// TLS handshakes that failed on the server side.
    handshake_errors: Vec<String>,
    /// TLS connections established.
    connections: usize,
}

struct Server {
    addr: SocketAddr,
    state: Arc<Mutex<ServerState>>,
}

impl Server {
    /// Serves `leaf` (signed by some CA); with `client_ca`, asks for a client certificate
    /// (optional) signed by it.
    fn start(leaf: &Leaf, client_ca: Option<&Ca>) -> Server {
        Server::start_with(leaf, client_ca, false)
    }

    /// As [`Server::start`], but a client certificate signed by `client_ca` is required.
    fn start_requiring_client_cert(leaf: &Leaf, client_ca: &Ca) -> Server {
        Server::start_with(leaf, Some(client_ca), true)
    }

    fn start_with(leaf: &Leaf, client_ca: Option<&Ca>, required: bool) -> Server {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = match client_ca {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                roots
                    .add(CertificateDer::from(ca.cert_der.clone()))
                    .unwrap();
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                );
                let verifier = if required {
                    verifier
                } else {
                    verifier.allow_unauthenticated()
                };
                let verifier = verifier.build().unwrap();
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let config = Arc::new(
            builder
                .with_single_cert(
                    vec![CertificateDer::from(leaf.cert_der.clone())],
                    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf.key_der.clone())),
                )
                .unwrap(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(ServerState::default()));
        let st = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (config, st) = (config.clone(), st.clone());
                std::thread::spawn(move || serve(conn, config, st));
            }
        });
        Server { addr, state }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.addr.port())
    }

    fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.lock().unwrap().script.extend(replies);
    }

    fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().requests.clone()
    }

    fn wait_requests(&self, n: usize, timeout: Duration) -> Vec<Request> {
        let deadline = Instant::now() + timeout;
        loop {
            let r = self.requests();
            if r.len() >= n || Instant::now() > deadline {
                return r;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn serve(conn: TcpStream, config: Arc<rustls::ServerConfig>, state: Arc<Mutex<ServerState>>) {
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let tls = rustls::ServerConnection::new(config).unwrap();
    let mut stream = rustls::StreamOwned::new(tls, conn);
    if let Err(e) = stream.conn.complete_io(&mut stream.sock) {
        state.lock().unwrap().handshake_errors.push(e.to_string());
        return;
    }
    state.lock().unwrap().connections += 1;
    let client_cert = stream
        .conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec());
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut headers = HashMap::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').unwrap();
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
        let len: usize = headers
            .get("content-length")
            .map_or(0, |v| v.parse().unwrap());
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let reply = {
            let mut st = state.lock().unwrap();
            let auth_ok = st
                .token
                .as_ref()
                .is_none_or(|t| headers.get("authorization") == Some(&format!("Bearer {t}")));
            st.requests.push(Request {
                at: Instant::now(),
                headers,
                body,
                client_cert: client_cert.clone(),
            });
            if auth_ok {
                st.script.pop_front().unwrap_or_else(ok)
            } else {
                Reply::Status(401, vec![], "bad token".into())
            }
        };
        let stream = reader.get_mut();
        match reply {
            Reply::Close => return,
            Reply::Status(code, extra, text) => {
                let mut out = format!("HTTP/1.1 {code} X\r\nContent-Length: {}\r\n", text.len());
                for (k, v) in extra {
                    out.push_str(&format!("{k}: {v}\r\n"));
                }
                out.push_str("\r\n");
                out.push_str(&text);
                if stream
                    .write_all(out.as_bytes())
                    .and_then(|()| stream.flush())
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// A CA, a server certificate for 127.0.0.1/localhost, and the CA file on disk.
struct Fixture {
    dir: tempfile::TempDir,
    ca: Ca,
    ca_file: PathBuf,
    server_leaf: Leaf,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("test CA");
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, &ca.cert_pem).unwrap();
        let server_leaf = ca.leaf(&["127.0.0.1", "localhost"], false);
        Fixture {
            dir,
            ca,
            ca_file,
            server_leaf,
        }
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn config(&self, url: &str) -> CollectorConfig {
        let mut c = CollectorConfig {
            url: Some(CollectorUrl::parse(url).unwrap()),
            ..CollectorConfig::default()
        };
        c.tls.ca_file = Some(self.ca_file.clone());
        c.retry.initial = Duration::from_millis(20);
        c.retry.max = Duration::from_millis(200);
        c.timeout = Duration::from_secs(5);
        c.heartbeat = Duration::from_secs(3600);
        c
    }

    fn open(&self, config: &CollectorConfig) -> CollectorSink {
        CollectorSink::open(config, &self.state_dir(), AGENT_ID, facts()).unwrap()
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        let tmp = self.dir.path().join(format!("{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        path
    }
}

fn facts() -> HostFacts {
    HostFacts {
        hostname: Some("web-1".into()),
        os_name: Some("Debian GNU/Linux".into()),
        os_version: Some("12".into()),
        kernel: Some("6.1.0".into()),
        arch: "x86_64".into(),
        boot_time: Some(agent_core::Timestamp::from_secs(1_700_000_000)),
        host_id: Some("0123456789abcdef0123456789abcdef".into()),
    }
}

fn event(i: usize) -> String {
    format!("{{\"event\":{{\"action\":\"auth_failure\",\"sequence\":{i}}}}}")
}

/// A port nothing listens on.
fn dead_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("https://127.0.0.1:{port}")
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn spool_files(state: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(state.join("spool"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".batch"))
        .collect();
    v.sort();
    v
}

// ---------------------------------------------------------------------------------------------
// Batching and the wire format

#[test]
fn batches_close_on_events_and_bytes_and_alerts_flush() {
    let fx = Fixture::new();
    let server = Server::start(&fx.server_leaf, None);
    let mut config = fx.config(&server.url());
    config.batch_max_events = 3;
    config.batch_max_age = Duration::from_millis(250);
    let mut sink = fx.open(&config);
    assert_eq!(sink.max_age(), Duration::from_millis(250));
    assert_eq!(sink.describe(), format!("collector {}", server.url()));

    // Events: the third closes the batch.
    sink.send(event(0).as_bytes(), false).unwrap();
    sink.send(event(1).as_bytes(), false).unwrap();
    assert!(!sink.wants_commit(false));
    sink.send(event(2).as_bytes(), false).unwrap();
    // A closed batch waits for company while more input is queued, not once it is read.
    assert!(!sink.wants_commit(true));
    assert!(sink.wants_commit(false));
    sink.send(event(3).as_bytes(), false).unwrap();
    sink.commit().unwrap();
    assert!(!sink.wants_commit(false));

    // An alert asks for a commit, without a closed batch, as soon as the queued input is read
    // (the pipeline's byte bound covers a queue that never empties).
    sink.send(b"{\"event\":{\"kind\":\"alert\"}}", true)
        .unwrap();
    assert!(!sink.wants_commit(true));
    assert!(sink.wants_commit(false));
    sink.commit().unwrap();
    let reqs = server.wait_requests(3, Duration::from_secs(5));
    let sizes: Vec<usize> = reqs.iter().map(|r| r.lines().len()).collect();
    assert_eq!(sizes, [3, 1, 1]);
    assert_eq!(reqs[0].lines(), [event(0), event(1), event(2)]);
    drop(sink);

    // Bytes: each event is ~50 bytes of NDJSON; 120 bytes hold two.
    let mut config = fx.config(&server.url());
    config.body = BodyFormat::EcsNdjson;
    config.batch_max_bytes = ByteSize(120);
    config.spool.max_bytes = ByteSize(1 << 20);
    let mut sink = fx.open(&config);
    for i in 0..5 {
        sink.send(event(i).as_bytes(), false).unwrap();
    }
    assert!(sink.wants_commit(false));
    sink.commit().unwrap();
    let reqs = server.wait_requests(6, Duration::from_secs(5));
    let sizes: Vec<usize> = reqs[3..].iter().map(|r| r.lines().len()).collect();
    assert_eq!(sizes, [2, 2, 1]);
    // Sequence numbers are monotonic across the two sinks on one state dir (the second starts
    // above what the first reserved in `next-seq`).
    let seqs: Vec<u64> = reqs.iter().map(Request::seq).collect();
    assert_eq!(seqs[..3], [1, 2, 3]);
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert_eq!(seqs[4..], [seqs[3] + 1, seqs[3] + 2]);
}

#[test]
fn every_compression_decodes_to_the_ndjson_sent_with_the_protocol_headers() {
    let fx = Fixture::new();
    let server = Server::start(&fx.server_leaf, None);
    let cases = [
        (Compression::Zstd, Some("zstd")),
        (Compression::Gzip, Some("gzip")),
        (Compression::None, None),
    ]
    .into_iter()
    .flat_map(|c| [(c, BodyFormat::Compact), (c, BodyFormat::EcsNdjson)]);
    for (n, ((compression, header), body)) in cases.enumerate() {
        let mut config = fx.config(&server.url());
        config.compression = compression;
        config.body = body;
        let mut sink = fx.open(&config);
        let sent: Vec<String> = (0..100).map(event).collect();
        for e in &sent {
            sink.send(e.as_bytes(), false).unwrap();
        }
        sink.commit().unwrap();
        assert!(sink.wait_idle(Duration::from_secs(5)));
        let req = server.wait_requests(n + 1, Duration::from_secs(5))[n].clone();
        let h = &req.headers;
        assert_eq!(
            h.get("content-encoding").map(String::as_str),
            header,
            "{compression:?}"
        );
        assert_eq!(req.lines(), sent);
        assert_eq!(h["authtrail-agent-id"], AGENT_ID);
        assert_eq!(h["authtrail-schema"], "1");
        assert!(
            uuid::Uuid::try_parse(&h["authtrail-stream"]).is_ok(),
            "{:?}",
            h.get("authtrail-stream")
        );
        let content_type = match body {
            BodyFormat::Compact => "application/vnd.authtrail.batch",
            BodyFormat::EcsNdjson => "application/x-ndjson",
        };
        assert_eq!(h["content-type"], content_type, "{body:?}");
        assert!(!h.contains_key("authorization"));
        if header.is_some() {
            assert!(req.body.len() < req.ndjson().len() / 4, "{compression:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The spool across restarts

#[test]
fn spooled_batches_are_resent_after_a_restart_with_their_sequence_numbers() {
    let fx = Fixture::new();
    let config = fx.config(&dead_url());
    let mut sink = fx.open(&config);
    for batch in 0..2 {
        sink.send(event(batch).as_bytes(), false).unwrap();
        sink.commit().unwrap();
    }
    wait_for("a failed attempt", Duration::from_secs(5), || {
        sink.status().last_error.is_some()
    });
    let status = sink.status();
    assert_eq!(status.spooled_batches, 2);
    let describe = sink.describe();
    assert!(
        describe.starts_with("collector https://127.0.0.1:"),
        "{describe}"
    );
    assert!(
        describe.contains("2 batch(es)") && describe.contains("last error"),
        "{describe}"
    );
    assert!(
        status
            .last_error
            .as_deref()
            .unwrap()
            .contains("stays spooled")
            || status.log.iter().any(|l| l.contains("stays spooled")),
        "{status:?}"
    );
    drop(sink); // as a stop would; the files are what counts (a SIGKILL leaves the same)
    assert_eq!(
        spool_files(&fx.state_dir()),
        ["00000000000000000001.batch", "00000000000000000002.batch"]
    );

    let server = Server::start(&fx.server_leaf, None);
    let mut sink = fx.open(&fx.config(&server.url()));
    assert!(sink.wait_idle(Duration::from_secs(5)));
    sink.send(event(2).as_bytes(), false).unwrap();
    sink.commit().unwrap();
    assert!(sink.wait_idle(Duration::from_secs(5)));
    let reqs = server.requests();
    let got: Vec<(u64, Vec<String>)> = reqs.iter().map(|r| (r.seq(), r.lines())).collect();
    assert_eq!(
        got,
        [
            (1, vec![event(0)]),
            (2, vec![event(1)]),
            (3, vec![event(2)])
        ]
    );
    assert!(spool_files(&fx.state_dir()).is_empty());
    assert_eq!(sink.status().sent_batches, 3);
}

#[test]
fn checkpoint_handshake_holds_back_unpersisted_batches_and_discards_them_after_a_crash() {
    let fx = Fixture::new();
    let mut sink = fx.open(&fx.config(&dead_url()));
    sink.send(event(0).as_bytes(), false).unwrap();
    sink.commit().unwrap();
    let persisted = sink.mark();
    assert_eq!(persisted.offset, 1);
    sink.release(persisted);
    // Spooled, but the agent "dies" before its checkpoints (with the new mark) are persisted.
    sink.send(event(1).as_bytes(), false).unwrap();
    sink.commit().unwrap();
    assert_eq!(sink.mark().offset, 2);
    drop(sink);

    let server = Server::start(&fx.server_leaf, None);
    let mut sink = CollectorSink::open_recovered(
        &fx.config(&server.url()),
        &fx.state_dir(),
        AGENT_ID,
        facts(),
        Some(persisted),
    )
    .unwrap();
    assert!(sink.wait_idle(Duration::from_secs(5)));
    let got: Vec<(u64, Vec<String>)> = server
        .requests()
        .iter()
        .map(|r| (r.seq(), r.lines()))
        .collect();
    assert_eq!(
        got,
        [(1, vec![event(0)])],
        "batch 2 is read again, not sent"
    );
    assert!(
        sink.status()
            .log
            .iter()
            .any(|l| l.contains("discarded 1 spooled batch(es) (2 to 2)")),
        "{:?}",
        sink.status().log
    );

    // From now on a batch waits for its release.
    sink.send(event(1).as_bytes(), false).unwrap();
    sink.commit().unwrap();
    let mark = sink.mark();
    assert_eq!(mark.offset, 3, "the discarded number is not reused");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(server.requests().len(), 1, "held back until released");
    sink.release(mark);
    assert!(sink.wait_idle(Duration::from_secs(5)));
    let last = server.requests().last().unwrap().clone();
    assert_eq!((last.seq(), last.lines()), (3, vec![event(1)]));
}

#[test]
fn torn_spool_file_is_discarded_with_a_warning() {
    let fx = Fixture::new();
    let spool = fx.state_dir().join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    // A batch cut short, and a write that never got its rename.
    std::fs::write(
        spool.join("00000000000000000007.batch"),
        b"ATSB\x01\x00\x01",
    )
    .unwrap();
    std::fs::write(spool.join(".00000000000000000008.tmp"), b"ATSB").unwrap();
    let server = Server::start(&fx.server_leaf, None);
    let mut sink = fx.open(&fx.config(&server.url()));
    let status = sink.status();
    assert!(
        status
            .log
            .iter()
            .any(|l| l.contains("discarded spool file") && l.contains("00000000000000000007")),
        "{:?}",
        status.log
    );
    assert!(
        status
            .log
            .iter()
            .any(|l| l.contains("read again from the source")),
        "{:?}",
        status.log
    );
    assert_eq!(status.spooled_batches, 0);
    assert!(status.next_seq > 7, "the discarded number is not reused");
    sink.send(event(1).as_bytes(), false).unwrap();
    sink.commit().unwrap();
    assert!(sink.wait_idle(Duration::from_secs(5)));
    assert_eq!(server.requests()[0].seq(), 8);
    assert!(!spool.join(".00000000000000000008.tmp").exists());
}

// ---------------------------------------------------------------------------------------------
// Answers

#[test]
fn too_large_batch_is_split_into_halves_with_new_sequence_numbers() {
    let fx = Fixture::new();
    let server = Server::start(&fx.server_leaf, None);
    server.script([Reply::Status(413, vec![], "too large".into())]);
    let mut sink = fx.open(&fx.config(&server.url()));
    let sent: Vec<String> = (0..5).map(event).collect();
    for e in &sent {
        sink.send(e.as_bytes(), false).unwrap();
    }
    sink.commit().unwrap();
    assert!(sink.wait_idle(Duration::from_secs(5)));
    let reqs = server.requests();
    let got: Vec<(u64, usize)> = reqs.iter().map(|r| (r.seq(), r.lines().len())).collect();
    assert_eq!(got, [(1, 5), (2, 2), (3, 3)]);
    let delivered: Vec<String> = reqs[1..].iter().flat_map(Request::lines).collect();
    assert_eq!(delivered, sent, "every event once, in order");
    let status = sink.status();
    assert_eq!(status.splits, 1);
    assert!(
        status.log.iter().any(|l| l.contains("413")),
        "{:?}",
        status.log
    );
}

#[test]
fn malformed_batch_goes_to_dead_letter_with_the_reason() {
    let fx = Fixture::new();
    let server = Server::start(&fx.server_leaf, None);
    server.script([Reply::Status(400, vec![], "line 1: expected JSON".into())]);
    let mut sink = fx.open(&fx.config(&server.url()));
    sink.send(b"not json", false).unwrap();
    sink.commit().unwrap();
    sink.send(event(1).as_bytes(), false).unwrap();
    sink.commit().unwrap();
    assert!(sink.wait_idle(Duration::from_secs(5)));
    assert_eq!(server.requests().len(), 2, "the next batch still goes");
    let dead = fx.state_dir().join("spool/dead-letter");
    assert!(dead.join("00000000000000000001.batch").exists());
    let reason = std::fs::read_to_string(dead.join("00000000000000000001.reason")).unwrap();
    assert!(reason.contains("line 1: expected JSON"), "{reason}");
    let status = sink.status();
    assert_eq!(status.dead_letters, 1);
    assert!(
        status
            .log
            .iter()
            .any(|l| l.contains("dead-letter") && l.contains("line 1: expected JSON")),
        "{:?}",
        status.log
    );
}

#[test]
fn a_409_keeps_the_batch_and_sends_it_again_under_a_new_stream() {
    let fx = Fixture::new();
    let server = Server::start(&fx.server_leaf, None);
    server.script([Reply::Status(
        409,
        vec![],
        "already stored with other content (stored digest aa, this one bb)".into(),
    )]);
    let mut sink = fx.open(&fx.config(&server.url()));
    sink.send(event(1).as_bytes(), false).unwrap();
    sink.commit().unwrap();
    assert!(sink.wait_idle(Duration::from_secs(5)));
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2, "sent again after the 409");
    assert_eq!(reqs[0].lines(), reqs[1].lines(), "the same events");
    let stream = |r: &Request| r.headers["authtrail-stream"].clone();
    assert_ne!(stream(&reqs[0]), stream(&reqs[1]), "under a new stream");
    let status = sink.status();
    assert_eq!((status.conflicts, status.dead_letters), (1, 0));
    assert!(
        status
            .log
            .iter()
            .any(|l| l.contains("409") && l.contains("stored digest aa, this one bb")),
        "both digests in the log: {:?}",
        status.log
    );
    // Later batches go in the new stream.
    sink.send(event(2).as_bytes(), false).unwrap();
    sink.commit().unwrap();
    assert!(sink.wait_idle(Duration::from_secs(5)));
    let reqs = server.requests();
    assert_eq!(stream(&reqs[2]), stream(&reqs[1]));
}

#[test]
fn events_the_collector_refuses_alone_go_to_dead_letter() {
    let fx = Fixture::new();
    let server = Server::start(&fx.server_leaf, None);
    server.script([Reply::Status(
        200,
        vec![],
        "{\"status\":\"stored\",\"events\":2,\"rejected\":1,\"rejections\":\
         [{\"line\":2,\"reason\":\"`@timestamp` is outside the range\"}]}"
            .into(),
    )]);
    let mut sink = fx.open(&fx.config(&server.url()));
    for i in 0..3 {
        sink.send(event(i).as_bytes(), false).unwrap();
    }
    sink.commit().unwrap();
    assert!(sink.wait_idle(Duration::from_secs(5)));
    let dead = fx.state_dir().join("spool/dead-letter");
    let kept = std::fs::read(dead.join("00000000000000000001.batch")).unwrap();
    let kept = agent::ship::spool::SpooledBatch::from_file_bytes(&kept).unwrap();
    assert_eq!(
        String::from_utf8(kept.body).unwrap(),
        format!("{}\n", event(1)),
        "only the refused line"
    );
    let reason = std::fs::read_to_string(dead.join("00000000000000000001.reason")).unwrap();
    assert!(
        reason.contains("line 2: `@timestamp` is outside"),
        "{reason}"
    );
    let status = sink.status();
    assert_eq!((status.rejected_events, status.sent_batches), (1, 1));
    assert_eq!(sink.report().unwrap().rejected_events, 1);
    assert!(spool_files(&fx.state_dir()).is_empty());
}

#[test]
fn refused_credentials_keep_the_batch_until_the_token_file_is_fixed() {
    let fx = Fixture::new();
    let server = Server::start(&fx.server_leaf, None);
    server.state.lock().unwrap().token = Some("right-token".into());
    let token = fx.write("token", "wrong-token\n");
    let mut config = fx.config(&server.url());
    config.auth.token_file = Some(token);
    let mut sink = fx.open(&config);
    sink.send(event(0).as_bytes(), false).unwrap();
    sink.commit().unwrap();
    wait_for("a refusal", Duration::from_secs(5), || {
        sink.status().last_error.is_some()
    });
    let status = sink.status();
    assert!(
        status
            .last_error
            .as_deref()
            .unwrap()
            .contains("refused this agent (HTTP 401"),
        "{status:?}"
    );
    assert_eq!(status.spooled_batches, 1, "kept");
    fx.write("token", "right-token\n");
    assert!(sink.wait_idle(Duration::from_secs(5)));
    let reqs = server.requests();
    let last = reqs.last().unwrap();
    assert_eq!(last.headers["authorization"], "Bearer right-token");
    assert_eq!(last.seq(), 1);
    assert_eq!(last.lines(), [event(0)]);
}

#[test]
fn retry_after_is_honoured() {
    let fx = Fixture::new();
    let server = Server::start(&fx.server_leaf, None);
    server.script([
        Reply::Status(429, vec![("Retry-After", "1".into())], String::new()),
        Reply::Status(503, vec![("Retry-After", "0".into())], String::new()),
    ]);
    let mut config = fx.config(&server.url());
    config.retry.max = Duration::from_secs(5);
    let mut sink = fx.open(&config);
    sink.send(event(0).as_bytes(), false).unwrap();
    sink.commit().unwrap();
    assert!(sink.wait_idle(Duration::from_secs(10)));
    let reqs = server.requests();
    assert_eq!(reqs.len(), 3);
    let gap = reqs[1].at - reqs[0].at;
    assert!(gap >= Duration::from_millis(950), "{gap:?}");
    assert!(gap < Duration::from_secs(3), "{gap:?}");
    assert!(reqs.iter().all(|r| r.seq() == 1));
    assert!(
        sink.status().log.iter().any(|l| l.contains("Retry-After")),
        "{:?}",
        sink.status().log
    );
}

#[test]
fn a_dropped_connection_is_retried() {
    let fx = Fixture::new();
    let server = Server::start(&fx.server_leaf, None);
    server.script([Reply::Close]);
    let mut sink = fx.open(&fx.config(&server.url()));
    sink.send(event(0).as_bytes(), false).unwrap();
    sink.commit().unwrap();
    assert!(sink.wait_idle(Duration::from_secs(5)));
    let reqs = server.requests();
    assert_eq!(reqs.iter().map(Request::seq).collect::<Vec<_>>(), [1, 1]);
}

// ---------------------------------------------------------------------------------------------
// TLS

#[test]
fn untrusted_collectors_are_refused_with_a_clear_error_and_nothing_is_lost() {
    let fx = Fixture::new();
    let other_ca = Ca::new("someone else");
    type Tweak<'a> = Box<dyn Fn(&mut CollectorConfig) + 'a>;
    let cases: Vec<(&str, Leaf, Tweak<'_>, &str)> = vec![
        (
            "wrong CA",
            other_ca.leaf(&["127.0.0.1"], false),
            Box::new(|_| {}),
            "not signed by a trusted CA",
        ),
        (
            "wrong host name",
            fx.ca.leaf(&["collector.example"], false),
            Box::new(|_| {}),
            "not valid for the host name \"127.0.0.1\"",
        ),
        (
            "expired",
            fx.ca.leaf(&["127.0.0.1"], true),
            Box::new(|_| {}),
            "expired",
        ),
        (
            "unpinned key",
            fx.ca.leaf(&["127.0.0.1"], false),
            Box::new(|c| {
                c.tls.pin_sha256 =
                    vec![agent::ship::tls::spki_pin(&fx.server_leaf.cert_der).unwrap()];
            }),
            "not pinned",
        ),
    ];
    for (what, leaf, tweak, expect) in cases {
        let server = Server::start(&leaf, None);
        let mut config = fx.config(&server.url());
        tweak(&mut config);
        let state = tempfile::tempdir().unwrap();
        let mut sink = CollectorSink::open(&config, state.path(), AGENT_ID, facts()).unwrap();
        sink.send(event(0).as_bytes(), false).unwrap();
        sink.commit().unwrap();
        wait_for(what, Duration::from_secs(5), || {
            sink.status().last_error.is_some()
        });
        let status = sink.status();
        let err = status.last_error.clone().unwrap();
        assert!(err.contains(expect), "{what}: {err}");
        assert!(err.contains("TLS with"), "{what}: {err}");
        assert_eq!(status.spooled_batches, 1, "{what}: the batch stays");
        assert!(server.requests().is_empty(), "{what}: nothing was sent");
        assert_eq!(spool_files(state.path()).len(), 1, "{what}");
    }
}

#[test]
fn server_name_override_and_a_matching_pin_are_accepted() {
    let fx = Fixture::new();
    let leaf = fx.ca.leaf(&["collector.example"], false);
    let server = Server::start(&leaf, None);
    let mut config = fx.config(&server.url());
    config.tls.server_name = Some("collector.example".into());
    config.tls.pin_sha256 = vec![
        agent::ship::tls::spki_pin(&fx.server_leaf.cert_der).unwrap(),
        agent::ship::tls::spki_pin(&leaf.cert_der).unwrap(),
    ];
    let mut sink = fx.open(&config);
    sink.send(event(0).as_bytes(), false).unwrap();
    sink.commit().unwrap();
    assert!(sink.wait_idle(Duration::from_secs(5)));
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn client_certificate_is_presented_and_replaced_without_restart() {
    let fx = Fixture::new();
    let client_ca = Ca::new("agents CA");
    let server = Server::start(&fx.server_leaf, Some(&client_ca));
    let first = client_ca.leaf(&["agent-1"], false);
    let second = client_ca.leaf(&["agent-1"], false);
    let mut config = fx.config(&server.url());
    config.tls.cert_file = Some(fx.write("agent.crt", &first.cert_pem));
    config.tls.key_file = Some(fx.write("agent.key", &first.key_pem));
    let mut sink = fx.open(&config);
    sink.send(event(0).as_bytes(), false).unwrap();
    sink.commit().unwrap();
    assert!(sink.wait_idle(Duration::from_secs(5)));
    assert_eq!(
        server.requests()[0].client_cert.as_deref(),
        Some(&first.cert_der[..])
    );

    // Renewal: key first, then certificate (a half-replaced pair is not used).
    fx.write("agent.key", &second.key_pem);
    fx.write("agent.crt", &second.cert_pem);
    sink.send(event(1).as_bytes(), false).unwrap();
    sink.commit().unwrap();
    assert!(sink.wait_idle(Duration::from_secs(5)));
    let reqs = server.requests();
    assert_eq!(
        reqs.last().unwrap().client_cert.as_deref(),
        Some(&second.cert_der[..])
    );
}

#[test]
fn a_collector_that_requires_a_client_certificate_says_so() {
    let fx = Fixture::new();
    let client_ca = Ca::new("agents CA");
    let server = Server::start_requiring_client_cert(&fx.server_leaf, &client_ca);
    let mut sink = fx.open(&fx.config(&server.url()));
    sink.send(event(0).as_bytes(), false).unwrap();
    sink.commit().unwrap();
    wait_for("a refusal", Duration::from_secs(5), || {
        sink.status().last_error.is_some()
    });
    let status = sink.status();
    let err = status.last_error.unwrap();
    assert!(err.contains("client certificate"), "{err}");
    assert_eq!(status.spooled_batches, 1);
    assert!(server.requests().is_empty());
}

#[test]
fn connections_are_reused_across_batches() {
    let fx = Fixture::new();
    let server = Server::start(&fx.server_leaf, None);
    let mut sink = fx.open(&fx.config(&server.url()));
    for i in 0..3 {
        sink.send(event(i).as_bytes(), false).unwrap();
        sink.commit().unwrap();
        assert!(sink.wait_idle(Duration::from_secs(5)));
    }
    assert_eq!(server.requests().len(), 3);
    let st = server.state.lock().unwrap();
    assert_eq!(st.connections, 1, "one TLS session for three batches");
    assert!(st.handshake_errors.is_empty());
}

// ---------------------------------------------------------------------------------------------
// A full spool

#[test]
fn full_spool_drop_oldest_counts_and_raises_an_alert() {
    let fx = Fixture::new();
    let mut config = fx.config(&dead_url());
    config.compression = Compression::None;
    // Sizes below are NDJSON's.
    config.body = BodyFormat::EcsNdjson;
    config.batch_max_bytes = ByteSize(300);
    // A batch of one event is ~130 bytes with its header: five fit, the alert (~480) and one.
    config.spool.max_bytes = ByteSize(700);
    config.spool.policy = SpoolPolicy::DropOldest;
    let mut sink = fx.open(&config);
    for i in 0..10 {
        sink.send(event(i).as_bytes(), false).unwrap();
        sink.commit().unwrap();
    }
    let status = sink.status();
    assert!(status.dropped_batches >= 1, "{status:?}");
    assert!(
        status.dropped_events >= status.dropped_batches,
        "{status:?}"
    );
    assert!(status.spooled_bytes <= 700, "{status:?}");
    assert!(
        status.log.iter().any(|l| l.contains("spool full")),
        "{:?}",
        status.log
    );
    // The alert rides in the next batch.
    assert!(sink.wants_commit(false));
    sink.commit().unwrap();
    drop(sink);

    let server = Server::start(&fx.server_leaf, None);
    let sink = fx.open(&fx.config(&server.url()));
    assert!(sink.wait_idle(Duration::from_secs(5)));
    let lines: Vec<String> = server.requests().iter().flat_map(Request::lines).collect();
    let alerts: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["event"]["action"] == "spool_dropped")
        .collect();
    assert!(!alerts.is_empty(), "{lines:?}");
    for a in &alerts {
        assert_eq!(a["event"]["kind"], "alert");
        assert!(a["authtrail"]["count"].as_u64().unwrap() >= 1, "{a}");
        assert!(
            a["authtrail"]["dropped_batches"].as_u64().unwrap() >= 1,
            "{a}"
        );
    }
    // The newest events survived; the oldest were the ones dropped.
    assert!(lines.contains(&event(9)), "{lines:?}");
    assert!(!lines.contains(&event(0)), "{lines:?}");
}

#[test]
fn full_spool_with_block_fails_the_commit_and_keeps_the_events() {
    let fx = Fixture::new();
    let mut config = fx.config(&dead_url());
    config.compression = Compression::None;
    config.batch_max_bytes = ByteSize(200);
    config.spool.max_bytes = ByteSize(400);
    config.spool.policy = SpoolPolicy::Block;
    let mut sink = fx.open(&config);
    let mut refused = None;
    for i in 0..5 {
        sink.send(event(i).as_bytes(), false).unwrap();
        if let Err(e) = sink.commit() {
            refused = Some((i, e.to_string()));
            break;
        }
    }
    let (at, msg) = refused.expect("a commit is refused");
    assert!(msg.contains("spool full"), "{msg}");
    assert!(msg.contains("block"), "{msg}");
    assert_eq!(sink.status().dropped_batches, 0);
    // Retrying keeps failing while the collector is away, without losing the held events.
    assert!(sink.commit().is_err());
    drop(sink);

    let server = Server::start(&fx.server_leaf, None);
    let sink = fx.open(&fx.config(&server.url()));
    assert!(sink.wait_idle(Duration::from_secs(5)));
    let lines: Vec<String> = server.requests().iter().flat_map(Request::lines).collect();
    // What was spooled arrives; the refused event was never acknowledged to the pipeline, so
    // it is read again from the log (not part of this sink's duty).
    assert_eq!(lines, (0..at).map(event).collect::<Vec<_>>());
}

#[test]
fn with_the_spool_disabled_commit_waits_for_the_collector() {
    let fx = Fixture::new();
    let mut config = fx.config(&dead_url());
    config.spool.enabled = false;
    let mut sink = fx.open(&config);
    sink.send(event(0).as_bytes(), false).unwrap();
    let e = sink.commit().unwrap_err();
    assert!(e.to_string().contains("not yet acknowledged"), "{e}");
    assert!(spool_files(&fx.state_dir()).is_empty(), "nothing on disk");
    drop(sink);

    let server = Server::start(&fx.server_leaf, None);
    let mut config = fx.config(&server.url());
    config.spool.enabled = false;
    let mut sink = fx.open(&config);
    sink.send(event(1).as_bytes(), false).unwrap();
    sink.commit().unwrap();
    // Ok means acknowledged.
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].lines(), [event(1)]);
    assert!(
        reqs[0].seq() >= 2,
        "the number given to the unacknowledged batch is not reused"
    );
}

#[test]
fn memory_buffer_commits_through_an_outage_until_full_and_keeps_room_for_alerts() {
    let fx = Fixture::new();
    let mut config = fx.config(&dead_url());
    config.compression = Compression::None;
    config.batch_max_events = 1;
    config.buffer.kind = Some(BufferKind::Memory);
    config.buffer.max_bytes = ByteSize(1 << 20);
    let mut sink = fx.open(&config);
    let big = |i: usize| {
        format!(
            "{{\"event\":{{\"sequence\":{i}}},\"pad\":\"{}\"}}",
            "x".repeat(10_000)
        )
    };
    // The collector is unreachable, yet commits succeed (reading and detection go on) until
    // the ring's ordinary share is full; then the commit fails (reading pauses).
    let mut committed = 0;
    let msg = loop {
        sink.send(big(committed).as_bytes(), false).unwrap();
        match sink.commit() {
            Ok(()) => committed += 1,
            Err(e) => break e.to_string(),
        }
        assert!(committed < 200, "a 1 MiB buffer never filled");
    };
    assert!(
        (80..=90).contains(&committed),
        "{committed} batches of 10 KB in 7/8 MiB"
    );
    assert!(
        msg.contains("memory buffer") && msg.contains("reading pauses"),
        "{msg}"
    );
    assert_eq!(
        sink.acknowledged().unwrap().offset,
        0,
        "nothing acknowledged"
    );
    wait_for("a failed send", Duration::from_secs(5), || {
        sink.status().last_error.is_some()
    });
    // An alert still gets in (the reserve), and is written to the agent's log at once.
    let before = sink.status().spooled_batches;
    sink.send(
        br#"{"event":{"kind":"alert"},"rule":{"id":"brute_force"}}"#,
        true,
    )
    .unwrap();
    assert!(sink.commit().is_err(), "the ordinary batch still waits");
    let status = sink.status();
    assert_eq!(status.spooled_batches, before + 1);
    assert_eq!(status.dropped_batches, 0, "nothing is ever evicted");
    assert!(
        status.log.iter().any(
            |l| l.contains("alert raised while the collector is unreachable")
                && l.contains("brute_force")
        ),
        "{:?}",
        status.log
    );
    // Nothing was written for any of it.
    assert!(spool_files(&fx.state_dir()).is_empty(), "nothing on disk");
    drop(sink);

    // With a collector: acknowledged up to the last batch, in a stream of this process,
    // numbered from 1 again.
    let server = Server::start(&fx.server_leaf, None);
    let mut config = fx.config(&server.url());
    config.buffer.kind = Some(BufferKind::Memory);
    let mut streams = Vec::new();
    for round in 0..2 {
        let mut sink = fx.open(&config);
        for i in 0..3 {
            sink.send(event(10 * round + i).as_bytes(), false).unwrap();
            sink.commit().unwrap();
        }
        assert!(sink.wait_idle(Duration::from_secs(5)));
        assert_eq!(sink.acknowledged(), Some(sink.mark()));
        let reqs = server.requests();
        let mine: Vec<&Request> = reqs.iter().skip(3 * round).collect();
        assert_eq!(
            mine.iter().map(|r| r.seq()).collect::<Vec<_>>(),
            [1, 2, 3],
            "sent in order, from 1"
        );
        streams.push(mine[0].headers["authtrail-stream"].clone());
    }
    assert_ne!(streams[0], streams[1], "a new stream per start");
    assert!(spool_files(&fx.state_dir()).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Heartbeat and proxy

#[test]
fn heartbeat_is_sent_when_idle() {
    let fx = Fixture::new();
    let server = Server::start(&fx.server_leaf, None);
    let mut config = fx.config(&server.url());
    config.heartbeat = Duration::from_millis(200);
    let sink = fx.open(&config);
    let reqs = server.wait_requests(2, Duration::from_secs(5));
    assert!(reqs.len() >= 2);
    let doc: serde_json::Value = serde_json::from_str(&reqs[0].lines()[0]).unwrap();
    assert_eq!(doc["event"]["kind"], "state");
    assert_eq!(doc["event"]["dataset"], "authtrail.heartbeat");
    assert_eq!(doc["agent"]["id"], AGENT_ID);
    assert_eq!(doc["host"]["hostname"], "web-1");
    assert_eq!(doc["host"]["os"]["name"], "Debian GNU/Linux");
    assert_eq!(doc["host"]["architecture"], "x86_64");
    assert!(doc["@timestamp"].is_string());
    assert!(reqs[1].seq() > reqs[0].seq());
    assert!(sink.status().heartbeats >= 2);
}

/// A CONNECT proxy: records the request line and pipes bytes both ways.
fn start_proxy() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut client) = conn else { continue };
            let s = s.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(client.try_clone().unwrap());
                let mut first = String::new();
                reader.read_line(&mut first).unwrap();
                loop {
                    let mut h = String::new();
                    reader.read_line(&mut h).unwrap();
                    if h.trim().is_empty() {
                        break;
                    }
                }
                s.lock().unwrap().push(first.trim().to_owned());
                let target = first.split_whitespace().nth(1).unwrap().to_owned();
                let upstream = TcpStream::connect(target).unwrap();
                client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .unwrap();
                let (mut up_r, mut up_w) = (upstream.try_clone().unwrap(), upstream);
                let mut down_w = client;
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut reader, &mut up_w);
                });
                let _ = std::io::copy(&mut up_r, &mut down_w);
            });
        }
    });
    (addr, seen)
}

#[test]
fn batches_go_through_a_connect_proxy() {
    let fx = Fixture::new();
    let server = Server::start(&fx.server_leaf, None);
    let (proxy, seen) = start_proxy();
    let mut config = fx.config(&server.url());
    config.proxy = Some(ProxyUrl::parse(&format!("http://{proxy}")).unwrap());
    let mut sink = fx.open(&config);
    sink.send(event(0).as_bytes(), false).unwrap();
    sink.commit().unwrap();
    assert!(
        sink.wait_idle(Duration::from_secs(5)),
        "{:?}",
        sink.status()
    );
    assert_eq!(server.requests().len(), 1);
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen.first().map(String::as_str),
        Some(format!("CONNECT 127.0.0.1:{} HTTP/1.1", server.addr.port()).as_str())
    );
}

// ---------------------------------------------------------------------------------------------
// Configuration

fn parse(text: &str) -> Result<Config, Vec<ConfigError>> {
    Config::check(text, Path::new("agent.toml"))
}

#[test]
fn collector_config_defaults() {
    let config =
        parse("[sink]\ntype = \"collector\"\nurl = \"https://collector.example:8443\"\n").unwrap();
    let SinkConfig::Collector(c) = &config.sink else {
        panic!("{:?}", config.sink)
    };
    assert_eq!(
        **c,
        CollectorConfig {
            url: Some(CollectorUrl::parse("https://collector.example:8443").unwrap()),
            ..CollectorConfig::default()
        }
    );
    assert_eq!(c.compression, Compression::Zstd);
    assert_eq!(c.batch_max_events, 5000);
    assert_eq!(c.batch_max_bytes, ByteSize(1 << 20));
    assert_eq!(c.batch_max_age, Duration::from_secs(1));
    assert_eq!(c.heartbeat, Duration::from_secs(60));
    assert_eq!(c.spool.max_bytes, ByteSize(256 << 20));
    assert_eq!(c.spool.policy, SpoolPolicy::DropOldest);
    assert!(c.spool.enabled);
    assert_eq!(c.retry.initial, Duration::from_secs(1));
    assert_eq!(c.retry.max, Duration::from_secs(60));
    // It round-trips through `authtrail validate`'s TOML.
    let again = parse(&config.to_toml().unwrap()).unwrap();
    assert_eq!(again.sink, config.sink);
}

#[test]
fn collector_config_refuses_plaintext_and_bad_settings() {
    let e = errors("[sink]\ntype = \"collector\"\nurl = \"http://collector.example\"\n");
    assert!(
        e.contains("[sink] url") && e.contains("no plaintext fallback"),
        "{e}"
    );
    let e = errors("[sink]\ntype = \"collector\"\n");
    assert!(e.contains("url: is required"), "{e}");
    let e = errors(
        "[sink]\ntype = \"collector\"\nurl = \"https://c\"\nproxy = \"https://p:1\"\n\
         batch-max-events = 0\n[sink.tls]\npin-sha256 = [\"abc\"]\ncert-file = \"/c.pem\"\n\
         [sink.spool]\nmax-bytes = 10\n",
    );
    for want in [
        "proxy",
        "batch-max-events",
        "tls.pin-sha256",
        "set both `cert-file` and `key-file`",
        "spool.max-bytes",
    ] {
        assert!(e.contains(want), "{want} in {e}");
    }
    let e = errors(
        "[sink]\ntype = \"collector\"\nurl = \"https://c\"\n[sink.spool]\npolicy = \"drop\"\n",
    );
    assert!(e.contains("drop-oldest"), "{e}");
}

#[test]
fn annotated_example_config_parses_with_the_collector_section_uncommented() {
    let text = configs::text();
    let section = configs::sink_section(&text, "collector").join("\n");
    let before = configs::before_sink(&text);
    let config = Config::from_toml(&format!("{before}\n{section}\n"), Path::new("agent.toml"))
        .unwrap_or_else(|e| panic!("{e}\n{section}"));
    let SinkConfig::Collector(c) = &config.sink else {
        panic!("{:?}", config.sink)
    };
    assert_eq!(
        c.url.as_ref().map(CollectorUrl::as_str),
        Some("https://collector.example:8443")
    );
}

// ---------------------------------------------------------------------------------------------
// The agent binary, killed

/// `authtrail run` with the collector sink on a backlog, SIGKILLed at pseudo-random points,
/// then left to finish: every log line reaches the collector, no batch sequence number is ever
/// used for two different bodies (what the collector's de-duplication relies on), and after
/// de-duplication on the sequence every line is there exactly once.
#[test]
fn sigkilled_agent_delivers_every_line_exactly_once_after_deduplication() {
    const LINES: usize = 20_000;
    let fx = Fixture::new();
    let server = Server::start(&fx.server_leaf, None);
    let log = fx.dir.path().join("auth.log");
    let mut text = String::new();
    let mut offsets = Vec::with_capacity(LINES);
    for i in 0..LINES {
        offsets.push(text.len() as u64);
        text.push_str(&format!(
            "Nov 28 08:06:37 testhost sshd[{}]: Failed password for user{} from 127.0.0.4 port {} ssh2\n",
            1000 + i % 30000,
            i % 97,
            1024 + i % 60000
        ));
    }
    std::fs::write(&log, &text).unwrap();
    let config = fx.dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "state-dir = {state:?}\ntimezone = \"UTC\"\n\
             [[source]]\ntype = \"file\"\npaths = [{log:?}]\nread-from = \"beginning\"\n\
             [sink]\ntype = \"collector\"\nurl = {url:?}\nbatch-max-events = 500\n\
             [sink.tls]\nca-file = {ca:?}\n\
             [sink.retry]\ninitial = \"20ms\"\nmax = \"200ms\"\n",
            state = fx.state_dir().display().to_string(),
            log = log.display().to_string(),
            url = server.url(),
            ca = fx.ca_file.display().to_string(),
        ),
    )
    .unwrap();
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_authtrail"))
            .args(["--config"])
            .arg(&config)
            .arg("run")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut seed = std::process::id() as u64 | 1;
    for _ in 0..4 {
        let mut child = run();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(50 + seed % 400));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    let mut child = run();
    let delivered = || {
        let mut seen = std::collections::HashSet::new();
        for r in server.requests() {
            for line in r.lines() {
                let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                if let Some(o) = v["log"]["offset"].as_u64() {
                    seen.insert(o);
                }
            }
        }
        seen
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while delivered().len() < LINES && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let seen = delivered();
    let missing: Vec<&u64> = offsets.iter().filter(|o| !seen.contains(o)).collect();
    assert!(missing.is_empty(), "{} lines never arrived", missing.len());
    let mut bodies: HashMap<u64, Vec<String>> = HashMap::new();
    for r in server.requests() {
        let lines = r.lines();
        let previous = bodies.entry(r.seq()).or_insert_with(|| lines.clone());
        assert_eq!(
            *previous,
            lines,
            "batch {} sent twice with different content",
            r.seq()
        );
    }
    // And with the checkpoint handshake (open_recovered, release), a collector that keeps one
    // copy per sequence number holds every line exactly once.
    let mut per_offset: HashMap<u64, usize> = HashMap::new();
    for lines in bodies.values() {
        for line in lines {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            if let Some(o) = v["log"]["offset"].as_u64() {
                *per_offset.entry(o).or_default() += 1;
            }
        }
    }
    let twice = per_offset.values().filter(|n| **n > 1).count();
    assert_eq!(
        twice, 0,
        "{twice} lines stored twice after de-duplication on the sequence"
    );
}

#[test]
fn each_batch_reports_the_spool_backlog_and_how_long_it_has_waited() {
    use agent_core::wire::{SPOOL_BACKLOG_HEADER, SpoolBacklog};
    let fx = Fixture::new();
    let server = Server::start(&fx.server_leaf, None);
    server.script([Reply::Status(
        503,
        vec![("Retry-After", "1".into())],
        String::new(),
    )]);
    let mut config = fx.config(&server.url());
    config.batch_max_events = 1;
    let mut sink = fx.open(&config);
    for i in 0..3 {
        sink.send(event(i).as_bytes(), false).unwrap();
    }
    sink.commit().unwrap();
    assert!(sink.wait_idle(Duration::from_secs(10)));
    let backlog = |r: &Request| {
        let h = &r.headers[&SPOOL_BACKLOG_HEADER.to_ascii_lowercase()];
        SpoolBacklog::parse(h).unwrap_or_else(|| panic!("{h}"))
    };
    let reqs = server.requests();
    let seen: Vec<(u64, u64)> = reqs.iter().map(|r| (r.seq(), backlog(r).batches)).collect();
    assert_eq!(seen, [(1, 3), (1, 3), (2, 2), (3, 1)]);
    assert!(reqs.iter().all(|r| backlog(r).bytes > 0));
    assert!(backlog(&reqs[0]).lag_ms < 500, "{:?}", backlog(&reqs[0]));
    // After the refusal the backlog has waited at least the pause between the attempts.
    let gap = (reqs[1].at - reqs[0].at).as_millis() as u64;
    assert!(gap >= 100, "{gap}");
    assert!(
        backlog(&reqs[1]).lag_ms + 20 >= gap,
        "{gap} {:?}",
        backlog(&reqs[1])
    );
    assert!(backlog(&reqs[3]).lag_ms >= backlog(&reqs[1]).lag_ms);
    // Drained, the next batch starts from nothing.
    sink.send(event(9).as_bytes(), false).unwrap();
    sink.commit().unwrap();
    assert!(sink.wait_idle(Duration::from_secs(10)));
    let last = server.requests().pop().unwrap();
    assert_eq!(backlog(&last).batches, 1);
    assert!(backlog(&last).lag_ms < 500, "{:?}", backlog(&last));
}
