//! Traffic routers: one interface, one adapter per router, all in the shell. The planner decides
//! the weights (`rollout::effects::TrafficPlan`); an adapter reads its router's own objects
//! (as dynamic objects: no mesh SDKs), changes only what differs, through the one writer, and
//! says what it found. Adapters never decide weights.
//!
//! Adding a router: a module here implementing [`Router`], and a line in [`routers_for`].

pub mod gatewayapi;
pub mod istio;

use kube::api::{ApiResource, DynamicObject};
use kube::{Api, Client};

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

    /// Read a namespaced object of `resource`; `Ok(None)` when it does not exist.
    pub async fn get(
        &self,
        resource: &ApiResource,
        name: &str,
    ) -> Result<Option<DynamicObject>, RouterError> {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), self.namespace, resource);
        match api.get_opt(name).await {
            Ok(o) => Ok(o),
            Err(kube::Error::Api(s)) if s.code == 404 => Err(RouterError::NotInstalled {
                kind: resource.kind.clone(),
                api_version: resource.api_version.clone(),
            }),
            Err(e) => Err(e.into()),
        }
    }
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

/// The routers a Rollout's `trafficRouting` names that this version drives.
pub fn routers_for(routing: &RolloutTrafficRouting) -> Vec<Box<dyn Router>> {
    let mut out: Vec<Box<dyn Router>> = Vec::new();
    if routing.istio.is_some() {
        out.push(Box::new(istio::Istio));
    }
    if routing
        .plugins
        .as_ref()
        .is_some_and(|p| p.contains_key(gatewayapi::PLUGIN_KEY))
    {
        out.push(Box::new(gatewayapi::GatewayApi));
    }
    out
}
