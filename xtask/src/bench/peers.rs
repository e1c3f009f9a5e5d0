//! nginx configurations: the 1 KiB backend, and the reverse proxy peer.

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
         keepalive_requests 100000000; keepalive_timeout 120s;\n"
    )
}

/// A backend serving `index.html` (1 KiB) on :8080, one worker.
pub fn backend(dir: &Path) -> anyhow::Result<PathBuf> {
    let www = dir.join("www");
    std::fs::create_dir_all(&www)?;
    std::fs::write(www.join("index.html"), "x".repeat(1024))?;
    let conf = format!(
        "worker_processes 1;\n{}server {{ listen [::]:8080 ipv6only=off reuseport backlog=4096; location / {{ root {}; }} }} }}\n",
        common(dir, "backend"),
        www.display()
    );
    let path = dir.join("backend.conf");
    std::fs::write(&path, conf)?;
    Ok(path)
}

/// nginx as a plain HTTP/1.1 reverse proxy with upstream keep-alive, one worker per core
/// (the same CPU budget graylane's runtime gets).
pub fn reverse_proxy(dir: &Path, listen: &str, backend: Ipv4Addr, port: u16) -> anyhow::Result<PathBuf> {
    let conf = format!(
        "worker_processes auto;\n{}upstream backend {{ server {backend}:{port}; keepalive 256; }}\n\
         server {{ listen {listen} reuseport backlog=4096; location / {{ proxy_pass http://backend; \
         proxy_http_version 1.1; proxy_set_header Connection \"\"; }} }} }}\n",
        common(dir, "proxy")
    );
    let path = dir.join("proxy.conf");
    std::fs::write(&path, conf)?;
    Ok(path)
}
