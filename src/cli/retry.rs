//! `retry rollout NAME...`: leave the aborted state (`{"status":{"abort":false}}`); the
//! controller restarts the update from step 0.

use clap::{Args, Subcommand};
use serde_json::json;

use crate::cli::Output;
use crate::cli::context::Ctx;
use crate::cli::error::CliError;
use crate::cli::patch;

#[derive(Args, Debug)]
pub struct RetryArgs {
    #[command(subcommand)]
    pub what: RetryWhat,
}

#[derive(Subcommand, Debug)]
pub enum RetryWhat {
    /// Retry an aborted rollout: it starts the update again from the first step.
    #[command(visible_aliases = ["ro", "rollouts"])]
    Rollout(RetryRolloutArgs),
}

#[derive(Args, Debug)]
pub struct RetryRolloutArgs {
    /// Names of the rollouts.
    #[arg(required = true)]
    pub names: Vec<String>,
}

pub async fn run(ctx: &Ctx, args: &RetryRolloutArgs, out: &mut Output<'_>) -> Result<(), CliError> {
    for name in &args.names {
        patch::status_or_whole(ctx, name, &json!({"status": {"abort": false}})).await?;
        out.line(&format!("rollout '{name}' retried"))?;
    }
    Ok(())
}
