//! `promote NAME [--full]`: end the current pause (a canary step or a blue-green pre-promotion
//! pause) or skip the current canary step, or with `--full` skip every remaining step, pause and
//! analysis. The patches are Argo's, chosen from the rollout's current state by the pure
//! [`patches`].

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
    #[arg(short = 'c', long, hide = true)]
    pub skip_current_step: bool,
    /// Deprecated (Argo compatibility): skip all remaining canary steps; use --full.
    #[arg(short = 'a', long, hide = true)]
    pub skip_all_steps: bool,
}

/// Argo's wording for the promotions it refuses.
pub const BOTH_SKIP_FLAGS: &str =
    "Cannot use skip-current-step and skip-all-steps flags at the same time";
pub const SKIP_BLUE_GREEN: &str = "Cannot skip steps of a bluegreen rollout. Run without a flags";
pub const SKIP_NO_STEPS: &str = "Cannot skip steps of a rollout without steps";

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

impl PromoteArgs {
    /// The promotion the flags ask for, in Argo's order of precedence: a skip flag wins over
    /// `--full` (the output still says "fully promoted", as Argo's does); both skip flags together
    /// are refused.
    pub fn mode(&self) -> Result<Mode, CliError> {
        Ok(match (self.skip_current_step, self.skip_all_steps) {
            (true, true) => return Err(CliError::Usage(BOTH_SKIP_FLAGS.into())),
            (true, false) => Mode::SkipCurrentStep,
            (false, true) => Mode::SkipAllSteps,
            (false, false) if self.full => Mode::Full,
            (false, false) => Mode::Step,
        })
    }
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
            if ro.spec.strategy.blue_green.is_some() {
                return Err(refused(SKIP_BLUE_GREEN.into()));
            }
            // Neither strategy (an invalid spec): Argo writes nothing or crashes; refuse instead.
            if ro.spec.strategy.canary.is_none() {
                return Err(refused(format!(
                    "rollout '{name}' is not a canary: only canary steps can be skipped"
                )));
            }
            let Some((_, idx)) = step else {
                return Err(refused(SKIP_NO_STEPS.into()));
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
    let mode = args.mode()?;
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
    let how = if args.full {
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
    fn skip_flags_need_a_canary_with_steps() {
        let err = |ro: &Rollout, mode| patches(ro, mode).err().map(|e| e.to_string());
        for mode in [Mode::SkipCurrentStep, Mode::SkipAllSteps] {
            assert_eq!(
                err(&blue_green(json!({})), mode).as_deref(),
                Some(SKIP_BLUE_GREEN)
            );
            let mut no_steps = ro(json!({}));
            if let Some(c) = no_steps.spec.strategy.canary.as_mut() {
                c.steps = Some(vec![]);
            }
            assert_eq!(
                err(&no_steps, mode).as_deref(),
                Some(SKIP_NO_STEPS),
                "{mode:?}"
            );
        }
        let p = patches(&ro(json!({})), Mode::SkipAllSteps).unwrap_or_default();
        assert_eq!(p.status, Some(json!({"status": {"currentStepIndex": 4}})));
        let p = patches(&ro(json!({})), Mode::SkipCurrentStep).unwrap_or_default();
        assert_eq!(p.status, Some(json!({"status": {"currentStepIndex": 2}})));
    }

    fn args(flags: &[&str]) -> Result<PromoteArgs, String> {
        #[derive(clap::Parser)]
        struct Cmd {
            #[command(flatten)]
            promote: PromoteArgs,
        }
        let argv = ["promote", "frontend"].iter().chain(flags);
        <Cmd as clap::Parser>::try_parse_from(argv)
            .map(|c| c.promote)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn flags_choose_the_mode_as_argo_does() {
        let mode = |flags: &[&str]| {
            args(flags)
                .and_then(|a| a.mode().map_err(|e| e.to_string()))
                .map_err(|e| e.lines().next().unwrap_or_default().to_string())
        };
        assert_eq!(mode(&[]), Ok(Mode::Step));
        assert_eq!(mode(&["--full"]), Ok(Mode::Full));
        assert_eq!(mode(&["-c"]), Ok(Mode::SkipCurrentStep));
        assert_eq!(mode(&["--skip-all-steps"]), Ok(Mode::SkipAllSteps));
        // A skip flag wins over --full, as in Argo's switch.
        assert_eq!(mode(&["--full", "-c"]), Ok(Mode::SkipCurrentStep));
        assert_eq!(mode(&["--full", "-a"]), Ok(Mode::SkipAllSteps));
        assert_eq!(mode(&["-c", "-a"]), Err(BOTH_SKIP_FLAGS.to_string()));
    }

    /// A blue-green rollout as Argo's controller leaves it: `extra` merged over a new revision
    /// (`new`) beside the stable, active one (`old`), the preview Service on the new one.
    fn blue_green(extra: Value) -> Rollout {
        let mut v = json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "frontend", "namespace": "ns"},
            "spec": {"replicas": 5, "strategy": {"blueGreen": {
                "activeService": "frontend", "previewService": "frontend-preview",
                "autoPromotionEnabled": false}}},
            "status": {"currentPodHash": "new", "stableRS": "old",
                "blueGreen": {"activeSelector": "old", "previewSelector": "new"}}
        });
        merge(&mut v, extra);
        serde_json::from_value(v).unwrap_or_else(|e| panic!("fixture: {e}"))
    }

    fn blue_green_pause() -> Value {
        json!({"status": {"pauseConditions": [
            {"reason": "BlueGreenPause", "startTime": "2026-01-01T00:00:00Z"}
        ], "controllerPause": true}})
    }

    #[test]
    fn blue_green_promote_clears_the_pause() {
        let p =
            patches(&blue_green(blue_green_pause()), Mode::Step).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.spec, None);
        assert_eq!(p.status, Some(json!({"status": {"pauseConditions": null}})));
        assert_eq!(
            p.unified,
            json!({"spec": {"paused": false}, "status": {"pauseConditions": null}})
        );
        // Paused by the user as well: both are undone.
        let mut extra = blue_green_pause();
        extra["spec"] = json!({"paused": true});
        let p = patches(&blue_green(extra), Mode::Step).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.spec, Some(json!({"spec": {"paused": false}})));
        assert_eq!(p.status, Some(json!({"status": {"pauseConditions": null}})));
    }

    #[test]
    fn blue_green_promote_never_moves_a_step_index() {
        // An inconclusive pre-promotion analysis pauses a blue-green rollout too; promoting it
        // only clears the pause: the step arithmetic is the canary's.
        let mut extra = blue_green_pause();
        extra["status"]["pauseConditions"][0]["reason"] = json!("InconclusiveAnalysisRun");
        extra["status"]["canary"] =
            json!({"currentStepAnalysisRunStatus": {"name": "ar", "status": "Inconclusive"}});
        let p = patches(&blue_green(extra), Mode::Step).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.status, Some(json!({"status": {"pauseConditions": null}})));
        // Not paused (the preview still scaling up): nothing to write, and it succeeds.
        let p = patches(&blue_green(json!({})), Mode::Step).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((p.spec, p.status), (None, None));
        // Only the user's pause: the spec is unpaused, the status left alone.
        let p = patches(&blue_green(json!({"spec": {"paused": true}})), Mode::Step)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.spec, Some(json!({"spec": {"paused": false}})));
        assert_eq!(p.status, None);
    }

    #[test]
    fn blue_green_full_promotion() {
        let p =
            patches(&blue_green(blue_green_pause()), Mode::Full).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.spec, None);
        assert_eq!(p.status, Some(json!({"status": {"promoteFull": true}})));
        assert_eq!(
            p.unified,
            json!({"spec": {"paused": false}, "status": {"promoteFull": true}})
        );
        // Already promoted (stable is the current revision): nothing to write.
        let done = blue_green(json!({"status": {"stableRS": "new",
            "blueGreen": {"activeSelector": "new"}}}));
        let p = patches(&done, Mode::Full).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((p.spec, p.status), (None, None));
    }
}
