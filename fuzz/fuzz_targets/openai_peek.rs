//! `codec::openai`: the peeks the gateway runs over OpenAI-dialect bodies and
//! stream chunks it passes through, and error classification.
//!
//! Input: a response body, a stream chunk, or an SSE stream of chunks. The
//! whole input goes to every function; when it is an SSE stream, each event's
//! data also goes to the chunk and Responses-event peeks, as on the stream path.
//!
//! When a Messages or Responses client is served by an OpenAI-dialect
//! upstream, the server parses the upstream's body as a `ChatCompletion`, or
//! each chunk as a `ChatChunk`, and runs it through the front-door bridge;
//! that path is exercised here too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelgate_api::openai::{ChatChunk, ChatCompletion};
use modelgate_codec::openai::{
    classify_error, peek_chunk, peek_response, peek_responses_event, response_facts,
    responses_usage,
};

const PROVIDER: &str = "openai";

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);

    let _ = peek_response(data);
    let _ = response_facts(data);
    let _ = responses_usage(data);
    for status in modelgate_fuzz::STATUSES {
        modelgate_fuzz::check_http_failure(&classify_error(status, data, PROVIDER), status);
    }
    check_chunk(&text);
    check_responses_event(&text);

    let mut chunks = Vec::new();
    for ev in modelgate_fuzz::sse_events(data) {
        check_chunk(&ev.data);
        check_responses_event(&ev.data);
        let _ = response_facts(ev.data.as_bytes());
        if let Ok(c) = serde_json::from_str::<ChatChunk>(&ev.data) {
            chunks.push(c);
        }
    }
    modelgate_fuzz::bridge_chunks(&chunks);

    if let Ok(c) = serde_json::from_slice::<ChatCompletion>(data) {
        modelgate_fuzz::bridge_completion(&c);
    }
});

fn check_chunk(data: &str) {
    match peek_chunk(data, PROVIDER) {
        Ok(peek) => {
            // A usage-only chunk carries usage and no content.
            if peek.usage_only {
                assert!(peek.usage.is_some());
            }
            if peek.finished {
                assert!(peek.has_content);
            }
        }
        Err(f) => assert!(f.status.is_none()),
    }
}

fn check_responses_event(data: &str) {
    if let Ok(peek) = peek_responses_event(data, PROVIDER) {
        // Usage is read from the terminal event only.
        assert!(peek.usage.is_none() || peek.done);
    }
}
