//! The pure planning core: no kube client, no async, no clock reads. `plan(&Observed, now)`
//! returns every effect of one reconcile. The stages, bottom up: `observed` (the snapshot),
//! `classify` (which ReplicaSet is which), `ctx` (the state a reconcile carries), the shared
//! stages `revision`, `restart` and `analysis`, the strategy (`canary`; blue-green will stand
//! beside it), and `status` (every condition, phase and message), all writing one `effects::Plan`.

pub mod affinity;
pub mod analysis;
pub mod bluegreen;
pub mod canary;
pub mod classify;
pub mod ctx;
pub mod delay;
pub mod duration;
pub mod effects;
pub mod ephemeral;
pub mod hash;
pub mod observed;
pub mod references;
pub mod replicas;
pub mod restart;
pub mod revision;
pub mod sanitize;
pub mod services;
pub mod status;
pub mod support;
pub mod validation;

use std::time::Duration;

use jiff::Timestamp;

pub use effects::Plan;
pub use observed::Observed;

use crate::analysis::templates::not_found;
use crate::api::consts::REASON_ROLLOUT_ADDED_TO_INFORMER;
use crate::api::rollout::{Rollout, RolloutStatus};
use classify::{adoptions, name_taken};
use ctx::Ctx;
use effects::PlannedEvent;
use observed::referenced_templates;
use status::{check_paused_conditions, plan_invalid};
use validation::{invalid_spec_message, validate};

/// Plan one reconcile of `obs.rollout` at time `now`.
pub fn plan(obs: &Observed, now: Timestamp) -> Plan {
    let mut p = plan_reconcile(obs, now);
    // Once per new Rollout: the plans that write nothing but an adoption or the replicas default
    // come before its first status write.
    if p.adopt.is_empty() && p.default_replicas.is_none() {
        added_to_informer(obs.rollout, &mut p);
    }
    p
}

fn plan_reconcile(obs: &Observed, now: Timestamp) -> Plan {
    let ro = obs.rollout;
    let prev = ro.status.clone().unwrap_or_default();
    let generation = ro.metadata.generation.unwrap_or(0).to_string();

    // Orphans are claimed first, whatever the spec says (Argo claims before it syncs).
    let adopt = adoptions(ro, obs.orphans);
    if !adopt.is_empty() {
        return Plan {
            adopt,
            requeue_after: Some(Duration::from_secs(1)),
            ..Plan::default()
        };
    }
    // Argo's `syncHandler` defaults `spec.replicas` to 1 in a write of its own, before anything
    // else: an HPA reads the `/scale` subresource, which has no replicas otherwise.
    if ro.spec.replicas.is_none() {
        return Plan {
            default_replicas: Some(1),
            ..Plan::default()
        };
    }
    if let Some(msg) = unrunnable(obs) {
        return plan_invalid(ro, &prev, &generation, &msg, now);
    }
    let cx = Ctx::new(obs, prev, generation, now);
    if cx.prev.observed_generation.as_deref() == Some(cx.generation.as_str())
        && let Some(p) = check_paused_conditions(ro, &cx.prev, cx.attempt(), now)
    {
        return p;
    }
    if name_taken(ro, &cx.rs, obs.same_name) {
        return collision(ro, &cx.prev);
    }
    if ro.spec.strategy.blue_green.is_some() {
        bluegreen::plan(cx)
    } else {
        canary::plan(cx)
    }
}

/// Argo records `RolloutAddedToInformer` whenever a Rollout enters its informer. Sluice records
/// it once, for a Rollout no controller has reconciled yet (no `observedGeneration`), so that a
/// controller restart does not write one event per Rollout.
fn added_to_informer(ro: &Rollout, plan: &mut Plan) {
    if ro
        .status
        .as_ref()
        .is_some_and(|s| s.observed_generation.is_some())
    {
        return;
    }
    let msg = format!(
        "Rollout resource added to informer: {}/{}",
        ro.metadata.namespace.as_deref().unwrap_or(""),
        ro.metadata.name.as_deref().unwrap_or("")
    );
    plan.events.insert(
        0,
        PlannedEvent {
            warning: false,
            reason: REASON_ROLLOUT_ADDED_TO_INFORMER.into(),
            message: msg,
        },
    );
}

/// Why the spec cannot run at all, as the InvalidSpec message, in Argo's order: static
/// validation, the part this version refuses loudly (workloadRef), missing Services, missing
/// analysis templates, then the referenced Services and templates themselves.
fn unrunnable(obs: &Observed) -> Option<String> {
    let ro = obs.rollout;
    let name = ro.metadata.name.as_deref().unwrap_or("");
    // Argo resolves the workload reference before it validates, and refuses a template beside
    // it (`templateref.go`: any label, annotation or pod spec makes it non-empty).
    if ro.spec.workload_ref.is_some() && !empty_template(ro) {
        return Some(format!(
            "The Rollout \"{name}\" is invalid: template must be empty for workload reference rollout"
        ));
    }
    let errors = validate(ro);
    if let Some(msg) = invalid_spec_message(ro, &errors) {
        return Some(msg);
    }
    if let Some(w) = &ro.spec.workload_ref {
        // Without resolving the reference the template is empty: creating a ReplicaSet from it
        // would fail on every reconcile and the rollout would never report why.
        return Some(format!(
            "The Rollout \"{name}\" is invalid: spec.workloadRef: Unsupported value: \"{}/{}\": this version of Sluice does not resolve workload references",
            w.kind.as_deref().unwrap_or(""),
            w.name.as_deref().unwrap_or("")
        ));
    }
    if let Some(e) = services::missing(ro, obs.services) {
        return Some(format!("The Rollout \"{name}\" is invalid: {e}"));
    }
    if let Some(msg) = missing_template(obs) {
        return Some(format!("The Rollout \"{name}\" is invalid: {msg}"));
    }
    // Argo's `GetReferencedVirtualServices`, after the templates.
    if let Some((path, resource, n)) = obs.missing_routers.first() {
        let e = validation::invalid(
            path,
            validation::quoted(n),
            format!("{resource} {} not found", validation::quoted(n)),
        );
        return Some(format!("The Rollout \"{name}\" is invalid: {e}"));
    }
    if let Some(e) = services::validate(ro, obs.services) {
        return Some(format!("The Rollout \"{name}\" is invalid: {e}"));
    }
    references::validate_references(ro, obs.templates, obs.cluster_templates)
        .map(|e| format!("The Rollout \"{name}\" is invalid: {e}"))
}

/// Argo's `RolloutSpec.EmptyTemplate`: no labels, no annotations, an all-default pod spec.
fn empty_template(ro: &Rollout) -> bool {
    let Some(t) = ro.spec.template.as_ref() else {
        return true;
    };
    let meta_empty = t.metadata.as_ref().is_none_or(|m| {
        m.labels.as_ref().is_none_or(|l| l.is_empty())
            && m.annotations.as_ref().is_none_or(|a| a.is_empty())
    });
    meta_empty && t.spec.as_ref().is_none_or(|s| *s == Default::default())
}

/// Argo's reference validation: every analysis template the Rollout names must exist.
fn missing_template(obs: &Observed) -> Option<String> {
    let (ns, cluster) = referenced_templates(obs.rollout);
    let named = |n: &str| {
        obs.templates
            .iter()
            .any(|t| t.metadata.name.as_deref() == Some(n))
    };
    if let Some(n) = ns.iter().find(|n| !named(n)) {
        return Some(not_found(n, false));
    }
    let named = |n: &str| {
        obs.cluster_templates
            .iter()
            .any(|t| t.metadata.name.as_deref() == Some(n))
    };
    if let Some(n) = cluster.iter().find(|n| !named(n)) {
        return Some(not_found(n, true));
    }
    None
}

/// The new revision's name belongs to a ReplicaSet that is not ours: bump
/// `status.collisionCount` so the next hash, and name, differ (Argo). Nothing else is written.
fn collision(ro: &Rollout, prev: &RolloutStatus) -> Plan {
    let mut st = prev.clone();
    st.collision_count = Some(
        ro.status
            .as_ref()
            .and_then(|s| s.collision_count)
            .unwrap_or(0)
            + 1,
    );
    Plan {
        status: Some(st),
        ..Plan::default()
    }
}

#[cfg(test)]
mod duration_tests;
#[cfg(test)]
pub mod sim;
#[cfg(test)]
mod stage_tests;
#[cfg(test)]
mod tests;
