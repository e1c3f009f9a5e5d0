//! Opaque TCP: bytes pass through to an endpoint chosen by the same plan as HTTP (the
//! caller's lane is its source pod's: there are no headers to read), tenant isolation
//! included. One flow per connection records how it ended.

use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite};

use super::{Proxy, conn::ConnContext, data, error, plan};
use crate::{
    stores::enforcement::Enforcement,
    telemetry::{data::DataSeries, flows::FlowOutcome, metrics},
};

/// How long a lane's connection waits for its store account's first check.
const STANDING_PATIENCE: std::time::Duration = std::time::Duration::from_secs(3);

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
    // A connection served outside its lane is an escape, as a request is (and as the kernel
    // counts the connections it routes); a data lane on the store's base endpoints is kept
    // in its lane by its mapping.
    if let Some(d) = &target.decision
        && let Some(why) = d.reason.escape()
        && planned
            .service
            .as_ref()
            .and_then(|s| s.data.as_ref())
            .is_none_or(|r| r.lane(planned.lane.tag.as_deref()).is_none())
    {
        m.escapes
            .with_label_values(&[&*conn.telemetry.workload, &*planned.tag_label, &*service, &*d.subset, why])
            .inc();
    }
    let mut upstream = match proxy.dial.dial(&conn.origin, target.endpoint).await {
        Ok(s) => s,
        Err(e) => {
            proxy.connect_failed_from(&conn.origin, &e);
            let e = error::connect_failed(&e, target.endpoint, proxy.cfg.connect_timeout);
            connection(e.reason());
            flow.close(FlowOutcome::Failed(e.to_string()), 0, 0, started.elapsed());
            return tracing::debug!(client = %conn.client, error = %e, "upstream connect failed");
        }
    };
    connection("forwarded");
    // A data store with lanes (called by its Service or by a pod's own address): the lane's
    // connections (and, on NATS, base ones) go through the store's codec.
    let state = proxy.state.load();
    let store = planned
        .service
        .clone()
        .filter(|s| s.data.is_some())
        .or_else(|| state.routing.data_endpoint(conn.orig_dst.0).cloned());
    if let Some((store, rules)) = store.and_then(|s| s.data.clone().map(|d| (s.name.clone(), d))) {
        let lane = rules.lane(planned.lane.tag.as_deref());
        // A lane that needs its store to hold the line is served only where it does.
        let refuse = match lane {
            Some(l) if l.require_store => {
                let standing =
                    proxy.enforcements.settled(&store, l, target.endpoint.0, STANDING_PATIENCE).await;
                match standing {
                    Enforcement::StoreEnforced => None,
                    other => Some(format!(
                        "its store account is {} ({}); isolated lanes need a store-enforced account or allowRewriteOnly",
                        other.as_str(),
                        other.detail().unwrap_or("not checked yet")
                    )),
                }
            }
            _ => None,
        };
        if let Some(mut codec) = crate::stores::codec(&rules, lane, refuse) {
            let lane_name = lane.map_or("", |l| &*l.lane);
            if let Some(l) = lane {
                flow.update(|s| s.data_lane = Some(l.describe.clone()));
            }
            let series = DataSeries::new(&store, lane_name, rules.protocol.as_str());
            let t = &proxy.telemetry;
            let mut held = proxy.data_budget.hold(conn.src_pod.as_ref());
            match data::pump(&mut *codec, downstream, upstream, t, &conn.telemetry, &series, &mut held).await
            {
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
    drop(state);
    match tokio::io::copy_bidirectional(&mut downstream, &mut upstream).await {
        Ok((up, down)) => {
            m.tcp_bytes.with_label_values(&[&*service, "sent"]).inc_by(up);
            m.tcp_bytes.with_label_values(&[&*service, "received"]).inc_by(down);
            flow.close(FlowOutcome::Closed, up, down, started.elapsed());
        }
        Err(e) => flow.close(FlowOutcome::Failed(e.to_string()), 0, 0, started.elapsed()),
    }
}
