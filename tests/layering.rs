//! The module layers that `src/lib.rs` draws hold in the code: each module
//! imports only modules listed before it, and no two files of one module
//! import each other.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use regex::Regex;

/// The layer table of `src/lib.rs`, lowest first.
fn layers() -> Vec<String> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let table = lib
        .split("//! # Layers")
        .nth(1)
        .and_then(|rest| rest.split("//! ```text\n").nth(1))
        .and_then(|rest| rest.split("//! ```").next())
        .expect("src/lib.rs has a `# Layers` table");
    table
        .lines()
        .filter_map(|line| line.trim_start_matches("//!").split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`, with its text before `#[cfg(test)]`; a
/// `tests.rs` (a module's `#[cfg(test)] mod tests;`) is test code throughout.
fn sources(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            let tests = path.file_name().is_some_and(|n| n == "tests.rs");
            let code = match tests {
                true => String::new(),
                false => text.split("#[cfg(test)]").next().unwrap_or("").to_owned(),
            };
            out.push((path, code));
        }
    }
}

/// `src/state/redis.rs` → `["state", "redis"]`.
fn module_path(path: &Path) -> Vec<String> {
    let relative = path.strip_prefix(src()).unwrap().with_extension("");
    relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn modules_import_only_lower_layers() {
    let layers = layers();
    let rank = |name: &str| layers.iter().position(|l| l == name);
    let uses = Regex::new(r"crate::(\w+)").unwrap();
    let mut files = Vec::new();
    sources(&src(), &mut files);
    let mut upward = Vec::new();
    for (path, code) in &files {
        let module = &module_path(path)[0];
        if module == "main" || module == "lib" {
            continue;
        }
        let own = rank(module).unwrap_or_else(|| panic!("{module} is not in the layer table"));
        for used in uses.captures_iter(code).map(|c| c[1].to_owned()) {
            match rank(&used) {
                Some(r) if r >= own && used != *module => {
                    upward.push(format!("{} uses {used}", path.display()))
                }
                Some(_) => {}
                None => panic!(
                    "{} uses {used}, which is not in the layer table",
                    path.display()
                ),
            }
        }
    }
    assert!(upward.is_empty(), "imports that point upward: {upward:#?}");
}

#[test]
fn the_layer_table_names_every_module() {
    let layers: BTreeSet<String> = layers().into_iter().collect();
    let mut files = Vec::new();
    sources(&src(), &mut files);
    let modules: BTreeSet<String> = files
        .iter()
        .map(|(path, _)| module_path(path)[0].clone())
        .filter(|m| m != "main" && m != "lib")
        .collect();
    assert_eq!(layers, modules);
}

#[test]
fn files_of_one_module_do_not_import_each_other() {
    let siblings = Regex::new(r"super::(\w+)").unwrap();
    let mut files = Vec::new();
    sources(&src(), &mut files);
    // Edges between sibling files of one directory: `a` uses `super::b`.
    let mut edges: BTreeMap<(Vec<String>, String), BTreeSet<String>> = BTreeMap::new();
    for (path, code) in &files {
        let mut module = module_path(path);
        let Some(name) = module.pop() else { continue };
        for used in siblings.captures_iter(code).map(|c| c[1].to_owned()) {
            let sibling = module.iter().chain([&used]).fold(src(), |p, m| p.join(m));
            if sibling.with_extension("rs").is_file() && used != name {
                edges
                    .entry((module.clone(), name.clone()))
                    .or_default()
                    .insert(used);
            }
        }
    }
    for ((dir, a), targets) in &edges {
        for b in targets {
            let back = edges.get(&(dir.clone(), b.clone()));
            assert!(
                !back.is_some_and(|t| t.contains(a)),
                "{}: {a} and {b} import each other",
                dir.join("/")
            );
        }
    }
}
