//! `status NAME [--timeout D]`: for CI pipelines. Watches the rollout (a field-selected watch,
//! no polling), prints each new phase, and ends with exit code 0 once it is Healthy, or non-zero
//! with the message once it is Degraded or when the timeout passes. As in Argo, a paused rollout
//! (a canary pause step, a blue-green pre-promotion pause) does not end the watch: it waits for
//! the promotion or the timeout.

use clap::{ArgAction, Args};
use futures::StreamExt;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};

use crate::api::consts::{PHASE_DEGRADED, PHASE_HEALTHY};
use crate::api::rollout::Rollout;
use crate::cli::Output;
use crate::cli::context::Ctx;
use crate::cli::error::{CliError, rollout_error};
use crate::cli::tree::phase_of;
use crate::time::parse_go_duration;

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Name of the rollout.
    pub name: String,
    /// Wait until the rollout is Healthy or Degraded; `--watch=false` prints the status once.
    #[arg(
        short,
        long,
        action = ArgAction::Set,
        default_value_t = true,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        env = "SLUICE_STATUS_WATCH"
    )]
    pub watch: bool,
    /// Give up after this long (a Go duration: 90s, 5m); 0 waits forever.
    #[arg(
        short,
        long,
        default_value = "0",
        value_name = "DURATION",
        env = "SLUICE_STATUS_TIMEOUT"
    )]
    pub timeout: String,
}

/// `Phase` or `Phase - message`, as printed for each change.
fn status_line(phase: &str, message: &str) -> String {
    if message.is_empty() {
        phase.to_string()
    } else {
        format!("{phase} - {message}")
    }
}

/// The one line `--watch=false` prints, Argo's way: the bare phase once the rollout is Healthy
/// or Degraded (the error then carries the message), else the phase and its message.
fn once_line(phase: &str, message: &str) -> String {
    if phase == PHASE_HEALTHY || phase == PHASE_DEGRADED {
        phase.to_string()
    } else {
        format!("{phase} - {message}")
    }
}

/// Print the rollout's phase when it changed; `Some` once the wait is over.
fn observe(
    ro: &Rollout,
    last: &mut Option<String>,
    out: &mut Output<'_>,
) -> Result<Option<Result<(), CliError>>, CliError> {
    let (phase, message) = phase_of(ro);
    let line = status_line(&phase, &message);
    if last.as_ref() != Some(&line) {
        out.line(&line)?;
        *last = Some(line);
    }
    Ok(match phase.as_str() {
        PHASE_HEALTHY => Some(Ok(())),
        PHASE_DEGRADED => Some(Err(CliError::Degraded(message))),
        _ => None,
    })
}

pub async fn run(ctx: &Ctx, args: &StatusArgs, out: &mut Output<'_>) -> Result<(), CliError> {
    let timeout = parse_go_duration(&args.timeout).ok_or_else(|| {
        CliError::Usage(format!(
            "invalid --timeout '{}': use a Go duration such as 90s or 5m",
            args.timeout
        ))
    })?;
    let name = &args.name;
    let ro = ctx
        .rollouts()
        .get(name)
        .await
        .map_err(|e| rollout_error(e, name, &ctx.namespace))?;
    let mut last = None;
    if !args.watch {
        let (phase, message) = phase_of(&ro);
        out.line(&once_line(&phase, &message))?;
        return if phase == PHASE_DEGRADED {
            Err(CliError::Degraded(message))
        } else {
            Ok(())
        };
    }
    if let Some(done) = observe(&ro, &mut last, out)? {
        return done;
    }
    let wait = async {
        let events = watcher::watcher(
            ctx.rollouts(),
            watcher::Config::default().fields(&format!("metadata.name={name}")),
        )
        .default_backoff();
        futures::pin_mut!(events);
        while let Some(ev) = events.next().await {
            match ev {
                Ok(Event::Apply(ro) | Event::InitApply(ro)) => {
                    if let Some(done) = observe(&ro, &mut last, out)? {
                        return done;
                    }
                }
                Ok(Event::Delete(_)) => {
                    return Err(CliError::Refused(format!(
                        "rollout '{name}' was deleted while waiting for it"
                    )));
                }
                // Relists and transport errors (retried with backoff) change nothing here.
                Ok(Event::Init | Event::InitDone) | Err(_) => {}
            }
        }
        Err(CliError::Timeout)
    };
    if timeout.is_zero() {
        wait.await
    } else {
        tokio::time::timeout(timeout, wait)
            .await
            .unwrap_or(Err(CliError::Timeout))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A blue-green rollout whose controller wrote `phase` and `message`.
    fn blue_green(phase: &str, message: &str) -> Rollout {
        serde_json::from_value(json!({
            "metadata": {"name": "frontend", "generation": 2},
            "spec": {"selector": {}, "template": {}, "strategy": {"blueGreen": {
                "activeService": "frontend", "autoPromotionEnabled": false}}},
            "status": {"observedGeneration": "2", "phase": phase, "message": message,
                "pauseConditions": (phase == "Paused").then(|| json!([
                    {"reason": "BlueGreenPause", "startTime": "2026-01-01T00:00:00Z"}])),
                "controllerPause": phase == "Paused"}
        }))
        .unwrap_or_else(|e| panic!("fixture: {e}"))
    }

    /// Feed the rollouts to the watch one after the other, as its events would; what it printed
    /// and how it ended (`None`: still waiting).
    fn watch(ros: &[Rollout]) -> (String, Option<Result<(), String>>) {
        let mut buf = Vec::new();
        let mut last = None;
        let mut end = None;
        {
            let mut out = Output {
                out: &mut buf,
                tty: false,
            };
            for ro in ros {
                match observe(ro, &mut last, &mut out) {
                    Ok(Some(done)) => {
                        end = Some(done.map_err(|e| e.to_string()));
                        break;
                    }
                    Ok(None) => {}
                    Err(e) => panic!("{e}"),
                }
            }
        }
        (String::from_utf8_lossy(&buf).into_owned(), end)
    }

    #[test]
    fn blue_green_pause_keeps_waiting_until_promoted() {
        let paused = blue_green("Paused", "BlueGreenPause");
        let (out, end) = watch(&[paused.clone(), paused.clone()]);
        assert_eq!(out, "Paused - BlueGreenPause\n");
        assert_eq!(end, None);
        let progressing = blue_green("Progressing", "active service cutover pending");
        let (out, end) = watch(&[paused, progressing, blue_green("Healthy", "")]);
        assert_eq!(
            out,
            "Paused - BlueGreenPause\nProgressing - active service cutover pending\nHealthy\n"
        );
        assert_eq!(end, Some(Ok(())));
    }

    #[test]
    fn blue_green_abort_ends_the_watch_with_its_message() {
        let msg = "RolloutAborted: Rollout aborted update to revision 2";
        let (out, end) = watch(&[blue_green("Degraded", msg)]);
        assert_eq!(out, format!("Degraded - {msg}\n"));
        assert_eq!(
            end,
            Some(Err(format!(
                "The rollout is in a degraded state with message: {msg}"
            )))
        );
    }

    #[test]
    fn one_shot_line_is_argos() {
        assert_eq!(once_line("Healthy", ""), "Healthy");
        assert_eq!(once_line("Degraded", "RolloutAborted: x"), "Degraded");
        assert_eq!(
            once_line("Paused", "BlueGreenPause"),
            "Paused - BlueGreenPause"
        );
        assert_eq!(once_line("Progressing", ""), "Progressing - ");
    }
}
