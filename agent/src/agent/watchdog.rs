//! Every second: is the datapath still this agent's? Link pins holding our links, our
//! listeners in the sockmap (refilled when found missing). What it finds goes to
//! `/healthz`, `/status` and `graylane_datapath_*`, and to the log when it changes.

use std::{sync::Arc, time::Duration};

use crate::{
    admin::Lifecycle,
    datapath::{LinkStatus, Listeners, PinPaths, check_health},
    telemetry::metrics,
};

const EVERY: Duration = Duration::from_secs(1);

pub async fn run(
    pins: PinPaths,
    links: Vec<LinkStatus>,
    listeners: Arc<Listeners>,
    lifecycle: Arc<Lifecycle>,
) {
    let m = &metrics().kernel;
    m.datapath_healthy.set(1);
    loop {
        tokio::time::sleep(EVERY).await;
        let health = check_health(&pins, &links, &listeners);
        for slot in &health.repaired {
            tracing::error!(
                slot,
                "the proxy listener was missing from the sockmap (capture was failing open); restored"
            );
            m.datapath_repairs.with_label_values(&["listener"]).inc();
        }
        if health.problems != lifecycle.datapath().problems {
            if health.ok() {
                tracing::info!("datapath healthy again");
            } else {
                tracing::error!(problems = ?health.problems, "datapath is not this agent's any more");
            }
        }
        m.datapath_healthy.set(i64::from(health.ok()));
        lifecycle.set_datapath(health);
    }
}
