//! OTLP trace encoding: spans as an `ExportTraceServiceRequest` protobuf.
//!
//! A hand-written encoder for the few messages an exporter sends (no protobuf
//! code generator in the build). Field numbers follow
//! `opentelemetry/proto/collector/trace/v1/trace_service.proto`,
//! `trace/v1/trace.proto` and `common/v1/common.proto`.

/// What kind of span (`Span.SpanKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    Internal = 1,
    Server = 2,
    Client = 3,
}

/// A span's outcome (`Status`).
#[derive(Debug, Clone, PartialEq)]
pub enum SpanStatus {
    Unset,
    Ok,
    Error(String),
}

/// An attribute value (`AnyValue`).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    F64(f64),
    Bool(bool),
    StrArray(Vec<String>),
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Str(s.to_owned())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(s)
    }
}
impl From<i64> for Value {
    fn from(n: i64) -> Value {
        Value::Int(n)
    }
}
impl From<u64> for Value {
    fn from(n: u64) -> Value {
        Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}
impl From<f64> for Value {
    fn from(f: f64) -> Value {
        Value::F64(f)
    }
}

/// One finished span.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub trace_id: u128,
    pub span_id: u64,
    pub parent_span_id: Option<u64>,
    pub name: String,
    pub kind: SpanKind,
    pub start_unix_ns: u64,
    pub end_unix_ns: u64,
    pub attributes: Vec<(&'static str, Value)>,
    pub status: SpanStatus,
}

impl Span {
    /// Adds an attribute.
    pub fn attr(&mut self, key: &'static str, value: impl Into<Value>) {
        self.attributes.push((key, value.into()));
    }
}

/// Protobuf wire writer.
struct Pb<'a>(&'a mut Vec<u8>);

const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const LEN: u32 = 2;

impl Pb<'_> {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    fn tag(&mut self, field: u32, wire: u32) {
        self.varint(u64::from(field << 3 | wire));
    }
    fn bytes(&mut self, field: u32, b: &[u8]) {
        self.tag(field, LEN);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }
    fn string(&mut self, field: u32, s: &str) {
        self.bytes(field, s.as_bytes());
    }
    fn uint(&mut self, field: u32, v: u64) {
        self.tag(field, VARINT);
        self.varint(v);
    }
    fn fixed64(&mut self, field: u32, v: u64) {
        self.tag(field, FIXED64);
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn double(&mut self, field: u32, v: f64) {
        self.fixed64(field, v.to_bits());
    }
    /// A length-delimited sub-message written by `f`.
    fn message(&mut self, field: u32, f: impl FnOnce(&mut Pb<'_>)) {
        let mut inner = Vec::new();
        f(&mut Pb(&mut inner));
        self.bytes(field, &inner);
    }
}

fn any_value(pb: &mut Pb<'_>, v: &Value) {
    match v {
        Value::Str(s) => pb.string(1, s),
        Value::Bool(b) => pb.uint(2, u64::from(*b)),
        Value::Int(n) => pb.uint(3, *n as u64),
        Value::F64(f) => pb.double(4, *f),
        Value::StrArray(items) => pb.message(5, |arr| {
            for s in items {
                arr.message(1, |av| av.string(1, s));
            }
        }),
    }
}

fn key_value(pb: &mut Pb<'_>, field: u32, key: &str, v: &Value) {
    pb.message(field, |kv| {
        kv.string(1, key);
        kv.message(2, |av| any_value(av, v));
    });
}

fn span(pb: &mut Pb<'_>, s: &Span) {
    pb.bytes(1, &s.trace_id.to_be_bytes());
    pb.bytes(2, &s.span_id.to_be_bytes());
    if let Some(p) = s.parent_span_id {
        pb.bytes(4, &p.to_be_bytes());
    }
    pb.string(5, &s.name);
    pb.uint(6, s.kind as u64);
    pb.fixed64(7, s.start_unix_ns);
    pb.fixed64(8, s.end_unix_ns.max(s.start_unix_ns));
    for (k, v) in &s.attributes {
        key_value(pb, 9, k, v);
    }
    match &s.status {
        SpanStatus::Unset => {}
        SpanStatus::Ok => pb.message(15, |st| st.uint(3, 1)),
        SpanStatus::Error(msg) => pb.message(15, |st| {
            if !msg.is_empty() {
                st.string(2, msg);
            }
            st.uint(3, 2);
        }),
    }
}

/// Encodes an `ExportTraceServiceRequest` of `spans` from one service.
pub fn encode_export(resource: &[(&'static str, Value)], spans: &[Span]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 * spans.len() + 128);
    let mut pb = Pb(&mut out);
    pb.message(1, |rs| {
        rs.message(1, |res| {
            for (k, v) in resource {
                key_value(res, 1, k, v);
            }
        });
        rs.message(2, |ss| {
            ss.message(1, |scope| {
                scope.string(1, "modelgate");
                scope.string(2, env!("CARGO_PKG_VERSION"));
            });
            for s in spans {
                ss.message(2, |sp| span(sp, s));
            }
        });
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_tags_match_the_protobuf_encoding() {
        let mut v = Vec::new();
        let mut pb = Pb(&mut v);
        pb.uint(1, 150);
        // The protobuf documentation's example: field 1, value 150 -> 08 96 01.
        assert_eq!(v, [0x08, 0x96, 0x01]);
        let mut v = Vec::new();
        Pb(&mut v).string(2, "testing");
        assert_eq!(v, b"\x12\x07testing");
        let mut v = Vec::new();
        Pb(&mut v).uint(3, (-1i64) as u64);
        assert_eq!(v.len(), 1 + 10, "negative int64 takes ten bytes");
    }

    #[test]
    fn a_span_encodes_ids_big_endian_and_times_as_fixed64() {
        let s = Span {
            trace_id: 0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10,
            span_id: 0x1112_1314_1516_1718,
            parent_span_id: None,
            name: "n".into(),
            kind: SpanKind::Server,
            start_unix_ns: 5,
            end_unix_ns: 7,
            attributes: vec![],
            status: SpanStatus::Ok,
        };
        let mut v = Vec::new();
        span(&mut Pb(&mut v), &s);
        let mut want = vec![0x0a, 16];
        want.extend(1..=16u8);
        want.extend([0x12, 8]);
        want.extend(0x11..=0x18u8);
        want.extend([0x2a, 1, b'n', 0x30, 2]);
        want.extend([0x39, 5, 0, 0, 0, 0, 0, 0, 0]);
        want.extend([0x41, 7, 0, 0, 0, 0, 0, 0, 0]);
        want.extend([0x7a, 2, 0x18, 1]);
        assert_eq!(v, want);
    }
}
