//! `graylane tags`: the pod → tag/tenant maps as the kernel holds them.

use super::{
    Common, Output, print_json,
    table::{Table, cell},
};

pub fn run(c: &Common) -> anyhow::Result<()> {
    let tags = c.client().json("/tags")?;
    if c.output == Output::Json {
        return print_json(&tags);
    }
    let mut t = Table::new(&["POD", "TAG", "TENANT", "KEY", "REDIRECT", "FAIL MODE"]);
    for e in tags.as_array().into_iter().flatten() {
        let key = match (&e["cgroup_id"], &e["ip"]) {
            (serde_json::Value::Number(id), _) => format!("cgroup {id}"),
            (_, ip) => format!("ip {}", cell(ip)),
        };
        t.row(vec![
            cell(&e["pod"]),
            cell(&e["tag"]),
            cell(&e["tenant"]),
            key,
            if e["redirect"] == true { "on".into() } else { "off".into() },
            if e["fail_closed"] == true { "closed".into() } else { "open".into() },
        ]);
    }
    print!("{}", t.render());
    Ok(())
}
