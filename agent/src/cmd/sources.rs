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
pub const MAX_LISTED: usize = 1000;

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
    let (config, why) = match Config::load_effective(&opts.config, &opts.root) {
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

/// For each pattern, the files it matches now with their sizes.
fn list_matches(
    root: &Path,
    patterns: &[String],
    max_files: usize,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let mut seen = BTreeSet::new();
    let mut unlisted = 0usize;
    for pattern in patterns {
        writeln!(out, "  {pattern}")?;
        let rooted = format!(
            "{}/{}",
            glob::Pattern::escape(&root.to_string_lossy()).trim_end_matches('/'),
            pattern.trim_start_matches('/')
        );
        let paths = match glob::glob(&rooted) {
            Ok(paths) => paths,
            Err(e) => {
                writeln!(out, "    invalid glob: {e}")?;
                continue;
            }
        };
        let (mut listed, mut more) = (0usize, 0usize);
        for entry in paths {
            let path = match entry {
                Ok(p) => p,
                Err(e) => {
                    writeln!(
                        out,
                        "    cannot read {}: {}",
                        shown(root, e.path()),
                        e.error()
                    )?;
                    continue;
                }
            };
            if listed >= MAX_LISTED {
                more += 1;
                continue;
            }
            listed += 1;
            let shown = shown(root, &path);
            let note = if seen.insert(path.clone()) {
                ""
            } else {
                "  (also matched above)"
            };
            match fs::metadata(&path) {
                Ok(m) if m.is_file() => writeln!(out, "    {shown}  {} bytes{note}", m.len())?,
                Ok(_) => writeln!(out, "    {shown}  not a regular file: skipped")?,
                Err(e) => writeln!(out, "    {shown}  cannot stat: {e}")?,
            }
        }
        if listed == 0 {
            writeln!(
                out,
                "    no file matches yet (read from its beginning once it appears)"
            )?;
        }
        if more > 0 {
            writeln!(out, "    ... and {more} more")?;
        }
        unlisted += more;
    }
    // Files past MAX_LISTED are counted but not de-duplicated: "at least".
    let total = seen.len() + unlisted;
    if total > max_files {
        writeln!(
            out,
            "  {total} files match, over max-files = {max_files}: only {max_files} are followed"
        )?;
    }
    Ok(())
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
}
