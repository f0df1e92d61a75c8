//! Traffic-routing configuration of a canary Rollout (`spec.strategy.canary.trafficRouting`):
//! one block per router Argo Rollouts supports, plus managed routes and plugins.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::schema::free_form_object;
// ---------------------------------------------------------------------------------------------
// Traffic routing
// ---------------------------------------------------------------------------------------------

/// Traffic routing configuration: one provider (or plugins), plus managed routes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutTrafficRouting {
    /// Istio VirtualService (and optionally DestinationRule) weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub istio: Option<IstioTrafficRouting>,
    /// NGINX Ingress canary annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nginx: Option<NginxTrafficRouting>,
    /// AWS Load Balancer Controller action annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alb: Option<ALBTrafficRouting>,
    /// SMI TrafficSplit weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smi: Option<SMITrafficRouting>,
    /// Ambassador canary Mappings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ambassador: Option<AmbassadorTrafficRouting>,
    /// AWS App Mesh route weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_mesh: Option<AppMeshTrafficRouting>,
    /// Traefik weighted TraefikService.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traefik: Option<TraefikTrafficRouting>,
    /// Routes the controller may create for header and mirror steps, in precedence order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_routes: Option<Vec<MangedRoutes>>,
    /// Apache APISIX ApisixRoute weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apisix: Option<ApisixTrafficRouting>,
    /// Traffic router plugin configurations, by plugin name; free-form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_object")]
    pub plugins: Option<BTreeMap<String, Value>>,
    /// Total traffic weight that step weights are relative to. Unset means 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_traffic_weight: Option<i32>,
}

/// A managed route (the Go type name carries upstream's spelling).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MangedRoutes {
    /// Name of the route.
    pub name: String,
}

/// Correctly spelled alias of [`MangedRoutes`].
pub type ManagedRoute = MangedRoutes;

/// Istio traffic routing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IstioTrafficRouting {
    /// The VirtualService whose route weights are edited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_service: Option<IstioVirtualService>,
    /// The DestinationRule whose subsets are pointed at the canary and stable pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_rule: Option<IstioDestinationRule>,
    /// Several VirtualServices whose route weights are edited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_services: Option<Vec<IstioVirtualService>>,
}

/// An Istio VirtualService and the routes in it to edit.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IstioVirtualService {
    /// Name of the VirtualService.
    pub name: String,
    /// Names of the HTTP routes to edit. Unset requires exactly one HTTP route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routes: Option<Vec<String>>,
    /// TLS routes to edit. Unset requires exactly one TLS route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_routes: Option<Vec<TLSRoute>>,
    /// TCP routes to edit. Unset requires exactly one TCP route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_routes: Option<Vec<TCPRoute>>,
}

/// Identifies a TLS route of a VirtualService.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TLSRoute {
    /// Port the route matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    /// SNI hosts the route matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni_hosts: Option<Vec<String>>,
}

/// Identifies a TCP route of a VirtualService.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TCPRoute {
    /// Port the route matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
}

/// An Istio DestinationRule whose subsets follow the canary and stable pod hashes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IstioDestinationRule {
    /// Name of the DestinationRule.
    pub name: String,
    /// Subset that selects the canary pods.
    pub canary_subset_name: String,
    /// Subset that selects the stable pods.
    pub stable_subset_name: String,
    /// Other subsets, left untouched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_subset_names: Option<Vec<String>>,
}

/// NGINX Ingress traffic routing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NginxTrafficRouting {
    /// Annotation prefix the ingress controller is configured with. Unset means
    /// `nginx.ingress.kubernetes.io`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotation_prefix: Option<String>,
    /// The stable Ingress, in the rollout's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_ingress: Option<String>,
    /// Extra annotations for the generated canary Ingress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_ingress_annotations: Option<BTreeMap<String, String>>,
    /// Several stable Ingresses, in the rollout's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_ingresses: Option<Vec<String>>,
    /// Annotations for the canary Ingress that override the generated ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_ingress_annotations: Option<BTreeMap<String, String>>,
}

/// AWS Load Balancer Controller traffic routing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ALBTrafficRouting {
    /// The Ingress, in the rollout's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<String>,
    /// Service port the Ingress action routes to.
    pub service_port: i32,
    /// Service in the Ingress that the action is attached to. Unset means the stable Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_service: Option<String>,
    /// Annotation prefix the controller is configured with. Unset means
    /// `alb.ingress.kubernetes.io`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotation_prefix: Option<String>,
    /// Target-group stickiness.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stickiness_config: Option<StickinessConfig>,
    /// Several Ingresses, in the rollout's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingresses: Option<Vec<String>>,
}

/// Duration-based target-group stickiness.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StickinessConfig {
    /// Turn stickiness on.
    pub enabled: bool,
    /// How long a client sticks to a target group, in seconds.
    pub duration_seconds: i64,
}

/// SMI traffic routing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SMITrafficRouting {
    /// Service clients talk to. Unset means the stable Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_service: Option<String>,
    /// Name of the TrafficSplit. Unset means the rollout's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_split_name: Option<String>,
}

/// Ambassador traffic routing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AmbassadorTrafficRouting {
    /// Mappings for which canary Mappings are created.
    pub mappings: Vec<String>,
}

/// AWS App Mesh traffic routing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppMeshTrafficRouting {
    /// The virtual service (and its virtual router) whose routes are edited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_service: Option<AppMeshVirtualService>,
    /// The virtual nodes that receive canary and stable traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_node_group: Option<AppMeshVirtualNodeGroup>,
}

/// An App Mesh virtual service and the routes to edit.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppMeshVirtualService {
    /// Name of the virtual service.
    pub name: String,
    /// Names of the HTTP routes to edit. Unset requires exactly one route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routes: Option<Vec<String>>,
}

/// The canary and stable virtual nodes of App Mesh routing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppMeshVirtualNodeGroup {
    /// Virtual node whose selector follows the canary pod hash.
    pub canary_virtual_node_ref: AppMeshVirtualNodeReference,
    /// Virtual node whose selector follows the stable pod hash.
    pub stable_virtual_node_ref: AppMeshVirtualNodeReference,
}

/// Reference to an App Mesh VirtualNode.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppMeshVirtualNodeReference {
    /// Name of the VirtualNode.
    pub name: String,
}

/// Traefik traffic routing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TraefikTrafficRouting {
    /// Name of the weighted TraefikService.
    pub weighted_traefik_service_name: String,
}

/// Apache APISIX traffic routing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApisixTrafficRouting {
    /// The ApisixRoute to edit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<ApisixRoute>,
}

/// An ApisixRoute and the rules in it to edit.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApisixRoute {
    /// Name of the ApisixRoute.
    pub name: String,
    /// Names of the HTTP rules to edit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<String>>,
}
