//! What the ECS and batch benchmarks share: the generated log they render.

/// `lines` of the generated RFC 3339 auth log from two hosts, as the ECS and batch benchmarks
/// render it.
pub(crate) fn two_host_log(lines: u64) -> Vec<u8> {
    let opts = loggen::Options {
        lines,
        seed: 1,
        format: loggen::Format::Rfc3339,
        hosts: vec!["web1".to_owned(), "db-2.example.net".to_owned()],
        ..loggen::Options::default()
    };
    let mut out = Vec::with_capacity(lines as usize * 120);
    loggen::generate(&mut out, &opts).expect("writing to a Vec cannot fail");
    out
}
