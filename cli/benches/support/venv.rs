//! A Python virtual environment for a bench that drives a Python program side by side (LiteLLM
//! for the proxy, DBOS for PostgreSQL): made once under `target/`, again only when its pinned
//! requirements change.

use std::path::Path;
use std::process::Command;

/// A virtual environment at `venv` with the packages of `requirements`, made (from the
/// machine's `python3`, pip installing from PyPI) only when the requirements changed.
pub fn python_environment(venv: &Path, requirements: &Path) -> Result<(), String> {
    let stamp = venv.join(".requirements");
    let wanted = std::fs::read_to_string(requirements).map_err(|error| error.to_string())?;
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(());
    }
    eprintln!("installing {} into {} (once) …", wanted.trim(), venv.display());
    let _ = std::fs::remove_dir_all(venv);
    let made = Command::new("python3").args(["-m", "venv"]).arg(venv).status();
    if !made.is_ok_and(|status| status.success()) {
        return Err("python3 -m venv failed".into());
    }
    let installed = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
        .arg(requirements)
        .status();
    if !installed.is_ok_and(|status| status.success()) {
        return Err(format!("pip could not install {}", wanted.trim()));
    }
    std::fs::write(&stamp, &wanted).map_err(|error| error.to_string())
}
