//! Helpers: a throwaway PKI, an in-process collector on an ephemeral loopback port, and a
//! ureq client configured the way the agent's is (rustls, ring).
// Test helpers: a failed unwrap is a failed test, as in `#[test]` functions (clippy.toml allows
// those, but not helpers outside them).
#![allow(clippy::unwrap_used)]

use std::fs;
use std::io::Read as _;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use collector::config::{Config, Require};
use collector::store::Store;
use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig};
use uuid::Uuid;

pub(crate) const FIXTURE: &str =
    include_str!("../../agent-core/testdata/debian12-traditional/sshd.expected.ndjson");

/// Real events as the agent emits them (the fixture's event lines).
pub(crate) fn events() -> String {
    FIXTURE
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| format!("{l}\n"))
        .collect()
}

pub(crate) fn zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::encode_all(bytes, 3).unwrap()
}

/// A CA, a server certificate for localhost/127.0.0.1, and agent certificates.
pub(crate) struct Pki {
    pub(crate) dir: PathBuf,
}

pub(crate) struct AgentCert {
    pub(crate) id: Uuid,
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
}

impl Pki {
    pub(crate) fn new(dir: &Path) -> Pki {
        let sans = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        collector::certs::init(dir, &sans, 30).unwrap();
        Pki {
            dir: dir.to_owned(),
        }
    }

    pub(crate) fn agent(&self) -> AgentCert {
        let id = Uuid::new_v4();
        let r = collector::certs::issue_agent(&self.dir, id, 30).unwrap();
        AgentCert {
            id,
            cert: r.cert,
            key: r.key,
        }
    }

    pub(crate) fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
}

/// A collector running in-process on 127.0.0.1:0, stopped on drop.
pub(crate) struct TestServer {
    pub(crate) addr: SocketAddr,
    pub(crate) config: Config,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A config for `pki`, storing in `data`, with the given `require`.
pub(crate) fn config(pki: &Pki, data: &Path, require: Require) -> Config {
    let mut c = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data.to_owned(),
        ..Config::default()
    };
    c.tls.cert_file = Some(pki.dir.join("server.pem"));
    c.tls.key_file = Some(pki.dir.join("server-key.pem"));
    c.auth.require = require;
    if matches!(require, Require::Mtls | Require::Both | Require::Either) {
        c.tls.client_ca_file = Some(pki.ca());
    }
    c
}

/// Writes a tokens file (mode 0600) and returns its path.
pub(crate) fn tokens_file(dir: &Path, entries: &[(Uuid, &str)]) -> PathBuf {
    let path = dir.join("tokens");
    let text: String = entries
        .iter()
        .map(|(id, t)| format!("{id} {t}\n"))
        .collect();
    fs::write(&path, text).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    path
}

impl TestServer {
    pub(crate) fn start(config: Config) -> TestServer {
        TestServer::start_with(config).0
    }

    /// [`TestServer::start`], also handing back the web console when the config turns it on.
    pub(crate) fn start_with(
        config: Config,
    ) -> (TestServer, Option<Arc<collector::console::Console>>) {
        config.validate().unwrap();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let c = config.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let server = collector::Server::bind(&c).await.unwrap();
                addr_tx
                    .send((server.local_addr(), server.console()))
                    .unwrap();
                server
                    .run(async {
                        let _ = stop_rx.await;
                    })
                    .await;
            });
        });
        let (addr, console) = addr_rx.recv_timeout(Duration::from_secs(30)).unwrap();
        let server = TestServer {
            addr,
            config,
            stop: Some(stop),
            thread: Some(thread),
        };
        (server, console)
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }

    pub(crate) fn store(&self) -> Store {
        Store::open_read_only(&self.config.db_path()).unwrap()
    }

    /// Every stored event, read back through the store's own search.
    pub(crate) fn stored_events(&self) -> i64 {
        let all = collector::store::Filter {
            limit: u64::MAX,
            ..Default::default()
        };
        self.store().query(&all).unwrap().len() as i64
    }

    pub(crate) fn count(&self, sql: &str) -> i64 {
        let conn = rusqlite_conn(&self.config.db_path());
        conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }
}

pub(crate) fn rusqlite_conn(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A ureq agent trusting `pki`'s CA, presenting `cert` if given.
pub(crate) fn client(ca: &Path, cert: Option<&AgentCert>) -> ureq::Agent {
    let ca_pem = fs::read(ca).unwrap();
    let mut tls = TlsConfig::builder().root_certs(RootCerts::Specific(Arc::new(vec![
        Certificate::from_pem(&ca_pem).unwrap(),
    ])));
    if let Some(c) = cert {
        let chain = Certificate::from_pem(&fs::read(&c.cert).unwrap()).unwrap();
        let key = PrivateKey::from_pem(&fs::read(&c.key).unwrap()).unwrap();
        tls = tls.client_cert(Some(ClientCert::new_with_certs(&[chain], key)));
    }
    ureq::Agent::config_builder()
        .tls_config(tls.build())
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// A batch POST.
pub(crate) struct Post<'a> {
    pub(crate) id: String,
    pub(crate) stream: String,
    pub(crate) seq: String,
    pub(crate) schema: Option<&'a str>,
    pub(crate) encoding: Option<&'a str>,
    pub(crate) token: Option<&'a str>,
    pub(crate) body: Vec<u8>,
}

impl Post<'_> {
    pub(crate) fn new(id: Uuid, seq: u64, body: Vec<u8>) -> Post<'static> {
        Post {
            id: id.to_string(),
            stream: "s1".to_owned(),
            seq: seq.to_string(),
            schema: Some("1"),
            encoding: Some("zstd"),
            token: None,
            body,
        }
    }
}

pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: String,
}

pub(crate) fn post(
    agent: &ureq::Agent,
    server: &TestServer,
    p: &Post<'_>,
) -> Result<Answer, ureq::Error> {
    let mut req = agent
        .post(server.url("/v1/batches"))
        .header("Authtrail-Agent-Id", &p.id)
        .header("Authtrail-Stream", &p.stream)
        .header("Authtrail-Batch-Seq", &p.seq);
    if let Some(s) = p.schema {
        req = req.header("Authtrail-Schema", s);
    }
    if let Some(e) = p.encoding {
        req = req.header("Content-Encoding", e);
    }
    if let Some(t) = p.token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    let resp = req.send(&p.body[..])?;
    let status = resp.status().as_u16();
    let mut body = String::new();
    resp.into_body().into_reader().read_to_string(&mut body)?;
    Ok(Answer { status, body })
}

/// A rustls client configuration (ring) trusting `ca`, presenting `cert` if given: for tests
/// that speak raw HTTP over TLS.
pub(crate) fn tls_client_config(ca: &Path, cert: Option<&AgentCert>) -> Arc<rustls::ClientConfig> {
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(ca).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match cert {
        Some(a) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_file(&a.cert).unwrap()],
                PrivateKeyDer::from_pem_file(&a.key).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    })
}

/// A blocking TLS stream to `addr` with `config`.
pub(crate) fn tls_stream(
    config: &Arc<rustls::ClientConfig>,
    addr: SocketAddr,
) -> rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream> {
    let conn = rustls::ClientConnection::new(
        config.clone(),
        rustls_pki_types::ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    let tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    rustls::StreamOwned::new(conn, tcp)
}

/// The head of a batch POST with `content-length` (and `extra` header lines, each ending in
/// CRLF).
pub(crate) fn batch_head(id: Uuid, seq: u64, content_length: u64, extra: &str) -> String {
    format!(
        "POST /v1/batches HTTP/1.1\r\nHost: localhost\r\nAuthtrail-Agent-Id: {id}\r\n\
         Authtrail-Stream: s1\r\nAuthtrail-Batch-Seq: {seq}\r\nAuthtrail-Schema: 1\r\n\
         Content-Encoding: zstd\r\n\
         Content-Length: {content_length}\r\n{extra}\r\n"
    )
}
