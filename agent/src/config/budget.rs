//! The descriptor budget: planned from the open-files limit the process actually got, so
//! every cap fits inside it with room left for the kernel maps, the inventory and health
//! checks. A captured connection costs two descriptors (downstream and upstream); pooled
//! idle upstream connections cost one each. Caps the user asks for beyond the budget are
//! lowered (and said so at start).

use crate::admin::Site;

/// Descriptors kept for everything that is not a proxied connection: eBPF maps, programs
/// and links, the runtime, the inventory watcher, logs, Redis and OTLP connections.
pub const RESERVED: u64 = 256;

/// Downstream connections at most unless told otherwise.
const DEFAULT_MAX_CONNS: usize = 100_000;

/// Share of the proxy's descriptors that idle upstream connections may hold at most.
const IDLE_SHARE: u64 = 8;
/// Share of the downstream cap one source pod may hold unless told otherwise (so one pod
/// cannot starve the others).
const PER_POD_SHARE: u64 = 4;

/// What fits in the open-files limit.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Budget {
    /// The open-files limit planned from.
    pub open_files: u64,
    /// Admin and metrics connections at most.
    pub admin_connections: u64,
    /// Downstream connections at once, in total and per source pod.
    pub max_conns: usize,
    pub max_conns_per_pod: usize,
    /// Idle pooled upstream connections at most (over every endpoint).
    pub upstream_idle: usize,
    /// What was asked for and lowered to fit, for the start log.
    #[serde(skip)]
    pub lowered: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error(
    "the open-files limit ({open_files}) leaves no room for proxied connections (at least {needed} \
     needed): raise it (ulimit -n, LimitNOFILE=, or the container runtime's nofile)"
)]
pub struct BudgetError {
    open_files: u64,
    needed: u64,
}

impl Budget {
    /// Plans caps for `open_files` descriptors; `max_conns` and `max_conns_per_pod` are what
    /// the user asked for (lowered to fit, never raised); without a per-pod cap, a pod gets
    /// a quarter of the total.
    pub fn plan(
        open_files: u64,
        max_conns: Option<usize>,
        max_conns_per_pod: Option<usize>,
    ) -> Result<Self, BudgetError> {
        let admin: u64 = [Site::Admin, Site::Metrics].iter().map(|s| s.caps().1 as u64).sum();
        let needed = RESERVED + admin + 64;
        let Some(proxy) = open_files.checked_sub(RESERVED + admin).filter(|p| *p >= 64) else {
            return Err(BudgetError { open_files, needed });
        };
        let upstream_idle = proxy / IDLE_SHARE;
        let fit_conns = ((proxy - upstream_idle) / 2) as usize;
        let mut lowered = Vec::new();
        let total = match max_conns {
            None => fit_conns.min(DEFAULT_MAX_CONNS),
            Some(asked) if asked > fit_conns => {
                lowered.push(format!("--max-conns {asked} → {fit_conns}"));
                fit_conns
            }
            Some(asked) => asked,
        };
        let per_pod = match max_conns_per_pod {
            None => (total / PER_POD_SHARE as usize).max(1),
            Some(asked) if asked > total => {
                lowered.push(format!("--max-conns-per-pod {asked} → {total}"));
                total
            }
            Some(asked) => asked,
        };
        Ok(Self {
            open_files,
            admin_connections: admin,
            max_conns: total.max(1),
            max_conns_per_pod: per_pod.max(1),
            upstream_idle: upstream_idle as usize,
            lowered,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cap_fits_in_the_limit_with_the_reserve_left() {
        for limit in [1024u64, 20_000, 65_536, 1 << 20] {
            let b = Budget::plan(limit, None, None).expect("plan");
            let used = 2 * b.max_conns as u64 + b.upstream_idle as u64 + b.admin_connections + RESERVED;
            assert!(used <= limit, "{limit}: {b:?} uses {used}");
            assert!(b.max_conns_per_pod * 4 <= b.max_conns.max(4), "{b:?}");
        }
        let at_20k = Budget::plan(20_000, None, None).expect("plan");
        assert_eq!((at_20k.max_conns, at_20k.max_conns_per_pod), (8_582, 2_145));
        assert!(at_20k.lowered.is_empty(), "defaults fit without a word");
        assert_eq!(Budget::plan(1 << 20, None, None).expect("plan").max_conns, 100_000);
        let asked = Budget::plan(20_000, Some(100_000), Some(10_000)).expect("plan");
        assert_eq!((asked.max_conns, asked.max_conns_per_pod), (8_582, 8_582));
        assert_eq!(asked.lowered.len(), 2);
        // What fits is kept as asked.
        let small = Budget::plan(1 << 20, Some(1000), Some(50)).expect("plan");
        assert_eq!((small.max_conns, small.max_conns_per_pod), (1000, 50));
        assert!(small.lowered.is_empty());
        assert!(Budget::plan(300, Some(10), None).is_err());
    }
}
