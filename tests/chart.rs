//! The Helm chart, rendered by the real Helm engine (see tests/support/helm.rs): what it installs,
//! that its RBAC is exactly what the controller calls, that every flag it passes parses, that its
//! CRDs are the generated ones, and that the Grafana dashboard queries only metrics we export.
//! The RBAC's sufficiency is proven against a real API server by the e2e scenario `chart_rbac`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/helm.rs"]
mod helm;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

const NS: &str = "sluice-system";
const RELEASE: &str = "sluice";

fn render(values: Value) -> helm::Rendered {
    helm::render(&values, RELEASE, NS).expect("helm render")
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn container(r: &helm::Rendered) -> Value {
    r.get("Deployment", RELEASE).unwrap()["spec"]["template"]["spec"]["containers"][0].clone()
}

fn args(r: &helm::Rendered) -> Vec<String> {
    container(r)["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

/// The controller's rules: what `src/controller` calls, nothing else. Extend this list (and
/// `sluice.controllerRules` in the chart) together with the code that needs more. Cluster-scoped
/// ClusterAnalysisTemplates are only watched by a cluster-wide install.
fn expected_rules(cluster: bool) -> Value {
    let templates = if cluster {
        json!(["analysistemplates", "clusteranalysistemplates"])
    } else {
        json!(["analysistemplates"])
    };
    json!([
        {"apiGroups": ["argoproj.io"], "resources": ["rollouts"], "verbs": ["list", "watch", "patch"]},
        {"apiGroups": ["argoproj.io"], "resources": ["rollouts/status"], "verbs": ["patch"]},
        {"apiGroups": ["argoproj.io"], "resources": ["rollouts/finalizers"], "verbs": ["update"]},
        {"apiGroups": ["argoproj.io"], "resources": ["analysisruns"], "verbs": ["list", "watch", "create", "patch", "delete"]},
        {"apiGroups": ["argoproj.io"], "resources": templates, "verbs": ["list", "watch"]},
        {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": ["list", "watch", "create", "patch", "delete"]},
        {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["list", "watch", "get", "create", "delete"]},
        {"apiGroups": ["networking.istio.io"], "resources": ["virtualservices", "destinationrules"], "verbs": ["get", "patch"]},
        {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses"], "verbs": ["get", "create", "patch"]},
        {"apiGroups": ["split.smi-spec.io"], "resources": ["trafficsplits"], "verbs": ["get", "create", "patch"]},
        {"apiGroups": ["traefik.io"], "resources": ["traefikservices"], "verbs": ["get", "patch"]},
        {"apiGroups": ["apisix.apache.org"], "resources": ["apisixroutes"], "verbs": ["get", "patch"]},
        {"apiGroups": ["getambassador.io"], "resources": ["mappings"], "verbs": ["get", "create", "patch", "delete"]},
        {"apiGroups": [""], "resources": ["services"], "verbs": ["list", "watch", "patch"]},
        {"apiGroups": ["gateway.networking.k8s.io"],
         "resources": ["httproutes", "grpcroutes", "tcproutes", "tlsroutes"], "verbs": ["get", "patch"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "update"]},
        {"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]},
        {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
    ])
}

#[test]
fn chart_crds_are_the_generated_crds() {
    let names = |dir: &Path| -> BTreeSet<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .filter(|n| n.ends_with(".yaml"))
            .collect()
    };
    let top = root().join("crds");
    let chart = helm::chart_dir().join("crds");
    let fix = "run `cargo run --bin crdgen` (it writes both directories)";
    assert_eq!(names(&top), names(&chart), "{fix}");
    for n in names(&top) {
        assert!(
            std::fs::read(top.join(&n)).unwrap() == std::fs::read(chart.join(&n)).unwrap(),
            "charts/sluice/crds/{n} differs from crds/{n}: {fix}"
        );
    }
}

#[test]
fn app_version_is_the_crate_version() {
    let chart: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(helm::chart_dir().join("Chart.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(chart["appVersion"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn default_install() {
    let r = render(json!({}));
    assert!(r.helm_version.starts_with('v'), "{}", r.helm_version);
    let kinds: BTreeSet<String> = r
        .objects()
        .unwrap()
        .iter()
        .map(|o| o["kind"].as_str().unwrap().to_string())
        .collect();
    let want: BTreeSet<String> = [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(kinds, want);
    for o in r.objects().unwrap() {
        if o["kind"] != "ClusterRole" && o["kind"] != "ClusterRoleBinding" {
            assert_eq!(o["metadata"]["namespace"], NS, "{}", o["kind"]);
        }
    }

    let d = r.get("Deployment", RELEASE).unwrap();
    assert_eq!(d["spec"]["replicas"], 2);
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], RELEASE);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let c = container(&r);
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["runAsNonRoot"], true);
    assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
    assert!(c["resources"]["requests"]["cpu"].is_string());
    assert!(c["resources"]["requests"]["memory"].is_string());
    assert_eq!(c["image"], "sluice/sluice-controller:0.1.0");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    let ports: Vec<(String, i64)> = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["containerPort"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ports,
        vec![("metrics".to_string(), 8090), ("healthz".to_string(), 8080)]
    );
    let env: Vec<&str> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(env, vec!["POD_NAME", "POD_NAMESPACE"]);
    let a = args(&r);
    for want in [
        "--metrics-port=8090",
        "--healthz-port=8080",
        "--log-format=json",
        "--rollout-threads=10",
        "--analysis-threads=10",
        "--leader-elect=true",
        "--leader-election-namespace=sluice-system",
        "--leader-election-lease-duration=15s",
        "--leader-election-renew-deadline=10s",
        "--leader-election-retry-period=2s",
    ] {
        assert!(a.iter().any(|x| x == want), "{want} missing from {a:?}");
    }
    assert!(!a.iter().any(|x| x.starts_with("--namespace")), "{a:?}");

    // The metrics Service selects exactly the Deployment's pods.
    let svc = r.get("Service", &format!("{RELEASE}-metrics")).unwrap();
    assert_eq!(
        svc["spec"]["selector"],
        d["spec"]["selector"]["matchLabels"]
    );
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "metrics");
    let pdb = r.get("PodDisruptionBudget", RELEASE).unwrap();
    assert_eq!(pdb["spec"]["selector"], d["spec"]["selector"]);
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    // Offline, Helm's default capabilities include policy/v1 (a 1.20 cluster gets v1beta1).
    assert_eq!(pdb["apiVersion"], "policy/v1");
}

/// Every flag the chart passes is accepted by the binary, values included (clap validates what it
/// has parsed before it gets to `--help`).
#[test]
fn every_rendered_flag_parses() {
    for values in [
        json!({}),
        json!({"clusterInstall": false, "controller": {"instanceID": "blue", "extraArgs": ["--rollout-threads=3"]}}),
        json!({"controller": {"replicas": 1, "leaderElection": {"enabled": false}, "logFormat": "plain"}}),
    ] {
        let r = render(values.clone());
        let out = Command::new(env!("CARGO_BIN_EXE_sluice-controller"))
            .args(args(&r))
            .arg("--help")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{values}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn cluster_role_is_exactly_what_the_controller_calls() {
    let r = render(json!({}));
    let cr = r.get("ClusterRole", RELEASE).unwrap();
    assert_eq!(cr["rules"], expected_rules(true));
    let crb = r.get("ClusterRoleBinding", RELEASE).unwrap();
    assert_eq!(crb["roleRef"]["name"], RELEASE);
    assert_eq!(
        crb["subjects"],
        json!([{"kind": "ServiceAccount", "name": RELEASE, "namespace": NS}])
    );
    // Nothing beyond that: no Secrets (by default), no Pods, no wildcards.
    for role in r
        .of_kind("ClusterRole")
        .unwrap()
        .iter()
        .chain(&r.of_kind("Role").unwrap())
    {
        for rule in role["rules"].as_array().unwrap() {
            let text = rule.to_string();
            assert!(!text.contains("secrets"), "{text}");
            assert!(!text.contains("\"*\""), "{text}");
            // Pods: list and update (restart, ephemeral metadata) and eviction, nothing else (no
            // watch, no delete).
            if text.contains("\"pods\"") {
                assert!(
                    rule["verbs"] == serde_json::json!(["list", "update"]),
                    "{text}"
                );
            }
            if text.contains("pods/eviction") {
                assert!(rule["verbs"] == serde_json::json!(["create"]), "{text}");
            }
        }
    }
    // Leader election: the one Lease in the release namespace.
    let le = r
        .get("Role", &format!("{RELEASE}-leader-election"))
        .unwrap();
    assert_eq!(le["metadata"]["namespace"], NS);
    assert_eq!(
        le["rules"],
        json!([
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
             "resourceNames": ["sluice-controller-lock"], "verbs": ["get", "update"]},
        ])
    );
}

#[test]
fn namespaced_install_has_no_cluster_scope() {
    let r = helm::render(&json!({"clusterInstall": false}), RELEASE, "team-a").unwrap();
    assert!(r.of_kind("ClusterRole").unwrap().is_empty());
    assert!(r.of_kind("ClusterRoleBinding").unwrap().is_empty());
    let role = r.get("Role", RELEASE).unwrap();
    assert_eq!(role["metadata"]["namespace"], "team-a");
    let mut want = expected_rules(false);
    want.as_array_mut()
        .unwrap()
        .push(json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}));
    assert_eq!(
        role["rules"], want,
        "Secrets are read by name in the own namespace only"
    );
    let rb = r.get("RoleBinding", RELEASE).unwrap();
    assert_eq!(rb["roleRef"]["kind"], "Role");
    assert!(args(&r).iter().any(|a| a == "--namespace=team-a"));
}

#[test]
fn secret_access_is_per_namespace_opt_in() {
    let r = render(json!({"rbac": {"secretNamespaces": ["team-a", "team-b"]}}));
    let named = |kind: &str, ns: &str| {
        r.of_kind(kind)
            .unwrap()
            .into_iter()
            .find(|o| {
                o["metadata"]["name"] == format!("{RELEASE}-secrets").as_str()
                    && o["metadata"]["namespace"] == ns
            })
            .unwrap()
    };
    for ns in ["team-a", "team-b"] {
        assert_eq!(
            named("Role", ns)["rules"],
            json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}])
        );
        assert_eq!(named("RoleBinding", ns)["subjects"][0]["namespace"], NS);
    }
    let cr = r.get("ClusterRole", RELEASE).unwrap();
    assert!(!cr["rules"].to_string().contains("secrets"));
}

#[test]
fn values_reach_the_controller() {
    let r = render(json!({"controller": {
        "instanceID": "blue", "logFormat": "plain", "logLevel": "debug", "replicas": 3,
        "image": {"repository": "registry.example/sluice", "tag": "v9"},
        "resources": {"requests": {"cpu": "1", "memory": "1Gi"}},
    }}));
    let a = args(&r);
    for want in [
        "--instance-id=blue",
        "--log-format=plain",
        "--log-level=debug",
    ] {
        assert!(a.iter().any(|x| x == want), "{want} missing from {a:?}");
    }
    let c = container(&r);
    assert_eq!(c["image"], "registry.example/sluice:v9");
    assert_eq!(c["resources"]["requests"]["memory"], "1Gi");
    assert_eq!(r.get("Deployment", RELEASE).unwrap()["spec"]["replicas"], 3);
    let le = r
        .get("Role", &format!("{RELEASE}-leader-election"))
        .unwrap();
    assert_eq!(
        le["rules"][1]["resourceNames"],
        json!(["sluice-controller-lock-blue"])
    );

    // One replica without leader election: no Lease role, and the flag says so.
    let r = render(json!({"controller": {"replicas": 1, "leaderElection": {"enabled": false}}}));
    assert!(args(&r).iter().any(|x| x == "--leader-elect=false"));
    assert!(
        r.get("Role", &format!("{RELEASE}-leader-election"))
            .is_err()
    );
    // Two replicas without it would both write: refused.
    let err = helm::render(
        &json!({"controller": {"leaderElection": {"enabled": false}}}),
        RELEASE,
        NS,
    );
    assert!(err.is_err());
}

#[test]
fn service_monitor_and_dashboard_on_request() {
    let r = render(json!({
        "metrics": {"serviceMonitor": {"enabled": true, "additionalLabels": {"release": "prom"}}},
        "grafanaDashboard": {"enabled": true},
    }));
    let sm = r.get("ServiceMonitor", RELEASE).unwrap();
    assert_eq!(sm["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(sm["metadata"]["labels"]["release"], "prom");
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(sm["spec"]["endpoints"][0]["path"], "/metrics");
    let svc = r.get("Service", &format!("{RELEASE}-metrics")).unwrap();
    for (k, v) in sm["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(
            &svc["metadata"]["labels"][k], v,
            "ServiceMonitor selects the Service"
        );
    }
    let cm = r.get("ConfigMap", &format!("{RELEASE}-dashboard")).unwrap();
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    let embedded: Value =
        serde_json::from_str(cm["data"]["sluice.json"].as_str().unwrap()).unwrap();
    assert_eq!(embedded, dashboard());
}

#[test]
fn helm_lint_strict_is_clean() {
    for values in [json!({}), json!({"clusterInstall": false})] {
        let report = helm::lint(&values).unwrap();
        assert_eq!(report["errors"], json!([]), "{report}");
        let serious: Vec<&Value> = report["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["severity"].as_i64().unwrap_or(0) >= 2)
            .collect();
        assert!(serious.is_empty(), "{serious:?}");
    }
}

// ------------------------------------------------------------------------------------------------
// The dashboard against the exporter
// ------------------------------------------------------------------------------------------------

fn dashboard() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(helm::chart_dir().join("dashboards/sluice.json")).unwrap(),
    )
    .unwrap()
}

/// Every PromQL expression of the dashboard: panel targets and template variable queries.
fn queries(d: &Value) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("expr" | "definition", Value::String(s)) => out.push(s.clone()),
                        ("query", Value::String(s)) if s.contains('(') => out.push(s.clone()),
                        _ => walk(v, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    walk(d, &mut out);
    out
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == ':' || c == '$'
}

/// Remove `by (...)`, `without (...)`, `on (...)`, `ignoring (...)`, `group_left (...)` and
/// `group_right (...)`: their parentheses hold label names, not metrics.
fn strip_groupings(s: &str) -> String {
    let mut out = s.to_string();
    for kw in [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ] {
        let mut from = 0;
        while let Some(i) = out[from..].find(kw).map(|i| i + from) {
            let before_ok = out[..i].chars().next_back().is_none_or(|c| !is_ident(c));
            let after = &out[i + kw.len()..];
            let trimmed = after.trim_start();
            if before_ok && trimmed.starts_with('(') {
                let open = i + kw.len() + (after.len() - trimmed.len());
                let close = out[open..].find(')').map_or(out.len() - 1, |j| open + j);
                out.replace_range(i..=close, " ");
                from = i;
            } else {
                from = i + kw.len();
            }
        }
    }
    out
}

const PROMQL_WORDS: &[&str] = &[
    "sum",
    "count",
    "max",
    "min",
    "avg",
    "topk",
    "bottomk",
    "rate",
    "irate",
    "increase",
    "histogram_quantile",
    "vector",
    "time",
    "by",
    "without",
    "or",
    "and",
    "unless",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "abs",
    "clamp_min",
    "clamp_max",
    "label_values",
    "delta",
    "deriv",
    "scalar",
    "sort",
    "sort_desc",
];

/// The metric names a PromQL expression reads: identifiers left after removing strings, label
/// matchers, ranges, grouping clauses, numbers and function names.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut s = String::new();
    let mut depth_brace = 0;
    let mut depth_bracket = 0;
    let mut in_str = false;
    for ch in expr.chars() {
        match ch {
            '"' => in_str = !in_str,
            _ if in_str => {}
            '{' => depth_brace += 1,
            '}' => depth_brace -= 1,
            '[' => depth_bracket += 1,
            ']' => depth_bracket -= 1,
            _ if depth_brace > 0 || depth_bracket > 0 => {}
            c => s.push(c),
        }
        if matches!(ch, '{' | '}' | '[' | ']' | '"') {
            s.push(' ');
        }
    }
    let cleaned = strip_groupings(&s);
    // label_values(metric, label): only the first argument is a metric.
    let cleaned = match cleaned.find("label_values(") {
        Some(i) => {
            let rest = &cleaned[i + "label_values(".len()..];
            rest.split(',').next().unwrap_or("").to_string()
        }
        None => cleaned,
    };
    cleaned
        .split(|c: char| !is_ident(c))
        .filter(|w| !w.is_empty())
        .filter(|w| !w.starts_with('$'))
        .filter(|w| !w.chars().next().unwrap().is_ascii_digit())
        .filter(|w| !PROMQL_WORDS.contains(w))
        .map(str::to_string)
        .collect()
}

#[test]
fn metric_name_extraction() {
    assert_eq!(
        metric_names(
            r#"histogram_quantile(0.99, sum by (le) (rate(rollout_reconcile_bucket{namespace=~"$namespace"}[$__rate_interval])))"#
        ),
        BTreeSet::from(["rollout_reconcile_bucket".to_string()])
    );
    assert_eq!(
        metric_names(r#"count(rollout_info{phase="Completed"}) or vector(0)"#),
        BTreeSet::from(["rollout_info".to_string()])
    );
    assert_eq!(
        metric_names(r#"label_values(rollout_info{namespace=~"$namespace"}, name)"#),
        BTreeSet::from(["rollout_info".to_string()])
    );
    assert_eq!(
        metric_names("time() - max(process_start_time_seconds{job=~\"$job\"})"),
        BTreeSet::from(["process_start_time_seconds".to_string()])
    );
}

/// Every sample name the exporter can produce, from a registry fed one of everything.
fn exported_names() -> BTreeSet<String> {
    use kube::runtime::watcher::Event;
    use sluice::metrics::{AnalysisMetricSample, AnalysisRunSample, Metrics};
    let m = Metrics::new("test");
    let ro: sluice::api::rollout::Rollout = serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"namespace": "ns", "name": "r"},
        "spec": {"strategy": {"canary": {}}},
        "status": {"replicas": 1, "availableReplicas": 1, "updatedReplicas": 1},
    }))
    .unwrap();
    let (store, mut w) = kube::runtime::reflector::store();
    w.apply_watcher_event(&Event::Apply(ro.clone()));
    m.watch_rollouts(store);
    drop(m.reconcile_timer(&ro));
    m.reconcile_error(&ro);
    m.event("ns", "r", "Normal", "RolloutUpdated");
    drop(m.analysis_run_reconcile_timer("ns", "run"));
    m.analysis_run_reconcile_error("ns", "run");
    m.set_leader_probe("sluice-controller-lock", || true);
    m.set_analysis_source(|| {
        vec![AnalysisRunSample {
            namespace: "ns".into(),
            name: "run".into(),
            phase: "Running".into(),
            metrics: vec![AnalysisMetricSample {
                name: "m".into(),
                provider: "Prometheus".into(),
                dry_run: false,
                phase: "Running".into(),
            }],
        }]
    });
    m.render()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
        .collect()
}

#[test]
fn dashboard_queries_only_exported_metrics() {
    let exported = exported_names();
    for want in [
        "rollout_info",
        "rollout_reconcile_bucket",
        "rollout_reconcile_error",
        "rollout_events_total",
        "analysis_run_metric_phase",
        "process_cpu_seconds_total",
    ] {
        assert!(exported.contains(want), "{want} not exported: {exported:?}");
    }
    let d = dashboard();
    let qs = queries(&d);
    assert!(qs.len() > 20, "{qs:?}");
    let mut used = BTreeSet::new();
    for q in &qs {
        let names = metric_names(q);
        assert!(!names.is_empty(), "no metric in {q}");
        for n in names {
            assert!(
                exported.contains(&n),
                "dashboard query {q:?} reads {n}, which Sluice does not export"
            );
            used.insert(n);
        }
    }
    // The dashboard covers the headline families.
    for must in [
        "rollout_info",
        "rollout_info_replicas_available",
        "rollout_reconcile_bucket",
        "rollout_events_total",
        "analysis_run_info",
        "leader_election_master_status",
    ] {
        assert!(used.contains(must), "dashboard does not show {must}");
    }
}
