//! Whose flows a command sees and changes, when no token decides it: the name given (`--owner`
//! or `TASKFLOW_OWNER`), else the OS user, else `local`.

/// `given` (trimmed), else `$USER` / `%USERNAME%`, else `local`.
pub fn resolve_owner(given: Option<&str>) -> String {
    given
        .map(str::to_owned)
        .or_else(|| std::env::var("USER").ok())
        .or_else(|| std::env::var("USERNAME").ok())
        .map(|owner| owner.trim().to_owned())
        .filter(|owner| !owner.is_empty())
        .unwrap_or_else(|| "local".to_owned())
}
