//! A deterministic in-memory cluster for planner tests: it applies a `Plan` the way the API
//! server and the ReplicaSet controller would (pods appear and become available as configured)
//! so whole rollouts can be walked step by step without I/O.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{Pod, Service, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};

use crate::api::analysis::{AnalysisRun, AnalysisRunStatus, AnalysisTemplate};
use crate::api::consts::{
    ANNOTATION_EPHEMERAL_METADATA, ANNOTATION_MANAGED_BY_ROLLOUTS, ANNOTATION_REVISION,
    LABEL_POD_TEMPLATE_HASH,
};
use crate::api::rollout::{Rollout, RolloutStatus};
use crate::rollout::Observed;
use crate::rollout::effects::{Plan, PlannedEvent};
use crate::rollout::ephemeral::{apply_changes, pods_needed};
use crate::rollout::observed::RsExt;
use crate::rollout::plan;

/// The seed manifest the project grew from (the project's copy, applied unchanged by the e2e suite).
pub const SEED: &str = include_str!("../../e2e/manifests/seed-rollout.yaml");

/// How pods behave in the simulation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pods {
    /// Every pod is available as soon as it exists.
    Instant,
    /// Pods of ReplicaSets whose template image ends with `:never-ready` never become available.
    NeverReadyTag,
}

pub struct Sim {
    pub ro: Rollout,
    pub rss: Vec<ReplicaSet>,
    pub now: Timestamp,
    pub events: Vec<PlannedEvent>,
    pub pods: Pods,
    pub last: Plan,
    pub writes: usize,
    pub runs: Vec<AnalysisRun>,
    pub templates: Vec<AnalysisTemplate>,
    /// Runs a live read would find deleted.
    pub gone_runs: Vec<String>,
    /// Services of the namespace.
    pub services: Vec<Service>,
    /// Play the ReplicaSet controller's pods too (created from the template as it is then,
    /// listed for the planner as the controller's observe step would).
    pub track_pods: bool,
    pub pod_list: Vec<Pod>,
    serial: i64,
}

impl Sim {
    pub fn new(yaml: &str) -> Sim {
        let mut ro: Rollout =
            serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("bad yaml: {e}"));
        // What the API server would have filled in.
        let m = &mut ro.metadata;
        m.namespace.get_or_insert_with(|| "default".into());
        let uid = format!("uid-{}", m.name.clone().unwrap_or_default());
        m.uid.get_or_insert(uid);
        m.generation.get_or_insert(1);
        Sim {
            ro,
            rss: Vec::new(),
            now: Timestamp::from_second(1_800_000_000).unwrap_or(Timestamp::UNIX_EPOCH),
            events: Vec::new(),
            pods: Pods::Instant,
            last: Plan::default(),
            writes: 0,
            runs: Vec::new(),
            templates: Vec::new(),
            gone_runs: Vec::new(),
            services: Vec::new(),
            track_pods: false,
            pod_list: Vec::new(),
            serial: 0,
        }
    }

    pub fn seed() -> Sim {
        Sim::new(SEED)
    }

    pub fn status(&self) -> RolloutStatus {
        self.ro.status.clone().unwrap_or_default()
    }

    pub fn advance(&mut self, secs: i64) {
        self.now = crate::time::add_seconds(self.now, secs);
    }

    /// Plan at `now` and apply the plan; pods then settle.
    pub fn reconcile(&mut self) -> Plan {
        let listed = self.listed_pods();
        let obs = Observed {
            rollout: &self.ro,
            replica_sets: &self.rss,
            analysis_runs: &self.runs,
            gone_runs: &self.gone_runs,
            templates: &self.templates,
            cluster_templates: &[],
            pods: listed.as_deref(),
            orphans: &[],
            same_name: None,
            services: &self.services,
            missing_routers: &[],
        };
        let p = plan(&obs, self.now);
        self.apply(&p);
        self.last = p.clone();
        p
    }

    /// Reconcile until nothing changes (or `max` rounds).
    pub fn settle(&mut self, max: usize) -> usize {
        for i in 0..max {
            let p = self.reconcile();
            if p.is_noop() {
                return i;
            }
        }
        max
    }

    fn apply(&mut self, p: &Plan) {
        if let Some(r) = p.default_replicas {
            self.ro.spec.replicas = Some(r);
            self.writes += 1;
        }
        if let Some(rs) = &p.create {
            self.serial += 1;
            let mut rs = rs.clone();
            rs.metadata.creation_timestamp =
                Some(Time(crate::time::add_seconds(self.now, self.serial)));
            rs.metadata.generation = Some(1);
            rs.metadata.uid = Some(format!("uid-{}", rs.name()));
            rs.status = Some(ReplicaSetStatus {
                observed_generation: Some(1),
                ..Default::default()
            });
            self.rss.push(rs);
            self.writes += 1;
        }
        for u in &p.updates {
            if let Some(rs) = self.rss.iter_mut().find(|r| r.name() == u.name) {
                let ann = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
                ann.extend(u.annotations.clone());
                for k in &u.remove_annotations {
                    ann.remove(k);
                }
                if let Some(n) = u.replicas {
                    rs.spec.replicas = Some(n);
                }
                if let Some(m) = u.min_ready_seconds {
                    rs.spec.min_ready_seconds = Some(m);
                }
                if let Some(a) = &u.affinity
                    && let Some(spec) = rs.spec.template.as_mut().and_then(|t| t.spec.as_mut())
                {
                    spec.affinity = a.to.clone();
                }
                self.writes += 1;
            }
        }
        self.apply_pod_metadata(p);
        self.rss
            .retain(|rs| !p.deletes.iter().any(|d| d == rs.name()));
        self.writes += p.deletes.len();
        if let Some(rev) = &p.rollout_revision {
            self.ro
                .metadata
                .annotations
                .get_or_insert_with(BTreeMap::new)
                .insert(ANNOTATION_REVISION.into(), rev.clone());
            self.writes += 1;
        }
        if let Some(st) = &p.status {
            self.ro.status = Some(st.clone());
            self.writes += 1;
        }
        for r in &p.create_runs {
            self.serial += 1;
            let mut r = r.clone();
            r.metadata.creation_timestamp =
                Some(Time(crate::time::add_seconds(self.now, self.serial)));
            self.runs.push(r);
            self.writes += 1;
        }
        for name in &p.terminate_runs {
            if let Some(r) = self
                .runs
                .iter_mut()
                .find(|r| r.metadata.name.as_ref() == Some(name))
            {
                r.spec.terminate = Some(true);
                self.writes += 1;
            }
        }
        self.runs.retain(|r| {
            !p.delete_runs
                .iter()
                .any(|d| Some(d) == r.metadata.name.as_ref())
        });
        for c in &p.services {
            let name = self.ro.metadata.name.clone().unwrap_or_default();
            if let Some(svc) = self
                .services
                .iter_mut()
                .find(|s| s.metadata.name.as_ref() == Some(&c.name))
            {
                let sel = svc
                    .spec
                    .get_or_insert_with(Default::default)
                    .selector
                    .get_or_insert_with(BTreeMap::new);
                let ann = svc.metadata.annotations.get_or_insert_with(BTreeMap::new);
                match &c.hash {
                    Some(h) => {
                        sel.insert(LABEL_POD_TEMPLATE_HASH.into(), h.clone());
                        if c.annotate {
                            ann.insert(ANNOTATION_MANAGED_BY_ROLLOUTS.into(), name);
                        }
                    }
                    None => {
                        sel.remove(LABEL_POD_TEMPLATE_HASH);
                        ann.remove(ANNOTATION_MANAGED_BY_ROLLOUTS);
                    }
                }
                self.writes += 1;
            }
        }
        self.events.extend(p.events.iter().cloned());
        self.settle_pods();
    }

    fn settle_pods(&mut self) {
        if self.track_pods {
            self.play_replica_sets();
        }
        for rs in &mut self.rss {
            let spec = rs.spec_replicas();
            let never = rs
                .spec
                .template
                .as_ref()
                .and_then(|t| t.spec.as_ref())
                .is_some_and(|s| {
                    s.containers.iter().any(|c| {
                        c.image
                            .as_deref()
                            .is_some_and(|i| i.ends_with(":never-ready"))
                    })
                });
            let avail = if self.pods == Pods::NeverReadyTag && never {
                0
            } else {
                spec
            };
            let st = rs.status.get_or_insert_with(Default::default);
            st.replicas = spec;
            st.ready_replicas = Some(avail);
            st.available_replicas = Some(avail);
            st.fully_labeled_replicas = Some(spec);
        }
    }

    /// Change the first container's image (a new revision), bumping generation like the API server.
    pub fn set_image(&mut self, image: &str) {
        if let Some(c) = self
            .ro
            .spec
            .template
            .as_mut()
            .and_then(|t| t.spec.as_mut())
            .and_then(|s| s.containers.first_mut())
        {
            c.image = Some(image.into());
        }
        self.bump_generation();
    }

    pub fn bump_generation(&mut self) {
        let g = self.ro.metadata.generation.unwrap_or(1);
        self.ro.metadata.generation = Some(g + 1);
    }

    /// (canary spec, stable spec) by hash: the new RS is the one with `status.currentPodHash`.
    pub fn sizes(&self) -> (i32, i32) {
        let st = self.status();
        let find = |h: &Option<String>| {
            self.rss
                .iter()
                .find(|rs| rs.hash().map(str::to_string) == *h)
                .map_or(0, |rs| rs.spec_replicas())
        };
        if st.current_pod_hash == st.stable_rs {
            return (0, find(&st.stable_rs));
        }
        (find(&st.current_pod_hash), find(&st.stable_rs))
    }

    /// Sum of spec replicas over every ReplicaSet.
    pub fn total_pods(&self) -> i32 {
        self.rss.iter().map(|rs| rs.spec_replicas()).sum()
    }

    pub fn available(&self) -> i32 {
        self.rss.iter().map(|rs| rs.available()).sum()
    }

    pub fn phase(&self) -> (String, String) {
        let st = self.status();
        (st.phase.unwrap_or_default(), st.message.unwrap_or_default())
    }

    pub fn event_reasons(&self) -> Vec<String> {
        self.events.iter().map(|e| e.reason.clone()).collect()
    }
}

impl Sim {
    /// Add a Service selecting `selector`.
    pub fn add_service(&mut self, name: &str, selector: &[(&str, &str)]) {
        let mut svc = Service::default();
        svc.metadata.name = Some(name.into());
        svc.metadata.namespace = self.ro.metadata.namespace.clone();
        svc.spec = Some(ServiceSpec {
            selector: Some(
                selector
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..ServiceSpec::default()
        });
        self.services.push(svc);
    }

    /// The pod-template hash Service `name` selects ("" for none).
    pub fn service_hash(&self, name: &str) -> String {
        crate::rollout::services::selector_hash(crate::rollout::services::find(
            &self.services,
            name,
        ))
    }

    /// The ReplicaSet with pod-template hash `hash`.
    pub fn rs_by_hash(&self, hash: &str) -> Option<&ReplicaSet> {
        self.rss.iter().find(|rs| rs.hash() == Some(hash))
    }

    /// Play the analysis controller: give the named run a phase (and message).
    pub fn set_run_phase(&mut self, name: &str, phase: &str, message: &str) {
        if let Some(r) = self
            .runs
            .iter_mut()
            .find(|r| r.metadata.name.as_deref() == Some(name))
        {
            let st = r.status.get_or_insert_with(AnalysisRunStatus::default);
            st.phase = Some(phase.into());
            st.message = (!message.is_empty()).then(|| message.to_string());
        }
    }

    pub fn run_names(&self) -> Vec<String> {
        self.runs
            .iter()
            .filter_map(|r| r.metadata.name.clone())
            .collect()
    }
}

impl Sim {
    /// The pods the controller's observe step would list: those of `pods_needed`.
    fn listed_pods(&self) -> Option<Vec<Pod>> {
        if !self.track_pods {
            return None;
        }
        let needed = pods_needed(&self.ro, &self.rss);
        if needed.is_empty() {
            return None;
        }
        let uids: Vec<String> = self
            .rss
            .iter()
            .filter(|rs| needed.iter().any(|n| n == rs.name()))
            .filter_map(|rs| rs.metadata.uid.clone())
            .collect();
        Some(
            self.pod_list
                .iter()
                .filter(|p| owner_uid(p).is_some_and(|u| uids.contains(&u)))
                .cloned()
                .collect(),
        )
    }

    fn apply_pod_metadata(&mut self, p: &Plan) {
        for s in &p.pod_metadata {
            if let Some(rs) = self.rss.iter_mut().find(|r| r.name() == s.replica_set) {
                let meta = rs
                    .spec
                    .template
                    .get_or_insert_with(Default::default)
                    .metadata
                    .get_or_insert_with(Default::default);
                apply_changes(&mut meta.labels, &s.template_labels);
                apply_changes(&mut meta.annotations, &s.template_annotations);
                self.writes += 1;
            }
            let mut conflict = false;
            for patch in &s.pods {
                let Some(pod) = self
                    .pod_list
                    .iter_mut()
                    .find(|x| x.metadata.name.as_deref() == Some(patch.name.as_str()))
                else {
                    continue;
                };
                // The API server's precondition; the controller then stops (a 409).
                if pod.metadata.resource_version != patch.pod.metadata.resource_version {
                    conflict = true;
                    break;
                }
                apply_changes(&mut pod.metadata.labels, &patch.labels);
                apply_changes(&mut pod.metadata.annotations, &patch.annotations);
                self.serial += 1;
                pod.metadata.resource_version = Some(format!("{}", 1000 + self.serial));
                self.writes += 1;
            }
            if !conflict
                && let Some(r) = &s.record
                && let Some(rs) = self.rss.iter_mut().find(|r| r.name() == s.replica_set)
            {
                let ann = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
                match r {
                    Some(r) => ann.insert(ANNOTATION_EPHEMERAL_METADATA.into(), r.clone()),
                    None => ann.remove(ANNOTATION_EPHEMERAL_METADATA),
                };
            }
        }
    }

    /// Create and delete pods so each ReplicaSet has `spec.replicas` of them, new pods taking
    /// the template's metadata as it is now.
    fn play_replica_sets(&mut self) {
        for rs in &self.rss {
            let uid = rs.metadata.uid.clone().unwrap_or_default();
            let mut have: Vec<usize> = (0..self.pod_list.len())
                .filter(|i| owner_uid(&self.pod_list[*i]).as_deref() == Some(uid.as_str()))
                .collect();
            let want = usize::try_from(rs.spec_replicas()).unwrap_or(0);
            while have.len() > want {
                if let Some(i) = have.pop() {
                    self.pod_list.remove(i);
                }
            }
            for _ in have.len()..want {
                self.serial += 1;
                let tmeta = rs
                    .spec
                    .template
                    .as_ref()
                    .and_then(|t| t.metadata.clone())
                    .unwrap_or_default();
                self.pod_list.push(Pod {
                    metadata: ObjectMeta {
                        name: Some(format!("{}-{}", rs.name(), self.serial)),
                        uid: Some(format!("pod-uid-{}", self.serial)),
                        resource_version: Some("1".into()),
                        labels: tmeta.labels,
                        annotations: tmeta.annotations,
                        owner_references: Some(vec![OwnerReference {
                            uid: uid.clone(),
                            controller: Some(true),
                            ..OwnerReference::default()
                        }]),
                        ..ObjectMeta::default()
                    },
                    ..Pod::default()
                });
            }
        }
        let live: Vec<String> = self
            .rss
            .iter()
            .filter_map(|rs| rs.metadata.uid.clone())
            .collect();
        self.pod_list
            .retain(|p| owner_uid(p).is_some_and(|u| live.contains(&u)));
    }
}

fn owner_uid(p: &Pod) -> Option<String> {
    p.metadata
        .owner_references
        .as_ref()?
        .first()
        .map(|o| o.uid.clone())
}
