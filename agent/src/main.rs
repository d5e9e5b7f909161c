//! `authtrail`: the login-telemetry agent.

use std::path::PathBuf;
use std::process::ExitCode;

use agent::cmd;
use agent::timezone::Zone;
use agent_core::exit::exit_code;
use clap::{CommandFactory as _, Parser, Subcommand};

/// Watches every login on this machine and ships the evidence to a collector.
#[derive(Debug, Parser)]
#[command(name = "authtrail", version, about)]
struct Cli {
    /// The agent's config file (read by `run`, `validate` and `sources`; by `status` for its
    /// state-dir; by `parse --detect` for its `[detect]` settings).
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        default_value = agent::config::DEFAULT_CONFIG_PATH
    )]
    config: PathBuf,
    #[command(flatten)]
    verbosity: logger::Verbosity,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Parse auth-log lines and print their events as ECS JSON, one per line, with a summary on
    /// stderr. Reads standard input when no file is given.
    Parse {
        /// Log files to read (`-` for standard input).
        files: Vec<PathBuf>,
        /// Print the lines from auth programs that no parser recognised (on stderr; the first
        /// 512 bytes of a longer line).
        #[arg(long)]
        unmatched: bool,
        /// Leave the original line (`message`) out of each event.
        #[arg(long)]
        no_message: bool,
        /// Zone of timestamps that carry none (`Nov 28 06:49:30`): `local`, `UTC` or `+HH:MM`.
        #[arg(long, default_value = "local")]
        timezone: Zone,
        /// Reference time for year-less timestamps (RFC 3339); defaults to each file's mtime.
        #[arg(long, value_parser = parse_rfc3339)]
        reference_time: Option<agent_core::Timestamp>,
        /// Longest line kept, in bytes; longer lines are cut and counted.
        #[arg(long, default_value_t = cmd::parse::DEFAULT_MAX_LINE)]
        max_line: usize,
        /// Read bare messages with no syslog header, as written by this program (`sshd`,
        /// `dropbear`, `sudo`, ...), as tools and tests print them.
        #[arg(long, value_name = "NAME")]
        program: Option<String>,
        /// Print the alerts the edge detections would raise on these lines (instead of the
        /// events): a preview, offline. Uses the `[detect]` settings of --config when that file
        /// exists, else the defaults.
        #[arg(long)]
        detect: bool,
    },
    /// Check the config file: print the effective configuration as TOML (defaults filled in,
    /// default sources chosen) and exit 0, or print each error and exit 2.
    Validate {
        /// Print one JSON document: `valid`, and the effective `config` or the `errors`.
        #[arg(long)]
        json: bool,
    },
    /// Show each source the agent will read, why default sources were chosen, and which files
    /// each path or glob matches now.
    Sources {
        /// Print the sources and their matching files as one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Run the agent in the foreground (the service's entry point) until SIGTERM. SIGHUP reloads
    /// the config's `[[source]]` list and `[detect]` (other settings apply at the next start).
    Run,
    /// Show a running agent's sources: position, lag in bytes, events read, lines rejected.
    Status {
        /// Print the raw status JSON.
        #[arg(long)]
        json: bool,
    },
    /// Set this host up to run the agent as a service without a package: the `authtrail`
    /// user (groups adm, systemd-journal), /etc/authtrail, /var/lib/authtrail, this binary as
    /// /usr/local/bin/authtrail, the systemd unit, and the example config if there is none.
    Install {
        /// Install under this root instead of `/` (image builders, tests).
        #[arg(long, value_name = "DIR", default_value = "/")]
        prefix: PathBuf,
        /// Print what would be done; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Write shell completions (`completions/`: bash, zsh, fish) and man pages (`man/`) made
    /// from these command-line definitions into DIR; packaging runs it.
    #[command(hide = true)]
    GenerateAssets {
        /// Where to write `completions/` and `man/`.
        dir: PathBuf,
    },
}

/// Writes completions for bash, zsh and fish, and a man page per command, under `dir`.
fn generate_assets(dir: &std::path::Path) -> std::io::Result<()> {
    use clap_complete::Shell;
    // No pages or completions for the `help` subcommand: `--help` says the same.
    let mut cli = Cli::command().disable_help_subcommand(true);
    let name = cli.get_name().to_owned();
    std::fs::create_dir_all(dir.join("completions"))?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut cli, &name, dir.join("completions"))?;
    }
    std::fs::create_dir_all(dir.join("man"))?;
    clap_mangen::generate_to(cli, dir.join("man"))
}

fn parse_rfc3339(s: &str) -> Result<agent_core::Timestamp, String> {
    let ts: jiff::Timestamp = s
        .parse()
        .map_err(|e| format!("expected an RFC 3339 time like 2026-11-28T06:49:30Z: {e}"))?;
    Ok(agent_core::Timestamp {
        secs: ts.as_second(),
        nanos: ts.subsec_nanosecond().unsigned_abs(),
    })
}

/// Exit 0 for a valid config, 2 for a refused one.
fn config_verdict(valid: bool) -> ExitCode {
    if valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(agent_core::exit::EXIT_USAGE)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logger::init("authtrail", &cli.verbosity);
    let result: anyhow::Result<ExitCode> = match cli.command {
        Command::Parse {
            files,
            unmatched,
            no_message,
            timezone,
            reference_time,
            max_line,
            program,
            detect,
        } => {
            let detect = match detect.then(|| cmd::parse::detect_config(&cli.config)) {
                Some(Err(e)) => return fail(&e),
                Some(Ok(c)) => Some(c),
                None => None,
            };
            let opts = cmd::parse::Options {
                files,
                unmatched,
                no_message,
                zone: timezone,
                reference: reference_time,
                max_line,
                program,
                detect,
            };
            cmd::parse::run(
                &opts,
                &mut std::io::stdout().lock(),
                &mut std::io::stderr().lock(),
            )
            .map(|_| ExitCode::SUCCESS)
        }
        Command::Validate { json } => {
            let opts = cmd::validate::Options {
                config: cli.config,
                root: PathBuf::from("/"),
            };
            if json {
                return finish(
                    cmd::validate::run_json(&opts, &mut std::io::stdout().lock())
                        .map(config_verdict),
                );
            }
            cmd::validate::run(
                &opts,
                &mut std::io::stdout().lock(),
                &mut std::io::stderr().lock(),
            )
            .map(config_verdict)
        }
        Command::Sources { json } => {
            let opts = cmd::sources::Options {
                config: cli.config,
                root: PathBuf::from("/"),
            };
            if json {
                return finish(
                    cmd::sources::run_json(&opts, &mut std::io::stdout().lock())
                        .map(config_verdict),
                );
            }
            cmd::sources::run(
                &opts,
                &mut std::io::stdout().lock(),
                &mut std::io::stderr().lock(),
            )
            .map(config_verdict)
        }
        Command::Run => {
            agent::run::run(&agent::run::Options { config: cli.config }).map(|()| ExitCode::SUCCESS)
        }
        Command::Status { json } => {
            cmd::status::run(&cli.config, json, &mut std::io::stdout().lock()).map(|running| {
                if running {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            })
        }
        Command::GenerateAssets { dir } => generate_assets(&dir)
            .map(|()| ExitCode::SUCCESS)
            .map_err(anyhow::Error::from),
        Command::Install { prefix, dry_run } => std::env::current_exe()
            .map_err(anyhow::Error::from)
            .and_then(|binary| {
                let opts = cmd::install::Options {
                    prefix,
                    dry_run,
                    binary,
                };
                cmd::install::run(&opts, &mut std::io::stdout().lock())
            })
            .map(|()| ExitCode::SUCCESS),
    };
    finish(result)
}

/// The exit code of a command's result; an error is printed first.
fn finish(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) => fail(&e),
    }
}

fn fail(e: &anyhow::Error) -> ExitCode {
    // A closed pipe (`authtrail parse log | head`) is not an error worth a message.
    if e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    }) {
        return ExitCode::SUCCESS;
    }
    eprintln!("{}", agent_core::exit::render("authtrail", e.as_ref()));
    ExitCode::from(exit_code(e.as_ref(), |c| {
        c.is::<agent::config::ConfigError>()
    }))
}
