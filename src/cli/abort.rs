//! `abort NAME...`: stop the update and scale back to the stable version
//! (`{"status":{"abort":true}}`). `spec.template` keeps the new version; `retry rollout` or a
//! new template continues from there.

use clap::Args;
use serde_json::json;

use crate::cli::Output;
use crate::cli::context::Ctx;
use crate::cli::error::CliError;
use crate::cli::patch;

#[derive(Args, Debug)]
pub struct AbortArgs {
    /// Names of the rollouts.
    #[arg(required = true)]
    pub names: Vec<String>,
}

pub async fn run(ctx: &Ctx, args: &AbortArgs, out: &mut Output<'_>) -> Result<(), CliError> {
    for name in &args.names {
        patch::status_or_whole(ctx, name, &json!({"status": {"abort": true}})).await?;
        out.line(&format!("rollout '{name}' aborted"))?;
    }
    Ok(())
}
