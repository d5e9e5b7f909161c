//! Config texts for the sink tests (`tests/ship.rs`, `tests/otlp.rs`): the errors a text gets,
//! and the annotated example config (`targets/agent.toml`) with its commented sink sections.

use std::path::Path;

/// The example config's text.
pub(crate) fn text() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../targets/agent.toml"))
        .expect("targets/agent.toml")
}

/// The text before the example's own `[sink]`.
pub(crate) fn before_sink(text: &str) -> &str {
    &text[..text
        .find("[sink]")
        .expect("targets/agent.toml has a [sink]")]
}

/// The settings of the `## >>> {name} sink` ... `## <<< {name} sink` section, uncommented.
/// Like the file sink's example, such a section is all `##` (so uncommenting the `# ` settings
/// of the file keeps one [sink]); its settings are the `## key = ...` and `## [table]` lines.
pub(crate) fn sink_section(text: &str, name: &str) -> Vec<String> {
    let start = text
        .find(&format!("## >>> {name} sink"))
        .unwrap_or_else(|| panic!("targets/agent.toml has the {name} sink section"));
    let end = text
        .find(&format!("## <<< {name} sink"))
        .unwrap_or_else(|| panic!("the {name} sink section ends"));
    let is_setting = |l: &str| {
        l.starts_with('[')
            || l.split_once(" = ").is_some_and(|(k, _)| {
                !k.is_empty() && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
            })
    };
    text[start..end]
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .filter(|l| is_setting(l))
        .map(str::to_owned)
        .collect()
}

/// Every error `authtrail validate` finds in a config text, one a line.
pub(crate) fn errors(text: &str) -> String {
    agent::config::Config::check(text, Path::new("agent.toml"))
        .expect_err("the config has errors")
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}
