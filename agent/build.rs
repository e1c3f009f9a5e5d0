//! Builds the eBPF crate once (nightly, bpfel) and embeds the object in the agent.
use anyhow::{Context as _, anyhow};
use aya_build::Toolchain;

fn main() -> anyhow::Result<()> {
    // Fuzz builds (sanitizer flags would leak into the nested bpf build) never load the
    // datapath: they get an empty object.
    println!("cargo:rerun-if-env-changed=GRAYLANE_SKIP_EBPF");
    if std::env::var_os("GRAYLANE_SKIP_EBPF").is_some() {
        let out = std::env::var("OUT_DIR").context("OUT_DIR")?;
        std::fs::write(std::path::Path::new(&out).join("graylane"), b"").context("empty eBPF object")?;
        return Ok(());
    }
    let cargo_metadata::Metadata { packages, .. } =
        cargo_metadata::MetadataCommand::new().no_deps().exec().context("cargo metadata")?;
    let ebpf = packages
        .into_iter()
        .find(|p| p.name.as_str() == "graylane-ebpf")
        .ok_or_else(|| anyhow!("graylane-ebpf package not found"))?;
    let root_dir =
        ebpf.manifest_path.parent().ok_or_else(|| anyhow!("no parent for {}", ebpf.manifest_path))?;
    let package =
        aya_build::Package { name: ebpf.name.as_str(), root_dir: root_dir.as_str(), ..Default::default() };
    aya_build::build_ebpf([package], Toolchain::default())
}
