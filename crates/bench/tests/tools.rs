//! `modelgate-bench` against the test kit's fast upstream: each command
//! runs, talks HTTP/1.1 or HTTP/2 as it should, and prints its JSON.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use serde_json::Value;

async fn upstream() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            modelgate_testkit::fast::router(modelgate_testkit::fast::Profile::default()),
        )
        .await
        .unwrap();
    });
    format!("http://{addr}/v1/chat/completions")
}

/// Runs `modelgate-bench` with `args` (off the runtime: it blocks until the
/// tool exits) and returns the JSON of its last line.
async fn run(args: &[&str]) -> Value {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || run_blocking(&args))
        .await
        .unwrap()
}

fn run_blocking(args: &[String]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_modelgate-bench"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    serde_json::from_str(text.lines().last().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_hold_and_load_report_json() {
    let url = upstream().await;
    let v = run(&[
        "streams",
        "--url",
        &url,
        "--model",
        "tokens=8,chunks=4",
        "--requests",
        "5",
    ])
    .await;
    assert_eq!(v["errors"], 0, "{v}");
    assert_eq!(v["ttft_ms"]["n"], 5);
    assert_eq!(
        v["gap_ms"]["n"], 15,
        "three gaps between four content chunks"
    );

    let v = run(&[
        "hold",
        "--url",
        &url,
        "--model",
        "x",
        "--streams",
        "20",
        "--connections",
        "2",
        "--hold-secs",
        "0",
    ])
    .await;
    assert_eq!(
        (v["opened"].as_u64(), v["failed"].as_u64()),
        (Some(20), Some(0)),
        "{v}"
    );

    let v = run(&[
        "load",
        "--url",
        &url,
        "--model",
        "x",
        "--rate",
        "200",
        "--secs",
        "1",
        "--connections",
        "4",
    ])
    .await;
    assert_eq!(
        (v["requests"].as_u64(), v["errors"].as_u64()),
        (Some(200), Some(0)),
        "{v}"
    );
    assert!(v["latency_ms"]["p50"].as_f64().unwrap() > 0.0);
}
