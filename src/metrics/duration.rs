//! The rollout duration histograms (Argo's `rollout_duration_seconds`,
//! `rollout_progression_duration_seconds`, `rollout_manual_pause_duration_seconds`): one
//! observation per finished update attempt, labelled only by its completion status.

use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use crate::api::rollout::RolloutDurationStatus;

/// `rollout_duration_seconds` buckets: wall-clock time of an update attempt (Argo's).
pub const ROLLOUT_DURATION_BUCKETS: [f64; 11] = [
    30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0,
];
/// `rollout_progression_duration_seconds` buckets: the attempt less its manual pauses (Argo's).
pub const ROLLOUT_PROGRESSION_BUCKETS: [f64; 8] =
    [30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0];
/// `rollout_manual_pause_duration_seconds` buckets: time waiting for a person (Argo's).
pub const ROLLOUT_MANUAL_PAUSE_BUCKETS: [f64; 9] = [
    0.0, 60.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0,
];

/// Observations of one histogram family for one label value.
#[derive(Clone, Debug, Default)]
pub(super) struct Hist {
    /// Non-cumulative counts per bucket of the family (the +Inf bucket is `count`).
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Hist {
    pub fn observe(&mut self, bounds: &[f64], v: f64) {
        self.buckets.resize(bounds.len(), 0);
        if let Some(i) = bounds.iter().position(|b| v <= *b) {
            self.buckets[i] += 1;
        }
        self.sum += v;
        self.count += 1;
    }

    /// `(upper bound, count)` pairs as the encoder takes them (it accumulates them itself).
    fn pairs(&self, bounds: &[f64]) -> Vec<(f64, u64)> {
        bounds
            .iter()
            .enumerate()
            .map(|(i, b)| (*b, self.buckets.get(i).copied().unwrap_or(0)))
            .collect()
    }
}

/// The three rollout duration histograms of one completion status.
#[derive(Clone, Debug, Default)]
pub(super) struct Durations {
    pub total: Hist,
    pub progression: Hist,
    pub manual_pause: Hist,
}

/// `(total, progression, manual pause)` seconds of a finished attempt, as Argo's
/// `EmitRolloutDuration` computes them; `None` until it has started, finished and has a
/// completion status.
pub fn rollout_durations(d: &RolloutDurationStatus) -> Option<(String, f64, f64, f64)> {
    let started = d.rollout_started_at.as_ref()?.0;
    let finished = d.finished_at.as_ref()?.0;
    let status = d.completion_status.clone().filter(|s| !s.is_empty())?;
    let total = finished.duration_since(started).as_secs_f64();
    let paused = d.total_manual_pause_duration_seconds.unwrap_or(0) as f64;
    Some((status, total, total - paused, paused))
}

/// The three families, one series set per completion status.
pub(super) fn encode(
    enc: &mut DescriptorEncoder<'_>,
    durations: &[(String, Durations)],
) -> Result<(), std::fmt::Error> {
    type PickHist = fn(&Durations) -> &Hist;
    let families: [(&str, &str, &[f64], PickHist); 3] = [
        (
            "rollout_duration_seconds",
            "Total wall-clock time for a rollout from start to completion/abort/supersede",
            &ROLLOUT_DURATION_BUCKETS,
            |d| &d.total,
        ),
        (
            "rollout_progression_duration_seconds",
            "Active progression time for a rollout (excluding manual pause time)",
            &ROLLOUT_PROGRESSION_BUCKETS,
            |d| &d.progression,
        ),
        (
            "rollout_manual_pause_duration_seconds",
            "Time spent in manual pause waiting for human intervention",
            &ROLLOUT_MANUAL_PAUSE_BUCKETS,
            |d| &d.manual_pause,
        ),
    ];
    for (name, help, bounds, pick) in families {
        let mut m = enc.encode_descriptor(name, help, None, MetricType::Histogram)?;
        for (status, d) in durations {
            let h = pick(d);
            m.encode_family(&[("status", status.as_str())])?
                .encode_histogram::<NoLabelSet>(h.sum, h.count, &h.pairs(bounds), None)?;
        }
    }
    Ok(())
}
