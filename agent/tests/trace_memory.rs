//! What the trace memory costs: the heap it holds for 100,000 lane traces (each with a
//! `traceparent` and an `x-request-id`, as the proxy makes sure every request has), counted
//! by dhat's global allocator. Its own test binary: nothing else allocates meanwhile.

use std::sync::Arc;

use graylane::{
    proxy::continuity::{Continuity, ContinuityConfig},
    routing::Placement,
};
use http::{HeaderMap, HeaderValue};

#[global_allocator]
static ALLOCATOR: dhat::Alloc = dhat::Alloc;

fn live_bytes() -> isize {
    dhat::HeapStats::get().curr_bytes as isize
}

const TRACES: u64 = 100_000;

#[test]
fn a_hundred_thousand_lane_traces_fit_in_a_few_mebibytes() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let memory = Continuity::new(&ContinuityConfig { entries: 4 * TRACES as usize, ..Default::default() });
    let (pod, tag): (Arc<str>, Arc<str>) = (Arc::from("default/relay"), Arc::from("gray"));
    let headers = |i: u64| {
        let mut h = HeaderMap::new();
        let tp = format!("00-{:032x}-00f067aa0ba902b7-01", i + 1);
        h.insert("traceparent", HeaderValue::from_str(&tp).expect("traceparent"));
        h.insert("x-request-id", HeaderValue::from_str(&format!("req-{i}")).expect("id"));
        h
    };
    // Warm up what is made once (metric families, label series).
    let h = headers(u64::MAX - 1);
    memory.forwarded(Some(&tag), None, &pod, Placement::Local, |r| memory.keys_with(&h, r), true);
    let all: Vec<HeaderMap> = (0..TRACES).map(headers).collect();
    let before = live_bytes();
    for h in &all {
        memory.forwarded(Some(&tag), None, &pod, Placement::Local, |r| memory.keys_with(h, r), true);
    }
    let held = live_bytes() - before;
    let state = graylane::proxy::ProxyState::default();
    let recalled =
        all.iter().filter(|h| memory.recall(&pod, &memory.keys(h), None, &state).is_some()).count();
    assert_eq!(recalled as u64, TRACES);
    let (entries, estimate) = memory.memory_size();
    eprintln!(
        "trace memory: {TRACES} traces → {entries} entries, {:.1} MiB on the heap ({:.0} bytes per trace; the gauge's estimate {:.1} MiB)",
        held as f64 / 1048576.0,
        held as f64 / TRACES as f64,
        estimate as f64 / 1048576.0
    );
    // Held by the tracer's id; the request id beside it does not count (a client picks it).
    assert_eq!(entries as u64, TRACES + 1, "one entry per trace (and the warm-up's): {entries}");
    assert!(held < 24 << 20, "{held} bytes for {TRACES} traces");
}
