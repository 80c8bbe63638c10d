//! `codec::eventstream` (AWS event-stream framing) and `codec::bedrock`
//! (ConverseStream events -> OpenAI chunks; error classification).
//!
//! Input: one mode byte, then the body. The low 7 bits choose the chunking
//! (see `modelgate_fuzz::split`); the high bit chooses how the body is read:
//!
//! - clear: raw event-stream bytes. They are decoded whole and in pieces;
//!   both must succeed or fail alike, with the same messages, the same error
//!   and the same end-of-body verdict.
//! - set: a text description of messages, framed here with
//!   `eventstream::encode` so the CRCs are right and the fuzzer reaches the
//!   Bedrock decoder without having to forge checksums. Messages are
//!   separated by NUL; each is `<type>\x01<payload>`, where `<type>` is an
//!   event type (`contentBlockDelta`), `!name` for an exception, or `?code`
//!   for an unmodelled error. Decoding the frames must give back exactly the
//!   messages encoded.
//!
//! The decoded messages then go to `bedrock::StreamDecoder::on_message`
//! (twice: plain, and with a JSON-mode tool and usage asked for), going on
//! after failures, and the chunks through both front-door bridges. The body
//! is also classified as an HTTP error body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelgate_codec::bedrock::{ResponseContext, StreamDecoder, classify_error};
use modelgate_codec::eventstream::{EventStreamDecoder, Header, HeaderValue, Message, encode};

fn contexts() -> [ResponseContext; 2] {
    [
        ResponseContext {
            created: 1_700_000_000,
            id: "chatcmpl-fuzz".into(),
            model: "anthropic.claude-3-5-sonnet-20240620-v1:0".into(),
            json_tool: None,
            include_usage: false,
        },
        ResponseContext {
            created: 1_700_000_000,
            id: String::new(),
            model: String::new(),
            json_tool: Some("json_response".into()),
            include_usage: true,
        },
    ]
}

fn string_header(name: &str, value: &str) -> Header {
    Header {
        name: name.into(),
        value: HeaderValue::String(value.into()),
    }
}

/// The messages described by `body` (see the module docs).
fn described(body: &[u8]) -> Vec<Message> {
    body.split(|&b| b == 0)
        .map(|m| {
            let (kind, payload) = match m.iter().position(|&b| b == 1) {
                Some(i) => (&m[..i], &m[i + 1..]),
                None => (m, &[][..]),
            };
            let kind = String::from_utf8_lossy(kind);
            let headers = if let Some(name) = kind.strip_prefix('!') {
                vec![
                    string_header(":exception-type", name),
                    string_header(":content-type", "application/json"),
                    string_header(":message-type", "exception"),
                ]
            } else if let Some(code) = kind.strip_prefix('?') {
                vec![
                    string_header(":message-type", "error"),
                    string_header(":error-code", code),
                    string_header(":error-message", &String::from_utf8_lossy(payload)),
                ]
            } else {
                vec![
                    string_header(":event-type", &kind),
                    string_header(":content-type", "application/json"),
                    string_header(":message-type", "event"),
                ]
            };
            Message {
                headers,
                payload: payload.to_vec(),
            }
        })
        .collect()
}

/// Decodes `pieces` in order: the messages and the first error, if any,
/// then the end-of-body verdict.
fn decode(pieces: &[&[u8]]) -> (Vec<Message>, Result<(), String>, Result<(), String>) {
    let mut d = EventStreamDecoder::new();
    let mut messages = Vec::new();
    for piece in pieces {
        match d.push(piece) {
            Ok(m) => messages.extend(m),
            Err(e) => {
                // Any error is final.
                assert_eq!(
                    d.push(b"more"),
                    Err(modelgate_codec::eventstream::Error::Poisoned)
                );
                return (messages, Err(e.to_string()), Err("poisoned".into()));
            }
        }
    }
    let finish = d.finish().map_err(|e| e.to_string());
    assert_eq!(finish.is_ok(), d.buffered_len() == 0);
    (messages, Ok(()), finish)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let seed = mode & 0x7F;

    let messages = if mode & 0x80 == 0 {
        let (whole_msgs, whole_res, whole_finish) = decode(&[body]);
        let (msgs, res, finish) = decode(&modelgate_fuzz::split(seed, body));
        assert_eq!(whole_res, res, "framing errors depend on the chunking");
        if res.is_ok() {
            // Messages completed before an error are dropped with it when
            // they arrive in the same push, so compare only on success.
            assert_eq!(whole_msgs, msgs, "messages depend on the chunking");
            assert_eq!(whole_finish, finish);
        }
        msgs
    } else {
        let wanted = described(body);
        let fits = wanted.iter().all(|m| {
            m.headers.iter().all(|h| match &h.value {
                HeaderValue::String(s) => s.len() <= usize::from(u16::MAX),
                _ => true,
            })
        });
        let bytes: Vec<u8> = wanted.iter().flat_map(encode).collect();
        let (msgs, res, finish) = decode(&modelgate_fuzz::split(seed, &bytes));
        assert_eq!(res, Ok(()), "our own frames do not decode");
        assert_eq!(finish, Ok(()), "our own frames leave bytes behind");
        if fits {
            assert_eq!(msgs, wanted, "frames do not round-trip");
        }
        msgs
    };

    for ctx in contexts() {
        let mut dec = StreamDecoder::new(ctx);
        let mut chunks = Vec::new();
        for m in &messages {
            if let Ok(c) = dec.on_message(m) {
                chunks.extend(c);
            }
        }
        let _ = (dec.usage(), dec.is_done(), dec.has_usage());
        for c in &chunks {
            let _ = serde_json::to_vec(c);
        }
        modelgate_fuzz::bridge_chunks(&chunks);
    }

    let text = String::from_utf8_lossy(body);
    let (first_line, rest) = text.split_once('\n').unwrap_or((&text, ""));
    for status in modelgate_fuzz::STATUSES {
        let f = classify_error(status, None, body);
        modelgate_fuzz::check_http_failure(&f, status);
        let f = classify_error(status, Some(first_line), rest.as_bytes());
        modelgate_fuzz::check_http_failure(&f, status);
    }
});
