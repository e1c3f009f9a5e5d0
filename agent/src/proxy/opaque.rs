//! Opaque TCP: bytes pass through to an endpoint of the destination's subset for the
//! caller's lane (the source pod's tag and tenant: there are no headers to read).

use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite};

use super::{
    Proxy,
    addrs::UpstreamAddr,
    connect,
    routing::{PickKey, RouteError},
    source::ConnContext,
};
use crate::telemetry::{flows::FlowOutcome, metrics};

pub async fn forward<T>(proxy: &Proxy, ctx: &ConnContext, mut downstream: T)
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let started = Instant::now();
    let mut service: std::sync::Arc<str> = "unknown".into();
    let target = {
        let state = proxy.state.load();
        match state.routing.service(ctx.orig_dst.0) {
            Some(svc) => {
                service = svc.name.clone();
                let pod = ctx.pod(&state);
                let lane = ctx.source_lane(pod.map(|p| &**p));
                let key = PickKey {
                    hash: svc.hash(None, ctx.client.0),
                    client: ctx.src_pod.as_deref().unwrap_or(""),
                };
                svc.decide(&lane, None, &key, svc.plan.as_deref()).map(|d| {
                    ctx.flow.update(|s| {
                        s.service = Some(svc.name.clone());
                        s.subset = Some(d.subset.clone());
                        s.reason = Some(d.reason.as_str());
                        s.endpoint_pod = Some(d.endpoint.pod.clone());
                        s.lane_tag = lane.tag.clone();
                        s.tag_source = Some(lane.tag_source.as_str());
                    });
                    UpstreamAddr(d.endpoint.addr)
                })
            }
            None if state.snapshot.pod_by_ip(ctx.orig_dst.0.ip()).is_some() => {
                service = "pod".into();
                Ok(UpstreamAddr(ctx.orig_dst.0))
            }
            None => {
                Err(RouteError::NoEndpoints { service: format!("{} (unknown destination)", ctx.orig_dst) })
            }
        }
    };
    let m = &metrics().requests;
    let connection =
        |result: &str| m.tcp_connections.with_label_values(&[&*ctx.workload, &*service, result]).inc();
    let upstream_addr = match target {
        Ok(a) => a,
        Err(e) => {
            connection("no_upstream");
            ctx.flow.close(FlowOutcome::Failed(e.to_string()), 0, 0, started.elapsed());
            return tracing::warn!(client = %ctx.client, orig = %ctx.orig_dst, error = %e, "no upstream");
        }
    };
    ctx.flow.update(|s| s.upstream = Some(upstream_addr.0));
    let mut upstream = match connect::connect(upstream_addr, proxy.cfg.bypass_mark, proxy.cfg.connect_timeout)
        .await
    {
        Ok(s) => s,
        Err(e) => {
            connection("connect_failed");
            ctx.flow.close(
                FlowOutcome::Failed(format!("connect {upstream_addr}: {e}")),
                0,
                0,
                started.elapsed(),
            );
            return tracing::warn!(client = %ctx.client, upstream = %upstream_addr, error = %e, "upstream connect failed");
        }
    };
    connection("forwarded");
    match tokio::io::copy_bidirectional(&mut downstream, &mut upstream).await {
        Ok((up, down)) => {
            m.tcp_bytes.with_label_values(&[&*service, "sent"]).inc_by(up);
            m.tcp_bytes.with_label_values(&[&*service, "received"]).inc_by(down);
            ctx.flow.close(FlowOutcome::Closed, up, down, started.elapsed());
        }
        Err(e) => ctx.flow.close(FlowOutcome::Failed(e.to_string()), 0, 0, started.elapsed()),
    }
}
