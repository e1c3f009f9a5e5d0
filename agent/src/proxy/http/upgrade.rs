//! `Upgrade` (websocket and friends) passthrough: once the upstream answers 101, both sides
//! are upgraded and bytes are copied between them.

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

pub fn tunnel(downstream: OnUpgrade, upstream: OnUpgrade) {
    tokio::spawn(async move {
        match tokio::try_join!(downstream, upstream) {
            Ok((down, up)) => {
                let (mut down, mut up) = (TokioIo::new(down), TokioIo::new(up));
                if let Err(e) = tokio::io::copy_bidirectional(&mut down, &mut up).await {
                    tracing::debug!(error = %e, "upgraded connection ended");
                }
            }
            Err(e) => tracing::warn!(error = %e, "upgrade failed"),
        }
    });
}
