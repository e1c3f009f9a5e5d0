//! Protocol detection on a captured connection: a short, bounded read of the first bytes.
//! Server-speaks-first protocols send nothing, so the wait is capped (≤ 100 ms) and a port
//! hint skips it entirely.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt as _};

use crate::routing::Protocol;

/// The HTTP/2 connection preface (prior knowledge, h2c, gRPC).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// The longest HTTP/1 method we accept ("OPTIONS", "CONNECT", custom tokens) plus the space.
const MAX_METHOD: usize = 16;

/// What the first bytes say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detected {
    Http1,
    Http2,
    Opaque,
}

/// Reads until the protocol is clear or `wait` passes; returns the bytes read (to replay).
pub async fn detect<R: AsyncRead + Unpin>(io: &mut R, hint: Protocol, wait: Duration) -> (Detected, Bytes) {
    if hint == Protocol::Opaque {
        return (Detected::Opaque, Bytes::new());
    }
    let mut buf = BytesMut::with_capacity(64);
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match classify(&buf) {
            Some(d) => return (d, buf.freeze()),
            None => {
                let read = tokio::time::timeout_at(deadline, io.read_buf(&mut buf)).await;
                match read {
                    Ok(Ok(n)) if n > 0 => continue,
                    // EOF, error or timeout: undecided bytes go through as opaque.
                    _ => return (Detected::Opaque, buf.freeze()),
                }
            }
        }
    }
}

/// `None` while more bytes are needed.
fn classify(buf: &[u8]) -> Option<Detected> {
    if buf.is_empty() {
        return None;
    }
    let n = buf.len().min(H2_PREFACE.len());
    if buf[..n] == H2_PREFACE[..n] {
        return (n == H2_PREFACE.len()).then_some(Detected::Http2);
    }
    // An HTTP/1 request line starts with a token of uppercase letters and a space.
    for (i, b) in buf.iter().enumerate().take(MAX_METHOD) {
        match b {
            b'A'..=b'Z' | b'-' | b'_' => continue,
            b' ' if i > 0 => return Some(Detected::Http1),
            _ => return Some(Detected::Opaque),
        }
    }
    (buf.len() >= MAX_METHOD).then_some(Detected::Opaque)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_first_bytes() {
        assert_eq!(classify(b"GET / HTTP/1.1\r\n"), Some(Detected::Http1));
        assert_eq!(classify(b"POST"), None);
        assert_eq!(classify(H2_PREFACE), Some(Detected::Http2));
        assert_eq!(classify(b"PRI * HTTP/2"), None);
        assert_eq!(classify(b"\x16\x03\x01"), Some(Detected::Opaque));
        assert_eq!(classify(b"*2\r\n$4\r\n"), Some(Detected::Opaque));
        assert_eq!(classify(b"ping\n"), Some(Detected::Opaque));
    }

    #[tokio::test(start_paused = true)]
    async fn silence_means_opaque_after_exactly_the_wait() {
        let (mut client, _server) = tokio::io::duplex(64);
        let started = tokio::time::Instant::now();
        let (d, bytes) = detect(&mut client, Protocol::Detect, Duration::from_millis(50)).await;
        assert_eq!((d, bytes.len()), (Detected::Opaque, 0));
        assert_eq!(started.elapsed(), Duration::from_millis(50));
        // A port that says opaque decides at once: no time passes.
        let started = tokio::time::Instant::now();
        let (d, _) = detect(&mut client, Protocol::Opaque, Duration::from_secs(5)).await;
        assert_eq!((d, started.elapsed()), (Detected::Opaque, Duration::ZERO));
    }
}
