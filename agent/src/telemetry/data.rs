//! Data-lane connections, recorded as they go: commands counted by what graylane did with
//! them, the flow's data-lane columns, and one access-log line per refused command, with
//! the command's name and never its values.

use std::time::SystemTime;

use prometheus::IntCounter;

use super::{metrics, record::ConnTelemetry, record::Telemetry};

/// What a data-lane connection did since it was last recorded.
#[derive(Debug, Default)]
pub struct DataTally {
    pub rewritten: u64,
    pub passed: u64,
    pub rejected: u64,
    pub unsupported_passed: u64,
    /// Refused commands: (name, why).
    pub rejections: Vec<(String, &'static str)>,
}

/// One data-lane connection's counters, resolved once.
pub struct DataSeries {
    rewritten: IntCounter,
    passed: IntCounter,
    rejected: IntCounter,
    unsupported_passed: IntCounter,
    service: String,
    lane: String,
    protocol: &'static str,
}

impl DataSeries {
    pub fn service(&self) -> &str {
        &self.service
    }

    pub fn lane(&self) -> &str {
        &self.lane
    }

    pub fn protocol(&self) -> &'static str {
        self.protocol
    }

    pub fn new(service: &str, lane: &str, protocol: &'static str) -> Self {
        let m = &metrics().data.commands;
        let c = |result: &str| m.with_label_values(&[service, lane, protocol, result]);
        Self {
            rewritten: c("rewritten"),
            passed: c("passed"),
            rejected: c("rejected"),
            unsupported_passed: c("unsupported_passed"),
            service: service.to_owned(),
            lane: lane.to_owned(),
            protocol,
        }
    }
}

#[derive(serde::Serialize)]
struct RejectLine<'a> {
    ts_ms: u64,
    kind: &'static str,
    client: std::net::SocketAddr,
    src_pod: Option<&'a str>,
    service: &'a str,
    lane: &'a str,
    protocol: &'a str,
    command: &'a str,
    reason: &'static str,
    detail: &'a str,
}

impl Telemetry {
    /// Records what a data-lane connection did since the last call, and empties `tally`.
    pub fn data(&self, conn: &ConnTelemetry, series: &DataSeries, tally: &mut DataTally) {
        if tally.rewritten + tally.passed + tally.rejected + tally.unsupported_passed == 0 {
            return;
        }
        if self.record.metrics {
            series.rewritten.inc_by(tally.rewritten);
            series.passed.inc_by(tally.passed);
            series.rejected.inc_by(tally.rejected);
            series.unsupported_passed.inc_by(tally.unsupported_passed);
        }
        if self.record.flows {
            let n = tally.rewritten + tally.passed + tally.rejected + tally.unsupported_passed;
            conn.flow.update(|s| {
                s.requests += n;
                s.data_rejected += tally.rejected;
            });
        }
        if let Some(log) = &self.access_log {
            let ts_ms =
                SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
            for (command, why) in &tally.rejections {
                let line = RejectLine {
                    ts_ms,
                    kind: "data",
                    client: conn.client,
                    src_pod: conn.src_pod.as_deref(),
                    service: &series.service,
                    lane: &series.lane,
                    protocol: series.protocol,
                    command,
                    reason: "data_lane_unsupported",
                    detail: why,
                };
                let mut out = serde_json::to_vec(&line).unwrap_or_default();
                out.push(b'\n');
                log.write(out);
            }
        }
        *tally = DataTally::default();
    }
}
