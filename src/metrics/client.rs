//! Counting the controller's Kubernetes API requests (Argo's
//! `controller_clientset_k8s_request_total`): a tower layer on the kube client's service, added
//! where the client is built, and the counts it keeps. Labels are bounded: the resource kind
//! (plural, as in the path), the namespace, the verb, the status code, and `name` always `N/A` —
//! Argo labels most requests with the object's name, one series per object and verb, which its
//! users report as a cardinality problem (argo-rollouts#3929); the label stays so that queries
//! written for Argo still match.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use http::{Method, Request, Response};

/// `(kind, namespace, verb, status_code)`.
pub type RequestKey = (String, String, &'static str, String);

/// Requests made so far, by [`RequestKey`]. Shared by the layer (which counts) and the metrics
/// (which render).
#[derive(Clone, Debug, Default)]
pub struct RequestCounts(Arc<Mutex<BTreeMap<RequestKey, u64>>>);

impl RequestCounts {
    fn count(&self, key: RequestKey) {
        if let Ok(mut m) = self.0.lock() {
            *m.entry(key).or_insert(0) += 1;
        }
    }

    /// A copy of the counts, in label order.
    pub fn snapshot(&self) -> Vec<(RequestKey, u64)> {
        self.0
            .lock()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default()
    }
}

/// What Argo's `kubeclientmetrics` makes of a request: `(kind, namespace, verb)`. The kind is
/// the resource as the path names it (`rollouts`, `replicasets`, `leases`; a subresource counts
/// as its resource), the namespace empty for cluster-scoped requests; the verb one of List,
/// Watch, Get, Create, Update, Patch, Delete or Unknown (Unknown also makes kind and namespace
/// `Unknown`, as in Argo).
pub fn classify(
    method: &Method,
    path: &str,
    query: Option<&str>,
) -> (String, String, &'static str) {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    // `/api/v1/...` or `/apis/<group>/<version>/...`.
    let rest: &[&str] = match segs.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => &[],
    };
    // `namespaces/<ns>/<resource>[/<name>[/<subresource>]]`; `namespaces[/<ns>]` itself is the
    // cluster-scoped resource `namespaces`.
    let (namespace, rest) = match rest {
        ["namespaces", ns, resource, tail @ ..] => (*ns, [&[*resource][..], tail].concat()),
        other => ("", other.to_vec()),
    };
    let named = rest.len() >= 2;
    let watch = query.is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
    let verb = match *method {
        Method::POST => "Create",
        Method::DELETE => "Delete",
        Method::PATCH => "Patch",
        Method::PUT => "Update",
        Method::GET if named => "Get",
        Method::GET if watch => "Watch",
        Method::GET => "List",
        _ => "Unknown",
    };
    let kind = rest.first().copied().unwrap_or("");
    let plain = |s: &str| {
        s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    };
    if verb == "Unknown" || kind.is_empty() || !plain(kind) || !plain(namespace) {
        return ("Unknown".into(), "Unknown".into(), verb);
    }
    (kind.to_string(), namespace.to_string(), verb)
}

/// The tower layer that counts every request through [`RequestCounts`].
#[derive(Clone, Debug)]
pub struct CountRequests(pub RequestCounts);

impl<S> tower::Layer<S> for CountRequests {
    type Service = Counted<S>;

    fn layer(&self, inner: S) -> Counted<S> {
        Counted {
            inner,
            counts: self.0.clone(),
        }
    }
}

/// A service whose requests are counted; the status code is the response's, or `0` when no
/// response came (a transport error, as Argo records it).
#[derive(Clone, Debug)]
pub struct Counted<S> {
    inner: S,
    counts: RequestCounts,
}

impl<S, B, R> tower::Service<Request<B>> for Counted<S>
where
    S: tower::Service<Request<B>, Response = Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let (kind, namespace, verb) = classify(req.method(), req.uri().path(), req.uri().query());
        let counts = self.counts.clone();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let res = fut.await;
            let code = match &res {
                Ok(r) => r.status().as_u16().to_string(),
                Err(_) => "0".to_string(),
            };
            counts.count((kind, namespace, verb, code));
            res
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn requests_are_classified_like_argo() {
        let c = |m: Method, p: &str, q: Option<&str>| {
            let (k, n, v) = classify(&m, p, q);
            (k, n, v.to_string())
        };
        let t = |k: &str, n: &str, v: &str| (k.to_string(), n.to_string(), v.to_string());
        let ro = "/apis/argoproj.io/v1alpha1/namespaces/prod/rollouts";
        assert_eq!(c(Method::GET, ro, None), t("rollouts", "prod", "List"));
        assert_eq!(
            c(
                Method::GET,
                ro,
                Some("labelSelector=x&watch=true&timeoutSeconds=290")
            ),
            t("rollouts", "prod", "Watch")
        );
        assert_eq!(
            c(Method::GET, &format!("{ro}/web"), None),
            t("rollouts", "prod", "Get")
        );
        assert_eq!(
            c(Method::PATCH, &format!("{ro}/web/status"), None),
            t("rollouts", "prod", "Patch")
        );
        assert_eq!(
            c(Method::GET, "/apis/apps/v1/replicasets", Some("watch=true")),
            t("replicasets", "", "Watch")
        );
        assert_eq!(
            c(
                Method::POST,
                "/apis/events.k8s.io/v1/namespaces/prod/events",
                None
            ),
            t("events", "prod", "Create")
        );
        assert_eq!(
            c(
                Method::POST,
                "/api/v1/namespaces/prod/pods/p-1/eviction",
                None
            ),
            t("pods", "prod", "Create")
        );
        assert_eq!(
            c(
                Method::PUT,
                "/apis/coordination.k8s.io/v1/namespaces/sys/leases/lock",
                None
            ),
            t("leases", "sys", "Update")
        );
        assert_eq!(
            c(
                Method::DELETE,
                "/apis/argoproj.io/v1alpha1/namespaces/prod/analysisruns/r",
                None
            ),
            t("analysisruns", "prod", "Delete")
        );
        assert_eq!(
            c(Method::GET, "/api/v1/namespaces/prod", None),
            t("namespaces", "", "Get")
        );
        assert_eq!(
            c(
                Method::GET,
                "/apis/argoproj.io/v1alpha1/clusteranalysistemplates",
                None
            ),
            t("clusteranalysistemplates", "", "List")
        );
        assert_eq!(
            c(Method::HEAD, ro, None),
            t("Unknown", "Unknown", "Unknown")
        );
        assert_eq!(
            c(Method::GET, "/version", None),
            t("Unknown", "Unknown", "List")
        );
    }

    #[tokio::test]
    async fn the_layer_counts_each_request_with_its_status() {
        use tower::{Layer, Service, ServiceExt};
        let counts = RequestCounts::default();
        let inner = tower::service_fn(|req: Request<()>| async move {
            let code = if req.uri().path().ends_with("/missing") {
                404
            } else {
                200
            };
            Ok::<_, std::convert::Infallible>(Response::builder().status(code).body(()).unwrap())
        });
        let mut svc = CountRequests(counts.clone()).layer(inner);
        for path in [
            "/api/v1/namespaces/a/pods/x",
            "/api/v1/namespaces/a/pods/missing",
            "/api/v1/namespaces/a/pods/y",
        ] {
            let req = Request::get(path).body(()).unwrap();
            svc.ready().await.unwrap().call(req).await.unwrap();
        }
        let key = |code: &str| ("pods".to_string(), "a".to_string(), "Get", code.to_string());
        assert_eq!(counts.snapshot(), vec![(key("200"), 2), (key("404"), 1)]);
    }
}
