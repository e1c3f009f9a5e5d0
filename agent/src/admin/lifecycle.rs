//! The agent's phase as probes and a successor see it: starting (first sync pending),
//! ready, draining, handed over; the datapath's health; and the successor's request to
//! hand over (`POST /takeover`).

use std::sync::atomic::{AtomicU8, Ordering};

use arc_swap::ArcSwap;
use tokio::sync::Notify;

use crate::datapath::DatapathHealth;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Up, first inventory sync pending.
    Starting,
    Ready,
    /// Stopped accepting; in-flight work finishes.
    Draining,
    /// Another agent owns the pins now; this one only finishes what it had.
    HandedOver,
}

impl Phase {
    const ALL: [Phase; 4] = [Phase::Starting, Phase::Ready, Phase::Draining, Phase::HandedOver];
}

pub struct Lifecycle {
    phase: AtomicU8,
    handover: Notify,
    datapath: ArcSwap<DatapathHealth>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self {
            phase: AtomicU8::new(Phase::Starting as u8),
            handover: Notify::new(),
            datapath: ArcSwap::from_pointee(DatapathHealth::default()),
        }
    }
}

impl Lifecycle {
    pub fn phase(&self) -> Phase {
        Phase::ALL[usize::from(self.phase.load(Ordering::Acquire)).min(3)]
    }

    pub fn set(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Release);
    }

    /// A successor asks to take over: only a ready agent hands over (once).
    pub fn request_handover(&self) -> bool {
        let ready = self
            .phase
            .compare_exchange(Phase::Ready as u8, Phase::Draining as u8, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if ready {
            self.handover.notify_one();
        }
        ready
    }

    /// Resolves when a successor has asked to take over.
    pub async fn handover_requested(&self) {
        self.handover.notified().await;
    }

    pub fn datapath(&self) -> std::sync::Arc<DatapathHealth> {
        self.datapath.load_full()
    }

    pub fn set_datapath(&self, health: DatapathHealth) {
        self.datapath.store(std::sync::Arc::new(health));
    }
}
