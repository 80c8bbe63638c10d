//! A local OTLP/HTTP trace receiver: accepts `POST /v1/traces` protobuf
//! bodies and decodes the spans with a small protobuf reader of its own
//! (independent of the gateway's encoder), so tests can check what a real
//! collector would see.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;

/// An attribute value as decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    Str(String),
    Bool(bool),
    Int(i64),
    F64(f64),
    Array(Vec<Attr>),
}

impl Attr {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Attr::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Attr::Int(n) => Some(*n),
            _ => None,
        }
    }
}

/// One decoded span.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedSpan {
    /// Lower-case hex, as in `traceparent`.
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub name: String,
    /// 1 internal, 2 server, 3 client.
    pub kind: u64,
    pub start_ns: u64,
    pub end_ns: u64,
    pub attributes: BTreeMap<String, Attr>,
    /// 0 unset, 1 ok, 2 error.
    pub status_code: u64,
    pub status_message: String,
    /// `service.name` of the resource the span came with.
    pub service_name: Option<String>,
}

impl ReceivedSpan {
    pub fn attr(&self, key: &str) -> Option<&Attr> {
        self.attributes.get(key)
    }
    pub fn str(&self, key: &str) -> Option<&str> {
        self.attr(key).and_then(Attr::as_str)
    }
    pub fn int(&self, key: &str) -> Option<i64> {
        self.attr(key).and_then(Attr::as_i64)
    }
}

#[derive(Default)]
struct Received {
    spans: Vec<ReceivedSpan>,
    headers: Vec<HeaderMap>,
    bad: Vec<String>,
}

/// The receiver; stops when dropped.
pub struct OtlpReceiver {
    addr: SocketAddr,
    received: Arc<Mutex<Received>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl OtlpReceiver {
    pub async fn start() -> OtlpReceiver {
        let received = Arc::new(Mutex::new(Received::default()));
        let app = Router::new()
            .route("/v1/traces", axum::routing::post(accept))
            .with_state(received.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        OtlpReceiver {
            addr,
            received,
            task,
        }
    }

    /// The traces endpoint URL.
    pub fn url(&self) -> String {
        format!("http://{}/v1/traces", self.addr)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        let r = self.received.lock().unwrap();
        assert!(r.bad.is_empty(), "malformed export requests: {:?}", r.bad);
        r.spans.clone()
    }

    /// Headers of every export request so far.
    pub fn headers(&self) -> Vec<HeaderMap> {
        self.received.lock().unwrap().headers.clone()
    }

    /// Waits (bounded, polling) until `n` spans of `trace_id` arrived.
    pub async fn wait_for_trace(&self, trace_id: &str, n: usize) -> Vec<ReceivedSpan> {
        for _ in 0..500 {
            let spans: Vec<_> = self
                .spans()
                .into_iter()
                .filter(|s| s.trace_id == trace_id)
                .collect();
            if spans.len() >= n {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "trace {trace_id}: fewer than {n} spans after 10 s; have {:?}",
            self.spans()
        );
    }
}

async fn accept(
    State(received): State<Arc<Mutex<Received>>>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let mut r = received.lock().unwrap();
    if headers.get("content-type").and_then(|v| v.to_str().ok()) != Some("application/x-protobuf") {
        r.bad
            .push("content-type is not application/x-protobuf".into());
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, Bytes::new());
    }
    match decode_export(&body) {
        Ok(spans) => {
            r.spans.extend(spans);
            r.headers.push(headers);
            // An empty ExportTraceServiceResponse.
            (StatusCode::OK, Bytes::new())
        }
        Err(e) => {
            r.bad.push(e);
            (StatusCode::BAD_REQUEST, Bytes::new())
        }
    }
}

/// One protobuf field.
enum Field<'a> {
    Varint(u64),
    Fixed64(u64),
    Len(&'a [u8]),
    Fixed32,
}

/// Reads every field of one message.
fn fields(mut b: &[u8]) -> Result<Vec<(u64, Field<'_>)>, String> {
    fn varint(b: &mut &[u8]) -> Result<u64, String> {
        let mut v = 0u64;
        for i in 0..10 {
            let (&byte, rest) = b.split_first().ok_or("truncated varint")?;
            *b = rest;
            v |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint too long".into())
    }
    let mut out = Vec::new();
    while !b.is_empty() {
        let key = varint(&mut b)?;
        let (field, wire) = (key >> 3, key & 7);
        let f = match wire {
            0 => Field::Varint(varint(&mut b)?),
            1 => {
                if b.len() < 8 {
                    return Err("truncated fixed64".into());
                }
                let (x, rest) = b.split_at(8);
                b = rest;
                Field::Fixed64(u64::from_le_bytes(x.try_into().unwrap()))
            }
            2 => {
                let n = usize::try_from(varint(&mut b)?).map_err(|_| "length")?;
                if b.len() < n {
                    return Err("truncated length-delimited field".into());
                }
                let (x, rest) = b.split_at(n);
                b = rest;
                Field::Len(x)
            }
            5 => {
                if b.len() < 4 {
                    return Err("truncated fixed32".into());
                }
                b = &b[4..];
                Field::Fixed32
            }
            w => return Err(format!("unexpected wire type {w}")),
        };
        out.push((field, f));
    }
    Ok(out)
}

fn text(b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|_| "invalid UTF-8".to_owned())
}

fn any_value(b: &[u8]) -> Result<Attr, String> {
    let Some((n, f)) = fields(b)?.into_iter().next() else {
        return Err("empty AnyValue".into());
    };
    {
        Ok(match (n, f) {
            (1, Field::Len(s)) => Attr::Str(text(s)?),
            (2, Field::Varint(v)) => Attr::Bool(v != 0),
            (3, Field::Varint(v)) => Attr::Int(v as i64),
            (4, Field::Fixed64(v)) => Attr::F64(f64::from_bits(v)),
            (5, Field::Len(arr)) => {
                let mut items = Vec::new();
                for (n, f) in fields(arr)? {
                    if let (1, Field::Len(v)) = (n, f) {
                        items.push(any_value(v)?);
                    }
                }
                Attr::Array(items)
            }
            (n, _) => return Err(format!("AnyValue field {n} unexpected")),
        })
    }
}

fn key_value(b: &[u8]) -> Result<(String, Attr), String> {
    let (mut key, mut value) = (None, None);
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Len(k)) => key = Some(text(k)?),
            (2, Field::Len(v)) => value = Some(any_value(v)?),
            _ => return Err("KeyValue: unexpected field".into()),
        }
    }
    Ok((key.ok_or("KeyValue without key")?, value.ok_or("no value")?))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn span(b: &[u8], service: Option<&String>) -> Result<ReceivedSpan, String> {
    let mut s = ReceivedSpan {
        trace_id: String::new(),
        span_id: String::new(),
        parent_span_id: None,
        name: String::new(),
        kind: 0,
        start_ns: 0,
        end_ns: 0,
        attributes: BTreeMap::new(),
        status_code: 0,
        status_message: String::new(),
        service_name: service.cloned(),
    };
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Len(v)) if v.len() == 16 => s.trace_id = hex(v),
            (2, Field::Len(v)) if v.len() == 8 => s.span_id = hex(v),
            (4, Field::Len(v)) if v.len() == 8 => s.parent_span_id = Some(hex(v)),
            (4, Field::Len([])) => {}
            (5, Field::Len(v)) => s.name = text(v)?,
            (6, Field::Varint(v)) => s.kind = v,
            (7, Field::Fixed64(v)) => s.start_ns = v,
            (8, Field::Fixed64(v)) => s.end_ns = v,
            (9, Field::Len(v)) => {
                let (k, a) = key_value(v)?;
                s.attributes.insert(k, a);
            }
            (15, Field::Len(st)) => {
                for (n, f) in fields(st)? {
                    match (n, f) {
                        (2, Field::Len(m)) => s.status_message = text(m)?,
                        (3, Field::Varint(c)) => s.status_code = c,
                        _ => return Err("Status: unexpected field".into()),
                    }
                }
            }
            (3 | 10 | 11 | 12 | 13 | 14, _) | (16, Field::Fixed32) => {}
            (n, _) => return Err(format!("Span field {n} has an unexpected type or size")),
        }
    }
    if s.trace_id.is_empty() || s.span_id.is_empty() {
        return Err("span without trace or span id".into());
    }
    Ok(s)
}

/// Decodes an `ExportTraceServiceRequest`.
pub fn decode_export(b: &[u8]) -> Result<Vec<ReceivedSpan>, String> {
    let mut out = Vec::new();
    for (n, f) in fields(b)? {
        let (1, Field::Len(rs)) = (n, f) else {
            return Err("ExportTraceServiceRequest: unexpected field".into());
        };
        let mut service = None;
        let mut scope_spans = Vec::new();
        for (n, f) in fields(rs)? {
            match (n, f) {
                (1, Field::Len(res)) => {
                    for (n, f) in fields(res)? {
                        if let (1, Field::Len(kv)) = (n, f) {
                            let (k, v) = key_value(kv)?;
                            if k == "service.name" {
                                service = v.as_str().map(str::to_owned);
                            }
                        }
                    }
                }
                (2, Field::Len(ss)) => scope_spans.push(ss),
                (3, Field::Len(_)) => {}
                _ => return Err("ResourceSpans: unexpected field".into()),
            }
        }
        for ss in scope_spans {
            for (n, f) in fields(ss)? {
                match (n, f) {
                    (1, Field::Len(_)) | (3, Field::Len(_)) => {}
                    (2, Field::Len(sp)) => out.push(span(sp, service.as_ref())?),
                    _ => return Err("ScopeSpans: unexpected field".into()),
                }
            }
        }
    }
    Ok(out)
}
