//! The snapshot the planner sees: the Rollout and the ReplicaSets it owns, read from caches.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::ReplicaSet;

use crate::api::consts::*;
use crate::api::rollout::Rollout;
use crate::rollout::replicas::RsCounts;

/// Everything `plan` needs; no handles, no clocks.
#[derive(Clone, Debug)]
pub struct Observed<'a> {
    pub rollout: &'a Rollout,
    /// ReplicaSets whose controller owner reference is this Rollout.
    pub replica_sets: &'a [ReplicaSet],
}

/// Read-only accessors over a ReplicaSet, with Kubernetes' defaults applied.
pub trait RsExt {
    fn name(&self) -> &str;
    fn hash(&self) -> Option<&str>;
    fn spec_replicas(&self) -> i32;
    fn status_replicas(&self) -> i32;
    fn ready(&self) -> i32;
    fn available(&self) -> i32;
    fn revision(&self) -> Option<i64>;
    fn annotations(&self) -> BTreeMap<String, String>;
    fn created(&self) -> Option<Timestamp>;
    fn deleting(&self) -> bool;
    fn counts(&self) -> RsCounts;
}

impl RsExt for ReplicaSet {
    fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or("")
    }
    fn hash(&self) -> Option<&str> {
        self.metadata
            .labels
            .as_ref()?
            .get(LABEL_POD_TEMPLATE_HASH)
            .map(String::as_str)
    }
    fn spec_replicas(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }
    fn status_replicas(&self) -> i32 {
        self.status.as_ref().map_or(0, |s| s.replicas)
    }
    fn ready(&self) -> i32 {
        self.status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0)
    }
    fn available(&self) -> i32 {
        self.status
            .as_ref()
            .and_then(|s| s.available_replicas)
            .unwrap_or(0)
    }
    fn revision(&self) -> Option<i64> {
        self.metadata
            .annotations
            .as_ref()?
            .get(ANNOTATION_REVISION)?
            .parse()
            .ok()
    }
    fn annotations(&self) -> BTreeMap<String, String> {
        self.metadata.annotations.clone().unwrap_or_default()
    }
    fn created(&self) -> Option<Timestamp> {
        self.metadata.creation_timestamp.as_ref().map(|t| t.0)
    }
    fn deleting(&self) -> bool {
        self.metadata.deletion_timestamp.is_some()
    }
    fn counts(&self) -> RsCounts {
        RsCounts {
            spec: self.spec_replicas(),
            status_replicas: self.status_replicas(),
            available: self.available(),
        }
    }
}
