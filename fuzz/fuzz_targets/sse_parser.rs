//! `codec::sse::SseParser`: any bytes, any chunking.
//!
//! Input: one byte choosing the chunking (see `modelgate_fuzz::split`), then
//! the stream. The parser must never panic, and must dispatch exactly the
//! same events whether the stream comes in one piece, one byte at a time or
//! cut anywhere else (including inside a UTF-8 sequence or a CRLF).
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelgate_codec::sse::{SseEvent, SseParser, encode_data};

fn parse(pieces: &[&[u8]]) -> Vec<SseEvent> {
    let mut p = SseParser::new();
    let mut out = Vec::new();
    for piece in pieces {
        p.push(piece, &mut out);
    }
    p.finish(&mut out);
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let whole = parse(&[stream]);
    let chunked = parse(&modelgate_fuzz::split(seed, stream));
    assert_eq!(
        whole, chunked,
        "events depend on the chunking (seed {seed})"
    );
    if seed % 8 == 0 {
        let bytes = parse(&modelgate_fuzz::split(0, stream));
        assert_eq!(whole, bytes, "events differ when fed one byte at a time");
    }

    // What we re-encode towards clients parses back to the same data.
    let mut buf = Vec::new();
    for ev in &whole {
        encode_data(&mut buf, ev.data.as_bytes());
    }
    let again: Vec<String> = parse(&[&buf]).into_iter().map(|e| e.data).collect();
    // Data never holds a CR (lines end there), only the `\n` joining lines.
    let want: Vec<String> = whole.iter().map(|e| e.data.clone()).collect();
    assert_eq!(again, want, "encode_data does not round-trip");
});
