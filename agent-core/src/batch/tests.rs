use super::*;
use crate::ecs::{self, Envelope};
use crate::syslog::Context;
use crate::{Parsed, Text, parse_line};
use alloc::string::String;
use proptest::prelude::*;

/// Real lines: every fixture captured from real programs, and a generated backlog.
fn real_lines(seed: u64, generated: u64) -> Vec<Vec<u8>> {
    let mut lines = Vec::new();
    let testdata = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata");
    let mut dirs = vec![std::path::PathBuf::from(testdata)];
    while let Some(dir) = dirs.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "log") {
                let data = std::fs::read(&path).unwrap();
                lines.extend(data.split(|&b| b == b'\n').map(<[u8]>::to_vec));
            }
        }
    }
    for format in [loggen::Format::Rfc3164, loggen::Format::Rfc3339] {
        let mut data = Vec::new();
        let opts = loggen::Options {
            lines: generated,
            seed,
            format,
            ..loggen::Options::default()
        };
        loggen::generate(&mut data, &opts).unwrap();
        lines.extend(data.split(|&b| b == b'\n').map(<[u8]>::to_vec));
    }
    lines
}

/// What the agent's renderer writes for `lines` (parse, conform, envelope, ECS), as NDJSON.
fn render_like_the_agent(lines: &[Vec<u8>], message: bool, first_seq: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut json = String::new();
    for (ev, env) in agent_events(lines, message, first_seq) {
        json.clear();
        ecs::write_event(&mut json, &ev, &env).unwrap();
        out.extend_from_slice(json.as_bytes());
        out.push(b'\n');
    }
    out
}

fn round_trip(ndjson: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    encode(ndjson, &mut body).unwrap();
    let mut back = Vec::new();
    let n = decode(&body, ndjson.len(), &mut back).unwrap();
    assert_eq!(n, ndjson.iter().filter(|&&b| b == b'\n').count());
    back
}

#[test]
fn the_agents_events_from_real_lines_come_back_byte_for_byte() {
    let lines = real_lines(1, 20_000);
    for message in [true, false] {
        let ndjson = render_like_the_agent(&lines, message, 1);
        assert!(ndjson.len() > 1_000_000, "enough events to matter");
        let back = round_trip(&ndjson);
        assert!(back == ndjson, "message {message}: rendering differs");
    }
}

#[test]
fn any_json_document_comes_back_byte_for_byte() {
    let docs: &[&str] = &[
        r#"{"@timestamp":"2026-12-05T04:31:58Z","event":{"kind":"state","dataset":"authtrail.heartbeat"},"agent":{"id":"a","version":"0.1.0"},"host":{"hostname":"h","os":{"kernel":"6.1"},"boot":{"time":"1970-01-01T00:00:00Z"}}}"#,
        r#"{"a":[1,-2,3.5,1e9,true,false,null,"",{"b":[]}],"message":"x \"q\" \\ \u00e9 1.5","n":18446744073709551615,"m":18446744073709551616}"#,
        r#" { "spaced" : [ 0 , 00 , -0 ] , "message" : "" } "#,
        r#"{"message":"first","inner":{"message":"not the top-level one"},"message":"second"}"#,
        r#"{"@timestamp":"2026-11-28T00:00:02.451625Z","x":"2026-11-28T00:00:02.451625Z","message":"2026-11-28T00:00:02.451625+00:00 web1 sshd[1]: x"}"#,
        r#"{"t":"1969-12-31T23:59:59.999999999Z","u":"2262-04-11T23:47:16Z","v":"2026-02-30T00:00:00Z","w":"2026-01-01T00:00:00.100Z"}"#,
        r#"[]"#,
        r#""just a string""#,
        r#"42"#,
    ];
    let mut ndjson = Vec::new();
    for d in docs {
        ndjson.extend_from_slice(d.as_bytes());
        ndjson.push(b'\n');
    }
    assert_eq!(round_trip(&ndjson), ndjson);
    assert_eq!(round_trip(b""), b"");
}

#[test]
fn what_is_not_one_json_document_a_line_is_refused_by_the_encoder() {
    let mut out = Vec::new();
    for bad in [
        &b"{\"a\":1}\n{\"b\":\n"[..],
        b"{\"a\":1}",
        b"{\"a\":\"\x01\"}\n",
        b"{\"a\":1]\n",
        b"\n",
        b"{\"a\":tru}\n",
    ] {
        assert!(
            encode(bad, &mut out).is_err(),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1) + "\n";
    assert_eq!(
        encode(deep.as_bytes(), &mut out),
        Err(EncodeError::NotJson { line: 0 })
    );
    let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH) + "\n";
    let mut body = Vec::new();
    encode(ok.as_bytes(), &mut body).unwrap();
}

fn sample_body() -> (Vec<u8>, Vec<u8>) {
    let lines = real_lines(3, 500);
    let ndjson = render_like_the_agent(&lines, true, 7);
    let mut body = Vec::new();
    encode(&ndjson, &mut body).unwrap();
    (ndjson, body)
}

#[test]
fn a_second_spelling_of_the_same_batch_is_refused() {
    let (_, body) = sample_body();
    let mut out = Vec::new();
    decode(&body, usize::MAX, &mut out).unwrap();
    // The event count as a two-byte varint: same value, another spelling.
    let mut long = body[..4].to_vec();
    let mut r = Reader { buf: &body, pos: 4 };
    let n = r.varint().unwrap();
    long.extend_from_slice(&[(n as u8 & 0x7f) | 0x80, (n >> 7) as u8 | 0x80, 0]);
    long.extend_from_slice(&body[r.pos..]);
    assert!(matches!(
        decode(&long, usize::MAX, &mut Vec::new()),
        Err(DecodeError::BadVarint { .. })
    ));
    // An unused string appended to the table renders the same documents.
    let mut r = Reader { buf: &body, pos: 4 };
    r.varint().unwrap();
    r.varint().unwrap();
    let strings_at = r.pos;
    let n_strings = r.varint().unwrap();
    let mut extra = body[..strings_at].to_vec();
    put_varint(&mut extra, n_strings + 1);
    extra.extend_from_slice(&body[r.pos..]);
    let tail_at = {
        let mut r = Reader {
            buf: &body,
            pos: r.pos,
        };
        for _ in 0..n_strings {
            r.block(MAX_STRING_BYTES, "").unwrap();
        }
        r.pos
    };
    let mut spliced = body[..strings_at].to_vec();
    put_varint(&mut spliced, n_strings + 1);
    spliced.extend_from_slice(
        &body[Reader {
            buf: &body,
            pos: strings_at,
        }
        .pos + 1..tail_at],
    );
    spliced.extend_from_slice(&[3, b'z', b'z', b'z']);
    spliced.extend_from_slice(&body[tail_at..]);
    let mut out = Vec::new();
    let rendered = render(&spliced, usize::MAX, &mut out, Check::RenderOnly);
    assert!(rendered.is_ok(), "the spliced body still renders");
    assert_eq!(
        decode(&spliced, usize::MAX, &mut Vec::new()),
        Err(DecodeError::NotCanonical)
    );
    // Trailing bytes.
    let mut trailing = body.clone();
    trailing.push(0);
    assert_eq!(
        decode(&trailing, usize::MAX, &mut Vec::new()),
        Err(DecodeError::TrailingBytes)
    );
}

#[test]
fn hostile_counts_are_errors_not_allocations() {
    let mut b = MAGIC.to_vec();
    b.push(VERSION);
    put_varint(&mut b, MAX_EVENTS as u64 + 1);
    assert_eq!(
        decode(&b, usize::MAX, &mut Vec::new()),
        Err(DecodeError::TooLarge { what: "MAX_EVENTS" })
    );
    let mut b = MAGIC.to_vec();
    b.push(VERSION);
    put_varint(&mut b, 1);
    put_varint(&mut b, 10);
    put_varint(&mut b, u64::MAX);
    assert_eq!(
        decode(&b, usize::MAX, &mut Vec::new()),
        Err(DecodeError::TooLarge {
            what: "MAX_STRINGS"
        })
    );
    // A million strings announced, none there: truncated, after reading what is there.
    let mut b = MAGIC.to_vec();
    b.push(VERSION);
    put_varint(&mut b, 1);
    put_varint(&mut b, 10);
    put_varint(&mut b, MAX_STRINGS as u64);
    assert!(matches!(
        decode(&b, usize::MAX, &mut Vec::new()),
        Err(DecodeError::Truncated { .. })
    ));
    assert_eq!(
        decode(b"ATB\x02", usize::MAX, &mut Vec::new()),
        Err(DecodeError::Version(2))
    );
    assert_eq!(
        decode(b"{\"a\":1}\n", usize::MAX, &mut Vec::new()),
        Err(DecodeError::NotCompact)
    );
}

#[test]
fn the_rendering_stops_at_max_output() {
    let (ndjson, body) = sample_body();
    let mut out = Vec::new();
    assert_eq!(
        decode(&body, ndjson.len() - 1, &mut out),
        Err(DecodeError::OutputTooLarge)
    );
    assert!(out.len() < ndjson.len());
    let mut out = Vec::new();
    decode(&body, ndjson.len(), &mut out).unwrap();
    assert_eq!(out, ndjson);
}

#[test]
fn many_events_repeating_one_long_string_stop_at_max_output() {
    // A small body whose documents each reference one long table entry: rendering is bounded
    // by max_output, not by the body's size.
    let long = "x".repeat(60_000);
    let mut ndjson = Vec::new();
    for _ in 0..200 {
        ndjson.extend_from_slice(format!("{{\"a\":\"{long}\"}}\n").as_bytes());
    }
    let mut body = Vec::new();
    encode(&ndjson, &mut body).unwrap();
    assert!(body.len() < 61_000 + 1_000, "one copy of the string");
    assert_eq!(
        decode(&body, 1 << 20, &mut Vec::new()),
        Err(DecodeError::OutputTooLarge)
    );
    assert_eq!(rendered_len(&body), Ok(ndjson.len()));
}

#[test]
fn compact_body_of_the_benchmark_log_is_within_a_quarter_of_the_raw_lines() {
    // The benchmark's log (`cargo xtask bench`: RFC 3339, seed 1) in the agent's batches of
    // 5,000 events, against the whole log compressed at the same level. The bench measures
    // the shipped bytes the same way; this keeps the format from drifting past the target.
    let mut raw = Vec::new();
    let opts = loggen::Options {
        lines: 100_000,
        seed: 1,
        format: loggen::Format::Rfc3339,
        ..loggen::Options::default()
    };
    loggen::generate(&mut raw, &opts).unwrap();
    let lines: Vec<Vec<u8>> = raw.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    let ndjson = render_like_the_agent(&lines, true, 1);
    let docs: Vec<&[u8]> = ndjson
        .strip_suffix(b"\n")
        .unwrap()
        .split(|&b| b == b'\n')
        .collect();
    let (mut compact, mut nd) = (0, 0);
    for batch in docs.chunks(5000) {
        let mut enc = BatchEncoder::new();
        let mut text = Vec::new();
        for d in batch {
            enc.push(d).unwrap();
            text.extend_from_slice(d);
            text.push(b'\n');
        }
        let mut body = Vec::new();
        enc.finish(&mut body);
        compact += zstd::bulk::compress(&body, 1).unwrap().len();
        nd += zstd::bulk::compress(&text, 1).unwrap().len();
    }
    let rawz = zstd::bulk::compress(&raw, 1).unwrap().len();
    let ratio = compact as f64 / rawz as f64;
    std::println!(
        "zstd -1: raw lines {rawz}, NDJSON {nd} ({:.2}x), compact {compact} ({ratio:.2}x)",
        nd as f64 / rawz as f64
    );
    assert!(ratio <= 1.25, "compact / raw lines {ratio:.2}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// decode(encode(batch)) renders exactly the ECS JSON the agent renders directly, for
    /// batches of real lines picked and ordered at random.
    #[test]
    fn decode_of_encode_is_the_agents_ecs(
        picks in proptest::collection::vec(any::<prop::sample::Index>(), 1..300),
        message in any::<bool>(),
        first_seq in 0u64..u64::MAX / 2,
        seed in 0u64..1000,
    ) {
        let lines = real_lines(seed, 300);
        let chosen: Vec<Vec<u8>> = picks.iter().map(|i| lines[i.index(lines.len())].clone()).collect();
        let ndjson = render_like_the_agent(&chosen, message, first_seq);
        let mut body = Vec::new();
        encode(&ndjson, &mut body).unwrap();
        let mut back = Vec::new();
        decode(&body, ndjson.len(), &mut back).unwrap();
        prop_assert!(back == ndjson);
        // The same rendering without the check, and with the documents shown.
        let mut accepted = Vec::new();
        render_accepted(&body, ndjson.len(), &mut accepted).unwrap();
        prop_assert!(accepted == ndjson);
        prop_assert!(documents_rebuild_the_rendering(&body, &ndjson));
    }

    /// Lines cut, spliced and mangled at random still round-trip or are refused by the
    /// encoder, never a panic; whatever decodes renders what was encoded.
    #[test]
    fn mangled_bodies_never_panic(
        cut in any::<prop::sample::Index>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
    ) {
        let (_, body) = sample_body_small();
        let mut b = body.clone();
        for (i, v) in &flips {
            let i = i.index(b.len());
            b[i] = *v;
        }
        let cut = cut.index(b.len() + 1);
        b.truncate(cut);
        let mut out = Vec::new();
        if decode(&b, 1 << 24, &mut out).is_ok() {
            let mut again = Vec::new();
            encode(&out, &mut again).unwrap();
            prop_assert_eq!(again, b.clone());
            prop_assert!(documents_rebuild_the_rendering(&b, &out));
        }
        let _ = render_accepted(&b, 1 << 24, &mut Vec::new());
    }
}

/// True when [`decode_with`] renders what [`decode`] renders and shows each document in
/// order, with shape numbers in first use, and its line is its shape's literals with the
/// values at its holes.
fn documents_rebuild_the_rendering(body: &[u8], ndjson: &[u8]) -> bool {
    let mut out = Vec::new();
    let (mut rebuilt, mut lines, mut shapes) = (Vec::new(), Vec::new(), 0);
    let mut fine = true;
    decode_with(body, ndjson.len(), &mut out, &mut |doc| {
        fine &= doc.shape_id <= shapes;
        shapes = shapes.max(doc.shape_id + 1);
        let mut holes = doc.holes.iter();
        for piece in doc.shape {
            match piece {
                Piece::Lit(s) => rebuilt.extend_from_slice(s),
                _ => match holes.next() {
                    Some(&(a, b)) => rebuilt.extend_from_slice(&doc.line[a as usize..b as usize]),
                    None => fine = false,
                },
            }
        }
        fine &= holes.next().is_none();
        rebuilt.push(b'\n');
        lines.extend_from_slice(doc.line);
        lines.push(b'\n');
    })
    .unwrap();
    // One document at a time, in a buffer as long as the longest: the same documents.
    let longest = ndjson.split(|&b| b == b'\n').map(|l| l.len() + 1).max();
    let mut line = Vec::with_capacity(longest.unwrap_or(0));
    let capacity = line.capacity();
    let mut each = Vec::new();
    let mut same = true;
    let mut k = 0;
    let mut starts = Vec::new();
    let mut at = 0;
    for l in ndjson.split_inclusive(|&b| b == b'\n') {
        starts.push(at);
        at += l.len();
    }
    decode_each(body, ndjson.len(), &mut line, &mut |doc| {
        // Each document as `decode_with` showed it: its line and its holes.
        let start = starts.get(k).copied().unwrap_or(usize::MAX);
        same &= ndjson.get(start..start + doc.line.len()) == Some(doc.line);
        k += 1;
        each.extend_from_slice(doc.line);
        each.push(b'\n');
    })
    .unwrap();
    fine &= same && line.capacity() == capacity;
    fine && out == ndjson && rebuilt == ndjson && lines == ndjson && each == ndjson
}

#[test]
fn one_document_at_a_time_needs_a_buffer_of_the_longest_document_only() {
    let (ndjson, body) = sample_body();
    let events = ndjson.iter().filter(|&&b| b == b'\n').count();
    let longest = ndjson
        .split_inclusive(|&b| b == b'\n')
        .map(<[u8]>::len)
        .max()
        .unwrap();
    assert!(
        longest * 100 < ndjson.len(),
        "{longest} of {}",
        ndjson.len()
    );
    let mut line = Vec::with_capacity(longest);
    let capacity = line.capacity();
    let mut seen = Vec::new();
    let got = decode_each(&body, ndjson.len(), &mut line, &mut |doc| {
        seen.extend_from_slice(doc.line);
        seen.push(b'\n');
    });
    assert_eq!(got, Ok(events));
    assert_eq!(seen, ndjson);
    assert_eq!(line.capacity(), capacity, "the buffer never grows");
    // A buffer a byte short of the longest document is refused as such, not grown.
    let mut short = Vec::with_capacity(longest - 1);
    if short.capacity() < longest {
        let got = decode_each(&body, ndjson.len(), &mut short, &mut |_| {});
        assert_eq!(got, Err(DecodeError::DocumentTooLong));
    }
    // The whole rendering is still bounded by `max_output`, though never held at once.
    let got = decode_each(&body, ndjson.len() - 1, &mut line, &mut |_| {});
    assert_eq!(got, Err(DecodeError::OutputTooLarge));
}

fn sample_body_small() -> (Vec<u8>, Vec<u8>) {
    let lines = real_lines(5, 40);
    let ndjson = render_like_the_agent(&lines[lines.len() - 60..], true, 7);
    let mut body = Vec::new();
    encode(&ndjson, &mut body).unwrap();
    (ndjson, body)
}

/// The canonical check as the format states it: render, encode the rendering again and
/// compare. [`decode`] checks it value by value while rendering; this is its oracle.
fn decode_by_reencode(body: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    render(body, usize::MAX, &mut out, Check::RenderOnly)?;
    let mut again = Vec::new();
    encode(&out, &mut again).map_err(|_| DecodeError::NotCanonical)?;
    if again != body {
        return Err(DecodeError::NotCanonical);
    }
    Ok(out)
}

/// A body's parts: (string table, shapes, control block as varints, messages block).
type Parts = (Vec<Vec<u8>>, Vec<Vec<u8>>, Vec<u64>, Vec<u8>);

fn parts_of(body: &[u8]) -> (usize, Parts) {
    let mut r = Reader { buf: body, pos: 4 };
    let events = r.varint().unwrap() as usize;
    r.varint().unwrap();
    let n = r.varint().unwrap();
    let strings = (0..n)
        .map(|_| r.block(usize::MAX, "").unwrap().to_vec())
        .collect();
    let n = r.varint().unwrap();
    let shapes = (0..n)
        .map(|_| r.block(usize::MAX, "").unwrap().to_vec())
        .collect();
    let control = r.block(usize::MAX, "").unwrap();
    let messages = r.block(usize::MAX, "").unwrap().to_vec();
    let mut c = Reader {
        buf: control,
        pos: 0,
    };
    let mut varints = Vec::new();
    while !c.is_empty() {
        varints.push(c.varint().unwrap());
    }
    (events, (strings, shapes, varints, messages))
}

/// A body of these parts, its NDJSON length set to what it renders to (0 when it does not
/// render), so that only the canonical check can tell it from the encoder's.
fn body_of(events: usize, (strings, shapes, control, messages): &Parts) -> Vec<u8> {
    let make = |ndjson_len: usize| {
        let mut b = MAGIC.to_vec();
        b.push(VERSION);
        put_varint(&mut b, events as u64);
        put_varint(&mut b, ndjson_len as u64);
        put_varint(&mut b, strings.len() as u64);
        for s in strings {
            put_varint(&mut b, s.len() as u64);
            b.extend_from_slice(s);
        }
        put_varint(&mut b, shapes.len() as u64);
        for s in shapes {
            put_varint(&mut b, s.len() as u64);
            b.extend_from_slice(s);
        }
        let mut c = Vec::new();
        for &v in control {
            put_varint(&mut c, v);
        }
        put_varint(&mut b, c.len() as u64);
        b.extend_from_slice(&c);
        put_varint(&mut b, messages.len() as u64);
        b.extend_from_slice(messages);
        b
    };
    let mut out = Vec::new();
    // Rendered in full, it fails only on the length it declares.
    let len = match render(&make(1 << 30), usize::MAX, &mut out, Check::RenderOnly) {
        Err(DecodeError::Invalid {
            what: "ndjson length",
        }) => out.len(),
        _ => 0,
    };
    make(len)
}

/// Other spellings of one document's values, each rendering exactly what the encoder's
/// spelling renders: every one is refused.
#[test]
fn each_second_spelling_of_a_value_is_refused() {
    let doc = br#"{"message":"user bob from 10.0.0.1 port 2222 x bob","user":"bob","ip":"10.0.0.1 port","n":7,"port":2222,"t":"2024-01-02T03:04:05Z","h":"host-a","g":"host-a","k":"host-b"}"#;
    let mut ndjson = doc.to_vec();
    ndjson.push(b'\n');
    // A second event: a time whose line holds all of it but the `Z`.
    ndjson.extend_from_slice(
        b"{\"message\":\"at 2024-01-02T03:04:05.123456+00:00\",\"p\":\"2024-01-02T03:04:05.123456Z\"}\n",
    );
    let mut body = Vec::new();
    encode(&ndjson, &mut body).unwrap();
    let (events, parts) = parts_of(&body);
    assert_eq!(body_of(events, &parts), body);
    assert_eq!(decode_by_reencode(&body).unwrap(), ndjson);
    // The encoder's spelling, value by value: shape 0; "bob" token 1 (4 * 1); "10.0.0.1 port"
    // 13 bytes 11 from the end (4 * 11 + 1); 7 as a difference; 2222 token 2 from the end
    // (4 * 2 + 1); the time in seconds; "host-a" new in the table, then entry 0 again;
    // "host-b" new.
    let control = &parts.2;
    let tok = |code: u64| (code << 3) | STR_TOKEN;
    let table = |id: u64| (id << 3) | STR_TABLE;
    let bytes = |len: u64| (len << 3) | STR_REF;
    assert_eq!(control.len(), 15);
    assert_eq!(
        control[..7],
        [
            0,
            tok(4),
            bytes(13),
            45,
            14 << 3,
            (9 << 3) | NUM_TOKEN,
            STR_TIME
        ]
    );
    assert_eq!(control[8..11], [table(0), table(0), table(1)]);
    // Then shape 1; the time: its first 26 bytes at 3 (4 * 3) and the table's "Z", new.
    assert_eq!(control[11..], [1, (26 << 3) | STR_REF_TAIL, 3 << 2, 2]);
    let with = |edit: &dyn Fn(&mut Vec<u64>), strings: Option<Vec<&[u8]>>, shapes: usize| {
        let mut p = parts.clone();
        edit(&mut p.2);
        if let Some(strings) = strings {
            p.0 = strings.into_iter().map(<[u8]>::to_vec).collect();
        }
        for _ in 0..shapes {
            p.1.push(b"{}".to_vec());
        }
        body_of(events, &p)
    };
    let at = |i: usize, values: &'static [u64]| {
        move |c: &mut Vec<u64>| {
            c.splice(i..i + 1, values.iter().copied());
        }
    };
    const DIFFERENCE: u64 = zigzag(2222) << 3;
    let alternatives: Vec<(&str, Vec<u8>)> = vec![
        // "bob": as bytes of the line (offset 5), from the end (8 tokens: 4 * 6 + 1), the
        // equal token at the end (token 7: 4 * 0 + 1), the equal bytes at the end (offset 35),
        // as a new table entry.
        (
            "a token as bytes",
            with(&at(1, &[(3 << 3) | STR_REF, 5 << 2]), None, 0),
        ),
        (
            "a token from the end",
            with(&at(1, &[(25 << 3) | STR_TOKEN]), None, 0),
        ),
        (
            "a later equal token",
            with(&at(1, &[(1 << 3) | STR_TOKEN]), None, 0),
        ),
        (
            "later equal bytes",
            with(&at(1, &[(3 << 3) | STR_REF, 1]), None, 0),
        ),
        (
            "a line value in the table",
            with(
                &|c: &mut Vec<u64>| {
                    c[1] = table(0);
                    for v in &mut c[8..11] {
                        *v += 1 << 3;
                    }
                    c[14] += 1;
                },
                Some(vec![b"bob", b"host-a", b"host-b", b"Z"]),
                0,
            ),
        ),
        // "10.0.0.1 port" from the start (4 * 14).
        ("bytes from the start", with(&at(3, &[14 << 2]), None, 0)),
        // 2222 as bytes of the line and as a difference (its slot starts at 0); 7 in the table.
        (
            "a number token as bytes",
            with(&at(5, &[(4 << 3) | NUM_REF, (2 << 2) | 2]), None, 0),
        ),
        (
            "a number token as a difference",
            with(&at(5, &[DIFFERENCE]), None, 0),
        ),
        (
            "a small number in the table",
            with(
                &|c: &mut Vec<u64>| {
                    c[4] = NUM_TABLE;
                    for v in &mut c[8..11] {
                        *v += 1 << 3;
                    }
                    c[14] += 1;
                },
                Some(vec![b"7", b"host-a", b"host-b", b"Z"]),
                0,
            ),
        ),
        // The time in milliseconds.
        (
            "a finer time unit",
            with(
                &|c: &mut Vec<u64>| {
                    c[6] = (1 << 3) | STR_TIME;
                    c[7] = zigzag(unzigzag(c[7]) * 1000);
                },
                None,
                0,
            ),
        ),
        // The table: an unused entry, a duplicate, out of first-use order; an unused shape.
        (
            "an unused table entry",
            with(
                &|_: &mut Vec<u64>| {},
                Some(vec![b"host-a", b"host-b", b"Z", b"zzz"]),
                0,
            ),
        ),
        (
            "a duplicate table entry",
            with(
                &|c: &mut Vec<u64>| {
                    c[9..11].copy_from_slice(&[table(1), table(2)]);
                    c[14] = 3;
                },
                Some(vec![b"host-a", b"host-a", b"host-b", b"Z"]),
                0,
            ),
        ),
        (
            "the table out of order",
            with(
                &|c: &mut Vec<u64>| c[8..11].copy_from_slice(&[table(1), table(1), table(0)]),
                Some(vec![b"host-b", b"host-a", b"Z"]),
                0,
            ),
        ),
        ("an unused shape", with(&|_: &mut Vec<u64>| {}, None, 1)),
        // The time's prefix one byte short, "6Z" from the table.
        (
            "a shorter prefix",
            with(
                &|c: &mut Vec<u64>| c[12] = (25 << 3) | STR_REF_TAIL,
                Some(vec![b"host-a", b"host-b", b"6Z"]),
                0,
            ),
        ),
        // The time whole in the table.
        (
            "a prefix in the table",
            with(
                &|c: &mut Vec<u64>| c.splice(12..15, [table(2)]).for_each(drop),
                Some(vec![b"host-a", b"host-b", b"2024-01-02T03:04:05.123456Z"]),
                0,
            ),
        ),
    ];
    for (what, alt) in alternatives {
        assert_ne!(alt, body, "{what}: the same spelling");
        let mut out = Vec::new();
        render(&alt, usize::MAX, &mut out, Check::RenderOnly)
            .unwrap_or_else(|e| panic!("{what}: does not render: {e}"));
        assert_eq!(out, ndjson, "{what}: renders another document");
        assert_eq!(
            decode_by_reencode(&alt),
            Err(DecodeError::NotCanonical),
            "{what}"
        );
        assert_eq!(
            decode(&alt, usize::MAX, &mut Vec::new()),
            Err(DecodeError::NotCanonical),
            "{what}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// The value-by-value canonical check accepts exactly what rendering and encoding again
    /// accepts, for bodies whose control block has had values replaced, removed or inserted
    /// (the NDJSON length kept true, so only the canonical check can refuse them).
    #[test]
    fn the_canonical_check_agrees_with_encoding_again(
        edits in proptest::collection::vec(
            (any::<prop::sample::Index>(), proptest::collection::vec(0u64..600, 0..3)),
            1..3,
        ),
        which in 0usize..2,
    ) {
        static BODIES: std::sync::LazyLock<[Vec<u8>; 2]> =
            std::sync::LazyLock::new(|| [sample_body_small().1, one_of_each_body()]);
        let body = BODIES[which].clone();
        let (events, mut parts) = parts_of(&body);
        for (at, values) in &edits {
            let at = at.index(parts.2.len());
            parts.2.splice(at..at + 1, values.iter().copied());
        }
        let alt = body_of(events, &parts);
        let mut out = Vec::new();
        let fast = decode(&alt, usize::MAX, &mut out);
        let oracle = decode_by_reencode(&alt);
        // One document at a time, the same verdict.
        let each = decode_each(&alt, usize::MAX, &mut Vec::with_capacity(1 << 20), &mut |_| {});
        prop_assert_eq!(each.is_ok(), fast.is_ok(), "each {:?}, fast {:?}", each, fast);
        prop_assert_eq!(fast.is_ok(), oracle.is_ok(), "fast {:?}, oracle {:?}", fast, oracle);
        // A body accepted is the encoding of its rendering (maybe of other documents).
        if let Ok(rendered) = oracle {
            prop_assert_eq!(out, rendered);
        }
    }
}

/// A small batch that uses every kind of value.
fn one_of_each_body() -> Vec<u8> {
    let docs = [
        r#"{"message":"user bob from 10.0.0.1 port 2222 x bob","user":"bob","ip":"10.0.0.1 port","n":7,"port":2222,"t":"2024-01-02T03:04:05Z","h":"host-a","e":""}"#,
        r#"{"message":"user bob from 10.0.0.1 port 2222 x bob","user":"bob-longer-name","ip":"10.0.0.1 portx","n":8,"port":99999999999999999999,"t":"2024-01-02T03:04:05.5Z","h":"host-a","e":"z"}"#,
        r#"{"message":"a","n":60,"off":1,"port":-3,"t":"2024-01-02T03:04:06Z","h":"1.5"}"#,
        r#"{"message":"bb","n":61,"off":3,"port":1e5,"t":"2024-01-02T03:04:06.001Z","x":[1,2,{"y":null}]}"#,
        r#"{"n":62,"t":"2024-01-02T03:04:06.001Z","k":true}"#,
    ];
    let mut ndjson = Vec::new();
    for d in docs {
        ndjson.extend_from_slice(d.as_bytes());
        ndjson.push(b'\n');
    }
    let mut body = Vec::new();
    encode(&ndjson, &mut body).unwrap();
    body
}

/// A batch encoder used again after `finish` writes exactly what a new one writes.
#[test]
fn an_encoder_used_again_writes_what_a_new_one_writes() {
    let (first, _) = sample_body();
    let (second, second_body) = sample_body_small();
    let mut enc = BatchEncoder::new();
    for ndjson in [&first, &second] {
        for doc in ndjson.strip_suffix(b"\n").unwrap().split(|&b| b == b'\n') {
            enc.push(doc).unwrap();
        }
        let mut body = Vec::new();
        enc.finish(&mut body);
        assert!(enc.is_empty() && enc.ndjson_len() == 0);
        let mut fresh = Vec::new();
        encode(ndjson, &mut fresh).unwrap();
        assert_eq!(body, fresh);
    }
    let mut again = Vec::new();
    encode(&second, &mut again).unwrap();
    assert_eq!(again, second_body);
}

/// Encodes `lines` as the agent renders them, both ways: the text pushed and read again by
/// the tokenizer ([`BatchEncoder::push`]), and the ECS writer's holes
/// ([`BatchEncoder::push_with`]). Checks each document's holes against the tokenizer's cut;
/// returns the two bodies.
fn encode_both_ways(events: &[(crate::LoginEvent<'_>, Envelope<'_>)]) -> (Vec<u8>, Vec<u8>) {
    let (mut by_text, mut by_holes) = (BatchEncoder::new(), BatchEncoder::new());
    let (mut text, mut marked) = (String::new(), String::new());
    let mut holes = Holes::new();
    let mut toks = Vec::new();
    for (i, (ev, env)) in events.iter().enumerate() {
        text.clear();
        ecs::write_event(&mut text, ev, env).unwrap();
        // Written after other text: the holes count from the document's start.
        marked.clear();
        marked.push('x');
        holes.write_event(&mut marked, ev, env).unwrap();
        assert_eq!(
            marked[1..],
            text,
            "event {i}: the ECS writer wrote other text"
        );
        assert!(tokenize(text.as_bytes(), &mut toks).is_some());
        assert_eq!(holes.toks, toks, "event {i}: {text}");
        by_text.push(text.as_bytes()).unwrap();
        by_holes.push_with(text.as_bytes(), &holes).unwrap();
    }
    let (mut a, mut b) = (Vec::new(), Vec::new());
    by_text.finish(&mut a);
    by_holes.finish(&mut b);
    (a, b)
}

/// The agent's events for `lines` (parse, conform, envelope), as its renderer makes them.
fn agent_events<'a>(
    lines: &'a [Vec<u8>],
    message: bool,
    first_seq: u64,
) -> Vec<(crate::LoginEvent<'a>, Envelope<'a>)> {
    let now = crate::Timestamp::from_secs(loggen::DEFAULT_START);
    let ctx = Context::new(now);
    let mut out = Vec::new();
    let mut offset = 0u64;
    for line in lines {
        let at = offset;
        offset += line.len() as u64 + 1;
        let mut ev = match parse_line(line, &ctx) {
            Parsed::Event(ev) => ev,
            _ => continue,
        };
        let conformed = crate::wire::conform(&mut ev, now);
        let env = Envelope {
            hostname: Some(Text(b"fallback-host")),
            host_id: Some("5f0c1d7a9e2b4c3d8e1f0a2b3c4d5e6f"),
            agent_id: Some("0b6f4c8e-6c6a-4f0e-9b7e-2f6d1c0a9e11"),
            agent_version: Some("0.1.0"),
            provider: Some("file"),
            sequence: Some(first_seq + out.len() as u64),
            log_path: Some(Text(b"/var/log/auth.log")),
            log_offset: Some(at),
            message: message.then_some(Text(line)),
            original_timestamp: conformed.original_timestamp,
        };
        out.push((ev, env));
    }
    out
}

/// The ECS writer's holes cut each of the agent's documents exactly as the tokenizer cuts
/// its text, so a batch encoded from them is byte for byte the batch encoded from the text.
#[test]
fn the_writers_holes_encode_what_the_text_encodes() {
    let lines = real_lines(3, 20_000);
    for message in [true, false] {
        let events = agent_events(&lines, message, 1);
        assert!(events.len() > 10_000, "enough events to matter");
        for chunk in events.chunks(5_000) {
            let (by_text, by_holes) = encode_both_ways(chunk);
            assert!(by_text == by_holes, "message {message}: the bodies differ");
        }
    }
}

/// Every field the writer can write, escapes, invalid UTF-8, an empty program, and the time
/// kept beside an out-of-range one: the same cut either way.
#[test]
fn the_writers_holes_cut_every_field_as_the_tokenizer() {
    use crate::event::{Action, Method, Outcome, Source};
    let mut ev = crate::LoginEvent::new(Action::AuthSuccess, Outcome::Success);
    ev.timestamp = Some(crate::Timestamp::from_secs(1_795_848_570));
    ev.hostname = Some(Text(b"web\"1"));
    ev.program = Text(b"");
    ev.pid = Some(42);
    ev.user = Some(Text(b"al\\ice\x01\xff"));
    ev.uid = Some(1000);
    ev.target_user = Some(Text(b"root"));
    ev.source = Some(Source::Ip("2001:db8::1".parse().unwrap()));
    ev.port = Some(50522);
    ev.method = Some(Method::Publickey);
    ev.key_type = Some(Text(b"ED25519"));
    ev.key_fingerprint = Some(Text(b"SHA256:abc"));
    ev.tty = Some(Text(b"pts/0"));
    ev.command = Some(Text(b"/bin/sh -c \"x\""));
    ev.reason = Some(Text(b"why\tnot"));
    let mut domain = ev;
    domain.source = Some(Source::Domain(Text(b"gw.example.")));
    domain.port = None;
    let mut v4 = ev;
    v4.source = Some(Source::Ip("192.0.2.7".parse().unwrap()));
    let env = Envelope {
        hostname: Some(Text(b"h")),
        host_id: Some("id"),
        agent_id: Some("a-1"),
        agent_version: Some("0.1.0"),
        provider: Some("journald"),
        sequence: Some(u64::MAX),
        log_path: Some(Text(b"/var/log/auth\x7f.log")),
        log_offset: Some(0),
        message: Some(Text(b"line \"quoted\"\t\x01\xff 2001:db8::1 50522")),
        original_timestamp: Some(crate::Timestamp::from_secs(-86_400 * 365 * 3000)),
    };
    let bare = crate::LoginEvent::new(Action::Other, Outcome::Unknown);
    let events = [
        (ev, env),
        (domain, env),
        (
            v4,
            Envelope {
                message: None,
                ..env
            },
        ),
        (bare, Envelope::default()),
        (
            ev,
            Envelope {
                message: Some(Text(b"")),
                ..Envelope::default()
            },
        ),
    ];
    let (by_text, by_holes) = encode_both_ways(&events);
    assert!(by_text == by_holes);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Real lines with bytes changed at random (quotes, backslashes, control and non-UTF-8
    /// bytes in user names and the message): both ways give the same body.
    #[test]
    fn the_writers_holes_agree_on_mangled_lines(
        picks in proptest::collection::vec(any::<prop::sample::Index>(), 1..200),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>(), any::<u8>()), 0..64),
        message in any::<bool>(),
        seed in 0u64..1000,
    ) {
        let lines = real_lines(seed, 300);
        let mut chosen: Vec<Vec<u8>> = picks.iter().map(|i| lines[i.index(lines.len())].clone()).collect();
        for (line, at, byte) in flips {
            let n = chosen.len();
            let line = &mut chosen[line.index(n)];
            if !line.is_empty() {
                let at = at.index(line.len());
                line[at] = if byte == b'\n' { b'"' } else { byte };
            }
        }
        let events = agent_events(&chosen, message, 7);
        let (by_text, by_holes) = encode_both_ways(&events);
        prop_assert!(by_text == by_holes);
    }
}
