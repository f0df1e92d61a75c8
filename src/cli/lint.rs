//! `lint -f FILE`: validate the Rollouts of a YAML or JSON file offline, with the controller's
//! own code path (`rollout::validation`), so each line printed is exactly the message the
//! controller would put in the `InvalidSpec` condition.

use std::path::PathBuf;

use clap::Args;
use serde_json::Value;

use crate::api::rollout::Rollout;
use crate::cli::Output;
use crate::cli::error::CliError;
use crate::rollout::validation::{invalid_spec_message, validate};

#[derive(Args, Debug)]
pub struct LintArgs {
    /// The file to lint (YAML, several documents allowed, or JSON).
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "FILE",
        env = "SLUICE_LINT_FILE"
    )]
    pub file: PathBuf,
}

/// The verdict on one Rollout of the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub name: String,
    /// One controller message per validation error, in the controller's order.
    pub errors: Vec<String>,
}

/// Lint the text of a manifest file: every `argoproj.io` Rollout in it, other kinds skipped.
pub fn lint_text(text: &str) -> Result<Vec<Verdict>, CliError> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| {
        // The parser's message carries a multi-line source excerpt; its first line says it all.
        let msg = e.to_string();
        let first = msg.lines().next().unwrap_or_default();
        CliError::Decode(format!(
            "cannot parse YAML: {}",
            first.trim_start_matches("error: ")
        ))
    })?;
    let mut verdicts = Vec::new();
    for doc in docs.into_iter().filter(|d| !d.is_null()) {
        let is_rollout = doc["kind"] == "Rollout"
            && doc["apiVersion"]
                .as_str()
                .is_some_and(|v| v.starts_with("argoproj.io/"));
        if !is_rollout {
            continue;
        }
        let name = doc["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let ro: Rollout = serde_json::from_value(doc)
            .map_err(|e| CliError::Decode(format!("rollout '{name}': {e}")))?;
        let errors = validate(&ro)
            .into_iter()
            .filter_map(|e| invalid_spec_message(&ro, std::slice::from_ref(&e)))
            .collect();
        verdicts.push(Verdict { name, errors });
    }
    Ok(verdicts)
}

pub fn run(args: &LintArgs, out: &mut Output<'_>) -> Result<(), CliError> {
    let text = std::fs::read_to_string(&args.file)
        .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", args.file.display())))?;
    let verdicts = lint_text(&text)?;
    let file = args.file.display();
    if verdicts.is_empty() {
        return out.line(&format!("{file}: no Rollout found"));
    }
    let mut errors = 0;
    for v in &verdicts {
        if v.errors.is_empty() {
            out.line(&format!("rollout '{}' is valid", v.name))?;
        }
        for e in &v.errors {
            out.line(e)?;
        }
        errors += v.errors.len();
    }
    if errors > 0 {
        let s = if errors == 1 { "" } else { "s" };
        return Err(CliError::Invalid(format!(
            "{file}: {errors} validation error{s}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = include_str!("../../e2e/manifests/seed-rollout.yaml");

    #[test]
    fn the_seed_is_valid() {
        let v = lint_text(SEED).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            v,
            vec![Verdict {
                name: "frontend".into(),
                errors: vec![]
            }]
        );
    }

    #[test]
    fn messages_are_the_controllers() {
        let text = format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: x}}\n---\n{}",
            SEED.replace("setWeight: 20", "setWeight: 150")
        );
        let v = lint_text(&text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            v[0].errors,
            vec![
                "The Rollout \"frontend\" is invalid: spec.strategy.steps[0].setWeight: Invalid value: 150: SetWeight needs to be between 0 and 100"
                    .to_string()
            ]
        );
    }
}
