//! The one logger of the authtrail binaries (`authtrail`, `authtrail-collector`).
//!
//! The binaries and libraries log through `tracing` (and `log`, bridged: the messages of
//! libraries that use it, such as ureq, arrive here too); [`init`] installs the one subscriber, whose lines fit where standard error
//! goes:
//! - **the journal** (systemd sets `JOURNAL_STREAM` to stderr's `device:inode`): `<N>message`,
//!   with the syslog priority `N` (3 error, 4 warning, 6 info, 7 debug) that journald reads
//!   and strips; no time or program name, the journal records both;
//! - **a terminal**: `program: warning: message`, the level in colour, unless `NO_COLOR` is set;
//! - **anything else** (a file, a pipe): the same line without colour.
//!
//! The level: `--log-level` (a level or a `RUST_LOG`-style filter such as
//! `info,ureq=debug`), else `-v` (debug), `-vv` (trace), `-q` (warnings and errors), `-qq`
//! (errors only), else `RUST_LOG`, else `info`.

use std::fmt;
use std::io::IsTerminal as _;
use std::os::fd::AsFd as _;
use std::os::unix::fs::MetadataExt as _;

use tracing::{Event, Level, Subscriber};
use tracing_log::NormalizeEvent as _;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The verbosity options every command of both binaries takes.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Verbosity {
    /// More log output: -v for debug messages, -vv for trace.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Less log output: -q for warnings and errors only, -qq for errors only.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub quiet: u8,
    /// The log level (`error`, `warn`, `info`, `debug`, `trace`) or a filter like
    /// `info,ureq=debug`; overrides -v, -q and `RUST_LOG`. Defaults to `info`.
    #[arg(long, global = true, value_name = "LEVEL", value_parser = parse_filter)]
    pub log_level: Option<String>,
}

/// The levels, as `--log-level` takes them.
const LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];

fn parse_filter(text: &str) -> Result<String, String> {
    let expected = "expected a level (error, warn, info, debug, trace) or a filter like \
                    info,ureq=debug";
    // A bare word that is no level would be taken as a target name (`--log-level loud` would
    // silently log nothing more): each part is a level or `target=level`.
    if let Some(part) = text
        .split(',')
        .find(|p| !p.contains('=') && !LEVELS.contains(&p.trim().to_ascii_lowercase().as_str()))
    {
        return Err(format!("{part:?}: {expected}"));
    }
    EnvFilter::builder()
        .parse(text)
        .map(|_| text.to_owned())
        .map_err(|e| format!("{expected}: {e}"))
}

impl Verbosity {
    /// The filter these options ask for: `None` leaves it to `RUST_LOG`.
    fn directive(&self) -> Option<String> {
        if let Some(level) = &self.log_level {
            return Some(level.clone());
        }
        let level = match (self.verbose, self.quiet) {
            (0, 0) => return None,
            (1, _) => "debug",
            (v, _) if v >= 2 => "trace",
            (_, 1) => "warn",
            _ => "error",
        };
        Some(level.to_owned())
    }
}

/// Where standard error goes, which decides the line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// The systemd journal: `<N>` priority prefixes.
    Journal,
    /// A terminal: colour unless `NO_COLOR` is set.
    Terminal {
        /// Colour the level.
        color: bool,
    },
    /// A file or a pipe: plain lines.
    Plain,
}

impl Output {
    /// Looks at standard error and the environment (`JOURNAL_STREAM`, `NO_COLOR`).
    pub fn detect() -> Output {
        if stderr_is_journal(std::env::var("JOURNAL_STREAM").ok().as_deref()) {
            return Output::Journal;
        }
        if std::io::stderr().is_terminal() {
            let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
            return Output::Terminal { color: !no_color };
        }
        Output::Plain
    }
}

/// True when `journal_stream` (`JOURNAL_STREAM`: `device:inode`, as systemd sets it) names the
/// file standard error is open on: a child that inherited the variable but whose stderr was
/// redirected elsewhere must not write `<N>` prefixes.
fn stderr_is_journal(journal_stream: Option<&str>) -> bool {
    let Some((dev, ino)) = journal_stream.and_then(|v| v.trim().split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    std::fs::File::from(fd)
        .metadata()
        .is_ok_and(|m| m.dev() == dev && m.ino() == ino)
}

/// Installs the logger for `program` (the prefix of terminal and plain lines). A second call
/// does nothing.
pub fn init(program: &'static str, verbosity: &Verbosity) {
    init_with(program, verbosity, Output::detect());
}

/// [`init`] with the output chosen by the caller.
pub(crate) fn init_with(program: &'static str, verbosity: &Verbosity, output: Output) {
    let filter = match verbosity.directive() {
        Some(d) => EnvFilter::builder().parse_lossy(d),
        None => EnvFilter::builder()
            .with_default_directive(Level::INFO.into())
            .from_env_lossy(),
    };
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(matches!(output, Output::Terminal { color: true }))
        .event_format(Format { program, output });
    // Also installs the `log` bridge (tracing-subscriber's `tracing-log` feature).
    let _already = tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .try_init();
}

/// The line format (see the crate's documentation).
#[derive(Debug)]
struct Format {
    program: &'static str,
    output: Output,
}

/// The syslog priority of a level, as journald reads it from a `<N>` prefix.
fn priority(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

impl<S, N> FormatEvent<S, N> for Format
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        let level = *meta.level();
        if self.output == Output::Journal {
            write!(w, "<{}>", priority(level))?;
        } else {
            write!(w, "{}: ", self.program)?;
            let (word, colour) = match level {
                Level::ERROR => ("error", "31"),
                Level::WARN => ("warning", "33"),
                Level::INFO => ("", ""),
                Level::DEBUG => ("debug", "2"),
                Level::TRACE => ("trace", "2"),
            };
            if !word.is_empty() {
                if w.has_ansi_escapes() {
                    write!(w, "\x1b[{colour}m{word}\x1b[0m: ")?;
                } else {
                    write!(w, "{word}: ")?;
                }
            }
        }
        // A library's message says which library (`ureq::pool: ...`).
        // The binaries' own crates: `agent`, `collector`, and `authtrail`/`authtrail_collector`
        // (the binaries' crate names).
        let target = meta.target();
        let crate_name = target.split("::").next().unwrap_or(target);
        let ours =
            matches!(crate_name, "agent" | "collector") || crate_name.starts_with("authtrail");
        if !ours {
            write!(w, "{}: ", meta.target())?;
        }
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_must_name_stderr() {
        assert!(!stderr_is_journal(None));
        assert!(!stderr_is_journal(Some("garbage")));
        assert!(!stderr_is_journal(Some("0:0")));
        let fd = std::io::stderr().as_fd().try_clone_to_owned().unwrap();
        let m = std::fs::File::from(fd).metadata().unwrap();
        assert!(stderr_is_journal(Some(&format!("{}:{}", m.dev(), m.ino()))));
    }

    /// A library that logs through the `log` crate (not `tracing`) reaches the same output,
    /// named after its own target: with no bridge its messages were lost.
    #[test]
    fn a_library_log_record_is_written_named_after_its_library() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let w = buf.clone();
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(move || w.clone())
            .with_ansi(false)
            .event_format(Format {
                program: "authtrail",
                output: Output::Plain,
            });
        let subscriber = tracing_subscriber::registry().with(layer);
        let _ = tracing_log::LogTracer::init();
        tracing::subscriber::with_default(subscriber, || {
            tracing_log::log::warn!(target: "somelib::watch", "cannot watch {}", "/var/log");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text,
            "authtrail: warning: somelib::watch: cannot watch /var/log\n"
        );
    }

    #[test]
    fn verbosity_picks_the_level() {
        let v = |verbose, quiet, log_level: Option<&str>| {
            Verbosity {
                verbose,
                quiet,
                log_level: log_level.map(str::to_owned),
            }
            .directive()
        };
        assert_eq!(v(0, 0, None), None);
        assert_eq!(v(1, 0, None).as_deref(), Some("debug"));
        assert_eq!(v(3, 0, None).as_deref(), Some("trace"));
        assert_eq!(v(0, 1, None).as_deref(), Some("warn"));
        assert_eq!(v(0, 2, None).as_deref(), Some("error"));
        assert_eq!(v(2, 0, Some("info")).as_deref(), Some("info"));
        assert!(parse_filter("loud").is_err());
        assert!(parse_filter("info,ureq=debug").is_ok());
    }
}
