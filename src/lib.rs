//! Sluice: a progressive-delivery controller for Kubernetes, drop-in compatible with Argo Rollouts.
//!
//! Layers depend downward only: `cli` and `controller` → `rollout` → `api`.

pub mod analysis;
pub mod api;
#[cfg(test)]
mod argocd_health_tests;
pub mod cli;
pub mod controller;
pub mod metrics;
pub mod rollout;
pub mod time;
