//! How both binaries end on an error: the exit codes they share, and an error's causes as
//! lines without repetition.
//!
//! Errors are built in layers (`anyhow` context over a `thiserror` enum over an `io::Error`), and
//! a layer often repeats its cause in its own message (`cannot read x: No such file or
//! directory (os error 2)` over the `io::Error` itself). [`cause_lines`] keeps each cause once:
//! one line per cause, outermost first, a cause already said by an outer line left out.
//!
//! | code | meaning                                                    |
//! |------|------------------------------------------------------------|
//! | 0    | success                                                    |
//! | 1    | runtime error (I/O, network, a store or agent not there)   |
//! | 2    | usage or configuration error (bad argument, config, filter) |

use alloc::string::{String, ToString as _};
use alloc::vec::Vec;
use core::fmt;

/// A runtime error: I/O, the network, a store or an agent that is not there.
pub(crate) const EXIT_RUNTIME: u8 = 1;
/// A usage or configuration error: a bad argument, config file or filter value.
pub const EXIT_USAGE: u8 = 2;

/// An error in how the program was called or configured: exits [`EXIT_USAGE`]. The message
/// says what is wrong and, when known, what to write instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl core::error::Error for UsageError {}

/// The exit code for `err`: [`EXIT_USAGE`] when any cause is a [`UsageError`] or `is_usage`
/// says so (a binary's own config error type), else [`EXIT_RUNTIME`].
pub fn exit_code(
    err: &(dyn core::error::Error + 'static),
    is_usage: impl Fn(&(dyn core::error::Error + 'static)) -> bool,
) -> u8 {
    let mut cause = Some(err);
    while let Some(c) = cause {
        if c.is::<UsageError>() || is_usage(c) {
            return EXIT_USAGE;
        }
        cause = c.source();
    }
    EXIT_RUNTIME
}

/// The messages of `err` and its sources, outermost first, each said once: a cause whose text
/// an outer line already holds is left out, and so is one that only adds a short code to such
/// a text (`Error code 14: unable to open database file`).
pub(crate) fn cause_lines(err: &(dyn core::error::Error + 'static)) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut cause = Some(err);
    while let Some(c) = cause {
        cause = c.source();
        let text = c.to_string();
        let text = text.trim();
        if text.is_empty() || lines.iter().any(|l| l.contains(text)) {
            continue;
        }
        let coded = text.split_once(": ").is_some_and(|(code, rest)| {
            code.len() <= 24 && !code.contains('/') && lines.iter().any(|l| l.contains(rest))
        });
        if !coded {
            lines.push(text.to_string());
        }
    }
    lines
}

/// The whole error report of `program`: `<program>: error: <first line>`, then one
/// `  caused by: <line>` per further cause ([`cause_lines`]).
pub fn render(program: &str, err: &(dyn core::error::Error + 'static)) -> String {
    let lines = cause_lines(err);
    let mut text = alloc::format!(
        "{program}: error: {}",
        lines.first().map_or("", String::as_str)
    );
    for line in lines.iter().skip(1) {
        text.push_str("\n  caused by: ");
        text.push_str(line);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[derive(Debug)]
    struct Layer(String, Option<Box<dyn core::error::Error + 'static>>);

    impl fmt::Display for Layer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(&self.0)
        }
    }

    impl core::error::Error for Layer {
        fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
            self.1.as_deref()
        }
    }

    #[test]
    fn a_cause_repeated_by_its_wrapper_is_said_once() {
        let io = io::Error::from(io::ErrorKind::NotFound);
        let outer = Layer(format!("cannot read nope.toml: {io}"), Some(Box::new(io)));
        assert_eq!(cause_lines(&outer), vec![outer.0.clone()]);

        let sqlite = Layer("Error code 14: unable to open database file".into(), None);
        let store = Layer(
            "store: unable to open database file: nope.db".into(),
            Some(Box::new(Layer(
                "unable to open database file: nope.db".into(),
                Some(Box::new(sqlite)),
            ))),
        );
        let top = Layer("opening the store nope.db".into(), Some(Box::new(store)));
        assert_eq!(
            cause_lines(&top),
            vec![
                "opening the store nope.db".to_string(),
                "store: unable to open database file: nope.db".to_string()
            ]
        );
        // A new cause keeps its line.
        let top = Layer(
            "writing x".into(),
            Some(Box::new(Layer("disk full".into(), None))),
        );
        assert_eq!(cause_lines(&top).len(), 2);
    }

    #[test]
    fn usage_errors_exit_2_anywhere_in_the_chain() {
        let usage = Layer(
            "loading".into(),
            Some(Box::new(UsageError("bad --since".into()))),
        );
        assert_eq!(exit_code(&usage, |_| false), EXIT_USAGE);
        let runtime = Layer("loading".into(), None);
        assert_eq!(exit_code(&runtime, |_| false), EXIT_RUNTIME);
        assert_eq!(
            exit_code(&runtime, |e| e.to_string() == "loading"),
            EXIT_USAGE
        );
    }
}
