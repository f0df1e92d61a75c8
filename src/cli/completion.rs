//! `completion bash|zsh|fish|powershell`: the shell completion script, generated from the same
//! clap definition that parses the command line, so it never drifts from the verbs.

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use crate::cli::error::CliError;
use crate::cli::{Cli, Output};

#[derive(Args, Debug)]
#[command(long_about = "Print a shell completion script.

  bash:  source <(kubectl-sluice completion bash)
  zsh:   kubectl-sluice completion zsh > \"${fpath[1]}/_kubectl-sluice\"
  fish:  kubectl-sluice completion fish | source

The scripts complete the `kubectl-sluice` command: verbs, subcommands and flags.")]
pub struct CompletionArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: Shell,
}

pub fn run(args: &CompletionArgs, out: &mut Output<'_>) -> Result<(), CliError> {
    let mut buf = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "kubectl-sluice", &mut buf);
    out.write(&String::from_utf8_lossy(&buf))
}
