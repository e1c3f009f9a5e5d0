//! `graylane status`: agent version, attach state, table sizes, last inventory sync, the
//! lane routes the kernel holds.

use super::{Common, Output, print_json, table::cell};

pub fn run(c: &Common) -> anyhow::Result<()> {
    let s = c.client().json("/status")?;
    if c.output == Output::Json {
        return print_json(&s);
    }
    let links: Vec<String> = s["links"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| format!("{}{}", cell(&l["hook"]), if l["adopted"] == true { " (adopted)" } else { "" }))
        .collect();
    let rows = [
        ("version", cell(&s["version"])),
        ("ready", cell(&s["ready"])),
        ("uptime", format!("{} s", cell(&s["uptime_seconds"]))),
        ("inventory", cell(&s["inventory"])),
        ("cgroup root", cell(&s["cgroup_root"])),
        ("pin dir", cell(&s["pin_dir"])),
        ("programs", links.join(", ")),
        ("connections", format!("{} recorded, {} pending", cell(&s["records"]), cell(&s["pending"]))),
        ("flows kept", cell(&s["flows"])),
        ("kernel lanes", format!("{} routes", cell(&s["kernel_lanes"]))),
        ("inventory syncs", cell(&s["syncs"])),
        ("last sync", s["last_sync"].to_string()),
        ("last error", cell(&s["last_error"])),
    ];
    for (k, v) in rows {
        println!("{:<16} {v}", format!("{k}:"));
    }
    Ok(())
}
