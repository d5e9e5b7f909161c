//! `authtrail-collector`: the thin binary. Owns arguments, signals, stdout; the work is in the
//! library.
#![forbid(unsafe_code)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agent_core::exit::{UsageError, exit_code};
use anyhow::{Context as _, anyhow};
use clap::{Args, CommandFactory as _, Parser, Subcommand};
use collector::config::{Config, DEFAULT_CONFIG_PATH};
use collector::store::{Filter, Store};
use collector::{certs, report};

/// mimalloc for small blocks, the C library's mapped blocks for large ones (the `allocator` crate): with
/// glibc's malloc alone, 16 concurrent maximal batches (each decoded on its own blocking
/// thread, so in its own arena) left the collector at 391 MiB resident after the spike and
/// peaked at 523 MiB for a 160 MiB budget.
#[global_allocator]
static GLOBAL: allocator::Allocator = allocator::Allocator;

/// Receives login events from authtrail agents over HTTPS and stores them.
#[derive(Debug, Parser)]
#[command(name = "authtrail-collector", version, about)]
struct Cli {
    #[command(flatten)]
    verbosity: logger::Verbosity,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve HTTPS until SIGINT or SIGTERM. Prints `listening on ADDR` on stdout when ready.
    Serve {
        /// The configuration file.
        #[arg(long, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
        /// With the web console on, also print `console login link URL` on stdout: a link that
        /// logs a browser in once, within 10 minutes. The URL names the server HOST (as its
        /// certificate does).
        #[arg(long, value_name = "HOST")]
        console_link: Option<String>,
    },
    /// Read the `[store] type = "nats"` stream into the SQLite store in `data-dir` (durable pull
    /// consumer, acknowledged after each commit) and run the fleet detections there, until
    /// SIGINT or SIGTERM. Prints `consuming SUBJECT from STREAM into DB` on stdout when ready.
    Consume {
        /// The configuration file (`[store]`, `data-dir`, `[limits]`, `[fleet]`; `[tls]` and
        /// `[auth]` are not needed).
        #[arg(long, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
    /// Check the configuration (and that certificates, key and tokens load), then print it with
    /// every default filled in.
    Validate {
        /// The configuration file.
        #[arg(long, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
    /// Show stored events, oldest first (the newest --limit of them).
    Query(QueryArgs),
    /// Events per (authenticated) agent, host and action, agents and their last contact, and
    /// sources that failed against several hosts.
    Stats(StatsArgs),
    /// Alerts from the agents (edge) and from the collector's fleet rules, newest first, with
    /// the reason for each and the events a fleet alert cites.
    Alerts(AlertsArgs),
    /// A small CA for the fleet's mTLS.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Write shell completions (`completions/`: bash, zsh, fish) and man pages (`man/`) made
    /// from these command-line definitions into DIR; packaging runs it.
    #[command(hide = true)]
    GenerateAssets {
        /// Where to write `completions/` and `man/`.
        dir: PathBuf,
    },
}

/// Writes completions for bash, zsh and fish, and a man page per command, under `dir`.
fn generate_assets(dir: &Path) -> std::io::Result<()> {
    use clap_complete::Shell;
    // No pages or completions for the `help` subcommands: `--help` says the same.
    let mut cli = Cli::command()
        .disable_help_subcommand(true)
        .mut_subcommand("certs", |c| c.disable_help_subcommand(true));
    let name = cli.get_name().to_owned();
    std::fs::create_dir_all(dir.join("completions"))?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut cli, &name, dir.join("completions"))?;
    }
    std::fs::create_dir_all(dir.join("man"))?;
    clap_mangen::generate_to(cli, dir.join("man"))
}

#[derive(Debug, Args)]
struct StoreArgs {
    /// The configuration file (for `data-dir`).
    #[arg(long, default_value = DEFAULT_CONFIG_PATH, conflicts_with = "db")]
    config: PathBuf,
    /// The SQLite store itself, instead of the config's `data-dir/authtrail.db`.
    #[arg(long)]
    db: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct QueryArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Only events newer than this: a duration back from now (`90s`, `30m`, `2h`, `7d`) or an
    /// RFC 3339 time (`2026-12-01T00:00:00Z`).
    #[arg(long, value_parser = parse_since, value_name = "WHEN")]
    since: Option<Since>,
    /// Only this `user.name`.
    #[arg(long)]
    user: Option<String>,
    /// Only this `source.ip`.
    #[arg(long)]
    source_ip: Option<std::net::IpAddr>,
    /// Only this `host.hostname`.
    #[arg(long)]
    host: Option<String>,
    /// Only this `event.action` (`auth_failure`, `sudo`, `brute_force`...); an unknown one is
    /// refused with the nearest known name.
    #[arg(long)]
    action: Option<String>,
    /// At most this many events (the newest).
    #[arg(long, default_value_t = 100)]
    limit: u64,
    /// Print the stored ECS documents as NDJSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct StatsArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Count only events newer than this: a duration (`90s`, `2h`, `7d`) or an RFC 3339 time.
    #[arg(long, value_parser = parse_since, value_name = "WHEN")]
    since: Option<Since>,
    /// An agent silent for longer is `stale`. Defaults to the config's heartbeat-stale-after
    /// (3m).
    #[arg(long, value_parser = parse_duration_words, value_name = "DURATION")]
    stale_after: Option<Duration>,
    /// The window of the cross-host failure detection.
    #[arg(long, value_parser = parse_duration_words, default_value = "1h", value_name = "DURATION")]
    window: Duration,
    /// Report a source that failed against at least this many distinct hosts (1 or more).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    hosts: u32,
    /// Print the figures as one JSON document instead of tables.
    #[arg(long)]
    json: bool,
}

/// A `--since` value.
#[derive(Debug, Clone, Copy)]
enum Since {
    /// This long before now.
    Ago(Duration),
    /// From this time on.
    At(jiff::Timestamp),
}

impl Since {
    fn micros(self) -> i64 {
        match self {
            Since::Ago(d) => ago_us(d),
            Since::At(t) => t.as_microsecond(),
        }
    }
}

/// A duration in the config's words: `90s`, `30m`, `2h`, `7d` (also `1h30m`, `2days`).
fn parse_duration_words(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|_| {
        format!("{s:?} is not a duration: write a number and a unit, like 90s, 30m, 2h or 7d")
    })
}

/// `--since`: a duration back from now, or an RFC 3339 time.
fn parse_since(s: &str) -> Result<Since, String> {
    if let Ok(t) = s.trim().parse::<jiff::Timestamp>() {
        return Ok(Since::At(t));
    }
    humantime::parse_duration(s.trim())
        .map(Since::Ago)
        .map_err(|_| {
            format!(
                "{s:?} is neither a duration (90s, 30m, 2h, 7d) nor an RFC 3339 time \
                 (2026-12-01T00:00:00Z)"
            )
        })
}

/// Every `event.action` an agent writes: the events' and the detections' alerts'.
fn known_actions() -> Vec<&'static str> {
    let mut names: Vec<&str> = agent_core::Action::ALL.iter().map(|a| a.as_str()).collect();
    names.extend(agent_core::detect::Rule::ALL.iter().map(|r| r.as_str()));
    names
}

/// Refuses an `--action` that is neither a known action nor one the store holds, with the
/// nearest name.
fn check_action(action: &str, stored: &[String]) -> Result<(), UsageError> {
    let known = known_actions();
    if known.contains(&action) || stored.iter().any(|s| s == action) {
        return Ok(());
    }
    let mut candidates: Vec<&str> = known;
    candidates.extend(stored.iter().map(String::as_str));
    let nearest = candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(action, c), *c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    Err(UsageError(match nearest {
        Some((_, name)) => format!("no action is called `{action}`: did you mean `{name}`?"),
        None => {
            candidates.sort_unstable();
            candidates.dedup();
            format!(
                "no action is called `{action}`: one of {}",
                candidates.join(", ")
            )
        }
    }))
}

#[derive(Debug, Args)]
struct AlertsArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Only alerts newer than this: a duration back from now (`1h`, `30m`, `2days`) or an RFC
    /// 3339 time (`2026-12-01T00:00:00Z`).
    #[arg(long, value_parser = parse_since, value_name = "WHEN")]
    since: Option<Since>,
    /// Only alerts of at least this severity (0-100: 21 low, 47 medium, 73 high).
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=100))]
    severity: Option<u8>,
    /// At most this many alerts (the newest).
    #[arg(long, default_value_t = 100)]
    limit: u64,
    /// Print the alerts' ECS documents as NDJSON, newest first, instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum CertsCommand {
    /// Make a CA and the collector's server certificate in --dir.
    Init {
        /// Where to write `ca.pem`, `ca-key.pem`, `server.pem`, `server-key.pem`.
        #[arg(long)]
        dir: PathBuf,
        /// Host names and IP addresses the agents use to reach the collector (repeatable or
        /// comma-separated).
        #[arg(long, value_delimiter = ',', default_values_t = certs::DEFAULT_SANS.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())]
        san: Vec<String>,
        /// Validity of the server certificate, days.
        #[arg(long, default_value_t = 825)]
        days: i64,
    },
    /// Issue a client certificate whose subject CN is the agent id.
    IssueAgent {
        /// The agent id: the UUID in the agent's `state-dir/agent-id`. Without it a new id is
        /// made; write it to the agent's `agent-id` file before its first start.
        name: Option<String>,
        /// The directory of `certs init` (holds the CA); the agent files are written there.
        #[arg(long)]
        dir: PathBuf,
        /// Validity, days.
        #[arg(long, default_value_t = 825)]
        days: i64,
    },
    /// Issue a web console admin certificate for a person (subject CN = NAME, SAN URI
    /// `authtrail:role:admin`); a browser presenting it gets a console session without the
    /// admin token. It never authenticates an agent.
    IssueAdmin {
        /// The person's name: letters, digits, '.', '_' or '-' (not a UUID).
        name: String,
        /// The directory of `certs init` (holds the CA); the admin files are written there.
        #[arg(long)]
        dir: PathBuf,
        /// Validity, days.
        #[arg(long, default_value_t = 90)]
        days: i64,
    },
    /// Revoke an agent's or an admin's certificate: add it to `revoked.txt` in --dir and sign `crl.pem`
    /// (an X.509 CRL of every revoked serial) with the CA there. A collector with `[tls]
    /// crl-file` pointing at the CRL refuses the agent at its next TLS handshake (no restart);
    /// `[tls] revoked-file` (the serial list) is still read, at each request. Revoking an agent
    /// again signs the CRL again (a list made before CRLs gets its CRL so).
    Revoke {
        /// The agent id whose `agent-<ID>.pem` (from `issue-agent`) is revoked, or the name
        /// whose `admin-<NAME>.pem` (from `issue-admin`) is.
        name: String,
        /// The directory of `certs init` and `issue-agent`.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Print the SPKI SHA-256 pin (base64) of a PEM certificate.
    Pin {
        /// The certificate.
        cert: PathBuf,
    },
}

fn main() -> ExitCode {
    allocator::return_large_blocks();
    let cli = Cli::parse();
    logger::init("authtrail-collector", &cli.verbosity);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "{}",
                agent_core::exit::render("authtrail-collector", e.as_ref())
            );
            // A tokens file the config names is configuration too (exit 2), as a missing one
            // already is through its ConfigError.
            ExitCode::from(exit_code(e.as_ref(), |c| {
                c.is::<collector::config::ConfigError>() || c.is::<collector::auth::TokensError>()
            }))
        }
    }
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

fn ago_us(d: Duration) -> i64 {
    now_us().saturating_sub(d.as_micros().min(i64::MAX as u128) as i64)
}

fn load_valid(path: &Path) -> anyhow::Result<Config> {
    Config::load_valid(path).map_err(|errors| {
        let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow::Error::new(UsageError(list.join("\n  ")))
    })
}

/// The store to read, and the config (defaults when only --db is given).
fn open_store(args: &StoreArgs) -> anyhow::Result<(Store, Config)> {
    let (path, config) = match &args.db {
        Some(db) => (db.clone(), Config::default()),
        None => {
            let config = Config::load(&args.config).map_err(|e| {
                let missing = matches!(&e, collector::config::ConfigError::Read { cause, .. }
                    if cause.kind() == std::io::ErrorKind::NotFound);
                let e = anyhow::Error::new(e);
                if missing {
                    e.context(format!(
                        "no collector config at {}: pass --config with the collector's, or \
                         --db with its store (data-dir/authtrail.db)",
                        args.config.display()
                    ))
                } else {
                    e
                }
            })?;
            (config.db_path(), config)
        }
    };
    if !path.exists() {
        anyhow::bail!(
            "there is no store at {}: the collector creates it at its first `serve`; check {}",
            path.display(),
            if args.db.is_some() {
                "--db".to_owned()
            } else {
                format!("data-dir in {}", args.config.display())
            }
        );
    }
    let store = Store::open_read_only(&path)
        .with_context(|| format!("opening the store {}", path.display()))?;
    Ok((store, config))
}

fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        // `| head` closing the pipe is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve {
            config,
            console_link,
        } => serve(&config, console_link.as_deref()),
        Command::Consume { config } => consume(&config),
        Command::Validate { config } => {
            let c = load_valid(&config)?;
            collector::tls::server_config(&c)?;
            if let Some(t) = &c.auth.tokens_file {
                collector::auth::Tokens::load(t)?;
            }
            if let Some(n) = c.store.nats() {
                n.check_files()?;
            }
            print(&c.to_toml()?)
        }
        Command::Query(q) => {
            let (store, _) = open_store(&q.store)?;
            if let Some(action) = &q.action {
                check_action(action, &store.actions()?)?;
            }
            let rows = store.query(&Filter {
                since_us: q.since.map(Since::micros),
                until_us: None,
                user: q.user,
                source_ip: q.source_ip.map(|ip| ip.to_string()),
                host: q.host,
                action: q.action,
                limit: q.limit,
                // The table shows each alert's reason, which only its document holds.
                documents: true,
            })?;
            if q.json {
                print(&report::events_ndjson(&rows))
            } else {
                print(&report::events_table(&rows))
            }
        }
        Command::Stats(s) => {
            let (store, config) = open_store(&s.store)?;
            let stats = store.stats(s.since.map(Since::micros), ago_us(s.window), s.hosts)?;
            let stale = s.stale_after.unwrap_or(config.heartbeat_stale_after);
            if s.json {
                print(&format!("{}\n", stats_json(&stats, now_us(), stale)))
            } else {
                print(&report::stats_text(&stats, now_us(), stale, s.window))
            }
        }
        Command::Alerts(a) => {
            let (store, _) = open_store(&a.store)?;
            let rows = store.alerts(&collector::alerts::AlertFilter {
                since_us: a.since.map(Since::micros),
                min_severity: a.severity.map(i64::from),
                until_us: None,
                limit: a.limit,
            })?;
            if a.json {
                print(&report::alerts_ndjson(&rows))
            } else {
                print(&report::alerts_table(&rows))
            }
        }
        Command::Certs(CertsCommand::Init { dir, san, days }) => {
            let r = certs::init(&dir, &san, days)?;
            print(&format!(
                "CA certificate:     {}\nCA key:             {}\nserver certificate: {}\nserver key:         {}\n\
                 server SPKI SHA-256 pin (base64): {}\n",
                r.ca_cert.display(),
                r.ca_key.display(),
                r.server_cert.display(),
                r.server_key.display(),
                r.server_pin
            ))
        }
        Command::Certs(CertsCommand::IssueAgent { name, dir, days }) => {
            let id = match name {
                Some(n) => uuid::Uuid::parse_str(&n).map_err(|_| {
                    anyhow!(
                        "agent id {n:?} is not a UUID: use the agent's `state-dir/agent-id`, or \
                         leave it out to make a new id"
                    )
                })?,
                None => uuid::Uuid::new_v4(),
            };
            if !dir.join("ca-key.pem").exists() {
                anyhow::bail!(
                    "{} holds no CA (ca-key.pem): run `authtrail-collector certs init --dir {}` \
                     first, or point --dir at the directory it wrote",
                    dir.display(),
                    dir.display()
                );
            }
            let r = certs::issue_agent(&dir, id, days)?;
            print(&format!(
                "agent id:    {}\ncertificate: {}\nkey:         {}\n",
                r.agent_id,
                r.cert.display(),
                r.key.display()
            ))
        }
        Command::GenerateAssets { dir } => Ok(generate_assets(&dir)?),
        Command::Certs(CertsCommand::IssueAdmin { name, dir, days }) => {
            let r = certs::issue_admin(&dir, &name, days)?;
            print(&format!(
                "admin:       {}\ncertificate: {}\nkey:         {}\n",
                r.name,
                r.cert.display(),
                r.key.display()
            ))
        }
        Command::Certs(CertsCommand::Revoke { name, dir }) => {
            let (r, whose) = match uuid::Uuid::parse_str(&name) {
                Ok(id) => (certs::revoke(&dir, id)?, format!("agent {id}")),
                Err(_) => (certs::revoke_admin(&dir, &name)?, format!("admin {name}")),
            };
            print(&format!(
                "{} certificate serial {} of {whose} in {}\nCRL signed: {} (for [tls] crl-file)\n",
                if r.added {
                    "revoked"
                } else {
                    "already revoked:"
                },
                r.serial,
                r.list.display(),
                r.crl.display()
            ))
        }
        Command::Certs(CertsCommand::Pin { cert }) => {
            print(&format!("{}\n", certs::pin_of_cert_file(&cert)?))
        }
    }
}

/// `stats --json`: the same figures as the tables, as one document.
fn stats_json(
    stats: &collector::store::Stats,
    now: i64,
    stale_after: Duration,
) -> serde_json::Value {
    let stale_us = i64::try_from(stale_after.as_micros()).unwrap_or(i64::MAX);
    serde_json::json!({
        "counts": stats.counts.iter().map(|(agent, host, action, events)| serde_json::json!({
            "agent-id": agent, "host": host, "action": action, "events": events,
        })).collect::<Vec<_>>(),
        "agents": stats.agents.iter().map(|a| serde_json::json!({
            "agent-id": a.agent_id,
            "hostname": a.hostname,
            "first-seen": report::time(a.first_seen_us),
            "last-seen": report::time(a.last_seen_us),
            "last-seq": a.last_seq,
            "rejected": a.rejected,
            "forged": a.forged,
            "stale": now.saturating_sub(a.last_seen_us) > stale_us,
        })).collect::<Vec<_>>(),
        "spread-sources": stats.spread_sources.iter().map(|s| serde_json::json!({
            "source-ip": s.source_ip, "hosts": s.hosts, "failures": s.failures,
        })).collect::<Vec<_>>(),
    })
}

fn serve(path: &Path, console_link: Option<&str>) -> anyhow::Result<()> {
    let config = load_valid(path)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let server = collector::Server::bind(&config).await?;
        // The readiness line: scripts and tests wait for it (and read the port from it when
        // `listen` asks for port 0).
        print(&format!("listening on {}\n", server.local_addr()))?;
        if let (Some(host), Some(console)) = (console_link, server.console()) {
            print(&format!(
                "console login link {}\n",
                console.one_time_link(host)
            ))?;
        }
        server.run(shutdown_signal()).await;
        tracing::info!("stopped");
        Ok(())
    })
}

fn consume(path: &Path) -> anyhow::Result<()> {
    let config = Config::load(path)?;
    let problems: Vec<String> = match config.validate() {
        Ok(()) => Vec::new(),
        // The HTTPS side's settings are not the consumer's business.
        Err(errors) => errors
            .iter()
            .filter(|e| {
                !matches!(
                    e,
                    collector::config::ConfigError::Missing { .. }
                        | collector::config::ConfigError::RequireUnmet { .. }
                )
            })
            .map(ToString::to_string)
            .collect(),
    };
    if !problems.is_empty() {
        return Err(anyhow::Error::new(UsageError(problems.join("\n  "))));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        collector::consume::run(
            &config,
            |line| {
                let _ = print(&format!("{line}\n"));
            },
            shutdown_signal(),
        )
        .await
    })?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[test]
    fn stats_hosts_is_one_or_more() {
        let parse = |n: &str| Cli::try_parse_from(["authtrail-collector", "stats", "--hosts", n]);
        let err = parse("0").expect_err("--hosts 0 is refused");
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation, "{err}");
        assert!(parse("1").is_ok());
    }
}
