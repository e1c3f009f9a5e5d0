//! The opt-in access log: one JSON line per request with its routing explanation, written
//! by its own thread from a bounded queue every 10 ms (a slow disk drops lines, counted; it
//! never slows requests).

use std::{
    io::Write as _,
    path::Path,
    sync::mpsc::{SyncSender, TrySendError, sync_channel},
};

use prometheus::IntCounter;

const QUEUE: usize = 65_536;
const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_millis(10);

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
            // Wakes every 10 ms and writes what queued up: a request never wakes this thread
            // (a wake-up per line costs more than the line).
            loop {
                std::thread::sleep(FLUSH_EVERY);
                loop {
                    match rx.try_recv() {
                        Ok(line) => {
                            let _ = buf.write_all(&line);
                        }
                        Err(std::sync::mpsc::TryRecvError::Empty) => break,
                        Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                            let _ = buf.flush();
                            return;
                        }
                    }
                }
                let _ = buf.flush();
            }
        })?;
        let dropped = super::metrics().access_log_dropped.clone();
        Ok(Self { tx, dropped })
    }

    /// Queues one line (JSON, ending in a newline).
    pub fn write(&self, line: Vec<u8>) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.tx.try_send(line) {
            self.dropped.inc();
        }
    }
}
