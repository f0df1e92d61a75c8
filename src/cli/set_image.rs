//! `set image NAME CONTAINER=IMAGE`: change the image of one container (or of all with `*`)
//! among `initContainers`, `containers` and `ephemeralContainers` of the pod template — of the
//! Rollout, or of the Deployment a `workloadRef` rollout points at. Like Argo's CLI it reads the
//! object as plain JSON, edits it and writes it back with its resourceVersion (retrying on
//! conflicts), so fields this plugin does not model survive untouched.

use clap::{Args, Subcommand};
use kube::api::{Api, DynamicObject, PostParams};
use serde_json::Value;

use crate::cli::Output;
use crate::cli::context::Ctx;
use crate::cli::error::{CliError, is_conflict, rollout_error};

const ATTEMPTS: usize = 5;

#[derive(Args, Debug)]
pub struct SetArgs {
    #[command(subcommand)]
    pub what: SetWhat,
}

#[derive(Subcommand, Debug)]
pub enum SetWhat {
    /// Update the image of a rollout's container (`*=IMAGE` for all containers).
    Image(SetImageArgs),
}

#[derive(Args, Debug)]
pub struct SetImageArgs {
    /// Name of the rollout.
    pub name: String,
    /// CONTAINER=IMAGE; CONTAINER may be `*` for every container.
    #[arg(value_name = "CONTAINER=IMAGE")]
    pub assignment: String,
}

/// Split `CONTAINER=IMAGE`.
pub fn parse_assignment(s: &str) -> Result<(&str, &str), CliError> {
    match s.split('=').collect::<Vec<_>>().as_slice() {
        [c, i] if !c.is_empty() && !i.is_empty() => Ok((c, i)),
        _ => Err(CliError::Usage(format!(
            "expected CONTAINER=IMAGE (or *=IMAGE), got '{s}'"
        ))),
    }
}

/// Set the image in the pod template of `obj` (a Rollout or Deployment as JSON).
pub fn set_image(obj: &mut Value, container: &str, image: &str) -> Result<(), CliError> {
    let mut found = false;
    for field in ["initContainers", "containers", "ephemeralContainers"] {
        let Some(list) = obj
            .pointer_mut(&format!("/spec/template/spec/{field}"))
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        for c in list {
            if container == "*" || c["name"].as_str() == Some(container) {
                c["image"] = Value::String(image.to_string());
                found = true;
            }
        }
    }
    if found {
        Ok(())
    } else {
        Err(CliError::Refused(format!(
            "unable to find container named \"{container}\""
        )))
    }
}

async fn update<F>(
    api: &Api<DynamicObject>,
    name: &str,
    container: &str,
    image: &str,
    api_error: F,
) -> Result<(), CliError>
where
    F: Fn(kube::Error) -> CliError,
{
    for attempt in 1..=ATTEMPTS {
        let obj = api.get(name).await.map_err(&api_error)?;
        let mut v = serde_json::to_value(&obj).map_err(|e| CliError::Decode(e.to_string()))?;
        set_image(&mut v, container, image)?;
        let obj: DynamicObject =
            serde_json::from_value(v).map_err(|e| CliError::Decode(e.to_string()))?;
        match api.replace(name, &PostParams::default(), &obj).await {
            Ok(_) => return Ok(()),
            // Someone else wrote in between: read again and redo the edit.
            Err(e) if is_conflict(&e) && attempt < ATTEMPTS => {}
            Err(e) => return Err(api_error(e)),
        }
    }
    Ok(())
}

pub async fn run(ctx: &Ctx, args: &SetImageArgs, out: &mut Output<'_>) -> Result<(), CliError> {
    let (container, image) = parse_assignment(&args.assignment)?;
    let rollouts = ctx.dynamic_rollouts();
    let ro = rollouts
        .get(&args.name)
        .await
        .map_err(|e| rollout_error(e, &args.name, &ctx.namespace))?;
    let workload = ro.data["spec"]["workloadRef"].clone();
    let (api, name, kind) = if workload.is_object() {
        let Some(deploy) = workload["name"].as_str() else {
            return Err(CliError::Refused(format!(
                "rollout '{}' has a workloadRef without a name",
                args.name
            )));
        };
        (
            ctx.dynamic("apps", "v1", "Deployment", "deployments"),
            deploy.to_string(),
            "deployment",
        )
    } else {
        (rollouts, args.name.clone(), "rollout")
    };
    update(&api, &name, container, image, |e| {
        if kind == "rollout" {
            rollout_error(e, &name, &ctx.namespace)
        } else {
            e.into()
        }
    })
    .await?;
    out.line(&format!("{kind} \"{name}\" image updated"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ro() -> Value {
        json!({"spec": {"template": {"spec": {
            "initContainers": [{"name": "init", "image": "busybox:1"}],
            "containers": [{"name": "app", "image": "app:v1"}, {"name": "proxy", "image": "envoy:1"}]
        }}}})
    }

    #[test]
    fn one_container() {
        let mut v = ro();
        assert!(set_image(&mut v, "proxy", "envoy:2").is_ok());
        assert_eq!(
            v["spec"]["template"]["spec"]["containers"][1]["image"],
            "envoy:2"
        );
        assert_eq!(
            v["spec"]["template"]["spec"]["containers"][0]["image"],
            "app:v1"
        );
        assert!(set_image(&mut v, "init", "busybox:2").is_ok());
        assert_eq!(
            v["spec"]["template"]["spec"]["initContainers"][0]["image"],
            "busybox:2"
        );
    }

    #[test]
    fn every_container() {
        let mut v = ro();
        assert!(set_image(&mut v, "*", "x:9").is_ok());
        for p in ["/initContainers/0", "/containers/0", "/containers/1"] {
            assert_eq!(
                v.pointer(&format!("/spec/template/spec{p}/image")),
                Some(&json!("x:9"))
            );
        }
    }

    #[test]
    fn unknown_container() {
        let e = set_image(&mut ro(), "nope", "x")
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("unable to find container named \"nope\"")
        );
        let e = parse_assignment("app").err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("expected CONTAINER=IMAGE (or *=IMAGE), got 'app'")
        );
        assert_eq!(parse_assignment("*=a:1").ok(), Some(("*", "a:1")));
    }
}
