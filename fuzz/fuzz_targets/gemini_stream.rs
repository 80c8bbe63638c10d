//! `codec::gemini`: the stream decoder (`on_data` per SSE event, then
//! `finish`), the non-stream decoder, error classification and the retry
//! delay read from error bodies.
//!
//! Input: a Gemini `streamGenerateContent?alt=sse` stream. Each event's data
//! goes to `StreamDecoder::on_data` (twice: without and with the usage chunk
//! asked for), going on after failures; then `finish`. The chunks go through
//! both front-door bridges. The whole input is also tried as a non-stream
//! `GenerateContentResponse` and as an error body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelgate_api::gemini::GenerateContentResponse;
use modelgate_codec::gemini::{
    ResponseContext, StreamDecoder, classify_error, decode_response, retry_after_seconds,
};

fn contexts() -> [ResponseContext; 2] {
    [
        ResponseContext {
            created: 1_700_000_000,
            model: "gemini-2.5-flash".into(),
            include_usage: false,
        },
        ResponseContext {
            created: 1_700_000_000,
            model: String::new(),
            include_usage: true,
        },
    ]
}

fuzz_target!(|data: &[u8]| {
    let events = modelgate_fuzz::sse_events(data);
    for ctx in contexts() {
        let mut dec = StreamDecoder::new(ctx);
        let mut chunks = Vec::new();
        for ev in &events {
            if let Ok(c) = dec.on_data(&ev.data) {
                chunks.extend(c);
            }
        }
        if let Ok(c) = dec.finish() {
            chunks.extend(c);
            assert!(dec.is_done());
            // Once done, the decoder emits nothing more.
            for ev in events.iter().take(2) {
                if let Ok(more) = dec.on_data(&ev.data) {
                    assert!(more.is_empty(), "chunks after finish");
                }
            }
        }
        let _ = dec.usage();
        for c in &chunks {
            let _ = serde_json::to_vec(c);
        }
        modelgate_fuzz::bridge_chunks(&chunks);
    }

    if let Ok(resp) = serde_json::from_slice::<GenerateContentResponse>(data) {
        for ctx in contexts() {
            if let Ok((completion, _usage)) = decode_response(resp.clone(), &ctx) {
                let _ = serde_json::to_vec(&completion);
                modelgate_fuzz::bridge_completion(&completion);
            }
        }
    }

    for status in modelgate_fuzz::STATUSES {
        modelgate_fuzz::check_http_failure(&classify_error(status, data), status);
    }
    let _ = retry_after_seconds(data);
});
