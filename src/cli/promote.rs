//! `promote NAME [--full]`: end the current pause (or skip the current step), or with `--full`
//! skip every remaining step, pause and analysis. The patches are Argo's, chosen from the
//! rollout's current state by the pure [`patches`].

use clap::Args;
use serde_json::{Value, json};

use crate::api::consts::ANALYSIS_PHASE_INCONCLUSIVE;
use crate::api::rollout::Rollout;
use crate::cli::Output;
use crate::cli::context::Ctx;
use crate::cli::error::CliError;
use crate::cli::patch;
use crate::cli::tree::current_step;

#[derive(Args, Debug)]
pub struct PromoteArgs {
    /// Name of the rollout.
    pub name: String,
    /// Promote fully: skip the remaining steps, pauses and analysis and make the new version
    /// stable (`status.promoteFull: true`).
    #[arg(long, env = "SLUICE_PROMOTE_FULL")]
    pub full: bool,
    /// Deprecated (Argo compatibility): skip the current canary step.
    #[arg(short = 'c', long, hide = true, conflicts_with_all = ["full", "skip_all_steps"])]
    pub skip_current_step: bool,
    /// Deprecated (Argo compatibility): skip all remaining canary steps; use --full.
    #[arg(short = 'a', long, hide = true, conflicts_with = "full")]
    pub skip_all_steps: bool,
}

/// Which promotion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// End the pause, or move past the current step.
    Step,
    Full,
    SkipCurrentStep,
    SkipAllSteps,
}

/// The patches of one promotion, sent status first, then spec. `unified` replaces both when the
/// server has no status subresource.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Patches {
    pub spec: Option<Value>,
    pub status: Option<Value>,
    pub unified: Value,
}

fn step_count(ro: &Rollout) -> i32 {
    ro.spec
        .strategy
        .canary
        .as_ref()
        .and_then(|c| c.steps.as_ref())
        .map_or(0, |s| i32::try_from(s.len()).unwrap_or(i32::MAX))
}

/// The index after `idx`, never past the end (Argo's promote arithmetic).
fn next_index(ro: &Rollout, idx: i32) -> i32 {
    if idx < step_count(ro) { idx + 1 } else { idx }
}

fn refused(msg: String) -> CliError {
    CliError::Refused(msg)
}

/// Argo's promote patches for `ro`. Refuses, with a reason, when the promotion would change
/// nothing.
pub fn patches(ro: &Rollout, mode: Mode) -> Result<Patches, CliError> {
    let name = ro.metadata.name.as_deref().unwrap_or_default();
    let status = ro.status.clone().unwrap_or_default();
    let paused = ro.spec.paused.unwrap_or(false);
    let unpause = paused.then(|| json!({"spec": {"paused": false}}));
    let has_pause_conditions = status
        .pause_conditions
        .as_ref()
        .is_some_and(|p| !p.is_empty());
    let step = current_step(ro);
    match mode {
        Mode::SkipCurrentStep | Mode::SkipAllSteps => {
            if ro.spec.strategy.canary.is_none() {
                return Err(refused(format!(
                    "rollout '{name}' is not a canary: only canary steps can be skipped"
                )));
            }
            let Some((_, idx)) = step else {
                return Err(refused(format!(
                    "rollout '{name}' has no canary steps to skip"
                )));
            };
            let to = if mode == Mode::SkipAllSteps {
                step_count(ro)
            } else {
                next_index(ro, idx)
            };
            let p = json!({"status": {"currentStepIndex": to}});
            Ok(Patches {
                spec: None,
                status: Some(p.clone()),
                unified: p,
            })
        }
        Mode::Full => {
            let current = status.current_pod_hash.clone().unwrap_or_default();
            let stable = status.stable_rs.clone().unwrap_or_default();
            // Already fully promoted: nothing is written and, as in Argo, the command still
            // succeeds, so CI scripts can call it blindly.
            let promote = (current != stable).then(|| json!({"status": {"promoteFull": true}}));
            Ok(Patches {
                spec: unpause,
                status: promote,
                unified: json!({"spec": {"paused": false}, "status": {"promoteFull": true}}),
            })
        }
        Mode::Step => {
            let mut unified =
                json!({"spec": {"paused": false}, "status": {"pauseConditions": null}});
            let inconclusive = ro.spec.strategy.canary.is_some()
                && status
                    .canary
                    .as_ref()
                    .and_then(|c| c.current_step_analysis_run_status.as_ref())
                    .is_some_and(|a| a.status == ANALYSIS_PHASE_INCONCLUSIVE);
            let status_patch = if inconclusive
                && has_pause_conditions
                && status.controller_pause.unwrap_or(false)
            {
                step.map(|(_, idx)| {
                    json!({"status": {
                        "pauseConditions": null,
                        "controllerPause": false,
                        "currentStepIndex": next_index(ro, idx),
                    }})
                })
            } else if has_pause_conditions {
                Some(json!({"status": {"pauseConditions": null}}))
            } else if ro.spec.strategy.canary.is_some() {
                match step {
                    // Not paused and past the last step (or no steps at all): Argo's patch would
                    // change nothing, so none is sent; the command succeeds as Argo's does.
                    Some((None, _)) | None => None,
                    Some((_, idx)) => {
                        let to = next_index(ro, idx);
                        unified = json!({"spec": {"paused": false}, "status": {"pauseConditions": null, "currentStepIndex": to}});
                        Some(json!({"status": {"pauseConditions": null, "currentStepIndex": to}}))
                    }
                }
            } else {
                None
            };
            Ok(Patches {
                spec: unpause,
                status: status_patch,
                unified,
            })
        }
    }
}

pub async fn run(ctx: &Ctx, args: &PromoteArgs, out: &mut Output<'_>) -> Result<(), CliError> {
    let mode = if args.full {
        Mode::Full
    } else if args.skip_current_step {
        Mode::SkipCurrentStep
    } else if args.skip_all_steps {
        Mode::SkipAllSteps
    } else {
        Mode::Step
    };
    let ro = ctx
        .rollouts()
        .get(&args.name)
        .await
        .map_err(|e| crate::cli::error::rollout_error(e, &args.name, &ctx.namespace))?;
    let p = patches(&ro, mode)?;
    let mut spec = p.spec;
    if let Some(status) = &p.status
        && patch::status(ctx, &args.name, status).await?.is_none()
    {
        spec = Some(p.unified);
    }
    if let Some(spec) = &spec {
        patch::spec(ctx, &args.name, spec).await?;
    }
    let how = if mode == Mode::Full {
        "fully promoted"
    } else {
        "promoted"
    };
    out.line(&format!("rollout '{}' {how}", args.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ro(extra: Value) -> Rollout {
        let mut v = json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "frontend", "namespace": "ns"},
            "spec": {"replicas": 5, "strategy": {"canary": {"steps": [
                {"setWeight": 20}, {"pause": {}}, {"setWeight": 60}, {"pause": {"duration": 30}}
            ]}}},
            "status": {"currentStepIndex": 1, "currentPodHash": "new", "stableRS": "old"}
        });
        merge(&mut v, extra);
        serde_json::from_value(v).unwrap_or_else(|e| panic!("fixture: {e}"))
    }

    fn merge(a: &mut Value, b: Value) {
        match (a, b) {
            (Value::Object(a), Value::Object(b)) => {
                for (k, v) in b {
                    merge(a.entry(k).or_insert(Value::Null), v);
                }
            }
            (a, b) => *a = b,
        }
    }

    const PAUSED_STEP: &str = r#"{"status": {"pauseConditions": [{"reason": "CanaryPauseStep", "startTime": "2026-01-01T00:00:00Z"}], "controllerPause": true}}"#;

    fn paused_step() -> Value {
        serde_json::from_str(PAUSED_STEP).unwrap_or_default()
    }

    #[test]
    fn promote_clears_pause_conditions() {
        let p = patches(&ro(paused_step()), Mode::Step).unwrap_or_default();
        assert_eq!(p.spec, None);
        assert_eq!(p.status, Some(json!({"status": {"pauseConditions": null}})));
        assert_eq!(
            p.unified,
            json!({"spec": {"paused": false}, "status": {"pauseConditions": null}})
        );
    }

    #[test]
    fn promote_unpauses_manual_pause_too() {
        let mut extra = paused_step();
        extra["spec"] = json!({"paused": true});
        let p = patches(&ro(extra), Mode::Step).unwrap_or_default();
        assert_eq!(p.spec, Some(json!({"spec": {"paused": false}})));
        assert_eq!(p.status, Some(json!({"status": {"pauseConditions": null}})));
    }

    #[test]
    fn promote_mid_step_skips_it() {
        let p = patches(&ro(json!({"status": {"currentStepIndex": 2}})), Mode::Step)
            .unwrap_or_default();
        assert_eq!(
            p.status,
            Some(json!({"status": {"pauseConditions": null, "currentStepIndex": 3}}))
        );
        assert_eq!(
            p.unified,
            json!({"spec": {"paused": false}, "status": {"pauseConditions": null, "currentStepIndex": 3}})
        );
    }

    #[test]
    fn promote_inconclusive_analysis_moves_on() {
        let mut extra = paused_step();
        extra["status"]["pauseConditions"][0]["reason"] = json!("InconclusiveAnalysisRun");
        extra["status"]["canary"] =
            json!({"currentStepAnalysisRunStatus": {"name": "ar", "status": "Inconclusive"}});
        let p = patches(&ro(extra), Mode::Step).unwrap_or_default();
        assert_eq!(
            p.status,
            Some(
                json!({"status": {"pauseConditions": null, "controllerPause": false, "currentStepIndex": 2}})
            )
        );
    }

    #[test]
    fn promote_is_idempotent_where_argo_is() {
        // Fully promoted, past the last step: both forms succeed and write nothing.
        let done = ro(json!({"status": {"currentStepIndex": 4, "stableRS": "new"}}));
        for mode in [Mode::Step, Mode::Full] {
            let p = patches(&done, mode).unwrap_or_else(|e| panic!("{mode:?}: {e}"));
            assert_eq!((p.spec, p.status), (None, None), "{mode:?}");
        }
        // A canary with no steps, not paused.
        let mut no_steps = ro(json!({"status": {"currentStepIndex": null}}));
        if let Some(c) = no_steps.spec.strategy.canary.as_mut() {
            c.steps = None;
        }
        let p = patches(&no_steps, Mode::Step).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((p.spec, p.status), (None, None));
        // Past the last step but not yet stable (the new pods are still becoming available).
        let waiting = ro(json!({"status": {"currentStepIndex": 4}}));
        let p = patches(&waiting, Mode::Step).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((p.spec, p.status), (None, None));
    }

    #[test]
    fn full_promotion() {
        let p = patches(&ro(paused_step()), Mode::Full).unwrap_or_default();
        assert_eq!(p.spec, None);
        assert_eq!(p.status, Some(json!({"status": {"promoteFull": true}})));
        assert_eq!(
            p.unified,
            json!({"spec": {"paused": false}, "status": {"promoteFull": true}})
        );
    }

    #[test]
    fn skip_flags_need_a_canary() {
        let mut bg = ro(json!({}));
        bg.spec.strategy.canary = None;
        bg.spec.strategy.blue_green = Some(Default::default());
        let e = patches(&bg, Mode::SkipCurrentStep)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("rollout 'frontend' is not a canary: only canary steps can be skipped")
        );
        let p = patches(&ro(json!({})), Mode::SkipAllSteps).unwrap_or_default();
        assert_eq!(p.status, Some(json!({"status": {"currentStepIndex": 4}})));
        let p = patches(&ro(json!({})), Mode::SkipCurrentStep).unwrap_or_default();
        assert_eq!(p.status, Some(json!({"status": {"currentStepIndex": 2}})));
    }
}
