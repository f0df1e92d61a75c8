//! What this version of Sluice accepts but does not act on yet. Every such field of a spec is
//! named in the Rollout's `NotImplemented` condition (and a warning event), with what happens
//! instead, so nobody believes traffic is shifted, a Service is switched or a gate is checked
//! when it is not. `workloadRef`, which cannot run at all yet, is refused as `InvalidSpec`
//! instead (see `rollout::plan`). Keep this list and the README's compatibility
//! section in step.

use crate::api::rollout::{Rollout, RolloutTrafficRouting};

/// One line per field the spec uses that is not acted on, in spec order.
pub fn not_implemented(ro: &Rollout) -> Vec<String> {
    // Blue-green: every field is acted on.
    let Some(c) = ro.spec.strategy.canary.as_ref() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let base = "spec.strategy.canary";
    let routed = c.traffic_routing.as_ref().is_some_and(drives_routing);
    // Managed header and mirror routes are driven for Istio (Argo also has them for ALB and
    // APISIX, whose weights alone are driven here).
    let istio = routed
        && c.traffic_routing
            .as_ref()
            .is_some_and(|t| t.istio.is_some());
    let mut field = |path: String, instead: &str| out.push(format!("{path} ({instead})"));
    if let Some(t) = &c.traffic_routing {
        // Routing is all or nothing: with one router this version does not drive, none is
        // driven and the canary runs by pod ratio.
        let named = if drives_routing(t) {
            Vec::new()
        } else {
            routers(t)
        };
        if named.is_empty() && !drives_routing(t) {
            field(
                format!("{base}.trafficRouting"),
                "traffic is not shifted: each version gets traffic in proportion to its pods",
            );
        }
        for router in named {
            field(
                format!("{base}.trafficRouting.{router}"),
                "traffic is not shifted by the router: each version gets traffic in proportion to its pods, as in a basic canary",
            );
        }
        if t.managed_routes.as_ref().is_some_and(|m| !m.is_empty()) && !istio {
            field(
                format!("{base}.trafficRouting.managedRoutes"),
                "no route is managed",
            );
        }
    }
    if c.ping_pong.is_some() {
        field(
            format!("{base}.pingPong"),
            "the ping and pong Services are not switched",
        );
    }
    if c.dynamic_stable_scale.unwrap_or(false) && !routed {
        field(
            format!("{base}.dynamicStableScale"),
            "the stable ReplicaSet is scaled as in a basic canary",
        );
    }
    for (i, s) in c.steps.iter().flatten().enumerate() {
        let step = format!("{base}.steps[{i}]");
        if s.set_canary_scale.is_some() && !routed {
            field(
                format!("{step}.setCanaryScale"),
                "the canary is scaled by setWeight alone",
            );
        }
        if s.set_header_route.is_some() && !istio {
            field(
                format!("{step}.setHeaderRoute"),
                "no header route is set; the step completes at once",
            );
        }
        if s.set_mirror_route.is_some() && !istio {
            field(
                format!("{step}.setMirrorRoute"),
                "no traffic is mirrored; the step completes at once",
            );
        }
        if s.experiment.is_some() {
            field(
                format!("{step}.experiment"),
                "no Experiment is run; the rollout waits at this step until promoted",
            );
        }
        if s.plugin.is_some() {
            field(
                format!("{step}.plugin"),
                "no step plugin is run; the rollout waits at this step until promoted",
            );
        }
    }
    out
}

/// The routers this version drives (`controller::routers`).
pub const DRIVEN_ROUTERS: &[&str] = &[
    "istio",
    "nginx",
    "smi",
    "alb",
    "traefik",
    "apisix",
    "ambassador",
    "plugins.argoproj-labs/gatewayAPI",
];

/// Does this version drive every router the block names (and at least one)? Only then is the
/// canary traffic-routed; otherwise it runs as a basic canary and `NotImplemented` says why.
pub fn drives_routing(t: &RolloutTrafficRouting) -> bool {
    let named = routers(t);
    !named.is_empty() && named.iter().all(|r| DRIVEN_ROUTERS.contains(r))
}

/// The routers a traffic-routing block names, in the schema's order.
fn routers(t: &RolloutTrafficRouting) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut named = |present: bool, name: &'static str| {
        if present {
            out.push(name);
        }
    };
    named(t.istio.is_some(), "istio");
    named(t.nginx.is_some(), "nginx");
    named(t.alb.is_some(), "alb");
    named(t.smi.is_some(), "smi");
    named(t.ambassador.is_some(), "ambassador");
    named(t.app_mesh.is_some(), "appMesh");
    named(t.traefik.is_some(), "traefik");
    named(t.apisix.is_some(), "apisix");
    // Plugins by name: only the Gateway API plugin is driven (natively); any other is
    // reported as `plugins`.
    for key in t.plugins.iter().flat_map(|p| p.keys()) {
        let name = if key == "argoproj-labs/gatewayAPI" {
            "plugins.argoproj-labs/gatewayAPI"
        } else {
            "plugins"
        };
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}
