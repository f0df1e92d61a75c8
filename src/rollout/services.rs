//! The Services a Rollout names (reference §1.9; Argo's `rollout/service.go`, the Service
//! controller of `service/service.go` and `ValidateService`): which ones it names, whether they
//! can be used (missing, selecting labels the pods lack, managed by another Rollout →
//! `InvalidSpec` with Argo's messages), pointing one at a ReplicaSet through the
//! `rollouts-pod-template-hash` selector with the `managed-by-rollouts` annotation
//! (`SwitchService` event), the canary's stable and canary Services, and releasing a Service the
//! Rollout no longer names. Pure.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Service;

use crate::api::consts::*;
use crate::api::rollout::Rollout;
use crate::rollout::ctx::Ctx;
use crate::rollout::effects::ServiceChange;
use crate::rollout::observed::RsExt;
use crate::rollout::validation::{FieldError, invalid, quoted};

/// The Services the Rollout names, each with its field path, in Argo's order
/// (`getReferencedServices`): active then preview; stable, canary, ping, pong.
pub fn named(ro: &Rollout) -> Vec<(&'static str, String)> {
    let mut out: Vec<(&'static str, String)> = Vec::new();
    let mut push = |path: &'static str, name: Option<&String>| {
        if let Some(n) = name.filter(|n| !n.is_empty()) {
            out.push((path, n.clone()));
        }
    };
    if let Some(bg) = &ro.spec.strategy.blue_green {
        push(
            "spec.strategy.blueGreen.activeService",
            Some(&bg.active_service),
        );
        push(
            "spec.strategy.blueGreen.previewService",
            bg.preview_service.as_ref(),
        );
    } else if let Some(c) = &ro.spec.strategy.canary {
        push(
            "spec.strategy.canary.stableService",
            c.stable_service.as_ref(),
        );
        push(
            "spec.strategy.canary.canaryService",
            c.canary_service.as_ref(),
        );
        if let Some(pp) = &c.ping_pong {
            push(
                "spec.strategy.canary.pingPong.pingService",
                Some(&pp.ping_service),
            );
            push(
                "spec.strategy.canary.pingPong.pongService",
                Some(&pp.pong_service),
            );
        }
    }
    out
}

/// The Service called `name`, if it exists.
pub fn find<'a>(services: &'a [Service], name: &str) -> Option<&'a Service> {
    services
        .iter()
        .find(|s| s.metadata.name.as_deref() == Some(name))
}

/// The pod-template hash a Service selects (Argo's `GetRolloutSelectorLabel`), "" when none.
pub fn selector_hash(svc: Option<&Service>) -> String {
    svc.and_then(|s| s.spec.as_ref())
        .and_then(|s| s.selector.as_ref())
        .and_then(|s| s.get(LABEL_POD_TEMPLATE_HASH))
        .cloned()
        .unwrap_or_default()
}

fn managed_by(svc: &Service) -> Option<&str> {
    svc.metadata
        .annotations
        .as_ref()?
        .get(ANNOTATION_MANAGED_BY_ROLLOUTS)
        .map(String::as_str)
}

/// The first named Service that does not exist (Argo's `getReferencedService`, reported before
/// any template is looked up).
pub fn missing(ro: &Rollout, services: &[Service]) -> Option<FieldError> {
    named(ro)
        .into_iter()
        .find(|(_, n)| find(services, n).is_none())
        .map(|(path, n)| {
            invalid(
                path,
                quoted(&n),
                format!("services {} not found", quoted(&n)),
            )
        })
}

/// Argo's `ValidateService` over every named Service: its selector may only ask for labels the
/// pod template has (besides the hash), and it must not be managed by another Rollout.
pub fn validate(ro: &Rollout, services: &[Service]) -> Option<FieldError> {
    let labels: BTreeMap<String, String> = ro
        .spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let me = ro.metadata.name.as_deref().unwrap_or("");
    for (path, name) in named(ro) {
        let Some(svc) = find(services, &name) else {
            continue;
        };
        let selector = svc
            .spec
            .as_ref()
            .and_then(|s| s.selector.clone())
            .unwrap_or_default();
        for (k, v) in &selector {
            if k != LABEL_POD_TEMPLATE_HASH && labels.get(k) != Some(v) {
                let msg = format!(
                    "Service {} has unmatch label {} in rollout",
                    quoted(&name),
                    quoted(k)
                );
                return Some(invalid(path, quoted(&name), msg));
            }
        }
        if managed_by(svc).is_some_and(|m| m != me) {
            let msg = format!("Service {} is managed by another Rollout", quoted(&name));
            return Some(invalid(path, quoted(&name), msg));
        }
    }
    None
}

/// Argo's `IsReplicaSetAvailable`: scaled up and every desired pod available.
pub fn fully_available(rs: &ReplicaSet) -> bool {
    let want = rs.spec_replicas();
    want != 0 && rs.available() != 0 && want <= rs.available()
}

impl Ctx<'_> {
    /// Argo's `switchServiceSelector`: point Service `name` at `hash` (and mark it ours),
    /// recording `SwitchService`. Returns the hash it now selects. No write when it already does
    /// and is marked.
    pub fn switch_service(&mut self, name: &str, hash: &str) -> String {
        let Some(svc) = find(self.obs.services, name) else {
            return String::new();
        };
        let old = selector_hash(Some(svc));
        let marked = managed_by(svc).is_some();
        if old == hash && marked {
            return old;
        }
        if let Some(prior) = self.plan.services.iter_mut().find(|c| c.name == name) {
            prior.hash = Some(hash.to_string());
        } else {
            self.plan.services.push(ServiceChange {
                name: name.to_string(),
                hash: Some(hash.to_string()),
                annotate: !marked,
            });
        }
        self.event(
            false,
            REASON_SWITCH_SERVICE,
            format!("Switched selector for service '{name}' from '{old}' to '{hash}'"),
        );
        hash.to_string()
    }

    /// Argo's `ensureSVCTargets`: point Service `name` at `rs` once that is safe — a Service
    /// being adopted (no managed-by annotation yet) waits for the ReplicaSet to be fully
    /// available, any other for at least one available pod.
    pub fn ensure_service_targets(&mut self, name: Option<&str>, rs: Option<&ReplicaSet>) {
        let (Some(name), Some(rs)) = (name.filter(|n| !n.is_empty()), rs) else {
            return;
        };
        let Some(svc) = find(self.obs.services, name) else {
            return;
        };
        let desired = rs.hash().unwrap_or("").to_string();
        if selector_hash(Some(svc)) == desired {
            return;
        }
        if managed_by(svc).is_none() && !fully_available(rs) {
            return;
        }
        if rs.available() == 0 {
            return;
        }
        self.switch_service(name, &desired);
    }

    /// The Services whose `managed-by-rollouts` annotation names this Rollout but that it no
    /// longer names lose the hash selector and the annotation (Argo's Service controller).
    pub fn release_unnamed_services(&mut self) {
        let me = self.ro.metadata.name.clone().unwrap_or_default();
        let named: Vec<String> = named(self.ro).into_iter().map(|(_, n)| n).collect();
        for svc in self.obs.services {
            let name = svc.metadata.name.clone().unwrap_or_default();
            if managed_by(svc) == Some(me.as_str()) && !named.contains(&name) {
                self.plan.services.push(ServiceChange {
                    name,
                    hash: None,
                    annotate: false,
                });
            }
        }
    }

    /// Argo's `reconcileStableAndCanaryService` for a canary without traffic routing: the stable
    /// Service follows the stable ReplicaSet, the canary Service the new one — or the stable one
    /// once aborted.
    pub fn reconcile_canary_services(&mut self) {
        let Some(c) = self.ro.spec.strategy.canary.as_ref() else {
            return;
        };
        let (stable_svc, canary_svc) = (c.stable_service.clone(), c.canary_service.clone());
        let routed = c.traffic_routing.is_some();
        let stable = self.rs.stable_rs;
        self.ensure_service_targets(stable_svc.as_deref(), stable);
        let target = if self.aborted() && !routed {
            stable
        } else {
            self.rs.new_rs
        };
        self.ensure_service_targets(canary_svc.as_deref(), target);
    }
}
