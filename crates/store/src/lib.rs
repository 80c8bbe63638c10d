//! Persistence.
//!
//! Role: the embedded SQLite store (WAL mode) with versioned migrations, and
//! the request log written by one background task in batches, so the request
//! path only pushes onto a channel and never waits on the database. The writer
//! keeps hourly rollups (spend, errors, a latency histogram) in the same
//! transaction, so reports ([`stats`], spend, budget loads) never scan the log.
//!
//! Must not depend on: HTTP types, provider codecs. Invariant: every record
//! handed to [`LogSink::record`] before [`LogWriter::shutdown`] is written (or
//! its loss is logged as an error with a count).

pub mod audit;
mod db;
pub mod governance;
mod log;
pub mod stats;

pub use db::{RequestFilter, Store, now_ms};
pub use log::{LogSink, LogWriter, RequestRecord, spawn_log_writer};

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database rejected or failed an operation.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}
