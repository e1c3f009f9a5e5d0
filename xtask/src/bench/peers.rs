//! nginx configurations: the backend (1 KiB over HTTP/1.1 on :8080, and over HTTP/2 with a
//! gRPC-shaped unary answer on :8082), the reverse proxy peer (HTTP/1.1 and HTTP/2), and a
//! span collector that accepts and discards OTLP exports.

use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
};

fn common(dir: &Path, name: &str) -> String {
    let d = dir.display();
    format!(
        "daemon off; user root; pid {d}/{name}.pid; error_log {d}/{name}-error.log warn;\n\
         events {{ worker_connections 8192; }}\n\
         http {{ access_log off; client_body_temp_path {d}/{name}-body; proxy_temp_path {d}/{name}-proxy;\n\
         fastcgi_temp_path {d}/{name}-fcgi; uwsgi_temp_path {d}/{name}-uwsgi; scgi_temp_path {d}/{name}-scgi;\n\
         keepalive_requests 100000000; keepalive_timeout 120s; http2_max_concurrent_streams 1024;\n"
    )
}

/// The gRPC-shaped answer: an empty message with `grpc-status: 0`.
const GRPC_ANSWER: &str = "location /echo.Echo/ { default_type application/grpc; add_trailer grpc-status 0 always; return 200 \"\"; }";

/// A backend serving `index.html` (1 KiB) on :8080 (HTTP/1.1) and :8082 (HTTP/2), one worker.
pub fn backend(dir: &Path) -> anyhow::Result<PathBuf> {
    let www = dir.join("www");
    std::fs::create_dir_all(&www)?;
    std::fs::write(www.join("index.html"), "x".repeat(1024))?;
    let root = www.display();
    let conf = format!(
        "worker_processes 1;\n{}\
         server {{ listen [::]:8080 ipv6only=off reuseport backlog=4096; location / {{ root {root}; }} }}\n\
         server {{ listen [::]:8082 http2 ipv6only=off reuseport backlog=4096; {GRPC_ANSWER} location / {{ root {root}; }} }} }}\n",
        common(dir, "backend")
    );
    let path = dir.join("backend.conf");
    std::fs::write(&path, conf)?;
    Ok(path)
}

/// nginx as a plain reverse proxy with upstream keep-alive, one worker per core (the same
/// CPU budget graylane's runtime gets): HTTP/1.1 on `listen`, HTTP/2 on `listen_h2`
/// (HTTP/1.1 upstream; gRPC through `grpc_pass`).
pub fn reverse_proxy(
    dir: &Path,
    listen: &str,
    listen_h2: &str,
    backend: Ipv4Addr,
) -> anyhow::Result<PathBuf> {
    let conf = format!(
        "worker_processes auto;\n{}upstream backend {{ server {backend}:8080; keepalive 256; }}\n\
         upstream backend_h2 {{ server {backend}:8082; keepalive 256; }}\n\
         server {{ listen {listen} reuseport backlog=4096; location / {{ proxy_pass http://backend; \
         proxy_http_version 1.1; proxy_set_header Connection \"\"; }} }}\n\
         server {{ listen {listen_h2} http2 reuseport backlog=4096; \
         location /echo.Echo/ {{ grpc_pass grpc://backend_h2; }} \
         location / {{ proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection \"\"; }} }} }}\n",
        common(dir, "proxy")
    );
    let path = dir.join("proxy.conf");
    std::fs::write(&path, conf)?;
    Ok(path)
}

/// Accepts OTLP/HTTP exports and discards them (the cost measured is graylane's, not a
/// collector's).
pub fn collector(dir: &Path, listen: &str) -> anyhow::Result<PathBuf> {
    let conf = format!(
        "worker_processes 1;\n{}server {{ listen {listen}; client_body_buffer_size 1m; location / {{ return 200; }} }} }}\n",
        common(dir, "collector")
    );
    let path = dir.join("collector.conf");
    std::fs::write(&path, conf)?;
    Ok(path)
}
