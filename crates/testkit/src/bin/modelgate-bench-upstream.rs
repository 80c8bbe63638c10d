//! The fast OpenAI-format upstream for benchmarks (see
//! `modelgate_testkit::fast`):
//! `modelgate-bench-upstream [--listen 127.0.0.1:0] [--tokens N] [--chunks N]
//! [--gap-ms N] [--ttft-ms N] [--latency-ms N] [--threads N]`.
//! Prints `listening on http://ADDR` on its first stdout line and serves until
//! killed. A request's `model` may override the settings
//! (`tokens=64,gap_ms=5`).
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;

use modelgate_testkit::fast::{Profile, router};

fn main() {
    let mut args = std::env::args().skip(1);
    let mut listen = "127.0.0.1:0".to_owned();
    let mut p = Profile::default();
    let mut threads = 1usize;
    let usage = "usage: modelgate-bench-upstream [--listen ADDR] [--tokens N] [--chunks N] \
                 [--gap-ms N] [--ttft-ms N] [--latency-ms N] [--threads N]";
    while let Some(a) = args.next() {
        let mut num = || -> u64 {
            args.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
                eprintln!("{a} needs a number; {usage}");
                std::process::exit(2)
            })
        };
        match a.as_str() {
            "--listen" => listen = args.next().expect("--listen needs an address"),
            "--tokens" => p.tokens = u32::try_from(num()).unwrap_or(u32::MAX).max(1),
            "--chunks" => p.chunks = u32::try_from(num()).unwrap_or(u32::MAX).max(1),
            "--gap-ms" => p.gap_ms = num(),
            "--ttft-ms" => p.ttft_ms = num(),
            "--latency-ms" => p.latency_ms = num(),
            "--threads" => threads = usize::try_from(num()).unwrap_or(1).max(1),
            other => {
                eprintln!("unknown argument {other}; {usage}");
                std::process::exit(2);
            }
        }
    }
    let rt = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    }
    .enable_all()
    .build()
    .expect("runtime");
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&listen).await.expect("bind");
        println!("listening on http://{}", listener.local_addr().unwrap());
        std::io::stdout().flush().unwrap();
        // Chunks leave at once, as a real streaming API's do.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, router(p)).await.unwrap();
    });
}
