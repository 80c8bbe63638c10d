//! Helpers shared by the fuzz targets in `fuzz_targets/`.
//!
//! Every target must hold one rule: whatever the bytes, the code under test
//! returns (`Ok`, `Err`, `None`), it never panics. Some targets check more
//! (the same events whatever the chunking, a splice that stays valid JSON).

use modelgate_api::openai::{ChatChunk, ChatCompletion};
use modelgate_codec::sse::{SseEvent, SseParser};
use modelgate_codec::{EXCERPT_MAX, UpstreamFailure, messages, responses};

/// Cuts `data` into consecutive pieces whose sizes come from a small PRNG
/// seeded with `seed`: every seed gives a different, irregular chunking
/// (single bytes, a few bytes, larger runs), and the pieces always
/// concatenate back to `data`. Seed 0 gives one byte per piece.
pub fn split(seed: u8, data: &[u8]) -> Vec<&[u8]> {
    let mut pieces = Vec::new();
    if seed == 0 {
        pieces.extend(data.chunks(1));
        return pieces;
    }
    let max = 1 + usize::from(seed % 17) * usize::from(seed % 5 + 1);
    let mut state = u32::from(seed) | 0x9E37_0000;
    let mut rest = data;
    while !rest.is_empty() {
        // xorshift32
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let n = (state as usize % max) + 1;
        let n = n.min(rest.len());
        let (head, tail) = rest.split_at(n);
        pieces.push(head);
        rest = tail;
    }
    pieces
}

/// Every event of `data` read as one server-sent-event stream.
pub fn sse_events(data: &[u8]) -> Vec<SseEvent> {
    let mut parser = SseParser::new();
    let mut out = Vec::new();
    parser.push(data, &mut out);
    parser.finish(&mut out);
    out
}

/// Runs decoded chat chunks through both front-door stream encoders (the
/// Anthropic Messages and the OpenAI Responses bridges), as the gateway does
/// when a client of one dialect is served by a provider of another, and
/// serialises every event they produce.
pub fn bridge_chunks(chunks: &[ChatChunk]) {
    let mut buf = Vec::new();
    let mut m = messages::EventEncoder::new("chatcmpl-fuzz", "fuzz-model", 7);
    let mut r = responses::EventEncoder::new(
        "chatcmpl-fuzz",
        "fuzz-model",
        1_700_000_000,
        responses::Echo::default(),
    );
    for c in chunks {
        for ev in m.on_chunk(c) {
            messages::encode_event(&mut buf, &ev);
        }
        for ev in r.on_chunk(c) {
            responses::encode_event(&mut buf, &ev);
        }
    }
    for ev in m.finish() {
        messages::encode_event(&mut buf, &ev);
    }
    for ev in r.finish() {
        responses::encode_event(&mut buf, &ev);
    }
    // A failure after a partial stream, as the gateway emits it.
    let ev = m.error("api_error", "fuzz");
    messages::encode_event(&mut buf, &ev);
    for ev in r.fail("server_error", "fuzz") {
        responses::encode_event(&mut buf, &ev);
    }
}

/// Runs a decoded completion through both front-door response bridges and
/// serialises the results.
pub fn bridge_completion(c: &ChatCompletion) {
    let m = messages::from_chat(c);
    let _ = serde_json::to_vec(&m);
    let r = responses::from_chat(c, &responses::Echo::default());
    let _ = serde_json::to_vec(&r);
}

/// Checks what every `classify_error` promises: the status it was given, and
/// at most a short excerpt of what the upstream said.
pub fn check_http_failure(f: &UpstreamFailure, status: u16) {
    assert_eq!(f.status, Some(status));
    assert!(
        f.message.len() <= EXCERPT_MAX + '…'.len_utf8(),
        "failure message of {} bytes: {:?}",
        f.message.len(),
        f.message
    );
}

/// HTTP statuses an error body is classified under.
pub const STATUSES: [u16; 9] = [400, 401, 403, 404, 408, 413, 429, 500, 529];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_covers_the_input() {
        let data: Vec<u8> = (0..=255).collect();
        for seed in 0..=255u8 {
            let pieces = split(seed, &data);
            assert!(pieces.iter().all(|p| !p.is_empty()));
            assert_eq!(pieces.concat(), data);
        }
        assert!(split(9, &[]).is_empty());
    }
}
