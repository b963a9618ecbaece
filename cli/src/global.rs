//! The options every command accepts.

use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct GlobalArgs {
    /// The flow database: a SQLite file, or a PostgreSQL database as postgres://USER@HOST/DB
    /// (shared by workers on many machines; TLS with ?sslmode=verify-full&sslrootcert=CA.pem,
    /// or sslmode=require|verify-ca) [default: $XDG_DATA_HOME/taskflow/flows.db]
    #[arg(
        long,
        global = true,
        env = "TASKFLOW_DB",
        hide_env_values = true,
        value_name = "PATH|URL"
    )]
    pub db: Option<PathBuf>,

    /// Whose flows to see and change [default: the OS user ($USER), else "local"]
    #[arg(long, global = true, env = "TASKFLOW_OWNER", value_name = "NAME", value_parser = named)]
    pub owner: Option<String>,

    /// Print one JSON document (JSON Lines where the output is a stream of events)
    #[arg(long, global = true)]
    pub json: bool,
}

/// An owner named: a blank one is refused rather than taken for the default owner (a script
/// whose variable is empty would act on that owner's flows).
fn named(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        return Err(
            "an owner's name cannot be empty; leave --owner out for the default owner".into()
        );
    }
    Ok(text.to_owned())
}

impl GlobalArgs {
    /// The owner these options name, or the default one.
    pub fn owner(&self) -> String {
        taskflow_api::resolve_owner(self.owner.as_deref())
    }
}
