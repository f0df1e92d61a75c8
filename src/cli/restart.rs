//! `restart NAME [--in DURATION]`: ask the controller to replace every pod created before a
//! moment (`{"spec":{"restartAt":"<RFC 3339, now + in>"}}`).

use std::time::Duration;

use clap::Args;
use jiff::Timestamp;
use serde_json::{Value, json};

use crate::cli::Output;
use crate::cli::context::Ctx;
use crate::cli::error::CliError;
use crate::cli::patch;
use crate::time::{add_seconds, parse_go_duration};

#[derive(Args, Debug)]
pub struct RestartArgs {
    /// Name of the rollout.
    pub name: String,
    /// Restart this long from now instead of now (a Go duration: 30s, 5m, 1h).
    #[arg(
        short = 'i',
        long = "in",
        value_name = "DURATION",
        env = "SLUICE_RESTART_IN"
    )]
    pub in_: Option<String>,
}

/// The restart patch: `restartAt` is `now + delay`, whole seconds, UTC (`2026-01-02T03:04:05Z`).
pub fn restart_patch(now: Timestamp, delay: Duration) -> Value {
    let at = add_seconds(now, i64::try_from(delay.as_secs()).unwrap_or(i64::MAX));
    json!({"spec": {"restartAt": at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()}})
}

pub async fn run(ctx: &Ctx, args: &RestartArgs, out: &mut Output<'_>) -> Result<(), CliError> {
    let (delay, shown) = match &args.in_ {
        Some(s) => (
            parse_go_duration(s).ok_or_else(|| {
                CliError::Usage(format!(
                    "invalid --in duration '{s}': use a Go duration such as 30s, 5m or 1h"
                ))
            })?,
            s.clone(),
        ),
        None => (Duration::ZERO, "0s".to_string()),
    };
    patch::spec(ctx, &args.name, &restart_patch(Timestamp::now(), delay)).await?;
    out.line(&format!("rollout '{}' restarts in {shown}", args.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_at_is_rfc3339_in_whole_seconds() {
        let now: Timestamp = "2026-03-04T05:06:07.891Z"
            .parse()
            .unwrap_or(Timestamp::UNIX_EPOCH);
        assert_eq!(
            restart_patch(now, Duration::from_secs(30)),
            json!({"spec": {"restartAt": "2026-03-04T05:06:37Z"}})
        );
        assert_eq!(
            restart_patch(now, Duration::ZERO),
            json!({"spec": {"restartAt": "2026-03-04T05:06:07Z"}})
        );
    }
}
