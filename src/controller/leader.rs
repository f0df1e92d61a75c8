//! Leader election on a `coordination.k8s.io/v1` Lease, with client-go's timing model (lease
//! duration / renew deadline / retry period). Only the holder reconciles and writes; a standby keeps
//! its caches warm and serves health and metrics.
//!
//! Safety argument: the holder stamps each renewal with the instant *before* the request left, and
//! stops counting itself the leader `renew_deadline` after the last successful renewal. A candidate
//! only takes over `lease_duration` after it *saw* the record change, which is after that renewal
//! was sent. With `renew_deadline < lease_duration` the old holder has stopped writing at least
//! `lease_duration - renew_deadline` (5 s by default) before anyone else can acquire. "Stopped" is
//! enforced twice: [`Leadership::is_leading`] turns false at the deadline by itself, and every
//! write the controllers make goes through the one [`Writer`](super::write::Writer), which checks
//! it last, after the rate-limit wait, and sends nothing when it is false (a test keeps any other
//! file from calling a write method); and the binary exits the process when [`Elector::run`]
//! reports the loss, so nothing that was in flight survives. The elector's own Lease writes are
//! the one exception: they are how leadership is won and kept, so they cannot wait for it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::Stream;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{PostParams, Resource};
use kube::{Api, Client};
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

/// Base name of the Lease (Argo's is `argo-rollouts-controller-lock`).
pub const LEASE_NAME: &str = "sluice-controller-lock";

/// The Lease name for an instance id: instances elect their leaders independently.
pub fn lease_name(instance_id: &str) -> String {
    if instance_id.is_empty() {
        LEASE_NAME.to_string()
    } else {
        format!("{LEASE_NAME}-{instance_id}")
    }
}

/// Whether this replica may write. Cheap to clone and to query; shared by the elector (which
/// grants and renews), the reconciler (which checks) and the metrics (which report).
#[derive(Clone)]
pub struct Leadership {
    inner: Arc<Inner>,
}

struct Inner {
    /// Origin for `valid_until_ns`.
    epoch: Instant,
    /// Leadership is valid until `epoch + valid_until_ns`; 0 means not leading, `u64::MAX` always.
    valid_until_ns: AtomicU64,
    /// Set once leadership is lost for good; never cleared (the process exits).
    lost: AtomicBool,
    /// Bumped on each acquisition, to trigger a full reconcile.
    acquired: watch::Sender<u64>,
}

impl std::fmt::Debug for Leadership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leadership")
            .field("leading", &self.is_leading())
            .finish()
    }
}

impl Default for Leadership {
    fn default() -> Self {
        Leadership::always()
    }
}

impl Leadership {
    fn with(valid_until_ns: u64) -> Self {
        let (acquired, _) = watch::channel(0);
        Leadership {
            inner: Arc::new(Inner {
                epoch: Instant::now(),
                valid_until_ns: AtomicU64::new(valid_until_ns),
                lost: AtomicBool::new(false),
                acquired,
            }),
        }
    }

    /// Leader election disabled (`--leader-elect=false`): always the leader.
    pub fn always() -> Self {
        Leadership::with(u64::MAX)
    }

    /// A candidate that starts as a standby and waits for [`Elector::run`] to grant it.
    pub fn standby() -> Self {
        Leadership::with(0)
    }

    /// True while this replica holds a lease whose renew deadline has not passed.
    pub fn is_leading(&self) -> bool {
        if self.inner.lost.load(Ordering::SeqCst) {
            return false;
        }
        match self.inner.valid_until_ns.load(Ordering::SeqCst) {
            0 => false,
            u64::MAX => true,
            until => (self.inner.epoch.elapsed().as_nanos() as u64) < until,
        }
    }

    /// Yields once every time leadership is acquired (never for [`Leadership::always`]).
    pub fn acquired(&self) -> impl Stream<Item = ()> + Send + 'static {
        let rx = self.inner.acquired.subscribe();
        futures::stream::unfold(rx, |mut rx| async move {
            rx.changed().await.ok()?;
            Some(((), rx))
        })
    }

    /// Resolves once this replica leads (at once for [`Leadership::always`]).
    pub async fn wait_leading(&self) {
        let mut rx = self.inner.acquired.subscribe();
        while !self.is_leading() {
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Grant (or extend) leadership until `until`.
    fn grant_until(&self, until: Instant) {
        let first = self.inner.valid_until_ns.load(Ordering::SeqCst) == 0;
        let ns = until.saturating_duration_since(self.inner.epoch).as_nanos() as u64;
        self.inner
            .valid_until_ns
            .store(ns.clamp(1, u64::MAX - 1), Ordering::SeqCst);
        if first {
            self.inner.acquired.send_modify(|n| *n += 1);
        }
    }

    fn lose(&self) {
        self.inner.lost.store(true, Ordering::SeqCst);
        self.inner.valid_until_ns.store(0, Ordering::SeqCst);
    }
}

/// Timing and identity of the election (Argo's defaults: 15 s / 10 s / 2 s).
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// Unique per process (or per pod, which a container restart keeps).
    pub identity: String,
    /// How long a candidate waits after it last saw the record change before taking over.
    pub lease_duration: Duration,
    /// How long the holder keeps leading without a successful renewal.
    pub renew_deadline: Duration,
    /// Interval between acquire and renew attempts.
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// client-go's constraints: the holder must give up before a candidate can take over, and
    /// must get a few attempts in before its deadline.
    pub fn validate(&self) -> Result<(), String> {
        if self.renew_deadline >= self.lease_duration {
            return Err(
                "leader election renew deadline must be shorter than the lease duration".into(),
            );
        }
        if self.retry_period.mul_f64(1.2) >= self.renew_deadline {
            return Err(
                "leader election retry period (×1.2) must be shorter than the renew deadline"
                    .into(),
            );
        }
        if self.retry_period.is_zero() {
            return Err("leader election retry period must be positive".into());
        }
        Ok(())
    }
}

/// Why [`Elector::run`] returned.
#[derive(Debug, thiserror::Error)]
pub enum Lost {
    #[error("could not renew the lease within the renew deadline ({0:?})")]
    RenewDeadline(Duration),
    #[error("lease taken over by {0}")]
    TakenOver(String),
}

/// The record fields that tell whether the holder is alive.
#[derive(Clone, Debug, PartialEq)]
struct Observed {
    holder: String,
    renew_time: Option<String>,
    transitions: i32,
    duration_secs: Option<i32>,
}

impl Observed {
    fn of(lease: &Lease) -> Observed {
        let spec = lease.spec.clone().unwrap_or_default();
        Observed {
            holder: spec.holder_identity.unwrap_or_default(),
            renew_time: spec.renew_time.map(|t| t.0.to_string()),
            transitions: spec.lease_transitions.unwrap_or(0),
            duration_secs: spec.lease_duration_seconds,
        }
    }
}

/// Campaigns for and renews one Lease.
pub struct Elector {
    api: Api<Lease>,
    cfg: LeaseConfig,
    leadership: Leadership,
}

enum Attempt {
    /// We hold the lease; the request that proved it left at this instant.
    Held(Instant),
    /// Someone else holds a live lease.
    Other(String),
    /// The request failed (transport, conflict, forbidden …); try again later.
    Failed(String),
}

fn now_micro() -> MicroTime {
    MicroTime(jiff::Timestamp::now())
}

impl Elector {
    pub fn new(client: Client, cfg: LeaseConfig, leadership: Leadership) -> Self {
        Elector {
            api: Api::namespaced(client, &cfg.namespace),
            cfg,
            leadership,
        }
    }

    pub fn config(&self) -> &LeaseConfig {
        &self.cfg
    }

    /// Campaign until elected (once `ready` is set: a replica whose caches have not synced must not
    /// lead), then renew until the lease is lost. Returns only on loss; the caller must then stop
    /// every write at once (the binary exits).
    pub async fn run(&self, ready: Arc<AtomicBool>) -> Lost {
        while !ready.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        info!(
            lease = %format!("{}/{}", self.cfg.namespace, self.cfg.name),
            identity = %self.cfg.identity,
            "campaigning for leadership"
        );
        self.acquire().await;
        self.renew().await
    }

    /// Poll until the lease is ours. A live holder's record is trusted for `lease_duration` after we
    /// last saw it change (local clock only, as client-go: no cross-node clock comparison).
    async fn acquire(&self) {
        let mut seen: Option<(Observed, Instant)> = None;
        let mut last_holder = String::new();
        loop {
            let attempt_start = Instant::now();
            let wait = match self.try_acquire(&mut seen).await {
                Attempt::Held(sent) => {
                    self.leadership.grant_until(sent + self.cfg.renew_deadline);
                    info!(identity = %self.cfg.identity, "acquired leadership");
                    return;
                }
                Attempt::Other(holder) => {
                    if holder != last_holder {
                        info!(leader = %holder, "another replica leads; standing by");
                        last_holder = holder;
                    }
                    // Wake exactly when the observed record would expire, if that is sooner than
                    // the next regular poll: takeover then costs lease duration + at most one retry
                    // period of observation lag.
                    let expiry = seen.as_ref().map(|(o, at)| *at + self.duration_of(o));
                    let regular = self.cfg.retry_period;
                    match expiry {
                        Some(e) if e > attempt_start && e - attempt_start < regular => {
                            e - attempt_start + Duration::from_millis(5)
                        }
                        _ => regular,
                    }
                }
                Attempt::Failed(why) => {
                    debug!("leader election attempt failed: {why}");
                    self.cfg.retry_period
                }
            };
            tokio::time::sleep_until((attempt_start + wait).into()).await;
        }
    }

    fn duration_of(&self, o: &Observed) -> Duration {
        o.duration_secs
            .filter(|s| *s > 0)
            .map(|s| Duration::from_secs(s as u64))
            .unwrap_or(self.cfg.lease_duration)
    }

    /// Writes the Lease with the elector's own client, outside the writer: the fence cannot guard
    /// the writes that decide it, and the rate limit must not delay a renewal past its deadline.
    async fn try_acquire(&self, seen: &mut Option<(Observed, Instant)>) -> Attempt {
        let timeout = self.cfg.retry_period.max(Duration::from_secs(1));
        let sent = Instant::now();
        let current = match tokio::time::timeout(timeout, self.api.get_opt(&self.cfg.name)).await {
            Err(_) => return Attempt::Failed("get timed out".into()),
            Ok(Err(e)) => return Attempt::Failed(e.to_string()),
            Ok(Ok(c)) => c,
        };
        let Some(lease) = current else {
            let lease = self.record(None, true);
            return match tokio::time::timeout(
                timeout,
                self.api.create(&PostParams::default(), &lease),
            )
            .await
            {
                Ok(Ok(_)) => Attempt::Held(sent),
                Ok(Err(e)) => Attempt::Failed(e.to_string()),
                Err(_) => Attempt::Failed("create timed out".into()),
            };
        };
        let observed = Observed::of(&lease);
        let now = Instant::now();
        match seen {
            Some((o, _)) if *o == observed => {}
            _ => *seen = Some((observed.clone(), now)),
        }
        let since = seen.as_ref().map(|(_, at)| *at).unwrap_or(now);
        let live = !observed.holder.is_empty()
            && observed.holder != self.cfg.identity
            && now < since + self.duration_of(&observed);
        if live {
            return Attempt::Other(observed.holder);
        }
        // Expired, released, or ours already (a restarted container keeps its pod name).
        let takeover = observed.holder != self.cfg.identity;
        let updated = self.record(Some(&lease), takeover);
        match tokio::time::timeout(
            timeout,
            self.api
                .replace(&self.cfg.name, &PostParams::default(), &updated),
        )
        .await
        {
            Ok(Ok(_)) => {
                if takeover && !observed.holder.is_empty() {
                    info!(previous = %observed.holder, "took over an expired lease");
                }
                Attempt::Held(sent)
            }
            Ok(Err(e)) => Attempt::Failed(e.to_string()),
            Err(_) => Attempt::Failed("update timed out".into()),
        }
    }

    /// Our record: built on `old` (keeping its resourceVersion for optimistic concurrency).
    fn record(&self, old: Option<&Lease>, takeover: bool) -> Lease {
        let old_spec = old.and_then(|l| l.spec.clone()).unwrap_or_default();
        let now = now_micro();
        let transitions = old_spec.lease_transitions.unwrap_or(0);
        Lease {
            metadata: ObjectMeta {
                name: Some(self.cfg.name.clone()),
                namespace: Some(self.cfg.namespace.clone()),
                resource_version: old.and_then(|l| l.meta().resource_version.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.cfg.identity.clone()),
                lease_duration_seconds: Some(self.cfg.lease_duration.as_secs().max(1) as i32),
                acquire_time: if takeover || old_spec.acquire_time.is_none() {
                    Some(now.clone())
                } else {
                    old_spec.acquire_time
                },
                renew_time: Some(now),
                lease_transitions: Some(if takeover && old.is_some() {
                    transitions + 1
                } else {
                    transitions
                }),
                ..LeaseSpec::default()
            }),
        }
    }

    /// Renew every retry period; give up (and report) once the renew deadline passes without a
    /// successful renewal, or at once if someone else holds the lease.
    async fn renew(&self) -> Lost {
        let mut last_ok = Instant::now();
        loop {
            tokio::time::sleep(self.cfg.retry_period).await;
            let deadline = last_ok + self.cfg.renew_deadline;
            let now = Instant::now();
            if now >= deadline {
                self.leadership.lose();
                return Lost::RenewDeadline(self.cfg.renew_deadline);
            }
            let mut seen = None;
            match tokio::time::timeout(deadline - now, self.try_acquire(&mut seen)).await {
                Ok(Attempt::Held(sent)) => {
                    last_ok = sent;
                    self.leadership.grant_until(sent + self.cfg.renew_deadline);
                }
                Ok(Attempt::Other(holder)) => {
                    self.leadership.lose();
                    return Lost::TakenOver(holder);
                }
                Ok(Attempt::Failed(why)) => warn!("could not renew the lease: {why}"),
                Err(_) => warn!("lease renewal timed out"),
            }
            if Instant::now() >= last_ok + self.cfg.renew_deadline {
                self.leadership.lose();
                return Lost::RenewDeadline(self.cfg.renew_deadline);
            }
        }
    }

    /// On a clean shutdown, after every write has finished: hand the lease over at once instead of
    /// making the standby wait for it to expire.
    pub async fn release(&self) {
        self.leadership.lose();
        let lease = match self.api.get_opt(&self.cfg.name).await {
            Ok(Some(l)) => l,
            Ok(None) => return,
            Err(e) => {
                warn!("could not release the lease: {e}");
                return;
            }
        };
        if Observed::of(&lease).holder != self.cfg.identity {
            return;
        }
        let mut released = self.record(Some(&lease), false);
        if let Some(spec) = released.spec.as_mut() {
            spec.holder_identity = None;
            spec.lease_duration_seconds = Some(1);
        }
        match self
            .api
            .replace(&self.cfg.name, &PostParams::default(), &released)
            .await
        {
            Ok(_) => info!("released the lease"),
            Err(e) => error!("could not release the lease: {e}"),
        }
    }
}

/// A process-unique identity: the pod name when running in a pod (so a restarted container
/// reclaims its own lease at once), otherwise host name, pid and start time.
pub fn default_identity() -> String {
    if let Ok(pod) = std::env::var("POD_NAME")
        && !pod.is_empty()
    {
        return pod;
    }
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .unwrap_or_else(|| "sluice".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{host}_{}_{nanos:08x}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(lease_name(""), "sluice-controller-lock");
        assert_eq!(lease_name("blue"), "sluice-controller-lock-blue");
    }

    #[test]
    fn leadership_expires_on_its_own() {
        let l = Leadership::standby();
        assert!(!l.is_leading());
        l.grant_until(Instant::now() + Duration::from_secs(60));
        assert!(l.is_leading());
        l.grant_until(Instant::now() - Duration::from_millis(1));
        assert!(
            !l.is_leading(),
            "a missed renew deadline ends leadership by itself"
        );
        l.grant_until(Instant::now() + Duration::from_secs(60));
        l.lose();
        assert!(!l.is_leading());
        l.grant_until(Instant::now() + Duration::from_secs(60));
        assert!(
            !l.is_leading(),
            "a lost leadership is never regained in-process"
        );
        assert!(Leadership::always().is_leading());
    }

    #[tokio::test]
    async fn acquisition_is_signalled_once() {
        use futures::StreamExt;
        let l = Leadership::standby();
        let mut s = Box::pin(l.acquired());
        l.grant_until(Instant::now() + Duration::from_secs(5));
        l.grant_until(Instant::now() + Duration::from_secs(6));
        assert_eq!(
            tokio::time::timeout(Duration::from_millis(100), s.next()).await,
            Ok(Some(()))
        );
        assert!(
            tokio::time::timeout(Duration::from_millis(50), s.next())
                .await
                .is_err(),
            "a renewal is not a new acquisition"
        );
    }

    #[tokio::test]
    async fn waiting_for_leadership() {
        Leadership::always().wait_leading().await;
        let l = Leadership::standby();
        let waiter = tokio::spawn({
            let l = l.clone();
            async move { l.wait_leading().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        l.grant_until(Instant::now() + Duration::from_secs(5));
        assert!(
            tokio::time::timeout(Duration::from_secs(1), waiter)
                .await
                .is_ok()
        );
    }

    #[test]
    fn timing_constraints() {
        let cfg = |d, r, p| LeaseConfig {
            namespace: "ns".into(),
            name: "n".into(),
            identity: "me".into(),
            lease_duration: Duration::from_secs(d),
            renew_deadline: Duration::from_secs(r),
            retry_period: Duration::from_secs(p),
        };
        assert!(cfg(15, 10, 2).validate().is_ok());
        assert!(cfg(10, 10, 2).validate().is_err());
        assert!(cfg(15, 10, 9).validate().is_err());
        assert!(cfg(15, 10, 0).validate().is_err());
    }
}
