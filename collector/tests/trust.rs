//! The collector under attack: early authentication, byte budget, fairness, revocation.

use std::io::{Read as _, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use collector::config::{Config, Require};
use uuid::Uuid;

use crate::util::*;
use crate::{Setup, setup};

/// A config that lets anonymous clients through the TLS handshake (a client certificate is
/// optional under `either`), with one token.
fn either_with_token(s: &Setup) -> (Config, Uuid, &'static str) {
    let id = Uuid::new_v4();
    let token = "token-of-the-agent-0123456789";
    let mut c = config(&s.pki, &s.data, Require::Either);
    c.auth.tokens_file = Some(tokens_file(&s.root, &[(id, token)]));
    (c, id, token)
}

#[test]
fn anonymous_16mb_claim_is_refused_within_100ms_and_closed() {
    let s = setup();
    let (c, id, _) = either_with_token(&s);
    let server = TestServer::start(c);
    let tls = tls_client_config(&s.pki.ca(), None);
    // The refusal must not wait for the body (before, it came after the 30 s request timeout).
    // Each try must be answered well before any body could drain, and the fastest within the
    // 100 ms the issue asks for: the minimum of three is what scheduling noise on a loaded
    // 2-core CI machine leaves of the server's own latency.
    let mut fastest = Duration::MAX;
    for _ in 0..3 {
        let mut stream = tls_stream(&tls, server.addr);
        stream
            .sock
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        stream
            .write_all(batch_head(id, 1, 16 << 20, "").as_bytes())
            .unwrap();
        stream.write_all(&[b'x'; 16 * 1024]).unwrap();
        stream.flush().unwrap();
        let start = Instant::now();
        let mut first = [0u8; 12];
        stream.read_exact(&mut first).unwrap();
        let waited = start.elapsed();
        assert_eq!(
            &first,
            b"HTTP/1.1 401",
            "{:?}",
            String::from_utf8_lossy(&first)
        );
        assert!(waited < Duration::from_secs(1), "401 after {waited:?}");
        fastest = fastest.min(waited);
        // And the connection is closed: the rest of the answer, then EOF, without the
        // client sending another byte.
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest);
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "closed after {:?}",
            start.elapsed()
        );
        let rest = String::from_utf8_lossy(&rest);
        assert!(rest.contains("connection: close"), "{rest}");
    }
    assert!(
        fastest < Duration::from_millis(100),
        "fastest 401 after {fastest:?}"
    );
    assert_eq!(server.count("SELECT count(*) FROM batches"), 0);
}

#[test]
fn anonymous_flood_of_1100_connections_does_not_starve_healthz() {
    const FLOOD: usize = 1100;
    let s = setup();
    let (c, id, _) = either_with_token(&s);
    let server = TestServer::start(c);
    let addr = server.addr;
    let tls = tls_client_config(&s.pki.ca(), None);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let sent = Arc::new(AtomicUsize::new(0));
    let refused = rt.block_on(async {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let connector = tokio_rustls::TlsConnector::from(tls);
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..FLOOD {
            let connector = connector.clone();
            let sent = sent.clone();
            let head = batch_head(id, 1, 16 << 20, "");
            tasks.spawn(async move {
                let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
                let name = rustls_pki_types::ServerName::try_from("localhost").ok()?;
                let mut tls = connector.connect(name, tcp).await.ok()?;
                tls.write_all(head.as_bytes()).await.ok()?;
                tls.write_all(&[b'x'; 1024]).await.ok()?;
                tls.flush().await.ok()?;
                sent.fetch_add(1, Ordering::Relaxed);
                // Holds the connection open (sending nothing more) until the server answers
                // and closes it, or 20 s pass.
                let mut answer = Vec::new();
                let _ = tokio::time::timeout(Duration::from_secs(20), tls.read_to_end(&mut answer))
                    .await;
                Some(answer.starts_with(b"HTTP/1.1 401"))
            });
        }
        // Once most of the flood has sent its head, ask for /healthz.
        let start = Instant::now();
        while sent.load(Ordering::Relaxed) < 1000 && start.elapsed() < Duration::from_secs(20) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let health = tokio::task::spawn_blocking({
            let url = server.url("/healthz");
            let ca = s.pki.ca();
            move || {
                let client = ureq::Agent::config_builder()
                    .tls_config(
                        ureq::tls::TlsConfig::builder()
                            .root_certs(ureq::tls::RootCerts::Specific(Arc::new(vec![
                                ureq::tls::Certificate::from_pem(&std::fs::read(ca).unwrap())
                                    .unwrap(),
                            ])))
                            .build(),
                    )
                    .timeout_global(Some(Duration::from_secs(5)))
                    .build()
                    .new_agent();
                let start = Instant::now();
                let status = client.get(&url).call().map(|r| r.status().as_u16());
                (status.map_err(|e| e.to_string()), start.elapsed())
            }
        })
        .await
        .unwrap();
        assert_eq!(
            health.0,
            Ok(200),
            "/healthz during the flood ({:?})",
            health.1
        );
        let mut refused = 0;
        while let Some(r) = tasks.join_next().await {
            if r.unwrap() == Some(true) {
                refused += 1;
            }
        }
        refused
    });
    assert_eq!(refused, FLOOD);
}

/// `VmHWM` (peak resident) and `VmRSS` of process `pid`, bytes.
pub(crate) fn rss_of(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| {
                v.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .unwrap()
                    * 1024
            })
            .unwrap()
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// A deterministic stream of pseudo-random bytes (xorshift).
struct Noise(u64);

impl Noise {
    fn hex(&mut self, n: usize, out: &mut String) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for _ in 0..n {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            out.push(HEX[(self.0 & 15) as usize] as char);
        }
    }
}

/// Valid NDJSON of about `size` bytes whose zstd form is about a quarter of it: the largest
/// batch the default bounds admit on both counts (16 MiB compressed, 64 MiB decompressed).
pub(crate) fn maximal_batch(size: usize) -> (String, Vec<u8>) {
    let events = events();
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    let mut out = String::with_capacity(size + 4096);
    'fill: loop {
        for line in events.lines() {
            if out.len() + line.len() + 400 > size {
                break 'fill;
            }
            out.push_str("{\"pad\":\"");
            noise.hex(line.len() / 2, &mut out);
            out.push_str("\",");
            out.push_str(&line[1..]);
            out.push('\n');
        }
    }
    let compressed = zstd::bulk::compress(out.as_bytes(), 1).unwrap();
    (out, compressed)
}

/// `mib` MiB of zeros through a streaming zstd encoder (no content size in the frame).
fn zstd_bomb(mib: usize) -> Vec<u8> {
    let zeros = vec![0u8; 1 << 20];
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
    for _ in 0..mib {
        enc.write_all(&zeros).unwrap();
    }
    enc.finish().unwrap()
}

/// One event whose `user.name` is `size` bytes of escaped text: the decoder must copy it.
fn one_huge_line(size: usize) -> Vec<u8> {
    let mut line = String::with_capacity(size + 200);
    line.push_str("{\"@timestamp\":\"2026-11-28T08:06:35Z\",\"user\":{\"name\":\"");
    while line.len() < size {
        line.push_str("a\\tb\\u0063");
    }
    line.push_str("\"}}\n");
    zstd::bulk::compress(line.as_bytes(), 1).unwrap()
}

/// The default byte budget (`[limits] max-inflight-bytes`).
const BUDGET: u64 = 144 << 20;
/// What the collector holds above its idle resident memory besides what the byte budget
/// grants (bodies, decoded rows, and the writer's work on each queued batch): the writer's
/// SQLite page cache (`store::CACHE_KIB`, 32 MiB), the held-back `terms` entries
/// (`store::TERMS_FLUSH_BYTES`, 4 MiB), the 16 connections' TLS and HTTP buffers (under 4 MiB)
/// and the allocators' slack: pages of freed blocks not yet returned, mimalloc's and the C
/// libraries' (SQLite and zstd allocate through glibc). Measured up to 40 MiB over the
/// budget (debug build, 8 runs); before large blocks were unmapped when freed, up to 82.
const MARGIN: u64 = 80 << 20;
/// The shipped unit's `MemoryMax=512M`: the peak stays under half of it.
const MEMORY_MAX: u64 = 512 << 20;

/// Posts `body` until it gets an answer other than 503/429, honouring the suggested wait.
fn post_until_answered(
    client: &ureq::Agent,
    url: &str,
    id: Uuid,
    seq: u64,
    encoding: &str,
    body: &[u8],
    waits: &std::sync::Mutex<Vec<u64>>,
) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let resp = client
            .post(url)
            .header("Authtrail-Agent-Id", id.to_string())
            .header("Authtrail-Stream", "s1")
            .header("Authtrail-Batch-Seq", seq.to_string())
            .header("Authtrail-Schema", "1")
            .header("Content-Encoding", encoding)
            .send(body);
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                assert!(Instant::now() < deadline, "{e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let status = resp.status().as_u16();
        if status != 503 && status != 429 {
            return status;
        }
        let ms = resp
            .headers()
            .get("authtrail-retry-after-ms")
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .or_else(|| {
                let s = resp.headers().get("retry-after")?.to_str().ok()?;
                Some(s.parse::<u64>().ok()? * 1000)
            })
            .unwrap_or(500);
        waits.lock().unwrap().push(ms);
        assert!(Instant::now() < deadline, "still {status} after 300 s");
        std::thread::sleep(Duration::from_millis(ms));
    }
}

/// The 16-body attack on the collector at `url`: 16 agents at once, 4 maximal valid batches, 2
/// with one 60 MiB line, 6 zstd bombs and 4 gzip bombs that each stop at the 64 MiB bound, each
/// posted until answered. Returns the waits the 503s asked for, ms.
fn sixteen_maximal_bodies(s: &Setup, url: &str) -> Vec<u64> {
    let (valid, valid_zstd) = maximal_batch(63 << 20);
    assert!(valid_zstd.len() <= 16 << 20, "{}", valid_zstd.len());
    assert!(valid.lines().count() > 50_000, "{}", valid.lines().count());
    let huge_line = one_huge_line(60 << 20);
    let zstd_bomb = zstd_bomb(1024);
    let gzip_bomb = {
        let zeros = vec![0u8; 1 << 20];
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        for _ in 0..256 {
            gz.write_all(&zeros).unwrap();
        }
        gz.finish().unwrap()
    };
    let waits = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for i in 0..16u64 {
            let agent = s.pki.agent();
            let (body, encoding, want): (&[u8], &str, u16) = match i {
                0..4 => (&valid_zstd, "zstd", 200),
                // Decoding a 60 MiB line could need several times its size: refused, 413.
                4..6 => (&huge_line, "zstd", 413),
                6..12 => (&zstd_bomb, "zstd", 413),
                _ => (&gzip_bomb, "gzip", 413),
            };
            let (waits, ca) = (&waits, s.pki.ca());
            scope.spawn(move || {
                let client = client(&ca, Some(&agent));
                let got = post_until_answered(&client, url, agent.id, i, encoding, body, waits);
                assert_eq!(got, want, "agent {i}");
            });
        }
    });
    waits.into_inner().unwrap()
}

#[test]
fn sixteen_concurrent_maximal_bodies_stay_within_the_byte_budget() {
    let s = setup();
    let path = crate::write_config(&s, Require::Mtls);
    let (mut child, addr) = crate::spawn_collector(&path);
    let pid = child.id();
    let (idle_hwm, _) = rss_of(pid);
    let url = format!("https://localhost:{}/v1/batches", addr.port());
    let start = Instant::now();
    let waits = sixteen_maximal_bodies(&s, &url);
    let elapsed = start.elapsed();
    let (peak, _) = rss_of(pid);
    std::thread::sleep(Duration::from_secs(3));
    let (_, after) = rss_of(pid);
    child.kill().unwrap();
    child.wait().unwrap();
    eprintln!(
        "collector memory: idle peak {} MiB, peak {} MiB, resident 3 s after {} MiB; \
         {} answers 503 with waits {:?} ms; {elapsed:?}",
        idle_hwm >> 20,
        peak >> 20,
        after >> 20,
        waits.len(),
        waits
    );
    let stored = rusqlite_conn(&s.data.join("authtrail.db"))
        .query_row("SELECT count(*) FROM batches", [], |r| r.get::<_, i64>(0))
        .unwrap();
    assert_eq!(stored, 4);
    assert!(
        peak <= MEMORY_MAX / 2,
        "peak resident {} MiB, more than half of MemoryMax",
        peak >> 20
    );
    assert!(
        peak - idle_hwm <= BUDGET + MARGIN,
        "peak resident {} MiB - idle {} MiB > budget {} MiB + margin {} MiB",
        peak >> 20,
        idle_hwm >> 20,
        BUDGET >> 20,
        MARGIN >> 20
    );
}

/// A TLS connection from 127.0.0.`source`, its handshake done.
fn connected(
    tls: &Arc<rustls::ClientConfig>,
    addr: std::net::SocketAddr,
    source: u8,
) -> rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(&std::net::SocketAddr::from(([127, 0, 0, source], 0)).into())
        .unwrap();
    sock.connect(&addr.into()).unwrap();
    let tcp: std::net::TcpStream = sock.into();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let conn = rustls::ClientConnection::new(
        tls.clone(),
        rustls_pki_types::ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock).unwrap();
    }
    stream
}

#[test]
fn every_connection_with_a_full_head_and_maximal_bodies_stay_under_half_of_memory_max() {
    let s = setup();
    let mut c = config(&s.pki, &s.data, Require::Mtls);
    // Every connection the collector serves at once but a few, each holding a head of almost
    // MAX_HEAD_BYTES (sent slowly: the longest the collector allows).
    c.limits.header_timeout = Duration::from_secs(120);
    let held_count = c.limits.max_connections - CONNECTIONS_LEFT;
    let path = s.root.join("collector.toml");
    std::fs::write(&path, c.to_toml().unwrap()).unwrap();
    let (mut child, addr) = crate::spawn_collector(&path);
    let pid = child.id();
    std::thread::sleep(Duration::from_millis(300));
    let (_, idle) = rss_of(pid);
    let agent = s.pki.agent();
    let tls = tls_client_config(&s.pki.ca(), Some(&agent));
    let mut held: Vec<_> = (0..held_count)
        .map(|i| connected(&tls, addr, 2 + (i % 250) as u8))
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let (_, with_idle) = rss_of(pid);
    // Each sends all of a request head but its last line: the largest head the collector
    // waits for.
    let pad = "a".repeat(collector::server::MAX_HEAD_BYTES - 200);
    for stream in &mut held {
        write!(
            stream,
            "POST /v1/batches HTTP/1.1\r\nHost: localhost\r\nX-Pad: {pad}"
        )
        .unwrap();
        stream.flush().unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    let (_, with_heads) = rss_of(pid);
    let per = |rss: u64| rss.saturating_sub(idle) / held_count as u64;
    eprintln!(
        "{held_count} connections: idle {} MiB; handshaken {} MiB ({} KiB each); with heads \
         {} MiB ({} KiB each)",
        idle >> 20,
        with_idle >> 20,
        per(with_idle) >> 10,
        with_heads >> 20,
        per(with_heads) >> 10
    );
    // Meanwhile, the 16-body attack, and /healthz answers.
    let url = format!("https://localhost:{}/v1/batches", addr.port());
    let start = Instant::now();
    let waits = sixteen_maximal_bodies(&s, &url);
    let elapsed = start.elapsed();
    let probe = client(&s.pki.ca(), Some(&agent));
    let health = probe
        .get(format!("https://localhost:{}/healthz", addr.port()))
        .call()
        .map(|r| r.status().as_u16());
    let (peak, _) = rss_of(pid);
    drop(held);
    child.kill().unwrap();
    child.wait().unwrap();
    eprintln!(
        "collector memory with {held_count} connections: peak {} MiB; {} answers 503; \
         {elapsed:?}",
        peak >> 20,
        waits.len()
    );
    assert_eq!(health.unwrap(), 200);
    assert!(
        peak <= MEMORY_MAX / 2,
        "peak resident {} MiB, more than half of MemoryMax",
        peak >> 20
    );
}

/// Connections the many-connections test leaves free under `max-connections` for the attack's
/// 16 agents and the /healthz probe.
const CONNECTIONS_LEFT: usize = 24;

#[test]
fn a_slow_agent_cannot_delay_another_agents_batch_by_more_than_a_second() {
    let s = setup();
    let server = TestServer::start(config(&s.pki, &s.data, Require::Mtls));
    let slow = s.pki.agent();
    let tls = tls_client_config(&s.pki.ca(), Some(&slow));
    // 16 uploads of 1 MiB that send their headers and one byte, then stall: as many as the
    // collector has batch slots.
    let mut stalled: Vec<_> = (0..16u64)
        .map(|seq| {
            let mut stream = tls_stream(&tls, server.addr);
            stream
                .write_all(batch_head(slow.id, seq, 1 << 20, "").as_bytes())
                .unwrap();
            stream.write_all(b"{").unwrap();
            stream.flush().unwrap();
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let fast = s.pki.agent();
    let client = client(&s.pki.ca(), Some(&fast));
    let waits = std::sync::Mutex::new(Vec::new());
    let start = Instant::now();
    let status = post_until_answered(
        &client,
        &server.url("/v1/batches"),
        fast.id,
        1,
        "zstd",
        &zstd(events().as_bytes()),
        &waits,
    );
    let took = start.elapsed();
    assert_eq!(status, 200);
    assert!(
        took < Duration::from_secs(1),
        "the other agent's batch took {took:?} (waits {:?} ms)",
        waits.lock().unwrap()
    );
    // The stalled uploads are cut for being slower than min-upload-rate (or refused with 429
    // beyond the per-agent cap), long before the 30 s request timeout.
    let start = Instant::now();
    let mut answers = Vec::new();
    for stream in &mut stalled {
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answers.push(answer.get(..12).unwrap_or_default().to_owned());
    }
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    let cut = answers.iter().filter(|a| *a == "HTTP/1.1 408").count();
    let refused = answers.iter().filter(|a| *a == "HTTP/1.1 429").count();
    assert_eq!((cut, refused), (4, 12), "{answers:?}");
}

#[test]
fn request_head_limit_is_the_documented_64_kib() {
    let s = setup();
    let server = TestServer::start(config(&s.pki, &s.data, Require::Mtls));
    let a = s.pki.agent();
    let tls = tls_client_config(&s.pki.ca(), Some(&a));
    let body = zstd(events().as_bytes());
    let head_with = |pad: usize| {
        let extra = format!("X-Pad: {}\r\n", "p".repeat(pad));
        let head = batch_head(a.id, 7, body.len() as u64, &extra);
        (head.len(), head)
    };
    let answer = |head: &str| {
        let mut stream = tls_stream(&tls, server.addr);
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(&body).unwrap();
        stream.flush().unwrap();
        let mut first = [0u8; 12];
        let _ = stream.read_exact(&mut first);
        String::from_utf8_lossy(&first).into_owned()
    };
    let base = head_with(0).0 - "X-Pad: \r\n".len();
    let limit = collector::server::MAX_HEAD_BYTES;
    // Exactly at the limit: served. One byte over, and well over: 431.
    let (len, head) = head_with(limit - base - "X-Pad: \r\n".len());
    assert_eq!(len, limit);
    assert_eq!(answer(&head), "HTTP/1.1 200");
    let (len, head) = head_with(limit - base - "X-Pad: \r\n".len() + 1);
    assert_eq!(len, limit + 1);
    assert_eq!(answer(&head), "HTTP/1.1 431");
    let (_, head) = head_with(90 * 1024);
    assert_eq!(answer(&head), "HTTP/1.1 431");
}

/// Runs `authtrail-collector serve` in a private mount namespace whose data directory is a
/// 40 MiB tmpfs; `None` when namespaces are not available here.
fn collector_on_small_tmpfs(s: &Setup) -> Option<(std::process::Child, std::net::SocketAddr)> {
    use std::process::{Command, Stdio};
    let ok = Command::new("unshare")
        .args(["-m", "true"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|st| st.success());
    if !ok {
        return None;
    }
    std::fs::create_dir_all(&s.data).unwrap();
    let path = crate::write_config(s, Require::Mtls);
    let mut child = Command::new("unshare")
        .args(["-m", "sh", "-c"])
        .arg("mount -t tmpfs -o size=40m tmpfs \"$1\" && exec \"$2\" serve --config \"$3\"")
        .arg("sh")
        .arg(&s.data)
        .arg(crate::BIN)
        .arg(&path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let line = crate::first_line(&mut child);
    match line.strip_prefix("listening on ") {
        Some(addr) => Some((child, addr.parse().unwrap())),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            None
        }
    }
}

#[test]
fn healthz_is_503_with_the_reason_when_the_store_cannot_write() {
    use std::process::Command;
    let s = setup();
    let Some((mut child, addr)) = collector_on_small_tmpfs(&s) else {
        eprintln!("skipped: no private mount namespace here (needs root and unshare)");
        return;
    };
    let pid = child.id().to_string();
    let a = s.pki.agent();
    let client = client(&s.pki.ca(), Some(&a));
    let health = || {
        let mut r = client
            .get(format!("https://localhost:{}/healthz", addr.port()))
            .call()
            .unwrap();
        (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
    };
    let in_ns = |args: &[&str]| {
        Command::new("nsenter")
            .args(["-t", &pid, "-m"])
            .args(args)
            .output()
            .unwrap()
    };
    assert_eq!(health(), (200, "ok\n".to_owned()));
    // The file system fills up.
    let fill = s.data.join("fill");
    let fill = fill.to_str().unwrap();
    in_ns(&["dd", "if=/dev/zero", &format!("of={fill}"), "bs=1M"]);
    let (status, why) = health();
    assert_eq!(status, 503, "{why}");
    assert!(why.contains("bytes free"), "{why}");
    in_ns(&["rm", fill]);
    assert_eq!(health().0, 200);
    // The file system turns read-only.
    let data = s.data.to_str().unwrap();
    let out = in_ns(&["mount", "--bind", "-o", "ro", data, data]);
    assert!(out.status.success(), "{out:?}");
    let (status, why) = health();
    assert_eq!(status, 503, "{why}");
    assert!(why.contains("read-only"), "{why}");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// `authtrail-collector certs revoke AGENT --dir PKI`; what it printed.
fn certs_revoke(s: &Setup, agent: &AgentCert) -> String {
    let out = std::process::Command::new(crate::BIN)
        .args(["certs", "revoke", &agent.id.to_string(), "--dir"])
        .arg(&s.pki.dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_revoked_agent_certificate_is_refused_at_its_next_request_without_a_restart() {
    let s = setup();
    let revoked = s.pki.dir.join("revoked.txt");
    let mut c = config(&s.pki, &s.data, Require::Mtls);
    c.tls.revoked_file = Some(revoked.clone());
    let server = TestServer::start(c);
    let a = s.pki.agent();
    let other = s.pki.agent();
    let client_a = client(&s.pki.ca(), Some(&a));
    let client_other = client(&s.pki.ca(), Some(&other));
    let body = zstd(events().as_bytes());
    let revoke = || certs_revoke(&s, &a);
    let r = post(&client_a, &server, &Post::new(a.id, 1, body.clone())).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(revoke().starts_with("revoked"));
    assert!(revoked.exists());
    // The same kept-alive client, and a new connection: both refused.
    let r = post(&client_a, &server, &Post::new(a.id, 2, body.clone())).unwrap();
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("revoked"), "{}", r.body);
    let r = post(
        &client(&s.pki.ca(), Some(&a)),
        &server,
        &Post::new(a.id, 3, body.clone()),
    )
    .unwrap();
    assert_eq!(r.status, 403, "{}", r.body);
    // Another agent is not affected; revoking twice is harmless.
    let r = post(&client_other, &server, &Post::new(other.id, 1, body)).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(revoke().starts_with("already revoked"));
    assert_eq!(server.count("SELECT count(*) FROM batches"), 2);
}

/// Spawns the collector on `port` (0: any), returning it and its address.
fn spawn_on(s: &Setup, port: u16) -> (std::process::Child, std::net::SocketAddr) {
    let mut c = config(&s.pki, &s.data, Require::Mtls);
    c.listen = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let path = s.root.join("collector.toml");
    std::fs::write(&path, c.to_toml().unwrap()).unwrap();
    crate::spawn_collector(&path)
}

/// The soak in CI size: 8 agents sending 25 batches each while the collector is
/// SIGKILLed and restarted every 1.5 s, stalled uploads and zstd bombs keep coming; at the end
/// every batch is stored exactly once and the collector's peak resident memory is reported.
#[test]
fn soak_agents_kills_slow_clients_and_bombs_store_every_event_once() {
    const AGENTS: usize = 8;
    const BATCHES: u64 = 25;
    let s = setup();
    let (child, addr) = spawn_on(&s, 0);
    let port = addr.port();
    let child = std::sync::Mutex::new(child);
    let done = std::sync::atomic::AtomicBool::new(false);
    let agents_done = AtomicUsize::new(0);
    let peak = std::sync::atomic::AtomicU64::new(0);
    let kills = AtomicUsize::new(0);
    let body = zstd(events().as_bytes());
    let per_batch = events().lines().count() as i64;
    let bomb = zstd_bomb(256);
    let url = format!("https://localhost:{port}/v1/batches");
    // Bounded: an agent whose batch is never acknowledged fails its own assertion within 120 s;
    // the killer then stops too instead of keeping the scope open.
    let soak_deadline = Instant::now() + Duration::from_secs(150);
    std::thread::scope(|scope| {
        // The killer: SIGKILL and restart on the same port.
        scope.spawn(|| {
            while agents_done.load(Ordering::Relaxed) < AGENTS && Instant::now() < soak_deadline {
                std::thread::sleep(Duration::from_millis(1500));
                let mut c = child.lock().unwrap();
                peak.fetch_max(rss_of(c.id()).0, Ordering::Relaxed);
                c.kill().unwrap();
                c.wait().unwrap();
                kills.fetch_add(1, Ordering::Relaxed);
                *c = spawn_on(&s, port).0;
            }
            done.store(true, Ordering::Relaxed);
        });
        // Slow clients: uploads that stall after their headers.
        scope.spawn(|| {
            let a = s.pki.agent();
            let tls = tls_client_config(&s.pki.ca(), Some(&a));
            let mut seq = 0;
            while !done.load(Ordering::Relaxed) {
                let Ok(tcp) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                };
                let conn = rustls::ClientConnection::new(
                    tls.clone(),
                    rustls_pki_types::ServerName::try_from("localhost").unwrap(),
                )
                .unwrap();
                let mut stream = rustls::StreamOwned::new(conn, tcp);
                seq += 1;
                let _ = stream.write_all(batch_head(a.id, seq, 1 << 20, "").as_bytes());
                let _ = stream.flush();
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        // Bombs.
        scope.spawn(|| {
            let a = s.pki.agent();
            let client = client(&s.pki.ca(), Some(&a));
            let mut seq = 0;
            while !done.load(Ordering::Relaxed) {
                seq += 1;
                let _ = post_once(&client, &url, a.id, seq, &bomb);
            }
        });
        for _ in 0..AGENTS {
            let (body, url, agents_done) = (&body, &url, &agents_done);
            let agent = s.pki.agent();
            let ca = s.pki.ca();
            scope.spawn(move || {
                let client = client(&ca, Some(&agent));
                for seq in 0..BATCHES {
                    // Re-sent until it is acknowledged, across kills, as the agent does.
                    let deadline = Instant::now() + Duration::from_secs(120);
                    while post_once(&client, url, agent.id, seq, body) != Some(200) {
                        assert!(Instant::now() < deadline, "batch {seq} never acknowledged");
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    // Paced, so that sending spans several of the killer's SIGKILLs however
                    // fast the collector answers (25 batches: at least 5 s, 3 kills).
                    std::thread::sleep(Duration::from_millis(200));
                }
                agents_done.fetch_add(1, Ordering::Relaxed);
            });
        }
    });
    let mut c = child.into_inner().unwrap();
    peak.fetch_max(rss_of(c.id()).0, Ordering::Relaxed);
    c.kill().unwrap();
    c.wait().unwrap();
    let conn = rusqlite_conn(&s.data.join("authtrail.db"));
    let batches: i64 = conn
        .query_row("SELECT count(*) FROM batches", [], |r| r.get(0))
        .unwrap();
    let all = collector::store::Filter {
        limit: u64::MAX,
        ..Default::default()
    };
    let events = collector::store::Store::open_read_only(&s.data.join("authtrail.db"))
        .unwrap()
        .query(&all)
        .unwrap()
        .len() as i64;
    eprintln!(
        "soak: {} kills, peak resident {} MiB, {batches} batches, {events} events",
        kills.load(Ordering::Relaxed),
        peak.load(Ordering::Relaxed) >> 20
    );
    assert_eq!(batches, AGENTS as i64 * BATCHES as i64);
    assert_eq!(events, AGENTS as i64 * BATCHES as i64 * per_batch);
    assert!(kills.load(Ordering::Relaxed) >= 2);
}

/// One POST; the status, or None when the connection failed.
fn post_once(client: &ureq::Agent, url: &str, id: Uuid, seq: u64, body: &[u8]) -> Option<u16> {
    client
        .post(url)
        .header("Authtrail-Agent-Id", id.to_string())
        .header("Authtrail-Stream", "s1")
        .header("Authtrail-Batch-Seq", seq.to_string())
        .header("Authtrail-Schema", "1")
        .header("Content-Encoding", "zstd")
        .send(body)
        .ok()
        .map(|r| r.status().as_u16())
}

/// What a new connection of `agent` gets: the status line of a batch's answer, or the TLS
/// error the handshake ended with.
fn new_connection_answer(s: &Setup, server: &TestServer, agent: &AgentCert, seq: u64) -> String {
    let body = zstd(events().as_bytes());
    let tls = tls_client_config(&s.pki.ca(), Some(agent));
    let mut stream = tls_stream(&tls, server.addr);
    // The handshake alone, then a wait for what the server says to it: the alert of a refused
    // certificate (read before anything else is written, so that it is not lost to a reset).
    if let Err(e) = stream.conn.complete_io(&mut stream.sock) {
        return e.to_string();
    }
    stream
        .sock
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut first = [0u8; 12];
    match stream.read(&mut first) {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
        other => return format!("{other:?}"),
    }
    stream
        .sock
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let sent = stream
        .write_all(batch_head(agent.id, seq, body.len() as u64, "").as_bytes())
        .and_then(|()| stream.write_all(&body))
        .and_then(|()| stream.flush());
    match (sent, stream.read_exact(&mut first)) {
        (Ok(()), Ok(())) => String::from_utf8_lossy(&first).into_owned(),
        (sent, read) => format!("{sent:?} {read:?}"),
    }
}

/// A collector requiring mTLS with `[tls] crl-file` at the CA's `crl.pem` (not there yet).
fn with_crl(s: &Setup) -> (TestServer, std::path::PathBuf) {
    let crl = s.pki.dir.join(collector::certs::CRL);
    let mut c = config(&s.pki, &s.data, Require::Mtls);
    c.tls.crl_file = Some(crl.clone());
    (TestServer::start(c), crl)
}

#[test]
fn a_crl_revocation_refuses_the_agent_in_the_handshake_without_a_restart() {
    let s = setup();
    let (server, crl) = with_crl(&s);
    let (a, b, other) = (s.pki.agent(), s.pki.agent(), s.pki.agent());
    let revoke = |agent: &AgentCert| certs_revoke(&s, agent);
    // No CRL yet: nobody is revoked.
    assert_eq!(new_connection_answer(&s, &server, &a, 1), "HTTP/1.1 200");
    revoke(&a);
    assert!(crl.exists());
    let refused = new_connection_answer(&s, &server, &a, 2);
    assert!(refused.contains("CertificateRevoked"), "{refused}");
    assert_eq!(new_connection_answer(&s, &server, &b, 1), "HTTP/1.1 200");
    // A second revocation rewrites the CRL; the running server picks it up.
    revoke(&b);
    let refused = new_connection_answer(&s, &server, &b, 2);
    assert!(refused.contains("CertificateRevoked"), "{refused}");
    let refused = new_connection_answer(&s, &server, &a, 3);
    assert!(refused.contains("CertificateRevoked"), "{refused}");
    // An agent never revoked keeps working.
    assert_eq!(
        new_connection_answer(&s, &server, &other, 1),
        "HTTP/1.1 200"
    );
    assert_eq!(server.count("SELECT count(*) FROM batches"), 3);
}

#[test]
fn an_unusable_crl_refuses_every_certificate_until_it_is_fixed() {
    let s = setup();
    let (server, crl) = with_crl(&s);
    let a = s.pki.agent();
    std::fs::write(
        &crl,
        "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
    )
    .unwrap();
    let refused = new_connection_answer(&s, &server, &a, 1);
    assert!(!refused.starts_with("HTTP/1.1 200"), "{refused}");
    std::fs::remove_file(&crl).unwrap();
    assert_eq!(new_connection_answer(&s, &server, &a, 2), "HTTP/1.1 200");
}
