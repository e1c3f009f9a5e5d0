//! deploy/ is valid Kubernetes (1.37, strict), the example custom resources satisfy the
//! generated CRD schemas, and the agent itself accepts the examples.

use std::{path::PathBuf, process::Command};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

const KUBERNETES: &str = "1.37.0";

fn validate(files: &[PathBuf]) -> (bool, String) {
    let out = Command::new("python3")
        .arg(graylane_tests::fixture("validate_manifests.py"))
        .arg(KUBERNETES)
        .arg(root().join("deploy/crds"))
        .args(files)
        .output()
        .expect("python3 (cargo xtask setup installs kubernetes-validate)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// The resources the kustomization applies, and the examples.
fn deploy_files() -> Vec<PathBuf> {
    let kustomization =
        std::fs::read_to_string(root().join("deploy/kustomization.yaml")).expect("kustomization");
    let mut files: Vec<PathBuf> = kustomization
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- "))
        .map(|f| root().join("deploy").join(f.trim()))
        .collect();
    assert!(files.len() >= 5, "kustomization lists {files:?}");
    for e in std::fs::read_dir(root().join("deploy/examples")).expect("examples").flatten() {
        if e.path().is_file() {
            files.push(e.path());
        }
    }
    files
}

#[test]
fn rule_language_examples_validate_against_their_published_schemas() {
    // Gateway API and Istio publish schemas (kubernetes-models generates them from their
    // CRDs); OpenSergo does not, and its examples are checked by the agent's parser
    // (`every_example_manifest_parses_without_unknown_fields`).
    let dir = root().join("deploy/examples/languages");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("examples")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| !n.starts_with("opensergo")))
        .collect();
    files.sort();
    let out = Command::new("node")
        .arg(root().join("tests/fixtures/schemas/validate.js"))
        .args(&files)
        .output()
        .expect("node (cargo xtask setup installs it and the schemas)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    for kind in ["HTTPRoute/foo-split", "VirtualService/reviews", "DestinationRule/my-destination-rule"] {
        assert!(text.contains("ok   ") && text.contains(kind), "{kind}: {text}");
    }
}

#[test]
fn deploy_manifests_and_examples_validate() {
    let (ok, out) = validate(&deploy_files());
    assert!(ok, "{out}");
    assert!(out.contains("ok   ") && out.contains("TrafficPolicy/app"), "{out}");
}

#[test]
fn the_validator_rejects_what_the_api_server_would() {
    let dir = tempfile::tempdir().expect("tmp");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {selectr: {app: x}}\n---\n\
         apiVersion: graylane.io/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: p}\nspec: {service: s, fallback: {mode: maybe}}\n---\n\
         apiVersion: graylane.io/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: q}\n\
         spec: {service: s, routes: [{destinations: [{subset: a, weight: 20000}]}]}\n",
    )
    .expect("write");
    let (ok, out) = validate(&[bad]);
    assert!(!ok, "{out}");
    assert_eq!(out.matches("FAIL").count(), 3, "{out}");
}

#[test]
fn the_agent_accepts_the_examples() {
    let Ok(bin) = std::env::var("GRAYLANE_BIN").map(PathBuf::from).or_else(|_| {
        let p = root().join("target/debug/graylane");
        if p.exists() { Ok(p) } else { Err(()) }
    }) else {
        panic!("graylane not built: run `cargo xtask test`");
    };
    let out = Command::new(bin)
        .args(["agent", "--check-config", "--proxy-addr", "10.0.0.1:15001", "--inventory"])
        .arg(root().join("deploy/examples"))
        .env("RUST_LOG", "error")
        .output()
        .expect("graylane");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("5 policies, 1 rules"), "{text}");
}
