//! `pause NAME...`: hold the rollout where it is (`{"spec":{"paused":true}}`); `resume` or
//! `promote` lets it go on.

use clap::Args;
use serde_json::json;

use crate::cli::Output;
use crate::cli::context::Ctx;
use crate::cli::error::CliError;
use crate::cli::patch;

#[derive(Args, Debug)]
pub struct PauseArgs {
    /// Names of the rollouts.
    #[arg(required = true)]
    pub names: Vec<String>,
}

pub async fn run(ctx: &Ctx, args: &PauseArgs, out: &mut Output<'_>) -> Result<(), CliError> {
    for name in &args.names {
        patch::spec(ctx, name, &json!({"spec": {"paused": true}})).await?;
        out.line(&format!("rollout '{name}' paused"))?;
    }
    Ok(())
}
