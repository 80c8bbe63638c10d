//! A fast OpenAI-format upstream for benchmarks: canned chat completions
//! and SSE streams with configurable latency, token count and chunk gap,
//! doing as little work per request as it can (no validation, no
//! recording, replies rendered once), so that a benchmark measures the
//! gateway in front of it rather than the mock.
//!
//! The behaviour comes from the command line ([`Profile`] defaults) and can
//! be changed per request through the `model` the request names:
//! `tokens=64,chunks=16,gap_ms=5,ttft_ms=20,latency_ms=0` (any subset, in
//! any order; anything else in the name is ignored). A gateway in front
//! forwards the upstream model its config names, so each alias can pick a
//! behaviour.
//!
//! - Non-streaming: after `latency_ms`, one `chat.completion` with `tokens`
//!   words and their usage.
//! - Streaming: after `ttft_ms`, a role chunk, then `chunks` content chunks
//!   (the words split evenly) `gap_ms` apart, a finish chunk, the usage
//!   chunk when `stream_options.include_usage` is set, and `[DONE]`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::Response;

/// What one request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    /// Words in the answer (one completion token each).
    pub tokens: u32,
    /// Content chunks of a stream.
    pub chunks: u32,
    /// Pause between stream chunks.
    pub gap_ms: u64,
    /// Pause before a stream's first chunk.
    pub ttft_ms: u64,
    /// Pause before a non-streaming answer.
    pub latency_ms: u64,
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            tokens: 16,
            chunks: 8,
            gap_ms: 0,
            ttft_ms: 0,
            latency_ms: 0,
        }
    }
}

impl Profile {
    /// `self` with the `k=v` settings found in `model` applied.
    pub fn with_overrides(mut self, model: &str) -> Profile {
        for kv in model.split([',', ';', '&', '?', ':', '/']) {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(n) = v.trim().parse::<u64>() else {
                continue;
            };
            match k.trim() {
                "tokens" => self.tokens = u32::try_from(n).unwrap_or(u32::MAX).max(1),
                "chunks" => self.chunks = u32::try_from(n).unwrap_or(u32::MAX).max(1),
                "gap_ms" => self.gap_ms = n,
                "ttft_ms" => self.ttft_ms = n,
                "latency_ms" => self.latency_ms = n,
                _ => {}
            }
        }
        self
    }
}

/// The replies of one profile, rendered once.
struct Rendered {
    profile: Profile,
    complete: Bytes,
    role: Bytes,
    content: Vec<Bytes>,
    finish: Bytes,
    usage: Bytes,
}

const ID: &str = "chatcmpl-bench";
const CREATED: u64 = 1_700_000_000;

fn render(p: Profile) -> Rendered {
    let words: Vec<&str> = std::iter::repeat_n("tok", p.tokens as usize).collect();
    let text = words.join(" ");
    let usage = serde_json::json!({
        "prompt_tokens": 10, "completion_tokens": p.tokens, "total_tokens": 10 + p.tokens,
    });
    let complete = serde_json::json!({
        "id": ID, "object": "chat.completion", "created": CREATED, "model": "bench",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "finish_reason": "stop", "logprobs": null}],
        "usage": usage,
    });
    let chunk = |delta: serde_json::Value, finish: Option<&str>| {
        let c = serde_json::json!({
            "id": ID, "object": "chat.completion.chunk", "created": CREATED, "model": "bench",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}],
        });
        Bytes::from(format!("data: {c}\n\n"))
    };
    let per = words.len().div_ceil(p.chunks as usize).max(1);
    let content = words
        .chunks(per)
        .enumerate()
        .map(|(i, w)| {
            let mut piece = w.join(" ");
            if i > 0 {
                piece.insert(0, ' ');
            }
            chunk(serde_json::json!({ "content": piece }), None)
        })
        .collect();
    let usage_chunk = serde_json::json!({
        "id": ID, "object": "chat.completion.chunk", "created": CREATED, "model": "bench",
        "choices": [], "usage": usage,
    });
    Rendered {
        profile: p,
        complete: Bytes::from(complete.to_string()),
        role: chunk(
            serde_json::json!({"role": "assistant", "content": ""}),
            None,
        ),
        content,
        finish: chunk(serde_json::json!({}), Some("stop")),
        usage: Bytes::from(format!("data: {usage_chunk}\n\n")),
    }
}

struct Fast {
    default: Rendered,
    /// Profiles other requests asked for, rendered on first use.
    others: std::sync::RwLock<Vec<Arc<Rendered>>>,
}

impl Fast {
    fn rendered(&self, p: Profile) -> Arc<Rendered> {
        if let Ok(list) = self.others.read()
            && let Some(r) = list.iter().find(|r| r.profile == p)
        {
            return r.clone();
        }
        let r = Arc::new(render(p));
        if let Ok(mut list) = self.others.write()
            && list.len() < 64
        {
            list.push(r.clone());
        }
        r
    }
}

/// The `model` string of a request body, found without parsing the JSON.
fn model_of(body: &[u8]) -> &str {
    let Some(i) = find(body, b"\"model\"") else {
        return "";
    };
    let rest = &body[i + 7..];
    let Some(q) = rest.iter().position(|&b| b == b'"') else {
        return "";
    };
    let rest = &rest[q + 1..];
    let end = rest.iter().position(|&b| b == b'"').unwrap_or(0);
    std::str::from_utf8(&rest[..end]).unwrap_or("")
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `"key": true` anywhere in the body (whitespace around the colon allowed).
fn flag(body: &[u8], key: &[u8]) -> bool {
    let mut from = 0;
    while let Some(i) = find(&body[from..], key) {
        let after = from + i + key.len();
        let value = body[after..]
            .iter()
            .position(|b| !matches!(b, b' ' | b':' | b'\n' | b'\r' | b'\t'))
            .map_or(&[][..], |j| &body[after + j..]);
        if value.starts_with(b"true") {
            return true;
        }
        from = after;
    }
    false
}

async fn chat(State(fast): State<Arc<Fast>>, body: Bytes) -> Response {
    let model = model_of(&body);
    if !model.contains('=') {
        // The common case: the default profile, nothing to look up.
        return reply(&fast.default, &body).await;
    }
    let rendered = fast.rendered(fast.default.profile.with_overrides(model));
    reply(&rendered, &body).await
}

async fn reply(r: &Rendered, body: &[u8]) -> Response {
    let p = r.profile;
    if !flag(body, b"\"stream\"") {
        if p.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(p.latency_ms)).await;
        }
        let mut resp = Response::new(Body::from(r.complete.clone()));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return resp;
    }
    let mut frames = Vec::with_capacity(r.content.len() + 4);
    frames.push(r.role.clone());
    frames.extend(r.content.iter().cloned());
    frames.push(r.finish.clone());
    if flag(body, b"\"include_usage\"") {
        frames.push(r.usage.clone());
    }
    frames.push(Bytes::from_static(b"data: [DONE]\n\n"));
    let (ttft, gap) = (p.ttft_ms, p.gap_ms);
    let stream = futures_util::stream::unfold(
        (frames.into_iter(), 0usize),
        move |(mut it, i)| async move {
            let frame = it.next()?;
            // The role chunk waits for the first token; content chunks after
            // the first wait a gap each.
            let wait = match i {
                0 => ttft,
                1 => 0,
                _ => gap,
            };
            if wait > 0 {
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
            Some((Ok::<_, Infallible>(frame), (it, i + 1)))
        },
    );
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// The router: `POST /v1/chat/completions` (and `/chat/completions`),
/// `GET /health`.
pub fn router(profile: Profile) -> Router {
    let fast = Arc::new(Fast {
        default: render(profile),
        others: std::sync::RwLock::new(Vec::new()),
    });
    Router::new()
        .route("/v1/chat/completions", axum::routing::post(chat))
        .route("/chat/completions", axum::routing::post(chat))
        .route("/health", axum::routing::get(|| async { "ok" }))
        .with_state(fast)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn models_override_the_profile() {
        let p = Profile::default()
            .with_overrides("bench:tokens=100,chunks=10,gap_ms=5,x=1,ttft_ms=oops");
        assert_eq!((p.tokens, p.chunks, p.gap_ms, p.ttft_ms), (100, 10, 5, 0));
        assert_eq!(
            model_of(br#"{"stream": true, "model" : "tokens=3"}"#),
            "tokens=3"
        );
        assert!(flag(br#"{"a":1,"stream": true}"#, b"\"stream\""));
        assert!(!flag(
            br#"{"stream":false,"x":"\"stream\" true"}"#,
            b"\"stream\""
        ));
    }

    #[test]
    fn streams_split_the_words_into_chunks() {
        let r = render(Profile {
            tokens: 5,
            chunks: 2,
            ..Profile::default()
        });
        assert_eq!(r.content.len(), 2);
        let text: String = r
            .content
            .iter()
            .map(|c| {
                let s = std::str::from_utf8(c).unwrap();
                let v: serde_json::Value =
                    serde_json::from_str(s.trim_start_matches("data: ").trim()).unwrap();
                v["choices"][0]["delta"]["content"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(text, "tok tok tok tok tok");
        let v: serde_json::Value = serde_json::from_slice(&r.complete).unwrap();
        assert_eq!(v["usage"]["completion_tokens"], 5);
    }
}
