//! `taskflow completions SHELL`: the completion script for a shell, generated from the same
//! clap definitions that parse the command line, so it never lists a command or flag the binary
//! does not have.

use std::io::Write;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::Cli;
use crate::error::{CliError, CliResult};

#[derive(Debug, clap::Args)]
#[command(after_help = "Install, for example:\n  \
    bash:  taskflow completions bash > ~/.local/share/bash-completion/completions/taskflow\n  \
    zsh:   taskflow completions zsh > ~/.zfunc/_taskflow   (with fpath+=~/.zfunc before compinit)\n  \
    fish:  taskflow completions fish > ~/.config/fish/completions/taskflow.fish\n  \
    powershell:  taskflow completions powershell >> $PROFILE\n  \
    elvish:  taskflow completions elvish >> ~/.config/elvish/rc.elv")]
pub struct CompletionsArgs {
    /// The shell to write the script for
    #[arg(value_enum)]
    pub shell: Shell,
}

pub fn run(args: &CompletionsArgs) -> CliResult {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "taskflow", &mut script);
    std::io::stdout()
        .lock()
        .write_all(&script)
        .map_err(|error| CliError::writing_output("the script", error))
}
