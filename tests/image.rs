//! The Dockerfile, which no test here can build (CI lints it with hadolint
//! and builds it only where a container builder runs): its builds are the
//! locked release build, the dependencies' is cached apart from the sources,
//! and the skeleton it is cached on is a manifest cargo accepts.

use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn dockerfile() -> String {
    std::fs::read_to_string(root().join("Dockerfile")).unwrap()
}

/// The Dockerfile's instructions, continuation lines joined, comments out.
fn instructions(dockerfile: &str) -> Vec<String> {
    dockerfile
        .replace("\\\n", " ")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn the_dependencies_are_built_apart_from_the_sources() {
    let all = instructions(&dockerfile());
    let at = |prefix: &str| {
        all.iter()
            .position(|i| i.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix}: {all:#?}"))
    };
    let build_stage = at("FROM rust:1.95-bookworm AS build");
    let stage = &all[build_stage..];
    let runs: Vec<_> = stage.iter().filter(|i| i.starts_with("RUN ")).collect();
    assert_eq!(runs.len(), 2, "{stage:#?}");
    for run in &runs {
        assert!(run.contains("cargo build --release --locked"), "{run}");
    }
    // The first build sees only the skeleton; the sources come after it.
    let order: Vec<_> = stage
        .iter()
        .filter(|i| i.starts_with("COPY ") || i.starts_with("RUN "))
        .take(3)
        .map(|i| i.split(' ').next().unwrap())
        .collect();
    assert_eq!(order, ["COPY", "RUN", "COPY"], "{stage:#?}");
    assert_eq!(stage[2], "COPY --from=skeleton /src ./", "{stage:#?}");
    // The runtime runs as a numeric user that is not root.
    let user = all
        .iter()
        .rev()
        .find_map(|i| i.strip_prefix("USER "))
        .unwrap();
    let uid: u32 = user.split(':').next().unwrap().parse().unwrap();
    assert_ne!(uid, 0);
}

/// Runs the skeleton stage's command on a copy of the tree, as the image
/// build would, and has cargo load the result: a target that Cargo.toml
/// declares but the skeleton lacks fails here rather than in the image.
#[test]
fn cargo_accepts_the_skeleton() {
    let all = instructions(&dockerfile());
    let stage = all
        .iter()
        .position(|i| i.ends_with("AS skeleton"))
        .expect("a skeleton stage");
    let command = all[stage..]
        .iter()
        .find_map(|i| i.strip_prefix("RUN "))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    copy_tree(root(), dir.path());
    let status = Command::new("sh")
        .args(["-c", command])
        .current_dir(dir.path())
        .status()
        .unwrap();
    assert!(status.success(), "{command}");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["fetch", "--locked", "--quiet"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The build context: the tree less what .dockerignore leaves out.
fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if from == root() && (name == "target" || name == ".git") {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir(&target).unwrap();
            copy_tree(&entry.path(), &target);
        } else if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
