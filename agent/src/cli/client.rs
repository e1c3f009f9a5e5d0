//! A small blocking HTTP/1.1 client for the admin API: one GET per call, the body whole or
//! (for `--follow`) line by line as chunks arrive.

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{SocketAddr, TcpStream, ToSocketAddrs as _},
    time::Duration,
};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the graylane agent is not reachable at {addr} (is it running? --admin sets the address)")]
    Unreachable { addr: String, source: std::io::Error },
    #[error("talking to the agent at {addr}")]
    Io { addr: String, source: std::io::Error },
    #[error("GET {path}: {status}: {body}")]
    Status { path: String, status: u16, body: String },
    #[error("GET {path}: not JSON")]
    Json { path: String, source: serde_json::Error },
    #[error("{0}: malformed HTTP response")]
    Malformed(String),
}

pub struct Admin {
    addr: String,
}

impl Admin {
    pub fn new(addr: &str) -> Self {
        Self { addr: addr.to_owned() }
    }

    /// `GET path` as JSON.
    pub fn json(&self, path: &str) -> Result<serde_json::Value, ClientError> {
        let (mut reader, chunked) = self.open(path, Some(Duration::from_secs(10)))?;
        let mut body = Vec::new();
        if chunked {
            while let Some(chunk) = next_chunk(&mut reader, &self.addr)? {
                body.extend(chunk);
            }
        } else {
            reader.read_to_end(&mut body).map_err(|e| self.io(e))?;
        }
        serde_json::from_slice(&body).map_err(|source| ClientError::Json { path: path.to_owned(), source })
    }

    /// `GET path` streaming JSON lines; `each` gets every value until the agent closes.
    pub fn follow(&self, path: &str, mut each: impl FnMut(serde_json::Value)) -> Result<(), ClientError> {
        let (mut reader, _) = self.open(path, None)?;
        let mut pending = Vec::new();
        while let Some(chunk) = next_chunk(&mut reader, &self.addr)? {
            pending.extend(chunk);
            while let Some(i) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=i).collect();
                if let Ok(v) = serde_json::from_slice(&line) {
                    each(v);
                }
            }
        }
        Ok(())
    }

    fn io(&self, source: std::io::Error) -> ClientError {
        ClientError::Io { addr: self.addr.clone(), source }
    }

    /// Sends the request, checks the status, and returns the body reader.
    fn open(
        &self,
        path: &str,
        timeout: Option<Duration>,
    ) -> Result<(BufReader<TcpStream>, bool), ClientError> {
        let unreachable = |source| ClientError::Unreachable { addr: self.addr.clone(), source };
        let addr: SocketAddr = self
            .addr
            .to_socket_addrs()
            .map_err(unreachable)?
            .next()
            .ok_or_else(|| unreachable(std::io::Error::other("no address")))?;
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(unreachable)?;
        stream.set_read_timeout(timeout).map_err(|e| self.io(e))?;
        write!(stream, "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", self.addr)
            .map_err(|e| self.io(e))?;
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).map_err(|e| self.io(e))?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| ClientError::Malformed(self.addr.clone()))?;
        let mut chunked = false;
        loop {
            line.clear();
            reader.read_line(&mut line).map_err(|e| self.io(e))?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((k, v)) = header.split_once(':')
                && k.eq_ignore_ascii_case("transfer-encoding")
                && v.trim().eq_ignore_ascii_case("chunked")
            {
                chunked = true;
            }
        }
        if status != 200 {
            let mut body = String::new();
            let _ = reader.read_to_string(&mut body);
            return Err(ClientError::Status { path: path.to_owned(), status, body: body.trim().to_owned() });
        }
        Ok((reader, chunked))
    }
}

/// The next chunk of a chunked body; `None` at its end.
fn next_chunk(reader: &mut BufReader<TcpStream>, addr: &str) -> Result<Option<Vec<u8>>, ClientError> {
    let io = |source| ClientError::Io { addr: addr.to_owned(), source };
    let mut size_line = String::new();
    if reader.read_line(&mut size_line).map_err(io)? == 0 {
        return Ok(None);
    }
    let size = usize::from_str_radix(size_line.trim().split(';').next().unwrap_or(""), 16)
        .map_err(|_| ClientError::Malformed(addr.to_owned()))?;
    if size == 0 {
        return Ok(None);
    }
    let mut chunk = vec![0; size + 2];
    reader.read_exact(&mut chunk).map_err(io)?;
    chunk.truncate(size);
    Ok(Some(chunk))
}
