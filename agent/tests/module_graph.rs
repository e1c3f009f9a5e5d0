//! The agent's module graph is a DAG, layered bottom to top as the README's architecture
//! section draws it. Read from the source: every `crate::a` a file names is an edge from
//! its top-level module to `a`, and every `super::b` naming a sibling file is an edge
//! between the two files of one folder. Fails on an edge that points up, and on a cycle
//! among sibling files.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

/// Bottom first. A module may use the ones before it, never the ones after.
const LAYERS: &[&[&str]] = &[
    &["vocab"],
    &["telemetry"],
    &["datapath"],
    &["inventory"],
    &["policy"],
    &["routing"],
    &["stores"],
    &["proxy"],
    &["admin"],
    &["config"],
    &["agent"],
    &["cli", "crds", "fuzzing"],
];

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("src dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The text without comments and string literals (so prose never counts as a path).
fn code(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

/// The first path segment after each `prefix::` (expanding `prefix::{a, b::c}` groups).
fn heads(code: &str, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let pat = format!("{prefix}::");
    let mut rest = code;
    while let Some(at) = rest.find(&pat) {
        let before = rest[..at].chars().last();
        rest = &rest[at + pat.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue; // `foo_crate::` or `a::crate::`
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 0 || (depth == 1 && c == ',') {
                    if let Some(h) = ident(item.trim()) {
                        out.insert(h);
                    }
                    item.clear();
                    if depth == 0 {
                        break;
                    }
                } else if depth >= 1 {
                    item.push(c);
                }
            }
        } else if let Some(h) = ident(rest) {
            out.insert(h);
        }
    }
    out
}

fn ident(s: &str) -> Option<String> {
    let id: String = s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
    (!id.is_empty() && id != "self" && id != "super").then_some(id)
}

#[test]
fn the_module_graph_is_layered_and_acyclic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    let mut up = Vec::new();
    let mut unknown = BTreeSet::new();
    // Sibling edges per folder: folder → file stem → sibling stems it names.
    let mut siblings: BTreeMap<PathBuf, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for f in &files {
        let rel = f.strip_prefix(&root).expect("under src");
        let top = rel.components().next().and_then(|c| c.as_os_str().to_str()).unwrap_or("");
        let top = top.trim_end_matches(".rs");
        let text = code(&std::fs::read_to_string(f).expect("source"));
        if !matches!(top, "lib" | "main") {
            let mine = layer(top);
            if mine.is_none() {
                unknown.insert(top.to_owned());
            }
            for used in heads(&text, "crate") {
                if used == top {
                    continue;
                }
                match (mine, layer(&used)) {
                    (Some(m), Some(u)) if u > m => up.push(format!("{} → crate::{used}", rel.display())),
                    (_, None) => {
                        unknown.insert(used);
                    }
                    _ => {}
                }
            }
        }
        let dir = f.parent().expect("parent").to_path_buf();
        let stem = f.file_stem().and_then(|s| s.to_str()).unwrap_or("").to_owned();
        if dir != root {
            let names = heads(&text, "super");
            let entry = siblings.entry(dir.clone()).or_default().entry(stem.clone()).or_default();
            entry.extend(names.into_iter().filter(|n| *n != stem && dir.join(format!("{n}.rs")).exists()));
        }
    }
    assert!(unknown.is_empty(), "modules missing from LAYERS: {unknown:?}");
    assert!(up.is_empty(), "imports pointing up the layers:\n{}", up.join("\n"));
    for (dir, graph) in &siblings {
        if let Some(cycle) = find_cycle(graph) {
            panic!("a cycle among the files of {}: {}", dir.display(), cycle.join(" → "));
        }
    }
}

/// A cycle in `graph`, as the nodes along it, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match state.get(n) {
            Some(2) => return None,
            Some(1) => {
                let start = path.iter().position(|p| p == n).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(n.to_owned());
                return Some(cycle);
            }
            _ => {}
        }
        state.insert(n.to_owned(), 1);
        path.push(n.to_owned());
        for next in graph.get(n).into_iter().flatten() {
            if let Some(c) = visit(next, graph, state, path) {
                return Some(c);
            }
        }
        path.pop();
        state.insert(n.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in graph.keys() {
        if let Some(c) = visit(n, graph, &mut state, &mut Vec::new()) {
            return Some(c);
        }
    }
    None
}

#[test]
fn the_reader_sees_grouped_and_plain_paths() {
    let text = code(
        "use crate::{a::{b, c}, d};\nlet x = crate::e::f();\n// crate::comment\nlet s = \"crate::string\";\nfoo_crate::g;",
    );
    assert_eq!(heads(&text, "crate").into_iter().collect::<Vec<_>>(), ["a", "d", "e"]);
    let g: BTreeMap<String, BTreeSet<String>> =
        [("a".into(), ["b".to_owned()].into()), ("b".into(), ["a".to_owned()].into())].into();
    assert_eq!(find_cycle(&g), Some(vec!["a".into(), "b".into(), "a".into()]));
}
