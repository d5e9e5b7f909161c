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
        assert!(waited < Duration::from_millis(100), "401 after {waited:?}");
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
