//! Opaque TCP: bytes pass through to an endpoint chosen by the same plan as HTTP (the
//! caller's lane is its source pod's: there are no headers to read), tenant isolation
//! included. One flow per connection records how it ended.

use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite};

use super::{Proxy, conn::ConnContext, data, error, plan};
use crate::telemetry::{data::DataSeries, flows::FlowOutcome, metrics};

pub async fn forward<T>(proxy: &Proxy, conn: &ConnContext, mut downstream: T)
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let started = Instant::now();
    let planned = plan::plan(&proxy.state.load(), conn, None, &plan::NoMemory);
    let flow = &conn.telemetry.flow;
    let service = planned.service_label.clone();
    let m = &metrics().requests;
    let connection = |result: &str| {
        m.tcp_connections.with_label_values(&[&*conn.telemetry.workload, &*service, result]).inc()
    };
    flow.update(|s| {
        s.service = Some(service.clone());
        s.lane_tag.clone_from(&planned.lane.tag);
        s.tag_source = Some(planned.lane.tag_source.as_str());
    });
    let target = match planned.target {
        Ok(t) => t,
        Err(e) => {
            connection(e.reason());
            if e.kind == error::ErrorKind::TenantIsolation {
                m.tenant_denied.with_label_values(&[&*planned.tenant_label, &*service]).inc();
            }
            flow.update(|s| s.local_reason = Some(e.reason()));
            flow.close(FlowOutcome::Failed(e.to_string()), 0, 0, started.elapsed());
            return tracing::debug!(client = %conn.client, orig = %conn.orig_dst, error = %e, "no upstream");
        }
    };
    flow.update(|s| {
        s.upstream = Some(target.endpoint.0);
        s.endpoint_pod.clone_from(&target.pod);
        if let Some(d) = &target.decision {
            s.subset = Some(d.subset.clone());
            s.reason = Some(d.reason.as_str());
        }
    });
    let mut upstream = match proxy.dial.dial(&conn.origin, target.endpoint).await {
        Ok(s) => s,
        Err(e) => {
            let e = error::connect_failed(&e, target.endpoint, proxy.cfg.connect_timeout);
            connection(e.reason());
            flow.close(FlowOutcome::Failed(e.to_string()), 0, 0, started.elapsed());
            return tracing::debug!(client = %conn.client, error = %e, "upstream connect failed");
        }
    };
    connection("forwarded");
    // A data store with lanes: the lane's connections (and, on NATS, base ones) go
    // through the store's codec.
    let data = planned.service.as_ref().and_then(|s| s.data.clone());
    if let Some(rules) = data {
        let lane = rules.lane(planned.lane.tag.as_deref());
        if let Some(mut codec) = crate::stores::codec(&rules, lane, None) {
            let lane_name = lane.map_or("", |l| &*l.lane);
            if let Some(l) = lane {
                flow.update(|s| s.data_lane = Some(l.describe.clone()));
            }
            let series = DataSeries::new(&service, lane_name, rules.protocol.as_str());
            let t = &proxy.telemetry;
            match data::pump(&mut *codec, downstream, upstream, t, &conn.telemetry, &series).await {
                Ok((up, down)) => {
                    m.tcp_bytes.with_label_values(&[&*service, "sent"]).inc_by(up);
                    m.tcp_bytes.with_label_values(&[&*service, "received"]).inc_by(down);
                    flow.close(FlowOutcome::Closed, up, down, started.elapsed());
                }
                Err(e) => {
                    tracing::debug!(client = %conn.client, lane = lane_name, error = %e, "data connection closed");
                    flow.close(FlowOutcome::Failed(e.to_string()), 0, 0, started.elapsed());
                }
            }
            return;
        }
    }
    match tokio::io::copy_bidirectional(&mut downstream, &mut upstream).await {
        Ok((up, down)) => {
            m.tcp_bytes.with_label_values(&[&*service, "sent"]).inc_by(up);
            m.tcp_bytes.with_label_values(&[&*service, "received"]).inc_by(down);
            flow.close(FlowOutcome::Closed, up, down, started.elapsed());
        }
        Err(e) => flow.close(FlowOutcome::Failed(e.to_string()), 0, 0, started.elapsed()),
    }
}
