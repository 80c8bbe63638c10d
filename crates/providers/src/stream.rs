//! The stream type every provider's streaming reply is turned into.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use modelgate_api::openai::ChatChunk;
use modelgate_codec::UpstreamFailure;
use modelgate_codec::sse::{SseEvent, SseParser};
use modelgate_core::{ErrorClass, Usage};

use crate::http::{BodyStream, Response};

/// One step of a chat stream, in the OpenAI dialect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamItem {
    /// A `chat.completion.chunk` JSON payload.
    Chunk {
        data: Bytes,
        /// Carries generated text, a tool call or a finish reason.
        has_content: bool,
        /// Characters of generated text / tool arguments (for estimates when usage never arrives).
        content_chars: usize,
        /// Usage known after this chunk (cumulative), if the provider reported any.
        usage: Option<Usage>,
        /// False for chunks the gateway asked for itself (usage the client did not request).
        forward: bool,
    },
    /// The upstream finished cleanly.
    Done,
    /// The upstream failed; nothing follows.
    Failed(UpstreamFailure),
}

impl StreamItem {
    /// Wraps a chunk we built (translated or synthesised).
    pub fn from_chunk(chunk: &ChatChunk, usage: Option<Usage>) -> StreamItem {
        let mut has_content = false;
        let mut content_chars = 0;
        for c in &chunk.choices {
            has_content |= c.finish_reason.is_some();
            if let Some(t) = &c.delta.content {
                content_chars += t.chars().count();
                has_content |= !t.is_empty();
            }
            if let Some(t) = c
                .delta
                .extra
                .get("reasoning_content")
                .and_then(|v| v.as_str())
            {
                content_chars += t.chars().count();
                has_content |= !t.is_empty();
            }
            if let Some(t) = &c.delta.refusal {
                content_chars += t.chars().count();
                has_content = true;
            }
            if let Some(calls) = &c.delta.tool_calls {
                has_content = true;
                for call in calls {
                    if let Some(a) = call.function.as_ref().and_then(|f| f.arguments.as_ref()) {
                        content_chars += a.chars().count();
                    }
                }
            }
        }
        let data = serde_json::to_vec(chunk)
            .map(Bytes::from)
            .unwrap_or_default();
        StreamItem::Chunk {
            data,
            has_content,
            content_chars,
            usage,
            forward: true,
        }
    }
}

/// A stream of [`StreamItem`]s ending after `Done` or `Failed`. Dropping it
/// closes the upstream connection.
pub struct ChatStream {
    inner: Pin<Box<dyn Stream<Item = StreamItem> + Send>>,
}

impl ChatStream {
    /// Wraps any stream of items.
    pub fn new(s: impl Stream<Item = StreamItem> + Send + 'static) -> Self {
        ChatStream { inner: Box::pin(s) }
    }
}

impl Stream for ChatStream {
    type Item = StreamItem;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<StreamItem>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// Turns an upstream byte stream into SSE events, enforcing the idle timeout.
pub(crate) struct SseSource {
    body: BodyStream,
    parser: SseParser,
    events: VecDeque<SseEvent>,
    scratch: Vec<SseEvent>,
    idle: Duration,
    eof: bool,
    provider: &'static str,
}

impl SseSource {
    pub(crate) fn new(resp: Response, idle: Duration, provider: &'static str) -> Self {
        SseSource {
            body: resp.bytes_stream(),
            parser: SseParser::new(),
            events: VecDeque::new(),
            scratch: Vec::new(),
            idle,
            eof: false,
            provider,
        }
    }

    /// The next event; `Ok(None)` at end of stream.
    pub(crate) async fn next_event(&mut self) -> Result<Option<SseEvent>, UpstreamFailure> {
        loop {
            if let Some(e) = self.events.pop_front() {
                return Ok(Some(e));
            }
            if self.eof {
                return Ok(None);
            }
            match tokio::time::timeout(self.idle, self.body.next()).await {
                Err(_) => {
                    return Err(UpstreamFailure {
                        class: ErrorClass::UpstreamTimeout,
                        status: None,
                        message: format!(
                            "{}: no stream data for {} ms (idle timeout)",
                            self.provider,
                            self.idle.as_millis()
                        ),
                        upstream_code: None,
                    });
                }
                Ok(None) => {
                    self.eof = true;
                    self.parser.finish(&mut self.scratch);
                }
                Ok(Some(Err(_))) => {
                    return Err(UpstreamFailure {
                        class: ErrorClass::UpstreamUnavailable,
                        status: None,
                        message: format!("{}: connection lost mid-stream", self.provider),
                        upstream_code: None,
                    });
                }
                Ok(Some(Ok(bytes))) => self.parser.push(&bytes, &mut self.scratch),
            }
            self.events.extend(self.scratch.drain(..));
        }
    }
}

/// The failure for a stream that ended without its terminator.
pub(crate) fn ended_early(provider: &str) -> UpstreamFailure {
    UpstreamFailure {
        class: ErrorClass::UpstreamError,
        status: None,
        message: format!("{provider}: stream ended before completion"),
        upstream_code: None,
    }
}
