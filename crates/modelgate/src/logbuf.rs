//! Log output to stderr through a buffer.
//!
//! The default subscriber writes one line per event, and stderr is
//! unbuffered: under load the access log alone would cost a `write` system
//! call per request. Lines go into a shared buffer instead, written out when
//! it passes 64 KiB, every 200 ms by a flusher thread, at exit, and at once
//! for warnings and errors (those are never held back).

use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

const HIGH_WATER: usize = 64 * 1024;
const INTERVAL: Duration = Duration::from_millis(200);

static SHARED: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

fn lock(m: &Mutex<Vec<u8>>) -> MutexGuard<'_, Vec<u8>> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write_out(buf: &mut Vec<u8>) {
    if !buf.is_empty() {
        let mut err = std::io::stderr().lock();
        // Nowhere to report a failing stderr.
        let _ = err.write_all(buf);
        let _ = err.flush();
        buf.clear();
    }
}

/// The [`MakeWriter`] for the subscriber.
#[derive(Clone)]
pub struct BufferedStderr {
    buf: Arc<Mutex<Vec<u8>>>,
}

impl BufferedStderr {
    /// The writer, and the thread that flushes it periodically.
    pub fn start() -> BufferedStderr {
        let buf = SHARED
            .get_or_init(|| Arc::new(Mutex::new(Vec::with_capacity(HIGH_WATER))))
            .clone();
        let flusher = buf.clone();
        let _ = std::thread::Builder::new()
            .name("log-flush".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(INTERVAL);
                    write_out(&mut lock(&flusher));
                }
            });
        BufferedStderr { buf }
    }
}

/// Writes out whatever is buffered (call before the process exits).
pub fn flush() {
    if let Some(buf) = SHARED.get() {
        write_out(&mut lock(buf));
    }
}

/// One event's writer: appends to the buffer, and writes it out on drop
/// when it is urgent or large.
pub struct Line<'a> {
    buf: MutexGuard<'a, Vec<u8>>,
    urgent: bool,
}

impl Write for Line<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line<'_> {
    fn drop(&mut self) {
        if self.urgent || self.buf.len() >= HIGH_WATER {
            write_out(&mut self.buf);
        }
    }
}

impl<'a> MakeWriter<'a> for BufferedStderr {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        Line {
            buf: lock(&self.buf),
            urgent: true,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Line<'a> {
        Line {
            buf: lock(&self.buf),
            urgent: *meta.level() <= Level::WARN,
        }
    }
}
