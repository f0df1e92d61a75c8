//! `resume NAME...` (Sluice only; Argo's CLI has none): undo `pause` without moving the rollout
//! on. It sends exactly `{"spec":{"paused":false}}` and never touches `status`, so the current
//! step is neither completed nor skipped. A pause the controller set (a canary `pause` step,
//! blue-green's wait for promotion, an inconclusive analysis) is ended only by completing that
//! step, which is what `promote` does; `resume` refuses there instead of skipping it.

use clap::Args;
use serde_json::{Value, json};

use crate::api::rollout::Rollout;
use crate::cli::Output;
use crate::cli::context::Ctx;
use crate::cli::error::{CliError, rollout_error};
use crate::cli::patch;
use crate::cli::tree::current_step;

#[derive(Args, Debug)]
#[command(
    long_about = "Undo `pause`: clear a manual pause without moving the rollout on.

Sends the JSON merge patch {\"spec\":{\"paused\":false}} and nothing else: status is not \
touched, so the current step is neither completed nor skipped. A rollout paused in the \
middle of a timed pause step goes on waiting for the rest of that pause; one paused on a \
setWeight step goes on scaling.

A pause set by the controller (status.pauseConditions: a canary pause step, blue-green's \
wait for promotion, an inconclusive analysis) can only end by completing that step, which is \
`promote`. `resume` refuses such a rollout (exit code 1) rather than skip the step; \
`promote` clears status.pauseConditions (and spec.paused), `promote --full` skips every \
remaining step."
)]
pub struct ResumeArgs {
    /// Names of the rollouts.
    #[arg(required = true)]
    pub names: Vec<String>,
}

/// What `resume` sends for `ro`, and a note to print after it. Refuses when there is no manual
/// pause to undo.
pub fn resume_patch(ro: &Rollout) -> Result<(Value, Option<String>), CliError> {
    let name = ro.metadata.name.as_deref().unwrap_or_default();
    let controller_pause = ro
        .status
        .as_ref()
        .and_then(|s| s.pause_conditions.as_ref())
        .and_then(|p| p.first())
        .map(|c| c.reason.clone());
    let at = match current_step(ro) {
        Some((Some(_), idx)) => {
            let n = ro
                .spec
                .strategy
                .canary
                .as_ref()
                .and_then(|c| c.steps.as_ref())
                .map_or(0, Vec::len);
            format!(" at step {idx}/{n}")
        }
        _ => String::new(),
    };
    let patch = json!({"spec": {"paused": false}});
    match (ro.spec.paused.unwrap_or(false), controller_pause) {
        (true, None) => Ok((patch, None)),
        (true, Some(reason)) => Ok((
            patch,
            Some(format!(
                "rollout '{name}' is still paused by the controller ({reason}{at}); `promote` ends that pause"
            )),
        )),
        (false, Some(reason)) => Err(CliError::Refused(format!(
            "rollout '{name}' is paused by the controller ({reason}{at}), not manually: only `promote` ends that pause, resume never skips a step"
        ))),
        (false, None) => Err(CliError::Refused(format!("rollout '{name}' is not paused"))),
    }
}

pub async fn run(ctx: &Ctx, args: &ResumeArgs, out: &mut Output<'_>) -> Result<(), CliError> {
    for name in &args.names {
        let ro = ctx
            .rollouts()
            .get(name)
            .await
            .map_err(|e| rollout_error(e, name, &ctx.namespace))?;
        let (body, note) = resume_patch(&ro)?;
        patch::spec(ctx, name, &body).await?;
        out.line(&format!("rollout '{name}' resumed"))?;
        if let Some(note) = note {
            out.line(&note)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ro(paused: bool, condition: Option<&str>) -> Rollout {
        let mut v = json!({
            "metadata": {"name": "frontend"},
            "spec": {"paused": paused, "strategy": {"canary": {"steps": [
                {"setWeight": 20}, {"pause": {"duration": "10m"}}]}}},
            "status": {"currentStepIndex": 1}
        });
        if let Some(reason) = condition {
            v["status"]["pauseConditions"] =
                json!([{"reason": reason, "startTime": "2026-01-01T00:00:00Z"}]);
            v["status"]["controllerPause"] = json!(true);
        }
        serde_json::from_value(v).unwrap_or_else(|e| panic!("fixture: {e}"))
    }

    #[test]
    fn manual_pause_is_undone() {
        let (p, note) = resume_patch(&ro(true, None)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p, json!({"spec": {"paused": false}}));
        assert_eq!(note, None);
    }

    #[test]
    fn manual_pause_over_a_pause_step_keeps_the_step() {
        let (p, note) =
            resume_patch(&ro(true, Some("CanaryPauseStep"))).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p, json!({"spec": {"paused": false}}));
        assert_eq!(
            note.as_deref(),
            Some(
                "rollout 'frontend' is still paused by the controller (CanaryPauseStep at step 1/2); `promote` ends that pause"
            )
        );
    }

    #[test]
    fn controller_pause_is_refused() {
        let e = resume_patch(&ro(false, Some("CanaryPauseStep")))
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some(
                "rollout 'frontend' is paused by the controller (CanaryPauseStep at step 1/2), not manually: only `promote` ends that pause, resume never skips a step"
            )
        );
        let e = resume_patch(&ro(false, None)).err().map(|e| e.to_string());
        assert_eq!(e.as_deref(), Some("rollout 'frontend' is not paused"));
    }
}
