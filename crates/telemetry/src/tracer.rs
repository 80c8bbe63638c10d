//! Trace export: sampling decisions and a background OTLP/HTTP exporter.
//!
//! Requests hand their finished spans to [`Tracer::export`], which never
//! blocks: spans go into a bounded queue (dropped, and counted, when it is
//! full). One background task batches them and POSTs protobuf to the
//! collector. [`Tracer::flush`] drains the queue at shutdown.

use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use tokio::sync::{mpsc, oneshot};

use crate::otlp::{Span, Value, encode_export};

/// Exporter settings.
#[derive(Debug, Clone)]
pub struct TracerConfig {
    /// The collector's traces URL (`http://collector:4318/v1/traces`).
    pub endpoint: String,
    /// Extra request headers (authentication for hosted backends).
    pub headers: Vec<(String, String)>,
    /// Share of new traces recorded, 0 to 1.
    pub sample_ratio: f64,
    /// Follow the client's `traceparent` sampled flag when there is one.
    pub parent_based: bool,
    /// `service.name` of the resource.
    pub service_name: String,
    /// Per-export HTTP timeout.
    pub timeout: Duration,
    /// Spans per export request.
    pub batch_size: usize,
    /// Longest a span waits before it is sent.
    pub interval: Duration,
    /// Requests' span sets the queue holds before dropping.
    pub queue: usize,
}

/// Counters the exporter keeps.
#[derive(Debug, Clone, Default)]
pub struct TracerCounters {
    pub exported: Counter,
    pub dropped: Counter,
    pub failed_exports: Counter,
}

enum Msg {
    Spans(Vec<Span>),
    Flush(oneshot::Sender<()>),
}

/// Handle to the exporter; cheap to clone.
#[derive(Debug, Clone)]
pub struct Tracer {
    tx: mpsc::Sender<Msg>,
    /// Traces whose id (low 64 bits) is below this are sampled.
    threshold: u64,
    parent_based: bool,
    counters: TracerCounters,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Msg")
    }
}

impl Tracer {
    /// Starts the exporter task (on the current Tokio runtime).
    pub fn start(config: TracerConfig, counters: TracerCounters) -> Result<Tracer, reqwest::Error> {
        // rustls needs a process-wide crypto provider; installing twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .build()?;
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        let ratio = config.sample_ratio.clamp(0.0, 1.0);
        let threshold = if ratio >= 1.0 {
            u64::MAX
        } else {
            (ratio * u64::MAX as f64) as u64
        };
        let tracer = Tracer {
            tx,
            threshold,
            parent_based: config.parent_based,
            counters: counters.clone(),
        };
        tokio::spawn(run(config, client, rx, counters));
        Ok(tracer)
    }

    /// Whether a request's trace is recorded: the client's decision when it
    /// sent one (and `parent_based` is on), else by the trace id's ratio.
    pub fn sample(&self, trace_id: u128, parent_sampled: Option<bool>) -> bool {
        match parent_sampled {
            Some(s) if self.parent_based => s,
            _ => self.threshold == u64::MAX || (trace_id as u64) < self.threshold,
        }
    }

    /// Queues one request's spans; drops them (counted) when the queue is full.
    pub fn export(&self, spans: Vec<Span>) {
        let n = spans.len() as u64;
        if self.tx.try_send(Msg::Spans(spans)).is_err() {
            self.counters.dropped.inc_by(n);
        }
    }

    /// Sends everything queued so far; returns when done or at `deadline`.
    pub async fn flush(&self, deadline: Duration) {
        let (ack, done) = oneshot::channel();
        let sent = tokio::time::timeout(deadline, async {
            if self.tx.send(Msg::Flush(ack)).await.is_ok() {
                let _ = done.await;
            }
        })
        .await;
        if sent.is_err() {
            tracing::warn!("trace export did not finish before the shutdown deadline");
        }
    }
}

async fn run(
    config: TracerConfig,
    client: reqwest::Client,
    mut rx: mpsc::Receiver<Msg>,
    counters: TracerCounters,
) {
    let resource: Vec<(&'static str, Value)> = vec![
        ("service.name", Value::Str(config.service_name.clone())),
        ("service.version", Value::from(env!("CARGO_PKG_VERSION"))),
        ("telemetry.sdk.name", Value::from("modelgate")),
        ("telemetry.sdk.language", Value::from("rust")),
    ];
    let mut batch: Vec<Span> = Vec::new();
    let mut tick = tokio::time::interval(config.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                None => {
                    send(&config, &client, &resource, &mut batch, &counters).await;
                    return;
                }
                Some(Msg::Spans(spans)) => {
                    batch.extend(spans);
                    if batch.len() >= config.batch_size {
                        send(&config, &client, &resource, &mut batch, &counters).await;
                    }
                }
                Some(Msg::Flush(ack)) => {
                    send(&config, &client, &resource, &mut batch, &counters).await;
                    let _ = ack.send(());
                }
            },
            _ = tick.tick() => {
                send(&config, &client, &resource, &mut batch, &counters).await;
            }
        }
    }
}

/// POSTs the batch (in `batch_size` pieces); a failed piece is retried once
/// when the collector says so (429, 502, 503, 504) and otherwise dropped.
async fn send(
    config: &TracerConfig,
    client: &reqwest::Client,
    resource: &[(&'static str, Value)],
    batch: &mut Vec<Span>,
    counters: &TracerCounters,
) {
    if batch.is_empty() {
        return;
    }
    let spans = std::mem::take(batch);
    for piece in spans.chunks(config.batch_size.max(1)) {
        let body = encode_export(resource, piece);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req = client
                .post(&config.endpoint)
                .header("content-type", "application/x-protobuf")
                .body(body.clone());
            for (k, v) in &config.headers {
                req = req.header(k.as_str(), v.as_str());
            }
            match req.send().await {
                Ok(r) if r.status().is_success() => {
                    counters.exported.inc_by(piece.len() as u64);
                    break;
                }
                Ok(r) => {
                    let status = r.status().as_u16();
                    if attempt == 1 && matches!(status, 429 | 502 | 503 | 504) {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                    tracing::warn!(
                        status,
                        spans = piece.len(),
                        "trace export rejected by the collector"
                    );
                    counters.failed_exports.inc();
                    counters.dropped.inc_by(piece.len() as u64);
                    break;
                }
                Err(e) => {
                    if attempt == 1 && (e.is_connect() || e.is_timeout()) {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                    // The error names only the URL (no headers, so no credentials).
                    tracing::warn!(error = %e, spans = piece.len(), "trace export failed");
                    counters.failed_exports.inc();
                    counters.dropped.inc_by(piece.len() as u64);
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracer(ratio: f64, parent_based: bool) -> (Tracer, mpsc::Receiver<Msg>) {
        let (tx, rx) = mpsc::channel(1);
        let t = Tracer {
            tx,
            threshold: if ratio >= 1.0 {
                u64::MAX
            } else {
                (ratio * u64::MAX as f64) as u64
            },
            parent_based,
            counters: TracerCounters::default(),
        };
        (t, rx)
    }

    #[test]
    fn sampling_follows_the_parent_then_the_ratio() {
        let (all, _rx) = tracer(1.0, true);
        assert!(all.sample(7, None));
        assert!(!all.sample(7, Some(false)), "parent said no");
        let (none, _rx) = tracer(0.0, true);
        assert!(!none.sample(u128::MAX, None));
        assert!(none.sample(1, Some(true)), "parent said yes");
        let (ignore_parent, _rx) = tracer(0.0, false);
        assert!(!ignore_parent.sample(1, Some(true)));
        let (half, _rx) = tracer(0.5, false);
        let kept = (0..10_000u64)
            .filter(|i| half.sample(u128::from(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)), None))
            .count();
        assert!((4_000..6_000).contains(&kept), "{kept}");
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let (t, _rx) = tracer(1.0, true);
        let span = Span {
            trace_id: 1,
            span_id: 1,
            parent_span_id: None,
            name: "x".into(),
            kind: crate::otlp::SpanKind::Server,
            start_unix_ns: 0,
            end_unix_ns: 0,
            attributes: vec![],
            status: crate::otlp::SpanStatus::Unset,
        };
        t.export(vec![span.clone(), span.clone()]);
        t.export(vec![span]);
        assert_eq!(t.counters.dropped.get(), 1);
    }
}
