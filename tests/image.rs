//! The Dockerfile, which no test here can build (CI lints it with hadolint
//! and builds it only where a container builder runs): its release build is
//! CI's, and its cached dependency layer stands in for every target that
//! Cargo.toml declares, or cargo would refuse the manifest there.

use std::path::Path;

fn read(file: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).unwrap()
}

/// The Dockerfile's `RUN` instructions, continuation lines joined.
fn runs(dockerfile: &str) -> Vec<String> {
    let joined = dockerfile.replace("\\\n", " ");
    joined
        .lines()
        .filter_map(|l| l.trim().strip_prefix("RUN "))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn the_image_builds_the_release_after_a_dependency_layer() {
    let dockerfile = read("Dockerfile");
    // Both builds are the locked release build, so the dependency layer
    // compiles exactly what the second one needs.
    let runs = runs(&dockerfile);
    assert_eq!(runs.len(), 2, "{runs:#?}");
    for run in &runs {
        assert!(run.contains("cargo build --release --locked"), "{run}");
    }
    // The dependency layer sees only the manifest and the lock file.
    let copies: Vec<_> = dockerfile
        .lines()
        .filter(|l| l.starts_with("COPY "))
        .collect();
    assert_eq!(copies[..2], ["COPY Cargo.toml Cargo.lock ./", "COPY . ."]);
    // It runs as a numeric, non-root user.
    let user = dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("USER "))
        .last()
        .unwrap();
    let uid: u32 = user.split(':').next().unwrap().parse().unwrap();
    assert_ne!(uid, 0);
}

#[test]
fn the_dependency_layer_stands_in_for_every_declared_target() {
    let manifest: toml::Value = toml::from_str(&read("Cargo.toml")).unwrap();
    let deps = &runs(&read("Dockerfile"))[0];
    for (kind, dir) in [("bench", "benches"), ("test", "tests")] {
        for target in manifest
            .get(kind)
            .and_then(|t| t.as_array())
            .into_iter()
            .flatten()
        {
            let path = match target.get("path").and_then(|p| p.as_str()) {
                Some(path) => path.to_owned(),
                None => format!("{dir}/{}.rs", target["name"].as_str().unwrap()),
            };
            assert!(
                deps.contains(&path),
                "the dependency layer lacks {path}: {deps}"
            );
        }
    }
    for file in ["src/main.rs", "src/lib.rs"] {
        assert!(deps.contains(file), "{deps}");
    }
}
