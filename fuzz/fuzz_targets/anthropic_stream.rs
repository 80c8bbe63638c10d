//! `codec::anthropic`: the Messages stream decoder (Anthropic upstream ->
//! OpenAI chunks), the native meter (Anthropic passthrough), the non-stream
//! decoder and error classification.
//!
//! Input: an Anthropic SSE stream (`event: ...` / `data: {...}`). Each event's
//! data that parses as an `api::anthropic::StreamEvent` is fed to a
//! `StreamDecoder` (twice: plain, and with a JSON-mode tool and usage asked
//! for) and to a `NativeMeter`; decoding goes on after a failure, so later
//! events still hit a decoder in an odd state. The chunks produced then go
//! through both front-door bridges. The whole input is also tried as a
//! non-stream `MessagesResponse` and as an error body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelgate_api::anthropic::{MessagesResponse, StreamEvent};
use modelgate_codec::anthropic::{
    NativeMeter, ResponseContext, StreamDecoder, classify_error, decode_response,
};

fn contexts() -> [ResponseContext; 2] {
    [
        ResponseContext {
            created: 1_700_000_000,
            json_tool: None,
            include_usage: false,
        },
        ResponseContext {
            created: 1_700_000_000,
            json_tool: Some("json_response".into()),
            include_usage: true,
        },
    ]
}

fuzz_target!(|data: &[u8]| {
    let events: Vec<StreamEvent> = modelgate_fuzz::sse_events(data)
        .iter()
        .filter_map(|e| serde_json::from_str(&e.data).ok())
        .collect();

    let mut meter = NativeMeter::default();
    for ev in &events {
        let _ = meter.on_event(ev);
    }
    let _ = meter.usage();

    for ctx in contexts() {
        let mut dec = StreamDecoder::new(ctx);
        let mut chunks = Vec::new();
        for ev in &events {
            if let Ok(c) = dec.on_event(ev.clone()) {
                chunks.extend(c);
            }
        }
        let _ = dec.usage();
        let _ = dec.is_done();
        for c in &chunks {
            let _ = serde_json::to_vec(c);
        }
        modelgate_fuzz::bridge_chunks(&chunks);
    }

    if let Ok(resp) = serde_json::from_slice::<MessagesResponse>(data) {
        for ctx in contexts() {
            let (completion, _usage) = decode_response(resp.clone(), &ctx);
            let _ = serde_json::to_vec(&completion);
            modelgate_fuzz::bridge_completion(&completion);
        }
    }

    for status in modelgate_fuzz::STATUSES {
        modelgate_fuzz::check_http_failure(&classify_error(status, data), status);
    }
});
