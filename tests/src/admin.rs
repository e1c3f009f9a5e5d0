//! A client for the agent's admin API, which listens on loopback inside the node netns.
//! Requests run on a thread that joined that netns: no traffic leaves the sandbox.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    path::PathBuf,
    time::Duration,
};

use anyhow::{Context as _, anyhow};
use nix::sched::{CloneFlags, setns};

#[derive(Clone, Debug)]
pub struct Admin {
    pub netns: PathBuf,
    pub addr: SocketAddr,
}

impl Admin {
    /// `GET path` → (status, body).
    pub fn get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        let (netns, addr, path) = (self.netns.clone(), self.addr, path.to_owned());
        std::thread::spawn(move || -> anyhow::Result<(u16, String)> {
            let ns = std::fs::File::open(&netns).with_context(|| format!("open {}", netns.display()))?;
            setns(&ns, CloneFlags::CLONE_NEWNET).context("setns")?;
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            write!(s, "GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")?;
            let mut raw = Vec::new();
            s.read_to_end(&mut raw)?;
            let text = String::from_utf8_lossy(&raw);
            let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| anyhow!("bad response: {text}"))?;
            let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
            Ok((status, body.to_owned()))
        })
        .join()
        .map_err(|_| anyhow!("admin client thread panicked"))?
    }

    /// `GET path` as JSON, requiring 200.
    pub fn json(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        let (status, body) = self.get(path)?;
        anyhow::ensure!(status == 200, "GET {path}: {status}: {body}");
        serde_json::from_str(&body).with_context(|| format!("GET {path}: not JSON: {body}"))
    }

    /// A kernel counter from `/datapath` (e.g. `captured`, `fail_open`).
    pub fn counter(&self, name: &str) -> anyhow::Result<u64> {
        let v = self.json("/datapath")?;
        v["counters"][name].as_u64().ok_or_else(|| anyhow!("no counter {name}"))
    }

    /// Waits (up to 10 s) until `/routes` reports `lane` of data store `service` with
    /// `enforcement` (`store-enforced` or `rewrite-only`); the last report on time-out.
    pub fn wait_data_lane(&self, service: &str, lane: &str, enforcement: &str) -> anyhow::Result<()> {
        self.wait_data_lane_for(service, lane, enforcement, Duration::from_secs(10))
    }

    /// As [`Admin::wait_data_lane`], up to `patience`.
    pub fn wait_data_lane_for(
        &self,
        service: &str,
        lane: &str,
        enforcement: &str,
        patience: Duration,
    ) -> anyhow::Result<()> {
        let mut last = serde_json::Value::Null;
        let until = std::time::Instant::now() + patience;
        while std::time::Instant::now() < until {
            let routes = self.json(&format!("/routes?service={service}"))?;
            let found = routes
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|r| r["data_lanes"].as_array().into_iter().flatten())
                .find(|d| d["lane"] == lane)
                .cloned();
            if let Some(d) = found {
                if d["enforcement"] == enforcement {
                    return Ok(());
                }
                last = d;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(anyhow!("{service} lane {lane} is not {enforcement}: {last}"))
    }

    /// The sum of a Prometheus family's samples whose labels include every `labels` pair
    /// (from `/metrics` in the text format); 0 when none matches.
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> anyhow::Result<f64> {
        let (status, body) = self.get("/metrics")?;
        anyhow::ensure!(status == 200, "GET /metrics: {status}: {body}");
        Ok(sum_samples(&body, name, labels))
    }
}

/// Sums the samples of `name` that carry every label pair.
pub fn sum_samples(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric, label_text) = match series.split_once('{') {
                Some((m, rest)) => (m, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let wanted = labels.iter().all(|(k, v)| label_text.contains(&format!("{k}=\"{v}\"")));
            (metric == name && wanted).then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}
