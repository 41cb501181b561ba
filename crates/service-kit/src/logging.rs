//! Log setup. `RUST_LOG` picks the filter (else the binary's default); `log.format` picks plain
//! text for people or one JSON object per line for log collectors. Colours only on a terminal:
//! escape codes in a log file or a collector are noise.
//!
//! [`init`] writes each line to stdout as it is made. [`init_non_blocking`] (the gateway, which
//! logs every request) appends each line to a buffer that a writer thread empties instead, so a
//! request never waits on the log's `write`: the lines are the same, only written later, in
//! batches.

use std::{
    io::{self, IsTerminal as _},
    mem,
    sync::{
        Arc, Condvar, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use serde::Deserialize;
use tracing_subscriber::{
    EnvFilter, Layer as _, fmt::MakeWriter, layer::SubscriberExt as _, util::SubscriberInitExt as _,
};

use crate::telemetry::Telemetry;

/// `log.format` of both binaries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber, writing to stdout; a second call (tests) is harmless and
/// ignored. Each line names its target (`audit` for audit events), so collectors can route them.
/// With `telemetry`, spans are also exported as OpenTelemetry spans.
pub fn init(format: LogFormat, default_filter: &str, telemetry: Option<&Telemetry>) {
    install(format, default_filter, io::stdout().is_terminal(), io::stdout, telemetry);
}

/// As [`init`], to stderr: for commands whose stdout is their answer.
pub fn init_stderr(format: LogFormat, default_filter: &str) {
    install(format, default_filter, io::stderr().is_terminal(), io::stderr, None);
}

/// Bytes of lines the writer thread of [`init_non_blocking`] may have waiting (about 16,000
/// access-log lines); past that, new lines are dropped and counted rather than making requests
/// wait or memory grow.
pub const NON_BLOCKING_BUFFER_BYTES: usize = 4 * 1024 * 1024;

/// How long the writer thread lets lines gather after the first of a batch arrives. Senders only
/// wake the thread when it is idle, so under load it wakes about once per interval instead of
/// once per line (a futex wake-up and a context switch each, which a profile of the gateway
/// showed as a tenth of its CPU); a line of a quiet log is written at most this late.
const BATCH_INTERVAL: Duration = Duration::from_millis(10);

/// As [`init`], through a writer thread. Keep the guard until the process ends: dropping it
/// writes out every line logged before, and reports on stderr how many were dropped.
#[must_use = "dropping the guard stops nothing, but lines logged after main returns are lost"]
pub fn init_non_blocking(format: LogFormat, default_filter: &str, telemetry: Option<&Telemetry>) -> LogGuard {
    let (writer, guard) = non_blocking(io::stdout(), NON_BLOCKING_BUFFER_BYTES);
    install(format, default_filter, io::stdout().is_terminal(), writer, telemetry);
    guard
}

fn install<W>(format: LogFormat, default_filter: &str, ansi: bool, writer: W, telemetry: Option<&Telemetry>)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(writer);
    let lines = match format {
        LogFormat::Text => builder.boxed(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).boxed(),
    };
    // No telemetry: no layer at all, so spans cost what they did before.
    let spans = telemetry.map(Telemetry::layer);
    let _ = tracing_subscriber::registry().with(filter).with(lines).with(spans).try_init();
}

/// What the senders and the writer thread share.
struct Buffer {
    state: Mutex<BufferState>,
    /// The writer thread waits here while it is idle.
    work: Condvar,
    /// [`LogGuard::flush`] waits here for its flush to be done.
    flushed: Condvar,
    capacity: usize,
    dropped: AtomicU64,
}

#[derive(Default)]
struct BufferState {
    /// Whole lines not yet handed to the output.
    lines: Vec<u8>,
    /// The writer thread is waiting on `work`: the next line must wake it.
    writer_idle: bool,
    /// Flushes asked for, and the last one whose lines are written.
    flushes_asked: u64,
    flushes_done: u64,
    /// The output failed (or the thread never started): lines are dropped from then on.
    failed: bool,
}

impl Buffer {
    fn lock(&self) -> MutexGuard<'_, BufferState> {
        // A panic while holding the lock leaves only bytes behind; they are still writable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The writing half: one per event (tracing-subscriber formats an event whole, then writes it
/// with one `write_all`, so each `write` here is one line).
#[derive(Clone)]
pub struct QueueWriter {
    buffer: Arc<Buffer>,
}

impl io::Write for QueueWriter {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let mut state = self.buffer.lock();
        // Full: the output cannot keep up. Failed: the writer thread is gone. Either way the line
        // is counted, never waited for.
        if state.failed || state.lines.len() + line.len() > self.buffer.capacity {
            drop(state);
            self.buffer.dropped.fetch_add(1, Ordering::Relaxed);
            return Ok(line.len());
        }
        state.lines.extend_from_slice(line);
        if mem::take(&mut state.writer_idle) {
            self.buffer.work.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for QueueWriter {
    type Writer = QueueWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Flushes the buffer when dropped; see [`init_non_blocking`].
pub struct LogGuard {
    buffer: Arc<Buffer>,
}

impl LogGuard {
    /// Lines dropped so far because the buffer was full (or the output failed).
    pub fn dropped(&self) -> u64 {
        self.buffer.dropped.load(Ordering::Relaxed)
    }

    /// Blocks until every line logged before this call is written (or the output failed).
    pub fn flush(&self) {
        let mut state = self.buffer.lock();
        state.flushes_asked += 1;
        let asked = state.flushes_asked;
        if mem::take(&mut state.writer_idle) {
            self.buffer.work.notify_one();
        }
        while state.flushes_done < asked && !state.failed {
            state = self.buffer.flushed.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.flush();
        let dropped = self.dropped();
        if dropped > 0 {
            eprintln!("log: {dropped} lines dropped: the output could not keep up");
        }
    }
}

/// A writer that keeps at most `capacity` bytes of lines for a thread writing them to `output`.
fn non_blocking<O: io::Write + Send + 'static>(output: O, capacity: usize) -> (QueueWriter, LogGuard) {
    let buffer = Arc::new(Buffer {
        state: Mutex::new(BufferState::default()),
        work: Condvar::new(),
        flushed: Condvar::new(),
        capacity,
        dropped: AtomicU64::new(0),
    });
    // The thread lives as long as the process: the subscriber keeps writing lines logged after
    // the guard's flush. Should it not start, every line is counted as dropped.
    let thread_buffer = buffer.clone();
    if let Err(err) =
        std::thread::Builder::new().name("log-writer".into()).spawn(move || write_lines(&thread_buffer, output))
    {
        eprintln!("log: cannot start the log writer thread ({err}); log lines are dropped");
        buffer.lock().failed = true;
    }
    (QueueWriter { buffer: buffer.clone() }, LogGuard { buffer })
}

/// Waits for lines, lets a batch gather for [`BATCH_INTERVAL`] (not when a flush is asked for),
/// then writes and flushes the whole batch at once. Ends when the output fails.
fn write_lines<O: io::Write>(buffer: &Buffer, mut output: O) {
    let mut batch = Vec::new();
    loop {
        let mut state = buffer.lock();
        while state.lines.is_empty() && state.flushes_done == state.flushes_asked {
            state.writer_idle = true;
            state = buffer.work.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
        state.writer_idle = false;
        if state.flushes_done == state.flushes_asked {
            drop(state);
            std::thread::sleep(BATCH_INTERVAL);
            state = buffer.lock();
        }
        mem::swap(&mut batch, &mut state.lines);
        let flushing = state.flushes_asked;
        drop(state);

        let written = output.write_all(&batch).and_then(|()| output.flush());
        batch.clear();
        // After a burst, give back most of what it grew to.
        batch.shrink_to(64 * 1024);

        let mut state = buffer.lock();
        state.flushes_done = flushing;
        if written.is_err() {
            state.failed = true;
            state.lines = Vec::new();
        }
        buffer.flushed.notify_all();
        if state.failed {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        io::Write as _,
        sync::mpsc::{self, Receiver, SyncSender},
        time::Instant,
    };

    use super::*;

    /// An output the test can read back.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Shared {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// As [`Shared`], but its first write says so and then waits for the test to let it go.
    struct Stalled {
        output: Shared,
        entered: Option<SyncSender<()>>,
        release: Receiver<()>,
    }

    impl io::Write for Stalled {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            if let Some(entered) = self.entered.take() {
                entered.send(()).unwrap();
                self.release.recv().unwrap();
            }
            self.output.write(bytes)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn lines(output: &Shared) -> String {
        String::from_utf8(output.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn every_line_queued_before_the_flush_is_written_in_order() {
        let output = Shared::default();
        let (writer, guard) = non_blocking(output.clone(), 64 * 1024);
        for n in 0..500 {
            writer.make_writer().write_all(format!("line {n}\n").as_bytes()).unwrap();
        }
        guard.flush();
        let expected: String = (0..500).map(|n| format!("line {n}\n")).collect();
        assert_eq!(lines(&output), expected);
        assert_eq!(guard.dropped(), 0);
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_blocking() {
        let output = Shared::default();
        let (entered, stalled) = mpsc::sync_channel(1);
        let (release, released) = mpsc::sync_channel(1);
        let stalled_output = Stalled { output: output.clone(), entered: Some(entered), release: released };
        // Room for four lines of "line N\n" (7 bytes each).
        let (writer, guard) = non_blocking(stalled_output, 28);
        writer.make_writer().write_all(b"first\n").unwrap();
        // The writer thread is now stuck writing "first": the buffer takes 4 more, then drops.
        stalled.recv().unwrap();
        for n in 0..100 {
            writer.make_writer().write_all(format!("line {n}\n").as_bytes()).unwrap();
        }
        assert_eq!(guard.dropped(), 96);
        release.send(()).unwrap();
        guard.flush();
        assert_eq!(lines(&output), "first\nline 0\nline 1\nline 2\nline 3\n");
    }

    #[test]
    fn a_lone_line_is_written_without_a_flush() {
        let output = Shared::default();
        let (writer, _guard) = non_blocking(output.clone(), 1024);
        writer.make_writer().write_all(b"quiet\n").unwrap();
        // The writer thread only waits for the batch interval; 5 s is a bound on a loaded machine.
        let deadline = Instant::now() + Duration::from_secs(5);
        while lines(&output).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(lines(&output), "quiet\n");
    }

    /// An output that fails every write.
    struct Broken;

    impl io::Write for Broken {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::other("disk full"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn after_the_output_fails_lines_are_counted_and_flush_returns() {
        let (writer, guard) = non_blocking(Broken, 1024);
        writer.make_writer().write_all(b"lost\n").unwrap();
        guard.flush();
        for _ in 0..10 {
            writer.make_writer().write_all(b"also lost\n").unwrap();
        }
        guard.flush();
        assert_eq!(guard.dropped(), 10);
    }
}
