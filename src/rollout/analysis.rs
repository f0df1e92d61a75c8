//! The Rollout side of analysis (reference §1.7, §1.16 "Rollout reaction"): which AnalysisRuns a
//! canary needs now (step and background), building them from templates, cancelling runs that
//! are no longer current, history GC, and how a run's phase pauses or aborts the rollout. Pure.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::analysis::args::{merge_args, rollout_args};
use crate::analysis::run::is_completed;
use crate::analysis::templates::{flatten, unique_rules};
use crate::api::analysis::{
    AnalysisRun, AnalysisRunSpec, AnalysisTemplate, ClusterAnalysisTemplate,
};
use crate::api::consts::*;
use crate::api::rollout::{Rollout, RolloutAnalysis, RolloutAnalysisRunStatus, RolloutStatus};
use crate::rollout::effects::PlannedEvent;
use crate::rollout::observed::RsExt;

/// What the analysis step of one reconcile decided.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AnalysisOutcome {
    pub create: Vec<AnalysisRun>,
    pub terminate: Vec<String>,
    pub delete: Vec<String>,
    pub step: Option<RolloutAnalysisRunStatus>,
    pub background: Option<RolloutAnalysisRunStatus>,
    /// Blue-green: the current pre- and post-promotion runs.
    pub pre: Option<RolloutAnalysisRunStatus>,
    pub post: Option<RolloutAnalysisRunStatus>,
    /// The phase of the current post-promotion run as this reconcile leaves it ("" for none).
    pub post_phase: String,
    /// The current step's run completed Successful.
    pub step_successful: bool,
    pub pause_inconclusive: bool,
    pub abort: Option<String>,
    pub events: Vec<PlannedEvent>,
    /// A referenced template is missing or the runs cannot be built: an InvalidSpec message.
    pub invalid: Option<String>,
}

/// Inputs the canary planner hands over.
pub struct AnalysisInputs<'a> {
    pub ro: &'a Rollout,
    pub runs: &'a [AnalysisRun],
    /// Runs the status names that a live read found deleted (Argo's `getAnalysisRunsForRollout`).
    pub gone: &'a [String],
    pub templates: &'a [AnalysisTemplate],
    pub cluster_templates: &'a [ClusterAnalysisTemplate],
    pub replica_sets: &'a [&'a ReplicaSet],
    pub prev: &'a RolloutStatus,
    pub new_hash: &'a str,
    pub stable_hash: &'a str,
    pub revision: String,
    pub step_index: Option<i32>,
    pub cancel_all: bool,
    /// The new ReplicaSet, if it exists (blue-green's saturation checks).
    pub new_rs: Option<&'a ReplicaSet>,
}

fn phase_of(run: &AnalysisRun) -> String {
    run.status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default()
}

/// The run as the Rollout's status records it. A run with no phase yet is `Pending`: Argo would
/// write an empty string, which API servers reject for this required field ("must be of type
/// string: null") — the status write would fail forever.
fn status_of(run: &AnalysisRun) -> RolloutAnalysisRunStatus {
    let phase = phase_of(run);
    RolloutAnalysisRunStatus {
        name: run.metadata.name.clone().unwrap_or_default(),
        status: if phase.is_empty() {
            ANALYSIS_PHASE_PENDING.to_string()
        } else {
            phase
        },
        message: run
            .status
            .as_ref()
            .and_then(|s| s.message.clone())
            .filter(|m| !m.is_empty()),
    }
}

fn needs_terminate(run: &AnalysisRun) -> bool {
    !run.spec.terminate.unwrap_or(false) && !is_completed(&phase_of(run))
}

fn has_pause(prev: &RolloutStatus, reason: &str) -> bool {
    prev.pause_conditions
        .iter()
        .flatten()
        .any(|p| p.reason == reason)
}

/// `needsNewAnalysisRun`. `adopted` says `current` is an orphan found by its labels rather than
/// named in status.
fn needs_new(current: Option<&AnalysisRun>, prev: &RolloutStatus, adopted: bool) -> bool {
    let Some(cur) = current else { return true };
    if prev.controller_pause.unwrap_or(false)
        && !has_pause(prev, PAUSE_REASON_CANARY_PAUSE_STEP)
        && !has_pause(prev, PAUSE_REASON_BLUE_GREEN_PAUSE)
    {
        return phase_of(cur) == ANALYSIS_PHASE_INCONCLUSIVE;
    }
    // `abortedAt` asks for a new run after a retry. An adopted run (live, see `orphan`) created
    // after the abort was recorded is that new run, made by a retry reconcile whose status write
    // is not in our cache yet: creating another would duplicate it. (Argo has no adoption; its
    // stale-cache check keeps it from getting here.)
    let Some(aborted_at) = prev.aborted_at.as_ref() else {
        return false;
    };
    let retry_run = adopted
        && cur
            .metadata
            .creation_timestamp
            .as_ref()
            .is_some_and(|c| c.0 > aborted_at.0);
    !retry_run
}

struct Ctx<'a, 'b> {
    i: &'b AnalysisInputs<'a>,
    out: AnalysisOutcome,
}

impl<'a, 'b> Ctx<'a, 'b> {
    /// A run named in status but not (yet) in the cache is treated as existing and pending, so a
    /// stale cache never makes us create a duplicate — unless a live read found it deleted: then
    /// it is gone and a new run measures again.
    fn current(&self, st: Option<&RolloutAnalysisRunStatus>) -> Option<AnalysisRun> {
        let name = st?.name.clone();
        if self.i.gone.contains(&name) {
            return None;
        }
        if let Some(r) = self
            .i
            .runs
            .iter()
            .find(|r| r.metadata.name.as_deref() == Some(name.as_str()))
        {
            return Some(r.clone());
        }
        Some(AnalysisRun {
            metadata: ObjectMeta {
                name: Some(name),
                ..ObjectMeta::default()
            },
            spec: AnalysisRunSpec::default(),
            status: None,
        })
    }

    /// A live run of this revision and kind that status does not name: one we created just before
    /// a crash (or a refused status write). Adopting it makes a restart resume it instead of
    /// starting a duplicate. Only unfinished, unterminated runs of this revision qualify: a
    /// completed one may be the result of an earlier attempt (before an abort and retry, or before
    /// a rollback after which the same template is a new revision) and would pass a step without
    /// analysis; at worst a lost run is measured again, as in Argo.
    fn orphan(&self, kind: &str, step: Option<i32>) -> Option<AnalysisRun> {
        self.i
            .runs
            .iter()
            .filter(|r| !r.spec.terminate.unwrap_or(false) && !is_completed(&phase_of(r)))
            .filter(|r| {
                let l = r.metadata.labels.clone().unwrap_or_default();
                let revision = r
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(ANNOTATION_REVISION));
                l.get(LABEL_ROLLOUT_TYPE).map(String::as_str) == Some(kind)
                    && l.get(LABEL_POD_TEMPLATE_HASH).map(String::as_str) == Some(self.i.new_hash)
                    && l.get(LABEL_STEP_INDEX).cloned() == step.map(|s| s.to_string())
                    && revision == Some(&self.i.revision)
            })
            .max_by_key(|r| r.metadata.creation_timestamp.as_ref().map(|t| t.0))
            .cloned()
    }

    /// When `current` needs replacing, a live run of the same kind and step created after it: a
    /// replacement made by a reconcile whose status write is not in our cache yet. Creating
    /// another would duplicate it, and this reconcile would then terminate the replacement as
    /// "not current" (a terminated run ends Successful, so a step could pass unanalysed).
    fn replacement(
        &self,
        kind: &str,
        step: Option<i32>,
        current: Option<&AnalysisRun>,
    ) -> Option<AnalysisRun> {
        let cur = current?;
        let cur_created = cur.metadata.creation_timestamp.as_ref()?.0;
        self.orphan(kind, step).filter(|r| {
            r.metadata.name != cur.metadata.name
                && r.metadata
                    .creation_timestamp
                    .as_ref()
                    .is_some_and(|t| t.0 > cur_created)
        })
    }

    fn cancel(&mut self, run: &AnalysisRun) {
        if needs_terminate(run)
            && let Some(n) = &run.metadata.name
            && self
                .i
                .runs
                .iter()
                .any(|r| r.metadata.name.as_ref() == Some(n))
            && !self.out.terminate.contains(n)
        {
            self.out.terminate.push(n.clone());
        }
    }

    fn unique_name(&self, base: &str) -> String {
        let taken = |n: &str| {
            self.i
                .runs
                .iter()
                .any(|r| r.metadata.name.as_deref() == Some(n))
                || self
                    .out
                    .create
                    .iter()
                    .any(|r| r.metadata.name.as_deref() == Some(n))
        };
        if !taken(base) {
            return base.to_string();
        }
        (1..)
            .map(|k| format!("{base}.{k}"))
            .find(|n| !taken(n))
            .unwrap_or_else(|| base.to_string())
    }

    fn build(
        &mut self,
        analysis: &RolloutAnalysis,
        infix: Option<String>,
        mut labels: BTreeMap<String, String>,
    ) -> Option<AnalysisRun> {
        let ro = self.i.ro;
        let mut parts = vec![
            ro.metadata.name.clone().unwrap_or_default(),
            self.i.new_hash.to_string(),
            self.i.revision.clone(),
        ];
        if let Some(x) = infix {
            parts.push(x);
        }
        let name = self.unique_name(&parts.join("-"));
        let flat = match flatten(
            analysis.templates.as_deref().unwrap_or(&[]),
            self.i.templates,
            self.i.cluster_templates,
        ) {
            Ok(f) => f,
            Err(e) => {
                self.out.invalid = Some(e);
                return None;
            }
        };
        let metrics = flat.metrics;
        let template_args = flat.args;
        // Argo's `NewAnalysisRunFromTemplates`: the Rollout's rules first, then the templates'.
        let mut dry_run = analysis.dry_run.clone().unwrap_or_default();
        dry_run.extend(flat.dry_run);
        let mut retention = analysis.measurement_retention.clone().unwrap_or_default();
        retention.extend(flat.measurement_retention);
        let rules = unique_rules(&dry_run, |d| &d.metric_name, "Dry-Run")
            .and_then(|()| unique_rules(&retention, |m| &m.metric_name, "Measurement Retention"));
        if let Err(e) = rules {
            self.out.invalid = Some(e);
            return None;
        }
        let supplied = match rollout_args(
            analysis.args.as_deref().unwrap_or(&[]),
            ro,
            self.i.stable_hash,
            self.i.new_hash,
        ) {
            Ok(a) => a,
            Err(e) => {
                self.out.invalid = Some(e.to_string());
                return None;
            }
        };
        let args = match merge_args(&supplied, &template_args) {
            Ok(a) => a,
            Err(e) => {
                self.out.invalid = Some(e.to_string());
                return None;
            }
        };
        if let Some(md) = &analysis.analysis_run_metadata {
            labels.extend(md.labels.clone().unwrap_or_default());
        }
        if let Some(ml) = ro
            .spec
            .selector
            .as_ref()
            .and_then(|s| s.match_labels.clone())
        {
            labels.extend(ml);
        }
        let mut annotations =
            BTreeMap::from([(ANNOTATION_REVISION.to_string(), self.i.revision.clone())]);
        if let Some(md) = &analysis.analysis_run_metadata {
            annotations.extend(md.annotations.clone().unwrap_or_default());
        }
        let run = AnalysisRun {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: ro.metadata.namespace.clone(),
                labels: Some(labels),
                annotations: Some(annotations),
                owner_references: Some(vec![OwnerReference {
                    api_version: API_VERSION.into(),
                    kind: "Rollout".into(),
                    name: ro.metadata.name.clone().unwrap_or_default(),
                    uid: ro.metadata.uid.clone().unwrap_or_default(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]),
                ..ObjectMeta::default()
            },
            spec: AnalysisRunSpec {
                metrics,
                args: (!args.is_empty()).then_some(args),
                dry_run: (!dry_run.is_empty()).then_some(dry_run),
                measurement_retention: (!retention.is_empty()).then_some(retention),
                ..AnalysisRunSpec::default()
            },
            status: None,
        };
        self.out.create.push(run.clone());
        Some(run)
    }

    fn base_labels(&self, kind: &str) -> BTreeMap<String, String> {
        let mut l = BTreeMap::from([
            (
                LABEL_POD_TEMPLATE_HASH.to_string(),
                self.i.new_hash.to_string(),
            ),
            (LABEL_ROLLOUT_TYPE.to_string(), kind.to_string()),
        ]);
        if let Some(id) = self
            .i
            .ro
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(LABEL_CONTROLLER_INSTANCE_ID))
        {
            l.insert(LABEL_CONTROLLER_INSTANCE_ID.into(), id.clone());
        }
        l
    }

    /// React to a current run's phase: Inconclusive pauses, Failed/Error abort.
    fn react(&mut self, run: &AnalysisRun, what: &str) {
        match phase_of(run).as_str() {
            ANALYSIS_PHASE_INCONCLUSIVE => self.out.pause_inconclusive = true,
            ANALYSIS_PHASE_ERROR | ANALYSIS_PHASE_FAILED => {
                let mut msg = format!("{what} analysis phase error/failed");
                if let Some(m) = run
                    .status
                    .as_ref()
                    .and_then(|s| s.message.as_deref())
                    .filter(|m| !m.is_empty())
                {
                    msg.push_str(": ");
                    msg.push_str(m);
                }
                self.out.abort = Some(msg);
            }
            _ => {}
        }
    }

    fn step_run(&mut self) -> Option<AnalysisRun> {
        let prev = self.i.prev;
        let current = self.current(
            prev.canary
                .as_ref()
                .and_then(|c| c.current_step_analysis_run_status.as_ref()),
        );
        let steps = self.i.ro.spec.canary_steps();
        let index = self.i.step_index;
        let step = index.and_then(|i| steps.get(usize::try_from(i).ok()?));
        if prev
            .pause_conditions
            .as_ref()
            .is_some_and(|p| !p.is_empty())
            || prev.abort.unwrap_or(false)
        {
            return current;
        }
        let analysis = step
            .and_then(|s| s.analysis.as_ref())
            .filter(|a| a.templates.as_ref().is_some_and(|t| !t.is_empty()));
        let from_previous_step = analysis.is_some()
            && current.as_ref().is_some_and(|c| {
                c.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(LABEL_STEP_INDEX))
                    .cloned()
                    != index.map(|i| i.to_string())
                    && c.metadata.labels.is_some()
            });
        let (Some(analysis), Some(i)) = (analysis, index) else {
            if let Some(c) = &current {
                self.cancel(c);
            }
            return None;
        };
        if from_previous_step {
            if let Some(c) = &current {
                self.cancel(c);
            }
            return None;
        }
        let adopted = current.is_none();
        let mut current = current.or_else(|| self.orphan(ROLLOUT_TYPE_STEP, Some(i)));
        if needs_new(current.as_ref(), prev, adopted) {
            match self.replacement(ROLLOUT_TYPE_STEP, Some(i), current.as_ref()) {
                Some(r) => current = Some(r),
                None => {
                    let mut labels = self.base_labels(ROLLOUT_TYPE_STEP);
                    labels.insert(LABEL_STEP_INDEX.into(), i.to_string());
                    return self.build(analysis, Some(i.to_string()), labels);
                }
            }
        }
        let cur = current?;
        self.react(&cur, "Step-based");
        if phase_of(&cur) == ANALYSIS_PHASE_SUCCESSFUL {
            self.out.step_successful = true;
        }
        Some(cur)
    }

    fn background_run(&mut self) -> Option<AnalysisRun> {
        let prev = self.i.prev;
        let current = self.current(
            prev.canary
                .as_ref()
                .and_then(|c| c.current_background_analysis_run_status.as_ref()),
        );
        let canary = self.i.ro.spec.strategy.canary.as_ref()?;
        let Some(bg) = canary.analysis.as_ref().filter(|a| {
            a.rollout_analysis
                .templates
                .as_ref()
                .is_some_and(|t| !t.is_empty())
        }) else {
            if let Some(c) = &current {
                self.cancel(c);
            }
            return None;
        };
        let fully_promoted = !self.i.stable_hash.is_empty()
            && prev.current_pod_hash.as_deref() == Some(self.i.stable_hash);
        let before_start = bg
            .starting_step
            .is_some_and(|s| self.i.step_index.is_some_and(|i| i < s));
        if fully_promoted
            || self.i.stable_hash.is_empty()
            || prev.current_pod_hash.as_deref().unwrap_or("").is_empty()
            || before_start
        {
            return None;
        }
        if has_pause(prev, PAUSE_REASON_INCONCLUSIVE_ANALYSIS_RUN) {
            return current;
        }
        let adopted = current.is_none();
        let mut current = current.or_else(|| self.orphan(ROLLOUT_TYPE_BACKGROUND, None));
        if needs_new(current.as_ref(), prev, adopted) {
            match self.replacement(ROLLOUT_TYPE_BACKGROUND, None, current.as_ref()) {
                Some(r) => current = Some(r),
                None => {
                    let labels = self.base_labels(ROLLOUT_TYPE_BACKGROUND);
                    return self.build(&bg.rollout_analysis, None, labels);
                }
            }
        }
        let cur = current?;
        self.react(&cur, "Background");
        Some(cur)
    }

    /// Argo's `reconcilePrePromotionAnalysisRun` / `reconcilePostPromotionAnalysisRun`.
    fn promotion_run(&mut self, pre: bool) -> Option<AnalysisRun> {
        let prev = self.i.prev;
        let b = prev.blue_green.clone().unwrap_or_default();
        let current = self.current(if pre {
            b.pre_promotion_analysis_run_status.as_ref()
        } else {
            b.post_promotion_analysis_run_status.as_ref()
        });
        let bg = self.i.ro.spec.strategy.blue_green.as_ref()?;
        let analysis = if pre {
            bg.pre_promotion_analysis.as_ref()
        } else {
            bg.post_promotion_analysis.as_ref()
        }
        .filter(|a| a.templates.as_ref().is_some_and(|t| !t.is_empty()));
        let Some(analysis) = analysis else {
            if let Some(c) = &current {
                self.cancel(c);
            }
            return None;
        };
        if self.skip_promotion_run(pre, current.as_ref()) {
            if let Some(c) = &current {
                self.cancel(c);
            }
            return current;
        }
        if has_pause(prev, PAUSE_REASON_INCONCLUSIVE_ANALYSIS_RUN) {
            return current;
        }
        let (kind, infix, what) = if pre {
            (
                ROLLOUT_TYPE_PRE_PROMOTION,
                "pre",
                "Blue/green pre-promotion",
            )
        } else {
            (
                ROLLOUT_TYPE_POST_PROMOTION,
                "post",
                "Blue/green post-promotion",
            )
        };
        let adopted = current.is_none();
        let mut current = current.or_else(|| self.orphan(kind, None));
        if needs_new(current.as_ref(), prev, adopted) {
            match self.replacement(kind, None, current.as_ref()) {
                Some(r) => current = Some(r),
                None => {
                    let labels = self.base_labels(kind);
                    return self.build(analysis, Some(infix.to_string()), labels);
                }
            }
        }
        let cur = current?;
        self.react(&cur, what);
        Some(cur)
    }

    /// Argo's `skipPrePromotionAnalysisRun` / `skipPostPromotionAnalysisRun`.
    fn skip_promotion_run(&self, pre: bool, current: Option<&AnalysisRun>) -> bool {
        let i = self.i;
        let hash = i.new_hash;
        let active = i
            .prev
            .blue_green
            .as_ref()
            .and_then(|b| b.active_selector.as_deref())
            .unwrap_or("");
        let stable = i.prev.stable_rs.as_deref().unwrap_or("");
        let skip = if pre {
            stable == hash || active.is_empty() || active == hash || hash.is_empty()
        } else {
            stable == hash || active != hash || hash.is_empty()
        };
        if skip {
            return true;
        }
        if current.is_some() {
            return false;
        }
        let Some(new) = i.new_rs else { return true };
        let replicas = i.ro.spec.replicas.unwrap_or(1);
        let preview =
            i.ro.spec
                .strategy
                .blue_green
                .as_ref()
                .and_then(|b| b.preview_replica_count);
        if pre && let Some(count) = preview {
            return new.spec_replicas() != count || new.available() != count;
        }
        let desired = new
            .annotations()
            .get(ANNOTATION_DESIRED_REPLICAS)
            .and_then(|d| d.parse::<i32>().ok());
        let saturated = new.spec_replicas() == replicas
            && desired == Some(replicas)
            && new.available() == replicas;
        !saturated
    }

    /// Every run that is not current is stopped, and the history limits are kept among them.
    fn retire_others(&mut self, current: &[&Option<AnalysisRun>]) {
        let names: Vec<&String> = current
            .iter()
            .filter_map(|r| r.as_ref()?.metadata.name.as_ref())
            .collect();
        let others: Vec<&'a AnalysisRun> = self
            .i
            .runs
            .iter()
            .filter(|r| r.metadata.name.as_ref().is_none_or(|n| !names.contains(&n)))
            .collect();
        for r in &others {
            self.cancel(r);
        }
        self.history(&others);
    }

    fn event_for(
        &mut self,
        prev: Option<&RolloutAnalysisRunStatus>,
        run: Option<&AnalysisRun>,
        kind: &str,
    ) {
        let Some(run) = run else { return };
        let phase = phase_of(run);
        if phase.is_empty() {
            return;
        }
        let name = run.metadata.name.clone().unwrap_or_default();
        let changed = match prev {
            None => true,
            Some(p) => p.name == name && p.status != phase,
        };
        if changed {
            let before = prev.map_or("NoPreviousStatus".to_string(), |p| p.status.clone());
            self.out.events.push(PlannedEvent {
                warning: phase == ANALYSIS_PHASE_FAILED || phase == ANALYSIS_PHASE_ERROR,
                reason: format!("AnalysisRun{phase}"),
                message: format!(
                    "{kind} Analysis Run '{name}' Status New: '{phase}' Previous: '{before}'"
                ),
            });
        }
    }

    /// `FilterAnalysisRunsToDelete`: keep the newest N successful and N unsuccessful non-current runs.
    fn history(&mut self, others: &[&AnalysisRun]) {
        let strategy = self.i.ro.spec.analysis.as_ref();
        let keep_ok = strategy
            .and_then(|a| a.successful_run_history_limit)
            .unwrap_or(5)
            .max(0) as usize;
        let keep_bad = strategy
            .and_then(|a| a.unsuccessful_run_history_limit)
            .unwrap_or(5)
            .max(0) as usize;
        let hashes: BTreeMap<String, bool> = self
            .i
            .replica_sets
            .iter()
            .filter_map(|rs| rs.hash().map(|h| (h.to_string(), rs.deleting())))
            .collect();
        let mut sorted: Vec<&&AnalysisRun> = others.iter().collect();
        sorted.sort_by_key(|r| {
            std::cmp::Reverse(r.metadata.creation_timestamp.as_ref().map(|t| t.0))
        });
        let (mut ok, mut bad) = (0usize, 0usize);
        for r in sorted {
            let name = r.metadata.name.clone().unwrap_or_default();
            let hash = r
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(LABEL_POD_TEMPLATE_HASH));
            let delete = match hash.and_then(|h| hashes.get(h)) {
                None => true,
                Some(true) => true,
                Some(false) => match phase_of(r).as_str() {
                    ANALYSIS_PHASE_SUCCESSFUL => {
                        ok += 1;
                        ok > keep_ok
                    }
                    ANALYSIS_PHASE_FAILED | ANALYSIS_PHASE_ERROR | ANALYSIS_PHASE_INCONCLUSIVE => {
                        bad += 1;
                        bad > keep_bad
                    }
                    _ => false,
                },
            };
            if delete {
                self.out.delete.push(name);
            }
        }
    }
}

/// `reconcileAnalysisRuns` for blue-green: the pre- and post-promotion runs. Cancelled runs stay
/// current (Argo keeps blue-green's runs in status once stable).
fn reconcile_blue_green(mut c: Ctx) -> AnalysisOutcome {
    let i = c.i;
    let b = i.prev.blue_green.clone().unwrap_or_default();
    let (pre, post) = if i.cancel_all {
        let pre = c.current(b.pre_promotion_analysis_run_status.as_ref());
        let post = c.current(b.post_promotion_analysis_run_status.as_ref());
        for r in pre.iter().chain(post.iter()) {
            c.cancel(r);
        }
        (pre, post)
    } else {
        let pre = c.promotion_run(true);
        let post = c.promotion_run(false);
        (pre, post)
    };
    c.retire_others(&[&pre, &post]);
    c.event_for(
        b.post_promotion_analysis_run_status.as_ref(),
        post.as_ref(),
        ROLLOUT_TYPE_POST_PROMOTION,
    );
    c.event_for(
        b.pre_promotion_analysis_run_status.as_ref(),
        pre.as_ref(),
        ROLLOUT_TYPE_PRE_PROMOTION,
    );
    c.out.pre = pre.as_ref().map(status_of);
    c.out.post = post.as_ref().map(status_of);
    c.out.post_phase = post.as_ref().map(phase_of).unwrap_or_default();
    c.out
}

/// `reconcileAnalysisRuns` for a canary.
pub fn reconcile_analysis(i: &AnalysisInputs) -> AnalysisOutcome {
    let mut c = Ctx {
        i,
        out: AnalysisOutcome::default(),
    };
    if i.ro.spec.strategy.blue_green.is_some() {
        return reconcile_blue_green(c);
    }
    let prev_canary = i.prev.canary.clone().unwrap_or_default();
    let (step, background) = if i.cancel_all {
        for st in [
            prev_canary.current_step_analysis_run_status.as_ref(),
            prev_canary.current_background_analysis_run_status.as_ref(),
        ] {
            if let Some(run) = c.current(st) {
                c.cancel(&run);
            }
        }
        (None, None)
    } else {
        (c.step_run(), c.background_run())
    };
    c.retire_others(&[&step, &background]);
    c.event_for(
        prev_canary.current_step_analysis_run_status.as_ref(),
        step.as_ref(),
        "Step",
    );
    c.event_for(
        prev_canary.current_background_analysis_run_status.as_ref(),
        background.as_ref(),
        "Background",
    );
    c.out.step = step.as_ref().map(status_of);
    c.out.background = background.as_ref().map(status_of);
    c.out
}
