//! The one path every API write of the controller takes. Both controllers and the Job provider
//! hold the same [`Writer`]; each write, whatever its kind, first waits for the client-side rate
//! limiter (`--qps`, `--burst`), then checks the leader fence, and only then leaves, carrying the
//! one field manager. Failures come back as the controller's [`Error`], so the error policy
//! classifies them all alike.
//!
//! Reads stay on the plain client. `write_path_tests` below fails the build's tests when any other
//! file calls a kube write method.

use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Reporter};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tracing::{debug, warn};

use super::Error;
use super::leader::Leadership;
use super::rate::RateLimiter;
use crate::analysis::providers::{BoxFuture, JobWriter, WriteFailure};
use crate::api::consts::FIELD_MANAGER;

/// Objects the writer writes: namespaced, statically typed kinds.
pub trait Writable:
    Resource<Scope = NamespaceResourceScope, DynamicType = ()>
    + Clone
    + Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
}

impl<K> Writable for K where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned
        + Send
        + Sync
        + 'static
{
}

/// Every API write goes through here: rate limit, leader fence, field manager, error type.
pub struct Writer {
    client: Client,
    limiter: RateLimiter,
    leadership: Leadership,
    reporter: Reporter,
    /// Events recorded in the last few minutes, by what makes one event the same as another.
    events: tokio::sync::Mutex<std::collections::HashMap<EventKey, K8sEvent>>,
}

/// Two events are one (a series) when everything about them is equal, the message included:
/// kube-runtime's recorder leaves the message out, so a second "Switched selector ... to b"
/// would only count up the first "... to a".
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct EventKey {
    warning: bool,
    reason: String,
    note: Option<String>,
    namespace: Option<String>,
    name: Option<String>,
    uid: Option<String>,
}

/// How long an event may still be continued as a series (client-go's and kube-runtime's).
const EVENT_SERIES_TTL: jiff::SignedDuration = jiff::SignedDuration::from_mins(6);

impl Writer {
    /// Events are reported as `reporter`.
    pub fn new(
        client: Client,
        limiter: RateLimiter,
        leadership: Leadership,
        reporter: Reporter,
    ) -> Self {
        Writer {
            reporter,
            events: tokio::sync::Mutex::default(),
            client,
            limiter,
            leadership,
        }
    }

    /// Wait for the rate limiter, then check the fence. The check comes last so that it is as
    /// close as possible to the request leaving: a permit granted before a long wait would be
    /// stale. A replica that does not lead gets [`Error::NotLeader`] and sends nothing; failing
    /// (rather than holding the write until the process exits) lets the reconcile end, its
    /// concurrency slot free up and a clean shutdown drain, and every later write of the same
    /// reconcile meets the same fence.
    async fn permit(&self) -> Result<(), Error> {
        self.limiter.acquire().await;
        if self.leadership.is_leading() {
            Ok(())
        } else {
            Err(Error::NotLeader)
        }
    }

    fn api<K: Writable>(&self, ns: &str) -> Api<K> {
        Api::namespaced(self.client.clone(), ns)
    }

    fn params() -> PatchParams {
        PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        }
    }

    /// Server-side apply of `obj` (forced: the controller owns the fields it sets).
    pub async fn apply<K: Writable>(&self, ns: &str, obj: &K) -> Result<K, Error> {
        self.permit().await?;
        Ok(self
            .api::<K>(ns)
            .patch(
                &obj.name_any(),
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(obj),
            )
            .await?)
    }

    /// An RFC 7386 merge patch of the object (metadata and spec; also the status of kinds without
    /// a status subresource, such as AnalysisRun).
    pub async fn merge_patch<K: Writable>(
        &self,
        ns: &str,
        name: &str,
        patch: &Value,
    ) -> Result<K, Error> {
        self.permit().await?;
        Ok(self
            .api::<K>(ns)
            .patch(name, &Self::params(), &Patch::Merge(patch))
            .await?)
    }

    /// An RFC 7386 merge patch of an object known only at run time (a traffic router's own
    /// kinds: VirtualService, TrafficSplit, HTTPRoute...).
    pub async fn merge_patch_dynamic(
        &self,
        resource: &ApiResource,
        ns: &str,
        name: &str,
        patch: &Value,
    ) -> Result<DynamicObject, Error> {
        self.permit().await?;
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), ns, resource);
        Ok(api
            .patch(name, &Self::params(), &Patch::Merge(patch))
            .await?)
    }

    /// Create an object known only at run time.
    pub async fn create_dynamic(
        &self,
        resource: &ApiResource,
        ns: &str,
        obj: &DynamicObject,
    ) -> Result<DynamicObject, Error> {
        self.permit().await?;
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), ns, resource);
        let pp = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PostParams::default()
        };
        Ok(api.create(&pp, obj).await?)
    }

    /// Delete an object known only at run time. `Ok(false)` when it was already gone.
    pub async fn delete_dynamic(
        &self,
        resource: &ApiResource,
        ns: &str,
        name: &str,
    ) -> Result<bool, Error> {
        self.permit().await?;
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), ns, resource);
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// An RFC 7386 merge patch of the status subresource.
    pub async fn patch_status<K: Writable>(
        &self,
        ns: &str,
        name: &str,
        patch: &Value,
    ) -> Result<K, Error> {
        self.permit().await?;
        Ok(self
            .api::<K>(ns)
            .patch_status(name, &Self::params(), &Patch::Merge(patch))
            .await?)
    }

    /// Create `obj`.
    pub async fn create<K: Writable>(&self, ns: &str, obj: &K) -> Result<K, Error> {
        self.permit().await?;
        let pp = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PostParams::default()
        };
        Ok(self.api::<K>(ns).create(&pp, obj).await?)
    }

    /// Replace `obj` (an update, guarded by the resourceVersion it carries). Only for kinds whose
    /// RBAC in Argo's manifests grants `update` but not `patch` (pods, for ephemeral metadata).
    pub async fn replace<K: Writable>(&self, ns: &str, obj: &K) -> Result<K, Error> {
        self.permit().await?;
        let pp = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PostParams::default()
        };
        Ok(self.api::<K>(ns).replace(&obj.name_any(), &pp, obj).await?)
    }

    /// Delete an object, its dependents in the background. `Ok(false)` when it was already gone.
    pub async fn delete<K: Writable>(&self, ns: &str, name: &str) -> Result<bool, Error> {
        self.permit().await?;
        match self
            .api::<K>(ns)
            .delete(name, &DeleteParams::background())
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Evict a pod (honouring PodDisruptionBudgets): `policy/v1`, falling back to `policy/v1beta1`
    /// on servers older than 1.22. A 429 (budget exhausted) is not an error: `Ok(false)`, and the
    /// pod is retried later. One permit covers the fallback: the first attempt was refused, not
    /// carried out.
    pub async fn evict(&self, ns: &str, pod: &str) -> Result<bool, Error> {
        self.permit().await?;
        for version in ["policy/v1", "policy/v1beta1"] {
            let body = json!({"apiVersion": version, "kind": "Eviction", "metadata": {"name": pod, "namespace": ns}});
            let req = http::Request::post(format!("/api/v1/namespaces/{ns}/pods/{pod}/eviction"))
                .header("Content-Type", "application/json")
                .body(serde_json::to_vec(&body)?)
                .map_err(|e| Error::Kube(kube::Error::HttpError(e)))?;
            match self.client.request_text(req).await {
                Ok(_) => return Ok(true),
                Err(kube::Error::Api(s)) if s.code == 429 => return Ok(false),
                Err(kube::Error::Api(s)) if s.code == 404 && s.reason != "NotFound" => continue,
                Err(kube::Error::Api(s)) if s.code == 404 => return Ok(true),
                Err(kube::Error::Api(s)) if s.code == 400 && version == "policy/v1" => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(false)
    }

    /// Record an event against `reference`. Best-effort: an event is informational, so neither a
    /// failure nor the fence ever fails the reconcile that reports it.
    pub async fn event(&self, reference: &ObjectReference, ev: &Event) {
        if let Err(e) = self.permit().await {
            debug!("event {} not recorded: {e}", ev.reason);
            return;
        }
        if let Err(e) = self.publish(ev, reference).await {
            warn!("could not record event {}: {e}", ev.reason);
        }
    }

    /// Create the event, or count up the series of the same event recorded in the last six
    /// minutes (as kube-runtime's recorder does, but keyed by the message too).
    async fn publish(&self, ev: &Event, reference: &ObjectReference) -> Result<(), kube::Error> {
        let now = jiff::Timestamp::now();
        let key = EventKey {
            warning: matches!(ev.type_, EventType::Warning),
            reason: ev.reason.clone(),
            note: ev.note.clone(),
            namespace: reference.namespace.clone(),
            name: reference.name.clone(),
            uid: reference.uid.clone(),
        };
        let mut cache = self.events.lock().await;
        cache.retain(|_, e| {
            let last = e
                .series
                .as_ref()
                .map(|s| s.last_observed_time.0)
                .or(e.event_time.as_ref().map(|t| t.0));
            last.is_none_or(|t| t + EVENT_SERIES_TTL > now)
        });
        let ns = reference
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), &ns);
        if let Some(prev) = cache.get(&key) {
            let mut event = prev.clone();
            let count = event.series.as_ref().map_or(2, |s| s.count + 1);
            event.series = Some(EventSeries {
                count,
                last_observed_time: MicroTime(now),
            });
            // Only the series: the whole object would carry a stale resourceVersion.
            let patch = json!({ "series": event.series });
            api.patch(&event.name_any(), &Self::params(), &Patch::Merge(&patch))
                .await?;
            cache.insert(key, event);
            return Ok(());
        }
        let event = K8sEvent {
            action: Some(ev.action.clone()),
            reason: Some(ev.reason.clone()),
            event_time: Some(MicroTime(now)),
            regarding: Some(reference.clone()),
            note: ev.note.clone(),
            metadata: ObjectMeta {
                namespace: reference.namespace.clone(),
                name: Some(format!(
                    "{}.{:x}",
                    reference.name.as_ref().unwrap_or(&self.reporter.controller),
                    now.as_nanosecond()
                )),
                ..ObjectMeta::default()
            },
            reporting_controller: Some(self.reporter.controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| self.reporter.controller.clone()),
            ),
            type_: Some(if key.warning { "Warning" } else { "Normal" }.into()),
            related: ev.secondary.clone(),
            ..K8sEvent::default()
        };
        let pp = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PostParams::default()
        };
        let created = api.create(&pp, &event).await?;
        cache.insert(key, created);
        Ok(())
    }
}

/// The Job provider's writes, through the one writer.
impl JobWriter for Writer {
    fn create_job<'a>(
        &'a self,
        ns: &'a str,
        job: &'a Job,
    ) -> BoxFuture<'a, Result<(), WriteFailure>> {
        Box::pin(async move { self.create(ns, job).await.map(|_| ()).map_err(failure) })
    }

    fn delete_job<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<(), WriteFailure>> {
        Box::pin(async move {
            self.delete::<Job>(ns, name)
                .await
                .map(|_| ())
                .map_err(failure)
        })
    }
}

/// A write error as a provider reports it: the API's own words (as measurement messages carried
/// them before writes went through the writer).
fn failure(e: Error) -> WriteFailure {
    if e.is_conflict() {
        return WriteFailure::Exists;
    }
    WriteFailure::Other(match e {
        Error::Kube(k) => k.to_string(),
        e => e.to_string(),
    })
}

#[cfg(test)]
pub(crate) mod testing {
    //! A `kube::Client` over an in-process service that answers every request and counts them.
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::{Arc, Mutex};

    use http::{Request, Response};
    use kube::client::Body;
    use kube::runtime::events::Reporter;

    use super::{RateLimiter, Writer};
    use crate::api::analysis::AnalysisRun;
    use crate::controller::leader::Leadership;

    /// A writer over `client` whose rate limit never gets in the way.
    pub fn writer(client: kube::Client, leadership: Leadership) -> Writer {
        let reporter = Reporter {
            controller: "test".into(),
            instance: None,
        };
        Writer::new(client, RateLimiter::new(1000.0, 1000), leadership, reporter)
    }

    /// A run with one Job metric, never reconciled.
    pub fn job_run_json() -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun",
            "metadata": {"name": "run", "namespace": "ns", "uid": "u-1", "resourceVersion": "7"},
            "spec": {"metrics": [{"name": "job", "provider": {"job": {"spec": {"template": {
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}
            }}}}}]}
        })
    }

    pub fn job_run() -> AnalysisRun {
        serde_json::from_value(job_run_json()).unwrap()
    }

    /// What the fake API server saw, as `METHOD path?query`.
    #[derive(Clone, Default)]
    pub struct Seen(pub Arc<Mutex<Vec<String>>>);

    impl Seen {
        pub fn all(&self) -> Vec<String> {
            self.0.lock().unwrap().clone()
        }
        /// Everything but reads.
        pub fn writes(&self) -> Vec<String> {
            self.all()
                .into_iter()
                .filter(|r| !r.starts_with("GET "))
                .collect()
        }
    }

    fn status(code: u16, reason: &str) -> Response<Body> {
        let body = serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": format!("fake API server: {reason}"), "reason": reason, "code": code,
        });
        Response::builder()
            .status(code)
            .header("Content-Type", "application/json")
            .body(Body::from(serde_json::to_vec(&body).unwrap()))
            .unwrap()
    }

    /// A client whose server records each request and answers `answer(method, path)`: `Ok(json)`
    /// is a 200 with that body, `Err(code)` a failure `Status` with that code.
    pub fn client(
        answer: impl Fn(&str, &str) -> Result<serde_json::Value, u16> + Send + Sync + 'static,
    ) -> (kube::Client, Seen) {
        let seen = Seen::default();
        let log = seen.clone();
        let answer = Arc::new(answer);
        let svc = tower::service_fn(move |req: Request<Body>| {
            let method = req.method().to_string();
            let path = req
                .uri()
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default();
            log.0.lock().unwrap().push(format!("{method} {path}"));
            let answer = answer.clone();
            async move {
                let resp = match answer(&method, &path) {
                    Ok(v) => Response::builder()
                        .status(200)
                        .header("Content-Type", "application/json")
                        .body(Body::from(serde_json::to_vec(&v).unwrap()))
                        .unwrap(),
                    Err(404) => status(404, "NotFound"),
                    Err(code) => status(code, "InternalError"),
                };
                Ok::<_, std::convert::Infallible>(resp)
            }
        });
        (kube::Client::new(svc, "default"), seen)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::future::Future;
    use std::sync::Arc;
    use std::time::Duration;

    use k8s_openapi::api::apps::v1::ReplicaSet;
    use kube::runtime::events::EventType;

    use super::testing::{job_run, writer};
    use super::*;
    use crate::analysis::providers::{Provider, ProviderContext};
    use crate::api::analysis::{AnalysisRun, Measurement};
    use crate::api::rollout::Rollout;

    /// A fenced write fails at once; it never hangs.
    async fn within<F: Future>(f: F) -> F::Output {
        tokio::time::timeout(Duration::from_secs(5), f)
            .await
            .expect("the write neither completed nor failed")
    }

    fn refused<T: Debug>(what: &str, r: Result<T, Error>) {
        assert!(matches!(r, Err(Error::NotLeader)), "{what}: {r:?}");
    }

    /// Every kind of write, none of which may leave a replica that does not lead: not the
    /// best-effort event, not the Job provider's Jobs, not the AnalysisRun status.
    #[tokio::test]
    async fn a_non_leader_makes_no_write_of_any_kind() {
        // Reads succeed; any write that got through would be answered, and counted.
        let (client, seen) = testing::client(|_, _| {
            Ok(json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "x"}}))
        });
        let w = Arc::new(writer(client.clone(), Leadership::standby()));
        let rs: ReplicaSet = serde_json::from_value(json!({"metadata": {"name": "rs"}})).unwrap();
        let patch = json!({"spec": {"replicas": 1}});

        refused("apply", within(w.apply("ns", &rs)).await);
        refused(
            "merge_patch",
            within(w.merge_patch::<ReplicaSet>("ns", "rs", &patch)).await,
        );
        refused(
            "patch_status",
            within(w.patch_status::<Rollout>("ns", "ro", &patch)).await,
        );
        refused("create", within(w.create("ns", &job_run())).await);
        refused("delete", within(w.delete::<AnalysisRun>("ns", "run")).await);
        refused("evict", within(w.evict("ns", "pod")).await);
        let ev = Event {
            type_: EventType::Normal,
            reason: "R".into(),
            note: None,
            action: "A".into(),
            secondary: None,
        };
        within(w.event(&job_run().object_ref(&()), &ev)).await;

        // The Job provider: starting a measurement creates a Job, terminating deletes it.
        let run = job_run();
        let metric = run.spec.metrics[0].clone();
        let pctx = ProviderContext {
            client: &client,
            writer: w.as_ref(),
            run: &run,
        };
        let job = crate::analysis::providers::job::Job;
        let m = within(job.run(&pctx, &metric)).await;
        assert_eq!(m.phase, "Error", "{m:?}");
        let running = Measurement {
            phase: "Running".into(),
            metadata: Some([("job-name".to_string(), "j".to_string())].into()),
            ..Measurement::default()
        };
        let m = within(job.terminate(&pctx, &metric, running.clone())).await;
        assert_eq!(m.phase, "Error", "{m:?}");
        // Reads are not fenced: resuming reads the Job, and the fake server sees it (which also
        // shows that it counts what reaches it).
        within(job.resume(&pctx, &metric, running)).await;

        // The AnalysisRun status path: a whole reconcile, which takes a measurement (its Job is
        // refused), records it and would write the status and events.
        let ctx = Arc::new(crate::controller::analysis::AnalysisContext::new(
            client.clone(),
            w.clone(),
            Arc::default(),
        ));
        let r = within(crate::controller::analysis::reconcile(Arc::new(run), ctx)).await;
        refused("analysis run status", r);

        assert_eq!(seen.writes(), Vec::<String>::new(), "no write may leave");
        assert_eq!(
            seen.all(),
            vec!["GET /apis/batch/v1/namespaces/ns/jobs/j"],
            "only the read reached the server"
        );
    }

    #[tokio::test]
    async fn a_leader_writes_with_the_field_manager() {
        let (client, seen) = testing::client(|_, _| {
            Ok(json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "rs"}}))
        });
        let w = writer(client, Leadership::always());
        let rs: ReplicaSet = serde_json::from_value(json!({"metadata": {"name": "rs"}})).unwrap();
        w.apply("ns", &rs).await.unwrap();
        w.merge_patch::<ReplicaSet>("ns", "rs", &json!({"spec": {"replicas": 2}}))
            .await
            .unwrap();
        w.create("ns", &rs).await.unwrap();
        assert!(w.delete::<ReplicaSet>("ns", "rs").await.unwrap());
        let rs_path = "/apis/apps/v1/namespaces/ns/replicasets";
        assert_eq!(
            seen.all(),
            vec![
                format!("PATCH {rs_path}/rs?&force=true&fieldManager=sluice-controller"),
                format!("PATCH {rs_path}/rs?&fieldManager=sluice-controller"),
                format!("POST {rs_path}?&fieldManager=sluice-controller"),
                format!("DELETE {rs_path}/rs?"),
            ]
        );
    }

    #[tokio::test]
    async fn api_errors_keep_their_class() {
        let (client, _) = testing::client(|_, _| Err(500));
        let w = writer(client, Leadership::always());
        let e = w
            .merge_patch::<ReplicaSet>("ns", "rs", &json!({}))
            .await
            .unwrap_err();
        assert_eq!(e.category(), "server");
        let (client, _) = testing::client(|_, _| Err(404));
        let w = writer(client, Leadership::always());
        let e = w
            .merge_patch::<ReplicaSet>("ns", "rs", &json!({}))
            .await
            .unwrap_err();
        assert!(e.is_not_found(), "{e}");
        assert!(
            !w.delete::<ReplicaSet>("ns", "rs").await.unwrap(),
            "deleting what is gone is no error"
        );
    }
}

/// Makes the one write path impossible to forget: no file but this one may call a kube write
/// method. A plain scan of the source text, comments and string literals removed.
#[cfg(test)]
mod write_path_tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::path::{Path, PathBuf};

    /// Files (or folders) that may write without the writer, and why.
    const ALLOWED: &[(&str, &str)] = &[
        ("src/controller/write.rs", "the writer itself"),
        // The Lease is what the fence is made of: the elector must write it while not (yet)
        // leading. Nor is it rate-limited: a renewal queued behind a burst of writes could miss
        // the renew deadline and cost the lease.
        ("src/controller/leader.rs", "leader election's Lease writes"),
        // kubectl-sluice: a separate binary with its own client, writing on the user's behalf.
        ("src/cli/", "the CLI"),
    ];

    /// Write methods of `kube::Api`, `kube::Client` and `Recorder`, with their argument counts
    /// (which tell `Api::replace(name, pp, obj)` from `str::replace(from, to)`, or
    /// `Api::delete(name, dp)` from reqwest's `delete(url)`). Raw requests can carry any verb, so
    /// they are writes too.
    const WRITES: &[(&str, usize)] = &[
        ("patch", 3),
        ("patch_status", 3),
        ("patch_metadata", 3),
        ("patch_scale", 3),
        ("patch_subresource", 4),
        ("replace", 3),
        ("replace_status", 3),
        ("replace_scale", 3),
        ("replace_subresource", 4),
        ("create", 2),
        ("create_subresource", 4),
        ("delete", 2),
        ("delete_collection", 2),
        ("evict", 2),
        ("publish", 2),
        ("request", 1),
        ("request_text", 1),
        ("request_status", 1),
        ("request_events", 1),
        ("request_stream", 1),
    ];

    /// Building a raw write request.
    const RAW: &[&str] = &[
        "Request::post(",
        "Request::put(",
        "Request::patch(",
        "Request::delete(",
    ];

    fn is_ident(c: char) -> bool {
        c.is_alphanumeric() || c == '_'
    }

    /// The source with comments dropped and string and char literals emptied; newlines kept, so
    /// line numbers still match.
    fn code_only(src: &str) -> String {
        let c: Vec<char> = src.chars().collect();
        let mut out = String::with_capacity(src.len());
        let newlines = |out: &mut String, from: usize, to: usize| {
            out.extend(c[from..to.min(c.len())].iter().filter(|ch| **ch == '\n'));
        };
        let mut i = 0;
        while i < c.len() {
            let prev_ident = i > 0 && is_ident(c[i - 1]);
            match c[i] {
                '/' if c.get(i + 1) == Some(&'/') => {
                    while i < c.len() && c[i] != '\n' {
                        i += 1;
                    }
                }
                '/' if c.get(i + 1) == Some(&'*') => {
                    let (start, mut depth) = (i, 0);
                    while i < c.len() {
                        if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                            depth += 1;
                            i += 2;
                        } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                            depth -= 1;
                            i += 2;
                            if depth == 0 {
                                break;
                            }
                        } else {
                            i += 1;
                        }
                    }
                    newlines(&mut out, start, i);
                }
                'r' if (!prev_ident || (i > 0 && c[i - 1] == 'b'))
                    && matches!(c.get(i + 1), Some('"') | Some('#')) =>
                {
                    let mut j = i + 1;
                    let mut hashes = 0;
                    while c.get(j) == Some(&'#') {
                        hashes += 1;
                        j += 1;
                    }
                    if c.get(j) != Some(&'"') {
                        // `r#ident`, not a string.
                        out.push('r');
                        i += 1;
                        continue;
                    }
                    let start = j;
                    j += 1;
                    while j < c.len() {
                        if c[j] == '"' && (0..hashes).all(|h| c.get(j + 1 + h) == Some(&'#')) {
                            j += 1 + hashes;
                            break;
                        }
                        j += 1;
                    }
                    out.push_str("\"\"");
                    newlines(&mut out, start, j);
                    i = j;
                }
                '"' => {
                    let start = i;
                    i += 1;
                    while i < c.len() && c[i] != '"' {
                        i += if c[i] == '\\' { 2 } else { 1 };
                    }
                    i += 1;
                    out.push_str("\"\"");
                    newlines(&mut out, start, i);
                }
                '\'' if c.get(i + 1) == Some(&'\\') => {
                    i += 2;
                    while i < c.len() && c[i] != '\'' {
                        i += 1;
                    }
                    i += 1;
                    out.push_str("' '");
                }
                '\'' if c.get(i + 2) == Some(&'\'') => {
                    i += 3;
                    out.push_str("' '");
                }
                ch => {
                    out.push(ch);
                    i += 1;
                }
            }
        }
        out
    }

    /// Top-level arguments of the call whose `(` is at `open`.
    fn arity(c: &[char], open: usize) -> usize {
        let (mut depth, mut commas, mut any, mut last) = (0usize, 0, false, ' ');
        for &ch in &c[open + 1..] {
            match ch {
                '(' | '[' | '{' => depth += 1,
                ')' | ']' | '}' if depth == 0 => break,
                ')' | ']' | '}' => depth -= 1,
                ',' if depth == 0 => commas += 1,
                _ => {}
            }
            if !ch.is_whitespace() {
                any = true;
                last = ch;
            }
        }
        match (any, last) {
            (false, _) => 0,
            (true, ',') => commas,
            _ => commas + 1,
        }
    }

    /// `.method(` or `.method::<…>(`: the position of its `(`.
    fn call_paren(c: &[char], after_name: usize) -> Option<usize> {
        let mut j = after_name;
        if c.get(j) == Some(&':') && c.get(j + 1) == Some(&':') && c.get(j + 2) == Some(&'<') {
            let mut depth = 0;
            j += 2;
            while j < c.len() {
                match c[j] {
                    '<' => depth += 1,
                    '>' => {
                        depth -= 1;
                        if depth == 0 {
                            j += 1;
                            break;
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        (c.get(j) == Some(&'(')).then_some(j)
    }

    /// The identifier right before the `.` at `dot` (across whitespace), if the receiver ends
    /// with one.
    fn receiver(c: &[char], dot: usize) -> String {
        let mut end = dot;
        while end > 0 && c[end - 1].is_whitespace() {
            end -= 1;
        }
        let mut start = end;
        while start > 0 && is_ident(c[start - 1]) {
            start -= 1;
        }
        c[start..end].iter().collect()
    }

    /// Write calls in `src`, as `line: what`. Calls on the writer (bound as `writer`, e.g.
    /// `ctx.writer.create(..)`) are the point, not violations.
    fn violations(src: &str) -> Vec<String> {
        let code = code_only(src);
        let c: Vec<char> = code.chars().collect();
        let line = |pos: usize| c[..pos].iter().filter(|ch| **ch == '\n').count() + 1;
        let mut found = Vec::new();
        for (i, &ch) in c.iter().enumerate() {
            if ch != '.' {
                continue;
            }
            let mut j = i + 1;
            while j < c.len() && is_ident(c[j]) {
                j += 1;
            }
            let name: String = c[i + 1..j].iter().collect();
            let Some(&(_, args)) = WRITES.iter().find(|(n, _)| *n == name) else {
                continue;
            };
            let Some(open) = call_paren(&c, j) else {
                continue;
            };
            if arity(&c, open) == args && receiver(&c, i) != "writer" {
                found.push(format!("{}: .{name}(", line(i)));
            }
        }
        for raw in RAW {
            for (pos, _) in code.match_indices(raw) {
                let at = code[..pos].chars().count();
                found.push(format!("{}: {raw}", line(at)));
            }
        }
        found
    }

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let p = entry.path();
            if p.is_dir() {
                rust_files(&p, out);
            } else if p.extension().is_some_and(|e| e == "rs") {
                out.push(p);
            }
        }
    }

    #[test]
    fn every_write_goes_through_the_writer() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        rust_files(&root.join("src"), &mut files);
        assert!(files.len() > 20, "scanned {} files", files.len());
        let mut bad = Vec::new();
        for f in &files {
            let rel = f
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            if ALLOWED.iter().any(|(a, _)| rel.starts_with(a)) {
                continue;
            }
            let src = std::fs::read_to_string(f).unwrap();
            bad.extend(violations(&src).into_iter().map(|v| format!("{rel}:{v}")));
        }
        assert!(
            bad.is_empty(),
            "API writes outside the writer (use controller::write::Writer):\n{}",
            bad.join("\n")
        );
    }

    #[test]
    fn the_scan_sees_writes_and_only_writes() {
        let writes = r#"
            api.patch(&name, &pp, &Patch::Merge(&p)).await?;
            Api::<Job>::namespaced(c, ns)
                .delete::<Job>(&n, &DeleteParams::background())
                .await;
            runs.create(&PostParams::default(), run);
            recorder.publish(&ev, &reference).await;
            client.request_text(req).await;
            let req = http::Request::post(url);
            self.api.replace(&n, &PostParams::default(), &lease);
        "#;
        assert_eq!(
            violations(writes),
            vec![
                "2: .patch(",
                "4: .delete(",
                "6: .create(",
                "7: .publish(",
                "8: .request_text(",
                "10: .replace(",
                "9: Request::post(",
            ]
        );
        let not_writes = r##"
            let s = msg.replace(s.as_str(), "*****");
            let y = SEED.replace("a, b", "c");
            // api.patch(&name, &pp, &p) in a comment
            let t = "api.create(&pp, &obj)";
            let r = r#"x.delete(a, b)"#;
            let c = ',';
            http.request(method, &url);
            ctx.writer.create(&ns, &job).await;
            writer
                .merge_patch::<AnalysisRun>(&ns, &name, &patch)
                .await;
            reqwest::Client::new().delete(url);
            std::fs::OpenOptions::new().create(true);
        "##;
        assert_eq!(violations(not_writes), Vec::<String>::new());
    }
}
