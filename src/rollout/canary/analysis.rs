//! The canary's AnalysisRuns (Argo's `reconcileAnalysisRuns`): which step and background runs
//! are current, built and collected by `rollout::analysis`; a run's phase may pause
//! (Inconclusive) or abort (Failed, Error) the rollout.

use super::Canary;
use crate::api::rollout::RolloutStatus;
use crate::rollout::analysis::{AnalysisInputs, reconcile_analysis};

impl Canary<'_> {
    /// Returns an InvalidSpec message when the runs cannot be built.
    pub(super) fn reconcile_analysis(&mut self, st: &mut RolloutStatus) -> Result<(), String> {
        let p = &self.cx.prev;
        let stable = self.cx.stable_hash().to_string();
        let fully_promoted =
            !stable.is_empty() && p.current_pod_hash.as_deref() == Some(stable.as_str());
        let cancel_all = fully_promoted
            || self.cx.aborted()
            || p.promote_full.unwrap_or(false)
            || stable == self.cx.rs.new_hash
            || self.rollback_within_window()
            || stable.is_empty();
        let obs = self.cx.obs;
        let out = reconcile_analysis(&AnalysisInputs {
            ro: self.cx.ro,
            runs: obs.analysis_runs,
            gone: obs.gone_runs,
            templates: obs.templates,
            cluster_templates: obs.cluster_templates,
            replica_sets: &self.cx.rs.all,
            prev: &self.cx.prev,
            new_hash: &self.cx.rs.new_hash,
            stable_hash: &stable,
            revision: self.cx.rs.new_revision.to_string(),
            step_index: self.current_index(),
            cancel_all,
            new_rs: self.cx.rs.new_rs,
        });
        let mut out = out;
        self.cx.take_analysis(&mut out)?;
        let canary = st.canary.get_or_insert_with(Default::default);
        canary.current_step_analysis_run_status = out.step;
        canary.current_background_analysis_run_status = out.background;
        self.step_analysis_successful = out.step_successful;
        Ok(())
    }
}
