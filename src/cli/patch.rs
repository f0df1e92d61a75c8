//! Sending the verbs' JSON merge patches the way Argo's CLI does: spec changes to the Rollout,
//! status changes to its `status` subresource — falling back to the Rollout itself when the CRD
//! predates the subresource (the server then answers 404 for `/status`).

use kube::api::{Patch, PatchParams};
use serde_json::Value;

use crate::api::rollout::Rollout;
use crate::cli::context::Ctx;
use crate::cli::error::{CliError, is_not_found, rollout_error};

/// A JSON merge patch to the Rollout.
pub async fn spec(ctx: &Ctx, name: &str, body: &Value) -> Result<Rollout, CliError> {
    ctx.rollouts()
        .patch(name, &PatchParams::default(), &Patch::Merge(body))
        .await
        .map_err(|e| rollout_error(e, name, &ctx.namespace))
}

/// A JSON merge patch to `/status`; `Ok(None)` when the server has no such subresource (or no
/// such rollout), so the caller can fall back to a patch of the whole object.
pub async fn status(ctx: &Ctx, name: &str, body: &Value) -> Result<Option<Rollout>, CliError> {
    match ctx
        .rollouts()
        .patch_status(name, &PatchParams::default(), &Patch::Merge(body))
        .await
    {
        Ok(ro) => Ok(Some(ro)),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(rollout_error(e, name, &ctx.namespace)),
    }
}

/// A status patch, or the same body against the whole object when `/status` is missing.
pub async fn status_or_whole(ctx: &Ctx, name: &str, body: &Value) -> Result<Rollout, CliError> {
    match status(ctx, name, body).await? {
        Some(ro) => Ok(ro),
        None => spec(ctx, name, body).await,
    }
}
