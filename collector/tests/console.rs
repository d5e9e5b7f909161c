//! The web console: access control and the API over real TLS, and the pages in headless
//! Chromium.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use collector::config::{Config, Require};
use collector::console::{Console, LOGIN_ATTEMPTS, SESSION_COOKIE};

use crate::util::*;

const ADMIN_TOKEN: &str = "console-admin-token-0123456789";
const ATTACKER: &str = "203.0.113.7";

/// A collector with the console on, run in-process; stopped on drop.
struct ConsoleServer {
    _dir: tempfile::TempDir,
    pki: Pki,
    server: TestServer,
    console: Arc<Console>,
}

/// A collector config in `dir` with the console on ([`ADMIN_TOKEN`] in a 0600 file).
fn console_config(dir: &Path, pki: &Pki) -> Config {
    let mut c = config(pki, &dir.join("data"), Require::Either);
    let token = dir.join("admin-token");
    fs::write(&token, format!("{ADMIN_TOKEN}\n")).unwrap();
    fs::set_permissions(&token, fs::Permissions::from_mode(0o600)).unwrap();
    c.console.admin_token_file = Some(token);
    c
}

fn start_console(tweak: impl FnOnce(&mut Config)) -> ConsoleServer {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"));
    let mut c = console_config(dir.path(), &pki);
    tweak(&mut c);
    let (server, console) = TestServer::start_with(c);
    ConsoleServer {
        _dir: dir,
        pki,
        server,
        console: console.unwrap(),
    }
}

/// A brute force from [`ATTACKER`] against `alice` on `web1` an hour ago, her login from
/// there, her `sudo` right after, and the alerts the agent raised (two brute force alerts of
/// one attack, and the success after failures).
fn attack_ndjson() -> String {
    let t0 = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1);
    let at = |s: i64| (t0 + jiff::SignedDuration::from_secs(s)).to_string();
    let env = r#""host":{"hostname":"web1"},"agent":{"version":"9.9.9"}"#;
    let mut out = String::new();
    for i in 0..12 {
        out += &format!(
            r#"{{"@timestamp":"{}","event":{{"kind":"event","category":["authentication"],"action":"auth_failure","outcome":"failure","sequence":{}}},{env},"user":{{"name":"alice"}},"source":{{"ip":"{ATTACKER}","port":{}}},"process":{{"name":"sshd","pid":100}},"message":"Failed password for alice from {ATTACKER} port {} ssh2"}}"#,
            at(i * 2),
            i,
            40000 + i,
            40000 + i
        );
        out.push('\n');
    }
    out += &format!(
        r#"{{"@timestamp":"{}","event":{{"kind":"event","category":["authentication"],"action":"auth_success","outcome":"success"}},{env},"user":{{"name":"alice"}},"source":{{"ip":"{ATTACKER}","port":41000}},"process":{{"name":"sshd","pid":101}},"message":"Accepted password for alice from {ATTACKER} port 41000 ssh2"}}"#,
        at(30)
    );
    out.push('\n');
    out += &format!(
        r#"{{"@timestamp":"{}","event":{{"kind":"event","category":["process"],"action":"sudo","outcome":"success"}},{env},"user":{{"name":"alice"}},"process":{{"name":"sudo"}},"message":"alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/cat /etc/shadow"}}"#,
        at(60)
    );
    out.push('\n');
    let cites = |rule: &str| {
        if rule == "success_after_failures" {
            (2..12)
                .map(|n: u32| n.to_string())
                .collect::<Vec<_>>()
                .join(",")
        } else {
            String::new()
        }
    };
    for (s, rule, count) in [
        (10, "brute_force", 5),
        (20, "brute_force", 10),
        (30, "success_after_failures", 12),
    ] {
        let cites = cites(rule);
        out += &format!(
            r#"{{"@timestamp":"{}","event":{{"kind":"alert","category":["authentication"],"action":"{rule}","outcome":"unknown","severity":73,"reason":"{rule} for alice from {ATTACKER}: {count} failures","start":"{}","end":"{}"}},{env},"source":{{"ip":"{ATTACKER}"}},"user":{{"name":"alice"}},"authtrail":{{"count":{count},"evidence":[{cites}]}}}}"#,
            at(s),
            at(0),
            at(s)
        );
        out.push('\n');
    }
    out
}

/// loggen's auth.log (scanner noise, users, and a brute force that ends in a root login) for
/// `web1`, starting a day ago, through the agent's parser and detector: its events (each with
/// its raw line in `message`) and the alerts they raise, as the agent ships them. Returns the
/// NDJSON and the attacker's address (the source of the success-after-failures alert with the
/// most failures).
fn loggen_ndjson() -> (String, String) {
    use agent_core::detect::{DefaultDetector, DetectConfig};
    use agent_core::ecs::{Envelope, write_alert, write_event};
    use agent_core::{Parsed, Text, Timestamp, parse_line, syslog::Context};
    let now = jiff::Timestamp::now().as_second();
    let opts = loggen::Options {
        lines: 5_000,
        seed: 19,
        format: loggen::Format::Rfc3339,
        start: now - 24 * 3600,
        ..Default::default()
    };
    let mut log = Vec::new();
    loggen::generate(&mut log, &opts).unwrap();
    let ctx = Context::new(Timestamp::from_secs(now));
    let mut detector = Box::new(DefaultDetector::new(DetectConfig::default()));
    let (mut out, mut attacker) = (String::new(), None);
    for line in log.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let Parsed::Event(ev) = parse_line(line, &ctx) else {
            continue;
        };
        let env = Envelope {
            agent_version: Some("9.9.9"),
            message: Some(Text(line)),
            ..Envelope::default()
        };
        write_event(&mut out, &ev, &env).unwrap();
        out.push('\n');
        for alert in detector.observe(&ev) {
            let env = Envelope {
                hostname: ev.hostname,
                message: None,
                ..env
            };
            write_alert(&mut out, &alert, &env).unwrap();
            out.push('\n');
            // loggen's burst: the success after the most failures (others are typos).
            if alert.rule == agent_core::detect::Rule::SuccessAfterFailures
                && attacker.as_ref().is_none_or(|(n, _)| alert.count > *n)
            {
                attacker = alert.source.map(|ip| (alert.count, ip.to_string()));
            }
        }
    }
    (
        out,
        attacker
            .expect("loggen's burst raises success after failures")
            .1,
    )
}

fn fill(s: &ConsoleServer) {
    fill_with(s, &attack_ndjson());
}

fn fill_with(s: &ConsoleServer, body: &str) {
    let agent = s.pki.agent();
    let client = client(&s.pki.ca(), Some(&agent));
    let a = post(
        &client,
        &s.server,
        &Post::new(agent.id, 1, zstd(body.as_bytes())),
    )
    .unwrap();
    assert_eq!(a.status, 200, "{}", a.body);
}

/// A client that does not follow redirects (so the login's `Set-Cookie` is seen).
fn browser(s: &ConsoleServer) -> ureq::Agent {
    browser_for(&s.pki)
}

fn browser_for(pki: &Pki) -> ureq::Agent {
    browser_with(pki, None)
}

/// A client trusting `pki`'s CA, presenting `cert` if given, that does not follow redirects.
fn browser_with(pki: &Pki, cert: Option<&AgentCert>) -> ureq::Agent {
    let ca = fs::read(pki.ca()).unwrap();
    let mut tls =
        ureq::tls::TlsConfig::builder().root_certs(ureq::tls::RootCerts::Specific(Arc::new(vec![
            ureq::tls::Certificate::from_pem(&ca).unwrap(),
        ])));
    if let Some(c) = cert {
        let chain = ureq::tls::Certificate::from_pem(&fs::read(&c.cert).unwrap()).unwrap();
        let key = ureq::tls::PrivateKey::from_pem(&fs::read(&c.key).unwrap()).unwrap();
        tls = tls.client_cert(Some(ureq::tls::ClientCert::new_with_certs(&[chain], key)));
    }
    ureq::Agent::config_builder()
        .tls_config(tls.build())
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

struct Got {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn got(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Got {
    let r = r.unwrap();
    let status = r.status().as_u16();
    let headers = r
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let body = r.into_body().read_to_string().unwrap_or_default();
    Got {
        status,
        headers,
        body,
    }
}

fn get(s: &ConsoleServer, path: &str, cookie: Option<&str>) -> Got {
    let mut req = browser(s).get(s.server.url(path));
    if let Some(c) = cookie {
        req = req.header("Cookie", &format!("{SESSION_COOKIE}={c}"));
    }
    got(req.call())
}

fn login(s: &ConsoleServer, token: &str) -> Got {
    got(browser(s)
        .post(s.server.url("/login"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send(format!("token={token}").as_bytes()))
}

/// The session id a login answer set.
fn session_of(g: &Got) -> String {
    let c = g.header("set-cookie").expect("a Set-Cookie");
    c.split(';')
        .next()
        .unwrap()
        .strip_prefix(&format!("{SESSION_COOKIE}="))
        .unwrap()
        .to_owned()
}

#[test]
fn console_is_off_unless_an_admin_token_is_configured() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"));
    let (server, console) =
        TestServer::start_with(config(&pki, &dir.path().join("data"), Require::Either));
    assert!(console.is_none());
    let a = client(&pki.ca(), None);
    for path in ["/", "/login", "/api/v1/alerts"] {
        let r = a.get(server.url(path)).call().unwrap();
        assert_eq!(r.status().as_u16(), 404, "{path}");
    }
}

#[test]
fn console_without_session_gets_login_page_and_api_401() {
    let s = start_console(|_| {});
    let page = get(&s, "/", None);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Admin token"), "{}", page.body);
    assert!(
        !page.body.contains("app.js"),
        "the console's script is not given to strangers"
    );
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.contains("default-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    for path in [
        "/api/v1/alerts",
        "/api/v1/events",
        "/api/v1/hosts",
        "/api/v1/users",
        "/api/v1/sources",
        "/api/v1/timeline",
        "/api/v1/alerts/evidence",
    ] {
        let r = get(&s, path, None);
        assert_eq!(r.status, 401, "{path}");
        let r = get(&s, path, Some("made-up-session"));
        assert_eq!(r.status, 401, "{path} with a made-up session");
    }
}

#[test]
fn console_login_sets_a_strict_session_cookie() {
    let s = start_console(|_| {});
    let r = login(&s, ADMIN_TOKEN);
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("location"), Some("/"));
    let cookie = r.header("set-cookie").unwrap();
    for attr in [
        "Secure",
        "HttpOnly",
        "SameSite=Strict",
        "Path=/",
        "Max-Age=",
    ] {
        assert!(cookie.contains(attr), "{cookie} lacks {attr}");
    }
    let id = session_of(&r);
    assert!(id.len() >= 40, "a long random id: {id}");
    assert_ne!(
        id,
        session_of(&login(&s, ADMIN_TOKEN)),
        "each login its own id"
    );

    let page = get(&s, "/", Some(&id));
    assert!(page.body.contains("/static/app.js"), "{}", page.body);
    let r = get(&s, "/api/v1/alerts", Some(&id));
    assert_eq!(r.status, 200, "{}", r.body);

    // A tool uses the admin token itself.
    let r = got(browser(&s)
        .get(s.server.url("/api/v1/hosts"))
        .header("Authorization", &format!("Bearer {ADMIN_TOKEN}"))
        .call());
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn console_cross_site_login_is_refused() {
    let s = start_console(|_| {});
    let r = got(browser(&s)
        .post(s.server.url("/login"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Origin", "https://evil.example")
        .send(format!("token={ADMIN_TOKEN}").as_bytes()));
    assert_eq!(r.status, 403);
    assert!(r.header("set-cookie").is_none());
}

#[test]
fn console_bad_tokens_are_rate_limited() {
    let s = start_console(|_| {});
    for _ in 0..LOGIN_ATTEMPTS {
        let r = login(&s, "wrong-token-wrong-token");
        assert_eq!(r.status, 401);
        assert!(r.header("set-cookie").is_none());
    }
    let r = login(&s, "wrong-token-wrong-token");
    assert_eq!(r.status, 429);
    assert!(r.header("retry-after").is_some());
    // Even the right token waits now: guessing cannot continue past the limit.
    let r = login(&s, ADMIN_TOKEN);
    assert_eq!(r.status, 429);
}

#[test]
fn console_sessions_are_bounded() {
    let s = start_console(|c| c.console.max_sessions = 3);
    let ids: Vec<String> = (0..5)
        .map(|_| session_of(&login(&s, ADMIN_TOKEN)))
        .collect();
    assert_eq!(s.console.sessions(), 3);
    assert_eq!(get(&s, "/api/v1/hosts", Some(&ids[0])).status, 401);
    assert_eq!(get(&s, "/api/v1/hosts", Some(&ids[4])).status, 200);
}

#[test]
fn console_sessions_expire() {
    let s = start_console(|c| c.console.session_ttl = Duration::from_secs(1));
    let id = session_of(&login(&s, ADMIN_TOKEN));
    assert_eq!(get(&s, "/api/v1/hosts", Some(&id)).status, 200);
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(get(&s, "/api/v1/hosts", Some(&id)).status, 401);
}

#[test]
fn console_one_time_link_works_once() {
    let s = start_console(|_| {});
    let link = s.console.one_time_link("localhost");
    let path = &link[link.find("/login/once").unwrap()..];
    let r = get(&s, path, None);
    assert_eq!(r.status, 303);
    let id = session_of(&r);
    assert_eq!(get(&s, "/api/v1/hosts", Some(&id)).status, 200);
    let again = get(&s, path, None);
    assert_eq!(again.status, 401);
    assert!(again.header("set-cookie").is_none());
}

#[test]
fn console_api_groups_alerts_and_caps_pages() {
    let s = start_console(|_| {});
    fill(&s);
    let id = session_of(&login(&s, ADMIN_TOKEN));
    let json = |path: &str| -> serde_json::Value {
        let r = get(&s, path, Some(&id));
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        serde_json::from_str(&r.body).unwrap()
    };
    let a = json("/api/v1/alerts");
    let items = a["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "two brute force alerts make one row: {a}");
    assert_eq!(items[0]["rule"], "success_after_failures");
    assert_eq!(items[0]["source_ip"], ATTACKER);
    assert_eq!(items[1]["rule"], "brute_force");
    assert_eq!(items[1]["alerts"], 2);
    assert_eq!(items[1]["attempts"], 10);

    let g = &items[0];
    let e = json(&format!(
        "/api/v1/alerts/evidence?host=web1&source_ip={ATTACKER}&user=alice&since={}&until={}",
        g["start_us"], g["end_us"]
    ));
    let ev = e["evidence"].as_array().unwrap();
    assert_eq!(ev.len(), 13, "12 failures and the success: {e}");
    assert!(
        ev[12]["doc"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Accepted password for alice"),
        "{e}"
    );
    assert_eq!(e["next"][0]["action"], "sudo", "{e}");
    // Without the group's cites nothing is marked; with them, the ten cited failures.
    let marked = |e: &serde_json::Value| {
        e["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["cited"] == true)
            .count()
    };
    assert_eq!(marked(&e), 0);
    let cites: Vec<String> = g["cites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(cites.len(), 10, "{g}");
    let e = json(&format!(
        "/api/v1/alerts/evidence?host=web1&source_ip={ATTACKER}&user=alice&since={}&until={}&cites={}",
        g["start_us"],
        g["end_us"],
        cites.join(",")
    ));
    assert_eq!(marked(&e), 10, "{e}");

    let h = json("/api/v1/hosts");
    assert_eq!(h["items"][0]["hostname"], "web1");
    assert_eq!(h["items"][0]["agent_version"], "9.9.9");
    assert_eq!(h["items"][0]["stale"], false);
    let src = json("/api/v1/sources");
    assert_eq!(src["items"][0]["source_ip"], ATTACKER);
    assert_eq!(src["items"][0]["failures"], 12);
    assert_eq!(src["items"][0]["successes"], 1);
    let u = json("/api/v1/users");
    assert_eq!(u["items"][0]["user"], "alice");
    assert_eq!(u["items"][0]["sudo"], 1);
    assert_eq!(u["items"][0]["networks"][0], "203.0.113.0/24");
    let t = json("/api/v1/timeline");
    assert_eq!(t["bucket_us"], 3_600_000_000_i64, "a week: hours");
    let hours = t["items"].as_array().unwrap();
    let sum = |k: &str| hours.iter().map(|h| h[k].as_u64().unwrap()).sum::<u64>();
    assert_eq!((sum("successes"), sum("failures")), (1, 12));
    // Zoomed into the attack's hour: per minute.
    let hour = hours
        .iter()
        .find(|h| h["failures"].as_u64().unwrap() > 0)
        .unwrap()["start_us"]
        .as_i64()
        .unwrap();
    let z = json(&format!(
        "/api/v1/timeline?since={hour}&until={}",
        hour + 3_600_000_000 - 1
    ));
    assert_eq!(z["bucket_us"], 60_000_000, "{z}");
    let minutes = z["items"].as_array().unwrap();
    assert!(minutes.len() >= 2, "{z}");
    assert!(
        minutes
            .iter()
            .all(|m| m["start_us"].as_i64().unwrap() % 60_000_000 == 0)
    );
    let zsum = |k: &str| minutes.iter().map(|h| h[k].as_u64().unwrap()).sum::<u64>();
    assert!(zsum("failures") >= 1, "{z}");
    // A day: ten minutes.
    let d = json(&format!(
        "/api/v1/timeline?since={}&until={hour}",
        hour - 86_400_000_000 + 1
    ));
    assert_eq!(d["bucket_us"], 600_000_000, "{d}");

    // Pages: the size is capped, and the pages tile the result.
    let ev = json("/api/v1/events?limit=100000");
    assert_eq!(ev["limit"], collector::console::api::MAX_PAGE as u64);
    let p1 = json("/api/v1/events?limit=5&action=auth_failure");
    assert_eq!(p1["items"].as_array().unwrap().len(), 5);
    assert_eq!(p1["total"], 12);
    assert_eq!(p1["next_offset"], 5);
    let p3 = json("/api/v1/events?limit=5&offset=10&action=auth_failure");
    assert_eq!(p3["items"].as_array().unwrap().len(), 2);
    assert!(p3["next_offset"].is_null());
    let bad = get(&s, "/api/v1/events?since=yesterday", Some(&id));
    assert_eq!(bad.status, 400, "{}", bad.body);
}

/// `path`'s JSON answer, asked with the admin token.
fn api_json(s: &ConsoleServer, path: &str) -> serde_json::Value {
    let r = got(browser(s)
        .get(s.server.url(path))
        .header("Authorization", &format!("Bearer {ADMIN_TOKEN}"))
        .call());
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    serde_json::from_str(&r.body).unwrap()
}

/// Where the end-to-end test leaves its screenshots and DOM dumps.
fn output_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-e2e");
    fs::create_dir_all(&d).unwrap();
    d
}

const CHROMIUM: &str = "/usr/bin/chromium";

/// Headless, isolated, offline; the test CA's certificate is not in its store, hence
/// `--ignore-certificate-errors`.
const CHROMIUM_FLAGS: [&str; 10] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--ignore-certificate-errors",
    "--window-size=1400,900",
];

/// Runs headless Chromium on `url` (ignoring the test CA's certificate: it is not in its store),
/// with `extra` arguments; returns stdout.
fn chromium(url: &str, extra: &[&str]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(CHROMIUM)
        .args(CHROMIUM_FLAGS)
        .arg("--virtual-time-budget=10000")
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn console_in_headless_chromium_shows_the_attack() {
    if !Path::new(CHROMIUM).exists() {
        eprintln!("skipped: {CHROMIUM} is not installed (apt-get install chromium)");
        return;
    }
    let s = start_console(|_| {});
    let (ndjson, attacker) = loggen_ndjson();
    fill_with(&s, &ndjson);
    for (host, user) in [("db1", "root"), ("db2", "admin"), ("db3", "oracle")] {
        fill_with(&s, &spray_ndjson(host, user));
    }
    let fleet = wait_for_rule(&s, "fleet_distributed_brute_force");
    let out = output_dir();
    let base = s.server.url("/");

    // Without a session: the login page, and the API says 401.
    let dom = chromium(&base, &["--dump-dom"]);
    fs::write(out.join("unauthenticated.html"), &dom).unwrap();
    assert!(dom.contains("Admin token"), "{dom}");
    assert!(!dom.contains(&attacker), "{dom}");
    assert_eq!(get(&s, "/api/v1/alerts", None).status, 401);
    let shot = out.join("login.png");
    chromium(&base, &[&format!("--screenshot={}", shot.display())]);
    assert!(fs::metadata(&shot).unwrap().len() > 1000);

    // Logged in through a one-time link: the alerts page.
    let dom = chromium(&s.console.one_time_link("localhost"), &["--dump-dom"]);
    fs::write(out.join("alerts.html"), &dom).unwrap();
    assert!(dom.contains("success after failures"), "{dom}");
    assert!(dom.contains(&attacker), "{dom}");
    let shot = out.join("alerts.png");
    chromium(
        &s.console.one_time_link("localhost"),
        &[&format!("--screenshot={}", shot.display())],
    );
    assert!(fs::metadata(&shot).unwrap().len() > 1000);

    // The newest group expanded: its evidence (the raw lines) and the chain after it.
    // The success-after-failures group's place on the first page, as the API lists it.
    let alerts: serde_json::Value = api_json(&s, "/api/v1/alerts");
    let index = alerts["items"]
        .as_array()
        .unwrap()
        .iter()
        .position(|g| g["rule"] == "success_after_failures" && g["source_ip"] == attacker.as_str())
        .expect("the success-after-failures group on the first page");
    let link = s.console.one_time_link("localhost") + &format!("#alerts/{index}");
    let dom = chromium(&link, &["--dump-dom"]);
    fs::write(out.join("alert-chain.html"), &dom).unwrap();
    let detail = &dom[dom.find("class=\"detail\"").expect("an expanded alert")..];
    assert!(detail.contains("Evidence: "), "{dom}");
    assert!(
        detail.contains("Failed password for"),
        "the failures' raw lines: {dom}"
    );
    assert!(
        detail.contains(&format!("Accepted password for root from {attacker}")),
        "the success's raw line: {dom}"
    );
    assert!(detail.contains("did next on"), "{dom}");
    // The fleet alert, beside the agents' alerts, expanded to the failures on each host.
    let fleet_index = fleet["items"]
        .as_array()
        .unwrap()
        .iter()
        .position(|g| g["rule"] == "fleet_distributed_brute_force")
        .unwrap();
    let link = s.console.one_time_link("localhost") + &format!("#alerts/{fleet_index}");
    let dom = chromium(&link, &["--dump-dom"]);
    fs::write(out.join("fleet-alert.html"), &dom).unwrap();
    assert!(dom.contains("fleet distributed brute force"), "{dom}");
    let detail = &dom[dom.find("class=\"detail\"").expect("an expanded alert")..];
    assert!(detail.contains("events on 3 hosts"), "{dom}");
    assert!(detail.contains(SPRAYER) && detail.contains("db3"), "{dom}");
    let shot = out.join("alert-chain.png");
    let link = s.console.one_time_link("localhost") + &format!("#alerts/{index}");
    chromium(&link, &[&format!("--screenshot={}", shot.display())]);
    assert!(fs::metadata(&shot).unwrap().len() > 1000);

    // The timeline: each hour's bar is a button that zooms in (Tab and Enter reach it); the
    // zoomed hour has a bar per minute and a zoom-out.
    let t: serde_json::Value = api_json(&s, "/api/v1/timeline");
    let busiest = t["items"]
        .as_array()
        .unwrap()
        .iter()
        .max_by_key(|h| h["failures"].as_u64().unwrap())
        .unwrap();
    let hour = busiest["start_us"].as_i64().unwrap();
    let dom = chromium(
        &(s.console.one_time_link("localhost") + "#timeline"),
        &["--dump-dom"],
    );
    fs::write(out.join("timeline.html"), &dom).unwrap();
    assert!(dom.contains("Logins per hour"), "{dom}");
    assert!(dom.contains("<button class=\"bar\""), "{dom}");
    assert!(dom.contains(&format!("data-start=\"{hour}\"")), "{dom}");
    assert!(dom.contains("failures. Zoom in"), "{dom}");
    let zoomed = s.console.one_time_link("localhost")
        + &format!("#timeline/{hour}/{}", hour + 3_599_999_999);
    let dom = chromium(&zoomed, &["--dump-dom"]);
    fs::write(out.join("timeline-zoom.html"), &dom).unwrap();
    assert!(dom.contains("Logins per minute"), "{dom}");
    assert!(dom.contains("id=\"zoom-out\""), "{dom}");
    assert_eq!(
        dom.matches("class=\"bar\"").count(),
        60,
        "a bar a minute: {dom}"
    );
    assert!(busiest["failures"].as_u64().unwrap() > 0);
    assert!(dom.contains(" failures\""), "{dom}");
    assert!(!dom.contains("Zoom in"), "a minute is the finest: {dom}");
    let shot = out.join("timeline-zoom.png");
    chromium(
        &(s.console.one_time_link("localhost")
            + &format!("#timeline/{hour}/{}", hour + 3_599_999_999)),
        &[&format!("--screenshot={}", shot.display())],
    );
    assert!(fs::metadata(&shot).unwrap().len() > 1000);

    for page in ["timeline", "hosts", "users", "sources"] {
        let link = s.console.one_time_link("localhost") + "#" + page;
        let shot = out.join(format!("{page}.png"));
        chromium(&link, &[&format!("--screenshot={}", shot.display())]);
        assert!(fs::metadata(&shot).unwrap().len() > 1000, "{page}");
    }
    eprintln!("screenshots in {}", out.display());
}

#[test]
fn console_serve_prints_a_one_time_login_link() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&dir.path().join("pki"));
    let c = console_config(dir.path(), &pki);
    let cfg = dir.path().join("collector.toml");
    fs::write(&cfg, c.to_toml().unwrap()).unwrap();
    fs::set_permissions(&cfg, fs::Permissions::from_mode(0o600)).unwrap();
    let mut child = Command::new(super::BIN)
        .args(["serve", "--console-link", "localhost", "--config"])
        .arg(&cfg)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let (mut first, mut second) = (String::new(), String::new());
    std::io::BufRead::read_line(&mut out, &mut first).unwrap();
    std::io::BufRead::read_line(&mut out, &mut second).unwrap();
    let link = second
        .trim()
        .strip_prefix("console login link ")
        .map(str::to_owned);
    let port = first.trim().rsplit(':').next().unwrap().to_owned();
    let answer = link
        .as_ref()
        .map(|l| got(browser_for(&pki).get(l).call()).status);
    let again = link
        .as_ref()
        .map(|l| got(browser_for(&pki).get(l).call()).status);
    child.kill().unwrap();
    child.wait().unwrap();
    let link = link.unwrap_or_else(|| panic!("no link line: {first:?} {second:?}"));
    assert!(
        link.starts_with(&format!("https://localhost:{port}/login/once?t=")),
        "{link}"
    );
    assert_eq!(answer, Some(303));
    assert_eq!(again, Some(401));
}

#[test]
fn console_logout_needs_the_csrf_token_and_ends_the_session() {
    let s = start_console(|_| {});
    let id = session_of(&login(&s, ADMIN_TOKEN));
    let logout = |csrf: Option<&str>| {
        let mut req = browser(&s)
            .post(s.server.url("/logout"))
            .header("Cookie", &format!("{SESSION_COOKIE}={id}"));
        if let Some(c) = csrf {
            req = req.header("X-CSRF-Token", c);
        }
        got(req.send_empty())
    };
    assert_eq!(logout(None).status, 403);
    assert_eq!(logout(Some("guessed")).status, 403);
    assert_eq!(get(&s, "/api/v1/hosts", Some(&id)).status, 200);
    let session: serde_json::Value =
        serde_json::from_str(&get(&s, "/api/v1/session", Some(&id)).body).unwrap();
    let r = logout(session["csrf"].as_str());
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(get(&s, "/api/v1/hosts", Some(&id)).status, 401);
    // A POST to the API without a session is 401 too, not a hint about methods.
    let r = got(browser(&s)
        .post(s.server.url("/api/v1/alerts"))
        .send_empty());
    assert_eq!(r.status, 401);
}

/// An admin certificate of `pki` (`certs issue-admin NAME`) as a client identity.
fn admin_cert(pki: &Pki, name: &str) -> AgentCert {
    let r = collector::certs::issue_admin(&pki.dir, name, 30).unwrap();
    AgentCert {
        id: uuid::Uuid::nil(),
        cert: r.cert,
        key: r.key,
    }
}

#[test]
fn console_admin_certificate_gets_in_and_agent_certificate_does_not() {
    let s = start_console(|c| {
        let pki = c.tls.client_ca_file.as_ref().unwrap().parent().unwrap();
        c.tls.revoked_file = Some(pki.join(collector::certs::REVOKED));
    });
    fill(&s);
    let admin = admin_cert(&s.pki, "ops-alice");
    let as_admin = browser_with(&s.pki, Some(&admin));

    // The admin certificate: the console's page and a session, without the token.
    let page = got(as_admin.get(s.server.url("/")).call());
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("/static/app.js"), "{}", page.body);
    assert!(!page.body.contains("Admin token"), "{}", page.body);
    let id = session_of(&page);
    assert_eq!(get(&s, "/api/v1/hosts", Some(&id)).status, 200);
    let api = got(as_admin.get(s.server.url("/api/v1/alerts")).call());
    assert_eq!(api.status, 200, "{}", api.body);
    assert!(api.body.contains(ATTACKER), "{}", api.body);
    // ... and it is no agent: it cannot send a batch.
    let refused = post(
        &as_admin,
        &s.server,
        &Post::new(uuid::Uuid::new_v4(), 1, zstd(events().as_bytes())),
    )
    .unwrap();
    assert_eq!(refused.status, 403, "{}", refused.body);

    // An agent's certificate from the same CA opens nothing.
    let agent = s.pki.agent();
    let as_agent = browser_with(&s.pki, Some(&agent));
    let page = got(as_agent.get(s.server.url("/")).call());
    assert!(page.body.contains("Admin token"), "{}", page.body);
    assert!(page.header("set-cookie").is_none());
    assert_eq!(
        got(as_agent.get(s.server.url("/api/v1/alerts")).call()).status,
        401
    );

    // No certificate: the token login still works.
    assert!(get(&s, "/", None).body.contains("Admin token"));
    let id = session_of(&login(&s, ADMIN_TOKEN));
    assert_eq!(get(&s, "/api/v1/hosts", Some(&id)).status, 200);

    // Revoked: the admin certificate opens nothing at its next request.
    let r = collector::certs::revoke_admin(&s.pki.dir, "ops-alice").unwrap();
    assert!(r.added);
    let page = got(as_admin.get(s.server.url("/")).call());
    assert!(page.body.contains("Admin token"), "{}", page.body);
    assert_eq!(
        got(as_admin.get(s.server.url("/api/v1/alerts")).call()).status,
        401
    );
}

const SPRAYER: &str = "198.51.100.9";

/// Failures from [`SPRAYER`] against `user` on `host`, half an hour ago.
fn spray_ndjson(host: &str, user: &str) -> String {
    let t0 = jiff::Timestamp::now() - jiff::SignedDuration::from_mins(30);
    (0..3)
        .map(|i| {
            let at = t0 + jiff::SignedDuration::from_secs(i);
            format!(
                r#"{{"@timestamp":"{at}","event":{{"kind":"event","category":["authentication"],"action":"auth_failure","outcome":"failure"}},"host":{{"hostname":"{host}"}},"agent":{{"version":"9.9.9"}},"user":{{"name":"{user}"}},"source":{{"ip":"{SPRAYER}","port":{}}},"process":{{"name":"sshd"}},"message":"Failed password for {user} from {SPRAYER} port {} ssh2"}}"#,
                50000 + i,
                50000 + i
            ) + "\n"
        })
        .collect()
}

/// The alert groups, polled until one of `rule` shows (the fleet rules run after the commit).
fn wait_for_rule(s: &ConsoleServer, rule: &str) -> serde_json::Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let v = api_json(s, "/api/v1/alerts");
        if v["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["rule"] == rule)
        {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "no {rule} alert: {v}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn console_api_lists_fleet_alerts_beside_edge_alerts() {
    let s = start_console(|_| {});
    fill(&s);
    // Other users on each host: the distributed brute force fires, not the spray.
    for (host, user) in [("db1", "root"), ("db2", "admin"), ("db3", "oracle")] {
        fill_with(&s, &spray_ndjson(host, user));
    }
    let a = wait_for_rule(&s, "fleet_distributed_brute_force");
    let items = a["items"].as_array().unwrap();
    let fleet: Vec<_> = items.iter().filter(|g| g["origin"] == "fleet").collect();
    assert_eq!(fleet.len(), 1, "one attack, one row: {a}");
    let g = fleet[0];
    assert_eq!(g["source_ip"], SPRAYER, "{g}");
    assert_eq!(g["hosts"], serde_json::json!(["db1", "db2", "db3"]), "{g}");
    assert!(g["reason"].as_str().unwrap().contains(SPRAYER), "{g}");
    let ev = g["evidence"].as_array().unwrap();
    assert!(ev.len() >= 3, "the failures it cites: {g}");
    assert!(ev.iter().all(|e| e["source"]["ip"] == SPRAYER), "{g}");
    // The agents' own alerts are still there, as edge rows.
    assert!(
        items
            .iter()
            .any(|g| g["origin"] == "edge" && g["rule"] == "success_after_failures"),
        "{a}"
    );
    // Filters apply to fleet alerts by the hosts and addresses they relate.
    let v = api_json(&s, "/api/v1/alerts?host=db2");
    let rules: Vec<_> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["rule"].clone())
        .collect();
    assert_eq!(
        rules,
        [serde_json::json!("fleet_distributed_brute_force")],
        "{v}"
    );
}

/// One user's new network alerted by three agents: the console lists it once, as an edge
/// alert with the hosts it covers (and the host filter finds it by any of them).
#[test]
fn console_lists_a_new_network_alerted_on_three_hosts_once() {
    let s = start_console(|_| {});
    let now = jiff::Timestamp::now();
    for (i, host) in ["web1", "web2", "db1"].iter().enumerate() {
        let t = now + jiff::SignedDuration::from_secs(i as i64);
        fill_with(
            &s,
            &format!(
                "{{\"@timestamp\":\"{t}\",\"event\":{{\"kind\":\"alert\",\"action\":\"first_seen_source\",\"severity\":21,\"start\":\"{t}\",\"end\":\"{t}\"}},\"rule\":{{\"id\":\"first_seen_source\"}},\"message\":\"carol logged in from 198.51.7.{i}, an address not seen before for that user.\",\"host\":{{\"hostname\":\"{host}\"}},\"user\":{{\"name\":\"carol\"}},\"source\":{{\"ip\":\"198.51.7.{i}\"}}}}\n"
            ),
        );
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let v = api_json(&s, "/api/v1/alerts?host=db1");
        let items = v["items"].as_array().unwrap();
        if items.len() == 1 && items[0]["hosts"] == serde_json::json!(["web1", "web2", "db1"]) {
            assert_eq!(items[0]["origin"], "edge", "{v}");
            assert_eq!(items[0]["alerts"], 1, "{v}");
            assert_eq!(items[0]["host"], "web1", "{v}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{v}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn console_hosts_show_each_agents_last_spool_backlog() {
    let s = start_console(|_| {});
    let agent = s.pki.agent();
    let client = client(&s.pki.ca(), Some(&agent));
    let send = |seq: u64, backlog: Option<&str>| {
        let mut req = client
            .post(s.server.url("/v1/batches"))
            .header("Authtrail-Agent-Id", &agent.id.to_string())
            .header("Authtrail-Stream", "s1")
            .header("Authtrail-Batch-Seq", &seq.to_string())
            .header("Authtrail-Schema", "1")
            .header("Content-Encoding", "zstd");
        if let Some(b) = backlog {
            req = req.header(agent_core::wire::SPOOL_BACKLOG_HEADER, b);
        }
        let r = got(req.send(&zstd(attack_ndjson().as_bytes())[..]));
        assert_eq!(r.status, 200, "{}", r.body);
    };
    let host = || -> serde_json::Value { api_json(&s, "/api/v1/hosts")["items"][0].clone() };
    send(1, None);
    assert!(host()["spool"].is_null(), "{}", host());
    send(2, Some("batches=40, bytes=52428800, lag-ms=600000"));
    let h = host();
    assert_eq!(h["spool"]["batches"], 40, "{h}");
    assert_eq!(h["spool"]["bytes"], 52_428_800, "{h}");
    assert_eq!(h["spool"]["lag_ms"], 600_000, "{h}");
    // The last value counts; a header that cannot be read is ignored, the batch is stored.
    if Path::new(CHROMIUM).exists() {
        let dom = chromium(
            &(s.console.one_time_link("localhost") + "#hosts"),
            &["--dump-dom"],
        );
        fs::write(output_dir().join("hosts-backlog.html"), &dom).unwrap();
        assert!(
            dom.contains("40 batches, 50.0 MiB, behind 600 s"),
            "the Hosts page shows the backlog: {dom}"
        );
    }
    send(3, Some("batches=1, bytes=900, lag-ms=0"));
    send(4, Some("batches=lots"));
    let h = host();
    assert_eq!(h["spool"]["batches"], 1, "{h}");
    assert_eq!(h["spool"]["lag_ms"], 0, "{h}");
}

/// Headless Chromium driven through the Chrome DevTools protocol (one page), killed on drop.
struct Devtools {
    child: std::process::Child,
    ws: tungstenite::WebSocket<std::net::TcpStream>,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Devtools {
    /// Opens `url` in a new headless Chromium.
    fn open(url: &str) -> Devtools {
        use std::io::BufRead as _;
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new(CHROMIUM)
            .args(CHROMIUM_FLAGS)
            .args([
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(url)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut browser_ws = None;
        for line in stderr.lines() {
            let line = line.unwrap();
            if let Some(u) = line.strip_prefix("DevTools listening on ") {
                browser_ws = Some(u.trim().to_owned());
                break;
            }
        }
        let browser_ws = browser_ws.expect("chromium printed no DevTools address");
        let port = browser_ws
            .strip_prefix("ws://127.0.0.1:")
            .and_then(|r| r.split('/').next())
            .unwrap()
            .to_owned();
        // The page's own socket, from the target list.
        let page_ws = {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                let list: serde_json::Value = serde_json::from_str(
                    &ureq::get(&format!("http://127.0.0.1:{port}/json/list"))
                        .call()
                        .unwrap()
                        .into_body()
                        .read_to_string()
                        .unwrap(),
                )
                .unwrap();
                if let Some(u) = list
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|t| t["type"] == "page")
                    .and_then(|t| t["webSocketDebuggerUrl"].as_str())
                {
                    break u.to_owned();
                }
                assert!(std::time::Instant::now() < deadline, "no page: {list}");
                std::thread::sleep(Duration::from_millis(100));
            }
        };
        let tcp =
            std::net::TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let (ws, _) = tungstenite::client(page_ws.as_str(), tcp).unwrap();
        Devtools {
            child,
            ws,
            next_id: 1,
            _profile: profile,
        }
    }

    /// Sends a command and returns its result (events in between are skipped).
    fn call(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
        let id = self.next_id;
        self.next_id += 1;
        let msg = serde_json::json!({ "id": id, "method": method, "params": params });
        self.ws
            .send(tungstenite::Message::text(msg.to_string()))
            .unwrap();
        loop {
            let m = self.ws.read().unwrap();
            let Ok(text) = m.to_text() else { continue };
            let v: serde_json::Value = serde_json::from_str(text).unwrap();
            if v["id"] == id {
                assert!(v["error"].is_null(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    /// The value of a JavaScript expression in the page.
    fn eval(&mut self, expr: &str) -> serde_json::Value {
        let r = self.call(
            "Runtime.evaluate",
            serde_json::json!({ "expression": expr, "returnByValue": true }),
        );
        r["result"]["value"].clone()
    }

    /// Waits until `expr` is true in the page.
    fn wait(&mut self, expr: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while self.eval(expr) != serde_json::Value::Bool(true) {
            assert!(
                std::time::Instant::now() < deadline,
                "never true: {expr}; page: {}",
                self.eval("document.body.innerText")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Presses a key (down and up) as the keyboard would.
    fn press(&mut self, key: &str, code: u32) {
        for kind in ["rawKeyDown", "keyUp"] {
            let mut p = serde_json::json!({
                "type": kind, "key": key, "code": key, "windowsVirtualKeyCode": code,
            });
            if key == "Enter" && kind == "rawKeyDown" {
                self.call("Input.dispatchKeyEvent", p.clone());
                p["type"] = "char".into();
                p["text"] = "\r".into();
            }
            self.call("Input.dispatchKeyEvent", p);
        }
    }

    /// Presses the mouse at (x, y) or lets it go there.
    fn mouse(&mut self, kind: &str, x: f64, y: f64) {
        self.call(
            "Input.dispatchMouseEvent",
            serde_json::json!({ "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1 }),
        );
    }
}

impl Drop for Devtools {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn console_timeline_zooms_by_keyboard_and_by_drag_in_chromium() {
    if !Path::new(CHROMIUM).exists() {
        eprintln!("skipped: {CHROMIUM} is not installed (apt-get install chromium)");
        return;
    }
    let s = start_console(|_| {});
    fill(&s);
    let t = api_json(&s, "/api/v1/timeline");
    let hour = t["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["failures"].as_u64().unwrap() > 0)
        .unwrap()["start_us"]
        .as_i64()
        .unwrap();
    let mut page = Devtools::open(&(s.console.one_time_link("localhost") + "#timeline"));
    page.wait(
        "document.body.dataset.loaded === '#timeline' && !!document.querySelector('button.bar')",
    );
    // Focus the attack's hour, then Tab: the keyboard walks the bars.
    page.eval(&format!(
        "document.querySelector('button.bar[data-start=\"{hour}\"]').focus()"
    ));
    page.press("Tab", 9);
    assert_eq!(
        page.eval("document.activeElement.dataset.start"),
        serde_json::json!((hour + 3_600_000_000).to_string()),
        "Tab reaches the next hour's bar"
    );
    page.press("Tab", 9);
    page.eval(&format!(
        "document.querySelector('button.bar[data-start=\"{hour}\"]').focus()"
    ));
    // Enter on the focused bar zooms into its hour: a bar a minute, and a zoom-out.
    page.press("Enter", 13);
    page.wait(&format!(
        "location.hash === '#timeline/{hour}/{}' && document.querySelectorAll('.bar').length === 60",
        hour + 3_599_999_999
    ));
    assert_eq!(
        page.eval("document.querySelector('h2').textContent"),
        "Logins per minute"
    );
    assert_eq!(page.eval("!!document.getElementById('zoom-out')"), true);
    // Escape zooms out.
    page.press("Escape", 27);
    page.wait("location.hash === '#timeline' && document.querySelector('h2').textContent === 'Logins per hour'");
    // A drag from one hour's bar to the next zooms into those two hours: a bar a minute.
    page.wait("!!document.querySelector('button.bar')");
    let at = |page: &mut Devtools, start: i64| -> (f64, f64) {
        let r = page.eval(&format!(
            "(() => {{ const r = document.querySelector('button.bar[data-start=\"{start}\"]').getBoundingClientRect(); \
             return [r.x + r.width / 2, r.y + r.height - 2]; }})()"
        ));
        (r[0].as_f64().unwrap(), r[1].as_f64().unwrap())
    };
    let prev = hour - 3_600_000_000;
    let (x0, y0) = at(&mut page, prev);
    let (x1, y1) = at(&mut page, hour);
    page.mouse("mouseMoved", x0, y0);
    page.mouse("mousePressed", x0, y0);
    page.mouse("mouseMoved", x1, y1);
    page.mouse("mouseReleased", x1, y1);
    page.wait(&format!(
        "location.hash === '#timeline/{prev}/{}' && document.querySelectorAll('.bar').length === 120",
        hour + 3_599_999_999
    ));
}
