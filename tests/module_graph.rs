//! No crate of the workspace has a module cycle: within each crate, the modules under its root
//! (`src/NAME.rs` or `src/NAME/`) import one another in one direction only. Read from the
//! sources: every `crate::NAME` path (and a top-level module's `super::NAME`) is an import of
//! module `NAME`, or of the module whose item the crate root re-exports as `NAME`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

/// The member crates named in the workspace's `Cargo.toml`.
fn members() -> Vec<PathBuf> {
    let manifest = std::fs::read_to_string(workspace().join("Cargo.toml")).unwrap();
    let manifest: toml::Table = toml::from_str(&manifest).unwrap();
    manifest["workspace"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|member| workspace().join(member.as_str().unwrap()))
        .collect()
}

/// Each source file of `src` with its module path (`a/b.rs` and `a/b/mod.rs` are `[a, b]`).
fn sources(src: &Path) -> Vec<(Vec<String>, String)> {
    let mut found = Vec::new();
    let mut folders = vec![src.to_owned()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                let relative = path.strip_prefix(src).unwrap().with_extension("");
                let mut module: Vec<String> = relative
                    .components()
                    .map(|part| part.as_os_str().to_string_lossy().into_owned())
                    .collect();
                if matches!(module.last().map(String::as_str), Some("mod" | "lib" | "main")) {
                    module.pop();
                }
                found.push((module, without_comments(&std::fs::read_to_string(&path).unwrap())));
            }
        }
    }
    found
}

/// `text` without its line comments (doc comments name paths too, but import nothing).
fn without_comments(text: &str) -> String {
    let lines: Vec<&str> = text.lines().map(|line| line.split("//").next().unwrap()).collect();
    lines.join("\n")
}

/// The identifiers that follow each `prefix` in `code`, braces of a `use` group included.
fn paths_after<'a>(code: &'a str, prefix: &str) -> Vec<&'a str> {
    let mut names = Vec::new();
    for (at, _) in code.match_indices(prefix) {
        let rest = &code[at + prefix.len()..];
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            names.extend(group.split(',').map(|item| ident(item.trim())));
        } else {
            names.push(ident(rest));
        }
    }
    names.into_iter().filter(|name| !name.is_empty()).collect()
}

fn ident(text: &str) -> &str {
    let end = text.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(text.len());
    &text[..end]
}

/// Which top-level module each name the crate root re-exports comes from.
fn reexports(root: &str, modules: &BTreeSet<String>) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    for statement in root.split(';') {
        let statement = statement.trim();
        let Some(path) = statement.strip_prefix("pub use ") else { continue };
        let module = ident(path);
        if !modules.contains(module) {
            continue;
        }
        let items = match path.find('{') {
            Some(open) => path[open + 1..].trim_end_matches('}').split(',').collect(),
            None => vec![path.rsplit("::").next().unwrap_or_default()],
        };
        for item in items {
            let item = item.trim();
            let name = item.rsplit(" as ").next().unwrap_or(item).trim();
            if !name.is_empty() {
                names.insert(name.to_owned(), module.to_owned());
            }
        }
    }
    names
}

/// The imports between top-level modules of the crate at `crate_dir`.
fn graph(crate_dir: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let files = sources(&crate_dir.join("src"));
    let modules: BTreeSet<String> =
        files.iter().filter_map(|(path, _)| path.first().cloned()).collect();
    let root = files.iter().filter(|(path, _)| path.is_empty()).map(|(_, code)| code.as_str());
    let reexported = reexports(&root.collect::<Vec<_>>().join(";"), &modules);
    let resolve = |name: &str| {
        if modules.contains(name) { Some(name.to_owned()) } else { reexported.get(name).cloned() }
    };
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, code) in &files {
        let Some(me) = path.first() else { continue };
        let mut targets = paths_after(code, "crate::");
        if path.len() == 1 {
            targets.extend(paths_after(code, "super::"));
        }
        for target in targets.into_iter().filter_map(resolve) {
            if &target != me {
                edges.entry(me.clone()).or_default().insert(target);
            }
        }
    }
    edges
}

/// A cycle of `edges`, if there is one, as the modules along it.
fn cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|seen| seen == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, done, path) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    edges.keys().find_map(|node| visit(node, edges, &mut done, &mut Vec::new()))
}

#[test]
fn no_crate_has_a_module_cycle() {
    let mut cycles = Vec::new();
    for member in members() {
        if let Some(cycle) = cycle(&graph(&member)) {
            let name = member.file_name().unwrap().to_string_lossy().into_owned();
            cycles.push(format!("{name}: {}", cycle.join(" → ")));
        }
    }
    assert!(cycles.is_empty(), "module cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_reader_sees_imports_and_cycles() {
    let code = "use crate::{alpha, beta::Thing};\nfn f() { crate::gamma::g(); }\n// crate::delta";
    assert_eq!(paths_after(&without_comments(code), "crate::"), ["alpha", "beta", "gamma"]);
    let edges: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_owned(), BTreeSet::from(["b".to_owned()])),
        ("b".to_owned(), BTreeSet::from(["c".to_owned()])),
        ("c".to_owned(), BTreeSet::from(["a".to_owned()])),
    ]
    .into();
    assert_eq!(cycle(&edges).unwrap(), ["a", "b", "c", "a"]);
    let modules = BTreeSet::from(["model".to_owned()]);
    let names = reexports("pub use model::{Flow, Step as Record}; pub use other::X", &modules);
    assert_eq!(names.get("Record").map(String::as_str), Some("model"));
    assert!(!names.contains_key("X"));
}
