//! Log setup. `RUST_LOG` picks the filter (else the binary's default); `log.format` picks plain
//! text for people or one JSON object per line for log collectors.
//!
//! [`init`] writes each line to stdout as it is made. [`init_non_blocking`] (the gateway, which
//! logs every request) hands each line to a writer thread instead, so a request never waits on
//! the log's `write`: the lines are the same, only written later, in batches.

use std::{
    io::{self, BufWriter, Write as _},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
        mpsc::{self, Receiver, SyncSender},
    },
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
    install(format, default_filter, io::stdout, telemetry);
}

/// As [`init`], to stderr: for commands whose stdout is their answer.
pub fn init_stderr(format: LogFormat, default_filter: &str) {
    install(format, default_filter, io::stderr, None);
}

/// Lines the writer thread of [`init_non_blocking`] may have waiting; past that, new lines are
/// dropped and counted rather than making requests wait or memory grow.
pub const NON_BLOCKING_QUEUE_LINES: usize = 16 * 1024;

/// As [`init`], through a writer thread. Keep the guard until the process ends: dropping it
/// writes out every line queued before, and reports on stderr how many were dropped.
#[must_use = "dropping the guard stops nothing, but lines queued after main returns are lost"]
pub fn init_non_blocking(format: LogFormat, default_filter: &str, telemetry: Option<&Telemetry>) -> LogGuard {
    let (writer, guard) = non_blocking(io::stdout(), NON_BLOCKING_QUEUE_LINES);
    install(format, default_filter, writer, telemetry);
    guard
}

fn install<W>(format: LogFormat, default_filter: &str, writer: W, telemetry: Option<&Telemetry>)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt::layer().with_writer(writer);
    let lines = match format {
        LogFormat::Text => builder.boxed(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).boxed(),
    };
    // No telemetry: no layer at all, so spans cost what they did before.
    let spans = telemetry.map(Telemetry::layer);
    let _ = tracing_subscriber::registry().with(filter).with(lines).with(spans).try_init();
}

enum Message {
    Line(Vec<u8>),
    /// Write out everything before this, then answer.
    Flush(SyncSender<()>),
}

/// The writing half: one per event (tracing-subscriber formats an event whole, then writes it
/// with one `write_all`, so each `write` here is one line).
#[derive(Clone)]
pub struct QueueWriter {
    queue: SyncSender<Message>,
    dropped: Arc<AtomicU64>,
}

impl io::Write for QueueWriter {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        // Full: the output cannot keep up. Disconnected: the writer thread is gone (its output
        // failed). Either way the line is counted, never waited for.
        if self.queue.try_send(Message::Line(line.to_vec())).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
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

/// Flushes the queue when dropped; see [`init_non_blocking`].
pub struct LogGuard {
    queue: SyncSender<Message>,
    dropped: Arc<AtomicU64>,
}

impl LogGuard {
    /// Lines dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Blocks until every line queued before this call is written (or the output failed).
    pub fn flush(&self) {
        let (done, wait) = mpsc::sync_channel(1);
        if self.queue.send(Message::Flush(done)).is_ok() {
            let _ = wait.recv();
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

/// A writer that queues at most `capacity` lines for a thread writing them to `output`.
fn non_blocking<O: io::Write + Send + 'static>(output: O, capacity: usize) -> (QueueWriter, LogGuard) {
    let (queue, lines) = mpsc::sync_channel(capacity);
    let dropped = Arc::new(AtomicU64::new(0));
    // The thread lives as long as the process: the subscriber keeps a sender for lines logged
    // after the guard's flush. Should it not start, every line is counted as dropped.
    if let Err(err) = std::thread::Builder::new().name("log-writer".into()).spawn(move || write_lines(lines, output)) {
        eprintln!("log: cannot start the log writer thread ({err}); log lines are dropped");
    }
    let writer = QueueWriter { queue: queue.clone(), dropped: dropped.clone() };
    (writer, LogGuard { queue, dropped })
}

/// Writes lines as they come, buffered, and flushes whenever the queue is empty: a burst costs
/// one `write` per buffer, a quiet log is written at once. Ends when the output fails.
fn write_lines<O: io::Write>(lines: Receiver<Message>, output: O) {
    let mut output = BufWriter::with_capacity(64 * 1024, output);
    let mut next = lines.recv();
    while let Ok(message) = next {
        let written = match message {
            Message::Line(line) => output.write_all(&line),
            Message::Flush(done) => {
                let flushed = output.flush();
                let _ = done.send(());
                flushed
            }
        };
        if written.is_err() {
            return;
        }
        next = match lines.try_recv() {
            Ok(message) => Ok(message),
            Err(_) => match output.flush() {
                Ok(()) => lines.recv(),
                Err(_) => return,
            },
        };
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

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
        let (writer, guard) = non_blocking(output.clone(), 1024);
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
        let (writer, guard) = non_blocking(stalled_output, 4);
        writer.make_writer().write_all(b"first\n").unwrap();
        // The writer thread is now stuck writing "first": the queue takes 4 more, then drops.
        stalled.recv().unwrap();
        for n in 0..100 {
            writer.make_writer().write_all(format!("line {n}\n").as_bytes()).unwrap();
        }
        assert_eq!(guard.dropped(), 96);
        release.send(()).unwrap();
        guard.flush();
        assert_eq!(lines(&output), "first\nline 0\nline 1\nline 2\nline 3\n");
    }
}
