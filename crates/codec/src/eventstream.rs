//! AWS event-stream binary framing (`application/vnd.amazon.eventstream`),
//! as used by Bedrock `ConverseStream`.
//!
//! Reference: the event stream encoding as documented for the AWS streaming
//! services (<https://docs.aws.amazon.com/transcribe/latest/dg/event-stream.html>,
//! <https://docs.aws.amazon.com/lexv2/latest/dg/event-stream-encoding.html>).
//! One message:
//!
//! ```text
//! total length   u32 BE   the whole message, these 4 bytes and both CRCs included
//! headers length u32 BE   the header section only
//! prelude CRC    u32 BE   CRC32 of the 8 bytes above
//! headers        ...      name-len u8, name (UTF-8), type u8, value
//! payload        ...      total - headers - 16 bytes
//! message CRC    u32 BE   CRC32 of everything before it
//! ```
//!
//! Header value types: 0 true, 1 false (no value), 2 byte, 3 int16, 4 int32,
//! 5 int64, 6 byte array (u16 length + bytes), 7 string (u16 length + UTF-8),
//! 8 timestamp (i64 milliseconds), 9 UUID (16 bytes). All integers are
//! big-endian. The CRC is CRC32 (IEEE 802.3, the one gzip uses).
//!
//! [`EventStreamDecoder`] is incremental: feed it bytes as they arrive, split
//! anywhere, and it returns the complete messages. A corrupt prelude means the
//! stream cannot be re-synchronised, so any error is final.

use std::fmt;

/// Bytes of the prelude (two lengths and the prelude CRC).
const PRELUDE_LEN: usize = 12;
/// Prelude plus the trailing message CRC: the size of an empty message.
const OVERHEAD: usize = 16;

/// Largest message the decoder accepts by default. The length comes from the
/// wire, so it is capped before anything is buffered for it; Bedrock events
/// are small (a few KiB), 16 MiB leaves ample room.
pub const DEFAULT_MAX_MESSAGE_LEN: usize = 16 * 1024 * 1024;

// ---------------------------------------------------------------------------
// CRC32 (IEEE)
// ---------------------------------------------------------------------------

/// Lookup table for the reflected polynomial 0xEDB88320, built at compile time.
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// CRC32 (IEEE 802.3 / gzip) of `data`.
pub fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c = CRC_TABLE[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8);
    }
    !c
}

// ---------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------

/// A typed header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderValue {
    /// Types 0 (true) and 1 (false).
    Bool(bool),
    /// Type 2.
    Byte(i8),
    /// Type 3.
    Int16(i16),
    /// Type 4.
    Int32(i32),
    /// Type 5.
    Int64(i64),
    /// Type 6.
    Bytes(Vec<u8>),
    /// Type 7.
    String(String),
    /// Type 8: milliseconds since the Unix epoch.
    Timestamp(i64),
    /// Type 9.
    Uuid([u8; 16]),
}

impl HeaderValue {
    /// The value as a string, when it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            HeaderValue::String(s) => Some(s),
            _ => None,
        }
    }

    fn type_id(&self) -> u8 {
        match self {
            HeaderValue::Bool(true) => 0,
            HeaderValue::Bool(false) => 1,
            HeaderValue::Byte(_) => 2,
            HeaderValue::Int16(_) => 3,
            HeaderValue::Int32(_) => 4,
            HeaderValue::Int64(_) => 5,
            HeaderValue::Bytes(_) => 6,
            HeaderValue::String(_) => 7,
            HeaderValue::Timestamp(_) => 8,
            HeaderValue::Uuid(_) => 9,
        }
    }
}

/// One header: a name and a typed value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// At most 255 bytes of UTF-8.
    pub name: String,
    /// The value.
    pub value: HeaderValue,
}

/// One decoded event-stream message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// Headers in wire order.
    pub headers: Vec<Header>,
    /// The payload bytes (JSON for Bedrock).
    pub payload: Vec<u8>,
}

impl Message {
    /// The value of the first header named `name`.
    pub fn header(&self, name: &str) -> Option<&HeaderValue> {
        self.headers
            .iter()
            .find(|h| h.name == name)
            .map(|h| &h.value)
    }

    /// The string value of the header named `name`.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(HeaderValue::as_str)
    }

    /// `:message-type`: `event`, `exception` or `error`.
    pub fn message_type(&self) -> Option<&str> {
        self.header_str(":message-type")
    }

    /// `:event-type`, on events: the member of the stream union
    /// (`messageStart`, `contentBlockDelta`, ...).
    pub fn event_type(&self) -> Option<&str> {
        self.header_str(":event-type")
    }

    /// `:exception-type`, on modelled exceptions (`throttlingException`, ...).
    pub fn exception_type(&self) -> Option<&str> {
        self.header_str(":exception-type")
    }

    /// `:content-type` of the payload (`application/json`).
    pub fn content_type(&self) -> Option<&str> {
        self.header_str(":content-type")
    }

    /// `:error-code`, on unmodelled errors (`:message-type` = `error`).
    pub fn error_code(&self) -> Option<&str> {
        self.header_str(":error-code")
    }

    /// `:error-message`, on unmodelled errors.
    pub fn error_message(&self) -> Option<&str> {
        self.header_str(":error-message")
    }
}

/// Why the byte stream is not valid event-stream framing. Any of these ends
/// the stream: the decoder cannot find the next message boundary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The prelude CRC does not match the two lengths.
    PreludeCrc {
        /// The CRC on the wire.
        expected: u32,
        /// The CRC of the bytes received.
        actual: u32,
    },
    /// The message CRC does not match the message.
    MessageCrc {
        /// The CRC on the wire.
        expected: u32,
        /// The CRC of the bytes received.
        actual: u32,
    },
    /// The lengths in the prelude are impossible (too short, or the headers
    /// do not fit in the message).
    InvalidLength {
        /// The total length on the wire.
        total: u32,
        /// The headers length on the wire.
        headers: u32,
    },
    /// The message is longer than the decoder accepts.
    TooLarge {
        /// The total length on the wire.
        total: u32,
        /// The cap.
        max: usize,
    },
    /// The header section is malformed (what is wrong, in words).
    InvalidHeader(&'static str),
    /// The stream ended inside a message.
    Truncated {
        /// Bytes of the incomplete message received.
        buffered: usize,
    },
    /// An earlier error ended the stream.
    Poisoned,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::PreludeCrc { expected, actual } => write!(
                f,
                "event stream prelude CRC mismatch (wire {expected:#010x}, computed {actual:#010x})"
            ),
            Error::MessageCrc { expected, actual } => write!(
                f,
                "event stream message CRC mismatch (wire {expected:#010x}, computed {actual:#010x})"
            ),
            Error::InvalidLength { total, headers } => write!(
                f,
                "event stream message has impossible lengths (total {total}, headers {headers})"
            ),
            Error::TooLarge { total, max } => {
                write!(f, "event stream message of {total} bytes exceeds {max}")
            }
            Error::InvalidHeader(what) => write!(f, "event stream header: {what}"),
            Error::Truncated { buffered } => {
                write!(f, "event stream ended inside a message ({buffered} bytes)")
            }
            Error::Poisoned => write!(f, "event stream already failed"),
        }
    }
}

impl std::error::Error for Error {}

fn be_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_be_bytes(a)
}

/// Splits `n` bytes off the front of `buf`.
fn take<'a>(buf: &mut &'a [u8], n: usize, what: &'static str) -> Result<&'a [u8], Error> {
    if buf.len() < n {
        return Err(Error::InvalidHeader(what));
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Ok(head)
}

fn take_array<const N: usize>(buf: &mut &[u8], what: &'static str) -> Result<[u8; N], Error> {
    let mut a = [0u8; N];
    a.copy_from_slice(take(buf, N, what)?);
    Ok(a)
}

/// Parses the header section (exactly `buf`).
fn parse_headers(mut buf: &[u8]) -> Result<Vec<Header>, Error> {
    let mut headers = Vec::new();
    while !buf.is_empty() {
        let [name_len] = take_array::<1>(&mut buf, "truncated name length")?;
        if name_len == 0 {
            return Err(Error::InvalidHeader("empty header name"));
        }
        let name = take(&mut buf, usize::from(name_len), "truncated name")?;
        let name = std::str::from_utf8(name)
            .map_err(|_| Error::InvalidHeader("name is not UTF-8"))?
            .to_owned();
        let [kind] = take_array::<1>(&mut buf, "truncated value type")?;
        let value = match kind {
            0 => HeaderValue::Bool(true),
            1 => HeaderValue::Bool(false),
            2 => HeaderValue::Byte(i8::from_be_bytes(take_array(&mut buf, "truncated byte")?)),
            3 => HeaderValue::Int16(i16::from_be_bytes(take_array(&mut buf, "truncated int16")?)),
            4 => HeaderValue::Int32(i32::from_be_bytes(take_array(&mut buf, "truncated int32")?)),
            5 => HeaderValue::Int64(i64::from_be_bytes(take_array(&mut buf, "truncated int64")?)),
            6 | 7 => {
                let len = u16::from_be_bytes(take_array(&mut buf, "truncated value length")?);
                let bytes = take(&mut buf, usize::from(len), "truncated value")?;
                if kind == 6 {
                    HeaderValue::Bytes(bytes.to_vec())
                } else {
                    HeaderValue::String(
                        std::str::from_utf8(bytes)
                            .map_err(|_| Error::InvalidHeader("string value is not UTF-8"))?
                            .to_owned(),
                    )
                }
            }
            8 => HeaderValue::Timestamp(i64::from_be_bytes(take_array(
                &mut buf,
                "truncated timestamp",
            )?)),
            9 => HeaderValue::Uuid(take_array(&mut buf, "truncated uuid")?),
            // The value's length depends on its type: an unknown type leaves
            // no way to find the next header.
            _ => return Err(Error::InvalidHeader("unknown value type")),
        };
        headers.push(Header { name, value });
    }
    Ok(headers)
}

/// Encodes one message (for tests and mock upstreams).
///
/// Header names longer than 255 bytes and byte/string values longer than
/// 65,535 bytes cannot be represented; they are cut to fit.
pub fn encode(message: &Message) -> Vec<u8> {
    let mut headers = Vec::new();
    for h in &message.headers {
        let name = &h.name.as_bytes()[..h.name.len().min(usize::from(u8::MAX))];
        headers.push(name.len() as u8);
        headers.extend_from_slice(name);
        headers.push(h.value.type_id());
        match &h.value {
            HeaderValue::Bool(_) => {}
            HeaderValue::Byte(v) => headers.extend_from_slice(&v.to_be_bytes()),
            HeaderValue::Int16(v) => headers.extend_from_slice(&v.to_be_bytes()),
            HeaderValue::Int32(v) => headers.extend_from_slice(&v.to_be_bytes()),
            HeaderValue::Int64(v) | HeaderValue::Timestamp(v) => {
                headers.extend_from_slice(&v.to_be_bytes());
            }
            HeaderValue::Bytes(b) => push_short_bytes(&mut headers, b),
            HeaderValue::String(s) => push_short_bytes(&mut headers, s.as_bytes()),
            HeaderValue::Uuid(u) => headers.extend_from_slice(u),
        }
    }
    let total = OVERHEAD + headers.len() + message.payload.len();
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(headers.len() as u32).to_be_bytes());
    let prelude_crc = crc32(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&headers);
    out.extend_from_slice(&message.payload);
    let message_crc = crc32(&out);
    out.extend_from_slice(&message_crc.to_be_bytes());
    out
}

fn push_short_bytes(out: &mut Vec<u8>, b: &[u8]) {
    let b = &b[..b.len().min(usize::from(u16::MAX))];
    out.extend_from_slice(&(b.len() as u16).to_be_bytes());
    out.extend_from_slice(b);
}

/// Incremental decoder: bytes in, complete messages out.
#[derive(Debug)]
pub struct EventStreamDecoder {
    buf: Vec<u8>,
    max_message_len: usize,
    failed: bool,
}

impl Default for EventStreamDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl EventStreamDecoder {
    /// A decoder accepting messages up to [`DEFAULT_MAX_MESSAGE_LEN`].
    pub fn new() -> Self {
        Self::with_max_message_len(DEFAULT_MAX_MESSAGE_LEN)
    }

    /// A decoder accepting messages up to `max` bytes.
    pub fn with_max_message_len(max: usize) -> Self {
        EventStreamDecoder {
            buf: Vec::new(),
            max_message_len: max,
            failed: false,
        }
    }

    /// Feeds `bytes`; returns every message completed by them, in order.
    ///
    /// Messages completed before a corrupt one in the same call are lost with
    /// the error: the stream is unusable from that point anyway.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Message>, Error> {
        if self.failed {
            return Err(Error::Poisoned);
        }
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        let mut start = 0;
        let result = loop {
            match self.next_message(start) {
                Ok(Some((message, len))) => {
                    out.push(message);
                    start += len;
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        self.buf.drain(..start);
        match result {
            Ok(()) => Ok(out),
            Err(e) => {
                self.failed = true;
                self.buf.clear();
                Err(e)
            }
        }
    }

    /// Call at the end of the body: fails if it ended inside a message.
    pub fn finish(&self) -> Result<(), Error> {
        if self.failed {
            Err(Error::Poisoned)
        } else if self.buf.is_empty() {
            Ok(())
        } else {
            Err(Error::Truncated {
                buffered: self.buf.len(),
            })
        }
    }

    /// Bytes received but not yet part of a complete message.
    pub fn buffered_len(&self) -> usize {
        self.buf.len()
    }

    /// Decodes the message starting at `start`, if it is complete.
    fn next_message(&self, start: usize) -> Result<Option<(Message, usize)>, Error> {
        let avail = &self.buf[start..];
        if avail.len() < PRELUDE_LEN {
            return Ok(None);
        }
        // Check the prelude before trusting its lengths.
        let expected = be_u32(&avail[8..12]);
        let actual = crc32(&avail[..8]);
        if expected != actual {
            return Err(Error::PreludeCrc { expected, actual });
        }
        let total_raw = be_u32(&avail[0..4]);
        let headers_raw = be_u32(&avail[4..8]);
        let total = total_raw as usize;
        let headers_len = headers_raw as usize;
        if total < OVERHEAD || headers_len > total - OVERHEAD {
            return Err(Error::InvalidLength {
                total: total_raw,
                headers: headers_raw,
            });
        }
        if total > self.max_message_len {
            return Err(Error::TooLarge {
                total: total_raw,
                max: self.max_message_len,
            });
        }
        if avail.len() < total {
            return Ok(None);
        }
        let frame = &avail[..total];
        let expected = be_u32(&frame[total - 4..]);
        let actual = crc32(&frame[..total - 4]);
        if expected != actual {
            return Err(Error::MessageCrc { expected, actual });
        }
        let headers_end = PRELUDE_LEN + headers_len;
        let headers = parse_headers(&frame[PRELUDE_LEN..headers_end])?;
        let payload = frame[headers_end..total - 4].to_vec();
        Ok(Some((Message { headers, payload }, total)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn string_header(name: &str, value: &str) -> Header {
        Header {
            name: name.into(),
            value: HeaderValue::String(value.into()),
        }
    }

    #[test]
    fn crc32_check_value() {
        // The standard check value of CRC-32/ISO-HDLC (the gzip CRC).
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    /// Published example frames (the `event_stream` Elixir package's
    /// documentation, <https://hexdocs.pm/event_stream/EventStream.html>),
    /// produced independently of this code.
    #[test]
    fn decodes_known_frames() {
        let no_headers: [u8; 30] = [
            0, 0, 0, 30, 0, 0, 0, 0, 186, 242, 246, 138, 123, 34, 102, 111, 111, 34, 58, 32, 34,
            98, 97, 114, 34, 125, 174, 114, 88, 228,
        ];
        let with_header: [u8; 62] = [
            0, 0, 0, 62, 0, 0, 0, 32, 64, 93, 249, 70, 12, 99, 111, 110, 116, 101, 110, 116, 45,
            116, 121, 112, 101, 7, 0, 16, 97, 112, 112, 108, 105, 99, 97, 116, 105, 111, 110, 47,
            106, 115, 111, 110, 123, 34, 102, 111, 111, 34, 58, 32, 34, 98, 97, 114, 34, 125, 111,
            162, 191, 59,
        ];
        let mut d = EventStreamDecoder::new();
        let mut msgs = d.push(&no_headers).unwrap();
        msgs.extend(d.push(&with_header).unwrap());
        d.finish().unwrap();
        assert_eq!(
            msgs,
            vec![
                Message {
                    headers: vec![],
                    payload: br#"{"foo": "bar"}"#.to_vec()
                },
                Message {
                    headers: vec![string_header("content-type", "application/json")],
                    payload: br#"{"foo": "bar"}"#.to_vec()
                },
            ]
        );
        // And our encoder produces the same bytes.
        assert_eq!(encode(&msgs[0]), no_headers);
        assert_eq!(encode(&msgs[1]), with_header);
    }

    #[test]
    fn accessors_read_the_standard_headers() {
        let m = Message {
            headers: vec![
                string_header(":message-type", "exception"),
                string_header(":exception-type", "throttlingException"),
                string_header(":content-type", "application/json"),
            ],
            payload: br#"{"message":"slow down"}"#.to_vec(),
        };
        let back = EventStreamDecoder::new().push(&encode(&m)).unwrap();
        assert_eq!(back, vec![m.clone()]);
        assert_eq!(back[0].message_type(), Some("exception"));
        assert_eq!(back[0].exception_type(), Some("throttlingException"));
        assert_eq!(back[0].content_type(), Some("application/json"));
        assert_eq!(back[0].event_type(), None);
    }

    #[test]
    fn every_header_type_round_trips() {
        let m = Message {
            headers: vec![
                Header {
                    name: "t".into(),
                    value: HeaderValue::Bool(true),
                },
                Header {
                    name: "f".into(),
                    value: HeaderValue::Bool(false),
                },
                Header {
                    name: "b".into(),
                    value: HeaderValue::Byte(-3),
                },
                Header {
                    name: "s".into(),
                    value: HeaderValue::Int16(-300),
                },
                Header {
                    name: "i".into(),
                    value: HeaderValue::Int32(70_000),
                },
                Header {
                    name: "l".into(),
                    value: HeaderValue::Int64(-5_000_000_000),
                },
                Header {
                    name: "bytes".into(),
                    value: HeaderValue::Bytes(vec![0, 255, 7]),
                },
                Header {
                    name: "ts".into(),
                    value: HeaderValue::Timestamp(1_700_000_000_000),
                },
                Header {
                    name: "id".into(),
                    value: HeaderValue::Uuid([9; 16]),
                },
                string_header(":event-type", "messageStop"),
            ],
            payload: b"{}".to_vec(),
        };
        let got = EventStreamDecoder::new().push(&encode(&m)).unwrap();
        assert_eq!(got, vec![m]);
        // Headers of other types are skipped over correctly: the string
        // header after them is still found.
        assert_eq!(got[0].event_type(), Some("messageStop"));
    }

    #[test]
    fn hand_built_frame_with_int_header() {
        // Built byte by byte: one int32 header `n` = 1, payload "x".
        let mut frame = vec![0, 0, 0, 24, 0, 0, 0, 7];
        frame.extend_from_slice(&crc32(&frame).to_be_bytes());
        frame.extend_from_slice(&[1, b'n', 4, 0, 0, 0, 1, b'x']);
        frame.extend_from_slice(&crc32(&frame).to_be_bytes());
        let got = EventStreamDecoder::new().push(&frame).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].header("n"), Some(&HeaderValue::Int32(1)));
        assert_eq!(got[0].payload, b"x");
    }

    #[test]
    fn corrupt_prelude_crc_is_an_error() {
        let mut frame = encode(&Message {
            headers: vec![],
            payload: b"{}".to_vec(),
        });
        frame[9] ^= 0x01;
        let mut d = EventStreamDecoder::new();
        assert!(matches!(d.push(&frame), Err(Error::PreludeCrc { .. })));
        // The stream is finished after an error.
        assert_eq!(d.push(b""), Err(Error::Poisoned));
    }

    #[test]
    fn corrupt_payload_is_a_message_crc_error() {
        let mut frame = encode(&Message {
            headers: vec![string_header(":event-type", "messageStart")],
            payload: br#"{"role":"assistant"}"#.to_vec(),
        });
        let n = frame.len();
        frame[n - 6] ^= 0x20;
        assert!(matches!(
            EventStreamDecoder::new().push(&frame),
            Err(Error::MessageCrc { .. })
        ));
    }

    #[test]
    fn impossible_lengths_are_errors() {
        // Headers longer than the message.
        let mut frame = vec![0, 0, 0, 16, 0, 0, 0, 1];
        frame.extend_from_slice(&crc32(&frame).to_be_bytes());
        assert!(matches!(
            EventStreamDecoder::new().push(&frame),
            Err(Error::InvalidLength { .. })
        ));
        // Shorter than the fixed overhead.
        let mut frame = vec![0, 0, 0, 8, 0, 0, 0, 0];
        frame.extend_from_slice(&crc32(&frame).to_be_bytes());
        assert!(matches!(
            EventStreamDecoder::new().push(&frame),
            Err(Error::InvalidLength { .. })
        ));
        // Over the cap: refused before buffering the body.
        let mut frame = vec![0, 0, 1, 0, 0, 0, 0, 0];
        frame.extend_from_slice(&crc32(&frame).to_be_bytes());
        assert!(matches!(
            EventStreamDecoder::with_max_message_len(100).push(&frame),
            Err(Error::TooLarge { total: 256, .. })
        ));
    }

    #[test]
    fn malformed_headers_are_errors() {
        let frame_with = |headers: &[u8]| {
            let mut f = Vec::new();
            f.extend_from_slice(&((16 + headers.len()) as u32).to_be_bytes());
            f.extend_from_slice(&(headers.len() as u32).to_be_bytes());
            f.extend_from_slice(&crc32(&f).to_be_bytes());
            f.extend_from_slice(headers);
            f.extend_from_slice(&crc32(&f).to_be_bytes());
            f
        };
        for bad in [
            &[1, b'a', 10][..],        // unknown type
            &[1, b'a', 7, 0, 5, b'x'], // string longer than the section
            &[3, b'a'],                // name cut short
            &[0, 7, 0, 0],             // empty name
            &[1, b'a', 7, 0, 1, 0xFF], // not UTF-8
        ] {
            assert!(
                matches!(
                    EventStreamDecoder::new().push(&frame_with(bad)),
                    Err(Error::InvalidHeader(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn truncated_stream_is_reported_by_finish() {
        let frame = encode(&Message {
            headers: vec![],
            payload: b"abc".to_vec(),
        });
        let mut d = EventStreamDecoder::new();
        assert!(d.push(&frame[..frame.len() - 1]).unwrap().is_empty());
        assert_eq!(d.buffered_len(), frame.len() - 1);
        assert_eq!(
            d.finish(),
            Err(Error::Truncated {
                buffered: frame.len() - 1
            })
        );
        assert_eq!(d.push(&frame[frame.len() - 1..]).unwrap().len(), 1);
        assert_eq!(d.finish(), Ok(()));
    }

    fn header_value() -> impl Strategy<Value = HeaderValue> {
        prop_oneof![
            any::<bool>().prop_map(HeaderValue::Bool),
            any::<i8>().prop_map(HeaderValue::Byte),
            any::<i16>().prop_map(HeaderValue::Int16),
            any::<i32>().prop_map(HeaderValue::Int32),
            any::<i64>().prop_map(HeaderValue::Int64),
            proptest::collection::vec(any::<u8>(), 0..20).prop_map(HeaderValue::Bytes),
            "\\PC{0,20}".prop_map(HeaderValue::String),
            any::<i64>().prop_map(HeaderValue::Timestamp),
            any::<[u8; 16]>().prop_map(HeaderValue::Uuid),
        ]
    }

    fn message() -> impl Strategy<Value = Message> {
        (
            proptest::collection::vec(("[:a-z-]{1,12}", header_value()), 0..5),
            proptest::collection::vec(any::<u8>(), 0..64),
        )
            .prop_map(|(headers, payload)| Message {
                headers: headers
                    .into_iter()
                    .map(|(name, value)| Header { name, value })
                    .collect(),
                payload,
            })
    }

    proptest! {
        /// N messages, encoded and fed in pieces cut at arbitrary points,
        /// come out as the same N messages.
        #[test]
        fn any_split_gives_the_same_messages(
            msgs in proptest::collection::vec(message(), 1..6),
            cuts in proptest::collection::vec(any::<usize>(), 0..12),
        ) {
            let bytes: Vec<u8> = msgs.iter().flat_map(encode).collect();
            let mut bounds: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
            bounds.push(0);
            bounds.push(bytes.len());
            bounds.sort_unstable();
            let mut d = EventStreamDecoder::new();
            let mut got = Vec::new();
            for w in bounds.windows(2) {
                got.extend(d.push(&bytes[w[0]..w[1]]).unwrap());
            }
            prop_assert!(d.finish().is_ok());
            prop_assert_eq!(got, msgs);
        }

        /// One flipped bit anywhere is detected (CRC32 catches every
        /// single-bit error), never decoded into a wrong message.
        #[test]
        fn any_flipped_bit_is_an_error(msg in message(), pos in any::<usize>(), bit in 0u8..8) {
            let mut bytes = encode(&msg);
            let i = pos % bytes.len();
            bytes[i] ^= 1 << bit;
            let mut d = EventStreamDecoder::new();
            match d.push(&bytes) {
                Err(_) => {}
                // A corrupted length can make the frame look incomplete;
                // the end of the stream then reports it.
                Ok(got) => {
                    prop_assert!(got.is_empty());
                    prop_assert!(d.finish().is_err());
                }
            }
        }
    }
}
