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

/// Where buffered lines go.
type Sink = fn(&[u8]);

fn stderr(bytes: &[u8]) {
    let mut err = std::io::stderr().lock();
    // Nowhere to report a failing stderr.
    let _ = err.write_all(bytes);
    let _ = err.flush();
}

fn write_out(buf: &mut Vec<u8>, sink: Sink) {
    if !buf.is_empty() {
        sink(buf);
        buf.clear();
    }
}

/// The [`MakeWriter`] for the subscriber.
#[derive(Clone)]
pub struct BufferedStderr {
    buf: Arc<Mutex<Vec<u8>>>,
    sink: Sink,
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
                    write_out(&mut lock(&flusher), stderr);
                }
            });
        BufferedStderr { buf, sink: stderr }
    }
}

/// Writes out whatever is buffered (call before the process exits).
pub fn flush() {
    if let Some(buf) = SHARED.get() {
        write_out(&mut lock(buf), stderr);
    }
}

/// One event's writer: appends to the buffer, and writes it out on drop
/// when it is urgent or large.
pub struct Line<'a> {
    buf: MutexGuard<'a, Vec<u8>>,
    urgent: bool,
    sink: Sink,
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
            write_out(&mut self.buf, self.sink);
        }
    }
}

impl<'a> MakeWriter<'a> for BufferedStderr {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        self.line(true)
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Line<'a> {
        self.line(*meta.level() <= Level::WARN)
    }
}

impl BufferedStderr {
    fn line(&self, urgent: bool) -> Line<'_> {
        Line {
            buf: lock(&self.buf),
            urgent,
            sink: self.sink,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_wait_in_the_buffer_unless_urgent_or_large() {
        static OUT: Mutex<Vec<u8>> = Mutex::new(Vec::new());
        fn collect(bytes: &[u8]) {
            lock(&OUT).extend_from_slice(bytes);
        }
        let w = BufferedStderr {
            buf: Arc::new(Mutex::new(Vec::new())),
            sink: collect,
        };
        let held = |w: &BufferedStderr| lock(&w.buf).len();
        let written = || lock(&OUT).len();
        writeln!(w.line(false), "info line").unwrap_or_default();
        writeln!(w.line(false), "another").unwrap_or_default();
        assert_eq!((held(&w), written()), (18, 0), "info lines are held");
        writeln!(w.line(true), "warning").unwrap_or_default();
        assert_eq!(held(&w), 0);
        assert_eq!(
            lock(&OUT).as_slice(),
            b"info line\nanother\nwarning\n",
            "a warning writes everything out, in order"
        );
        w.line(false)
            .write_all(&vec![b'.'; HIGH_WATER])
            .unwrap_or_default();
        assert_eq!(held(&w), 0, "a full buffer is written out");
        assert_eq!(written(), 26 + HIGH_WATER);
    }
}
