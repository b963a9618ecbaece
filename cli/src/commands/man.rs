//! `taskflow man`: manual pages in roff, generated from the same clap definitions that parse
//! the command line. Without `--dir`, the page of `taskflow` itself goes to stdout (`taskflow
//! man | man -l -`); with it, one page per command and subcommand (`taskflow-flows-inspect.1`)
//! is written into the folder, ready for a `man1` directory.

use std::io::Write;
use std::path::PathBuf;

use clap::CommandFactory;

use crate::Cli;
use crate::error::{CliError, CliResult};
use crate::global::GlobalArgs;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    taskflow man | man -l -\n  \
    taskflow man --dir ~/.local/share/man/man1")]
pub struct ManArgs {
    /// Write one page per command into this folder (created if missing) instead of printing
    /// the main page
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

pub fn run(global: &GlobalArgs, args: &ManArgs) -> CliResult {
    let Some(dir) = &args.dir else {
        let mut page = Vec::new();
        clap_mangen::Man::new(Cli::command())
            .render(&mut page)
            .map_err(|error| CliError::failure(format!("cannot render the page: {error}")))?;
        return std::io::stdout()
            .lock()
            .write_all(&page)
            .map_err(|error| CliError::writing_output("the page", error));
    };
    let cannot = |error: std::io::Error| {
        CliError::failure(format!("cannot write the pages into {}: {error}", dir.display()))
            .with_hint("name a folder you can write to with --dir")
    };
    std::fs::create_dir_all(dir).map_err(cannot)?;
    clap_mangen::generate_to(Cli::command(), dir).map_err(cannot)?;
    let mut pages: Vec<String> = std::fs::read_dir(dir)
        .map_err(cannot)?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with("taskflow") && name.ends_with(".1"))
        .collect();
    pages.sort();
    if global.json {
        let document = serde_json::json!({ "dir": dir, "pages": pages });
        println!("{document}");
    } else {
        println!("{} pages written to {}", pages.len(), dir.display());
    }
    Ok(())
}
