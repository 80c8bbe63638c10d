//! Spend reports over 1,000,000 request records (SQLite file). Not a timed
//! test: run `cargo bench -p modelgate-store --bench spend_report`; results go
//! to `bench/results/spend_report.md` by hand.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use modelgate_store::governance::{GroupBy, Scope};
use modelgate_store::{RequestRecord, Store};

const RECORDS: usize = 1_000_000;

fn setup(rt: &tokio::runtime::Runtime) -> Store {
    let dir = std::env::temp_dir().join(format!("mg-bench-spend-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    rt.block_on(async {
        let store = Store::open_sqlite(&dir.join("bench.db")).await.unwrap();
        let start = std::time::Instant::now();
        let mut batch = Vec::with_capacity(5_000);
        for i in 0..RECORDS {
            batch.push(RequestRecord {
                id: format!("r{i}"),
                // 30 days of traffic, one record every ~2.6 s
                started_at_ms: 1_790_000_000_000 + (i as i64) * 2_592,
                caller: format!("k{}", i % 200),
                route: "chat".into(),
                requested_model: format!("model-{}", i % 12),
                provider: Some(["openai", "anthropic", "mock"][i % 3].into()),
                status: 200,
                input_tokens: 100 + (i % 50) as u64,
                output_tokens: 20 + (i % 30) as u64,
                cost_nanos: Some(1_000 + (i % 97) as i64),
                key_id: Some(format!("k{}", i % 200)),
                team_id: Some(format!("t{}", i % 20)),
                user_id: Some(format!("u{}", i % 500)),
                ..RequestRecord::default()
            });
            if batch.len() == 5_000 {
                store.insert_requests(&batch).await.unwrap();
                batch.clear();
            }
        }
        eprintln!("inserted {RECORDS} records in {:?}", start.elapsed());
        store
    })
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = setup(&rt);
    let (from, to) = (1_790_000_000_000, 1_800_000_000_000);
    let mut g = c.benchmark_group("spend_report_1m");
    g.sample_size(20);
    for (name, group) in [
        ("by_key", GroupBy::Key),
        ("by_team", GroupBy::Team),
        ("by_model", GroupBy::Model),
        ("by_day", GroupBy::Day),
    ] {
        g.bench_function(name, |b| {
            b.to_async(&rt)
                .iter(|| async { store.spend_report(group, from, to).await.unwrap() })
        });
    }
    g.bench_function("budget_spend_since_month", |b| {
        b.to_async(&rt)
            .iter(|| async { store.spend_since(Scope::Team, "t7", from).await.unwrap() })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
