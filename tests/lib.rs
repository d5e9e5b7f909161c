//! Helpers for the end-to-end tests live in `util.rs`; the tests in `tests.rs`.
