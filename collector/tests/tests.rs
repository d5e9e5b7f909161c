//! End-to-end tests of the collector over real TLS on loopback.
// Helpers outside `#[test]` functions unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used)]

mod console;
mod nats;
mod trust;
mod util;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use collector::config::Require;
use util::*;
use uuid::Uuid;

const BIN: &str = env!("CARGO_BIN_EXE_authtrail-collector");

struct Setup {
    _dir: tempfile::TempDir,
    pki: Pki,
    data: std::path::PathBuf,
    root: std::path::PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"));
    Setup {
        data: dir.path().join("data"),
        root: dir.path().to_owned(),
        pki,
        _dir: dir,
    }
}

#[test]
fn mtls_batch_is_stored_and_a_resent_batch_is_stored_once() {
    let s = setup();
    let server = TestServer::start(config(&s.pki, &s.data, Require::Mtls));
    let agent_cert = s.pki.agent();
    let client = client(&s.pki.ca(), Some(&agent_cert));
    let body = events();
    let n = body.lines().count();
    let p = Post::new(agent_cert.id, 7, zstd(body.as_bytes()));

    let a = post(&client, &server, &p).unwrap();
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.body.trim(),
        format!("{{\"status\":\"stored\",\"events\":{n}}}")
    );
    let a = post(&client, &server, &p).unwrap();
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body.trim(), "{\"status\":\"duplicate\"}");

    assert_eq!(server.stored_events(), n as i64);
    assert_eq!(server.count("SELECT count(*) FROM batches"), 1);
    let stats = server.store().stats(None, 0, 3).unwrap();
    assert_eq!(stats.agents.len(), 1);
    assert_eq!(stats.agents[0].agent_id, agent_cert.id.to_string());
    assert_eq!(stats.agents[0].hostname.as_deref(), Some("testhost"));
    assert_eq!(stats.agents[0].last_seq, Some(7));
}

#[test]
fn gzip_identity_and_heartbeat_batches() {
    let s = setup();
    let server = TestServer::start(config(&s.pki, &s.data, Require::Mtls));
    let a = s.pki.agent();
    let client = client(&s.pki.ca(), Some(&a));
    let body = events();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(body.as_bytes()).unwrap();
    let mut p = Post::new(a.id, 1, gz.finish().unwrap());
    p.encoding = Some("gzip");
    assert_eq!(post(&client, &server, &p).unwrap().status, 200);
    let mut p = Post::new(a.id, 2, body.clone().into_bytes());
    p.encoding = None;
    assert_eq!(post(&client, &server, &p).unwrap().status, 200);
    // An empty body is a heartbeat; a state document goes to `agents`, not `events`.
    let mut p = Post::new(a.id, 3, Vec::new());
    p.encoding = None;
    let r = post(&client, &server, &p).unwrap();
    assert_eq!(
        (r.status, r.body.trim()),
        (200, "{\"status\":\"stored\",\"events\":0}")
    );
    let state = r#"{"@timestamp":"2026-01-01T00:00:00Z","event":{"kind":"state"},"host":{"hostname":"web-9","os":{"name":"Debian"}},"agent":{"version":"0.1.0"}}"#;
    let p = Post::new(a.id, 4, zstd(state.as_bytes()));
    assert_eq!(post(&client, &server, &p).unwrap().status, 200);
    let n = body.lines().count() as i64;
    assert_eq!(server.stored_events(), 2 * n);
    assert_eq!(server.count("SELECT count(*) FROM batches"), 4);
    let conn = rusqlite_conn(&server.config.db_path());
    let (host, facts): (String, String) = conn
        .query_row("SELECT hostname, facts FROM agents", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(host, "web-9");
    assert!(facts.contains("Debian"), "{facts}");
}

#[test]
fn client_cert_from_another_ca_is_refused_in_the_handshake() {
    let s = setup();
    let other = Pki::new(&s.root.join("other-pki"));
    let server = TestServer::start(config(&s.pki, &s.data, Require::Mtls));
    let stranger = other.agent();
    // Trusts the right server CA, presents a certificate from another CA.
    let client = client(&s.pki.ca(), Some(&stranger));
    let r = post(
        &client,
        &server,
        &Post::new(stranger.id, 1, zstd(events().as_bytes())),
    );
    let e = r.err().expect("refused in the handshake");
    assert!(!e.to_string().is_empty());
    assert_eq!(server.count("SELECT count(*) FROM batches"), 0);
}

#[test]
fn no_client_cert_is_refused_when_mtls_is_required() {
    let s = setup();
    let server = TestServer::start(config(&s.pki, &s.data, Require::Mtls));
    let client = client(&s.pki.ca(), None);
    let r = post(&client, &server, &Post::new(Uuid::new_v4(), 1, Vec::new()));
    assert!(r.is_err(), "the handshake demands a certificate");
    assert_eq!(server.count("SELECT count(*) FROM batches"), 0);
}

#[test]
fn cert_for_another_agent_is_403() {
    let s = setup();
    let server = TestServer::start(config(&s.pki, &s.data, Require::Either));
    let a = s.pki.agent();
    let client = client(&s.pki.ca(), Some(&a));
    let claimed = Uuid::new_v4();
    let r = post(&client, &server, &Post::new(claimed, 1, Vec::new())).unwrap();
    assert_eq!(r.status, 403);
    assert!(
        r.body.contains(&a.id.to_string()) && r.body.contains(&claimed.to_string()),
        "{}",
        r.body
    );
    // With `either`, a connection without a certificate and without a token gets 401.
    let anon = client_without_cert(&s);
    let r = post(&anon, &server, &Post::new(claimed, 1, Vec::new())).unwrap();
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(server.count("SELECT count(*) FROM batches"), 0);
}

fn client_without_cert(s: &Setup) -> ureq::Agent {
    client(&s.pki.ca(), None)
}

#[test]
fn bearer_tokens_ok_bad_missing_and_foreign() {
    let s = setup();
    let a = Uuid::new_v4();
    let b = Uuid::new_v4();
    let mut c = config(&s.pki, &s.data, Require::Token);
    c.auth.tokens_file = Some(tokens_file(
        &s.root,
        &[
            (a, "token-of-agent-a-0123456789"),
            (b, "token-of-agent-b-0123456789"),
        ],
    ));
    let server = TestServer::start(c);
    let client = client_without_cert(&s);
    let with = |id: Uuid, token: Option<&'static str>| {
        let mut p = Post::new(id, 1, zstd(events().as_bytes()));
        p.token = token;
        post(&client, &server, &p).unwrap()
    };
    let r = with(a, None);
    assert_eq!(r.status, 401, "{}", r.body);
    let r = with(a, Some("not-a-token-of-anyone-000"));
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.body.contains("unknown bearer token"));
    let r = with(a, Some("token-of-agent-b-0123456789"));
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(server.count("SELECT count(*) FROM batches"), 0);
    let r = with(a, Some("token-of-agent-a-0123456789"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(server.count("SELECT count(*) FROM batches"), 1);
}

#[test]
fn a_malformed_line_is_refused_alone_and_named() {
    let s = setup();
    let server = TestServer::start(config(&s.pki, &s.data, Require::Mtls));
    let a = s.pki.agent();
    let client = client(&s.pki.ca(), Some(&a));
    let mut body = events();
    let good = body.lines().count();
    body.push_str(
        "{\"@timestamp\": \"2026-01-01T00:00:00Z\", \"user\": {\"name\": \"hunter2-secret\"\n",
    );
    let r = post(&client, &server, &Post::new(a.id, 1, zstd(body.as_bytes()))).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let answer: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(answer["events"], good);
    assert_eq!(answer["rejected"], 1);
    assert_eq!(answer["rejections"][0]["line"], good + 1);
    assert!(!r.body.contains("hunter2"), "{}", r.body);
    assert_eq!(
        server.stored_events(),
        good as i64,
        "only the bad line is lost"
    );
}

/// `n` events as the agent writes them; the one at index `poison` (if any) dated 9999.
fn events_with_poison(n: usize, poison: Option<usize>) -> String {
    (0..n)
        .map(|i| {
            let ts = if Some(i) == poison {
                "9999-12-31T23:59:59Z".to_owned()
            } else {
                format!("2026-01-01T00:{:02}:{:02}Z", i / 60 % 60, i % 60)
            };
            format!(
                "{{\"@timestamp\":\"{ts}\",\"event\":{{\"kind\":\"event\",\"action\":\
                 \"auth_failure\",\"outcome\":\"failure\"}},\"host\":{{\"hostname\":\"h\"}},\
                 \"user\":{{\"name\":\"u{i}\"}},\"source\":{{\"ip\":\"203.0.113.7\"}}}}\n"
            )
        })
        .collect()
}

#[test]
fn a_poison_line_loses_only_itself() {
    // 999 good events and one dated 9999-12-31T23:59:59: 999 stored, the one named.
    let s = setup();
    let server = TestServer::start(config(&s.pki, &s.data, Require::Mtls));
    let a = s.pki.agent();
    let client = client(&s.pki.ca(), Some(&a));
    let body = events_with_poison(1000, Some(600));
    let r = post(&client, &server, &Post::new(a.id, 1, zstd(body.as_bytes()))).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let answer: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(answer["events"], 999);
    assert_eq!(answer["rejected"], 1);
    assert_eq!(answer["rejections"][0]["line"], 601);
    assert_eq!(server.stored_events(), 999);
    // Sent again (the agent did not hear the answer): a duplicate, with the same rejection,
    // so the agent can still put that line aside.
    let r = post(&client, &server, &Post::new(a.id, 1, zstd(body.as_bytes()))).unwrap();
    let answer: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(answer["status"], "duplicate");
    assert_eq!(answer["rejections"][0]["line"], 601);
    assert_eq!(server.stored_events(), 999);
}

#[test]
fn same_key_with_other_content_is_409_with_both_digests() {
    let s = setup();
    let server = TestServer::start(config(&s.pki, &s.data, Require::Mtls));
    let a = s.pki.agent();
    let client = client(&s.pki.ca(), Some(&a));
    let first = events_with_poison(10, None);
    let second = events_with_poison(11, None);
    let r = post(
        &client,
        &server,
        &Post::new(a.id, 5, zstd(first.as_bytes())),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let r = post(
        &client,
        &server,
        &Post::new(a.id, 5, zstd(second.as_bytes())),
    )
    .unwrap();
    assert_eq!(r.status, 409, "{}", r.body);
    let digest = |b: &str| {
        collector::ingest::digest(&zstd(b.as_bytes()))
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
    };
    assert!(r.body.contains(&digest(&first)), "{}", r.body);
    assert!(r.body.contains(&digest(&second)), "{}", r.body);
    assert_eq!(
        server.stored_events(),
        10,
        "nothing of the conflicting batch"
    );
    // The same number under a new stream is stored.
    let mut p = Post::new(a.id, 5, zstd(second.as_bytes()));
    p.stream = "another-stream".into();
    let r = post(&client, &server, &p).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(server.stored_events(), 21);
}

#[test]
fn a_forged_agent_id_is_refused_and_counted() {
    let s = setup();
    let server = TestServer::start(config(&s.pki, &s.data, Require::Mtls));
    let attacker = s.pki.agent();
    let victim = Uuid::new_v4();
    let client = client(&s.pki.ca(), Some(&attacker));
    let body = events_with_poison(3, None).replacen(
        "{\"@timestamp\"",
        &format!("{{\"agent\":{{\"id\":\"{victim}\"}},\"@timestamp\""),
        1,
    );
    let r = post(
        &client,
        &server,
        &Post::new(attacker.id, 1, zstd(body.as_bytes())),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let answer: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(
        (answer["events"].as_u64(), answer["rejected"].as_u64()),
        (Some(2), Some(1))
    );
    assert!(r.body.contains("another agent"), "{}", r.body);
    let stats = server.store().stats(None, 0, 3).unwrap();
    assert_eq!(stats.agents.len(), 1);
    assert_eq!(stats.agents[0].agent_id, attacker.id.to_string());
    assert_eq!(stats.agents[0].forged, 1);
    assert!(stats.counts.iter().all(|c| c.0 == attacker.id.to_string()));
}

#[test]
fn truncated_and_tampered_zstd_bodies_are_400() {
    let s = setup();
    let server = TestServer::start(config(&s.pki, &s.data, Require::Mtls));
    let a = s.pki.agent();
    let client = client(&s.pki.ca(), Some(&a));
    let z = zstd(events().as_bytes());
    let r = post(
        &client,
        &server,
        &Post::new(a.id, 1, z[..z.len() / 2].to_vec()),
    )
    .unwrap();
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("zstd"), "{}", r.body);
    let mut tampered = z.clone();
    let mid = tampered.len() / 2;
    tampered[mid] ^= 0x55;
    tampered[mid + 1] ^= 0xaa;
    let r = post(&client, &server, &Post::new(a.id, 2, tampered)).unwrap();
    assert_eq!(r.status, 400, "{}", r.body);
    let mut p = Post::new(a.id, 3, z);
    p.encoding = Some("br");
    assert_eq!(post(&client, &server, &p).unwrap().status, 400);
    assert_eq!(server.count("SELECT count(*) FROM batches"), 0);
}

#[test]
fn zip_bombs_are_413_not_an_oom() {
    let s = setup();
    let server = TestServer::start(config(&s.pki, &s.data, Require::Mtls));
    let a = s.pki.agent();
    let client = client(&s.pki.ca(), Some(&a));
    // 1 GiB of zeros, compressed in a streaming encoder: a few tens of KB on the wire.
    let zeros = vec![0u8; 1 << 20];
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
    for _ in 0..1024 {
        enc.write_all(&zeros).unwrap();
    }
    let bomb = enc.finish().unwrap();
    assert!(bomb.len() < 256 * 1024, "{}", bomb.len());
    let r = post(&client, &server, &Post::new(a.id, 1, bomb)).unwrap();
    assert_eq!(r.status, 413, "{}", r.body);
    // gzip: 256 MiB of zeros (gzip tops out near 1000:1).
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    for _ in 0..256 {
        gz.write_all(&zeros).unwrap();
    }
    let mut p = Post::new(a.id, 2, gz.finish().unwrap());
    p.encoding = Some("gzip");
    let r = post(&client, &server, &p).unwrap();
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(server.count("SELECT count(*) FROM batches"), 0);
}

#[test]
fn oversized_body_is_413() {
    let s = setup();
    let mut c = config(&s.pki, &s.data, Require::Mtls);
    c.limits.max_body_bytes = 16 * 1024;
    let server = TestServer::start(c);
    let a = s.pki.agent();
    let client = client(&s.pki.ca(), Some(&a));
    let mut body = String::new();
    while body.len() < 20 * 1024 {
        body.push_str(&events());
    }
    let mut p = Post::new(a.id, 1, body.into_bytes());
    p.encoding = None;
    let r = post(&client, &server, &p).unwrap();
    assert_eq!(r.status, 413, "{}", r.body);
    // Under the bound once compressed: accepted.
    let r = post(&client, &server, &Post::new(a.id, 1, zstd(&p.body))).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn protocol_headers_are_checked() {
    let s = setup();
    let server = TestServer::start(config(&s.pki, &s.data, Require::Mtls));
    let a = s.pki.agent();
    let client = client(&s.pki.ca(), Some(&a));
    let body = zstd(events().as_bytes());
    let mut p = Post::new(a.id, 1, body.clone());
    p.schema = Some("2");
    let r = post(&client, &server, &p).unwrap();
    assert_eq!(r.status, 400);
    assert!(r.body.contains("schema"), "{}", r.body);
    p.schema = None;
    assert_eq!(post(&client, &server, &p).unwrap().status, 400);
    let mut p = Post::new(a.id, 1, body.clone());
    p.seq = "-1".into();
    assert_eq!(post(&client, &server, &p).unwrap().status, 400);
    p.seq = u64::MAX.to_string();
    assert_eq!(post(&client, &server, &p).unwrap().status, 400);
    let mut p = Post::new(a.id, 1, body.clone());
    p.id = "agent-7".into();
    assert_eq!(post(&client, &server, &p).unwrap().status, 400);
    let mut p = Post::new(a.id, 1, body);
    for stream in ["", "has space", &"x".repeat(65)] {
        p.stream = stream.into();
        let r = post(&client, &server, &p).unwrap();
        assert_eq!(r.status, 400, "{stream:?}");
        assert!(r.body.contains("Authtrail-Stream"), "{}", r.body);
    }
    assert_eq!(server.count("SELECT count(*) FROM batches"), 0);
}

#[test]
fn healthz_needs_no_credentials() {
    let s = setup();
    let mut c = config(&s.pki, &s.data, Require::Token);
    c.auth.tokens_file = Some(tokens_file(
        &s.root,
        &[(Uuid::new_v4(), "0123456789abcdef")],
    ));
    let server = TestServer::start(c);
    let client = client_without_cert(&s);
    let mut r = client.get(server.url("/healthz")).call().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.body_mut().read_to_string().unwrap(), "ok\n");
    let r = client.get(server.url("/nope")).call().unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let r = client.get(server.url("/v1/batches")).call().unwrap();
    assert_eq!(r.status().as_u16(), 405);
}

#[test]
fn stalled_client_is_dropped_after_the_header_timeout() {
    let s = setup();
    let mut c = config(&s.pki, &s.data, Require::Mtls);
    c.limits.header_timeout = Duration::from_millis(300);
    let server = TestServer::start(c);
    let start = Instant::now();
    let mut tcp = TcpStream::connect(server.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 16];
    // Sends nothing: the server closes (EOF) rather than waiting forever.
    let n = tcp.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0);
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    // Completes the handshake, then sends no request: dropped after the header timeout too.
    let a = s.pki.agent();
    let mut tls = raw_tls(&s, &a, server.addr);
    let start = Instant::now();
    let mut rest = Vec::new();
    let _ = tls.read_to_end(&mut rest);
    let waited = start.elapsed();
    assert!(
        rest.is_empty() || rest.starts_with(b"HTTP/1.1 408"),
        "{rest:?}"
    );
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    // And the server still serves others.
    let client = client(&s.pki.ca(), Some(&a));
    assert_eq!(
        post(&client, &server, &Post::new(a.id, 1, Vec::new()))
            .unwrap()
            .status,
        200
    );
}

#[test]
fn stalled_body_times_out() {
    let s = setup();
    let mut c = config(&s.pki, &s.data, Require::Mtls);
    c.limits.request_timeout = Duration::from_millis(300);
    let server = TestServer::start(c);
    let a = s.pki.agent();
    // A TLS client that sends the headers and half the body, then stalls.
    let mut tls = raw_tls(&s, &a, server.addr);
    write!(
        tls,
        "POST /v1/batches HTTP/1.1\r\nHost: localhost\r\nAuthtrail-Agent-Id: {}\r\n\
         Authtrail-Stream: s1\r\nAuthtrail-Batch-Seq: 1\r\nAuthtrail-Schema: 1\r\nContent-Length: 1000\r\n\r\n{{\"a\":",
        a.id
    )
    .unwrap();
    tls.flush().unwrap();
    let start = Instant::now();
    let mut answer = String::new();
    let _ = tls.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(server.count("SELECT count(*) FROM batches"), 0);
}

#[test]
fn busy_collector_answers_503_with_retry_after() {
    let s = setup();
    let mut c = config(&s.pki, &s.data, Require::Mtls);
    // A budget of exactly one maximal batch: 4 KiB + 2 x 8 KiB.
    c.limits.max_body_bytes = 4096;
    c.limits.max_decompressed_bytes = 8192;
    c.limits.max_inflight_bytes = 4096 + 2 * 8192;
    c.limits.max_batches_per_agent = 8;
    let server = TestServer::start(c);
    let a = s.pki.agent();
    let b = s.pki.agent();
    // Five uploads whose bodies stall, each holding the 4 KiB it declared: the budget is
    // spent.
    let tls = tls_client_config(&s.pki.ca(), Some(&a));
    let _slow: Vec<_> = (0..5u64)
        .map(|seq| {
            let mut slow = tls_stream(&tls, server.addr);
            slow.write_all(batch_head(a.id, seq, 4096, "").as_bytes())
                .unwrap();
            slow.write_all(b"{").unwrap();
            slow.flush().unwrap();
            slow
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let client = client(&s.pki.ca(), Some(&b));
    let resp = client
        .post(server.url("/v1/batches"))
        .header("Authtrail-Agent-Id", b.id.to_string())
        .header("Authtrail-Stream", "s1")
        .header("Authtrail-Batch-Seq", "2")
        .header("Authtrail-Schema", "1")
        .send(&[b'x'; 100][..])
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    let retry = resp.headers().get("retry-after").unwrap().to_str().unwrap();
    assert!(retry.parse::<u32>().unwrap() >= 1, "{retry}");
    let ms = resp
        .headers()
        .get("authtrail-retry-after-ms")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(ms.parse::<u32>().unwrap() >= 100, "{ms}");
    assert_eq!(server.count("SELECT count(*) FROM batches"), 0);
}

/// A blocking rustls client stream (ring), for speaking raw HTTP.
fn raw_tls(
    s: &Setup,
    a: &AgentCert,
    addr: std::net::SocketAddr,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(s.pki.ca()).unwrap())
        .unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![CertificateDer::from_pem_file(&a.cert).unwrap()],
            PrivateKeyDer::from_pem_file(&a.key).unwrap(),
        )
        .unwrap();
    let conn = rustls::ClientConnection::new(
        std::sync::Arc::new(config),
        ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    rustls::StreamOwned::new(conn, tcp)
}

/// Spawns `authtrail-collector serve` and returns it with the address it printed.
fn spawn_collector(config: &std::path::Path) -> (std::process::Child, std::net::SocketAddr) {
    let mut child = Command::new(BIN)
        // As the shipped unit sets it (targets/systemd/authtrail-collector.service).
        .env("MIMALLOC_PURGE_DELAY", "0")
        .args(["serve", "--config"])
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let line = first_line(&mut child);
    let addr = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .unwrap();
    (child, addr)
}

/// The first line `child` prints on its (piped) stdout.
fn first_line(child: &mut std::process::Child) -> String {
    let mut out = child.stdout.take().unwrap();
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while out.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    String::from_utf8(line).unwrap()
}

fn write_config(s: &Setup, require: Require) -> std::path::PathBuf {
    let c = config(&s.pki, &s.data, require);
    let path = s.root.join("collector.toml");
    std::fs::write(&path, c.to_toml().unwrap()).unwrap();
    path
}

#[test]
fn acknowledged_batch_survives_sigkill() {
    let s = setup();
    let path = write_config(&s, Require::Mtls);
    let a = s.pki.agent();
    let body = events();
    let n = body.lines().count() as i64;
    for seq in 0..3u64 {
        let (mut child, addr) = spawn_collector(&path);
        let server_view = FakeServer(addr);
        let client = client(&s.pki.ca(), Some(&a));
        let r = post_to(
            &client,
            &server_view,
            &Post::new(a.id, seq, zstd(body.as_bytes())),
        );
        // SIGKILL right after the 200: no chance to flush anything more.
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        let conn = rusqlite_conn(&s.data.join("authtrail.db"));
        let rows: Vec<u8> = conn
            .query_row(
                "SELECT rows FROM batches JOIN agents ON agents.id = batches.agent \
                 WHERE agents.agent_id = ?1 AND batches.seq = ?2",
                rusqlite::params![a.id.to_string(), seq as i64],
                |r| r.get(0),
            )
            .unwrap();
        let got = collector::rows::Rows::decode(&rows).unwrap().rows.len() as i64;
        assert_eq!(got, n, "batch {seq}");
    }
}

struct FakeServer(std::net::SocketAddr);

fn post_to(client: &ureq::Agent, server: &FakeServer, p: &Post<'_>) -> Answer {
    let mut resp = client
        .post(format!("https://localhost:{}/v1/batches", server.0.port()))
        .header("Authtrail-Agent-Id", &p.id)
        .header("Authtrail-Stream", &p.stream)
        .header("Authtrail-Batch-Seq", &p.seq)
        .header("Authtrail-Schema", "1")
        .header("Content-Encoding", p.encoding.unwrap_or("identity"))
        .send(&p.body[..])
        .unwrap();
    Answer {
        status: resp.status().as_u16(),
        body: resp.body_mut().read_to_string().unwrap(),
    }
}

fn run_cli(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn query_and_stats_commands() {
    let s = setup();
    let server = TestServer::start(config(&s.pki, &s.data, Require::Mtls));
    let a = s.pki.agent();
    let client = client(&s.pki.ca(), Some(&a));
    let body = events();
    assert_eq!(
        post(&client, &server, &Post::new(a.id, 1, zstd(body.as_bytes())))
            .unwrap()
            .status,
        200
    );
    // Three hosts failing from one address: the fleet-wide detection.
    let now = jiff::Timestamp::now();
    let failures: String = ["h1", "h2", "h3"]
        .iter()
        .map(|h| {
            format!(
                "{{\"@timestamp\":\"{now}\",\"event\":{{\"kind\":\"event\",\"action\":\"auth_failure\",\"outcome\":\"failure\"}},\"host\":{{\"hostname\":\"{h}\"}},\"user\":{{\"name\":\"root\"}},\"source\":{{\"ip\":\"203.0.113.66\",\"port\":4022}},\"process\":{{\"name\":\"sshd\"}},\"authtrail\":{{\"method\":\"password\"}}}}\n"
            )
        })
        .collect();
    assert_eq!(
        post(
            &client,
            &server,
            &Post::new(a.id, 2, zstd(failures.as_bytes()))
        )
        .unwrap()
        .status,
        200
    );
    let db = s.data.join("authtrail.db");
    let db = db.to_str().unwrap();

    let (ok, out, err) = run_cli(&["query", "--db", db, "--source-ip", "127.0.0.51"]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    let header = lines[0];
    for col in [
        "TIME", "HOST", "ACTION", "OUTCOME", "USER", "TARGET", "SOURCE", "PROCESS", "METHOD",
    ] {
        assert!(header.contains(col), "{header}");
    }
    let expected = body
        .lines()
        .filter(|l| l.contains("\"ip\":\"127.0.0.51\""))
        .count();
    assert_eq!(lines.len() - 1, expected, "{out}");
    assert!(
        lines[1].contains("127.0.0.51:52687") && lines[1].contains("publickey"),
        "{out}"
    );
    // Columns line up: every row's SOURCE starts where the header's does.
    let col = header.find("SOURCE").unwrap();
    assert!(
        lines[1..]
            .iter()
            .all(|l| l[col..].starts_with("127.0.0.51")),
        "{out}"
    );

    let (ok, out, _) = run_cli(&[
        "query",
        "--db",
        db,
        "--user",
        "root",
        "--action",
        "auth_failure",
        "--source-ip",
        "203.0.113.66",
        "--since",
        "1h",
        "--json",
    ]);
    assert!(ok);
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(
        out.lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
    );
    let (_, out, _) = run_cli(&["query", "--db", db, "--host", "h2", "--json"]);
    assert_eq!(out.lines().count(), 1, "{out}");
    let (_, out, _) = run_cli(&["query", "--db", db, "--limit", "2"]);
    assert_eq!(out.lines().count(), 3, "{out}");

    let (ok, out, err) = run_cli(&["stats", "--db", db]);
    assert!(ok, "{err}");
    assert!(out.contains(&a.id.to_string()), "{out}");
    // The agents table comes after the counts, which are grouped by agent too.
    let agent_line = out
        .lines()
        .rfind(|l| l.starts_with(&a.id.to_string()))
        .unwrap();
    assert!(agent_line.ends_with("ok"), "{out}");
    assert!(out.contains("203.0.113.66  3"), "{out}");
    assert!(
        out.lines().any(|l| l.starts_with(&a.id.to_string())
            && l.contains("testhost")
            && l.contains("auth_success")),
        "{out}"
    );
    std::thread::sleep(Duration::from_millis(20));
    let (_, out, _) = run_cli(&["stats", "--db", db, "--stale-after", "10ms"]);
    // The agents table comes after the counts, which are grouped by agent too.
    let agent_line = out
        .lines()
        .rfind(|l| l.starts_with(&a.id.to_string()))
        .unwrap();
    assert!(agent_line.ends_with("stale"), "{out}");
}

#[test]
fn serve_prints_the_chosen_port_and_validate_fills_defaults() {
    let s = setup();
    let path = write_config(&s, Require::Mtls);
    let (ok, out, err) = run_cli(&["validate", "--config", path.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains("max-decompressed-bytes = 67108864"), "{out}");
    let (mut child, addr) = spawn_collector(&path);
    assert_ne!(addr.port(), 0);
    assert!(TcpStream::connect(addr).is_ok());
    child.kill().unwrap();
    child.wait().unwrap();
    // A config others can write is refused.
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (ok, _, err) = run_cli(&["serve", "--config", path.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("chmod 640"), "{err}");
}

#[test]
fn certs_commands() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("pki");
    let d = d.to_str().unwrap();
    let (ok, out, err) = run_cli(&[
        "certs",
        "init",
        "--dir",
        d,
        "--san",
        "collector.example.org,10.0.0.5",
    ]);
    assert!(ok, "{err}");
    let pin = out
        .lines()
        .find_map(|l| l.strip_prefix("server SPKI SHA-256 pin (base64): "))
        .unwrap();
    let (_, pin2, _) = run_cli(&["certs", "pin", &format!("{d}/server.pem")]);
    assert_eq!(pin, pin2.trim());
    let id = Uuid::new_v4().to_string();
    let (ok, out, err) = run_cli(&["certs", "issue-agent", &id, "--dir", d]);
    assert!(ok, "{err}");
    assert!(out.contains(&id));
    let (ok, _, err) = run_cli(&["certs", "issue-agent", "web-1", "--dir", d]);
    assert!(!ok && err.contains("not a UUID"), "{err}");
    let (ok, out, _) = run_cli(&["certs", "issue-agent", "--dir", d]);
    assert!(ok);
    let new_id = out
        .lines()
        .next()
        .unwrap()
        .strip_prefix("agent id:")
        .unwrap()
        .trim();
    assert!(Uuid::parse_str(new_id).is_ok());
}

/// A new agent (its own mTLS certificate) reports that `mallory` logged in from 198.51.100.7.
fn mallory_logs_in(s: &Setup, server: &TestServer, host: &str, now: jiff::Timestamp) {
    mallory_logs_in_from(s, server, host, "198.51.100.7", now);
}

fn mallory_logs_in_from(
    s: &Setup,
    server: &TestServer,
    host: &str,
    ip: &str,
    now: jiff::Timestamp,
) {
    let agent = s.pki.agent();
    let client = client(&s.pki.ca(), Some(&agent));
    let line = format!(
        "{{\"@timestamp\":\"{now}\",\"event\":{{\"kind\":\"event\",\"category\":[\"authentication\"],\"action\":\"auth_success\",\"outcome\":\"success\"}},\"host\":{{\"hostname\":\"{host}\"}},\"agent\":{{\"id\":\"{}\"}},\"user\":{{\"name\":\"mallory\"}},\"source\":{{\"ip\":\"{ip}\",\"port\":40022}},\"process\":{{\"name\":\"sshd\"}},\"authtrail\":{{\"method\":\"password\"}}}}\n",
        agent.id
    );
    let a = post(
        &client,
        server,
        &Post::new(agent.id, 1, zstd(line.as_bytes())),
    )
    .unwrap();
    assert_eq!(a.status, 200, "{}", a.body);
}

/// `alerts --json`, parsed.
fn alerts_json(db: &str) -> Vec<serde_json::Value> {
    let (ok, out, err) = run_cli(&["alerts", "--db", db, "--json"]);
    assert!(ok, "{err}");
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Three agents (each with its own mTLS certificate) report a successful login of one user
/// (who logged in a day before from home) from one new address: the lateral-movement alert
/// appears in `alerts`, as a table for people and as JSON for tools, escaped where a host name
/// carries terminal controls.
#[test]
fn logins_of_one_user_on_three_hosts_raise_a_lateral_movement_alert() {
    let s = setup();
    let server = TestServer::start(config(&s.pki, &s.data, Require::Mtls));
    let now = jiff::Timestamp::now();
    let yesterday = now - jiff::SignedDuration::from_hours(24);
    mallory_logs_in_from(&s, &server, "home", "192.0.2.1", yesterday);
    for host in ["web1", "web2", "db\\u001b[31m1"] {
        mallory_logs_in(&s, &server, host, now);
    }
    let db = s.data.join("authtrail.db");
    let db = db.to_str().unwrap();
    // Written within about a second of the batch's commit.
    let deadline = Instant::now() + Duration::from_secs(20);
    let alerts = loop {
        let docs = alerts_json(db);
        if docs.len() >= 2 || Instant::now() > deadline {
            break docs;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let lateral = alerts
        .iter()
        .find(|d| d["rule"]["id"] == "fleet_lateral_movement_user")
        .unwrap_or_else(|| panic!("{alerts:#?}"));
    assert_eq!(lateral["event"]["kind"], "alert");
    assert_eq!(lateral["event"]["severity"], 73);
    assert_eq!(lateral["user"]["name"], "mallory");
    assert_eq!(lateral["authtrail"]["hosts"], 3);
    assert_eq!(lateral["observer"]["type"], "collector");
    assert_eq!(
        lateral["related"]["ip"],
        serde_json::json!(["198.51.100.7"])
    );
    let message = lateral["message"].as_str().unwrap();
    assert!(
        message.starts_with("User mallory logged in on 3 hosts within 0s: web1, web2, db"),
        "{message}"
    );
    assert!(
        alerts
            .iter()
            .any(|d| d["rule"]["id"] == "fleet_lateral_movement_source"),
        "{alerts:#?}"
    );

    let (ok, table, err) = run_cli(&["alerts", "--db", db, "--severity", "73"]);
    assert!(ok, "{err}");
    assert!(table.starts_with("TIME"), "{table}");
    assert!(table.contains("fleet_lateral_movement_user"), "{table}");
    assert!(
        table.contains("User mallory logged in on 3 hosts"),
        "{table}"
    );
    // The evidence: one line per host.
    assert_eq!(table.matches("- auth_success").count(), 6, "{table}");
    assert!(!table.contains('\x1b'), "{table}");
    assert!(table.contains("db\\u{1b}[31m1"), "{table}");
    let (ok, none, err) = run_cli(&["alerts", "--db", db, "--since", "1h", "--severity", "74"]);
    assert!(ok, "{err}");
    assert_eq!(none.lines().count(), 1, "only the header: {none}");

    // A restart, then the same attack reaches a fourth host: still one alert per rule, grown.
    let config = server.config.clone();
    drop(server);
    let server = TestServer::start(config);
    mallory_logs_in(&s, &server, "db2", now);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let docs = alerts_json(db);
        let lateral: Vec<_> = docs
            .iter()
            .filter(|d| d["rule"]["id"] == "fleet_lateral_movement_user")
            .collect();
        assert_eq!(lateral.len(), 1, "{docs:#?}");
        if lateral[0]["authtrail"]["hosts"] == 4 {
            assert_eq!(docs.len(), 2, "{docs:#?}");
            break;
        }
        assert!(Instant::now() < deadline, "{docs:#?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Three agents each report that `carol` logged in from a network new for her (the same /16):
/// one fact, listed once by `alerts --json`, with the three hosts and the count it covers; the
/// folded alerts' events stay queryable.
#[test]
fn a_new_network_alerted_on_three_hosts_is_listed_once() {
    let s = setup();
    let server = TestServer::start(config(&s.pki, &s.data, Require::Mtls));
    let now = jiff::Timestamp::now();
    for (i, (host, ip)) in [
        ("web1", "198.51.7.9"),
        ("web2", "198.51.7.10"),
        ("db1", "198.51.80.1"),
    ]
    .iter()
    .enumerate()
    {
        let agent = s.pki.agent();
        let client = client(&s.pki.ca(), Some(&agent));
        let t = now + jiff::SignedDuration::from_secs(i as i64);
        let line = format!(
            "{{\"@timestamp\":\"{t}\",\"event\":{{\"kind\":\"alert\",\"action\":\"first_seen_source\",\"severity\":21,\"start\":\"{t}\",\"end\":\"{t}\"}},\"rule\":{{\"id\":\"first_seen_source\",\"name\":\"Login from a new address\"}},\"message\":\"carol logged in from {ip}, an address not seen before for that user.\",\"host\":{{\"hostname\":\"{host}\"}},\"agent\":{{\"id\":\"{}\"}},\"user\":{{\"name\":\"carol\"}},\"source\":{{\"ip\":\"{ip}\"}}}}\n",
            agent.id
        );
        let a = post(
            &client,
            &server,
            &Post::new(agent.id, 1, zstd(line.as_bytes())),
        )
        .unwrap();
        assert_eq!(a.status, 200, "{}", a.body);
    }
    let db = s.data.join("authtrail.db");
    let db = db.to_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let docs = loop {
        let docs = alerts_json(db);
        if docs.len() == 1 && docs[0]["authtrail"]["folded"]["alerts"] == 3 {
            break docs;
        }
        assert!(Instant::now() < deadline, "{docs:#?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(docs[0]["host"]["hostname"], "web1", "{docs:#?}");
    assert_eq!(
        docs[0]["related"]["hosts"],
        serde_json::json!(["web1", "web2", "db1"])
    );
    let (ok, out, err) = run_cli(&["query", "--db", db, "--host", "db1", "--json"]);
    assert!(ok, "{err}");
    assert!(out.contains("198.51.80.1"), "{out}");
}

/// `validate` reports every error of the file in one run, each with its line and in words.
#[test]
fn validate_reports_every_error_with_its_line() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("collector.toml");
    std::fs::write(
        &config,
        "listen = 8443\nheartbeat-stale-after = 5\n[limits]\nmax-body-bytes = \"big\"\nmax-conections = 3\n",
    )
    .unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o640)).unwrap();
    let (ok, out, err) = run_cli(&["validate", "--config", config.to_str().unwrap()]);
    assert!(!ok);
    assert_eq!(out, "");
    let at = |line: usize| format!("{}:{line}:", config.display());
    for (line, needle) in [
        (1, "key `listen`"),
        (2, "expected a duration in quotes"),
        (
            4,
            "[limits] max-body-bytes: found string \"big\", expected a whole number",
        ),
        (5, "did you mean `max-connections`?"),
    ] {
        assert!(
            err.lines()
                .any(|l| l.contains(&at(line)) && l.contains(needle)),
            "no {needle:?} at line {line}:\n{err}"
        );
    }
    assert!(
        !err.contains("u64") && !err.contains("invalid type"),
        "{err}"
    );
}

/// `alerts --since` took only a duration: `--since 2026-12-01T00:00:00Z`, which `query` and
/// `stats` take, was refused with "invalid character at 4".
#[test]
fn alerts_since_takes_a_time_like_query() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("authtrail.db");
    drop(collector::store::Store::open(&db).unwrap());
    let db = db.to_str().unwrap();
    for since in ["2026-12-01T00:00:00Z", "2h"] {
        let (ok, out, err) = run_cli(&["alerts", "--db", db, "--since", since]);
        assert!(ok, "--since {since}: {err}");
        assert_eq!(out.lines().count(), 1, "only the header: {out}");
    }
    let out = Command::new(BIN)
        .args(["alerts", "--db", db, "--since", "yesterday"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("neither a duration") && err.contains("RFC 3339"),
        "{err}"
    );
}

/// `validate` on a server certificate that is missing said only "/x/missing.pem: I/O error: No
/// such file or directory", and on a certificate and key that are not a pair "server
/// certificate and key: keys may not be consistent: KeyMismatch": neither named the setting
/// nor the files to fix.
#[test]
fn validate_names_the_tls_setting_and_files_at_fault() {
    use std::os::unix::fs::PermissionsExt as _;
    let s = setup();
    let pki = s.pki.dir.display().to_string();
    let config = s.root.join("collector.toml");
    let check = |cert: &str| {
        std::fs::write(
            &config,
            format!(
                "data-dir = {:?}\n[tls]\ncert-file = {cert:?}\nkey-file = \"{pki}/server-key.pem\"\n\
                 client-ca-file = \"{pki}/ca.pem\"\n",
                s.data.display().to_string()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o640)).unwrap();
        let out = Command::new(BIN)
            .args(["validate", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8(out.stderr).unwrap()
    };
    let missing = format!("{pki}/missing.pem");
    let err = check(&missing);
    assert!(
        err.contains(&format!("[tls] cert-file = {missing:?}")),
        "{err}"
    );
    // The CA's certificate with the server's key.
    let err = check(&format!("{pki}/ca.pem"));
    assert!(
        err.contains("[tls] cert-file")
            && err.contains("ca.pem")
            && err.contains("server-key.pem")
            && err.contains("not for this key"),
        "{err}"
    );
    assert!(!err.contains("KeyMismatch"), "{err}");
}

/// `query`, `stats` and `alerts` without a config at the default path said only "cannot read
/// /etc/authtrail/collector.toml: No such file or directory"; a missing tokens file, only
/// "cannot read /x/tokens: ...". Each now says which setting or option to use.
#[test]
fn a_missing_config_or_tokens_file_says_what_to_set() {
    use std::os::unix::fs::PermissionsExt as _;
    let s = setup();
    let missing = s.root.join("nowhere.toml");
    for cmd in ["query", "stats", "alerts"] {
        let (ok, _, err) = run_cli(&[cmd, "--config", missing.to_str().unwrap()]);
        assert!(!ok);
        assert!(err.contains("--db"), "{cmd}: {err}");
    }
    let pki = s.pki.dir.display().to_string();
    let config = s.root.join("collector.toml");
    std::fs::write(
        &config,
        format!(
            "data-dir = {:?}\n[tls]\ncert-file = \"{pki}/server.pem\"\nkey-file = \"{pki}/server-key.pem\"\n\
             [auth]\ntokens-file = \"{}/tokens\"\nrequire = \"token\"\n",
            s.data.display().to_string(),
            s.root.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o640)).unwrap();
    let (ok, _, err) = run_cli(&["validate", "--config", config.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("[auth] tokens-file"), "{err}");
    assert!(err.contains("AGENT-ID TOKEN"), "{err}");

    // A line that is not `AGENT-ID TOKEN` is a configuration error like a missing file: exit
    // 2, not 1 (it was 1).
    let tokens = s.root.join("tokens");
    std::fs::write(&tokens, "not-a-uuid sometokensometoken\n").unwrap();
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = Command::new(BIN)
        .args(["validate", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("tokens:1: the agent id is not a UUID"),
        "{err}"
    );
}
