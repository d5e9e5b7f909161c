//! `cargo xtask demo`: the main job on built-in defaults, end to end on this machine.
//!
//! 1. Generates a realistic auth log (with brute-force bursts that end in a successful login),
//!    then appends one deliberate attack chain after that noise: a password spray and a brute
//!    force from one address, a login that succeeds, then `sudo` and a second session.
//! 2. Makes a throwaway CA, a server certificate and an agent certificate
//!    (`authtrail-collector certs`).
//! 3. Starts the collector (mTLS, SQLite) on 127.0.0.1 on a free port.
//! 4. Starts the agent on the log (`read-from = "beginning"`), shipping to the collector.
//! 5. Waits until every event is stored, then tells the attack as the collector stored it, one
//!    step at a time: the brute-force and spray alerts grouped per attacker, the login that
//!    succeeded after failures (its reason, the attacker's address), what that user did next on
//!    that host, and the fleet view (`stats`). The attacker is found from the stored alerts, not
//!    from what step 1 wrote.
//! 6. Stops both (SIGTERM) and says where the files are; `--clean` removes them.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Lines of auth log to generate.
    #[arg(long, default_value_t = 200_000)]
    lines: u64,
    /// loggen seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Remove the demo's files at the end.
    #[arg(long)]
    clean: bool,
    /// Put the demo's files in this directory (created; must be empty or missing) instead of
    /// a new one under the system's temporary directory.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Use the `authtrail` and `authtrail-collector` binaries in this directory instead of
    /// building them (release).
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
}

/// A child process stopped with SIGTERM when dropped (and killed if it does not stop).
struct Service {
    name: &'static str,
    child: Child,
}

impl Service {
    fn stop(&mut self) -> Result<()> {
        if self.child.try_wait()?.is_some() {
            return Ok(());
        }
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                println!("    {} stopped ({status})", self.name);
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child.kill()?;
        self.child.wait()?;
        bail!("{} did not stop on SIGTERM", self.name)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

pub(crate) fn run(args: &Args) -> Result<()> {
    let dir = args.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("authtrail-demo-{}", std::process::id()))
    });
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let result = demo(args, &dir);
    if args.clean {
        fs::remove_dir_all(&dir).ok();
        println!("==> removed {}", dir.display());
    } else {
        println!("==> the demo's files are in {}", dir.display());
        println!(
            "    (agent.toml, collector.toml, pki/, auth.log, state/, collector-data/, *.log)"
        );
    }
    result
}

fn demo(args: &Args, dir: &Path) -> Result<()> {
    let log = dir.join("auth.log");
    println!("==> generating {} lines of RFC 3339 auth log", args.lines);
    let opts = loggen::Options {
        lines: args.lines,
        seed: args.seed,
        format: loggen::Format::Rfc3339,
        ..loggen::Options::default()
    };
    let file = File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
    let stats = loggen::generate(&mut BufWriter::new(file), &opts)
        .with_context(|| format!("cannot write {}", log.display()))?;
    println!(
        "    {} lines, {:.1} MiB, {} brute-force burst(s) ending in a successful root login",
        stats.lines,
        stats.bytes as f64 / 1048576.0,
        stats.bursts
    );
    let chain = append_attack_chain(&log)?;
    println!(
        "    then, after that noise, one attack chain ({chain} lines): spray, brute force, a login, sudo"
    );

    let bin = crate::release_bins(args.bin_dir.as_deref())?;
    let agent_bin = bin.join("authtrail");
    let collector_bin = bin.join("authtrail-collector");

    // How many events the agent will ship: what `authtrail parse` finds.
    let expected = count_events(&agent_bin, &log)?;

    println!("==> a throwaway CA and certificates");
    let pki = dir.join("pki");
    crate::run(
        Command::new(&collector_bin)
            .args(["certs", "init", "--dir"])
            .arg(&pki),
    )?;
    let state = dir.join("state");
    fs::create_dir_all(&state)?;
    let agent_id = new_agent_id(&collector_bin, &pki)?;
    fs::write(state.join("agent-id"), format!("{agent_id}\n"))?;

    println!("==> starting the collector");
    let data = dir.join("collector-data");
    let collector_cfg = dir.join("collector.toml");
    write_private(
        &collector_cfg,
        &format!(
            "listen = \"127.0.0.1:0\"\ndata-dir = {data:?}\n[tls]\ncert-file = {cert:?}\nkey-file = {key:?}\nclient-ca-file = {ca:?}\n[auth]\nrequire = \"mtls\"\n[console]\nadmin-token-file = {admin:?}\n",
            admin = path_str(&admin_token_file(dir)?),
            data = path_str(&data),
            cert = path_str(&pki.join("server.pem")),
            key = path_str(&pki.join("server-key.pem")),
            ca = path_str(&pki.join("ca.pem")),
        ),
    )?;
    let collector_log = dir.join("collector.log");
    let mut child = Command::new(&collector_bin)
        .args(["serve", "--console-link", "localhost", "--config"])
        .arg(&collector_cfg)
        .stdout(Stdio::piped())
        .stderr(File::create(&collector_log)?)
        .spawn()
        .context("starting authtrail-collector")?;
    let stdout = child.stdout.take().context("collector stdout")?;
    let mut collector_service = Service {
        name: "collector",
        child,
    };
    let mut first = String::new();
    let mut stdout = BufReader::new(stdout);
    stdout.read_line(&mut first)?;
    let mut link = String::new();
    stdout.read_line(&mut link)?;
    let addr = first
        .trim()
        .strip_prefix("listening on ")
        .with_context(|| {
            format!(
                "the collector did not start (it said {first:?}; see {})",
                collector_log.display()
            )
        })?
        .to_owned();
    println!(
        "    listening on {addr} (mTLS, SQLite in {})",
        data.display()
    );
    if let Some(link) = link.trim().strip_prefix("console login link ") {
        let port = addr.rsplit(':').next().unwrap_or("");
        println!("    web console: https://localhost:{port}/ (the demo CA signed its certificate)");
        println!("    one-time login link (10 minutes): {link}");
    }

    println!("==> starting the agent on {}", log.display());
    let agent_cfg = dir.join("agent.toml");
    write_private(
        &agent_cfg,
        &format!(
            "state-dir = {state:?}\ntimezone = \"UTC\"\n\n[[source]]\ntype = \"file\"\nname = \"auth\"\npaths = [{log:?}]\nread-from = \"beginning\"\n\n[sink]\ntype = \"collector\"\nurl = \"https://{addr}\"\n[sink.tls]\nca-file = {ca:?}\nserver-name = \"localhost\"\ncert-file = {cert:?}\nkey-file = {key:?}\n",
            state = path_str(&state),
            log = path_str(&log),
            ca = path_str(&pki.join("ca.pem")),
            cert = path_str(&pki.join(format!("agent-{agent_id}.pem"))),
            key = path_str(&pki.join(format!("agent-{agent_id}-key.pem"))),
        ),
    )?;
    let agent_log = dir.join("agent.log");
    let started = Instant::now();
    let mut agent = Service {
        name: "agent",
        child: Command::new(&agent_bin)
            .args(["run", "--config"])
            .arg(&agent_cfg)
            .stdout(Stdio::null())
            .stderr(File::create(&agent_log)?)
            .spawn()
            .context("starting authtrail run")?,
    };

    println!("==> waiting for {expected} events (and the alerts they raise) to be stored");
    let db_args = ["--config".to_owned(), path_str(&collector_cfg)];
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if let Some(status) = agent.child.try_wait()? {
            bail!(
                "the agent exited early ({status}); see {}",
                agent_log.display()
            );
        }
        let stored = stored_events(&collector_bin, &db_args).unwrap_or(0);
        if stored >= expected {
            println!(
                "    {stored} documents stored in {:.1} s",
                started.elapsed().as_secs_f64()
            );
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "only {stored} of {expected} events arrived in 300 s; see {} and {}",
                agent_log.display(),
                collector_log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    // Let the alerts of the last batch land too.
    std::thread::sleep(Duration::from_secs(2));

    let collector = Collector {
        bin: collector_bin.clone(),
        db_args: db_args.to_vec(),
    };
    tell_the_story(&collector)?;

    println!("\n==> stopping");
    agent.stop()?;
    collector_service.stop()?;
    Ok(())
}

fn count_events(agent_bin: &Path, log: &Path) -> Result<u64> {
    let out = Command::new(agent_bin)
        .args(["parse", "--no-message", "--timezone", "UTC"])
        .arg(log)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .output()
        .context("running authtrail parse")?;
    Ok(out.stdout.iter().filter(|&&b| b == b'\n').count() as u64)
}

fn new_agent_id(collector_bin: &Path, pki: &Path) -> Result<String> {
    let out = Command::new(collector_bin)
        .args(["certs", "issue-agent", "--dir"])
        .arg(pki)
        .output()
        .context("running authtrail-collector certs issue-agent")?;
    if !out.status.success() {
        bail!(
            "certs issue-agent failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("agent id: "))
        .map(|s| s.trim().to_owned())
        .context("certs issue-agent printed no agent id")
}

/// Events stored so far (all kinds), from `authtrail-collector stats --json` if it has it, else
/// from `query --json`.
fn stored_events(collector_bin: &Path, db_args: &[String]) -> Option<u64> {
    let out = Command::new(collector_bin)
        .arg("query")
        .args(db_args)
        .args(["--since", "100000d", "--limit", "100000000", "--json"])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| out.stdout.iter().filter(|&&b| b == b'\n').count() as u64)
}

fn show(cmd: &mut Command) -> Result<()> {
    println!("$ {}", crate::display(cmd));
    let out = cmd.output()?;
    std::io::stdout().write_all(&out.stdout)?;
    if !out.status.success() {
        std::io::stdout().write_all(&out.stderr)?;
    }
    Ok(())
}

fn write_private(path: &Path, text: &str) -> Result<()> {
    fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
    Ok(())
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

/// A random admin token for the demo's web console, in `dir/admin-token` (mode 0600).
fn admin_token_file(dir: &Path) -> Result<std::path::PathBuf> {
    let mut bytes = [0u8; 24];
    std::io::Read::read_exact(&mut File::open("/dev/urandom")?, &mut bytes)?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let path = dir.join("admin-token");
    write_private(&path, &format!("{token}\n"))?;
    Ok(path)
}

/// The address, account and password guesses of the attack chain the demo appends. Only the
/// log writer uses them: what the demo shows is found in the collector's alerts.
const CHAIN_ATTACKER: &str = "198.51.100.77";
const CHAIN_USER: &str = "deploy";
const CHAIN_UID: u32 = 1003;
/// Accounts that exist on loggen's servers: a spray counts existing accounts.
const CHAIN_SPRAY: &[&str] = &["alice", "bob", "carol", "dave", "ci-runner", "j.smith"];
const CHAIN_GUESSES: u32 = 12;

/// Appends one attack chain after the generated noise, on the log's last host and a few
/// seconds after its last line: a password spray over existing accounts, a brute force on a real
/// account, the login that succeeds, a `sudo` to root and a second session. Returns its lines.
fn append_attack_chain(log: &Path) -> Result<usize> {
    let text = fs::read_to_string(log).with_context(|| format!("cannot read {}", log.display()))?;
    let last = text.lines().last().context("the generated log is empty")?;
    let mut fields = last.split(' ');
    let (Some(stamp), Some(host)) = (fields.next(), fields.next()) else {
        bail!("cannot read the time and host of the log's last line: {last:?}");
    };
    let mut t = parse_rfc3339_secs(stamp)
        .with_context(|| format!("the log's last line has no RFC 3339 time: {last:?}"))?
        + 60;
    let ip = CHAIN_ATTACKER;
    let mut lines = Vec::new();
    let mut line =
        |t: i64, body: String| lines.push(format!("{} {host} {body}", format_rfc3339(t)));
    let pid = 40_000;
    for (i, user) in CHAIN_SPRAY.iter().enumerate() {
        let (pid, port) = (pid + i as u32, 50_000 + i as u32);
        line(
            t,
            format!("sshd[{pid}]: Failed password for {user} from {ip} port {port} ssh2"),
        );
        t += 3;
    }
    for i in 0..CHAIN_GUESSES {
        let (pid, port) = (pid + 100 + i, 51_000 + i);
        line(
            t,
            format!("sshd[{pid}]: Failed password for {CHAIN_USER} from {ip} port {port} ssh2"),
        );
        t += 2;
    }
    let (uid, user) = (CHAIN_UID, CHAIN_USER);
    let login = |pid: u32, port: u32, session: u32| {
        [
            format!("sshd[{pid}]: Accepted password for {user} from {ip} port {port} ssh2"),
            format!(
                "sshd[{pid}]: pam_unix(sshd:session): session opened for user {user}(uid={uid}) by (uid=0)"
            ),
            format!("systemd-logind[612]: New session {session} of user {user}."),
        ]
    };
    for body in login(pid + 200, 52_000, 9001) {
        line(t, body);
    }
    t += 20;
    line(
        t,
        format!("sudo: {user:>8} : TTY=pts/7 ; PWD=/home/{user} ; USER=root ; COMMAND=/bin/bash"),
    );
    line(
        t,
        format!(
            "sudo: pam_unix(sudo:session): session opened for user root(uid=0) by {user}(uid={uid})"
        ),
    );
    t += 40;
    for body in login(pid + 201, 52_001, 9002) {
        line(t, body);
    }
    let mut file = fs::OpenOptions::new()
        .append(true)
        .open(log)
        .with_context(|| format!("cannot append to {}", log.display()))?;
    let mut out = String::new();
    if !text.ends_with('\n') {
        out.push('\n');
    }
    for l in &lines {
        out.push_str(l);
        out.push('\n');
    }
    file.write_all(out.as_bytes())
        .with_context(|| format!("cannot append to {}", log.display()))?;
    Ok(lines.len())
}

/// Seconds since the epoch of an RFC 3339 UTC time's `YYYY-MM-DDTHH:MM:SS` (fraction and offset
/// ignored: loggen writes UTC).
fn parse_rfc3339_secs(s: &str) -> Option<i64> {
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<u8>().ok();
    let civil = agent_core::time::Civil {
        year: s.get(0..4)?.parse().ok()?,
        month: num(5..7)?,
        day: num(8..10)?,
        hour: num(11..13)?,
        minute: num(14..16)?,
        second: num(17..19)?,
        ..Default::default()
    };
    Some(agent_core::Timestamp::from_civil(&civil, 0)?.secs)
}

/// An RFC 3339 UTC time, as rsyslog writes it (agent-core's formatter).
fn format_rfc3339(secs: i64) -> String {
    agent_core::Timestamp::from_secs(secs).rfc3339().to_string()
}

/// The collector's command line, for the story's queries.
struct Collector {
    bin: PathBuf,
    db_args: Vec<String>,
}

impl Collector {
    fn command(&self, verb: &str) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg(verb).args(&self.db_args);
        cmd
    }

    /// The stored documents of one alert kind (all of them), oldest first.
    fn alerts(&self, action: &str) -> Result<Vec<serde_json::Value>> {
        let out = self
            .command("query")
            .args([
                "--action", action, "--since", "100000d", "--limit", "1000000", "--json",
            ])
            .output()
            .context("running authtrail-collector query")?;
        if !out.status.success() {
            // An alert kind nothing raised is refused as unknown: no alerts of that kind.
            return Ok(Vec::new());
        }
        let mut docs: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        docs.sort_by(|a, b| text(a, "/@timestamp").cmp(text(b, "/@timestamp")));
        Ok(docs)
    }
}

fn text<'a>(doc: &'a serde_json::Value, pointer: &str) -> &'a str {
    doc.pointer(pointer)
        .and_then(serde_json::Value::as_str)
        .unwrap_or("-")
}

/// An RFC 3339 time to the second (`2026-11-28T02:21:18.5Z` -> `2026-11-28T02:21:18Z`).
fn seconds(t: &str) -> String {
    match t.split_once('.') {
        Some((whole, _)) => format!("{whole}Z"),
        None => t.to_owned(),
    }
}

/// One line of plain words that opens a step of the story.
fn step(words: &str) {
    println!("\n==> {words}");
}

/// The alert kinds (`event.action`) of password guessing against one account, and against many.
const BRUTE_FORCE_KINDS: &[&str] = &["brute_force", "slow_brute_force"];
const SPRAY_KINDS: &[&str] = &["password_spray", "slow_spray", "distributed_spray"];
/// The alert kind of sudo or su soon after a login that alerted.
const PRIVILEGE_KIND: &str = "privilege_after_login";

/// At most this many attackers are listed in the grouped alerts (the most recent ones).
const ATTACKERS_SHOWN: usize = 10;

/// The brute-force and spray alerts of one source address.
#[derive(Default)]
struct Attacker {
    brute_force: u64,
    spray: u64,
    attempts: u64,
    first: String,
    last: String,
}

/// Tells the attack as the collector stored it, in the order a security engineer reads it.
fn tell_the_story(collector: &Collector) -> Result<()> {
    let mut brute = Vec::new();
    for kind in BRUTE_FORCE_KINDS {
        brute.extend(collector.alerts(kind)?);
    }
    let mut spray = Vec::new();
    for kind in SPRAY_KINDS {
        spray.extend(collector.alerts(kind)?);
    }
    step(&format!(
        "password guessing: {} brute-force and {} password-spray alerts, grouped per attacking address",
        brute.len(),
        spray.len()
    ));
    let mut attackers: std::collections::BTreeMap<String, Attacker> = Default::default();
    for (doc, is_spray) in brute
        .iter()
        .map(|d| (d, false))
        .chain(spray.iter().map(|d| (d, true)))
    {
        // A spray from many addresses has none of its own: it is no one attacker's.
        let Some(ip) = doc
            .pointer("/source/ip")
            .and_then(serde_json::Value::as_str)
        else {
            continue;
        };
        let a = attackers.entry(ip.to_owned()).or_default();
        if is_spray {
            a.spray += 1;
        } else {
            a.brute_force += 1;
        }
        a.attempts += doc
            .pointer("/authtrail/count")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        let (start, end) = (
            seconds(text(doc, "/event/start")),
            seconds(text(doc, "/event/end")),
        );
        if a.first.is_empty() || start < a.first {
            a.first = start;
        }
        if end > a.last {
            a.last = end;
        }
    }
    let mut list: Vec<(&String, &Attacker)> = attackers.iter().collect();
    list.sort_by(|x, y| x.1.last.cmp(&y.1.last));
    if list.len() > ATTACKERS_SHOWN {
        println!(
            "    ({} earlier attackers not shown; `authtrail-collector query --action brute_force` lists them)",
            list.len() - ATTACKERS_SHOWN
        );
    }
    println!(
        "    {:<39}  {:>11}  {:>5}  {:>8}  {:<20}  LAST",
        "SOURCE", "BRUTE-FORCE", "SPRAY", "ATTEMPTS", "FIRST"
    );
    for (ip, a) in &list[list.len().saturating_sub(ATTACKERS_SHOWN)..] {
        println!(
            "    {ip:<39}  {:>11}  {:>5}  {:>8}  {:<20}  {}",
            a.brute_force, a.spray, a.attempts, a.first, a.last
        );
    }

    // The break-in: the newest login that succeeded after failures from an address that also
    // raised guessing alerts (else the newest of all).
    let successes = collector.alerts("success_after_failures")?;
    let Some(hit) = successes
        .iter()
        .rev()
        .find(|d| attackers.contains_key(text(d, "/source/ip")))
        .or_else(|| successes.last())
    else {
        step("no login succeeded after failures: the guessing did not get in");
        return stats(collector);
    };
    let (ip, user, host, when) = (
        text(hit, "/source/ip"),
        text(hit, "/user/name"),
        text(hit, "/host/hostname"),
        text(hit, "/@timestamp"),
    );
    step(&format!(
        "the break-in: {user} logged in on {host} from attacker {ip} after failed attempts ({} such alerts in all)",
        successes.len()
    ));
    show(collector.command("query").args([
        "--action",
        "success_after_failures",
        "--source-ip",
        ip,
        "--limit",
        "5",
    ]))?;

    let privilege = collector
        .alerts(PRIVILEGE_KIND)?
        .into_iter()
        .filter(|d| {
            text(d, "/user/name") == user
                && text(d, "/host/hostname") == host
                && text(d, "/@timestamp") >= when
        })
        .count();
    if privilege > 0 {
        step(&format!(
            "the privilege step: {user} became root on {host} soon after that login ({privilege} {PRIVILEGE_KIND} alert(s))"
        ));
        show(collector.command("query").args([
            "--action",
            PRIVILEGE_KIND,
            "--user",
            user,
            "--host",
            host,
            "--since",
            when,
            "--limit",
            "5",
        ]))?;
    }

    step(&format!(
        "what {user} did next on {host}: privileges (sudo) and new sessions since {when}"
    ));
    show(collector.command("query").args([
        "--user", user, "--host", host, "--since", when, "--limit", "20",
    ]))?;

    stats(collector)
}

/// The last steps: every alert, the agents' and the fleet rules', then the fleet view.
fn stats(collector: &Collector) -> Result<()> {
    step("all alerts, the agents' and the fleet rules', newest first");
    show(collector.command("alerts").args(["--limit", "10"]))?;
    step("the fleet view: events per host and action, agents, sources failing on several hosts");
    show(&mut collector.command("stats"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_seconds_round_trip() {
        // loggen's default start, 2026-11-28T00:00:00Z.
        assert_eq!(
            parse_rfc3339_secs("2026-11-28T00:00:00.434531+00:00"),
            Some(loggen::DEFAULT_START)
        );
        for t in [
            0,
            951_782_400,
            loggen::DEFAULT_START + 86_399,
            4_107_542_399,
        ] {
            assert_eq!(parse_rfc3339_secs(&format_rfc3339(t)), Some(t), "{t}");
        }
        assert_eq!(format_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(parse_rfc3339_secs("Nov 28 06:49:30"), None);
    }

    #[test]
    fn times_are_cut_to_the_second() {
        assert_eq!(seconds("2026-11-28T02:21:18.5Z"), "2026-11-28T02:21:18Z");
        assert_eq!(seconds("2026-11-28T02:21:18Z"), "2026-11-28T02:21:18Z");
    }
}
