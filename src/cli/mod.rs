//! The `kubectl sluice` plugin: Argo Rollouts' `kubectl argo rollouts` verbs against the same
//! objects. One module per verb; `render` and `tree` turn objects into text without I/O (golden
//! files pin them), `watch` feeds `--watch` from kube watchers, `patch` sends the verbs' patches.

pub mod abort;
pub mod completion;
pub mod context;
pub mod error;
pub mod get;
#[cfg(test)]
mod golden_tests;
pub mod lint;
pub mod list;
pub mod patch;
pub mod pause;
pub mod promote;
pub mod render;
pub mod restart;
pub mod resume;
pub mod retry;
pub mod set_image;
pub mod status;
pub mod tree;
pub mod undo;
pub mod version;
pub mod watch;

use std::io::Write;

use clap::{Parser, Subcommand};

pub use context::{Ctx, GlobalArgs};
pub use error::CliError;

const EXAMPLES: &str = "Examples:
  kubectl sluice get rollout frontend --watch
  kubectl sluice set image frontend frontend=frontend:v2
  kubectl sluice promote frontend
  kubectl sluice abort frontend
  kubectl sluice status frontend --timeout 5m";

/// Operate Argo Rollouts-compatible Rollouts (argoproj.io/v1alpha1) as `kubectl sluice`.
#[derive(Parser, Debug)]
#[command(name = "kubectl-sluice", version, after_help = EXAMPLES)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Show a rollout as a status header and a tree of its revisions, ReplicaSets and pods.
    Get(get::GetArgs),
    /// List rollouts.
    List(list::ListArgs),
    /// End the current pause or step of a rollout, or (--full) finish its update at once.
    Promote(promote::PromoteArgs),
    /// Abort an update: scale back to the stable version (spec.template is kept).
    Abort(abort::AbortArgs),
    /// Retry an aborted rollout from its first step.
    Retry(retry::RetryArgs),
    /// Pause a rollout (spec.paused: true).
    Pause(pause::PauseArgs),
    /// Undo `pause` without completing or skipping any step (see --help).
    Resume(resume::ResumeArgs),
    /// Restart the pods of a rollout, now or after --in.
    Restart(restart::RestartArgs),
    /// Update a rollout's pod template.
    Set(set_image::SetArgs),
    /// Roll back to an earlier revision's pod template.
    Undo(undo::UndoArgs),
    /// Wait for a rollout to finish: exit 0 when Healthy, non-zero when Degraded or on timeout.
    Status(status::StatusArgs),
    /// Validate the Rollouts of a file offline, with the controller's messages.
    Lint(lint::LintArgs),
    /// Print the plugin's version.
    Version(version::VersionArgs),
    /// Print a shell completion script.
    Completion(completion::CompletionArgs),
}

/// Where a command writes, and whether that is a terminal (colour, in-place redraws).
pub struct Output<'a> {
    pub out: &'a mut dyn Write,
    pub tty: bool,
}

impl Output<'_> {
    /// Write and flush (watch modes show each frame at once).
    pub fn write(&mut self, s: &str) -> Result<(), CliError> {
        self.out.write_all(s.as_bytes())?;
        self.out.flush()?;
        Ok(())
    }

    pub fn line(&mut self, s: &str) -> Result<(), CliError> {
        self.write(&format!("{s}\n"))
    }

    /// Colour only on a terminal, unless switched off by `--no-color`, `NO_COLOR` or a dumb
    /// terminal.
    pub fn color(&self, no_color: bool) -> bool {
        self.tty
            && !no_color
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            && std::env::var("TERM").map_or(true, |t| t != "dumb")
    }
}

/// Run one command line.
pub async fn run(cli: Cli, out: &mut Output<'_>) -> Result<(), CliError> {
    // Offline verbs first: they need no kubeconfig.
    match &cli.command {
        Command::Lint(a) => return lint::run(a, out),
        Command::Version(a) => return version::run(a, out),
        Command::Completion(a) => return completion::run(a, out),
        _ => {}
    }
    let ctx = Ctx::connect(&cli.global).await?;
    match &cli.command {
        Command::Get(a) => match &a.what {
            get::GetWhat::Rollout(a) => get::run(&ctx, a, out).await,
        },
        Command::List(a) => match &a.what {
            list::ListWhat::Rollouts(a) => list::run(&ctx, a, out).await,
        },
        Command::Promote(a) => promote::run(&ctx, a, out).await,
        Command::Abort(a) => abort::run(&ctx, a, out).await,
        Command::Retry(a) => match &a.what {
            retry::RetryWhat::Rollout(a) => retry::run(&ctx, a, out).await,
        },
        Command::Pause(a) => pause::run(&ctx, a, out).await,
        Command::Resume(a) => resume::run(&ctx, a, out).await,
        Command::Restart(a) => restart::run(&ctx, a, out).await,
        Command::Set(a) => match &a.what {
            set_image::SetWhat::Image(a) => set_image::run(&ctx, a, out).await,
        },
        Command::Undo(a) => undo::run(&ctx, a, out).await,
        Command::Status(a) => status::run(&ctx, a, out).await,
        Command::Lint(_) | Command::Version(_) | Command::Completion(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn kubectl_style_flags_anywhere() {
        let cli = Cli::try_parse_from([
            "kubectl-sluice",
            "promote",
            "frontend",
            "-n",
            "shop",
            "--context",
            "kind",
            "--full",
        ]);
        let cli = cli.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cli.global.namespace.as_deref(), Some("shop"));
        assert_eq!(cli.global.context.as_deref(), Some("kind"));
        assert!(matches!(cli.command, Command::Promote(ref p) if p.full && p.name == "frontend"));
    }

    #[test]
    fn aliases_and_status_watch_flag() {
        for args in [
            vec!["kubectl-sluice", "get", "ro", "x"],
            vec!["kubectl-sluice", "list", "ro", "-A"],
            vec!["kubectl-sluice", "retry", "ro", "x"],
            vec![
                "kubectl-sluice",
                "status",
                "x",
                "--watch=false",
                "-t",
                "30s",
            ],
            vec!["kubectl-sluice", "set", "image", "x", "*=a:1"],
            vec!["kubectl-sluice", "undo", "x", "--to-revision", "3"],
            vec!["kubectl-sluice", "restart", "x", "--in", "30s"],
        ] {
            assert!(Cli::try_parse_from(&args).is_ok(), "{args:?}");
        }
        let cli = Cli::try_parse_from(["kubectl-sluice", "status", "x", "--watch=false"]);
        assert!(matches!(cli.map(|c| c.command), Ok(Command::Status(s)) if !s.watch));
    }
}
