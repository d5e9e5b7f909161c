//! From TOML text to a config value with every error located and said in words: the line and
//! column come from toml's spans, the key path from `serde_path_to_error`. Shared by the
//! agent's and the collector's config files.
//!
//! One pass reports every error in the file. serde stops at the first error, so after each
//! one the offending key is taken out of the (spanned) document and deserialization runs
//! again, until it succeeds or [`MAX_ERRORS`] are found. A table that serde reads by a `type`
//! tag ([`Tagged`]) whose `type` is missing or unknown is swapped for a neutral one (so later
//! tables keep their numbers); callers skip their semantic checks for what was stepped over.

use std::ops::Range;

use serde::de::DeserializeOwned;
pub use toml::Spanned;
pub use toml::de::DeTable;
use toml::de::DeValue;

/// Most errors reported for one file: a file of garbage is not listed line by line.
pub const MAX_ERRORS: usize = 50;

/// One step of a key's path in the file: a key in a table, or an element of an array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// A key of a table.
    Name(String),
    /// An element of an array (0-based).
    Index(usize),
}

impl From<&str> for Key {
    fn from(name: &str) -> Key {
        Key::Name(name.to_owned())
    }
}

impl From<usize> for Key {
    fn from(i: usize) -> Key {
        Key::Index(i)
    }
}

/// Where a value is in the file: `["source", 1, "paths"]`.
pub type KeyPath = Vec<Key>;

/// Builds a [`KeyPath`]: `key_path!["source", i, "paths"]`.
#[macro_export]
macro_rules! key_path {
    ($($k:expr),* $(,)?) => { vec![$($crate::Key::from($k)),*] };
}

/// Where in the file an error is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (characters).
    pub column: usize,
    /// The table (`[[source]] #2`, `[sink.tls]`); `None` at the top level.
    pub section: Option<String>,
}

/// One error of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// Where.
    pub at: Location,
    /// The key on the offending line (for an unknown value, the key it was given to).
    pub key: Option<String>,
    /// What is wrong.
    pub kind: Kind,
}

/// What is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Not TOML, a value of the wrong type, or a missing key: what was expected, in words.
    Syntax(String),
    /// A key, or a value of an enumerated key (like `type`), that does not exist.
    Unknown {
        /// True for an unknown value, false for an unknown key.
        is_value: bool,
        /// What was written.
        found: String,
        /// The closest accepted name, if one is close.
        suggestion: Option<String>,
        /// Every accepted name.
        expected: Vec<String>,
    },
}

/// How a config type reads its `type`-tagged tables (serde's internally tagged enums), which
/// serde buffers before reading their fields, so its key paths stop at the table.
pub trait Tagged {
    /// For the table at `key`, when it is a tagged one: the `type` of a neutral stand-in that
    /// always reads (used when its own `type` is missing or unknown).
    fn neutral(&self, key: &[Key]) -> Option<&'static str>;
    /// The error of the table at `key` (of type `tag`, without its `type` key) read as the
    /// variant's own struct: the path inside the table and the message. [`alone`] does it.
    fn variant_error(
        &self,
        key: &[Key],
        tag: &str,
        table: Spanned<DeTable<'_>>,
    ) -> Option<(KeyPath, String)>;
}

/// A config without tagged tables.
#[derive(Debug, Clone, Copy)]
pub struct Untagged;

impl Tagged for Untagged {
    fn neutral(&self, _key: &[Key]) -> Option<&'static str> {
        None
    }

    fn variant_error(
        &self,
        _key: &[Key],
        _tag: &str,
        _table: Spanned<DeTable<'_>>,
    ) -> Option<(KeyPath, String)> {
        None
    }
}

/// Reads `table` as `T`: its error's path and message, if any (for [`Tagged::variant_error`]).
pub fn alone<T: DeserializeOwned>(table: Spanned<DeTable<'_>>) -> Option<(KeyPath, String)> {
    let de = toml::de::Deserializer::from(table);
    serde_path_to_error::deserialize::<_, T>(de)
        .err()
        .map(|e| (key_path_of(e.path()), e.into_inner().message().to_owned()))
}

/// The parsed file: the value (when every error could be stepped over, it is the value
/// without the offending keys), the errors, and what is needed to locate later ones.
#[derive(Debug)]
pub struct Parsed<'t, T> {
    /// The value read.
    pub value: Option<T>,
    /// Every error, in the order found.
    pub errors: Vec<Error>,
    /// The keys taken out, and tables replaced by a neutral one, after their errors: the
    /// semantic checks should say nothing more about them.
    pub stepped_over: Vec<KeyPath>,
    doc: Option<Spanned<DeTable<'t>>>,
    text: &'t str,
}

impl<T> Parsed<'_, T> {
    /// Where `key` is in the file (its key, or the nearest table that exists).
    pub fn locate(&self, key: &[Key]) -> Location {
        let span = self.doc.as_ref().map_or(0..0, |d| span_of(d, key, false));
        location(self.text, span.start, key)
    }

    /// True when an error was reported for `key` or a table holding it.
    pub fn stepped_over(&self, key: &[Key]) -> bool {
        self.stepped_over.iter().any(|r| key.starts_with(r))
    }
}

/// Parses `text` as `T`, collecting every error with its location.
pub fn parse<'t, T: DeserializeOwned>(text: &'t str, tagged: &dyn Tagged) -> Parsed<'t, T> {
    let mut parsed = Parsed {
        value: None,
        errors: Vec::new(),
        stepped_over: Vec::new(),
        doc: None,
        text,
    };
    let mut doc = match DeTable::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            // Not TOML at all: toml's own span and message.
            let offset = e.span().map_or(0, |s| s.start);
            let (line, column) = line_col(text, offset);
            parsed.errors.push(Error {
                at: Location {
                    line,
                    column,
                    section: section_at(text, offset),
                },
                key: key_at(text, offset),
                kind: Kind::Syntax(e.message().trim_end().to_owned()),
            });
            return parsed;
        }
    };
    let original = doc.clone();
    while parsed.errors.len() < MAX_ERRORS {
        let de = toml::de::Deserializer::from(doc.clone());
        let err = match serde_path_to_error::deserialize::<_, T>(de) {
            Ok(value) => {
                parsed.value = Some(value);
                break;
            }
            Err(e) => e,
        };
        let mut key = key_path_of(err.path());
        let message = err.into_inner().message().trim_end().to_owned();
        let (error, remove) = describe(&doc, text, tagged, &mut key, &message);
        parsed.errors.push(error);
        parsed.stepped_over.push(key.clone());
        let done = match remove {
            Remove::Key => remove_key(doc.get_mut(), &key),
            Remove::Table(tag) => {
                if key.last() == Some(&Key::from("type")) {
                    parsed.stepped_over.push(key[..key.len() - 1].to_vec());
                }
                replace_table(doc.get_mut(), &key, tag)
            }
        };
        if !done {
            break;
        }
    }
    parsed.doc = Some(original);
    parsed
}

/// What to take out of the document after an error.
enum Remove {
    /// The key the error is about.
    Key,
    /// The whole table, replaced by one of this `type`.
    Table(&'static str),
}

/// The error for serde's `message` at `key` (made precise for tagged tables), and what to
/// remove to step over it.
fn describe(
    doc: &Spanned<DeTable<'_>>,
    text: &str,
    tagged: &dyn Tagged,
    key: &mut KeyPath,
    message: &str,
) -> (Error, Remove) {
    let mut message = message.to_owned();
    let mut remove = Remove::Key;
    // An unknown `type`: serde's path already ends at the tag.
    if let Some((Key::Name(last), table)) = key.split_last()
        && last == "type"
        && let Some(neutral) = tagged.neutral(table)
    {
        remove = Remove::Table(neutral);
    }
    if let Some(neutral) = tagged.neutral(key) {
        // serde buffers a `type`-tagged table before it reads its fields, so the path stops at
        // the table: read the variant's own struct on its own to find the key.
        match table_at(doc, key).map(|t| variant_error(tagged, &t, key)) {
            Some(Some((sub, m))) => {
                key.extend(sub);
                message = m;
            }
            _ if message.starts_with("missing field `type`")
                || message.starts_with("unknown variant") =>
            {
                if message.starts_with("unknown variant") {
                    key.push(Key::from("type"));
                }
                remove = Remove::Table(neutral);
            }
            _ => {}
        }
    }
    if let Some((false, found, _)) = parse_unknown(&message)
        && key.last() != Some(&Key::Name(found.clone()))
    {
        key.push(Key::Name(found));
    }
    // A bad element of a list: the list is the key.
    while matches!(key.last(), Some(Key::Index(_))) && tagged.neutral(key).is_none() {
        key.pop();
    }
    let unknown = parse_unknown(&message);
    let value_span = !matches!(unknown, Some((false, _, _)));
    let span = span_of(doc, key, value_span);
    let at = location(text, span.start, key);
    let error = match unknown {
        Some((is_value, found, expected)) => Error {
            at,
            key: if is_value { last_name(key) } else { None },
            kind: Kind::Unknown {
                is_value,
                suggestion: closest(&found, &expected),
                found,
                expected,
            },
        },
        None => Error {
            at,
            key: last_name(key).filter(|_| !message.starts_with("missing field")),
            kind: Kind::Syntax(in_words(&message)),
        },
    };
    (error, remove)
}

/// The error of a tagged table's variant read alone: (path inside the table, message).
fn variant_error(
    tagged: &dyn Tagged,
    table: &Spanned<DeTable<'_>>,
    key: &[Key],
) -> Option<(KeyPath, String)> {
    let tag = table
        .get_ref()
        .iter()
        .find(|(k, _)| k.get_ref() == "type")
        .and_then(|(_, v)| v.get_ref().as_str().map(str::to_owned))?;
    let mut rest = table.clone();
    drop_key(rest.get_mut(), "type");
    tagged.variant_error(key, &tag, rest)
}

fn key_path_of(path: &serde_path_to_error::Path) -> KeyPath {
    use serde_path_to_error::Segment;
    path.iter()
        .filter_map(|s| match s {
            Segment::Seq { index } => Some(Key::Index(*index)),
            Segment::Map { key } => Some(Key::Name(key.clone())),
            Segment::Enum { .. } | Segment::Unknown => None,
        })
        .collect()
}

fn last_name(key: &[Key]) -> Option<String> {
    key.iter().rev().find_map(|k| match k {
        Key::Name(n) => Some(n.clone()),
        Key::Index(_) => None,
    })
}

/// A copy of the table at `key`, with its span.
fn table_at<'t>(doc: &Spanned<DeTable<'t>>, key: &[Key]) -> Option<Spanned<DeTable<'t>>> {
    let (_, value) = walk(doc, key).into_iter().last()?;
    let value = value?;
    match value.get_ref() {
        DeValue::Table(t) => Some(Spanned::new(value.span(), t.clone())),
        _ => None,
    }
}

/// Each step of `key` that exists in `doc`: (the span of the step's key, or of the element for
/// an index; the value there).
fn walk<'d, 't>(
    doc: &'d Spanned<DeTable<'t>>,
    key: &[Key],
) -> Vec<(Range<usize>, Option<&'d Spanned<DeValue<'t>>>)> {
    let mut steps = Vec::new();
    let mut value: Option<&'d Spanned<DeValue<'t>>> = None;
    for k in key {
        let table = match value.map(Spanned::get_ref) {
            None => Some(doc.get_ref()),
            Some(DeValue::Table(t)) => Some(t),
            _ => None,
        };
        let found = match (k, table, value.map(Spanned::get_ref)) {
            (Key::Name(n), Some(t), _) => t
                .iter()
                .find(|(kk, _)| kk.get_ref() == n)
                .map(|(kk, v)| (kk.span(), v)),
            (Key::Index(i), _, Some(DeValue::Array(a))) => a.get(*i).map(|v| (v.span(), v)),
            _ => None,
        };
        let Some((span, v)) = found else { break };
        steps.push((span, Some(v)));
        value = Some(v);
    }
    steps
}

/// The span of `key` (of its value with `value`), or of the nearest enclosing key that exists.
fn span_of(doc: &Spanned<DeTable<'_>>, key: &[Key], value: bool) -> Range<usize> {
    let steps = walk(doc, key);
    match steps.last() {
        Some((_, Some(v))) if value && steps.len() == key.len() => v.span(),
        Some((span, _)) => span.clone(),
        None => 0..0,
    }
}

/// Takes `key` out of the document; false when it is not there (nothing more can be done).
fn remove_key(doc: &mut DeTable<'_>, key: &[Key]) -> bool {
    let Some((last, parents)) = key.split_last() else {
        return false;
    };
    let Some(table) = table_mut(doc, parents) else {
        return false;
    };
    match last {
        Key::Name(n) => drop_key(table, n),
        Key::Index(_) => false,
    }
}

/// Takes key `name` out of `table`; false when it is not there.
fn drop_key(table: &mut DeTable<'_>, name: &str) -> bool {
    let before = table.len();
    let old = std::mem::replace(table, DeTable::new());
    for (k, v) in old {
        if k.get_ref() != name {
            table.insert(k, v);
        }
    }
    table.len() < before
}

/// Swaps the table at `key` for `{ type = tag }`.
fn replace_table(doc: &mut DeTable<'_>, key: &[Key], tag: &'static str) -> bool {
    let key = match key.split_last() {
        Some((Key::Name(n), rest)) if n == "type" => rest,
        _ => key,
    };
    let slot = match key.split_last() {
        Some((Key::Index(i), parents)) => table_mut_array(doc, parents).and_then(|a| a.get_mut(*i)),
        Some((Key::Name(n), parents)) => table_mut(doc, parents)
            .and_then(|t| t.iter_mut().find(|(k, _)| k.get_ref() == n).map(|(_, v)| v)),
        None => None,
    };
    let Some(slot) = slot else { return false };
    let span = slot.span();
    let mut neutral = DeTable::new();
    neutral.insert(
        Spanned::new(span.clone(), "type".into()),
        Spanned::new(span, DeValue::String(tag.into())),
    );
    *slot = Spanned::new(slot.span(), DeValue::Table(neutral));
    true
}

fn table_mut<'d, 't>(doc: &'d mut DeTable<'t>, key: &[Key]) -> Option<&'d mut DeTable<'t>> {
    let Some((last, parents)) = key.split_last() else {
        return Some(doc);
    };
    let value = match last {
        Key::Name(n) => {
            table_mut(doc, parents)?
                .iter_mut()
                .find(|(kk, _)| kk.get_ref() == n)?
                .1
        }
        Key::Index(i) => table_mut_array(doc, parents)?.get_mut(*i)?,
    };
    match value.get_mut() {
        DeValue::Table(t) => Some(t),
        _ => None,
    }
}

fn table_mut_array<'d, 't>(
    doc: &'d mut DeTable<'t>,
    key: &[Key],
) -> Option<&'d mut toml::de::DeArray<'t>> {
    let (last, parents) = key.split_last()?;
    let Key::Name(n) = last else { return None };
    let table = table_mut(doc, parents)?;
    match table
        .iter_mut()
        .find(|(kk, _)| kk.get_ref() == n)?
        .1
        .get_mut()
    {
        DeValue::Array(a) => Some(a),
        _ => None,
    }
}

/// The location of byte `offset`, named by the table of `key`.
fn location(text: &str, offset: usize, key: &[Key]) -> Location {
    let (line, column) = line_col(text, offset);
    Location {
        line,
        column,
        section: section_of(key),
    }
}

/// The table holding `key`, as an operator writes it: `[[source]] #2`, `[sink.tls]`; `None` at
/// the top level.
pub(crate) fn section_of(key: &[Key]) -> Option<String> {
    // The table is everything before the last key name (all of it when it ends at an element
    // of an array of tables).
    let table = match key.last()? {
        Key::Index(_) => key,
        Key::Name(_) => &key[..key.len() - 1],
    };
    if table.is_empty() {
        return None;
    }
    let mut names = Vec::new();
    let mut index = None;
    for k in table {
        match k {
            Key::Name(n) => names.push(n.as_str()),
            Key::Index(i) => index = Some(*i),
        }
    }
    Some(match index {
        Some(i) => format!("[[{}]] #{}", names.join("."), i + 1),
        None => format!("[{}]", names.join(".")),
    })
}

/// serde's "unknown field `x`, expected one of `a`, `b`" (or "unknown variant ..."):
/// (is a variant, `x`, [`a`, `b`]).
fn parse_unknown(message: &str) -> Option<(bool, String, Vec<String>)> {
    let (is_value, rest) = if let Some(r) = message.strip_prefix("unknown field `") {
        (false, r)
    } else if let Some(r) = message.strip_prefix("unknown variant `") {
        (true, r)
    } else {
        return None;
    };
    let (found, rest) = rest.split_once('`')?;
    let expected = rest
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    Some((is_value, found.to_owned(), expected))
}

/// The accepted name closest to `found`, if it is close enough to be a typo.
pub fn closest(found: &str, expected: &[String]) -> Option<String> {
    // `read_from` for `read-from`: the commonest slip in a kebab-case file.
    let kebab = found.replace('_', "-");
    if let Some(e) = expected.iter().find(|e| **e == kebab) {
        return Some(e.clone());
    }
    let limit = (found.chars().count() / 3).max(1);
    expected
        .iter()
        .map(|e| (strsim::damerau_levenshtein(&kebab, e), e))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, e)| e.clone())
}

/// 1-based line and column (in characters) of byte `offset`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// The key set on a line (`key = value`), unquoted.
pub fn line_key(line: &str) -> Option<&str> {
    let line = line.trim_start();
    if line.starts_with('#') || line.starts_with('[') {
        return None;
    }
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches(|c| c == '"' || c == '\'');
    (!key.is_empty()).then_some(key)
}

/// For text that is not TOML (no document to walk): the key on the line holding `offset`.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let start = text[..offset.min(text.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    text[start..]
        .lines()
        .next()
        .and_then(line_key)
        .map(str::to_owned)
}

/// For text that is not TOML: the last table header before `offset`.
fn section_at(text: &str, offset: usize) -> Option<String> {
    let mut section = None;
    let mut counts: Vec<(String, usize)> = Vec::new();
    let before = &text[..offset.min(text.len())];
    for line in before.lines() {
        let t = line.trim();
        if let Some(inner) = t.strip_prefix("[[") {
            // Up to the first `]`: `[[source]` (one missing) is still `source`.
            let name = inner.split(']').next().unwrap_or(inner).trim().to_owned();
            let n = match counts.iter_mut().find(|(k, _)| *k == name) {
                Some((_, n)) => {
                    *n += 1;
                    *n
                }
                None => {
                    counts.push((name.clone(), 1));
                    1
                }
            };
            section = Some(format!("[[{name}]] #{n}"));
        } else if let Some(inner) = t.strip_prefix('[') {
            section = Some(format!(
                "[{}]",
                inner.split(']').next().unwrap_or(inner).trim()
            ));
        }
    }
    section
}

/// serde's type expectations (`expected u32`, `expected a boolean`...) said in the words of the
/// config file.
pub(crate) fn in_words(message: &str) -> String {
    const WORDS: &[(&str, &str)] = &[
        ("expected u8", "expected a whole number"),
        ("expected u16", "expected a whole number"),
        ("expected u32", "expected a whole number"),
        ("expected u64", "expected a whole number"),
        ("expected usize", "expected a whole number"),
        ("expected i32", "expected a whole number"),
        ("expected i64", "expected a whole number"),
        ("expected a boolean", "expected `true` or `false`"),
        ("expected a string", "expected text in quotes"),
        ("expected a sequence", "expected a list like [\"a\", \"b\"]"),
        ("expected path string", "expected a path in quotes"),
        (
            "expected socket address",
            "expected an address and port in quotes like \"127.0.0.1:8443\"",
        ),
        (
            "expected a duration",
            "expected a duration in quotes like \"30s\", \"5m\" or \"1h\"",
        ),
    ];
    let mut text = message.trim_end().to_owned();
    for (from, to) in WORDS {
        if let Some(at) = text.find(from) {
            let end = at + from.len();
            // Whole words only (`expected u32` but not `expected u3200`).
            if !text[end..].starts_with(|c: char| c.is_ascii_alphanumeric()) {
                text.replace_range(at..end, to);
            }
        }
    }
    text.replace("invalid type: ", "found ")
        .replace("invalid value: ", "found ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_errors_are_said_in_words() {
        assert_eq!(
            in_words("invalid type: string \"many\", expected usize"),
            "found string \"many\", expected a whole number"
        );
        assert_eq!(
            in_words("invalid type: integer `1`, expected a boolean\n"),
            "found integer `1`, expected `true` or `false`"
        );
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "kebab-case")]
    #[expect(dead_code, reason = "only read")]
    struct Small {
        #[serde(default)]
        count: u32,
        #[serde(default)]
        names: Vec<String>,
        #[serde(default)]
        table: Inner,
    }

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "kebab-case")]
    #[expect(dead_code, reason = "only read")]
    struct Inner {
        #[serde(default)]
        on: bool,
    }

    #[test]
    fn errors_reported_are_bounded() {
        let text: String = (0..MAX_ERRORS + 10)
            .map(|i| format!("typo-{i} = 1\n"))
            .collect();
        let parsed = parse::<Small>(&text, &Untagged);
        assert_eq!(parsed.errors.len(), MAX_ERRORS);
        assert!(parsed.value.is_none());
    }

    #[test]
    fn every_error_is_reported_with_its_line() {
        let text = "count = \"many\"\nnames = [1]\nnamez = []\n[table]\non = 1\n";
        let parsed = parse::<Small>(text, &Untagged);
        let mut found: Vec<(usize, Option<&str>)> = parsed
            .errors
            .iter()
            .map(|e| (e.at.line, e.key.as_deref()))
            .collect();
        found.sort_unstable();
        assert_eq!(
            found,
            [
                (1, Some("count")),
                (2, Some("names")),
                (3, None),
                (5, Some("on"))
            ],
            "{:#?}",
            parsed.errors
        );
        assert!(parsed.value.is_some(), "every error could be stepped over");
        let unknown = parsed.errors.iter().find(|e| e.at.line == 3).unwrap();
        assert!(
            matches!(&unknown.kind, Kind::Unknown { suggestion: Some(s), .. } if s == "names"),
            "{unknown:?}"
        );
        assert_eq!(
            parsed
                .errors
                .iter()
                .find(|e| e.at.line == 5)
                .unwrap()
                .at
                .section
                .as_deref(),
            Some("[table]")
        );
    }

    #[test]
    fn sections_are_named_as_written() {
        assert_eq!(
            section_of(&[Key::from("source"), Key::from(1), Key::from("paths")]).as_deref(),
            Some("[[source]] #2")
        );
        assert_eq!(
            section_of(&[Key::from("sink"), Key::from("tls"), Key::from("ca-file")]).as_deref(),
            Some("[sink.tls]")
        );
        assert_eq!(section_of(&[Key::from("timezone")]), None);
    }

    /// `[[source]` (one `]` missing) was named `[[source]]] #1` in its own error.
    #[test]
    fn an_unclosed_array_header_is_named_once() {
        let text = "state-dir = \"/x\"\n[[source]\ntype = \"file\"\n";
        assert_eq!(
            section_at(text, text.len()).as_deref(),
            Some("[[source]] #1")
        );
    }
}
