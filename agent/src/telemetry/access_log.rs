//! The opt-in access log: one JSON line per request with its routing explanation, written
//! by its own thread from a bounded queue (a slow disk drops lines, counted; it never slows
//! requests).

use std::{
    io::Write as _,
    path::Path,
    sync::mpsc::{SyncSender, TrySendError, sync_channel},
};

use prometheus::IntCounter;

const QUEUE: usize = 8192;

pub struct AccessLog {
    tx: SyncSender<Vec<u8>>,
    dropped: IntCounter,
}

impl AccessLog {
    /// Opens `path` for appending (`-`: standard output) and starts the writer thread.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let mut out: Box<dyn std::io::Write + Send> = if path == Path::new("-") {
            Box::new(std::io::stdout())
        } else {
            Box::new(std::fs::OpenOptions::new().create(true).append(true).open(path)?)
        };
        let (tx, rx) = sync_channel::<Vec<u8>>(QUEUE);
        std::thread::Builder::new().name("access-log".into()).spawn(move || {
            let mut buf = std::io::BufWriter::new(&mut out);
            while let Ok(line) = rx.recv() {
                let _ = buf.write_all(&line);
                // Flush when the queue is drained: lines appear promptly, writes stay batched.
                if let Ok(more) = rx.try_recv() {
                    let _ = buf.write_all(&more);
                    continue;
                }
                let _ = buf.flush();
            }
        })?;
        let dropped = super::metrics().access_log_dropped.clone();
        Ok(Self { tx, dropped })
    }

    /// Queues one line (`entry` as JSON).
    pub fn write(&self, entry: &serde_json::Value) {
        let Ok(mut line) = serde_json::to_vec(entry) else { return };
        line.push(b'\n');
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.tx.try_send(line) {
            self.dropped.inc();
        }
    }
}
