//! `graylane rules`: how each rule written in another language (Istio, Gateway API,
//! OpenSergo) was taken — the services it applies to, accepted or why not, and every field
//! graylane does not honour.

use super::{
    Common, Output, print_json,
    table::{Table, cell},
};

pub fn run(c: &Common) -> anyhow::Result<()> {
    let rules = c.client().json("/rules")?;
    if c.output == Output::Json {
        return print_json(&rules);
    }
    let list = rules.as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        println!("no rules in other languages");
        return Ok(());
    }
    let mut t = Table::new(&["KIND", "OBJECT", "APPLIES TO", "ACCEPTED", "REASON", "MESSAGE"]);
    for r in &list {
        let services: Vec<String> = r["services"].as_array().into_iter().flatten().map(cell).collect();
        t.row(vec![
            cell(&r["kind"]),
            format!("{}/{}", cell(&r["namespace"]), cell(&r["name"])),
            services.join(", "),
            if r["accepted"] == true { "yes".into() } else { "no".into() },
            cell(&r["reason"]),
            cell(&r["message"]),
        ]);
    }
    print!("{}", t.render());
    for r in &list {
        for field in r["unsupported"].as_array().into_iter().flatten() {
            println!(
                "{} {}/{}: not honoured: {}",
                cell(&r["kind"]),
                cell(&r["namespace"]),
                cell(&r["name"]),
                cell(field)
            );
        }
    }
    Ok(())
}
