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

    /// Forwards connections to `listen` (in the caller's network namespace: loopback on the
    /// machine) to this API inside the sandbox, for a browser, until the process ends.
    pub fn forward(&self, listen: SocketAddr) -> anyhow::Result<()> {
        let listener = std::net::TcpListener::bind(listen).with_context(|| format!("listen on {listen}"))?;
        let (netns, addr) = (self.netns.clone(), self.addr);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let netns = netns.clone();
                std::thread::spawn(move || -> anyhow::Result<()> {
                    let ns = std::fs::File::open(&netns)?;
                    setns(&ns, CloneFlags::CLONE_NEWNET)?;
                    let upstream = TcpStream::connect(addr)?;
                    let (mut back_from, mut back_to) = (upstream.try_clone()?, client.try_clone()?);
                    let back = std::thread::spawn(move || std::io::copy(&mut back_from, &mut back_to));
                    let (mut from, mut to) = (client, upstream);
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(std::net::Shutdown::Write);
                    let _ = back.join();
                    Ok(())
                });
            }
        });
        Ok(())
    }

    /// `GET path` as JSON, requiring 200.
    pub fn json(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        let (status, body) = self.get(path)?;
        anyhow::ensure!(status == 200, "GET {path}: {status}: {body}");
        serde_json::from_str(&body).with_context(|| format!("GET {path}: not JSON: {body}"))
    }

    /// The slowest of `n` `/healthz` answers, `pause` apart (each must be 200).
    pub fn healthz_worst(&self, n: usize, pause: Duration) -> anyhow::Result<Duration> {
        let mut worst = Duration::ZERO;
        for _ in 0..n {
            let started = std::time::Instant::now();
            let (status, body) = self.get("/healthz")?;
            anyhow::ensure!(status == 200, "/healthz: {status}: {body}");
            worst = worst.max(started.elapsed());
            std::thread::sleep(pause);
        }
        Ok(worst)
    }

    /// The bound a loaded `/healthz` answer is held to: five times the idle worst (measured
    /// in the same test, same machine state) plus 250 ms. Wall-clock checks in debug
    /// builds on a shared 2-core machine are compared with a baseline, never absolute.
    pub fn responsive_bound(idle_worst: Duration) -> Duration {
        idle_worst * 5 + Duration::from_millis(250)
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
    /// (from `/metrics` in the text format). A family that is not there, or no series that
    /// matches, is an error: a renamed or vanished metric never reads as 0.
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> anyhow::Result<f64> {
        sum_samples(&self.scrape()?, name, labels)?
            .ok_or_else(|| anyhow!("no series {name}{labels:?} in /metrics"))
    }

    /// As [`Admin::metric`], for a counter that may not have counted yet: 0 when no series
    /// matches, but the family must be declared (`# TYPE`) and know every label asked.
    pub fn count(&self, name: &str, labels: &[(&str, &str)]) -> anyhow::Result<f64> {
        Ok(sum_samples(&self.scrape()?, name, labels)?.unwrap_or(0.0))
    }

    fn scrape(&self) -> anyhow::Result<String> {
        let (status, body) = self.get("/metrics")?;
        anyhow::ensure!(status == 200, "GET /metrics: {status}: {body}");
        Ok(body)
    }
}

/// Sums the samples of family `name` whose labels include every pair exactly: `None` when
/// no series matches. An error when the family is not declared, or when a label asked for
/// is carried by none of its series (a renamed label).
pub fn sum_samples(text: &str, name: &str, labels: &[(&str, &str)]) -> anyhow::Result<Option<f64>> {
    // A histogram's samples are `<family>_bucket`, `_count` and `_sum`.
    let family =
        |f: &str| f == name || ["_bucket", "_count", "_sum"].iter().any(|s| name.strip_suffix(s) == Some(f));
    anyhow::ensure!(
        text.lines()
            .any(|l| l.strip_prefix("# TYPE ").and_then(|t| t.split_whitespace().next()).is_some_and(family)),
        "no metric family {name} in /metrics"
    );
    let mut sum = None;
    let mut keys = std::collections::HashSet::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let (series, value) = line.rsplit_once(' ').with_context(|| format!("sample line {line:?}"))?;
        let (metric, pairs) = match series.split_once('{') {
            Some((m, rest)) => {
                let body = rest.strip_suffix('}').with_context(|| format!("labels of {line:?}"))?;
                (m, parse_labels(body).with_context(|| format!("labels of {line:?}"))?)
            }
            None => (series, Vec::new()),
        };
        if metric != name {
            continue;
        }
        keys.extend(pairs.iter().map(|(k, _)| k.clone()));
        if labels.iter().all(|(k, v)| pairs.iter().any(|(pk, pv)| pk == k && pv == v)) {
            let v: f64 = value.parse().with_context(|| format!("value of {line:?}"))?;
            *sum.get_or_insert(0.0) += v;
        }
    }
    if !keys.is_empty()
        && let Some((k, _)) = labels.iter().find(|(k, _)| !keys.contains(*k))
    {
        anyhow::bail!("{name} has no label {k} (its labels: {keys:?})");
    }
    Ok(sum)
}

/// `k="v",k2="v2"` → pairs, with the text format's escapes (`\\`, `\"`, `\n`) undone.
fn parse_labels(body: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"").context("a label without =\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next().context("an unterminated label value")? {
                (i, '"') => break i,
                (_, '\\') => match chars.next().context("an escape at the end")?.1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (_, c) => value.push(c),
            }
        };
        pairs.push((key.trim().to_owned(), value));
        rest = after[end + 1..].trim_start_matches(',');
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::sum_samples;

    const TEXT: &str = "# HELP graylane_requests_total Requests.\n# TYPE graylane_requests_total counter\ngraylane_requests_total{source_tag=\"gray\",tag=\"base\",path=\"a\\\"b,c\"} 3\ngraylane_requests_total{source_tag=\"base\",tag=\"gray\"} 4\n# TYPE graylane_datapath_healthy gauge\ngraylane_datapath_healthy 0\n# TYPE graylane_lane_escapes_total counter\n";

    #[test]
    fn labels_match_exactly_and_missing_families_are_errors() {
        let sum = |name: &str, labels: &[(&str, &str)]| sum_samples(TEXT, name, labels);
        assert_eq!(sum("graylane_requests_total", &[("tag", "gray")]).ok(), Some(Some(4.0)));
        assert_eq!(sum("graylane_requests_total", &[("path", "a\"b,c")]).ok(), Some(Some(3.0)));
        assert_eq!(sum("graylane_requests_total", &[]).ok(), Some(Some(7.0)));
        assert_eq!(sum("graylane_requests_total", &[("tag", "stress")]).ok(), Some(None));
        assert_eq!(sum("graylane_datapath_healthy", &[]).ok(), Some(Some(0.0)));
        assert_eq!(sum("graylane_lane_escapes_total", &[("reason", "x")]).ok(), Some(None));
        let histogram = "# TYPE graylane_d_seconds histogram\ngraylane_d_seconds_count{tag=\"a\"} 2\n";
        assert_eq!(sum_samples(histogram, "graylane_d_seconds_count", &[("tag", "a")]).ok(), Some(Some(2.0)));
        assert!(sum("graylane_datapath_health", &[]).is_err(), "a renamed family");
        assert!(sum("graylane_requests_total", &[("lane", "gray")]).is_err(), "a label no series has");
    }
}
