//! Server-sent events: an incremental parser and the encoder we use towards clients.
//!
//! The parser follows the WHATWG event-stream rules
//! (<https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation>):
//! lines end in CRLF, LF or CR; `:` starts a comment; `data` lines accumulate;
//! a blank line dispatches. Input may be split at any byte, including inside a
//! UTF-8 sequence or between the CR and LF of a line ending.

/// One dispatched event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The data lines joined with `\n`.
    pub data: String,
    /// The `id:` field, if any.
    pub id: Option<String>,
}

/// Incremental SSE parser. Feed bytes with [`SseParser::push`]; call
/// [`SseParser::finish`] at end of input.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    after_cr: bool,
    started: bool,
    data: String,
    has_data: bool,
    event: Option<String>,
    id: Option<String>,
}

impl SseParser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds `bytes`, appending every completed event to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) {
        let mut rest = bytes;
        if self.after_cr && !rest.is_empty() {
            self.after_cr = false;
            if rest[0] == b'\n' {
                rest = &rest[1..];
            }
        }
        while let Some(pos) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.line.extend_from_slice(&rest[..pos]);
            let was_cr = rest[pos] == b'\r';
            rest = &rest[pos + 1..];
            if was_cr {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
            self.take_line(out);
        }
        self.line.extend_from_slice(rest);
    }

    /// Ends the input. A last event missing its blank line is still dispatched:
    /// some servers end the stream right after `data: [DONE]\n`.
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) {
        if !self.line.is_empty() {
            self.take_line(out);
        }
        self.dispatch(out);
    }

    fn take_line(&mut self, out: &mut Vec<SseEvent>) {
        let mut line = std::mem::take(&mut self.line);
        if !self.started {
            self.started = true;
            if line.starts_with(&[0xEF, 0xBB, 0xBF]) {
                line.drain(..3);
            }
        }
        if line.is_empty() {
            self.dispatch(out);
        } else {
            self.field(&line);
        }
        line.clear();
        self.line = line;
    }

    fn field(&mut self, line: &[u8]) {
        if line[0] == b':' {
            return;
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &[][..]),
        };
        let value = String::from_utf8_lossy(value);
        match name {
            b"data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&value);
                self.has_data = true;
            }
            b"event" => self.event = Some(value.into_owned()),
            b"id" if !value.contains('\0') => self.id = Some(value.into_owned()),
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        if self.has_data {
            out.push(SseEvent {
                event: self.event.take(),
                data: std::mem::take(&mut self.data),
                id: self.id.clone(),
            });
        }
        self.has_data = false;
        self.data.clear();
        self.event = None;
    }
}

/// Appends `data: <payload>\n\n` to `buf`. A payload with line breaks (an
/// upstream may send pretty-printed JSON over several `data:` lines) is written
/// as one `data:` line per line, which a client's parser joins back.
pub fn encode_data(buf: &mut Vec<u8>, payload: &[u8]) {
    buf.reserve(payload.len() + 8);
    if !payload.contains(&b'\n') && !payload.contains(&b'\r') {
        buf.extend_from_slice(b"data: ");
        buf.extend_from_slice(payload);
        buf.extend_from_slice(b"\n\n");
        return;
    }
    for line in payload.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        buf.extend_from_slice(b"data: ");
        buf.extend_from_slice(line);
        buf.push(b'\n');
    }
    buf.push(b'\n');
}

/// The OpenAI stream terminator.
pub const DONE: &[u8] = b"data: [DONE]\n\n";

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut p = SseParser::new();
        let mut out = vec![];
        for c in chunks {
            p.push(c, &mut out);
        }
        p.finish(&mut out);
        out
    }

    #[test]
    fn basic_fields() {
        let evs = parse_all(&[
            b": comment\nevent: message_start\ndata: {\"a\":1}\n\ndata: x\ndata: y\nid: 7\n\n",
        ]);
        assert_eq!(
            evs,
            vec![
                SseEvent {
                    event: Some("message_start".into()),
                    data: "{\"a\":1}".into(),
                    id: None
                },
                SseEvent {
                    event: None,
                    data: "x\ny".into(),
                    id: Some("7".into())
                },
            ]
        );
    }

    #[test]
    fn crlf_and_cr_endings() {
        let evs = parse_all(&[b"data: a\r\n\r\ndata: b\r\rdata:c\n\n"]);
        let data: Vec<_> = evs.iter().map(|e| e.data.as_str()).collect();
        assert_eq!(data, vec!["a", "b", "c"]);
    }

    #[test]
    fn cr_lf_split_across_pushes() {
        let evs = parse_all(&[b"data: a\r", b"\n", b"\r", b"\ndata: b\r\n\r\n"]);
        let data: Vec<_> = evs.iter().map(|e| e.data.as_str()).collect();
        assert_eq!(data, vec!["a", "b"]);
        let evs = parse_all(&[b"data: a\r", b"\n", b"\n", b"data: b\n\n"]);
        let data: Vec<_> = evs.iter().map(|e| e.data.as_str()).collect();
        assert_eq!(data, vec!["a", "b"]);
    }

    #[test]
    fn unterminated_last_event_is_kept() {
        let evs = parse_all(&[b"data: 1\n\ndata: [DONE]\n"]);
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[1].data, "[DONE]");
    }

    #[test]
    fn bom_is_skipped_and_utf8_split_survives() {
        let s = "\u{feff}data: héllo ✓\n\n".as_bytes();
        let (a, b) = s.split_at(12);
        let evs = parse_all(&[a, b]);
        assert_eq!(evs[0].data, "héllo ✓");
    }

    #[test]
    fn multi_line_payloads_round_trip() {
        let mut buf = Vec::new();
        encode_data(&mut buf, b"{\n  \"a\": 1\n}");
        encode_data(&mut buf, b"{}");
        let evs = parse_all(&[&buf]);
        assert_eq!(evs[0].data, "{\n  \"a\": 1\n}");
        assert_eq!(evs[1].data, "{}");
    }

    const SAMPLE: &str = "event: message_start\r\ndata: {\"type\":\"message_start\",\"t\":\"héllo ✓\"}\r\n\r\n: ping\n\ndata: line1\ndata: line2\n\nevent: e\rdata: x\r\rdata: [DONE]\n\n";

    proptest! {
        #[test]
        fn any_split_gives_same_events(cuts in proptest::collection::vec(0usize..SAMPLE.len(), 0..12)) {
            let bytes = SAMPLE.as_bytes();
            let whole = parse_all(&[bytes]);
            let mut cuts = cuts;
            cuts.sort_unstable();
            let mut pieces: Vec<&[u8]> = vec![];
            let mut last = 0;
            for c in cuts {
                pieces.push(&bytes[last..c]);
                last = c;
            }
            pieces.push(&bytes[last..]);
            prop_assert_eq!(parse_all(&pieces), whole);
        }

        #[test]
        fn byte_at_a_time_matches(data in "[a-z{}\":, ]{0,40}") {
            let text = format!("data: {data}\n\nevent: x\ndata: {data}\r\n\r\n");
            let whole = parse_all(&[text.as_bytes()]);
            let singles: Vec<&[u8]> = text.as_bytes().chunks(1).collect();
            prop_assert_eq!(parse_all(&singles), whole);
        }
    }
}
