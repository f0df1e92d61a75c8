//! Scale benchmark: N canary Rollouts on a genuine kube-apiserver 1.20.2 + etcd, one
//! `sluice-controller` reconciling all of them. It prints figures — time to Healthy, memory, CPU,
//! API writes, reconcile latency, writes while idle, an update wave, a restart — and asserts
//! nothing: speed and memory targets live in benchmarks that print figures, never in timed tests.
//!
//! ```sh
//! cargo bench --bench scale     # N = 2000 at the controller's default --qps 40: about 10 minutes
//! SLUICE_BENCH_ROLLOUTS=10000 SLUICE_BENCH_QPS=400 SLUICE_BENCH_BURST=800 cargo bench --bench scale
//! ```
//!
//! With 1 replica a new Rollout costs about 7.5 rate-limited writes and an update through the 8
//! steps about 27, so at the default `--qps 40` the cold start of N Rollouts takes N x 7.5 / 40
//! seconds whatever else happens (10,000: about 30 minutes); the 10,000 run raises `--qps` so the
//! apiserver on 2 cores, not the token bucket, is what bounds it (about 12 minutes).
//!
//! Knobs (environment): `SLUICE_BENCH_ROLLOUTS` (2000), `SLUICE_BENCH_NAMESPACES` (4),
//! `SLUICE_BENCH_REPLICAS` (1; 0 runs without the fake kubelet), `SLUICE_BENCH_PAUSE` (step pause
//! in seconds, 2), `SLUICE_BENCH_IDLE` (idle window in seconds, 30), `SLUICE_BENCH_UPDATE_PERCENT`
//! (10), `SLUICE_BENCH_CONCURRENCY` (concurrent creates and patches, 32), `SLUICE_BENCH_QPS`,
//! `SLUICE_BENCH_BURST`, `SLUICE_BENCH_THREADS` (the controller's `--qps`, `--burst`,
//! `--rollout-threads`; default: the controller's defaults), `SLUICE_BENCH_LOG` (the controller's
//! RUST_LOG, `info,kube=warn`), `SLUICE_BENCH_TIMEOUT` (seconds per phase, 600 + N/4),
//! `SLUICE_BENCH_KEEP=1` (leave the control plane running). Logs: target/bench-logs/.
//!
//! Under `cargo test --all-targets` (no `--bench` argument) it does nothing.

mod cluster;
mod probe;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::api::{ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sluice::api::rollout::Rollout;
use sluice_testkit::Proc;

use cluster::Cluster;
use probe::{Histogram, ProcStat, Writes};

const BENCH_LABEL: &str = "sluice-bench";
const BENCH_SELECTOR: &str = "sluice-bench=scale";

struct Settings {
    rollouts: usize,
    namespaces: usize,
    replicas: i32,
    pause: u32,
    idle: u64,
    update_percent: f64,
    concurrency: usize,
    qps: f64,
    burst: u32,
    threads: u16,
    log: String,
    timeout: Duration,
    keep: bool,
}

fn env_or<T: FromStr>(key: &str, default: T) -> Result<T> {
    match std::env::var(key) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .map_err(|_| anyhow!("{key}={v:?} is not a valid value")),
        _ => Ok(default),
    }
}

impl Settings {
    fn from_env() -> Result<Settings> {
        let d = sluice::controller::Settings::default();
        let rollouts: usize = env_or("SLUICE_BENCH_ROLLOUTS", 2000)?;
        let s = Settings {
            rollouts,
            namespaces: env_or("SLUICE_BENCH_NAMESPACES", 4usize)?.clamp(1, rollouts.max(1)),
            replicas: env_or("SLUICE_BENCH_REPLICAS", 1)?,
            pause: env_or("SLUICE_BENCH_PAUSE", 2)?,
            idle: env_or("SLUICE_BENCH_IDLE", 30)?,
            update_percent: env_or("SLUICE_BENCH_UPDATE_PERCENT", 10.0)?,
            concurrency: env_or("SLUICE_BENCH_CONCURRENCY", 32usize)?.max(1),
            qps: env_or("SLUICE_BENCH_QPS", d.qps)?,
            burst: env_or("SLUICE_BENCH_BURST", d.burst)?,
            threads: env_or("SLUICE_BENCH_THREADS", d.threads)?,
            log: env_or("SLUICE_BENCH_LOG", "info,kube=warn".to_string())?,
            timeout: Duration::from_secs(env_or(
                "SLUICE_BENCH_TIMEOUT",
                600 + rollouts as u64 / 4,
            )?),
            keep: std::env::var_os("SLUICE_BENCH_KEEP").is_some(),
        };
        if s.rollouts == 0 || s.replicas < 0 || !(0.0..=100.0).contains(&s.update_percent) {
            bail!("need SLUICE_BENCH_ROLLOUTS > 0, REPLICAS >= 0, 0 <= UPDATE_PERCENT <= 100");
        }
        Ok(s)
    }

    fn key(&self, i: usize) -> (String, String) {
        (
            format!("bench-{}", i % self.namespaces),
            format!("ro-{i:05}"),
        )
    }

    fn wave(&self) -> Vec<usize> {
        let count = ((self.rollouts as f64 * self.update_percent / 100.0).ceil() as usize)
            .min(self.rollouts);
        if count == 0 {
            return Vec::new();
        }
        let stride = (self.rollouts / count).max(1);
        (0..self.rollouts).step_by(stride).take(count).collect()
    }
}

fn containers(image: &str) -> Value {
    json!([{
        "name": "app",
        "image": image,
        "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
        "resources": {"requests": {"memory": "32Mi", "cpu": "5m"}},
    }])
}

/// The seed Rollout's shape (canary in 20-point steps with a pause after each), with
/// `replicas` pods and short timed pauses.
fn rollout(ns: &str, name: &str, replicas: i32, pause: u32) -> Value {
    let mut steps = Vec::new();
    for w in [20, 40, 60, 80] {
        steps.push(json!({"setWeight": w}));
        steps.push(json!({"pause": {"duration": pause}}));
    }
    json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name, "namespace": ns, "labels": {BENCH_LABEL: "scale"}},
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": 2,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"canary": {"steps": steps}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": containers("bench:v1")},
            },
        },
    })
}

fn transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => matches!(s.code, 429 | 500 | 502 | 503 | 504),
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// Retry transient API failures (overload, transport) with exponential backoff.
async fn retrying<T, F, Fut>(mut f: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let mut delay = Duration::from_millis(200);
    let mut attempt = 0;
    loop {
        match f().await {
            Err(e) if attempt < 6 && transient(&e) => {
                attempt += 1;
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            r => return r,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Aborts a background task when dropped.
struct Task(tokio::task::JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What the bench's own watch last saw of one Rollout.
#[derive(Clone, Debug, Default)]
struct Seen {
    healthy: bool,
    has_status: bool,
    hash: Option<String>,
    phase: String,
}

type SeenMap = Arc<Mutex<HashMap<String, Seen>>>;

fn seen(ro: &Rollout) -> Seen {
    let generation = ro.metadata.generation.map(|g| g.to_string());
    let Some(st) = ro.status.as_ref() else {
        return Seen::default();
    };
    Seen {
        healthy: st.phase.as_deref() == Some("Healthy")
            && st.observed_generation == generation
            && st.current_pod_hash.is_some()
            && st.current_pod_hash == st.stable_rs,
        has_status: st.current_pod_hash.is_some(),
        hash: st.current_pod_hash.clone(),
        phase: st.phase.clone().unwrap_or_default(),
    }
}

fn key_of<K: Resource>(o: &K) -> String {
    format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any())
}

/// One watch on the bench's Rollouts; the map holds the last state of each.
fn watch_rollouts(client: Client, map: SeenMap) -> Task {
    Task(tokio::spawn(async move {
        let api: Api<Rollout> = Api::all(client);
        let stream = watcher::watcher(api, watcher::Config::default().labels(BENCH_SELECTOR))
            .default_backoff()
            .applied_objects();
        futures::pin_mut!(stream);
        while let Some(ev) = stream.next().await {
            if let Ok(ro) = ev {
                let s = seen(&ro);
                lock(&map).insert(key_of(&ro), s);
            }
        }
    }))
}

#[derive(Clone, Copy, Debug, Default)]
struct Mem {
    last: ProcStat,
    max_rss_kib: u64,
    min_rss_kib: u64,
}

/// Samples the controller's RSS and CPU every 250 ms.
fn sample(pid: u32, mem: Arc<Mutex<Mem>>) -> Task {
    Task(tokio::spawn(async move {
        loop {
            if let Some(s) = probe::proc_stat(pid) {
                let mut m = lock(&mem);
                m.last = s;
                m.max_rss_kib = m.max_rss_kib.max(s.rss_kib);
                m.min_rss_kib = if m.min_rss_kib == 0 {
                    s.rss_kib
                } else {
                    m.min_rss_kib.min(s.rss_kib)
                };
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }))
}

fn reset_window(mem: &Mutex<Mem>) {
    let mut m = lock(mem);
    m.max_rss_kib = m.last.rss_kib;
    m.min_rss_kib = m.last.rss_kib;
}

/// CPU seconds used so far by each named process.
fn cpu(procs: &[(String, u32)], tck: f64) -> BTreeMap<String, f64> {
    procs
        .iter()
        .filter_map(|(n, pid)| Some((n.clone(), probe::proc_stat(*pid)?.cpu_ticks as f64 / tck)))
        .collect()
}

fn cpu_since(now: &BTreeMap<String, f64>, then: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    now.iter()
        .map(|(k, v)| (k.clone(), v - then.get(k).copied().unwrap_or(0.0)))
        .collect()
}

async fn apiserver_writes(client: &Client) -> Result<Writes> {
    let req = http::Request::get("/metrics").body(Vec::new())?;
    let text = client.request_text(req).await?;
    Ok(Writes::from_apiserver(&probe::parse(
        &text,
        &["apiserver_request_total"],
    )))
}

/// The controller's reconcile histogram, reconcile errors and events, and the exposition size.
#[derive(Clone, Debug, Default)]
struct Scrape {
    bytes: usize,
    reconcile: Histogram,
    errors: f64,
    events: f64,
    /// Rollouts reconciled at least once by this process.
    reconciled: usize,
}

impl Scrape {
    async fn take(port: u16) -> Result<Scrape> {
        let (code, body) = probe::http_get(port, "/metrics").await?;
        if code != 200 {
            bail!("controller /metrics answered {code}");
        }
        let s = probe::parse(&body, &["rollout_reconcile", "rollout_events_total"]);
        Ok(Scrape {
            bytes: body.len(),
            reconcile: Histogram::from_samples(&s, "rollout_reconcile"),
            errors: probe::total(&s, "rollout_reconcile_error"),
            events: probe::total(&s, "rollout_events_total"),
            reconciled: s
                .iter()
                .filter(|x| x.name == "rollout_reconcile_count" && x.value >= 1.0)
                .count(),
        })
    }
}

async fn list_all<K>(api: &Api<K>, labels: &str) -> Result<Vec<K>>
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut out = Vec::new();
    let mut lp = ListParams::default().labels(labels).limit(500);
    loop {
        let page = api.list(&lp).await?;
        let next = page.metadata.continue_.clone();
        out.extend(page.items);
        match next {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => return Ok(out),
        }
    }
}

fn versions<K: Resource>(items: &[K]) -> HashMap<String, String> {
    items
        .iter()
        .map(|o| (key_of(o), o.resource_version().unwrap_or_default()))
        .collect()
}

fn changed(a: &HashMap<String, String>, b: &HashMap<String, String>) -> usize {
    b.iter().filter(|(k, v)| a.get(*k) != Some(*v)).count()
}

/// Average JSON size of the objects as the controller caches them (managedFields stripped).
fn avg_json_bytes<K: Resource + Serialize + Clone>(items: &[K]) -> f64 {
    if items.is_empty() {
        return 0.0;
    }
    let total: usize = items
        .iter()
        .map(|o| {
            let mut o = o.clone();
            o.meta_mut().managed_fields = None;
            serde_json::to_vec(&o).map_or(0, |v| v.len())
        })
        .sum();
    total as f64 / items.len() as f64
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Everything the final table prints.
#[derive(Default)]
struct Report {
    create_secs: f64,
    baseline_rss_kib: u64,
    ready_secs: Option<f64>,
    all_status_secs: f64,
    all_healthy_secs: f64,
    cold_writes: Writes,
    cold: Scrape,
    cold_cpu: f64,
    cold_hwm_kib: u64,
    healthy_rss_kib: u64,
    rss_after_scrape_kib: u64,
    settle_writes: Writes,
    idle_writes: Writes,
    idle_changed_rollouts: usize,
    idle_changed_rs: usize,
    rs_count: usize,
    after_healthy_reconciles: f64,
    idle_cpu: f64,
    idle_rss_range: (u64, u64),
    steady_rss_kib: u64,
    rollout_json: f64,
    rs_json: f64,
    wave_size: usize,
    wave_patch_secs: f64,
    wave_secs: f64,
    wave_writes: Writes,
    wave_reconcile: Histogram,
    wave_events: f64,
    wave_cpu: f64,
    wave_rss_kib: u64,
    final_hwm_kib: u64,
    restart_ready_secs: Option<f64>,
    restart_full_secs: f64,
    restart_writes: Writes,
    restart_reconcile: Histogram,
    restart_cpu: f64,
    restart_rss_kib: u64,
    restart_hwm_kib: u64,
    others_cpu: BTreeMap<String, f64>,
    load_start: String,
    load_end: String,
}

async fn run(cfg: &Settings) -> Result<Report> {
    let mut rep = Report {
        load_start: loadavg(),
        ..Report::default()
    };
    let tck = probe::clk_tck();
    // Built (or found up to date) before the control plane starts, outside every measurement.
    let kubelet_bin = if cfg.replicas > 0 {
        Some(sluice_testkit::fake_kubelet(Path::new(env!(
            "CARGO_BIN_EXE_sluice-controller"
        )))?)
    } else {
        None
    };
    let cluster = Cluster::start(cfg.keep).await?;
    let client = cluster.client.clone();
    for ns in 0..cfg.namespaces {
        cluster.namespace(&format!("bench-{ns}")).await?;
    }
    let kubelet = match kubelet_bin {
        Some(bin) => {
            let mut cmd = Command::new(bin);
            cmd.env("KUBECONFIG", &cluster.kubeconfig)
                .env("FAKE_KUBELET_READY_DELAY", "100")
                .env("RUST_LOG", "warn");
            Some(cluster::spawn("fake-kubelet", cmd)?)
        }
        None => None,
    };

    // Baseline: the controller's memory with the CRDs installed and no Rollout at all.
    {
        let mut c = spawn_controller(cfg, &cluster, "controller-baseline")?;
        let hp = c.1;
        cluster::poll("baseline controller ready", 60, || async move {
            Ok(probe::http_get(hp, "/readyz")
                .await
                .is_ok_and(|(c, _)| c == 200))
        })
        .await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        c.0.check_alive()?;
        rep.baseline_rss_kib = probe::proc_stat(c.0.pid()).map_or(0, |s| s.rss_kib);
    }

    // Create the Rollouts, as fast as the apiserver takes them.
    let ar = ApiResource::erase::<Rollout>(&());
    eprintln!(
        "bench: creating {} Rollouts in {} namespaces",
        cfg.rollouts, cfg.namespaces
    );
    let t = Instant::now();
    let pp = PostParams::default();
    futures::stream::iter(0..cfg.rollouts)
        .map(|i| {
            let (ns, name) = cfg.key(i);
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
            let pp = &pp;
            async move {
                let obj: DynamicObject =
                    serde_json::from_value(rollout(&ns, &name, cfg.replicas, cfg.pause))?;
                match retrying(|| api.create(pp, &obj)).await {
                    Ok(_) => Ok(()),
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
                    Err(e) => Err(anyhow!("creating {ns}/{name}: {e}")),
                }
            }
        })
        .buffer_unordered(cfg.concurrency)
        .try_collect::<()>()
        .await?;
    rep.create_secs = t.elapsed().as_secs_f64();
    eprintln!(
        "bench: created {} Rollouts in {:.1}s",
        cfg.rollouts, rep.create_secs
    );

    let map: SeenMap = Arc::default();
    let _watch = watch_rollouts(client.clone(), map.clone());
    cluster::poll("the bench's watch to list every Rollout", 300, || {
        let n = lock(&map).len();
        async move { Ok(n >= cfg.rollouts) }
    })
    .await?;

    // Cold start: one controller, every Rollout waiting for it.
    let writes0 = apiserver_writes(&client).await?;
    let mut others: Vec<(String, u32)> = cluster.pids();
    if let Some(k) = &kubelet {
        others.push((k.name.to_string(), k.pid()));
    }
    others.push(("bench".to_string(), std::process::id()));
    let others0 = cpu(&others, tck);
    let (mut ctl, hp, mp) = spawn_controller(cfg, &cluster, "controller")?;
    let started = Instant::now();
    let mem: Arc<Mutex<Mem>> = Arc::default();
    let sampler = sample(ctl.pid(), mem.clone());
    let mut all_status = None;
    let mut last_print = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        ctl.check_alive()?;
        let secs = started.elapsed().as_secs_f64();
        if rep.ready_secs.is_none()
            && probe::http_get(hp, "/readyz")
                .await
                .is_ok_and(|(c, _)| c == 200)
        {
            rep.ready_secs = Some(secs);
        }
        let (healthy, with_status) = {
            let m = lock(&map);
            (
                m.values().filter(|s| s.healthy).count(),
                m.values().filter(|s| s.has_status).count(),
            )
        };
        if all_status.is_none() && with_status >= cfg.rollouts {
            all_status = Some(secs);
        }
        if last_print.elapsed() >= Duration::from_secs(10) || healthy >= cfg.rollouts {
            last_print = Instant::now();
            let m = lock(&mem).last;
            eprintln!(
                "bench: [cold start {secs:6.1}s] healthy {healthy}/{n}, with status {with_status}, controller RSS {rss:.1} MiB, CPU {cpu:.1}s",
                n = cfg.rollouts,
                rss = m.rss_kib as f64 / 1024.0,
                cpu = m.cpu_ticks as f64 / tck,
            );
        }
        if healthy >= cfg.rollouts {
            rep.all_healthy_secs = secs;
            break;
        }
        if started.elapsed() > cfg.timeout {
            bail!(
                "cold start: not all Rollouts Healthy after {:?}: {}",
                cfg.timeout,
                phases(&map)
            );
        }
    }
    let healthy_at = Instant::now();
    rep.all_status_secs = all_status.unwrap_or(rep.all_healthy_secs);
    let at_healthy = probe::proc_stat(ctl.pid()).unwrap_or_default();
    rep.cold_cpu = at_healthy.cpu_ticks as f64 / tck;
    rep.cold_hwm_kib = at_healthy.hwm_kib;
    rep.healthy_rss_kib = at_healthy.rss_kib;
    let writes1 = apiserver_writes(&client).await?;
    rep.cold_writes = writes1.since(&writes0);
    rep.cold = Scrape::take(mp).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    rep.rss_after_scrape_kib = probe::proc_stat(ctl.pid()).map_or(0, |s| s.rss_kib);

    // Steady state: nothing changes; the controller should write nothing.
    let settle = Duration::from_secs(5);
    tokio::time::sleep(settle.saturating_sub(healthy_at.elapsed())).await;
    let ro_api: Api<Rollout> = Api::all(client.clone());
    let rs_api: Api<ReplicaSet> = Api::all(client.clone());
    let writes2 = apiserver_writes(&client).await?;
    rep.settle_writes = writes2.since(&writes1);
    let (ros_a, rss_a) = (
        list_all(&ro_api, BENCH_SELECTOR).await?,
        list_all(&rs_api, "rollouts-pod-template-hash").await?,
    );
    let cpu_a = probe::proc_stat(ctl.pid()).unwrap_or_default().cpu_ticks;
    reset_window(&mem);
    eprintln!("bench: idle for {}s", cfg.idle);
    tokio::time::sleep(Duration::from_secs(cfg.idle)).await;
    ctl.check_alive()?;
    let idle_end = probe::proc_stat(ctl.pid()).unwrap_or_default();
    let writes3 = apiserver_writes(&client).await?;
    let (ros_b, rss_b) = (
        list_all(&ro_api, BENCH_SELECTOR).await?,
        list_all(&rs_api, "rollouts-pod-template-hash").await?,
    );
    {
        let m = lock(&mem);
        rep.idle_rss_range = (m.min_rss_kib, m.max_rss_kib);
    }
    rep.idle_writes = writes3.since(&writes2);
    rep.idle_cpu = idle_end.cpu_ticks.saturating_sub(cpu_a) as f64 / tck;
    rep.steady_rss_kib = idle_end.rss_kib;
    rep.idle_changed_rollouts = changed(&versions(&ros_a), &versions(&ros_b));
    rep.idle_changed_rs = changed(&versions(&rss_a), &versions(&rss_b));
    rep.rs_count = rss_b.len();
    rep.rollout_json = avg_json_bytes(&ros_b);
    rep.rs_json = avg_json_bytes(&rss_b);
    drop((ros_a, ros_b, rss_a, rss_b));
    let after_idle = Scrape::take(mp).await?;
    rep.after_healthy_reconciles = after_idle.reconcile.count - rep.cold.reconcile.count;

    // Update wave: a new image for a share of the Rollouts, walked through every step.
    let wave = cfg.wave();
    rep.wave_size = wave.len();
    if !wave.is_empty() {
        let old: HashMap<String, Option<String>> = {
            let m = lock(&map);
            wave.iter()
                .map(|i| {
                    let (ns, name) = cfg.key(*i);
                    let k = format!("{ns}/{name}");
                    let h = m.get(&k).and_then(|s| s.hash.clone());
                    (k, h)
                })
                .collect()
        };
        let cpu_w = probe::proc_stat(ctl.pid()).unwrap_or_default().cpu_ticks;
        let writes4 = apiserver_writes(&client).await?;
        eprintln!("bench: update wave: new image for {} Rollouts", wave.len());
        let t = Instant::now();
        let patch = json!({"spec": {"template": {"spec": {"containers": containers("bench:v2")}}}});
        let pp = PatchParams::default();
        let patch = Patch::Merge(patch);
        futures::stream::iter(wave.iter().copied())
            .map(|i| {
                let (ns, name) = cfg.key(i);
                let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
                let (patch, pp) = (&patch, &pp);
                async move {
                    retrying(|| api.patch(&name, pp, patch))
                        .await
                        .map(|_| ())
                        .with_context(|| format!("patching {ns}/{name}"))
                }
            })
            .buffer_unordered(cfg.concurrency)
            .try_collect::<()>()
            .await?;
        rep.wave_patch_secs = t.elapsed().as_secs_f64();
        let mut last_print = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            ctl.check_alive()?;
            let done = {
                let m = lock(&map);
                old.iter()
                    .filter(|(k, h)| {
                        m.get(*k)
                            .is_some_and(|s| s.healthy && s.hash.is_some() && s.hash != **h)
                    })
                    .count()
            };
            let secs = t.elapsed().as_secs_f64();
            if last_print.elapsed() >= Duration::from_secs(10) || done >= wave.len() {
                last_print = Instant::now();
                eprintln!(
                    "bench: [update wave {secs:6.1}s] on the new image and Healthy: {done}/{}",
                    wave.len()
                );
            }
            if done >= wave.len() {
                rep.wave_secs = secs;
                break;
            }
            if t.elapsed() > cfg.timeout {
                bail!(
                    "update wave: not all Rollouts Healthy after {:?}: {}",
                    cfg.timeout,
                    phases(&map)
                );
            }
        }
        let end = probe::proc_stat(ctl.pid()).unwrap_or_default();
        rep.wave_cpu = end.cpu_ticks.saturating_sub(cpu_w) as f64 / tck;
        rep.wave_rss_kib = end.rss_kib;
        let mut w = apiserver_writes(&client).await?.since(&writes4);
        // The bench's own image patches are writes to the Rollout object too.
        w.rollout -= wave.len() as f64;
        rep.wave_writes = w;
        let after = Scrape::take(mp).await?;
        rep.wave_reconcile = after.reconcile.since(&after_idle.reconcile);
        rep.wave_events = after.events - after_idle.events;
    }
    rep.final_hwm_kib = probe::proc_stat(ctl.pid()).map_or(0, |s| s.hwm_kib);

    // Restart: the controller is killed and a new one starts over N converged Rollouts, as after
    // a crash, an upgrade or a leader failover. It should reconcile every one and write nothing.
    tokio::time::sleep(Duration::from_secs(5)).await;
    drop(sampler);
    drop(ctl);
    let writes5 = apiserver_writes(&client).await?;
    let (mut ctl, hp, mp) = spawn_controller(cfg, &cluster, "controller-restart")?;
    let t = Instant::now();
    let mut last_print = Instant::now();
    let full = loop {
        // Each scrape renders about 2 KiB per Rollout: poll gently.
        tokio::time::sleep(Duration::from_secs(1)).await;
        ctl.check_alive()?;
        let secs = t.elapsed().as_secs_f64();
        if rep.restart_ready_secs.is_none()
            && probe::http_get(hp, "/readyz")
                .await
                .is_ok_and(|(c, _)| c == 200)
        {
            rep.restart_ready_secs = Some(secs);
        }
        // Before the metrics server is up, a failed scrape counts as nothing reconciled yet.
        let sc = Scrape::take(mp).await.unwrap_or_default();
        if last_print.elapsed() >= Duration::from_secs(10) || sc.reconciled >= cfg.rollouts {
            last_print = Instant::now();
            eprintln!(
                "bench: [restart {secs:6.1}s] reconciled {}/{}",
                sc.reconciled, cfg.rollouts
            );
        }
        if sc.reconciled >= cfg.rollouts {
            rep.restart_full_secs = secs;
            break sc;
        }
        if t.elapsed() > cfg.timeout {
            bail!(
                "restart: not every Rollout reconciled after {:?}",
                cfg.timeout
            );
        }
    };
    let st = probe::proc_stat(ctl.pid()).unwrap_or_default();
    rep.restart_cpu = st.cpu_ticks as f64 / tck;
    rep.restart_rss_kib = st.rss_kib;
    rep.restart_hwm_kib = st.hwm_kib;
    rep.restart_reconcile = full.reconcile;
    // Writes still in flight when the last first reconcile was counted land in this window too.
    tokio::time::sleep(Duration::from_secs(5)).await;
    rep.restart_writes = apiserver_writes(&client).await?.since(&writes5);
    ctl.check_alive()?;
    rep.others_cpu = cpu_since(&cpu(&others, tck), &others0);
    rep.load_end = loadavg();
    Ok(rep)
}

/// How many of the bench's Rollouts are in each phase (for timeouts).
fn phases(map: &SeenMap) -> String {
    let mut by: BTreeMap<String, usize> = BTreeMap::new();
    for s in lock(map).values() {
        let p = if s.phase.is_empty() {
            "no status".to_string()
        } else if s.healthy {
            "Healthy".to_string()
        } else {
            format!("{} (not done)", s.phase)
        };
        *by.entry(p).or_default() += 1;
    }
    format!("{by:?}")
}

/// Start `sluice-controller` cluster-wide; returns it with its health and metrics ports.
fn spawn_controller(
    cfg: &Settings,
    cluster: &Cluster,
    name: &'static str,
) -> Result<(Proc, u16, u16)> {
    let (mp, hp) = sluice_testkit::free_ports()?;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice-controller"));
    // The controller reads SLUICE_* flags from the environment: only the flags below count.
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("SLUICE_") {
            cmd.env_remove(k);
        }
    }
    cmd.arg("--kubeconfig")
        .arg(&cluster.kubeconfig)
        .arg("--leader-elect=false")
        .args(["--metrics-port", &mp.to_string()])
        .args(["--healthz-port", &hp.to_string()])
        .args(["--qps", &cfg.qps.to_string()])
        .args(["--burst", &cfg.burst.to_string()])
        .args(["--rollout-threads", &cfg.threads.to_string()])
        .env("RUST_LOG", &cfg.log);
    Ok((cluster::spawn(name, cmd)?, hp, mp))
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn ms_bound(b: Option<f64>) -> String {
    match b {
        None => "n/a".into(),
        Some(b) if b.is_infinite() => "> 1000 ms".into(),
        Some(b) => format!("<= {:.0} ms", b * 1000.0),
    }
}

fn writes_line(w: &Writes, per: usize) -> String {
    let per = per.max(1) as f64;
    let mut s = format!(
        "{:.0} ({:.1}/Rollout): status {:.0}, Rollout {:.0}, ReplicaSet {:.0}, events {:.0}",
        w.total(),
        w.total() / per,
        w.status,
        w.rollout,
        w.replica_sets,
        w.events
    );
    if w.analysis_runs > 0.0 {
        let _ = write!(s, ", AnalysisRun {:.0}", w.analysis_runs);
    }
    if w.status_conflicts > 0.0 {
        let _ = write!(s, "; {:.0} status patches got 409", w.status_conflicts);
    }
    s
}

fn print_report(cfg: &Settings, rep: &Report) {
    let n = cfg.rollouts;
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut row = |k: String, v: String| rows.push((k, v));
    row(
        format!("create {n} Rollouts ({} concurrent)", cfg.concurrency),
        format!(
            "{:.1} s ({:.0}/s)",
            rep.create_secs,
            n as f64 / rep.create_secs.max(0.001)
        ),
    );
    row(
        "controller RSS with 0 Rollouts (baseline)".into(),
        mib(rep.baseline_rss_kib),
    );
    row(
        "cold start: caches synced (/readyz 200)".into(),
        rep.ready_secs
            .map_or("not seen".into(), |s| format!("{s:.1} s")),
    );
    row(
        "cold start: every Rollout has a status".into(),
        format!("{:.1} s", rep.all_status_secs),
    );
    row(
        format!("cold start: all {n} Healthy"),
        format!(
            "{:.1} s ({:.1} Rollouts/s)",
            rep.all_healthy_secs,
            n as f64 / rep.all_healthy_secs.max(0.001)
        ),
    );
    row(
        "cold start: controller API writes".into(),
        writes_line(&rep.cold_writes, n),
    );
    row(
        format!("cold start: --qps {} floor for those writes", cfg.qps),
        format!(
            "{:.1} s ((rate-limited writes - burst {}) / qps; events are not limited)",
            ((rep.cold_writes.rate_limited() - f64::from(cfg.burst)).max(0.0) / cfg.qps),
            cfg.burst
        ),
    );
    row(
        "cold start: reconciles / errors / events".into(),
        format!(
            "{:.0} ({:.1}/Rollout) / {:.0} / {:.0}",
            rep.cold.reconcile.count,
            rep.cold.reconcile.count / n as f64,
            rep.cold.errors,
            rep.cold.events
        ),
    );
    row(
        "cold start: reconcile p50 / p99 / mean (incl. --qps waits)".into(),
        format!(
            "{} / {} / {:.1} ms (bucket bounds 10,150,250,500,1000 ms)",
            ms_bound(rep.cold.reconcile.quantile_bound(0.5)),
            ms_bound(rep.cold.reconcile.quantile_bound(0.99)),
            rep.cold.reconcile.mean().unwrap_or(0.0) * 1000.0
        ),
    );
    row(
        "cold start: controller CPU".into(),
        format!(
            "{:.1} s ({:.0}% of one core over {:.0} s)",
            rep.cold_cpu,
            100.0 * rep.cold_cpu / rep.all_healthy_secs.max(0.001),
            rep.all_healthy_secs
        ),
    );
    row(
        "cold start: peak RSS (VmHWM, before any scrape)".into(),
        mib(rep.cold_hwm_kib),
    );
    row("RSS when all Healthy".into(), mib(rep.healthy_rss_kib));
    row(
        "one /metrics scrape: exposition size, RSS after".into(),
        format!(
            "{:.1} MiB, {}",
            rep.cold.bytes as f64 / 1_048_576.0,
            mib(rep.rss_after_scrape_kib)
        ),
    );
    row(
        "first 5 s after all Healthy: controller writes".into(),
        format!("{:.0}", rep.settle_writes.total()),
    );
    row(
        format!("idle {} s: controller writes", cfg.idle),
        writes_line(&rep.idle_writes, n),
    );
    row(
        format!("idle {} s: objects with a new resourceVersion", cfg.idle),
        format!(
            "Rollouts {}/{n}, ReplicaSets {}/{}",
            rep.idle_changed_rollouts, rep.idle_changed_rs, rep.rs_count
        ),
    );
    row(
        format!("idle {} s: controller CPU", cfg.idle),
        format!("{:.2} s", rep.idle_cpu),
    );
    row(
        format!("reconciles in the {} s after all Healthy", cfg.idle + 5),
        format!("{:.0}", rep.after_healthy_reconciles),
    );
    row(
        "steady RSS (end of idle; min-max during idle)".into(),
        format!(
            "{} ({} - {})",
            mib(rep.steady_rss_kib),
            mib(rep.idle_rss_range.0),
            mib(rep.idle_rss_range.1)
        ),
    );
    let per = |kib: u64| kib as f64 / n as f64;
    row(
        "memory per Rollout: (steady - baseline) / N".into(),
        format!(
            "{:.1} KiB (steady / N: {:.1} KiB)",
            per(rep.steady_rss_kib.saturating_sub(rep.baseline_rss_kib)),
            per(rep.steady_rss_kib)
        ),
    );
    row(
        "  for scale: cached objects per Rollout, as JSON".into(),
        format!(
            "Rollout {:.1} KiB + ReplicaSet {:.1} KiB ({} ReplicaSets; managedFields stripped)",
            rep.rollout_json / 1024.0,
            rep.rs_json / 1024.0,
            rep.rs_count
        ),
    );
    if rep.wave_size > 0 {
        let w = rep.wave_size;
        row(
            format!(
                "update wave: {w} Rollouts ({}%) new image -> Healthy",
                cfg.update_percent
            ),
            format!(
                "{:.1} s (patches sent in {:.1} s; 4 steps x {} s pause = {} s minimum)",
                rep.wave_secs,
                rep.wave_patch_secs,
                cfg.pause,
                4 * cfg.pause
            ),
        );
        row(
            "update wave: controller API writes".into(),
            writes_line(&rep.wave_writes, w),
        );
        row(
            format!("update wave: --qps {} floor for those writes", cfg.qps),
            format!(
                "{:.1} s",
                (rep.wave_writes.rate_limited() - f64::from(cfg.burst)).max(0.0) / cfg.qps
            ),
        );
        row(
            "update wave: reconciles / events".into(),
            format!(
                "{:.0} ({:.1}/Rollout) / {:.0}",
                rep.wave_reconcile.count,
                rep.wave_reconcile.count / w as f64,
                rep.wave_events
            ),
        );
        row(
            "update wave: reconcile p50 / p99 / mean (incl. --qps waits)".into(),
            format!(
                "{} / {} / {:.1} ms",
                ms_bound(rep.wave_reconcile.quantile_bound(0.5)),
                ms_bound(rep.wave_reconcile.quantile_bound(0.99)),
                rep.wave_reconcile.mean().unwrap_or(0.0) * 1000.0
            ),
        );
        row(
            "update wave: controller CPU, RSS after".into(),
            format!("{:.1} s, {}", rep.wave_cpu, mib(rep.wave_rss_kib)),
        );
    }
    row(
        "peak RSS of that controller over its run (VmHWM)".into(),
        mib(rep.final_hwm_kib),
    );
    row(
        format!("restart over {n} converged Rollouts: caches synced"),
        rep.restart_ready_secs
            .map_or("not seen".into(), |s| format!("{s:.1} s")),
    );
    row(
        "restart: every Rollout reconciled once".into(),
        format!(
            "{:.1} s (polled every 1 s via /metrics)",
            rep.restart_full_secs
        ),
    );
    row(
        "restart: controller API writes (incl. 5 s after)".into(),
        writes_line(&rep.restart_writes, n),
    );
    row(
        "restart: reconcile p50 / p99 / mean (no writes)".into(),
        format!(
            "{} / {} / {:.2} ms over {:.0} reconciles",
            ms_bound(rep.restart_reconcile.quantile_bound(0.5)),
            ms_bound(rep.restart_reconcile.quantile_bound(0.99)),
            rep.restart_reconcile.mean().unwrap_or(0.0) * 1000.0,
            rep.restart_reconcile.count
        ),
    );
    row(
        "restart: controller CPU, RSS, peak RSS".into(),
        format!(
            "{:.1} s, {}, {}",
            rep.restart_cpu,
            mib(rep.restart_rss_kib),
            mib(rep.restart_hwm_kib)
        ),
    );
    row(
        "CPU of the rest, controller start to end".into(),
        rep.others_cpu
            .iter()
            .map(|(k, v)| format!("{k} {v:.0} s"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    row(
        "load average at start / end".into(),
        format!("{} / {}", rep.load_start, rep.load_end),
    );

    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    println!();
    println!(
        "== Sluice scale benchmark, {} ==",
        jiff::Timestamp::now().strftime("%Y-%m-%d %H:%M UTC")
    );
    println!(
        "setup: {n} canary Rollouts in {} namespaces (setWeight 20/40/60/80, {} s pause after each), replicas {}{}",
        cfg.namespaces,
        cfg.pause,
        cfg.replicas,
        if cfg.replicas > 0 {
            " with the fake kubelet (pods Ready 100 ms after creation)"
        } else {
            " (no pods, no kubelet)"
        }
    );
    println!(
        "       sluice-controller (release build), cluster-wide, --leader-elect=false, --qps {} --burst {} --rollout-threads {}, RUST_LOG={}",
        cfg.qps, cfg.burst, cfg.threads, cfg.log
    );
    println!(
        "       kube-apiserver 1.20.2 + etcd (no fsync) + {}, {} CPUs, all on this machine",
        Cluster::kcm_setup(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    for (k, v) in &rows {
        println!("{k:<width$}  {v}");
    }
    let per_rollout_kib = rep.steady_rss_kib.saturating_sub(rep.baseline_rss_kib) as f64 / n as f64;
    println!();
    println!(
        "Argo Rollouts, PUBLISHED figures (argo-rollouts-reference.md section 5.2; not measured here):"
    );
    println!(
        "  11,000-13,000 rollouts: 11-14 GB memory, 2-3 CPU, reconciliation degrading after ~48 h (argo-rollouts#2855)"
    );
    println!("    = about 1 MB per rollout (14 GB / 12k)");
    println!(
        "  10,000 rollouts with 1 replica each: controller flapping despite a 16 Gi request and 800m CPU (argo-rollouts#3112)"
    );
    println!(
        "Sluice, measured above: {per_rollout_kib:.1} KiB per Rollout at N={n} (different cluster, versions, workload and \
         uptime: indicative only)"
    );
    println!(
        "Targets proposed in section 5.4 (proposals, not facts): <= 1-10 KiB per Rollout beyond the cached objects; \
         p99 reconcile < 150 ms; cold start of 10k Rollouts < 60 s at QPS 40"
    );
    println!(
        "Logs: {} (controller, fake kubelet)",
        cluster::log_dir().display()
    );
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this target without it.
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("scale: skipped (run it with `cargo bench --bench scale`)");
        return;
    }
    let code = match Settings::from_env() {
        Err(e) => {
            eprintln!("scale: {e:#}");
            2
        }
        Ok(cfg) => {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("scale: cannot start the runtime: {e}");
                    std::process::exit(1);
                }
            };
            // On Ctrl-C the run future is dropped, and with it every guard: controller,
            // fake kubelet and control plane are stopped and the cluster directory removed.
            let result = rt.block_on(async {
                tokio::select! {
                    r = run(&cfg) => r,
                    _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
                }
            });
            drop(rt);
            match result {
                Ok(rep) => {
                    print_report(&cfg, &rep);
                    0
                }
                Err(e) => {
                    eprintln!("scale: FAILED: {e:#}");
                    1
                }
            }
        }
    };
    std::process::exit(code);
}
