//! The standalone mock upstream binary starts, answers, and validates.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

fn post(addr: &str, path: &str, body: &str) -> String {
    post_with(addr, path, "", body)
}

fn post_with(addr: &str, path: &str, extra_headers: &str, body: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n{extra_headers}content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    // Event streams are binary: read bytes, compare as (lossy) text.
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// Kills the server however the test ends (it holds the test's stdout).
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn binary_serves_every_dialect() {
    let mut child = Server(
        Command::new(env!("CARGO_BIN_EXE_modelgate-mock-upstream"))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap()
        .to_owned();
    let ok = post(
        &addr,
        "/v1/messages",
        r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#,
    );
    let bad = post(
        &addr,
        "/v1/messages",
        r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#,
    );
    let chat = post(
        &addr,
        "/v1/chat/completions",
        r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#,
    );
    let gemini_body = r#"{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}"#;
    let key = "x-goog-api-key: k\r\n";
    let gemini = post_with(
        &addr,
        "/v1beta/models/gemini-2.5-flash:generateContent",
        key,
        gemini_body,
    );
    let gemini_sse = post_with(
        &addr,
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
        key,
        gemini_body,
    );
    let gemini_keyless = post(
        &addr,
        "/v1beta/models/gemini-2.5-flash:generateContent",
        gemini_body,
    );
    let gemini_bad = post_with(
        &addr,
        "/v1beta/models/gemini-2.5-flash:generateContent",
        key,
        r#"{"contents":[{"role":"assistant","parts":[{"text":"hi"}]}]}"#,
    );
    let converse = r#"{"messages":[{"role":"user","content":[{"text":"hi"}]}]}"#;
    let bearer = format!(
        "authorization: Bearer {}\r\n",
        modelgate_testkit::bedrock::MOCK_BEDROCK_API_KEY
    );
    let bedrock = post_with(
        &addr,
        "/model/amazon.nova-lite-v1%3A0/converse",
        &bearer,
        converse,
    );
    let unsigned = post(&addr, "/model/amazon.nova-lite-v1%3A0/converse", converse);
    let stream = post_with(
        &addr,
        "/model/amazon.nova-lite-v1%3A0/converse-stream",
        &bearer,
        converse,
    );
    drop(child);
    assert!(bedrock.starts_with("HTTP/1.1 200"), "{bedrock}");
    assert!(bedrock.contains("Hello from Bedrock."));
    assert!(unsigned.starts_with("HTTP/1.1 403"), "{unsigned}");
    assert!(unsigned.contains("MissingAuthenticationTokenException"));
    assert!(
        stream.contains("application/vnd.amazon.eventstream"),
        "{stream}"
    );
    assert!(stream.contains("messageStop"));
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(ok.contains("Hello from Claude."));
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
    assert!(bad.contains("max_tokens"));
    assert!(chat.contains("chat.completion"));
    assert!(gemini.starts_with("HTTP/1.1 200"), "{gemini}");
    assert!(gemini.contains("Hello from Gemini.") && gemini.contains("usageMetadata"));
    assert!(gemini_sse.contains("text/event-stream"), "{gemini_sse}");
    assert!(gemini_sse.contains("data: {") && gemini_sse.contains("\"finishReason\":\"STOP\""));
    assert!(
        gemini_keyless.starts_with("HTTP/1.1 403"),
        "{gemini_keyless}"
    );
    assert!(gemini_bad.starts_with("HTTP/1.1 400"), "{gemini_bad}");
    assert!(gemini_bad.contains("valid role"));
}
