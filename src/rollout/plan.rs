//! `plan(&Observed, now) -> Plan`: the whole canary decision for one reconcile, pure and
//! deterministic. It follows Argo Rollouts' reconcile order (reference §1.11): detect a template or
//! steps change, create the new ReplicaSet, collect garbage, scale, handle the pause step, advance
//! or promote, then derive conditions and phase.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};

use crate::api::analysis::AnalysisRun;
use crate::api::consts::*;
use crate::api::rollout::{CanaryStep, PauseCondition, Rollout, RolloutStatus};
use crate::rollout::analysis::{AnalysisInputs, reconcile_analysis};
use crate::rollout::hash::{json_hash, pod_template_hash, templates_match};
use crate::rollout::observed::referenced_templates;
use crate::rollout::observed::{Observed, RsExt};
use crate::rollout::replicas::{
    BasicCanaryInput, ReplicaProgressThreshold, RsCounts, at_desired_counts_with_threshold,
    basic_canary_counts, replica_progress_threshold_met, resolve_fenceposts, scale_down_older,
};
use crate::rollout::restart::{
    RECHECK as RESTART_RECHECK, Restart, plan_restart, restart_due, restart_requested,
};
use crate::rollout::sanitize::sanitize_template;
use crate::rollout::status::*;
use crate::rollout::validation::{invalid_spec_message, validate};
use crate::time::{add_seconds, int_or_string_display, k8s_time, pause_duration_seconds, until};

/// What one reconcile should change. Empty means: write nothing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// A ReplicaSet to create (server-side apply of the whole object).
    pub create: Option<ReplicaSet>,
    /// Changes to existing ReplicaSets: size and annotations.
    pub updates: Vec<RsUpdate>,
    /// ReplicaSets to delete (revision history GC).
    pub deletes: Vec<String>,
    /// New value of the Rollout's `rollout.argoproj.io/revision` annotation, when it changes.
    pub rollout_revision: Option<String>,
    /// The new status, when it differs from the observed one.
    pub status: Option<RolloutStatus>,
    /// Pods to evict (restart).
    pub evict: Vec<String>,
    /// AnalysisRuns to create.
    pub create_runs: Vec<AnalysisRun>,
    /// AnalysisRuns to stop (`spec.terminate: true`).
    pub terminate_runs: Vec<String>,
    /// AnalysisRuns to delete (history limits).
    pub delete_runs: Vec<String>,
    /// Kubernetes events to record.
    pub events: Vec<PlannedEvent>,
    /// When to look again even if nothing changes (pause expiry, progress deadline).
    pub requeue_after: Option<Duration>,
}

impl Plan {
    /// True when applying the plan makes no API writes.
    pub fn is_noop(&self) -> bool {
        self.create.is_none()
            && self.updates.is_empty()
            && self.deletes.is_empty()
            && self.rollout_revision.is_none()
            && self.status.is_none()
            && self.evict.is_empty()
            && self.create_runs.is_empty()
            && self.terminate_runs.is_empty()
            && self.delete_runs.is_empty()
            && self.events.is_empty()
    }
}

/// A change to an existing ReplicaSet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RsUpdate {
    pub name: String,
    /// New `spec.replicas`, when it changes.
    pub replicas: Option<i32>,
    /// Annotations to set (only those that change).
    pub annotations: BTreeMap<String, String>,
    /// New `spec.minReadySeconds`, when it changes (the new ReplicaSet follows the Rollout's).
    pub min_ready_seconds: Option<i32>,
}

/// An event to record against the Rollout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedEvent {
    pub warning: bool,
    pub reason: String,
    pub message: String,
}

/// The field manager of every write the controller makes.
pub const FIELD_MANAGER: &str = "sluice-controller";

const MAX_WEIGHT: i32 = 100;

/// Rollout annotations that are not copied onto its ReplicaSets.
const NOT_COPIED_ANNOTATIONS: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    ANNOTATION_REVISION,
    ANNOTATION_REVISION_HISTORY,
    ANNOTATION_DESIRED_REPLICAS,
    "notified.notifications.argoproj.io",
];

/// Plan one reconcile of `obs.rollout` at time `now`.
pub fn plan(obs: &Observed, now: Timestamp) -> Plan {
    let ro = obs.rollout;
    let prev = ro.status.clone().unwrap_or_default();
    let generation = ro.metadata.generation.unwrap_or(0).to_string();

    let errors = validate(ro);
    if let Some(msg) = invalid_spec_message(ro, &errors) {
        return plan_invalid(ro, &prev, &generation, &msg, now);
    }
    if ro.spec.strategy.canary.is_none() {
        let msg = format!(
            "The Rollout \"{}\" is invalid: spec.strategy.blueGreen: Unsupported value: this version of Sluice runs canary rollouts only",
            ro.metadata.name.as_deref().unwrap_or("")
        );
        return plan_invalid(ro, &prev, &generation, &msg, now);
    }
    if let Some(w) = &ro.spec.workload_ref {
        // Without resolving the reference the template is empty: creating a ReplicaSet from it
        // would fail on every reconcile and the rollout would never report why.
        let msg = format!(
            "The Rollout \"{}\" is invalid: spec.workloadRef: Unsupported value: \"{}/{}\": this version of Sluice does not resolve workload references",
            ro.metadata.name.as_deref().unwrap_or(""),
            w.kind.as_deref().unwrap_or(""),
            w.name.as_deref().unwrap_or("")
        );
        return plan_invalid(ro, &prev, &generation, &msg, now);
    }
    if let Some(msg) = missing_template(obs) {
        let name = ro.metadata.name.as_deref().unwrap_or("");
        let msg = format!("The Rollout \"{name}\" is invalid: {msg}");
        return plan_invalid(ro, &prev, &generation, &msg, now);
    }
    if prev.observed_generation.as_deref() == Some(generation.as_str())
        && let Some(p) = check_paused_conditions(ro, &prev, now)
    {
        return p;
    }
    Canary::new(obs, prev, generation, now).run()
}

/// Argo's reference validation: every analysis template the Rollout names must exist.
fn missing_template(obs: &Observed) -> Option<String> {
    let (ns, cluster) = referenced_templates(obs.rollout);
    for n in ns {
        if !obs
            .templates
            .iter()
            .any(|t| t.metadata.name.as_deref() == Some(n.as_str()))
        {
            return Some(format!("AnalysisTemplate.argoproj.io \"{n}\" not found"));
        }
    }
    for n in cluster {
        if !obs
            .cluster_templates
            .iter()
            .any(|t| t.metadata.name.as_deref() == Some(n.as_str()))
        {
            return Some(format!(
                "ClusterAnalysisTemplate.argoproj.io \"{n}\" not found"
            ));
        }
    }
    None
}

fn plan_invalid(
    ro: &Rollout,
    prev: &RolloutStatus,
    generation: &str,
    msg: &str,
    now: Timestamp,
) -> Plan {
    let mut st = prev.clone();
    let prev_cond = get_condition(prev, CONDITION_INVALID_SPEC);
    let mut plan = Plan::default();
    if prev_cond.and_then(|c| c.message.as_deref()) != Some(msg) {
        remove_condition(&mut st, CONDITION_INVALID_SPEC);
        set_condition(
            &mut st,
            new_condition(
                CONDITION_INVALID_SPEC,
                "True",
                REASON_INVALID_SPEC,
                msg,
                now,
            ),
        );
        plan.events.push(PlannedEvent {
            warning: true,
            reason: REASON_INVALID_SPEC.into(),
            message: msg.into(),
        });
    }
    st.observed_generation = Some(generation.to_string());
    let (phase, message) = calculate_phase(&ro.spec, &st);
    st.phase = Some(phase);
    st.message = Some(message);
    if st != *prev {
        plan.status = Some(st);
    }
    plan
}

/// Argo's `checkPausedConditions`: keep the Progressing/Paused conditions in step with pauses and
/// retries as a write of its own, before anything else happens.
fn check_paused_conditions(ro: &Rollout, prev: &RolloutStatus, now: Timestamp) -> Option<Plan> {
    let prog = get_condition(prev, CONDITION_PROGRESSING);
    let prog_reason = reason_of(prog);
    let prog_paused = prog_reason == REASON_ROLLOUT_PAUSED;
    let is_paused = prev
        .pause_conditions
        .as_ref()
        .is_some_and(|p| !p.is_empty())
        || ro.spec.paused.unwrap_or(false);
    let abort_cond = prog_reason == REASON_ROLLOUT_ABORTED;
    let completed = is_completed(prev);
    let mut updates = Vec::new();
    if is_paused != prog_paused && !abort_cond && !completed {
        updates.push(if is_paused {
            new_condition(
                CONDITION_PROGRESSING,
                "Unknown",
                REASON_ROLLOUT_PAUSED,
                "Rollout is paused",
                now,
            )
        } else {
            new_condition(
                CONDITION_PROGRESSING,
                "Unknown",
                REASON_ROLLOUT_RESUMED,
                "Rollout is resumed",
                now,
            )
        });
    }
    if !prev.abort.unwrap_or(false) && abort_cond {
        updates.push(new_condition(
            CONDITION_PROGRESSING,
            "Unknown",
            REASON_ROLLOUT_RETRY,
            "Retrying Rollout after abort",
            now,
        ));
    }
    let paused_true = get_condition(prev, CONDITION_PAUSED).is_some_and(|c| c.status == "True");
    if is_paused != paused_true && !abort_cond {
        let s = if is_paused { "True" } else { "False" };
        updates.push(new_condition(
            CONDITION_PAUSED,
            s,
            REASON_ROLLOUT_PAUSED,
            "Rollout is paused",
            now,
        ));
    }
    if updates.is_empty() {
        return None;
    }
    let mut st = prev.clone();
    for c in updates {
        set_condition(&mut st, c);
    }
    let (phase, message) = calculate_phase(&ro.spec, &st);
    st.phase = Some(phase);
    st.message = Some(message);
    if st == *prev {
        return None;
    }
    Some(Plan {
        status: Some(st),
        ..Plan::default()
    })
}

fn is_completed(st: &RolloutStatus) -> bool {
    st.stable_rs.as_deref().is_some_and(|s| !s.is_empty()) && st.stable_rs == st.current_pod_hash
}

/// Argo's `CanaryStepString`, used in step-completed events.
pub fn step_string(step: &CanaryStep) -> String {
    if let Some(w) = step.set_weight {
        return format!("setWeight: {w}");
    }
    if let Some(p) = &step.pause {
        return match &p.duration {
            Some(d) => format!("pause: {}", int_or_string_display(d)),
            None => "pause".into(),
        };
    }
    if step.experiment.is_some() {
        return "experiment".into();
    }
    if step.analysis.is_some() {
        return "analysis".into();
    }
    if let Some(s) = &step.set_canary_scale {
        if let Some(w) = s.weight {
            return format!("setCanaryScale{{weight: {w}}}");
        }
        if s.match_traffic_weight.unwrap_or(false) {
            return "setCanaryScale{matchTrafficWeight: true}".into();
        }
        if let Some(r) = s.replicas {
            return format!("setCanaryScale{{replicas: {r}}}");
        }
    }
    if let Some(p) = &step.plugin {
        return format!("plugin: {}", p.name);
    }
    if let Some(h) = &step.set_header_route {
        return format!("setHeaderRoute: {}", h.name.as_deref().unwrap_or(""));
    }
    if let Some(m) = &step.set_mirror_route {
        return format!("setMirrorRoute: {}", m.name);
    }
    "invalid".into()
}

/// The state of one canary reconcile, mirroring Argo's rolloutContext + pauseContext.
struct Canary<'a> {
    ro: &'a Rollout,
    steps: &'a [CanaryStep],
    now: Timestamp,
    generation: String,
    prev: RolloutStatus,
    all: Vec<&'a ReplicaSet>,
    new_rs: Option<&'a ReplicaSet>,
    new_hash: String,
    new_name: String,
    new_revision: i64,
    creating: bool,
    stable_rs: Option<&'a ReplicaSet>,
    /// Neither new nor stable.
    others: Vec<&'a ReplicaSet>,
    replicas: i32,
    // pause context
    add_pause: Vec<String>,
    remove_pause: Vec<String>,
    clear_pause: bool,
    add_abort: Option<String>,
    remove_abort: bool,
    plan: Plan,
    requeue: Vec<Duration>,
    obs: &'a Observed<'a>,
    /// The current step's AnalysisRun completed Successful.
    step_analysis_successful: bool,
}

impl<'a> Canary<'a> {
    fn new(obs: &'a Observed<'a>, prev: RolloutStatus, generation: String, now: Timestamp) -> Self {
        let ro = obs.rollout;
        let steps: &[CanaryStep] = ro
            .spec
            .strategy
            .canary
            .as_ref()
            .and_then(|c| c.steps.as_deref())
            .unwrap_or(&[]);
        let all: Vec<&ReplicaSet> = obs.replica_sets.iter().collect();
        let template = ro.spec.template.clone().unwrap_or_default();
        let (template, _) = sanitize_template(&template);
        let want_hash = pod_template_hash(&template, prev.collision_count);
        let alive = || all.iter().copied().filter(|rs| !rs.deleting());
        // Our own ReplicaSets carry our hash; one created by Argo Rollouts (another hash function)
        // is adopted when its template matches (trap 3), newest revision first.
        let new_rs = alive()
            .find(|rs| rs.hash() == Some(want_hash.as_str()))
            .or_else(|| {
                alive()
                    .filter(|rs| {
                        rs.spec
                            .as_ref()
                            .and_then(|s| s.template.as_ref())
                            .is_some_and(|t| templates_match(&template, t))
                    })
                    .max_by_key(|rs| rs.revision().unwrap_or(0))
            });
        let new_hash = new_rs
            .and_then(|rs| rs.hash())
            .map_or_else(|| want_hash.clone(), str::to_string);
        let name = ro.metadata.name.clone().unwrap_or_default();
        let new_name =
            new_rs.map_or_else(|| format!("{name}-{want_hash}"), |rs| rs.name().to_string());
        let stable_hash = prev.stable_rs.clone().unwrap_or_default();
        let stable_rs = if stable_hash.is_empty() {
            None
        } else {
            all.iter()
                .copied()
                .find(|rs| rs.hash() == Some(stable_hash.as_str()))
        };
        let others: Vec<&ReplicaSet> = all
            .iter()
            .copied()
            .filter(|rs| {
                let h = rs.hash();
                h != Some(new_hash.as_str()) && h != stable_rs.and_then(|s| s.hash())
            })
            .collect();
        let max_old = all
            .iter()
            .filter(|rs| rs.hash() != Some(new_hash.as_str()))
            .filter_map(|rs| rs.revision())
            .max()
            .unwrap_or(0);
        let new_revision = new_rs
            .and_then(|rs| rs.revision())
            .unwrap_or(0)
            .max(max_old + 1);
        // Argo's `newRolloutContext`: an abort on a fully promoted rollout is dropped
        // (`IsFullyPromoted && IsAborted → RemoveAbort`), so the rollout stays Healthy.
        let remove_abort = is_completed(&prev) && prev.abort.unwrap_or(false);
        Canary {
            ro,
            steps,
            now,
            generation,
            prev,
            creating: new_rs.is_none(),
            all,
            new_rs,
            new_hash,
            new_name,
            new_revision,
            stable_rs,
            others,
            replicas: replicas_or_default(&ro.spec),
            add_pause: Vec::new(),
            remove_pause: Vec::new(),
            clear_pause: false,
            add_abort: None,
            remove_abort,
            plan: Plan::default(),
            requeue: Vec::new(),
            obs,
            step_analysis_successful: false,
        }
    }

    fn event(&mut self, warning: bool, reason: &str, message: String) {
        self.plan.events.push(PlannedEvent {
            warning,
            reason: reason.into(),
            message,
        });
    }

    fn step_count(&self) -> i32 {
        self.steps.len() as i32
    }

    fn aborted(&self) -> bool {
        !self.remove_abort && (self.add_abort.is_some() || self.prev.abort.unwrap_or(false))
    }

    fn stable_hash(&self) -> &str {
        self.prev.stable_rs.as_deref().unwrap_or("")
    }

    /// A stable ReplicaSet exists and is not the new one.
    fn stable_distinct(&self) -> Option<&'a ReplicaSet> {
        self.stable_rs
            .filter(|s| s.hash() != Some(self.new_hash.as_str()))
    }

    fn current_index(&self) -> Option<i32> {
        if self.steps.is_empty() {
            None
        } else {
            Some(self.prev.current_step_index.unwrap_or(0))
        }
    }

    fn current_step(&self) -> Option<&'a CanaryStep> {
        let i = self.current_index()?;
        self.steps.get(usize::try_from(i).ok()?)
    }

    fn run(mut self) -> Plan {
        self.sync_revision();
        // Argo's `ComputeStepHash` marshals the steps field itself: no steps hash as `null`.
        let steps_field = self
            .ro
            .spec
            .strategy
            .canary
            .as_ref()
            .and_then(|c| c.steps.as_ref());
        let step_hash = json_hash(&steps_field);
        let pod_changed = self
            .prev
            .current_pod_hash
            .as_deref()
            .is_some_and(|h| !h.is_empty() && h != self.new_hash);
        let steps_changed = self
            .prev
            .current_step_hash
            .as_deref()
            .is_none_or(|h| h.is_empty() || h != step_hash);
        let mut st = self.base_status(step_hash);

        if pod_changed || steps_changed {
            // Reset for a new revision (or new steps) and stop; scaling starts next time.
            self.clear_pause = true;
            self.remove_abort = true;
            st.promote_full = None;
            if let Some(c) = st.canary.as_mut() {
                c.current_step_analysis_run_status = None;
                c.current_background_analysis_run_status = None;
                c.step_plugin_statuses = None;
            }
            st.restarted_at = self.ro.spec.restart_at.clone();
            st.current_step_index = if self.steps.is_empty() { None } else { Some(0) };
            if !self.creating && !self.steps.is_empty() {
                if self.stable_hash() == self.new_hash {
                    self.event(false, "SkipSteps", "Rollback to stable ReplicaSets".into());
                    st.current_step_index = Some(self.step_count());
                } else if self.rollback_within_window()
                    && self.new_rs.is_some_and(|rs| rs.spec_replicas() > 0)
                {
                    self.event(
                        false,
                        "SkipSteps",
                        "Rollback to active ReplicaSets within RollbackWindow".into(),
                    );
                    st.current_step_index = Some(self.step_count());
                }
            }
            return self.persist(st);
        }

        if self.restart(&mut st) {
            // Availability counts are stale until the evicted pods are replaced: stop here.
            self.plan.requeue_after = self.requeue.iter().min().copied();
            return self.plan;
        }
        self.gc_history();
        if let Err(msg) = self.reconcile_analysis(&mut st) {
            let name = self.ro.metadata.name.clone().unwrap_or_default();
            let msg = format!("The Rollout \"{name}\" is invalid: {msg}");
            return plan_invalid(self.ro, &self.prev, &self.generation, &msg, self.now);
        }
        if self.add_pause.is_empty() {
            let scaled = self.scale();
            if !scaled {
                self.reconcile_pause();
            }
        }
        self.sync_status(st)
    }

    /// The pod restarter. Returns true when pods are being evicted this reconcile.
    fn restart(&mut self, st: &mut RolloutStatus) -> bool {
        if !restart_requested(self.ro) {
            return false;
        }
        let mut order: Vec<&ReplicaSet> = self.stable_rs.into_iter().chain(self.new_rs).collect();
        let mut older = self.others.clone();
        older.sort_by_key(|rs| rs.created());
        order.extend(older);
        order.dedup_by_key(|rs| rs.name().to_string());
        let (_, unavailable) = self.fenceposts();
        let decision = match self.obs.pods {
            Some(pods) => plan_restart(self.ro, &order, pods, unavailable, self.now),
            None if restart_due(self.ro, self.now) => Restart::Wait,
            None => plan_restart(self.ro, &order, &[], unavailable, self.now),
        };
        match decision {
            Restart::Idle => false,
            Restart::Later(d) => {
                self.requeue.push(d);
                false
            }
            Restart::Wait => {
                self.requeue.push(RESTART_RECHECK);
                false
            }
            Restart::Done => {
                st.restarted_at = self.ro.spec.restart_at.clone();
                false
            }
            Restart::Evict(pods) => {
                for p in &pods {
                    self.event(
                        false,
                        "RestartingPod",
                        format!("Evicting pod {p} created before restartAt"),
                    );
                }
                self.plan.evict = pods;
                self.requeue.push(RESTART_RECHECK);
                true
            }
        }
    }

    /// Argo's `reconcileAnalysisRuns`: create, cancel and collect AnalysisRuns; a run's phase may
    /// pause (Inconclusive) or abort (Failed, Error) the rollout.
    fn reconcile_analysis(&mut self, st: &mut RolloutStatus) -> Result<(), String> {
        let p = &self.prev;
        let stable = self.stable_hash().to_string();
        let fully_promoted =
            !stable.is_empty() && p.current_pod_hash.as_deref() == Some(stable.as_str());
        let cancel_all = fully_promoted
            || self.aborted()
            || p.promote_full.unwrap_or(false)
            || stable == self.new_hash
            || self.rollback_within_window()
            || stable.is_empty();
        let out = reconcile_analysis(&AnalysisInputs {
            ro: self.ro,
            runs: self.obs.analysis_runs,
            templates: self.obs.templates,
            cluster_templates: self.obs.cluster_templates,
            replica_sets: &self.all,
            prev: &self.prev,
            new_hash: &self.new_hash,
            stable_hash: &stable,
            revision: self.new_revision.to_string(),
            step_index: self.current_index(),
            cancel_all,
        });
        if let Some(msg) = out.invalid {
            return Err(msg);
        }
        self.plan.create_runs = out.create;
        self.plan.terminate_runs = out.terminate;
        self.plan.delete_runs = out.delete;
        self.plan.events.extend(out.events);
        let canary = st.canary.get_or_insert_with(Default::default);
        canary.current_step_analysis_run_status = out.step;
        canary.current_background_analysis_run_status = out.background;
        if out.pause_inconclusive {
            self.add_pause
                .push(PAUSE_REASON_INCONCLUSIVE_ANALYSIS_RUN.into());
        }
        if let Some(msg) = out.abort
            && !self.aborted()
        {
            self.add_abort = Some(msg);
        }
        self.step_analysis_successful = out.step_successful;
        Ok(())
    }

    /// Create the new ReplicaSet if missing and keep the revision annotations right.
    fn sync_revision(&mut self) {
        let revision = self.new_revision.to_string();
        if self.creating {
            let rs = self.build_replica_set(&revision);
            self.plan.create = Some(rs);
            self.event(
                false,
                REASON_NEW_REPLICA_SET_CREATED,
                format!(
                    "Created ReplicaSet {} (revision {})",
                    self.new_name, revision
                ),
            );
        } else if let Some(rs) = self.new_rs {
            // Argo's `syncReplicaSetRevision` also keeps minReadySeconds in step: it is not part
            // of the pod template, so a change to it makes no new revision.
            let min_ready = self.ro.spec.min_ready_seconds.unwrap_or(0);
            let rs_min_ready = rs.spec.as_ref().and_then(|s| s.min_ready_seconds);
            if rs_min_ready.unwrap_or(0) != min_ready {
                self.plan.updates.push(RsUpdate {
                    name: rs.name().to_string(),
                    replicas: None,
                    annotations: BTreeMap::new(),
                    min_ready_seconds: Some(min_ready),
                });
            }
            let old = rs.revision();
            if old.is_none_or(|o| o < self.new_revision) {
                let mut ann = BTreeMap::new();
                ann.insert(ANNOTATION_REVISION.to_string(), revision.clone());
                if let Some(o) = old {
                    let history = rs.annotations().get(ANNOTATION_REVISION_HISTORY).cloned();
                    let h = match history {
                        Some(h) if !h.is_empty() => format!("{h},{o}"),
                        _ => o.to_string(),
                    };
                    ann.insert(ANNOTATION_REVISION_HISTORY.to_string(), h);
                }
                let name = rs.name().to_string();
                match self.plan.updates.iter_mut().find(|u| u.name == name) {
                    Some(u) => u.annotations.extend(ann),
                    None => self.plan.updates.push(RsUpdate {
                        name,
                        replicas: None,
                        annotations: ann,
                        min_ready_seconds: None,
                    }),
                }
            }
        }
        let current = self
            .ro
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_REVISION));
        if current != Some(&revision) {
            self.plan.rollout_revision = Some(revision.clone());
            self.event(
                false,
                REASON_ROLLOUT_UPDATED,
                format!("Rollout updated to revision {revision}"),
            );
        }
    }

    fn build_replica_set(&self, revision: &str) -> ReplicaSet {
        let ro = self.ro;
        let (mut template, _) = sanitize_template(&ro.spec.template.clone().unwrap_or_default());
        let meta = template.metadata.get_or_insert_with(ObjectMeta::default);
        meta.labels
            .get_or_insert_with(BTreeMap::new)
            .insert(LABEL_POD_TEMPLATE_HASH.to_string(), self.new_hash.clone());
        let labels = meta.labels.clone();
        let mut selector: LabelSelector = ro.spec.selector.clone().unwrap_or_default();
        selector
            .match_labels
            .get_or_insert_with(BTreeMap::new)
            .insert(LABEL_POD_TEMPLATE_HASH.to_string(), self.new_hash.clone());
        let mut annotations: BTreeMap<String, String> = ro
            .metadata
            .annotations
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|(k, _)| !NOT_COPIED_ANNOTATIONS.contains(&k.as_str()))
            .collect();
        annotations.insert(ANNOTATION_REVISION.into(), revision.into());
        annotations.insert(
            ANNOTATION_DESIRED_REPLICAS.into(),
            self.replicas.to_string(),
        );
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some(self.new_name.clone()),
                namespace: ro.metadata.namespace.clone(),
                labels,
                annotations: Some(annotations),
                owner_references: Some(vec![owner_reference(ro)]),
                ..ObjectMeta::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: ro.spec.min_ready_seconds,
                selector,
                template: Some(template),
            }),
            status: None,
        }
    }

    fn rollback_within_window(&self) -> bool {
        let (Some(new), Some(stable)) = (self.new_rs, self.stable_rs) else {
            return false;
        };
        let (Some(new_t), Some(stable_t)) = (new.created(), stable.created()) else {
            return false;
        };
        if new_t >= stable_t {
            return false;
        }
        let Some(limit) = self
            .ro
            .spec
            .rollback_window
            .as_ref()
            .and_then(|w| w.revisions)
        else {
            return false;
        };
        if limit <= 0 {
            return false;
        }
        let window = self
            .all
            .iter()
            .filter(|rs| !rs.annotations().contains_key(LABEL_EXPERIMENT_NAME))
            .filter(|rs| rs.created().is_some_and(|t| t < stable_t && new_t < t))
            .count() as i32;
        window < limit
    }

    fn gc_history(&mut self) {
        let limit = self.ro.spec.revision_history_limit.unwrap_or(10).max(0) as usize;
        let mut cleanable: Vec<&ReplicaSet> = self
            .others
            .iter()
            .copied()
            .filter(|rs| !rs.deleting())
            .collect();
        if cleanable.len() <= limit {
            return;
        }
        let diff = cleanable.len() - limit;
        cleanable.sort_by_key(|rs| (rs.created(), rs.name().to_string()));
        for rs in cleanable.into_iter().take(diff) {
            let observed = rs
                .status
                .as_ref()
                .and_then(|s| s.observed_generation)
                .unwrap_or(0);
            if rs.status_replicas() != 0
                || rs.spec_replicas() != 0
                || rs.metadata.generation.unwrap_or(0) > observed
            {
                continue;
            }
            self.plan.deletes.push(rs.name().to_string());
        }
    }

    /// Argo's `GetCurrentSetWeight` plus the "no distinct stable → full weight" rule.
    fn desired_weight(&self) -> i32 {
        let p = &self.prev;
        let stable = p.stable_rs.as_deref().unwrap_or("");
        if p.promote_full.unwrap_or(false)
            || stable.is_empty()
            || p.current_pod_hash.as_deref() == Some(stable)
        {
            return MAX_WEIGHT;
        }
        if p.abort.unwrap_or(false) {
            return 0;
        }
        let Some(idx) = self.current_index() else {
            return MAX_WEIGHT;
        };
        if idx as usize >= self.steps.len() {
            return MAX_WEIGHT;
        }
        self.steps[..=idx as usize]
            .iter()
            .rev()
            .find_map(|s| s.set_weight)
            .unwrap_or(0)
    }

    /// (maxSurge, maxUnavailable) in pods. An unparseable value cannot reach here (validation
    /// rejects it first); the fallback is the safest pair, no surge and one pod at a time.
    fn fenceposts(&self) -> (i32, i32) {
        let canary = self.ro.spec.strategy.canary.as_ref();
        resolve_fenceposts(
            canary.and_then(|c| c.max_surge.as_ref()),
            canary.and_then(|c| c.max_unavailable.as_ref()),
            self.replicas,
        )
        .unwrap_or((0, 1))
    }

    /// (desired new, desired stable) for a basic canary. Without a distinct stable the new
    /// ReplicaSet targets all replicas, still bounded by the surge headroom.
    fn desired_counts(&self) -> (i32, i32) {
        let r = self.replicas;
        let (surge, unavailable) = self.fenceposts();
        let older: Vec<RsCounts> = self.others.iter().map(|rs| rs.counts()).collect();
        basic_canary_counts(&BasicCanaryInput {
            replicas: r,
            weight: self.desired_weight(),
            max_weight: MAX_WEIGHT,
            max_surge: surge,
            max_unavailable: unavailable,
            new: self.new_rs.map(|rs| rs.counts()),
            stable: self.stable_distinct().map(|rs| rs.counts()),
            older: &older,
        })
    }

    fn halted(&self) -> bool {
        self.ro.spec.paused.unwrap_or(false)
            || self
                .prev
                .pause_conditions
                .iter()
                .flatten()
                .any(|c| c.reason == PAUSE_REASON_INCONCLUSIVE_ANALYSIS_RUN)
    }

    /// Scale stable, then new, then older ReplicaSets, stopping after the first kind that changed
    /// (as Argo does): each decision then sees the availability that the previous one produced.
    /// Returns whether any size changed.
    fn scale(&mut self) -> bool {
        if self.halted() || self.creating {
            return false;
        }
        let (desired_new, desired_stable) = self.desired_counts();
        if let Some(stable) = self.stable_distinct()
            && self.scale_rs(stable, desired_stable)
        {
            return true;
        }
        if let Some(new) = self.new_rs
            && self.scale_rs(new, desired_new)
        {
            return true;
        }
        let (_, unavailable) = self.fenceposts();
        // Drained newest revision first.
        let mut older = self.others.clone();
        older.sort_by_key(|rs| std::cmp::Reverse((rs.revision().unwrap_or(0), rs.created())));
        let counts: Vec<RsCounts> = older.iter().map(|rs| rs.counts()).collect();
        let sizes = scale_down_older(
            self.replicas,
            unavailable,
            self.new_rs.map(|rs| rs.counts()),
            self.stable_distinct().map(|rs| rs.counts()),
            &counts,
        );
        let mut scaled = false;
        for (rs, size) in older.into_iter().zip(sizes) {
            if size < rs.spec_replicas() {
                scaled |= self.scale_rs(rs, size);
            }
        }
        scaled
    }

    fn scale_rs(&mut self, rs: &ReplicaSet, size: i32) -> bool {
        let old = rs.spec_replicas();
        let mut ann = BTreeMap::new();
        let want = self.replicas.to_string();
        if rs.annotations().get(ANNOTATION_DESIRED_REPLICAS) != Some(&want) {
            ann.insert(ANNOTATION_DESIRED_REPLICAS.to_string(), want);
        }
        let resize = old != size;
        if !resize && ann.is_empty() {
            return false;
        }
        let name = rs.name().to_string();
        if let Some(u) = self.plan.updates.iter_mut().find(|u| u.name == name) {
            u.annotations.extend(ann);
            if resize {
                u.replicas = Some(size);
            }
        } else {
            self.plan.updates.push(RsUpdate {
                name: name.clone(),
                replicas: resize.then_some(size),
                annotations: ann,
                min_ready_seconds: None,
            });
        }
        if resize {
            let op = if size > old { "up" } else { "down" };
            let revision = rs.revision().unwrap_or(0);
            self.event(
                false,
                REASON_SCALING_REPLICA_SET,
                format!("Scaled {op} ReplicaSet {name} (revision {revision}) from {old} to {size}"),
            );
        }
        resize
    }

    /// Argo's `reconcileCanaryPause`.
    fn reconcile_pause(&mut self) {
        if self.ro.spec.paused.unwrap_or(false)
            || self.prev.promote_full.unwrap_or(false)
            || self.aborted()
        {
            return;
        }
        let Some(step) = self.current_step() else {
            return;
        };
        let Some(pause) = &step.pause else { return };
        let cond = self.pause_condition(PAUSE_REASON_CANARY_PAUSE_STEP);
        match cond {
            None => {
                if !self.prev.controller_pause.unwrap_or(false) {
                    self.add_pause.push(PAUSE_REASON_CANARY_PAUSE_STEP.into());
                    if let Some(d) = &pause.duration {
                        let secs = pause_duration_seconds(d).max(0) as u64;
                        self.requeue.push(Duration::from_secs(secs));
                    }
                }
            }
            Some(c) => {
                if let Some(d) = &pause.duration {
                    let expiry = add_seconds(c.start_time.0, pause_duration_seconds(d));
                    if let Some(left) = until(self.now, expiry) {
                        self.requeue.push(left);
                    }
                }
            }
        }
    }

    fn pause_condition(&self, reason: &str) -> Option<&PauseCondition> {
        self.prev
            .pause_conditions
            .iter()
            .flatten()
            .find(|c| c.reason == reason)
    }

    /// Argo's `completedCurrentCanaryStep` for the step kinds a basic canary runs.
    fn completed_current_step(&self) -> bool {
        if self.ro.spec.paused.unwrap_or(false) {
            return false;
        }
        let Some(step) = self.current_step() else {
            return false;
        };
        if let Some(pause) = &step.pause {
            let cond = self.pause_condition(PAUSE_REASON_CANARY_PAUSE_STEP);
            if self.prev.controller_pause.unwrap_or(false) && cond.is_none() {
                return true;
            }
            if let (Some(d), Some(c)) = (&pause.duration, cond) {
                return self.now >= add_seconds(c.start_time.0, pause_duration_seconds(d));
            }
            return false;
        }
        if step.set_weight.is_some() {
            let (dn, ds) = self.desired_counts();
            let older: Vec<RsCounts> = self.others.iter().map(|rs| rs.counts()).collect();
            return at_desired_counts_with_threshold(
                self.progress_threshold(),
                dn,
                ds,
                self.new_rs.map(|rs| rs.counts()),
                self.stable_distinct().map(|rs| rs.counts()),
                &older,
            );
        }
        if step.analysis.is_some() {
            return self.step_analysis_successful;
        }
        // Header and mirror routes complete at once; experiment and plugin steps wait for
        // controllers that this version does not run yet.
        step.set_header_route.is_some() || step.set_mirror_route.is_some()
    }

    /// `spec.strategy.canary.replicaProgressThreshold` (Argo compares the type with "Percent"
    /// only; anything else counts pods).
    fn progress_threshold(&self) -> Option<ReplicaProgressThreshold> {
        let t = self
            .ro
            .spec
            .strategy
            .canary
            .as_ref()?
            .replica_progress_threshold
            .as_ref()?;
        Some(if t.type_ == "Percent" {
            ReplicaProgressThreshold::Percent(t.value)
        } else {
            ReplicaProgressThreshold::Pods(t.value)
        })
    }

    /// `shouldFullPromote`: a reason to mark the new ReplicaSet stable, if any.
    fn should_full_promote(&self) -> Option<String> {
        if self.stable_rs.is_none() {
            return Some("Initial deploy".into());
        }
        if self.aborted() {
            return None;
        }
        let new = self.new_rs?;
        if new.available() < self.replicas
            && !replica_progress_threshold_met(
                self.progress_threshold(),
                Some(new.counts()),
                self.replicas,
            )
        {
            return None;
        }
        if self.prev.promote_full.unwrap_or(false) {
            return Some("Full promotion requested".into());
        }
        let window = self.rollback_within_window();
        if window {
            return Some("Rollback within window".into());
        }
        if self.stable_hash() == self.new_hash {
            return Some("Fast rollback".into());
        }
        let n = self.steps.len();
        let idx = self.current_index();
        if n == 0 || idx == Some(n as i32) {
            return Some(format!("Completed all {n} canary steps"));
        }
        None
    }

    fn base_status(&self, step_hash: String) -> RolloutStatus {
        let mut st = self.prev.clone();
        st.current_pod_hash = Some(self.new_hash.clone());
        let sum = |f: fn(&ReplicaSet) -> i32| -> i32 { self.all.iter().map(|rs| f(rs)).sum() };
        st.replicas = Some(sum(RsExt::status_replicas));
        st.updated_replicas = Some(self.new_rs.map_or(0, RsExt::status_replicas));
        st.ready_replicas = Some(sum(RsExt::ready));
        st.available_replicas = Some(sum(RsExt::available));
        st.hpa_replicas = st.replicas;
        st.selector = self.ro.spec.selector.as_ref().map(format_selector);
        let promote_full = self.prev.promote_full.unwrap_or(false)
            && self.prev.stable_rs.as_ref() != Some(&self.new_hash);
        st.promote_full = promote_full.then_some(true);
        st.current_step_hash = Some(step_hash);
        st
    }

    /// Argo's `syncRolloutStatusCanary` after the scaling phase.
    fn sync_status(mut self, mut st: RolloutStatus) -> Plan {
        let n = self.step_count();
        let mut idx = self.current_index();
        if self.prev.promote_full.unwrap_or(false) || self.rollback_within_window() {
            self.clear_pause = true;
            self.remove_abort = true;
            if n > 0 {
                idx = Some(n);
            }
        }
        if let Some(reason) = self.should_full_promote() {
            self.promote_stable(&mut st, &reason);
            return self.persist(st);
        }
        if self.aborted() {
            if n > 0 {
                st.current_step_index =
                    Some(if st.stable_rs.as_deref() == Some(self.new_hash.as_str()) {
                        n
                    } else {
                        0
                    });
            }
            return self.persist(st);
        }
        if self.completed_current_step()
            && let (Some(step), Some(i)) = (self.current_step(), idx.as_mut())
        {
            let desc = step_string(step);
            *i += 1;
            if let Some(c) = st.canary.as_mut() {
                c.current_step_analysis_run_status = None;
            }
            self.event(
                false,
                REASON_ROLLOUT_STEP_COMPLETED,
                format!("Rollout step {i}/{n} completed ({desc})"),
            );
            self.remove_pause
                .push(PAUSE_REASON_CANARY_PAUSE_STEP.into());
        }
        st.current_step_index = idx;
        self.persist(st)
    }

    fn promote_stable(&mut self, st: &mut RolloutStatus, reason: &str) {
        self.clear_pause = true;
        self.remove_abort = true;
        st.promote_full = None;
        let n = self.step_count();
        st.current_step_index = if n > 0 { Some(n) } else { None };
        if st.stable_rs.as_deref() != Some(self.new_hash.as_str()) {
            st.stable_rs = Some(self.new_hash.clone());
            self.event(
                false,
                REASON_ROLLOUT_COMPLETED,
                format!(
                    "Rollout completed update to revision {} ({}): {}",
                    self.new_revision, self.new_hash, reason
                ),
            );
        }
    }

    fn is_indefinite_step(&self) -> bool {
        if let Some(s) = self.current_step()
            && (s.experiment.is_some() || s.analysis.is_some() || s.pause.is_some())
        {
            return true;
        }
        get_condition(&self.prev, CONDITION_PAUSED).is_some_and(|c| c.status == "True")
    }

    fn deadline_seconds(&self) -> i64 {
        i64::from(self.ro.spec.progress_deadline_seconds.unwrap_or(600))
    }

    /// `RolloutTimedOut` against a status's Progressing condition.
    fn timed_out(&self, st: &RolloutStatus) -> bool {
        let Some(c) = get_condition(st, CONDITION_PROGRESSING) else {
            return false;
        };
        let reason = c.reason.as_deref().unwrap_or("");
        if reason == REASON_ROLLOUT_ABORTED || reason == REASON_ROLLOUT_PAUSED {
            return false;
        }
        if reason == REASON_PROGRESS_DEADLINE_EXCEEDED {
            return true;
        }
        let Some(from) = time_of(&c.last_update_time) else {
            return false;
        };
        add_seconds(from, self.deadline_seconds()) < self.now
    }

    /// `RolloutProgressing`: did this reconcile observe any progress?
    fn progressing(&self, st: &RolloutStatus) -> bool {
        let old = &self.prev;
        let stable_change = st.stable_rs != old.stable_rs;
        let step_change =
            matches!((st.current_step_index, old.current_step_index), (Some(a), Some(b)) if a != b);
        let hash_change = st.current_step_hash != old.current_step_hash;
        let g = |v: Option<i32>| v.unwrap_or(0);
        let old_old = g(old.replicas) - g(old.updated_replicas);
        let new_old = g(st.replicas) - g(st.updated_replicas);
        g(st.updated_replicas) != g(old.updated_replicas)
            || new_old < old_old
            || g(st.ready_replicas) > g(old.ready_replicas)
            || g(st.available_replicas) > g(old.available_replicas)
            || stable_change
            || step_change
            || hash_change
    }

    /// `RolloutHealthy`.
    fn healthy(&self, st: &RolloutStatus) -> bool {
        let r = self.replicas;
        let n = self.steps.len() as i32;
        let all_steps = n == 0 || st.current_step_index.is_none_or(|i| i == n);
        let current_is_stable = is_completed(st);
        let scaled_down = st.replicas.unwrap_or(0) == r;
        st.updated_replicas.unwrap_or(0) == r
            && st.available_replicas.unwrap_or(0) == r
            && self.prev.observed_generation.as_deref() == Some(self.generation.as_str())
            && all_steps
            && current_is_stable
            && scaled_down
    }

    fn abort_message(&self) -> String {
        let mut m = format!("Rollout aborted update to revision {}", self.new_revision);
        if let Some(extra) = &self.add_abort {
            m = format!("{m}: {extra}");
        }
        m
    }

    /// `persistRolloutStatus`: deadline abort, pause and abort fields, conditions, phase.
    fn persist(mut self, mut st: RolloutStatus) -> Plan {
        st.observed_generation = Some(self.generation.clone());
        st.current_pod_hash = Some(self.new_hash.clone());

        // progressDeadlineAbort
        if self.ro.spec.progress_deadline_abort.unwrap_or(false)
            && !self.aborted()
            && !is_completed(&st)
            && !self.progressing(&st)
            && !self.is_indefinite_step()
            && self.timed_out(&self.prev)
        {
            let msg = format!(
                "ReplicaSet \"{}\" has timed out progressing.",
                self.new_name
            );
            self.add_abort = Some(msg.clone());
            self.event(true, REASON_ROLLOUT_ABORTED, msg);
        }

        self.calculate_pause_status(&mut st);
        self.calculate_conditions(&mut st);
        let (phase, message) = calculate_phase(&self.ro.spec, &st);
        st.phase = Some(phase);
        st.message = Some(message);

        // State-change events (sendStateChangeEvents).
        let prev_paused = self
            .prev
            .pause_conditions
            .as_ref()
            .is_some_and(|p| !p.is_empty());
        let paused = st.pause_conditions.as_ref().is_some_and(|p| !p.is_empty());
        if prev_paused != paused {
            if let Some(first) = st.pause_conditions.as_ref().and_then(|p| p.first()) {
                let msg = format!("Rollout is paused ({})", first.reason);
                self.event(false, REASON_ROLLOUT_PAUSED, msg);
            } else if st.aborted_at.is_none() {
                self.event(false, REASON_ROLLOUT_RESUMED, "Rollout is resumed".into());
            }
        }

        self.requeue_stuck(&st);
        if st != self.prev {
            self.plan.status = Some(st);
        }
        self.plan.requeue_after = self.requeue.iter().min().copied();
        self.plan
    }

    fn calculate_pause_status(&self, st: &mut RolloutStatus) {
        if self.aborted() {
            st.abort = Some(true);
            st.aborted_at = self
                .prev
                .aborted_at
                .clone()
                .or_else(|| Some(k8s_time(self.now)));
            st.pause_conditions = None;
            st.controller_pause = None;
            return;
        }
        st.abort = None;
        st.aborted_at = None;
        if self.clear_pause {
            st.pause_conditions = None;
            st.controller_pause = None;
            return;
        }
        let mut controller_pause = self.prev.controller_pause.unwrap_or(false);
        let mut conds: Vec<PauseCondition> = self
            .prev
            .pause_conditions
            .iter()
            .flatten()
            .filter(|c| !self.remove_pause.contains(&c.reason))
            .cloned()
            .collect();
        for reason in &self.add_pause {
            let exists = self
                .prev
                .pause_conditions
                .iter()
                .flatten()
                .any(|c| &c.reason == reason);
            if !exists {
                conds.push(PauseCondition {
                    reason: reason.clone(),
                    start_time: k8s_time(self.now),
                });
                controller_pause = true;
            }
        }
        if conds.is_empty() {
            st.pause_conditions = None;
            st.controller_pause = None;
        } else {
            st.pause_conditions = Some(conds);
            st.controller_pause = controller_pause.then_some(true);
        }
    }

    /// `calculateRolloutConditions`.
    fn calculate_conditions(&mut self, st: &mut RolloutStatus) {
        let now = self.now;
        remove_condition(st, CONDITION_INVALID_SPEC);
        let paused = st.pause_conditions.as_ref().is_some_and(|p| !p.is_empty())
            || self.ro.spec.paused.unwrap_or(false);
        let aborted = self.aborted();

        let had_healthy = get_condition(&self.prev, CONDITION_HEALTHY).is_some();
        let mut became_unhealthy = false;
        if !paused && self.healthy(st) {
            set_condition(
                st,
                new_condition(
                    CONDITION_HEALTHY,
                    "True",
                    REASON_ROLLOUT_HEALTHY,
                    "Rollout is healthy",
                    now,
                ),
            );
        } else if had_healthy {
            became_unhealthy = set_condition(
                st,
                new_condition(
                    CONDITION_HEALTHY,
                    "False",
                    REASON_ROLLOUT_HEALTHY,
                    "Rollout is not healthy",
                    now,
                ),
            );
        }

        if aborted {
            let msg = self.abort_message();
            if set_condition(
                st,
                new_condition(
                    CONDITION_PROGRESSING,
                    "False",
                    REASON_ROLLOUT_ABORTED,
                    &msg,
                    now,
                ),
            ) {
                self.event(true, REASON_ROLLOUT_ABORTED, msg);
            }
        }

        let current = get_condition(&self.prev, CONDITION_PROGRESSING).cloned();
        if !aborted {
            if self.healthy(st) {
                let msg = format!(
                    "ReplicaSet \"{}\" has successfully progressed.",
                    self.new_name
                );
                set_condition(
                    st,
                    new_condition(
                        CONDITION_PROGRESSING,
                        "True",
                        REASON_NEW_REPLICA_SET_AVAILABLE,
                        &msg,
                        now,
                    ),
                );
            } else if self.progressing(st) || became_unhealthy {
                let (reason, msg) = if is_completed(st) && became_unhealthy {
                    (
                        REASON_REPLICA_SET_NOT_AVAILABLE,
                        "Rollout does not have minimum availability".to_string(),
                    )
                } else {
                    (
                        REASON_REPLICA_SET_UPDATED,
                        format!("ReplicaSet \"{}\" is progressing.", self.new_name),
                    )
                };
                let mut c = new_condition(CONDITION_PROGRESSING, "True", reason, &msg, now);
                if let Some(cur) = &current {
                    if cur.status == "True" {
                        c.last_transition_time = cur.last_transition_time.clone();
                    }
                    remove_condition(st, CONDITION_PROGRESSING);
                }
                set_condition(st, c);
            } else if !self.is_indefinite_step() && self.timed_out(st) {
                let msg = format!(
                    "ReplicaSet \"{}\" has timed out progressing.",
                    self.new_name
                );
                set_condition(
                    st,
                    new_condition(
                        CONDITION_PROGRESSING,
                        "False",
                        REASON_PROGRESS_DEADLINE_EXCEEDED,
                        &msg,
                        now,
                    ),
                );
            }
        }

        let available: i32 = self.all.iter().map(|rs| rs.available()).sum();
        if available >= self.replicas {
            set_condition(
                st,
                new_condition(
                    CONDITION_AVAILABLE,
                    "True",
                    REASON_AVAILABLE,
                    "Rollout has minimum availability",
                    now,
                ),
            );
        } else {
            set_condition(
                st,
                new_condition(
                    CONDITION_AVAILABLE,
                    "False",
                    REASON_AVAILABLE,
                    "Rollout does not have minimum availability",
                    now,
                ),
            );
        }

        if let Some(f) = self.replica_failure() {
            set_condition(st, f);
        } else {
            remove_condition(st, CONDITION_REPLICA_FAILURE);
        }

        if is_completed(st) {
            set_condition(
                st,
                new_condition(
                    CONDITION_COMPLETED,
                    "True",
                    REASON_ROLLOUT_COMPLETED,
                    REASON_ROLLOUT_COMPLETED,
                    now,
                ),
            );
        } else if set_condition(
            st,
            new_condition(
                CONDITION_COMPLETED,
                "False",
                REASON_ROLLOUT_COMPLETED,
                REASON_ROLLOUT_COMPLETED,
                now,
            ),
        ) {
            let msg = format!(
                "Rollout not completed, started update to revision {} ({})",
                self.new_revision, self.new_hash
            );
            self.event(false, REASON_ROLLOUT_NOT_COMPLETED, msg);
        }
    }

    /// The first ReplicaFailure condition of the new ReplicaSet (or any other), as a rollout condition.
    fn replica_failure(&self) -> Option<crate::api::rollout::RolloutCondition> {
        let mut order: Vec<&ReplicaSet> = self.new_rs.into_iter().collect();
        order.extend(
            self.all
                .iter()
                .copied()
                .filter(|rs| Some(rs.name()) != self.new_rs.map(|n| n.name())),
        );
        for rs in order {
            for c in rs
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .into_iter()
                .flatten()
            {
                if c.type_ == CONDITION_REPLICA_FAILURE && c.status == "True" {
                    return Some(crate::api::rollout::RolloutCondition {
                        type_: c.type_.clone(),
                        status: c.status.clone(),
                        reason: c.reason.clone(),
                        message: c.message.clone(),
                        last_update_time: c.last_transition_time.clone(),
                        last_transition_time: c.last_transition_time.clone(),
                    });
                }
            }
        }
        None
    }

    /// `requeueStuckRollout`: look again exactly when the progress deadline would pass.
    fn requeue_stuck(&mut self, st: &RolloutStatus) {
        let Some(c) = get_condition(st, CONDITION_PROGRESSING) else {
            return;
        };
        let paused = st.pause_conditions.as_ref().is_some_and(|p| !p.is_empty())
            || self.ro.spec.paused.unwrap_or(false);
        if self.healthy(st)
            || c.reason.as_deref() == Some(REASON_PROGRESS_DEADLINE_EXCEEDED)
            || paused
            || st.abort.unwrap_or(false)
            || self.is_indefinite_step()
        {
            return;
        }
        let Some(from) = time_of(&c.last_update_time) else {
            return;
        };
        let deadline = add_seconds(from, self.deadline_seconds() + 1);
        self.requeue
            .push(until(self.now, deadline).unwrap_or(Duration::from_secs(1)));
    }
}

fn owner_reference(ro: &Rollout) -> OwnerReference {
    OwnerReference {
        api_version: "argoproj.io/v1alpha1".into(),
        kind: "Rollout".into(),
        name: ro.metadata.name.clone().unwrap_or_default(),
        uid: ro.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// `metav1.FormatLabelSelector` for the common cases (matchLabels, In/NotIn/Exists/DoesNotExist).
pub fn format_selector(sel: &LabelSelector) -> String {
    let mut parts: Vec<String> = sel
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in sel.match_expressions.iter().flatten() {
        let vals = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({vals})", e.key),
            "NotIn" => format!("{} notin ({vals})", e.key),
            "Exists" => e.key.clone(),
            "DoesNotExist" => format!("!{}", e.key),
            other => format!("{} {other} ({vals})", e.key),
        });
    }
    if parts.is_empty() {
        "<none>".into()
    } else {
        parts.join(",")
    }
}
