//! The ways to install the proxy: the systemd unit passes
//! `systemd-analyze verify` with the binary this build made, and the
//! Dockerfile builds from files the repository has, with the same command
//! as a release build here.

use std::path::Path;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn the_systemd_unit_verifies_clean() {
    let unit = std::fs::read_to_string(Path::new(ROOT).join("deploy/systemd/switchyard.service"))
        .expect("the unit file");
    assert!(unit.contains("KillSignal=SIGTERM"), "stops by draining");
    assert!(
        unit.contains("ExecReload=/bin/kill -HUP $MAINPID"),
        "reloads on SIGHUP"
    );
    assert!(unit.contains("StateDirectory=switchyard"));
    assert!(unit.contains("RuntimeDirectory=switchyard"));
    let dir = std::env::temp_dir().join(format!("switchyard-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("switchyard.service");
    let binary = env!("CARGO_BIN_EXE_switchyard");
    std::fs::write(&path, unit.replace("/usr/local/bin/switchyard", binary)).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (scripts/install-deps.sh installs it)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(out.status.success(), "systemd-analyze verify: {stderr}");
    // Unknown keys are only warned of: any warning fails.
    assert_eq!(stderr.trim(), "", "systemd-analyze verify warned");
}

#[test]
fn the_dockerfile_copies_what_the_repository_has_and_runs_unprivileged() {
    let text = std::fs::read_to_string(Path::new(ROOT).join("Dockerfile")).expect("Dockerfile");
    let froms = text.lines().filter(|l| l.starts_with("FROM ")).count();
    assert_eq!(froms, 2, "a build stage and a runtime stage");
    for line in text
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let words: Vec<&str> = line.split_whitespace().collect();
        for source in &words[1..words.len() - 1] {
            assert!(
                Path::new(ROOT).join(source).exists(),
                "COPY {source}: no such path"
            );
        }
    }
    assert!(text.contains("cargo build --release --locked --bin switchyard"));
    assert!(text.contains("USER switchyard"), "runs as its own user");
    assert!(text.contains("VOLUME [\"/var/lib/switchyard\"]"));
    // The release profile keeps debug info out of the binary.
    let manifest = std::fs::read_to_string(Path::new(ROOT).join("Cargo.toml")).unwrap();
    assert!(manifest.contains("split-debuginfo = \"packed\""));
}
