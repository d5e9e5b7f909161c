//! authtrail's end-to-end tests. This library is empty on purpose: the tests are one
//! integration-test binary, `tests.rs`, with their helpers in `util.rs` (the ripgrep layout),
//! and the scripts they run under `e2e/`.
