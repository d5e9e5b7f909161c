//! The web console: pages and a JSON API (`/api/v1/...`) on the collector's TLS listener.
//!
//! Off unless `[console] admin-token-file` is set. A person exchanges the admin token on the
//! login page (`POST /login`) for a session cookie (`Secure; HttpOnly; SameSite=Strict`, a
//! random id from the system RNG, kept in a bounded table with an expiry); tools send the
//! admin token as `Authorization: Bearer`. A browser presenting a console admin certificate
//! (fleet CA, SAN URI `authtrail:role:admin`, see [`crate::certs`]) gets a session at `/`
//! without the token; an agent's certificate opens nothing here. `cargo xtask demo` prints a
//! one-time login link ([`Console::one_time_link`]) whose token becomes a session once.
//!
//! **Architecture Invariant:** every `/api/v1/` answer without a valid session or admin token
//! is 401, and every page request without one gets the login page. Only the login page, its
//! stylesheet and script are served to anyone.
//!
//! **Architecture Invariant:** the console never writes to the store and never holds the
//! writer: it reads through its own read-only SQLite connection (WAL readers do not block the
//! writer), on a blocking thread, one query at a time, each bounded by [`api::MAX_SCAN_EVENTS`].
//!
//! Every answer carries a strict Content-Security-Policy (`default-src 'self'`, no inline
//! script or style); the assets are embedded in the binary.

pub mod api;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};

use crate::store::Store;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "authtrail_session";
/// Most sessions held at once; a new login past it evicts the one closest to expiry.
pub(crate) const MAX_SESSIONS_CAP: usize = 4096;
/// Failed logins allowed per client address within [`LOGIN_WINDOW`]; more get 429.
pub const LOGIN_ATTEMPTS: u32 = 5;
/// The window over which failed logins are counted.
pub(crate) const LOGIN_WINDOW: Duration = Duration::from_secs(60);
/// Client addresses whose failed logins are tracked; past it, all untracked clients share one
/// counter (so a flood of addresses cannot grow the table or escape the limit).
pub(crate) const MAX_LOGIN_CLIENTS: usize = 1024;
/// Largest login form body, bytes.
pub(crate) const MAX_LOGIN_BODY: usize = 4096;
/// How long a one-time login link works.
pub(crate) const ONE_TIME_TTL: Duration = Duration::from_secs(600);
/// One-time login links outstanding at once (the oldest is dropped past it).
pub const MAX_ONE_TIME: usize = 16;
/// Agents whose last spool backlog is kept; past it, the one that reported longest ago is
/// dropped.
pub const MAX_BACKLOG_AGENTS: usize = 100_000;

/// Each agent's last spool backlog ([`agent_core::wire::SPOOL_BACKLOG_HEADER`]) and when it
/// came (µs since the epoch). In memory: a gauge every batch refreshes, so the store's one
/// writer is not asked for a write per batch; after a restart a host shows none until its
/// agent's next batch or heartbeat.
pub type Backlogs = HashMap<uuid::Uuid, (agent_core::wire::SpoolBacklog, i64)>;

/// Shortest admin token accepted, bytes.
pub(crate) const MIN_ADMIN_TOKEN_BYTES: usize = 16;

/// The Content-Security-Policy of every console answer.
pub(crate) const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

const INDEX_HTML: &str = include_str!("assets/index.html");
const LOGIN_HTML: &str = include_str!("assets/login.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");

/// `[console]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ConsoleConfig {
    /// A file holding the admin token (one line, at least 16 bytes; mode 0600). Setting it
    /// turns the console on at `/` of the collector's HTTPS listener. Defaults to none (the
    /// console is off and its paths answer 404).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token_file: Option<PathBuf>,
    /// How long a login session lasts. Defaults to 8 h.
    #[serde(with = "humantime_serde")]
    pub session_ttl: Duration,
    /// Sessions held at once (at most 4096). Defaults to 64.
    pub max_sessions: usize,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            admin_token_file: None,
            session_ttl: Duration::from_secs(8 * 3600),
            max_sessions: 64,
        }
    }
}

/// Why the console could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsoleError {
    /// The admin token file.
    #[error(transparent)]
    Token(#[from] crate::config::ConfigError),
    /// The admin token is too short.
    #[error("{}: the admin token must be at least {MIN_ADMIN_TOKEN_BYTES} bytes", .0.display())]
    ShortToken(PathBuf),
    /// The read connection.
    #[error("opening the store for the console: {0}")]
    Store(#[from] crate::store::StoreError),
}

struct Session {
    expires: Instant,
    csrf: String,
}

#[derive(Default)]
struct Attempts {
    per_client: HashMap<IpAddr, (Instant, u32)>,
    shared: (Option<Instant>, u32),
}

/// The console's state: its read connection, sessions and login limits.
pub struct Console {
    token: String,
    ttl: Duration,
    max_sessions: usize,
    stale_after: Duration,
    store: Arc<Mutex<Store>>,
    sessions: Mutex<HashMap<String, Session>>,
    attempts: Mutex<Attempts>,
    one_time: Mutex<Vec<(String, Instant)>>,
    addr: Mutex<Option<SocketAddr>>,
    backlogs: Arc<Mutex<Backlogs>>,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console").finish_non_exhaustive()
    }
}

/// 32 random bytes from the system RNG, base64url.
fn random_id() -> String {
    use base64::Engine as _;
    use ring::rand::SecureRandom as _;
    let mut b = [0u8; 32];
    // The system RNG failing is not recoverable; no session may be made from zeros.
    #[allow(clippy::expect_used)]
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .expect("the system random number generator failed");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// Compares secrets in time independent of where they differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

type Reply = Response<Full<Bytes>>;

fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn json_error(status: StatusCode, message: &str) -> Reply {
    let body = serde_json::json!({ "error": message }).to_string();
    reply(status, "application/json", body)
}

fn login_page(status: StatusCode, note: &str) -> Reply {
    let body = LOGIN_HTML.replace("{{note}}", &html_escape(note));
    reply(status, "text/html; charset=utf-8", body)
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn redirect(to: &'static str) -> Reply {
    let mut r = reply(StatusCode::SEE_OTHER, "text/plain; charset=utf-8", "");
    r.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static(to));
    r
}

/// Whether `path` is the console's (with the console on, everything but the agent endpoints).
pub(crate) fn owns(path: &str) -> bool {
    path == "/"
        || path == "/login"
        || path == "/login/once"
        || path == "/logout"
        || path.starts_with("/static/")
        || path.starts_with("/api/")
}

impl Console {
    /// Reads the admin token and opens the read connection to the store at `db` (which must
    /// exist: the server opens it for writing first).
    pub fn open(
        config: &ConsoleConfig,
        db: &std::path::Path,
        stale_after: Duration,
    ) -> Result<Option<Console>, ConsoleError> {
        let Some(path) = &config.admin_token_file else {
            return Ok(None);
        };
        let token = crate::config::read_checked(path, true)?.trim().to_owned();
        if token.len() < MIN_ADMIN_TOKEN_BYTES {
            return Err(ConsoleError::ShortToken(path.clone()));
        }
        let store = Store::open_read_only(db)?;
        Ok(Some(Console {
            token,
            ttl: config.session_ttl,
            max_sessions: config.max_sessions.clamp(1, MAX_SESSIONS_CAP),
            stale_after,
            store: Arc::new(Mutex::new(store)),
            sessions: Mutex::new(HashMap::new()),
            attempts: Mutex::new(Attempts::default()),
            one_time: Mutex::new(Vec::new()),
            addr: Mutex::new(None),
            backlogs: Arc::new(Mutex::new(HashMap::new())),
        }))
    }

    pub(crate) fn set_addr(&self, addr: SocketAddr) {
        if let Ok(mut a) = self.addr.lock() {
            *a = Some(addr);
        }
    }

    /// A login link that works once, within [`ONE_TIME_TTL`]: `https://HOST:PORT/login/once?t=...`
    /// (`host` names the server as its certificate does, e.g. `localhost`).
    pub fn one_time_link(&self, host: &str) -> String {
        let t = random_id();
        if let Ok(mut o) = self.one_time.lock() {
            if o.len() >= MAX_ONE_TIME {
                o.remove(0);
            }
            o.push((t.clone(), Instant::now() + ONE_TIME_TTL));
        }
        let port = self
            .addr
            .lock()
            .ok()
            .and_then(|a| *a)
            .map_or(0, |a| a.port());
        format!("https://{host}:{port}/login/once?t={t}")
    }

    /// Records `agent`'s spool backlog as of `now_us`, keeping at most [`MAX_BACKLOG_AGENTS`].
    pub fn record_backlog(
        &self,
        agent: uuid::Uuid,
        backlog: agent_core::wire::SpoolBacklog,
        now_us: i64,
    ) {
        let Ok(mut b) = self.backlogs.lock() else {
            return;
        };
        if b.len() >= MAX_BACKLOG_AGENTS && !b.contains_key(&agent) {
            let oldest = b.iter().min_by_key(|(_, (_, at))| *at).map(|(k, _)| *k);
            if let Some(k) = oldest {
                b.remove(&k);
            }
        }
        b.insert(agent, (backlog, now_us));
    }

    /// Agents whose backlog is held now (for tests of the bound).
    pub fn backlog_agents(&self) -> usize {
        self.backlogs.lock().map_or(0, |b| b.len())
    }

    /// Sessions held now (for tests of the bound).
    pub fn sessions(&self) -> usize {
        self.sessions.lock().map_or(0, |s| s.len())
    }

    fn new_session(&self) -> String {
        let id = random_id();
        let now = Instant::now();
        if let Ok(mut s) = self.sessions.lock() {
            s.retain(|_, v| v.expires > now);
            while s.len() >= self.max_sessions {
                let Some(oldest) = s
                    .iter()
                    .min_by_key(|(_, v)| v.expires)
                    .map(|(k, _)| k.clone())
                else {
                    break;
                };
                s.remove(&oldest);
            }
            s.insert(
                id.clone(),
                Session {
                    expires: now + self.ttl,
                    csrf: random_id(),
                },
            );
        }
        id
    }

    fn session_cookie(&self, id: &str) -> HeaderValue {
        let v = format!(
            "{SESSION_COOKIE}={id}; Path=/; Max-Age={}; Secure; HttpOnly; SameSite=Strict",
            self.ttl.as_secs()
        );
        HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// The session's CSRF token when `req` carries a live session cookie.
    fn session<B>(&self, req: &Request<B>) -> Option<String> {
        let id = session_id(req)?;
        let mut s = self.sessions.lock().ok()?;
        let now = Instant::now();
        match s.get(id) {
            Some(v) if v.expires > now => Some(v.csrf.clone()),
            Some(_) => {
                s.remove(id);
                None
            }
            None => None,
        }
    }

    fn bearer<B>(&self, req: &Request<B>) -> bool {
        req.headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| same_secret(t.trim().as_bytes(), self.token.as_bytes()))
    }

    /// Whether `ip` may try a login now; counts a failure when `failed`.
    fn login_allowed(&self, ip: IpAddr) -> bool {
        let Ok(mut a) = self.attempts.lock() else {
            return false;
        };
        let now = Instant::now();
        a.per_client
            .retain(|_, (start, _)| now.duration_since(*start) < LOGIN_WINDOW);
        let count = match a.per_client.get(&ip) {
            Some((_, n)) => *n,
            None if a.per_client.len() >= MAX_LOGIN_CLIENTS => match a.shared.0 {
                Some(start) if now.duration_since(start) < LOGIN_WINDOW => a.shared.1,
                _ => 0,
            },
            None => 0,
        };
        count < LOGIN_ATTEMPTS
    }

    fn login_failed(&self, ip: IpAddr) {
        let Ok(mut a) = self.attempts.lock() else {
            return;
        };
        let now = Instant::now();
        if let Some(e) = a.per_client.get_mut(&ip) {
            e.1 += 1;
        } else if a.per_client.len() < MAX_LOGIN_CLIENTS {
            a.per_client.insert(ip, (now, 1));
        } else {
            match a.shared.0 {
                Some(start) if now.duration_since(start) < LOGIN_WINDOW => a.shared.1 += 1,
                _ => a.shared = (Some(now), 1),
            }
        }
    }

    /// Answers a request for one of the console's paths ([`owns`]). `admin` names the person
    /// whose console admin certificate (fleet CA, admin role, not revoked) the connection
    /// presented: a page request then gets a session without the token, an API request is
    /// answered as with the token.
    pub async fn handle(
        &self,
        peer: SocketAddr,
        admin: Option<&str>,
        req: Request<Incoming>,
    ) -> Reply {
        let path = req.uri().path().to_owned();
        let method = req.method().clone();
        match (&method, path.as_str()) {
            (&Method::GET, "/static/app.js") => {
                reply(StatusCode::OK, "text/javascript; charset=utf-8", APP_JS)
            }
            (&Method::GET, "/static/style.css") => {
                reply(StatusCode::OK, "text/css; charset=utf-8", STYLE_CSS)
            }
            (&Method::GET, "/login") => login_page(StatusCode::OK, ""),
            (&Method::POST, "/login") => self.login(peer, req).await,
            (&Method::GET, "/login/once") => self.login_once(&req),
            (&Method::POST, "/logout") => self.logout(&req),
            (&Method::GET, "/") => match (self.session(&req), admin) {
                (Some(_), _) => reply(StatusCode::OK, "text/html; charset=utf-8", INDEX_HTML),
                (None, Some(name)) => {
                    tracing::info!("{peer}: console session for admin certificate {name:?}");
                    let id = self.new_session();
                    let mut r = reply(StatusCode::OK, "text/html; charset=utf-8", INDEX_HTML);
                    r.headers_mut()
                        .insert(header::SET_COOKIE, self.session_cookie(&id));
                    r
                }
                (None, None) => login_page(StatusCode::OK, ""),
            },
            (m, p) if p.starts_with("/api/") => {
                let csrf = self.session(&req);
                if csrf.is_none() && !self.bearer(&req) && admin.is_none() {
                    let mut r = json_error(StatusCode::UNAUTHORIZED, "log in first");
                    r.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static("Bearer realm=\"authtrail-console\""),
                    );
                    return r;
                }
                if m != Method::GET {
                    return json_error(StatusCode::METHOD_NOT_ALLOWED, "the API is read-only: GET");
                }
                if p == "/api/v1/session" {
                    let body = serde_json::json!({ "csrf": csrf }).to_string();
                    return reply(StatusCode::OK, "application/json", body);
                }
                let query = req.uri().query().unwrap_or("").to_owned();
                let store = self.store.clone();
                let stale = self.stale_after;
                let backlogs = self.backlogs.clone();
                let p = p.to_owned();
                let answer = tokio::task::spawn_blocking(move || {
                    let store = store.lock().map_err(|_| api::ApiError::Poisoned)?;
                    api::answer(&store, &p, &query, stale, &backlogs)
                })
                .await;
                match answer {
                    Ok(Ok(body)) => reply(StatusCode::OK, "application/json", body),
                    Ok(Err(e)) => json_error(e.status(), &e.to_string()),
                    Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
                }
            }
            (&Method::GET, _) => json_error(StatusCode::NOT_FOUND, "not found"),
            _ => json_error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
        }
    }

    /// A cross-site POST carries an `Origin` (or `Sec-Fetch-Site`) that is not ours: refuse it.
    fn same_origin<B>(req: &Request<B>) -> bool {
        let h = req.headers();
        if let Some(site) = h.get("sec-fetch-site").and_then(|v| v.to_str().ok())
            && !matches!(site, "same-origin" | "none")
        {
            return false;
        }
        match h.get(header::ORIGIN) {
            None => true,
            Some(o) => {
                let host = h.get(header::HOST).and_then(|v| v.to_str().ok());
                match (o.to_str().ok(), host) {
                    (Some(o), Some(host)) => o == format!("https://{host}"),
                    _ => false,
                }
            }
        }
    }

    async fn login(&self, peer: SocketAddr, req: Request<Incoming>) -> Reply {
        if !Self::same_origin(&req) {
            return login_page(StatusCode::FORBIDDEN, "Cross-site login refused.");
        }
        let ip = peer.ip();
        if !self.login_allowed(ip) {
            let mut r = login_page(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many failed logins; wait a minute.",
            );
            r.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(LOGIN_WINDOW.as_secs()),
            );
            return r;
        }
        let body = match Limited::new(req.into_body(), MAX_LOGIN_BODY)
            .collect()
            .await
        {
            Ok(b) => b.to_bytes(),
            Err(_) => return login_page(StatusCode::PAYLOAD_TOO_LARGE, "Form too large."),
        };
        let token = form_value(&body, "token").unwrap_or_default();
        if !same_secret(token.trim().as_bytes(), self.token.as_bytes()) {
            self.login_failed(ip);
            return login_page(StatusCode::UNAUTHORIZED, "Wrong admin token.");
        }
        let id = self.new_session();
        let mut r = redirect("/");
        r.headers_mut()
            .insert(header::SET_COOKIE, self.session_cookie(&id));
        r
    }

    fn login_once<B>(&self, req: &Request<B>) -> Reply {
        let t = req
            .uri()
            .query()
            .unwrap_or("")
            .split('&')
            .find_map(|kv| kv.strip_prefix("t="))
            .unwrap_or("");
        let now = Instant::now();
        let found = self.one_time.lock().is_ok_and(|mut o| {
            o.retain(|(_, exp)| *exp > now);
            match o
                .iter()
                .position(|(k, _)| same_secret(k.as_bytes(), t.as_bytes()))
            {
                Some(i) => {
                    o.remove(i);
                    true
                }
                None => false,
            }
        });
        if !found {
            return login_page(
                StatusCode::UNAUTHORIZED,
                "That login link was used already or has expired.",
            );
        }
        let id = self.new_session();
        let mut r = redirect("/");
        r.headers_mut()
            .insert(header::SET_COOKIE, self.session_cookie(&id));
        r
    }

    fn logout<B>(&self, req: &Request<B>) -> Reply {
        let csrf = self.session(req);
        let sent = req
            .headers()
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok());
        match (csrf, sent) {
            (Some(c), Some(s))
                if Self::same_origin(req) && same_secret(c.as_bytes(), s.as_bytes()) => {}
            _ => return json_error(StatusCode::FORBIDDEN, "missing or wrong CSRF token"),
        }
        if let (Some(id), Ok(mut s)) = (session_id(req), self.sessions.lock()) {
            s.remove(id);
        }
        let mut r = json_error(StatusCode::OK, "logged out");
        r.headers_mut().insert(
            header::SET_COOKIE,
            HeaderValue::from_static(
                "authtrail_session=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Strict",
            ),
        );
        r
    }
}

/// The session id the request's cookie names.
fn session_id<B>(req: &Request<B>) -> Option<&str> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(SESSION_COOKIE)?.strip_prefix('='))
}

/// The value of `name` in an `application/x-www-form-urlencoded` body.
fn form_value(body: &[u8], name: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    text.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| percent_decode(v))
    })
}

pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(s.get(i + 1..i + 3).unwrap_or(""), 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn console(dir: &std::path::Path) -> Console {
        let db = dir.join("db");
        drop(Store::open(&db).unwrap());
        let token = dir.join("token");
        std::fs::write(&token, "0123456789abcdef0123\n").unwrap();
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
        let config = ConsoleConfig {
            admin_token_file: Some(token),
            ..ConsoleConfig::default()
        };
        Console::open(&config, &db, Duration::from_secs(180))
            .unwrap()
            .unwrap()
    }

    #[test]
    fn failed_login_table_is_bounded_and_a_flood_still_gets_limited() {
        let dir = tempfile::tempdir().unwrap();
        let c = console(dir.path());
        for i in 0..MAX_LOGIN_CLIENTS as u32 + 100 {
            c.login_failed(IpAddr::from(i.to_be_bytes()));
        }
        assert_eq!(
            c.attempts.lock().unwrap().per_client.len(),
            MAX_LOGIN_CLIENTS
        );
        // Past the table, new addresses share one counter: the 100 failures above used it up.
        let fresh = IpAddr::from([10, 200, 0, 1]);
        assert!(!c.login_allowed(fresh));
        // A tracked address is limited on its own count.
        let tracked = IpAddr::from(0u32.to_be_bytes());
        assert!(c.login_allowed(tracked));
        for _ in 1..LOGIN_ATTEMPTS {
            c.login_failed(tracked);
        }
        assert!(!c.login_allowed(tracked));
    }

    #[test]
    fn backlog_table_is_bounded_and_drops_the_longest_silent() {
        let dir = tempfile::tempdir().unwrap();
        let c = console(dir.path());
        let b = agent_core::wire::SpoolBacklog::default();
        let first = uuid::Uuid::from_u128(0);
        for i in 0..MAX_BACKLOG_AGENTS as u128 + 10 {
            c.record_backlog(uuid::Uuid::from_u128(i), b, i as i64);
        }
        assert_eq!(c.backlog_agents(), MAX_BACKLOG_AGENTS);
        assert!(!c.backlogs.lock().unwrap().contains_key(&first));
    }

    #[test]
    fn one_time_links_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let c = console(dir.path());
        let first = c.one_time_link("localhost");
        for _ in 0..MAX_ONE_TIME {
            c.one_time_link("localhost");
        }
        let o = c.one_time.lock().unwrap();
        assert_eq!(o.len(), MAX_ONE_TIME);
        assert!(
            !o.iter().any(|(t, _)| first.ends_with(t.as_str())),
            "the oldest went"
        );
    }

    #[test]
    fn short_admin_token_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        drop(Store::open(&db).unwrap());
        let token = dir.path().join("token");
        std::fs::write(&token, "short\n").unwrap();
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
        let config = ConsoleConfig {
            admin_token_file: Some(token),
            ..ConsoleConfig::default()
        };
        let e = Console::open(&config, &db, Duration::from_secs(1)).unwrap_err();
        assert!(e.to_string().contains("at least 16 bytes"), "{e}");
    }

    #[test]
    fn form_values_are_percent_decoded() {
        assert_eq!(
            form_value(b"a=1&token=x%2By+z", "token").as_deref(),
            Some("x+y z")
        );
        assert_eq!(
            form_value(b"token=%zz%4", "token").as_deref(),
            Some("%zz%4")
        );
        assert_eq!(form_value(b"other=1", "token"), None);
    }
}
