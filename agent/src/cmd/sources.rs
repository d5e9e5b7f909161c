//! `authtrail sources [--config PATH]`: the sources the agent will read, why the default ones
//! were chosen, and which files each glob matches now.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::cmd::validate::report_errors;
use crate::config::{Config, JournaldSourceConfig, SourceConfig};

/// Most matches listed per source; the rest are counted. Bounds the output and the memory for
/// a glob that matches thousands of files.
pub(crate) const MAX_LISTED: usize = 1000;

/// Options of `authtrail sources`.
#[derive(Debug, Clone)]
pub struct Options {
    /// The config file.
    pub config: PathBuf,
    /// The file system root: default sources are chosen for it and globs are matched under it
    /// (`/`; a temporary directory in tests). Paths are printed as seen from it.
    pub root: PathBuf,
}

/// Runs the command. `Ok(false)`: the config is invalid and the errors went to `err`.
pub fn run(opts: &Options, out: &mut dyn Write, err: &mut dyn Write) -> anyhow::Result<bool> {
    let (config, why) = match Config::load_effective_for_listing(&opts.config, &opts.root) {
        Ok(v) => v,
        Err(errors) => {
            report_errors(&opts.config, &errors, err)?;
            return Ok(false);
        }
    };
    match why {
        Some(why) => {
            writeln!(
                out,
                "No [[source]] in {}; chosen for this host:",
                opts.config.display()
            )?;
            for line in why.lines() {
                writeln!(out, "  {line}")?;
            }
        }
        None => writeln!(out, "Sources configured in {}:", opts.config.display())?,
    }
    for (name, source) in config.named_sources() {
        writeln!(out)?;
        match &source {
            SourceConfig::File(c) => {
                writeln!(
                    out,
                    "{name}: type file, read-from {}, at most {} files",
                    read_from(c.read_from),
                    c.max_files
                )?;
                list_matches(&opts.root, &c.paths, c.max_files, out)?;
            }
            SourceConfig::Utmp(c) => {
                writeln!(
                    out,
                    "{name}: type utmp, read-from {}",
                    read_from(c.read_from)
                )?;
                list_matches(&opts.root, &c.paths, usize::MAX, out)?;
            }
            SourceConfig::Audit(c) => {
                writeln!(
                    out,
                    "{name}: type audit, read-from {}",
                    read_from(c.read_from)
                )?;
                list_matches(&opts.root, &c.paths, usize::MAX, out)?;
            }
            SourceConfig::Journald(c) => describe_journald(&name, c, out)?,
        }
    }
    out.flush()?;
    Ok(true)
}

fn read_from(r: crate::config::ReadFrom) -> &'static str {
    match r {
        crate::config::ReadFrom::End => "end",
        crate::config::ReadFrom::Beginning => "beginning",
    }
}

/// What one path or glob matches now.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
struct PatternMatches {
    /// As configured.
    pattern: String,
    /// The glob itself is invalid: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    invalid: Option<String>,
    /// The first [`MAX_LISTED`] matches.
    files: Vec<Match>,
    /// Matches past [`MAX_LISTED`], counted only.
    more: usize,
}

/// One match, as seen from the root.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
struct Match {
    path: String,
    /// Its size, for a regular file.
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes: Option<u64>,
    /// Why it is not followed (not a regular file, cannot be read).
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<String>,
    /// An earlier pattern matched it too.
    also_matched_above: bool,
}

/// For each pattern, the files it matches now with their sizes; and how many match in all
/// (files past [`MAX_LISTED`] are counted but not de-duplicated: "at least").
fn find_matches(root: &Path, patterns: &[String]) -> (Vec<PatternMatches>, usize) {
    let mut seen = BTreeSet::new();
    let mut unlisted = 0usize;
    let mut found = Vec::new();
    for pattern in patterns {
        let mut pm = PatternMatches {
            pattern: pattern.clone(),
            invalid: None,
            files: Vec::new(),
            more: 0,
        };
        let rooted = format!(
            "{}/{}",
            glob::Pattern::escape(&root.to_string_lossy()).trim_end_matches('/'),
            pattern.trim_start_matches('/')
        );
        let paths = match glob::glob(&rooted) {
            Ok(paths) => paths,
            Err(e) => {
                pm.invalid = Some(e.to_string());
                found.push(pm);
                continue;
            }
        };
        for entry in paths {
            let path = match entry {
                Ok(p) => p,
                Err(e) => {
                    pm.files.push(Match {
                        path: shown(root, e.path()),
                        bytes: None,
                        problem: Some(format!("cannot read: {}", e.error())),
                        also_matched_above: false,
                    });
                    continue;
                }
            };
            if pm.files.len() >= MAX_LISTED {
                pm.more += 1;
                continue;
            }
            let also_matched_above = !seen.insert(path.clone());
            let (bytes, problem) = match fs::metadata(&path) {
                // Listed with its size, but the agent's run would only warn about it, every
                // poll, and read nothing: say so here, where an operator checks the setup.
                Ok(m) if m.is_file() => match fs::File::open(&path) {
                    Ok(_) => (Some(m.len()), None),
                    Err(e) => (
                        Some(m.len()),
                        Some(format!(
                            "cannot be read by this user: {e}; the agent's user must be able \
                             to read it (Debian: group adm); check with \
                             `sudo -u authtrail authtrail sources`"
                        )),
                    ),
                },
                Ok(_) => (None, Some("not a regular file: skipped".to_owned())),
                Err(e) => (None, Some(format!("cannot stat: {e}"))),
            };
            pm.files.push(Match {
                path: shown(root, &path),
                bytes,
                problem,
                also_matched_above,
            });
        }
        unlisted += pm.more;
        found.push(pm);
    }
    (found, seen.len() + unlisted)
}

/// For each pattern, the files it matches now with their sizes.
fn list_matches(
    root: &Path,
    patterns: &[String],
    max_files: usize,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let (found, total) = find_matches(root, patterns);
    for pm in &found {
        writeln!(out, "  {}", pm.pattern)?;
        if let Some(e) = &pm.invalid {
            writeln!(out, "    invalid glob: {e}")?;
            continue;
        }
        for m in &pm.files {
            let note = if m.also_matched_above {
                "  (also matched above)"
            } else {
                ""
            };
            match (&m.bytes, &m.problem) {
                (Some(b), Some(p)) => writeln!(out, "    {}  {b} bytes{note}  {p}", m.path)?,
                (Some(b), None) => writeln!(out, "    {}  {b} bytes{note}", m.path)?,
                (None, Some(p)) => writeln!(out, "    {}  {p}", m.path)?,
                (None, None) => writeln!(out, "    {}", m.path)?,
            }
        }
        if pm.files.is_empty() {
            writeln!(
                out,
                "    no file matches yet (read from its beginning once it appears)"
            )?;
        }
        if pm.more > 0 {
            writeln!(out, "    ... and {} more", pm.more)?;
        }
    }
    if total > max_files {
        writeln!(
            out,
            "  {total} files match, over max-files = {max_files}: only {max_files} are followed"
        )?;
    }
    Ok(())
}

/// `sources --json`: `{"file", "default-sources" (when chosen), "sources": [{"name", "type",
/// "read-from", "patterns": [...], "matching-files"} | journald's settings]}`, or `{"errors"}`
/// for an invalid config. Returns whether the config is valid.
pub fn run_json(opts: &Options, out: &mut dyn Write) -> anyhow::Result<bool> {
    let (config, why) = match Config::load_effective(&opts.config, &opts.root) {
        Ok(v) => v,
        Err(errors) => {
            let doc = serde_json::json!({
                "file": opts.config.display().to_string(),
                "errors": errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
            });
            writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
            return Ok(false);
        }
    };
    let files = |kind: &str,
                 name: &str,
                 read: crate::config::ReadFrom,
                 paths: &[String],
                 max: Option<usize>| {
        let (found, total) = find_matches(&opts.root, paths);
        serde_json::json!({
            "name": name, "type": kind, "read-from": read_from(read), "max-files": max,
            "patterns": found, "matching-files": total,
        })
    };
    let sources: Vec<serde_json::Value> = config
        .named_sources()
        .into_iter()
        .map(|(name, source)| match &source {
            SourceConfig::File(c) => files("file", &name, c.read_from, &c.paths, Some(c.max_files)),
            SourceConfig::Utmp(c) => files("utmp", &name, c.read_from, &c.paths, None),
            SourceConfig::Audit(c) => files("audit", &name, c.read_from, &c.paths, None),
            SourceConfig::Journald(c) => serde_json::json!({
                "name": name, "type": "journald", "read-from": read_from(c.read_from),
                "journalctl": c.journalctl.display().to_string(),
                "journalctl-found": find_on_path(&c.journalctl).map(|p| p.display().to_string()),
                "directory": c.directory.as_ref().map(|d| d.display().to_string()),
                "identifiers": c.identifiers,
            }),
        })
        .collect();
    let mut doc = serde_json::json!({
        "file": opts.config.display().to_string(),
        "sources": sources,
    });
    if let Some(why) = why {
        doc["default-sources"] = why.into();
    }
    writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
    Ok(true)
}

/// `path` as seen from `root`.
fn shown(root: &Path, path: &Path) -> String {
    match path.strip_prefix(root) {
        Ok(rel) => format!("/{}", rel.display()),
        Err(_) => path.display().to_string(),
    }
}

fn describe_journald(
    name: &str,
    c: &JournaldSourceConfig,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let read = read_from(c.read_from);
    writeln!(out, "{name}: type journald, read-from {read}")?;
    let bin = match find_on_path(&c.journalctl) {
        Some(p) => p.display().to_string(),
        None => format!(
            "{} (not found: install systemd's journalctl or set `journalctl`)",
            c.journalctl.display()
        ),
    };
    writeln!(out, "  journalctl: {bin}")?;
    let journal = match (&c.directory, c.files.as_slice()) {
        (Some(d), _) => format!("directory {}", d.display()),
        (None, []) => "the system journal".to_owned(),
        (None, files) => {
            let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
            format!("files {}", names.join(", "))
        }
    };
    writeln!(out, "  reads: {journal}")?;
    writeln!(
        out,
        "  entries: facilities auth (4) and authpriv (10), and programs {}",
        c.identifiers.join(", ")
    )
}

/// `bin` itself when it has a slash, else its first match on `PATH`.
fn find_on_path(bin: &Path) -> Option<PathBuf> {
    if bin.components().count() > 1 {
        return bin.is_file().then(|| bin.to_owned());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(bin))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn run_in(root: &Path, config: &str) -> (bool, String, String) {
        let path = root.join("agent.toml");
        fs::write(&path, config).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let opts = Options {
            config: path,
            root: root.to_owned(),
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let ok = run(&opts, &mut out, &mut err).unwrap();
        (
            ok,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn shows_default_choice_and_matching_files() {
        let root = tempfile::tempdir().unwrap();
        let log = root.path().join("var/log");
        fs::create_dir_all(&log).unwrap();
        fs::write(log.join("auth.log"), "0123456789").unwrap();
        fs::write(log.join("wtmp"), [0u8; 384]).unwrap();
        let (ok, out, err) = run_in(root.path(), "");
        assert!(ok, "{err}");
        assert!(out.contains("\n  /var/log/auth.log exists"), "{out}");
        assert!(
            out.contains("file: type file, read-from end, at most 256 files\n  /var/log/auth.log\n    /var/log/auth.log  10 bytes\n  /var/log/auth.log.1\n    no file matches yet"),
            "{out}"
        );
        assert!(out.contains("utmp: type utmp, read-from end\n  /var/log/wtmp\n    /var/log/wtmp  384 bytes\n  /var/log/btmp\n    no file matches yet"), "{out}");
    }

    #[test]
    fn shows_globs_and_the_max_files_bound() {
        let root = tempfile::tempdir().unwrap();
        for i in 0..3 {
            fs::write(root.path().join(format!("secure-{i}")), "x").unwrap();
        }
        let config = "[[source]]\ntype = \"file\"\nname = \"secure\"\npaths = [\"/secure-*\", \"/secure-1\"]\nmax-files = 2\n\n[[source]]\ntype = \"journald\"\njournalctl = \"/nonexistent/journalctl\"\n";
        let (ok, out, err) = run_in(root.path(), config);
        assert!(ok, "{err}");
        assert!(out.starts_with("Sources configured in"), "{out}");
        assert!(out.contains("  /secure-*\n    /secure-0  1 bytes\n    /secure-1  1 bytes\n    /secure-2  1 bytes\n"), "{out}");
        assert!(
            out.contains("    /secure-1  1 bytes  (also matched above)"),
            "{out}"
        );
        assert!(out.contains("3 files match, over max-files = 2"), "{out}");
        assert!(out.contains("journald: type journald, read-from end\n  journalctl: /nonexistent/journalctl (not found"), "{out}");
        assert!(out.contains("reads: the system journal"), "{out}");
    }

    #[test]
    fn listing_is_bounded() {
        let root = tempfile::tempdir().unwrap();
        let logs = root.path().join("logs");
        fs::create_dir(&logs).unwrap();
        for i in 0..MAX_LISTED + 5 {
            fs::write(logs.join(format!("{i:05}.log")), "").unwrap();
        }
        let config = "[[source]]\ntype = \"file\"\npaths = [\"/logs/*.log\"]\n";
        let (ok, out, err) = run_in(root.path(), config);
        assert!(ok, "{err}");
        assert_eq!(out.matches(" 0 bytes").count(), MAX_LISTED);
        assert!(out.contains("    ... and 5 more\n"), "{out}");
        assert!(
            out.contains("1005 files match, over max-files = 256"),
            "{out}"
        );
    }

    #[test]
    fn invalid_config_is_reported() {
        let root = tempfile::tempdir().unwrap();
        let (ok, out, err) = run_in(root.path(), "[[source]]\ntype = \"file\"\n");
        assert!(!ok);
        assert_eq!(out, "");
        assert!(err.contains("`paths` is empty"), "{err}");
    }

    #[test]
    fn json_lists_the_same_matches() {
        let root = tempfile::tempdir().unwrap();
        for i in 0..3 {
            fs::write(root.path().join(format!("secure-{i}")), "x").unwrap();
        }
        let path = root.path().join("agent.toml");
        fs::write(
            &path,
            "[[source]]\ntype = \"file\"\nname = \"secure\"\npaths = [\"/secure-*\"]\n",
        )
        .unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let opts = Options {
            config: path,
            root: root.path().to_owned(),
        };
        let mut out = Vec::new();
        assert!(run_json(&opts, &mut out).unwrap());
        let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let s = &doc["sources"][0];
        assert_eq!(s["name"], "secure");
        assert_eq!(s["matching-files"], 3);
        assert_eq!(s["patterns"][0]["files"][1]["path"], "/secure-1");
        assert_eq!(s["patterns"][0]["files"][1]["bytes"], 1);
    }
}
