//! A standalone mock upstream (OpenAI, Anthropic, Gemini and Bedrock Converse
//! wire formats) for the SDK tests and benchmarks:
//! `modelgate-mock-upstream [--listen 127.0.0.1:0]`.
//! Prints `listening on http://ADDR` on its first stdout line and serves until
//! killed. Replies are the test kit's defaults: canned text, a tool call when
//! the request offers tools, streams when asked (SSE, or binary event-stream
//! frames on `/model/{id}/converse-stream`), and 400s for requests the real
//! APIs would reject. Bedrock requests must carry the test kit's Bedrock API
//! key or a SigV4 signature made with its test AWS credentials
//! (`modelgate_testkit::bedrock::MOCK_*`).
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mut listen = "127.0.0.1:0".to_owned();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--listen" => listen = args.next().expect("--listen needs an address"),
            other => {
                eprintln!(
                    "unknown argument {other}; usage: modelgate-mock-upstream [--listen ADDR]"
                );
                std::process::exit(2);
            }
        }
    }
    let up = modelgate_testkit::MockUpstream::start_on(&listen).await;
    println!("listening on {}", up.url());
    std::io::stdout().flush().unwrap();
    std::future::pending::<()>().await;
}
