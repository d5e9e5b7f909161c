//! `authtrail parse [FILE...]`: parse auth-log lines and print their ECS JSON, one line per
//! recognised log line, with a fail2ban-regex-like summary on stderr. Operators use it to check
//! their own logs before deploying; it is also how the parser is scored.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use agent_core::ecs::{self, Envelope};
use agent_core::syslog::Context;
use agent_core::{Parsed, Text, Timestamp, parse_line, parse_message};
use anyhow::Context as _;

use crate::lines::LineReader;
use crate::timezone::Zone;

/// Default bound on one line, bytes (ARCHITECTURE-NOTES: 64 KiB).
pub const DEFAULT_MAX_LINE: usize = 64 * 1024;

/// Options of `authtrail parse`.
#[derive(Debug, Clone)]
pub struct Options {
    /// Files to read; stdin when empty (or `-`).
    pub files: Vec<PathBuf>,
    /// Print skipped lines from watched programs on stderr.
    pub unmatched: bool,
    /// Leave out the `message` field.
    pub no_message: bool,
    /// Zone of zone-less timestamps.
    pub zone: Zone,
    /// Reference time for year-less timestamps; default: each file's mtime (now for stdin).
    pub reference: Option<Timestamp>,
    /// Bound on a line's length.
    pub max_line: usize,
    /// Every line is a bare message (no syslog header) from this program.
    pub program: Option<String>,
    /// Run the edge detections over the events and print the alerts they raise instead of the
    /// events (`--detect`): a preview, offline, of what the agent would alert on.
    pub detect: Option<agent_core::detect::DetectConfig>,
}

/// The detections `parse --detect` runs: the `[detect]` settings of the config file at
/// `config` when it exists (every error in it refused, as `validate` would), else the defaults.
pub fn detect_config(config: &Path) -> anyhow::Result<agent_core::detect::DetectConfig> {
    let settings = if config.exists() {
        crate::config::Config::load(config)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .detect
    } else {
        crate::detect::DetectSettings::default()
    };
    // A preview of what the detections would raise: on, even where the config turns them off.
    let settings = crate::detect::DetectSettings {
        enabled: true,
        ..settings
    };
    // A fixed seed: the preview is the same on every run.
    Ok(settings.to_detect_config(0))
}

/// What `parse` saw, for the summary.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Lines read.
    pub lines: u64,
    /// Lines that gave an event (including `last message repeated` re-emits).
    pub events: u64,
    /// Known noise from watched programs.
    pub noise: u64,
    /// Lines from programs authtrail does not watch.
    pub foreign: u64,
    /// Lines from watched programs that no parser recognised.
    pub unrecognised: u64,
    /// Lines with no syslog header.
    pub malformed: u64,
    /// Lines with no syslog header that are known sshd messages, read as sshd's.
    pub headerless_sshd: u64,
    /// Lines cut at the length bound.
    pub truncated: u64,
    /// Lines with invalid UTF-8.
    pub invalid_utf8: u64,
    /// Events by `event.action`.
    pub by_action: BTreeMap<&'static str, u64>,
    /// Events by `process.name`.
    pub by_program: BTreeMap<String, u64>,
    /// Unrecognised lines by program.
    pub unrecognised_by_program: BTreeMap<String, u64>,
    /// With `--detect`: alerts by rule.
    pub alerts_by_rule: BTreeMap<&'static str, u64>,
}

/// Runs the command: events to `out`, summary (and unmatched lines) to `err`.
pub fn run(opts: &Options, out: &mut dyn Write, err: &mut dyn Write) -> anyhow::Result<Summary> {
    let mut summary = Summary::default();
    let mut out = io::BufWriter::with_capacity(256 * 1024, out);
    // One detector for all the inputs, as the agent has one for all its sources.
    let mut detector = opts
        .detect
        .map(|c| Box::new(agent_core::detect::DefaultDetector::new(c)));
    let mut sink = Output {
        out: &mut out,
        detector: detector.as_deref_mut(),
        json: String::with_capacity(1024),
    };
    let stdin_only = opts.files.is_empty();
    let inputs: Vec<Option<&Path>> = if stdin_only {
        vec![None]
    } else {
        opts.files
            .iter()
            .map(|p| (p.as_os_str() != "-").then_some(p.as_path()))
            .collect()
    };
    for input in inputs {
        match input {
            Some(path) => {
                let file =
                    File::open(path).with_context(|| format!("opening {}", path.display()))?;
                refuse_utmp(&file, path)?;
                let mtime = file
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(to_timestamp);
                let reference = opts.reference.or(mtime).unwrap_or_else(now);
                let reader = BufReader::with_capacity(256 * 1024, file);
                parse_stream(
                    reader,
                    Some(path),
                    reference,
                    opts,
                    &mut summary,
                    &mut sink,
                    err,
                )
                .with_context(|| format!("reading {}", path.display()))?;
            }
            None => {
                let stdin = io::stdin();
                let reference = opts.reference.unwrap_or_else(now);
                let reader = BufReader::with_capacity(256 * 1024, stdin.lock());
                parse_stream(reader, None, reference, opts, &mut summary, &mut sink, err)
                    .context("reading standard input")?;
            }
        }
    }
    drop(sink);
    out.flush().context("writing events")?;
    write_summary(&summary, opts.unmatched, err).context("writing summary")?;
    if opts.detect.is_some() {
        write_alert_summary(&summary, err).context("writing summary")?;
    }
    Ok(summary)
}

/// Where an event goes: its JSON, or with `--detect` the detector (and its alerts' JSON).
struct Output<'o> {
    out: &'o mut dyn Write,
    detector: Option<&'o mut agent_core::detect::DefaultDetector>,
    json: String,
}

impl Output<'_> {
    fn event(
        &mut self,
        ev: &agent_core::LoginEvent<'_>,
        envelope: &Envelope<'_>,
        summary: &mut Summary,
    ) -> io::Result<()> {
        summary.record(ev);
        let Some(detector) = self.detector.as_deref_mut() else {
            self.json.clear();
            ecs::write_event(&mut self.json, ev, envelope).map_err(io::Error::other)?;
            self.json.push('\n');
            return self.out.write_all(self.json.as_bytes());
        };
        for alert in detector.observe(ev) {
            *summary
                .alerts_by_rule
                .entry(alert.rule.as_str())
                .or_default() += 1;
            let envelope = Envelope {
                hostname: ev.hostname.or(envelope.hostname),
                message: None,
                ..*envelope
            };
            self.json.clear();
            ecs::write_alert(&mut self.json, &alert, &envelope).map_err(io::Error::other)?;
            self.json.push('\n');
            self.out.write_all(self.json.as_bytes())?;
        }
        Ok(())
    }
}

fn parse_stream(
    reader: impl BufRead,
    path: Option<&Path>,
    reference: Timestamp,
    opts: &Options,
    summary: &mut Summary,
    out: &mut Output<'_>,
    err: &mut dyn Write,
) -> io::Result<()> {
    let ctx = Context {
        reference,
        utc_offset: opts.zone.offset_at(reference),
    };
    let path_text = path.map(|p| p.as_os_str().as_encoded_bytes());
    let mut lines = LineReader::new(reader, opts.max_line, 0);
    // The last line that gave an event, for syslogd's `last message repeated N times`.
    let mut previous: Vec<u8> = Vec::new();
    let mut line_no: u64 = 0;
    while let Some(line) = lines.next_line()? {
        line_no += 1;
        summary.lines += 1;
        if line.truncated {
            summary.truncated += 1;
        }
        let bytes = agent_core::syslog::trim_line_end(line.bytes);
        if is_journalctl_marker(bytes) {
            summary.noise += 1;
            continue;
        }
        if std::str::from_utf8(bytes).is_err() {
            summary.invalid_utf8 += 1;
        }
        let envelope = Envelope {
            log_path: path_text.map(Text),
            log_offset: Some(line.offset),
            message: (!opts.no_message).then_some(Text(bytes)),
            ..Envelope::default()
        };
        let parsed = match &opts.program {
            Some(program) => parse_message(Text(program.as_bytes()), None, bytes),
            None => parse_line(bytes, &ctx),
        };
        let parsed = match parsed {
            Parsed::Malformed(e) => match agent_core::parse_headerless_sshd(bytes) {
                Some(ev) => {
                    summary.headerless_sshd += 1;
                    Parsed::Event(ev)
                }
                None => Parsed::Malformed(e),
            },
            p => p,
        };
        match parsed {
            Parsed::Event(ev) => {
                out.event(&ev, &envelope, summary)?;
                previous.clear();
                previous.extend_from_slice(bytes);
            }
            Parsed::RepeatLast { count, header } => {
                // Re-parse the previous line and re-emit its event at this line's time.
                let again = match &opts.program {
                    Some(program) => parse_message(Text(program.as_bytes()), None, &previous),
                    None => parse_line(&previous, &ctx),
                };
                match again {
                    Parsed::Event(mut ev) => {
                        ev.count = ev.count.saturating_mul(count);
                        ev.timestamp = Some(header.timestamp);
                        out.event(&ev, &envelope, summary)?;
                    }
                    _ => summary.noise += 1,
                }
            }
            Parsed::Noise { .. } => summary.noise += 1,
            Parsed::Foreign { .. } => summary.foreign += 1,
            Parsed::Unrecognised { program } => {
                summary.unrecognised += 1;
                *summary
                    .unrecognised_by_program
                    .entry(program.to_string())
                    .or_default() += 1;
                if opts.unmatched {
                    report_unmatched(err, path, line_no, "unrecognised", bytes)?;
                }
            }
            Parsed::Malformed(e) => {
                summary.malformed += 1;
                if opts.unmatched && !bytes.trim_ascii().is_empty() {
                    report_unmatched(err, path, line_no, &e.to_string(), bytes)?;
                }
            }
        }
    }
    Ok(())
}

/// journalctl's own lines between entries: `-- No entries --`, `-- Boot <id> --`, `-- Logs begin
/// at ... --`. Not log lines, so not malformed ones.
fn is_journalctl_marker(line: &[u8]) -> bool {
    line.len() > 6 && line.starts_with(b"-- ") && line.ends_with(b" --")
}

/// A wtmp/btmp/utmp file is binary records, not lines: say so and how to read it, rather than
/// counting it as one long malformed line. Known by its size (whole 384-byte records) and a
/// first record whose type is a utmp type.
fn refuse_utmp(file: &File, path: &Path) -> anyhow::Result<()> {
    use agent_core::utmp::{RECORD_LEN, RecordType, parse_record};
    use std::os::unix::fs::FileExt as _;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if len == 0 || !len.is_multiple_of(RECORD_LEN as u64) {
        return Ok(());
    }
    let mut first = [0u8; RECORD_LEN];
    if file.read_exact_at(&mut first, 0).is_err() {
        return Ok(());
    }
    // Text has a type of at least 0x0909 (two printable or blank bytes): never a utmp type.
    let is_utmp =
        parse_record(&first).is_ok_and(|r| !matches!(r.record_type(), RecordType::Unknown(_)));
    if !is_utmp {
        return Ok(());
    }
    let p = path.display();
    Err(agent_core::exit::UsageError(format!(
        "{p} is a utmp file (wtmp/btmp: binary login records), not a text log: read it with \
         `last -f {p}` (`lastb -f` for btmp) or `utmpdump {p}`; the agent reads it with a \
         [[source]] type = \"utmp\""
    ))
    .into())
}

fn report_unmatched(
    err: &mut dyn Write,
    path: Option<&Path>,
    line_no: u64,
    why: &str,
    bytes: &[u8],
) -> io::Result<()> {
    let name = path.map_or_else(|| "<stdin>".to_owned(), |p| p.display().to_string());
    if bytes.len() <= UNMATCHED_SHOWN {
        return writeln!(err, "{name}:{line_no}: {why}: {}", Text(bytes));
    }
    // At a character boundary when the start is UTF-8.
    let mut cut = UNMATCHED_SHOWN;
    while cut > 0 && bytes.get(cut).is_some_and(|b| (0x80..0xc0).contains(b)) {
        cut -= 1;
    }
    writeln!(
        err,
        "{name}:{line_no}: {why}: {} ... ({} more bytes)",
        Text(&bytes[..cut]),
        bytes.len() - cut
    )
}

/// Most bytes of an unrecognised line `--unmatched` prints: a parser needs the line's start,
/// and a line of 64 KiB (the line bound) would fill the terminal.
const UNMATCHED_SHOWN: usize = 512;

impl Summary {
    fn record(&mut self, ev: &agent_core::LoginEvent<'_>) {
        self.events += 1;
        *self.by_action.entry(ev.action.as_str()).or_default() += 1;
        let program = ev.program.to_string();
        *self.by_program.entry(program).or_default() += 1;
    }
}

fn write_alert_summary(s: &Summary, err: &mut dyn Write) -> io::Result<()> {
    let total: u64 = s.alerts_by_rule.values().sum();
    writeln!(
        err,
        "\nAlerts: {total} (on stdout, one ECS document per alert)"
    )?;
    for (rule, n) in &s.alerts_by_rule {
        writeln!(err, "  {rule:<24} {n:>10}")?;
    }
    Ok(())
}

fn write_summary(s: &Summary, unmatched_shown: bool, err: &mut dyn Write) -> io::Result<()> {
    let mut text = String::new();
    let pct = |n: u64| {
        if s.lines == 0 {
            0.0
        } else {
            n as f64 * 100.0 / s.lines as f64
        }
    };
    let _ = writeln!(text, "\nLines: {} read", s.lines);
    let _ = writeln!(
        text,
        "  events:        {:>10} ({:.1}%)",
        s.events,
        pct(s.events)
    );
    let _ = writeln!(
        text,
        "  noise:         {:>10} (known lines with nothing to report)",
        s.noise
    );
    let _ = writeln!(
        text,
        "  unrecognised:  {:>10} (from auth programs: worth a look)",
        s.unrecognised
    );
    let _ = writeln!(text, "  other programs:{:>10}", s.foreign);
    let _ = writeln!(
        text,
        "  malformed:     {:>10} (no syslog header)",
        s.malformed
    );
    if s.headerless_sshd > 0 {
        let _ = writeln!(
            text,
            "  no header:     {:>10} (known sshd messages without a syslog header, read as sshd's; \
             --program names the program)",
            s.headerless_sshd
        );
    }
    if s.truncated > 0 || s.invalid_utf8 > 0 {
        let _ = writeln!(
            text,
            "  truncated:     {:>10} (longer than the line bound)\n  invalid UTF-8: {:>10}",
            s.truncated, s.invalid_utf8
        );
    }
    if !s.by_action.is_empty() {
        let _ = writeln!(text, "\nEvents by action:");
        for (action, n) in &s.by_action {
            let _ = writeln!(text, "  {action:<15} {n:>10}");
        }
        let _ = writeln!(text, "\nEvents by program:");
        for (program, n) in &s.by_program {
            let _ = writeln!(text, "  {program:<15} {n:>10}");
        }
    }
    if !s.unrecognised_by_program.is_empty() {
        let _ = writeln!(text, "\nUnrecognised lines by program:");
        for (program, n) in &s.unrecognised_by_program {
            let _ = writeln!(text, "  {program:<15} {n:>10}");
        }
        if !unmatched_shown {
            let _ = writeln!(text, "(run with --unmatched to see them)");
        }
    }
    err.write_all(text.as_bytes())
}

fn to_timestamp(t: SystemTime) -> Option<Timestamp> {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).ok()?;
    Some(Timestamp {
        secs: i64::try_from(d.as_secs()).ok()?,
        nanos: d.subsec_nanos(),
    })
}

fn now() -> Timestamp {
    to_timestamp(SystemTime::now()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(files: Vec<PathBuf>) -> Options {
        Options {
            files,
            unmatched: true,
            no_message: false,
            zone: Zone::Fixed(0),
            reference: Some(Timestamp::from_secs(1_795_867_200)),
            max_line: DEFAULT_MAX_LINE,
            program: None,
            detect: None,
        }
    }

    /// `--detect` prints the alerts, not the events: a brute force that ends in a login gives
    /// the brute force and the success after failures, with the attacker's address.
    #[test]
    fn detect_prints_the_alerts_the_log_would_raise() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.log");
        let mut text = String::new();
        for i in 0..12 {
            text.push_str(&format!(
                "Nov 28 06:49:{i:02} web1 sshd[{i}]: Failed password for root from 203.0.113.9 port {i} ssh2\n"
            ));
        }
        text.push_str(
            "Nov 28 06:50:00 web1 sshd[99]: Accepted password for root from 203.0.113.9 port 99 ssh2\n",
        );
        std::fs::write(&path, text).unwrap();
        let config = dir.path().join("absent.toml");
        let o = Options {
            detect: Some(detect_config(&config).unwrap()),
            ..opts(vec![path])
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let s = run(&o, &mut out, &mut err).unwrap();
        assert_eq!(s.events, 13);
        let out = String::from_utf8(out).unwrap();
        assert!(!out.contains("\"kind\":\"event\""), "only alerts: {out}");
        let rules: Vec<&str> = s.alerts_by_rule.keys().copied().collect();
        assert!(rules.contains(&"brute_force"), "{rules:?}\n{out}");
        assert!(
            rules.iter().any(|r| r.contains("success_after_failures")),
            "{rules:?}\n{out}"
        );
        assert!(
            out.lines().all(|l| l.contains("\"kind\":\"alert\"")),
            "{out}"
        );
        assert!(out.contains("203.0.113.9"), "{out}");
        let err = String::from_utf8(err).unwrap();
        assert!(err.contains("Alerts: "), "{err}");
    }

    #[test]
    fn program_reads_bare_messages_and_bare_sshd_lines_are_said_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bare.log");
        std::fs::write(
            &path,
            concat!(
                "Failed password for root from 203.0.113.9 port 4 ssh2\n",
                "Server listening on 0.0.0.0 port 22.\n",
                "Accepted password for bob from 203.0.113.9 port 5 ssh2\n",
            ),
        )
        .unwrap();
        // Without --program: the two sshd events are found, and the summary says how.
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let s = run(&opts(vec![path.clone()]), &mut out, &mut err).unwrap();
        assert_eq!((s.events, s.headerless_sshd, s.malformed), (2, 2, 1));
        let err = String::from_utf8(err).unwrap();
        assert!(err.contains("no header:"), "{err}");
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains("\"name\":\"sshd\""), "{out}");
        // With --program sshd every line is sshd's: the listening line is noise, not malformed.
        let mut o = opts(vec![path.clone()]);
        o.program = Some("sshd".into());
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let s = run(&o, &mut out, &mut err).unwrap();
        assert_eq!(
            (s.events, s.noise, s.malformed, s.headerless_sshd),
            (2, 1, 0, 0)
        );
        // --program dropbear reads dropbear's bare messages.
        std::fs::write(
            &path,
            "Bad password attempt for 'root' from 192.0.2.5:41234\n",
        )
        .unwrap();
        o.program = Some("dropbear".into());
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let s = run(&o, &mut out, &mut err).unwrap();
        assert_eq!(s.by_action.get("auth_failure"), Some(&1));
    }

    #[test]
    fn prints_events_offsets_and_a_summary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.log");
        std::fs::write(
            &path,
            concat!(
                "Nov 28 06:49:30 web1 sshd[1]: Failed password for root from 203.0.113.9 port 4 ssh2\n",
                "Nov 28 06:49:31 web1 last message repeated 2 times\n",
                "Nov 28 06:49:32 web1 sshd[1]: Something nobody has seen\n",
                "Nov 28 06:49:33 web1 kernel: hello\n",
                "Nov 28 06:49:34 web1 sshd[1]: Accepted password for root from 203.0.113.9 port 5 ssh2",
            ),
        )
        .unwrap();
        let mut out = Vec::new();
        let mut err = Vec::new();
        let s = run(&opts(vec![path.clone()]), &mut out, &mut err).unwrap();
        assert_eq!(s.lines, 5);
        assert_eq!(s.events, 3);
        assert_eq!(s.unrecognised, 1);
        assert_eq!(s.foreign, 1);
        let out = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].contains("\"offset\":0"), "{}", lines[0]);
        assert!(lines[1].contains("\"count\":2"), "{}", lines[1]);
        assert!(lines[1].contains("\"@timestamp\":\"2026-11-28T06:49:31Z\""));
        assert!(lines[2].contains("\"action\":\"auth_success\""));
        let offset_of_last = out.len(); // silence unused warnings in some configs
        assert!(offset_of_last > 0);
        let err = String::from_utf8(err).unwrap();
        assert!(err.contains("auth.log:3: unrecognised: "), "{err}");
        assert!(err.contains("auth_failure"), "{err}");
    }

    /// `--unmatched` printed a 64 KiB unrecognised line whole (a 200 KB user name, cut at the
    /// line bound): one line filled the terminal. It shows the line's start and how much more.
    #[test]
    fn an_unmatched_huge_line_is_shown_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.log");
        let huge = format!(
            "Nov 28 06:49:30 web1 sshd[7]: Failed password for invalid user {} from 203.0.113.9 port 22 ssh2\n",
            "A".repeat(200_000)
        );
        std::fs::write(&path, huge).unwrap();
        let mut err = Vec::new();
        let s = run(&opts(vec![path]), &mut Vec::new(), &mut err).unwrap();
        assert_eq!(s.unrecognised, 1);
        let err = String::from_utf8(err).unwrap();
        let line = err
            .lines()
            .find(|l| l.contains("auth.log:1: unrecognised: "))
            .unwrap_or_else(|| panic!("{err}"));
        assert!(line.len() < 1024, "{} bytes", line.len());
        assert!(
            line.contains("Nov 28 06:49:30 web1 sshd[7]: Failed password"),
            "{line}"
        );
        assert!(line.ends_with("more bytes)"), "{line}");
    }

    #[test]
    fn a_utmp_file_is_named_with_how_to_read_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wtmp");
        std::fs::write(
            &path,
            include_bytes!("../../../agent-core/testdata/debian12-utmp/wtmp"),
        )
        .unwrap();
        let e = run(&opts(vec![path]), &mut Vec::new(), &mut Vec::new()).unwrap_err();
        let text = format!("{e:#}");
        assert!(text.contains("is a utmp file"), "{text}");
        assert!(text.contains("last -f"), "{text}");
        assert!(text.contains("type = \"utmp\""), "{text}");
        assert!(
            e.chain().any(|c| c.is::<agent_core::exit::UsageError>()),
            "exits 2"
        );
    }

    #[test]
    fn journalctl_no_entries_is_not_malformed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.txt");
        std::fs::write(&path, "-- No entries --\n").unwrap();
        let s = run(&opts(vec![path]), &mut Vec::new(), &mut Vec::new()).unwrap();
        assert_eq!((s.lines, s.malformed, s.noise), (1, 0, 1));
    }
}
