//! Fault injection for a lane: abort or delay a share of its requests.

use std::time::Duration;

use rand::Rng as _;

use crate::inventory::resilience::Fault;

/// The abort status and the delay to inject into a request of lane `tag`, if any.
pub fn roll(faults: &[Fault], tag: Option<&str>) -> (Option<u16>, Option<Duration>) {
    let mut rng = rand::rng();
    let mut hit = |pct: f64| rng.random_range(0.0..100.0) < pct;
    let mut abort = None;
    let mut delay = None;
    for f in faults.iter().filter(|f| f.tags.is_empty() || tag.is_some_and(|t| f.tags.iter().any(|x| x == t)))
    {
        if abort.is_none()
            && let Some(a) = &f.abort
            && hit(a.percentage)
        {
            abort = Some(a.status);
        }
        if delay.is_none()
            && let Some(d) = &f.delay
            && hit(d.percentage)
        {
            delay = Some(d.duration.0);
        }
    }
    (abort, delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_hit_their_lane_and_share() {
        let faults: Vec<Fault> =
            serde_norway::from_str("- {tags: [gray], abort: {status: 503, percentage: 25}}").expect("yaml");
        let aborted = (0..4000).filter(|_| roll(&faults, Some("gray")).0 == Some(503)).count();
        assert!((800..1200).contains(&aborted), "{aborted}");
        assert!((0..1000).all(|_| roll(&faults, None).0.is_none()));
    }
}
