//! Puts the git commit the binary is built from into its version (`taskflow 0.1.0 (a1b2c3d
//! 2026-12-05)`), when it is built from a git checkout; a build from a source archive shows the
//! version alone.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    (output.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
}

fn main() {
    let version = env!("CARGO_PKG_VERSION");
    let commit = git(&["log", "-1", "--format=%h %cs"]);
    let long = match &commit {
        Some(commit) => format!("{version} ({commit})"),
        None => version.to_owned(),
    };
    println!("cargo:rustc-env=TASKFLOW_VERSION={long}");
    // Built again when HEAD moves: HEAD itself, and the branch it points at.
    for path in ["HEAD", "packed-refs"] {
        if let Some(file) = git(&["rev-parse", "--git-path", path]) {
            rerun_if_changed(&file);
        }
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"])
        && let Some(file) = git(&["rev-parse", "--git-path", &branch])
    {
        rerun_if_changed(&file);
    }
}

fn rerun_if_changed(file: &str) {
    if Path::new(file).exists() {
        println!("cargo:rerun-if-changed={file}");
    }
}
