//! The options every command accepts, and the variables behind them. clap would take a variable
//! set to nothing as the option's value and refuse it naming an option the user never gave, so
//! the variables are read as a shell user means them: `TASKFLOW_DB=` is unset (the default
//! database), and a blank `TASKFLOW_OWNER` is refused naming the variable (it would otherwise
//! act on the default owner's flows, as a script's empty variable would).

use std::path::PathBuf;

use clap::parser::ValueSource;

use crate::error::{CliError, CliResult};

const DB_ENV: &str = "TASKFLOW_DB";
const OWNER_ENV: &str = "TASKFLOW_OWNER";

#[derive(Debug, clap::Args)]
pub struct GlobalArgs {
    /// The flow database: a SQLite file, or a PostgreSQL database as postgres://USER@HOST/DB
    /// (shared by workers on many machines; TLS with ?sslmode=verify-full&sslrootcert=CA.pem,
    /// or sslmode=require|verify-ca) [default: $XDG_DATA_HOME/taskflow/flows.db]
    #[arg(
        long,
        global = true,
        env = DB_ENV,
        hide_env_values = true,
        value_name = "PATH|URL"
    )]
    pub db: Option<PathBuf>,

    /// Whose flows to see and change [default: the OS user ($USER), else "local"]
    #[arg(long, global = true, env = OWNER_ENV, value_name = "NAME", value_parser = named)]
    pub owner: Option<String>,

    /// Print one JSON document (JSON Lines where the output is a stream of events)
    #[arg(long, global = true)]
    pub json: bool,

    /// Whether `--owner` was on the command line, not taken from TASKFLOW_OWNER.
    #[arg(skip)]
    pub owner_on_command_line: bool,
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

/// Whether `variable` is set to nothing but spaces.
fn blank(variable: &str) -> bool {
    std::env::var_os(variable).is_some_and(|value| value.to_string_lossy().trim().is_empty())
}

/// `command` without the variables of its global options that are blank, which
/// [`GlobalArgs::settle`] then reads.
pub fn unbind_blank_variables(command: clap::Command) -> clap::Command {
    [("db", DB_ENV), ("owner", OWNER_ENV)].into_iter().fold(command, |command, (id, variable)| {
        if blank(variable) { command.mut_arg(id, |arg| arg.env(None)) } else { command }
    })
}

impl GlobalArgs {
    /// Completes the options parsed into `matches` from a command built by
    /// [`unbind_blank_variables`]: a blank TASKFLOW_DB stays unset, a blank TASKFLOW_OWNER that
    /// no `--owner` overrides is refused.
    pub fn settle(&mut self, matches: &clap::ArgMatches) -> CliResult {
        self.owner_on_command_line =
            matches.value_source("owner") == Some(ValueSource::CommandLine);
        if self.owner.is_none() && blank(OWNER_ENV) {
            return Err(CliError::usage(format!(
                "{OWNER_ENV} is set but blank: an owner's name cannot be empty"
            ))
            .with_hint(format!(
                "unset {OWNER_ENV} for the default owner (the OS user), or set it to a name"
            )));
        }
        Ok(())
    }

    /// The owner these options name, or the default one.
    pub fn owner(&self) -> String {
        taskflow_api::resolve_owner(self.owner.as_deref())
    }
}
