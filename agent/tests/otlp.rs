//! `[sink] type = "otlp"` end to end: the real `authtrail run` ships real captured log lines
//! over TLS to a receiver (`otlp_receiver.py`) that decodes them with the OpenTelemetry
//! project's Python bindings (`opentelemetry-proto`, installed by the test into a venv under
//! `target/`, kept between runs). The same lines also go through `authtrail run` with the file
//! sink; every field of every ECS event must come out of the decoder at the place the mapping
//! table (ARCHITECTURE.md, "OTLP mapping") gives it, and nothing else may be there.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail the test loudly, which is the point"
)]

mod configs;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Map, Value, json};

const AGENT_ID: &str = "67e55044-10b1-426f-9247-bb680e5fe0c8";
const HOSTNAME: &str = "otlp-test-host";

/// What the receiver needs from PyPI, pinned; the venv is rebuilt when this list changes.
const PYTHON_PACKAGES: &[&str] = &["opentelemetry-proto==1.45.2", "zstandard==0.25.0"];

/// The actions (and kinds) the fixture must cover, so that each one's mapping is checked.
const ACTIONS: &[&str] = &[
    "auth_success",
    "auth_failure",
    "invalid_user",
    "session_open",
    "session_close",
    "disconnect",
    "connection",
    "sudo",
    "su",
    "account_change",
];

/// The venv's python, made on first use: `target/otlp-venv` with [`PYTHON_PACKAGES`].
fn python() -> PathBuf {
    static MADE: Mutex<()> = Mutex::new(());
    let _made = MADE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // target/debug/deps/otlp-<hash> -> target/
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).unwrap();
    let venv = target.join("otlp-venv");
    // nextest runs each test in its own process: the venv is made by one at a time, the holder
    // of a lock directory (taken over after 10 minutes, from a process that died holding it).
    let lock = target.join("otlp-venv.lock");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    while std::fs::create_dir(&lock).is_err() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    struct Unlock(PathBuf);
    impl Drop for Unlock {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    let _unlock = Unlock(lock);
    let python = venv.join("bin/python");
    let stamp = venv.join("authtrail-packages.txt");
    let want = PYTHON_PACKAGES.join("\n");
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == want) && python.exists() {
        return python;
    }
    let ok = Command::new("python3")
        .args(["-m", "venv", "--clear"])
        .arg(&venv)
        .status()
        .unwrap();
    assert!(
        ok.success(),
        "python3 -m venv failed (Debian: python3-venv)"
    );
    let ok = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .args(PYTHON_PACKAGES)
        .status()
        .unwrap();
    assert!(ok.success(), "pip install {PYTHON_PACKAGES:?} failed");
    std::fs::write(&stamp, want).unwrap();
    python
}

/// A child process killed and reaped when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Receiver {
    _child: Running,
    port: u16,
    out: PathBuf,
}

impl Receiver {
    /// Starts the receiver with a certificate for 127.0.0.1 and scripted `replies`.
    fn start(dir: &Path, replies: &[Value]) -> Receiver {
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
        std::fs::write(dir.join("server.pem"), cert.cert.pem()).unwrap();
        std::fs::write(dir.join("server.key"), cert.signing_key.serialize_pem()).unwrap();
        std::fs::write(dir.join("replies.json"), json!(replies).to_string()).unwrap();
        let out = dir.join("received.jsonl");
        let port_file = dir.join("port");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/otlp_receiver.py");
        let child = Command::new(python())
            .arg(script)
            .arg("--cert")
            .arg(dir.join("server.pem"))
            .arg("--key")
            .arg(dir.join("server.key"))
            .arg("--out")
            .arg(&out)
            .arg("--port-file")
            .arg(&port_file)
            .arg("--replies")
            .arg(dir.join("replies.json"))
            .spawn()
            .unwrap();
        let child = Running(child);
        wait_for("the receiver's port", Duration::from_secs(30), || {
            port_file.exists()
        });
        let port = std::fs::read_to_string(&port_file)
            .unwrap()
            .parse()
            .unwrap();
        Receiver {
            _child: child,
            port,
            out,
        }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// Every request so far, as the receiver logged it.
    fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The decoded records of every request, in order of arrival, each with its request.
    fn records(&self) -> Vec<(Value, Value)> {
        let mut out = Vec::new();
        for r in self.requests() {
            assert!(
                r.get("error").is_none(),
                "the receiver could not decode: {r}"
            );
            for rl in r["request"]["resource_logs"].as_array().unwrap() {
                for sl in rl["scope_logs"].as_array().unwrap() {
                    for rec in sl["log_records"].as_array().unwrap() {
                        let context = json!({
                            "resource": attributes(&rl["resource"]),
                            "scope": sl["scope"],
                            "request": {
                                "path": r["path"], "content_type": r["content_type"],
                                "content_encoding": r["content_encoding"],
                            },
                        });
                        out.push((rec.clone(), context));
                    }
                }
            }
        }
        out
    }
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The receiver's decoded `AnyValue` (MessageToDict) as plain JSON.
fn plain(any: &Value) -> Value {
    let (kind, v) = any.as_object().unwrap().iter().next().unwrap();
    match kind.as_str() {
        "string_value" | "bool_value" | "double_value" => v.clone(),
        "int_value" => json!(v.as_str().unwrap().parse::<i64>().unwrap()),
        "array_value" => Value::Array(
            v["values"]
                .as_array()
                .map_or(&[][..], Vec::as_slice)
                .iter()
                .map(plain)
                .collect(),
        ),
        other => panic!("unexpected AnyValue {other}: {any}"),
    }
}

/// `attributes` of a decoded message as a map of plain values.
fn attributes(message: &Value) -> Map<String, Value> {
    message["attributes"]
        .as_array()
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .map(|kv| (kv["key"].as_str().unwrap().to_owned(), plain(&kv["value"])))
        .collect()
}

fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(o) => {
            for (k, v) in o {
                let name = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&name, v, out);
            }
        }
        _ => out.push((prefix.to_owned(), v.clone())),
    }
}

fn nanos(v: &Value) -> u64 {
    v.as_str().map_or(0, |s| s.parse().unwrap())
}

/// Checks one record against the ECS event it came from, field by field, by the mapping table.
fn check(ecs: &Value, record: &Value, context: &Value, started: u64) {
    let resource = context["resource"].as_object().unwrap();
    let mut want = Map::new();
    let mut fields = Vec::new();
    flatten("", ecs, &mut fields);
    let has_ip = ecs["source"]["ip"].is_string();
    let res = |k: &str| resource.get(k).cloned();
    for (k, v) in fields {
        let mut put = |name: &str| {
            assert!(
                want.insert(name.to_owned(), v.clone()).is_none(),
                "{name} twice"
            );
        };
        match k.as_str() {
            "@timestamp" => {
                let t: jiff::Timestamp = v.as_str().unwrap().parse().unwrap();
                let want = u64::try_from(t.as_nanosecond()).unwrap();
                assert_eq!(nanos(&record["time_unix_nano"]), want, "time of {ecs}");
            }
            "message" => assert_eq!(record["body"]["string_value"], v, "body of {ecs}"),
            "event.action" => {
                let name = format!("authtrail.{}", v.as_str().unwrap());
                assert_eq!(record["event_name"], json!(name), "event_name of {ecs}");
                put("authtrail.event.action");
            }
            "host.hostname" | "host.id" | "agent.id" | "agent.version" => {
                let on_resource = match k.as_str() {
                    "host.hostname" => "host.name",
                    "host.id" => "host.id",
                    "agent.id" => "service.instance.id",
                    _ => "service.version",
                };
                if res(on_resource).as_ref() != Some(&v) {
                    put(&format!("authtrail.{k}"));
                }
            }
            "user.name" | "user.id" | "process.pid" | "log.file.path" => put(&k),
            "process.name" => put("process.executable.name"),
            "source.ip" => {
                put("source.address");
                put("client.address");
            }
            "source.port" => {
                put("source.port");
                put("client.port");
            }
            "source.domain" if !has_ip => {
                put("source.address");
                put("client.address");
            }
            _ if k.starts_with("authtrail.") => put(&k),
            _ => put(&format!("authtrail.{k}")),
        }
    }
    if ecs.get("message").is_none() {
        assert!(
            record.get("body").is_none(),
            "a body without a message: {record}"
        );
    }
    if ecs["event"]["action"].is_null() {
        assert!(record.get("event_name").is_none(), "{record}");
    }
    assert_eq!(
        Value::Object(attributes(record)),
        Value::Object(want),
        "attributes of {ecs}"
    );
    let e = &ecs["event"];
    let (number, text) = if e["kind"] == "alert" {
        match e["severity"].as_u64() {
            Some(s) if s >= 73 => (17, "ERROR"),
            Some(s) if s >= 47 => (13, "WARN"),
            Some(_) => (9, "INFO"),
            None => (13, "WARN"),
        }
    } else if e["outcome"] == "failure" {
        (13, "WARN")
    } else {
        (9, "INFO")
    };
    assert_eq!(
        record["severity_number"],
        json!(number),
        "severity of {ecs}"
    );
    assert_eq!(record["severity_text"], json!(text), "severity of {ecs}");
    let observed = nanos(&record["observed_time_unix_nano"]) / 1_000_000_000;
    let now = unix_now();
    assert!(
        (started..=now).contains(&observed),
        "observed {observed} outside {started}..={now}"
    );
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The fixture: real lines captured from sshd, sudo, su, login and the account tools (see
/// agent-core/testdata/README.md), then twelve failed passwords from one address, which the
/// brute-force detection turns into an alert.
fn fixture_log(dir: &Path) -> PathBuf {
    let data =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../agent-core/testdata/debian12-traditional");
    let mut text = String::new();
    for f in ["sshd.log", "sudo.log", "su.log", "login.log", "account.log"] {
        text.push_str(&std::fs::read_to_string(data.join(f)).unwrap());
    }
    for i in 0..12 {
        text.push_str(&format!(
            "Nov 28 09:00:{i:02} testhost sshd[{}]: Failed password for root from 127.0.0.9 port {} ssh2\n",
            4000 + i,
            50000 + i
        ));
    }
    let path = dir.join("auth.log");
    std::fs::write(&path, text).unwrap();
    path
}

fn write_config(dir: &Path, name: &str, log: &Path, sink: &str) -> (PathBuf, PathBuf) {
    let state = dir.join(format!("state-{name}"));
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("agent-id"), AGENT_ID).unwrap();
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            "state-dir = {state:?}\ntimezone = \"UTC\"\nhostname = {HOSTNAME:?}\n\
             [[source]]\ntype = \"file\"\npaths = [{log:?}]\nread-from = \"beginning\"\n{sink}",
            state = state.display().to_string(),
            log = log.display().to_string(),
        ),
    )
    .unwrap();
    (config, state)
}

fn run(config: &Path, stderr: &Path) -> Running {
    Running(
        Command::new(env!("CARGO_BIN_EXE_authtrail"))
            .arg("--config")
            .arg(config)
            .arg("run")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(stderr).unwrap())
            .spawn()
            .unwrap(),
    )
}

/// The ECS events `authtrail run` makes of `log` (the file sink), once their count settles.
fn ecs_events(dir: &Path, log: &Path) -> Vec<Value> {
    let out = dir.join("events.ndjson");
    let sink = format!(
        "[sink]\ntype = \"file\"\npath = {:?}\n",
        out.display().to_string()
    );
    let (config, _) = write_config(dir, "file", log, &sink);
    let _agent = run(&config, &dir.join("file.stderr"));
    let lines = || {
        std::fs::read_to_string(&out)
            .unwrap_or_default()
            .lines()
            .count()
    };
    let (mut last, mut since) = (usize::MAX, Instant::now());
    wait_for("the file sink to settle", Duration::from_secs(60), || {
        let n = lines();
        if n != last {
            (last, since) = (n, Instant::now());
        }
        n > 0 && since.elapsed() > Duration::from_millis(1500)
    });
    std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn otlp_sink(receiver: &Receiver, dir: &Path, extra: &str) -> String {
    // The receiver's certificate is its own CA.
    format!(
        "[sink]\ntype = \"otlp\"\nurl = {url:?}\nheartbeat = \"1h\"\n{extra}\n\
         [sink.tls]\nca-file = {ca:?}\n[sink.retry]\ninitial = \"50ms\"\nmax = \"5s\"\n",
        url = receiver.url(),
        ca = dir.join("server.pem").display().to_string(),
    )
}

/// Runs the fixture through the file sink and through the OTLP sink with `extra` settings, and
/// checks every record; returns the records' requests.
fn every_field_arrives(extra: &str) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let log = fixture_log(dir.path());
    let started = unix_now();
    let ecs = ecs_events(dir.path(), &log);
    let receiver = Receiver::start(dir.path(), &[]);
    // The collector sink's token machinery, unchanged.
    let token = dir.path().join("token");
    std::fs::write(&token, "otlp-test-token\n").unwrap();
    let extra = format!(
        "{extra}\n[sink.auth]\ntoken-file = {:?}",
        token.display().to_string()
    );
    let (config, _) = write_config(
        dir.path(),
        "otlp",
        &log,
        &otlp_sink(&receiver, dir.path(), &extra),
    );
    let stderr = dir.path().join("otlp.stderr");
    let _agent = run(&config, &stderr);
    wait_for("every record", Duration::from_secs(60), || {
        receiver.records().len() >= ecs.len()
    });
    std::thread::sleep(Duration::from_millis(500));
    let records = receiver.records();
    assert_eq!(
        records.len(),
        ecs.len(),
        "records against events; agent said: {}",
        std::fs::read_to_string(&stderr).unwrap_or_default()
    );
    let mut actions = BTreeSet::new();
    let mut alerts = 0;
    for (event, (record, context)) in ecs.iter().zip(&records) {
        check(event, record, context, started);
        if let Some(a) = event["event"]["action"].as_str() {
            actions.insert(a.to_owned());
        }
        alerts += usize::from(event["event"]["kind"] == "alert");
    }
    for a in ACTIONS {
        assert!(actions.contains(*a), "the fixture has no {a}: {actions:?}");
    }
    assert!(alerts > 0, "the fixture raised no alert");
    eprintln!(
        "checked {} records field by field: {} alerts, actions {actions:?}",
        records.len(),
        alerts
    );
    for r in receiver.requests() {
        assert_eq!(r["authorization"], "Bearer otlp-test-token");
    }
    // The resource and scope, once for every request.
    let (_, context) = &records[0];
    let resource = context["resource"].as_object().unwrap();
    assert_eq!(resource["service.name"], "authtrail");
    assert_eq!(resource["service.version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(resource["service.instance.id"], AGENT_ID);
    assert_eq!(resource["host.name"], HOSTNAME);
    assert_eq!(resource["os.type"], "linux");
    let host_id_known = Path::new("/etc/machine-id").exists();
    assert_eq!(
        resource.contains_key("host.id"),
        host_id_known,
        "{resource:?}"
    );
    assert_eq!(context["scope"]["name"], "authtrail");
    // One spot check written out by hand, beside the table-driven one: a sudo record.
    let sudo = records
        .iter()
        .map(|(r, _)| r)
        .find(|r| r["event_name"] == "authtrail.sudo" && r["severity_text"] == "INFO")
        .unwrap();
    let a = attributes(sudo);
    assert_eq!(a["user.name"], "atalice");
    assert_eq!(a["authtrail.user.target.name"], "root");
    assert_eq!(a["process.executable.name"], "sudo");
    assert!(
        sudo["body"]["string_value"]
            .as_str()
            .unwrap()
            .contains("sudo")
    );
    records
        .into_iter()
        .map(|(_, c)| c["request"].clone())
        .collect()
}

#[test]
fn otlp_protobuf_records_decode_with_opentelemetry_proto_and_carry_every_field() {
    let requests = every_field_arrives("");
    for r in requests {
        assert_eq!(r["path"], "/v1/logs");
        assert_eq!(r["content_type"], "application/x-protobuf");
        assert_eq!(r["content_encoding"], "zstd");
    }
}

#[test]
fn otlp_gzip_json_records_decode_with_opentelemetry_proto_and_carry_every_field() {
    let requests = every_field_arrives(
        "protocol = \"http/json\"\ncompression = \"gzip\"\npath = \"/otlp/v1/logs\"",
    );
    for r in requests {
        assert_eq!(r["path"], "/otlp/v1/logs");
        assert_eq!(r["content_type"], "application/json");
        assert_eq!(r["content_encoding"], "gzip");
    }
}

fn status(state: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(state.join("status.json")).unwrap_or_default())
        .unwrap_or(Value::Null)
}

/// The texts of `state/spool/dead-letter/*.reason`.
fn dead_letter_reasons(state: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(state.join("spool/dead-letter"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "reason"))
                .map(|e| std::fs::read_to_string(e.path()).unwrap())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The OTLP/HTTP answers: 429 waits for its `Retry-After`; a partial success is logged with the
/// server's message, counted in `status` and its batch kept in `dead-letter/`; 400 and a
/// status OTLP/HTTP says not to retry (404) dead-letter their batch; 502 is retried.
#[test]
fn otlp_answers_follow_the_otlp_http_rules() {
    let dir = tempfile::tempdir().unwrap();
    let replies = [
        json!({ "status": 429, "headers": { "Retry-After": "2" } }),
        json!({ "status": 200, "partial": [1, "record 1: timestamp too old"] }),
        json!({ "status": 400 }),
        json!({ "status": 404 }),
        json!({ "status": 502 }),
        json!({ "status": 200 }),
    ];
    let receiver = Receiver::start(dir.path(), &replies);
    let log = dir.path().join("auth.log");
    let line = |i: u32| {
        format!(
            "Nov 28 09:00:0{i} testhost sshd[{}]: Failed password for root from 127.0.0.9 port 5000{i} ssh2\n",
            4000 + i
        )
    };
    std::fs::write(&log, line(0)).unwrap();
    let (config, state) = write_config(
        dir.path(),
        "otlp",
        &log,
        &otlp_sink(&receiver, dir.path(), ""),
    );
    let stderr = dir.path().join("otlp.stderr");
    let _agent = run(&config, &stderr);
    let append = |i: u32| {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(line(i).as_bytes()).unwrap();
    };
    let requests = |n: usize| {
        wait_for(&format!("{n} requests"), Duration::from_secs(30), || {
            receiver.requests().len() >= n
        });
        receiver.requests()
    };
    let r = requests(2);
    let waited = r[1]["at"].as_f64().unwrap() - r[0]["at"].as_f64().unwrap();
    assert!(waited >= 2.0, "Retry-After: 2 not honoured: {waited} s");
    assert_eq!(r[0]["request"], r[1]["request"], "the same batch again");
    wait_for("the rejection in status", Duration::from_secs(15), || {
        status(&state)["shipping"]["rejected-events"] == 1
    });
    for i in 1..=3 {
        append(i);
        requests(2 + i as usize);
    }
    let r = requests(6);
    assert_eq!(r[4]["request"], r[5]["request"], "502 is retried");
    wait_for("three dead letters", Duration::from_secs(15), || {
        dead_letter_reasons(&state).len() == 3
    });
    let reasons = dead_letter_reasons(&state).join("\n---\n");
    assert!(reasons.contains("timestamp too old"), "{reasons}");
    assert!(reasons.contains("400"), "{reasons}");
    assert!(reasons.contains("HTTP 404"), "{reasons}");
    wait_for("the backlog to empty", Duration::from_secs(15), || {
        status(&state)["shipping"]["backlog-batches"] == 0
    });
    let said = std::fs::read_to_string(&stderr).unwrap();
    assert!(said.contains("record 1: timestamp too old"), "{said}");
}

/// An idle OTLP sink sends its heartbeat as a log record named `authtrail.heartbeat`.
#[test]
fn otlp_heartbeat_is_a_log_record_named_authtrail_heartbeat() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(dir.path(), &[]);
    let log = dir.path().join("auth.log");
    std::fs::write(&log, "").unwrap();
    let sink =
        otlp_sink(&receiver, dir.path(), "").replace("heartbeat = \"1h\"", "heartbeat = \"1s\"");
    let (config, _) = write_config(dir.path(), "otlp", &log, &sink);
    let _agent = run(&config, &dir.path().join("otlp.stderr"));
    wait_for("a heartbeat", Duration::from_secs(30), || {
        !receiver.records().is_empty()
    });
    let (record, context) = &receiver.records()[0];
    assert_eq!(record["event_name"], "authtrail.heartbeat");
    assert_eq!(record["severity_number"], 9);
    let a = attributes(record);
    assert_eq!(a["authtrail.event.kind"], "state");
    assert_eq!(a["authtrail.event.dataset"], "authtrail.heartbeat");
    assert!(record.get("body").is_none(), "{record}");
    assert_eq!(context["resource"]["service.instance.id"], AGENT_ID);
    assert!(nanos(&record["time_unix_nano"]) > 0);
}

#[test]
fn otlp_config_defaults_and_mistakes() {
    use agent::config::SinkConfig;
    use agent::ship::otlp::OtlpProtocol;
    let text = "[sink]\ntype = \"otlp\"\nurl = \"https://otel.example:4318\"\n";
    let config = agent::config::Config::check(text, Path::new("agent.toml")).unwrap();
    let SinkConfig::Otlp(c) = &config.sink else {
        panic!("{:?}", config.sink)
    };
    assert_eq!((c.protocol, c.path.as_deref()), (None, None));
    assert_eq!(c.protocol.unwrap_or_default(), OtlpProtocol::Protobuf);
    let again = agent::config::Config::check(&config.to_toml().unwrap(), Path::new("a.toml"));
    assert_eq!(again.unwrap().sink, config.sink);
    let json = format!("{text}protocol = \"http/json\"\npath = \"/x/v1/logs\"\n");
    let config = agent::config::Config::check(&json, Path::new("agent.toml")).unwrap();
    let SinkConfig::Otlp(c) = &config.sink else {
        panic!()
    };
    assert_eq!(c.protocol, Some(OtlpProtocol::Json));
    let e = configs::errors(&format!("{text}protocol = \"grpc\"\n"));
    assert!(e.contains("http/protobuf"), "{e}");
    let e = configs::errors(&format!("{text}path = \"v1/logs\"\n"));
    assert!(
        e.contains("[sink] path") && e.contains("starting with /"),
        "{e}"
    );
    let e = configs::errors(
        "[sink]\ntype = \"collector\"\nurl = \"https://c.example\"\nprotocol = \"http/json\"\n",
    );
    assert!(
        e.contains("[sink] protocol") && e.contains("type = \"otlp\" only"),
        "{e}"
    );
    let e = configs::errors("[sink]\ntype = \"otlp\"\nurl = \"http://otel.example:4318\"\n");
    assert!(e.contains("plaintext"), "{e}");
}

/// The annotated config's otlp section, put into the collector section it refers to, parses
/// to an otlp sink with the settings it shows.
#[test]
fn annotated_example_config_parses_with_the_otlp_section_uncommented() {
    let text = configs::text();
    let section = |name| configs::sink_section(&text, name);
    let otlp = section("otlp");
    let mut settings = Vec::new();
    let mut sink_type = true;
    for line in section("collector") {
        // Only `[sink]`'s own `type`; `[sink.buffer]` has one too.
        if sink_type && line.starts_with("type = ") {
            sink_type = false;
            settings.extend(otlp.iter().cloned());
        } else if !line.starts_with("url = ") {
            settings.push(line);
        }
    }
    let settings = settings.join("\n");
    let before = configs::before_sink(&text);
    let config =
        agent::config::Config::from_toml(&format!("{before}\n{settings}\n"), Path::new("a.toml"))
            .unwrap_or_else(|e| panic!("{e}\n{settings}"));
    let agent::config::SinkConfig::Otlp(c) = &config.sink else {
        panic!("{:?}", config.sink)
    };
    assert_eq!(
        c.url.as_ref().map(|u| u.as_str()),
        Some("https://otel-collector.example:4318")
    );
    assert_eq!(c.path.as_deref(), Some("/v1/logs"));
    assert_eq!(c.protocol, Some(agent::ship::otlp::OtlpProtocol::Protobuf));
}
