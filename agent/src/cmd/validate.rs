//! `authtrail validate [--config PATH]`: check the config file and print the configuration the
//! agent would run with (defaults filled in, default sources chosen), or every problem found.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::config::{Config, ConfigError};

/// Options of `authtrail validate`.
#[derive(Debug, Clone)]
pub struct Options {
    /// The config file.
    pub config: PathBuf,
    /// The file system root that default sources are chosen for (`/`; a temporary directory in
    /// tests).
    pub root: PathBuf,
}

/// Writes each error on `err`, one per line, and a closing line naming the file.
pub(crate) fn report_errors(
    path: &Path,
    errors: &[ConfigError],
    err: &mut dyn Write,
) -> std::io::Result<()> {
    for e in errors {
        writeln!(err, "error: {e}")?;
    }
    let n = errors.len();
    writeln!(
        err,
        "authtrail: {}: {n} {} in the configuration",
        path.display(),
        if n == 1 { "error" } else { "errors" }
    )
}

/// Runs the command. `Ok(true)`: the config is valid and was printed on `out`; `Ok(false)`: it
/// is not, and the errors went to `err` (exit with [`agent_core::exit::EXIT_USAGE`]).
pub fn run(opts: &Options, out: &mut dyn Write, err: &mut dyn Write) -> anyhow::Result<bool> {
    let (mut config, why) = match Config::load_effective(&opts.config, &opts.root) {
        Ok(v) => v,
        Err(errors) => {
            report_errors(&opts.config, &errors, err)?;
            return Ok(false);
        }
    };
    // Show the resolved names: they key checkpoints and `authtrail status`.
    config.sources = config.named_sources().into_iter().map(|(_, s)| s).collect();
    let text = config
        .to_toml()
        .context("cannot print the configuration as TOML")?;
    writeln!(
        out,
        "# Effective configuration from {} (defaults filled in).",
        opts.config.display()
    )?;
    if let Some(why) = why {
        writeln!(out, "# No [[source]] is configured; chosen for this host:")?;
        for line in why.lines() {
            writeln!(out, "#   {line}")?;
        }
    }
    writeln!(out)?;
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(true)
}

/// `validate --json`: one JSON document on `out`, `{"valid": true, "config": {...}}` with the
/// effective configuration (and `default-sources`, why the sources were chosen, when none is
/// configured), or `{"valid": false, "errors": ["..."]}`. Returns whether the config is valid.
pub fn run_json(opts: &Options, out: &mut dyn Write) -> anyhow::Result<bool> {
    let doc = match Config::load_effective(&opts.config, &opts.root) {
        Ok((mut config, why)) => {
            config.sources = config.named_sources().into_iter().map(|(_, s)| s).collect();
            let mut doc = serde_json::json!({
                "valid": true,
                "file": opts.config.display().to_string(),
                "config": serde_json::to_value(&config).context("rendering the configuration")?,
            });
            if let Some(why) = why {
                doc["default-sources"] = why.into();
            }
            doc
        }
        Err(errors) => serde_json::json!({
            "valid": false,
            "file": opts.config.display().to_string(),
            "errors": errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
        }),
    };
    let valid = doc["valid"] == true;
    writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
    Ok(valid)
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn run_on(text: &str, root: &Path) -> (bool, String, String) {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("agent.toml");
        fs::write(&config, text).unwrap();
        fs::set_permissions(&config, fs::Permissions::from_mode(0o640)).unwrap();
        let opts = Options {
            config,
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
    fn prints_effective_config_with_default_sources() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("var/log")).unwrap();
        fs::write(root.path().join("var/log/auth.log"), "").unwrap();
        let (ok, out, err) = run_on("timezone = \"UTC\"\n", root.path());
        assert!(ok, "{err}");
        assert_eq!(err, "");
        assert!(out.contains("#   /var/log/auth.log exists"), "{out}");
        assert!(out.contains("timezone = \"UTC\""), "{out}");
        assert!(out.contains("max-line-bytes = 65536"), "{out}");
        assert!(
            out.contains("[[source]]\ntype = \"file\"\nname = \"file\""),
            "{out}"
        );
        // What it prints is itself a valid config, equal to the effective one.
        let printed = Config::from_toml(&out, Path::new("out")).unwrap();
        printed.validate().unwrap();
        assert_eq!(printed.sources.len(), 1);
    }

    #[test]
    fn prints_every_error_and_fails() {
        let root = tempfile::tempdir().unwrap();
        let (ok, out, err) = run_on("max-line-bytes = 0\ntimezone = \"Mars\"\n", root.path());
        assert!(!ok);
        assert_eq!(out, "");
        assert_eq!(
            err.lines().filter(|l| l.starts_with("error: ")).count(),
            2,
            "{err}"
        );
        assert!(err.ends_with("2 errors in the configuration\n"), "{err}");

        let (ok, _, err) = run_on("[[source]]\ntype = \"file\"\npathz = []\n", root.path());
        assert!(!ok);
        assert!(
            err.contains(":3:1: unknown field `pathz` in [[source]] #1: did you mean `paths`?"),
            "{err}"
        );
    }

    #[test]
    fn json_says_valid_with_the_config_or_lists_the_errors() {
        let root = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("agent.toml");
        let check = |text: &str| {
            fs::write(&config, text).unwrap();
            fs::set_permissions(&config, fs::Permissions::from_mode(0o640)).unwrap();
            let opts = Options {
                config: config.clone(),
                root: root.path().to_owned(),
            };
            let mut out = Vec::new();
            let ok = run_json(&opts, &mut out).unwrap();
            (
                ok,
                serde_json::from_slice::<serde_json::Value>(&out).unwrap(),
            )
        };
        let (ok, doc) = check("timezone = \"UTC\"\n");
        assert!(ok);
        assert_eq!(doc["valid"], true);
        assert_eq!(doc["config"]["timezone"], "UTC");
        let (ok, doc) = check("bogus = 1\n");
        assert!(!ok);
        assert_eq!(doc["valid"], false);
        assert!(
            doc["errors"][0].as_str().unwrap().contains("bogus"),
            "{doc}"
        );
    }
}
