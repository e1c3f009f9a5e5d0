//! Is the datapath still the one this agent installed? Each link pin must exist and hold
//! our link, and our listeners must still be in the sockmap (an entry found missing is put
//! back and reported). Checked periodically by the agent.

use aya::programs::links::{FdLink, PinnedLink};

use super::{LinkStatus, Listeners, PinPaths};

/// What a check found.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DatapathHealth {
    /// What is wrong now (capture may be off or belong to someone else).
    pub problems: Vec<String>,
    /// Sockmap slots of ours that were found empty and refilled by this check.
    pub repaired: Vec<u32>,
}

impl DatapathHealth {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

pub fn check(pins: &PinPaths, links: &[LinkStatus], listeners: &Listeners) -> DatapathHealth {
    let mut problems = Vec::new();
    for l in links {
        let pin = pins.links().join(l.hook.program());
        if !pin.exists() {
            problems.push(format!(
                "link pin {} is gone: capture stops when this agent exits (restart it to pin again)",
                pin.display()
            ));
            continue;
        }
        match PinnedLink::from_pin(&pin).map(FdLink::from).and_then(|link| link.info()) {
            Ok(info) if info.id() == l.link_id => {}
            Ok(info) => problems.push(format!(
                "link pin {} holds link {}, not this agent's link {}: another agent replaced it",
                pin.display(),
                info.id(),
                l.link_id
            )),
            Err(e) => problems.push(format!("link pin {}: {e}", pin.display())),
        }
    }
    let repaired = listeners.repair();
    DatapathHealth { problems, repaired }
}
