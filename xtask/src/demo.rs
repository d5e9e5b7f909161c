//! `cargo xtask demo`: the main job on built-in defaults, end to end on this machine.
//!
//! 1. Generates a realistic auth log (with brute-force bursts that end in a successful login).
//! 2. Makes a throwaway CA, a server certificate and an agent certificate
//!    (`authtrail-collector certs`).
//! 3. Starts the collector (mTLS, SQLite) on 127.0.0.1 on a free port.
//! 4. Starts the agent on the log (`read-from = "beginning"`), shipping to the collector.
//! 5. Waits until every event is stored, then prints what `query` and `stats` show.
//! 6. Stops both (SIGTERM) and says where the files are; `--clean` removes them.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
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
    let dir = std::env::temp_dir().join(format!("authtrail-demo-{}", std::process::id()));
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

    println!("==> building the agent and the collector (release)");
    crate::run(crate::cargo().args(["build", "--release", "-p", "agent", "-p", "collector"]))?;
    let bin = crate::target_dir().join("release");
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
    let mut collector = Service {
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

    println!("\n==> what the collector knows: alerts");
    show(
        Command::new(&collector_bin)
            .arg("query")
            .args(&db_args)
            .args(["--action", "success_after_failures", "--limit", "10"]),
    )?;
    println!("\n==> alerts, the agents' and the fleet rules', newest first");
    show(
        Command::new(&collector_bin)
            .arg("alerts")
            .args(&db_args)
            .args(["--limit", "10"]),
    )?;
    println!("\n==> the successful root logins");
    show(
        Command::new(&collector_bin)
            .arg("query")
            .args(&db_args)
            .args([
                "--action",
                "auth_success",
                "--user",
                "root",
                "--limit",
                "10",
            ]),
    )?;
    println!("\n==> stats");
    show(Command::new(&collector_bin).arg("stats").args(&db_args))?;

    println!("\n==> stopping");
    agent.stop()?;
    collector.stop()?;
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
