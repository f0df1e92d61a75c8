//! Traffic routers: one interface, one adapter per router, all in the shell. The planner decides
//! the weights (`rollout::effects::TrafficPlan`); an adapter reads its router's own objects
//! (as dynamic objects: no mesh SDKs), changes only what differs, through the one writer, and
//! says what it found. Adapters never decide weights.
//!
//! Adding a router: a module here implementing [`Router`], and a line in [`routers_for`].

pub mod alb;
pub mod ambassador;
pub mod apisix;
pub mod gatewayapi;
pub mod istio;
pub mod nginx;
pub mod smi;
pub mod traefik;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::events::{Event, EventType};
use kube::{Api, Client, Resource};
use serde_json::Value;

use super::Error;
use super::write::Writer;
use crate::api::rollout::{Rollout, RolloutTrafficRouting};
use crate::rollout::effects::TrafficPlan;

/// A boxed future, for the object-safe trait.
pub type RouterFuture<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, RouterError>> + Send + 'a>>;

/// Why a router could not be brought to the plan.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    /// The object the Rollout names does not exist.
    #[error("{kind} \"{name}\" not found")]
    NotFound { kind: String, name: String },
    /// The router's kind is not served by the API server (its CRD is not installed).
    #[error("{kind} ({api_version}) is not served by the API server: is its CRD installed?")]
    NotInstalled { kind: String, api_version: String },
    /// The object exists but does not have the shape the router needs.
    #[error("{kind} \"{name}\": {reason}")]
    Malformed {
        kind: String,
        name: String,
        reason: String,
    },
    /// The object exists but another object controls it (Argo: "Rollout does not own ...").
    #[error("{kind} \"{name}\" is not controlled by this Rollout")]
    NotOwned { kind: String, name: String },
    /// A write or read failed.
    #[error(transparent)]
    Api(#[from] Error),
}

impl From<kube::Error> for RouterError {
    fn from(e: kube::Error) -> Self {
        RouterError::Api(Error::Kube(e))
    }
}

/// What a router needs to read and write.
pub struct RouterCtx<'a> {
    /// Reads only.
    pub client: &'a Client,
    /// Every write.
    pub writer: &'a Writer,
    pub rollout: &'a Rollout,
    pub namespace: &'a str,
    /// The `split.smi-spec.io` version (`--traffic-split-api-version`).
    pub smi_version: smi::SmiVersion,
}

impl RouterCtx<'_> {
    /// The routing block of the Rollout's canary.
    pub fn routing(&self) -> Option<&RolloutTrafficRouting> {
        self.rollout
            .spec
            .strategy
            .canary
            .as_ref()?
            .traffic_routing
            .as_ref()
    }

    /// Read a namespaced object of `resource` in the Rollout's namespace; `Ok(None)` when it
    /// does not exist.
    pub async fn get(
        &self,
        resource: &ApiResource,
        name: &str,
    ) -> Result<Option<DynamicObject>, RouterError> {
        self.get_in(resource, self.namespace, name).await
    }

    /// Read a namespaced object of `resource` in namespace `ns`; `Ok(None)` when it does not
    /// exist.
    pub async fn get_in(
        &self,
        resource: &ApiResource,
        ns: &str,
        name: &str,
    ) -> Result<Option<DynamicObject>, RouterError> {
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), ns, resource);
        Ok(api.get_opt(name).await?)
    }

    /// Record a normal event against the Rollout (best-effort, as every event).
    pub async fn event(&self, reason: &str, message: String) {
        tracing::info!(reason, "{message}");
        let ev = Event {
            type_: EventType::Normal,
            reason: reason.into(),
            note: Some(message),
            action: "Reconcile".into(),
            secondary: None,
        };
        self.writer.event(&self.rollout.object_ref(&()), &ev).await;
    }
}

/// Is `meta`'s controller the Rollout (by UID, as `metav1.IsControlledBy`)?
pub fn is_controlled_by(meta: &ObjectMeta, ro: &Rollout) -> bool {
    let Some(uid) = ro.metadata.uid.as_deref() else {
        return false;
    };
    meta.owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && o.uid == uid)
}

/// The RFC 7386 merge patch that turns `cur` into `des` (what Argo's `CreateTwoWayMergePatch`
/// computes): changed keys of objects recursively, removed keys as `null`, anything else —
/// lists included — whole. `None` when they are equal.
pub fn merge_diff(cur: &Value, des: &Value) -> Option<Value> {
    if cur == des {
        return None;
    }
    let (Value::Object(c), Value::Object(d)) = (cur, des) else {
        return Some(des.clone());
    };
    let mut out = serde_json::Map::new();
    for (k, dv) in d {
        match c.get(k) {
            Some(cv) => {
                if let Some(p) = merge_diff(cv, dv) {
                    out.insert(k.clone(), p);
                }
            }
            None if dv.is_null() => {}
            None => {
                out.insert(k.clone(), dv.clone());
            }
        }
    }
    for (k, cv) in c {
        if !d.contains_key(k) && !cv.is_null() {
            out.insert(k.clone(), Value::Null);
        }
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

/// One traffic router.
pub trait Router: Send + Sync {
    /// The router's name as the spec spells it (`istio`, `nginx`, `smi`, ...).
    fn name(&self) -> &'static str;
    /// Bring the router's objects to `plan`, writing only what differs. Returns how many
    /// objects were written.
    fn apply<'a>(&'a self, cx: &'a RouterCtx<'a>, plan: &'a TrafficPlan)
    -> RouterFuture<'a, usize>;
}

/// The routers a Rollout's `trafficRouting` names that this version drives, in Argo's order.
pub fn routers_for(routing: &RolloutTrafficRouting) -> Vec<Box<dyn Router>> {
    let mut out: Vec<Box<dyn Router>> = Vec::new();
    if routing.istio.is_some() {
        out.push(Box::new(istio::Istio));
    }
    if routing.nginx.is_some() {
        out.push(Box::new(nginx::Nginx));
    }
    if routing.alb.is_some() {
        out.push(Box::new(alb::Alb));
    }
    if routing.smi.is_some() {
        out.push(Box::new(smi::Smi));
    }
    if routing
        .plugins
        .as_ref()
        .is_some_and(|p| p.contains_key(gatewayapi::PLUGIN_KEY))
    {
        out.push(Box::new(gatewayapi::GatewayApi));
    }
    if routing.traefik.is_some() {
        out.push(Box::new(traefik::Traefik));
    }
    if routing.apisix.is_some() {
        out.push(Box::new(apisix::Apisix));
    }
    if routing.ambassador.is_some() {
        out.push(Box::new(ambassador::Ambassador));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    use serde_json::json;

    #[test]
    fn each_named_router_is_driven() {
        let routing: RolloutTrafficRouting = serde_json::from_value(json!({
            "istio": {"virtualService": {"name": "vs"}},
            "nginx": {"stableIngress": "ing"},
            "smi": {},
            "alb": {"ingress": "ing", "servicePort": 80}
        }))
        .unwrap();
        let names: Vec<_> = routers_for(&routing).iter().map(|r| r.name()).collect();
        assert_eq!(names, ["istio", "nginx", "alb", "smi"]);
        let only_smi: RolloutTrafficRouting = serde_json::from_value(json!({"smi": {}})).unwrap();
        let names: Vec<_> = routers_for(&only_smi).iter().map(|r| r.name()).collect();
        assert_eq!(names, ["smi"]);
    }

    #[test]
    fn merge_diff_is_rfc7386_between_the_two() {
        let cur = json!({"a": 1, "b": {"c": 2, "d": 3}, "l": [1, 2], "gone": "x"});
        let des = json!({"a": 1, "b": {"c": 2, "d": 4}, "l": [1], "new": true});
        assert_eq!(
            merge_diff(&cur, &des).unwrap(),
            json!({"b": {"d": 4}, "l": [1], "new": true, "gone": null})
        );
        assert_eq!(merge_diff(&cur, &cur), None);
        assert_eq!(merge_diff(&json!(1), &json!("1")), Some(json!("1")));
    }

    #[test]
    fn controlled_by_means_the_controller_reference_with_the_rollouts_uid() {
        let ro: Rollout = serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "r", "uid": "u-1"},
            "spec": {"selector": {}, "template": {}}
        }))
        .unwrap();
        let owned = |uid: &str, controller: Option<bool>| ObjectMeta {
            owner_references: Some(vec![OwnerReference {
                api_version: "argoproj.io/v1alpha1".into(),
                kind: "Rollout".into(),
                name: "r".into(),
                uid: uid.into(),
                controller,
                block_owner_deletion: None,
            }]),
            ..ObjectMeta::default()
        };
        assert!(is_controlled_by(&owned("u-1", Some(true)), &ro));
        assert!(!is_controlled_by(&owned("u-1", None), &ro));
        assert!(!is_controlled_by(&owned("u-2", Some(true)), &ro));
        assert!(!is_controlled_by(&ObjectMeta::default(), &ro));
    }
}
