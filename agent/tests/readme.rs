//! The README documents every flag a user can pass to `graylane agent`.

use clap::CommandFactory as _;

#[test]
fn every_agent_flag_is_in_the_readme() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).expect("README");
    let cli = graylane::cli::Cli::command();
    let agent = cli.find_subcommand("agent").expect("agent subcommand");
    let missing: Vec<String> = agent
        .get_arguments()
        .filter_map(|a| a.get_long())
        .filter(|long| *long != "help")
        .map(|long| format!("--{long}"))
        .filter(|flag| !readme.contains(&format!("`{flag}`")) && !readme.contains(&format!("`{flag},")))
        .collect();
    assert!(missing.is_empty(), "flags missing from the README's tables: {missing:?}");
}
