//! What Argo CD's resource tree shows for Sluice's rollouts: the health Argo CD's built-in check
//! for `argoproj.io/Rollout` gives the statuses the planner writes, the seed manifest walked
//! through its stages in the simulator as a canary and as a blue-green rollout (hence a library
//! test module: `rollout::sim` is test-only), and blue-green statuses as Argo itself writes them.
//!
//! Two evaluators answer each case. [`surfaced`] is our statement of the rule that check applies
//! to every rollout whose controller records `status.phase` (Argo Rollouts 1.0 and later, and
//! Sluice): once the generation is observed, the phase is shown as is (`Paused` as Argo CD's
//! `Suspended`) with the status message. It always runs. Argo CD's own script
//! (`resource_customizations/argoproj.io/Rollout/health.lua` in argoproj/argo-cd, Apache-2.0) is
//! not kept in this repository; with `SLUICE_ARGOCD_REPO` naming an argo-cd checkout or git
//! directory, every case is also run through that script in Lua 5.1 (gopher-lua's dialect) with
//! the libraries and the result decoding of Argo CD's `util/lua`, and the script is first checked
//! against the expectations of its own `health_test.yaml`. Without the variable those checks say
//! so on stderr and pass.

use std::path::{Path, PathBuf};

use mlua::{Lua, LuaOptions, StdLib, Value as Lua51};
use serde_json::{Value, json};

use crate::api::rollout::Rollout;
use crate::rollout::sim::{Pods, SEED, Sim};

/// The argo-cd commit the expectations here were checked against (read from a git directory;
/// a work tree is read as it is).
const ARGOCD_COMMIT: &str = "37ee0097cf851bc2dd7665fc081bbce61a7e836e";
const SCRIPT_DIR: &str = "resource_customizations/argoproj.io/Rollout";

/// Argo CD's `HealthStatus`: the status code and message its UI shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Health {
    status: String,
    message: String,
}

fn health(status: &str, message: &str) -> Health {
    Health {
        status: status.into(),
        message: message.into(),
    }
}

/// The health check's rule for a rollout whose controller writes `status.phase`; `None` for the
/// older statuses without one, which the script judges from replica counts instead.
fn surfaced(obj: &Value) -> Option<Health> {
    let status = obj.get("status").filter(|s| !s.is_null());
    let Some(status) = status else {
        return Some(health(
            "Progressing",
            "Waiting for rollout spec update to be observed",
        ));
    };
    // A non-numeric observedGeneration is a pre-0.10 hash and counts as observed; so does a
    // numeric one above the generation.
    let observed = status["observedGeneration"]
        .as_str()
        .and_then(|g| g.trim().parse::<f64>().ok());
    let generation = obj["metadata"]["generation"].as_f64();
    let generation_seen = match (observed, generation) {
        (None, _) => true,
        (Some(o), Some(g)) => o >= g,
        (Some(_), None) => false,
    };
    let workload_seen = obj["spec"].get("workloadRef").is_none_or(Value::is_null)
        || obj["metadata"]["annotations"].is_null()
        || number(&obj["metadata"]["annotations"]["rollout.argoproj.io/workload-generation"])
            == number(&status["workloadObservedGeneration"]);
    if !generation_seen || !workload_seen {
        return Some(health(
            "Progressing",
            "Waiting for rollout spec update to be observed",
        ));
    }
    let phase = status["phase"].as_str()?;
    let shown = if phase == "Paused" {
        "Suspended"
    } else {
        phase
    };
    Some(health(
        shown,
        status["message"].as_str().unwrap_or_default(),
    ))
}

/// Lua's `tonumber` of a JSON string or number.
fn number(v: &Value) -> Option<f64> {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

// =============================================================================================
// Argo CD's script, when a checkout is named
// =============================================================================================

/// Where Argo CD's sources are read from.
enum Source {
    WorkTree(PathBuf),
    GitDir(PathBuf),
}

impl Source {
    fn from_env() -> Option<Source> {
        let dir = PathBuf::from(std::env::var_os("SLUICE_ARGOCD_REPO")?);
        Some(if dir.join(SCRIPT_DIR).is_dir() {
            Source::WorkTree(dir)
        } else {
            Source::GitDir(dir)
        })
    }

    /// A file beside the health script; a missing one fails the test (the variable was set).
    fn read(&self, rel: &str) -> String {
        let path = format!("{SCRIPT_DIR}/{rel}");
        match self {
            Source::WorkTree(dir) => std::fs::read_to_string(dir.join(&path))
                .unwrap_or_else(|e| panic!("{}: {e}", dir.join(&path).display())),
            Source::GitDir(dir) => {
                let out = std::process::Command::new("git")
                    .arg("--git-dir")
                    .arg(dir)
                    .arg("show")
                    .arg(format!("{ARGOCD_COMMIT}:{path}"))
                    .output()
                    .unwrap_or_else(|e| panic!("git: {e}"));
                assert!(
                    out.status.success(),
                    "{}: {ARGOCD_COMMIT}:{path}: {}",
                    dir.display(),
                    String::from_utf8_lossy(&out.stderr)
                );
                String::from_utf8_lossy(&out.stdout).into_owned()
            }
        }
    }
}

/// Argo CD's script, or `None` (with a note on stderr) when no checkout is named.
fn script(test: &str) -> Option<(Source, String)> {
    let Some(source) = Source::from_env() else {
        eprintln!(
            "{test}: SLUICE_ARGOCD_REPO is not set: Argo CD's health.lua was not run \
             (only the phase rule was checked)"
        );
        return None;
    };
    let text = source.read("health.lua");
    Some((source, text))
}

/// Argo CD's `decodeValue`: objects and arrays become tables, numbers Lua numbers, null nil.
fn to_lua(lua: &Lua, v: &Value) -> mlua::Result<Lua51> {
    Ok(match v {
        Value::Null => Lua51::Nil,
        Value::Bool(b) => Lua51::Boolean(*b),
        Value::Number(n) => Lua51::Number(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => Lua51::String(lua.create_string(s)?),
        Value::Array(items) => {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.iter().enumerate() {
                t.raw_set(i + 1, to_lua(lua, item)?)?;
            }
            Lua51::Table(t)
        }
        Value::Object(fields) => {
            let t = lua.create_table_with_capacity(0, fields.len())?;
            for (k, item) in fields {
                t.raw_set(k.as_str(), to_lua(lua, item)?)?;
            }
            Lua51::Table(t)
        }
    })
}

const HEALTH_CODES: [&str; 6] = [
    "Unknown",
    "Progressing",
    "Suspended",
    "Healthy",
    "Degraded",
    "Missing",
];

/// Argo CD's `ExecuteHealthLua`: run the script with `obj` set, with the libraries Argo CD opens
/// (base, table, package; its safe `os` is left out, the Rollout script does not use it), and
/// decode the returned table the way Argo CD does: nil or a table that is not a `{status,
/// message}` object gives an empty status, an unknown status code gives `Unknown` with Argo CD's
/// message.
fn run_script(script: &str, obj: &Value) -> Result<Health, String> {
    let lua = Lua::new_with(StdLib::TABLE | StdLib::PACKAGE, LuaOptions::default())
        .map_err(|e| e.to_string())?;
    let obj = to_lua(&lua, obj).map_err(|e| e.to_string())?;
    lua.globals().set("obj", obj).map_err(|e| e.to_string())?;
    let out: Lua51 = lua
        .load(script)
        .set_name("health.lua")
        .eval()
        .map_err(|e| e.to_string())?;
    let table = match out {
        Lua51::Nil => return Ok(Health::default()),
        Lua51::Table(t) => t,
        other => {
            return Err(format!(
                "expect table output from Lua script, not {other:?}"
            ));
        }
    };
    if table.raw_len() > 0 {
        return Ok(Health::default());
    }
    let field = |k: &str| -> Option<Result<String, ()>> {
        match table.raw_get::<Lua51>(k).ok()? {
            Lua51::Nil => None,
            Lua51::String(s) => Some(Ok(s.to_string_lossy())),
            _ => Some(Err(())),
        }
    };
    let (Ok(status), Ok(message)) = (
        field("status").unwrap_or(Ok(String::new())),
        field("message").unwrap_or(Ok(String::new())),
    ) else {
        return Ok(Health::default());
    };
    if !HEALTH_CODES.contains(&status.as_str()) {
        return Ok(health("Unknown", "Lua returned an invalid health status"));
    }
    Ok(Health { status, message })
}

fn yaml(text: &str, what: &str) -> Value {
    serde_saphyr::from_str(text).unwrap_or_else(|e| panic!("{what}: {e}"))
}

#[test]
fn argocd_script_passes_its_own_fixtures() {
    let Some((source, script)) = script("argocd_script_passes_its_own_fixtures") else {
        return;
    };
    let tests = yaml(&source.read("health_test.yaml"), "health_test.yaml");
    let tests = tests["tests"].as_array().cloned().unwrap_or_default();
    assert!(tests.len() >= 20, "only {} fixtures", tests.len());
    let mut failures = Vec::new();
    for t in &tests {
        let input = t["inputPath"].as_str().unwrap_or_default();
        let obj = yaml(&source.read(input), input);
        let want = health(
            t["healthStatus"]["status"].as_str().unwrap_or_default(),
            t["healthStatus"]["message"].as_str().unwrap_or_default(),
        );
        let got = run_script(&script, &obj);
        if got.as_ref() != Ok(&want) {
            failures.push(format!("{input}: want {want:?}, got {got:?}"));
            continue;
        }
        // Where the status records a phase, our rule must say what the script says.
        if let Some(rule) = surfaced(&obj)
            && rule != want
        {
            failures.push(format!(
                "{input}: the phase rule says {rule:?}, Argo CD {want:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// =============================================================================================
// The cases: Sluice's statuses and what Argo CD shows for them
// =============================================================================================

/// One rollout as the API server would hand it to Argo CD, and the health Argo CD shows.
struct Case {
    name: &'static str,
    rollout: Value,
    want: Health,
}

fn case(name: &'static str, ro: &Rollout, want: Health) -> Case {
    let mut rollout = serde_json::to_value(ro).unwrap_or_else(|e| panic!("{name}: {e}"));
    rollout["apiVersion"] = json!("argoproj.io/v1alpha1");
    rollout["kind"] = json!("Rollout");
    Case {
        name,
        rollout,
        want,
    }
}

/// The seed canary walked through the simulator: what the planner writes at each stage.
fn canary_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let mut sim = Sim::seed();
    sim.settle(20);
    cases.push(case(
        "canary: initial deploy",
        &sim.ro,
        health("Healthy", ""),
    ));

    sim.set_image("frontend:v2");
    cases.push(case(
        "canary: new template, not yet observed",
        &sim.ro,
        health(
            "Progressing",
            "Waiting for rollout spec update to be observed",
        ),
    ));
    sim.settle(20);
    cases.push(case(
        "canary: paused at the first pause step",
        &sim.ro,
        health("Suspended", "CanaryPauseStep"),
    ));

    sim.ro.spec.paused = Some(true);
    sim.bump_generation();
    sim.settle(20);
    cases.push(case(
        "canary: paused by the user",
        &sim.ro,
        health("Suspended", "manually paused"),
    ));
    sim.ro.spec.paused = None;
    sim.bump_generation();

    if let Some(st) = sim.ro.status.as_mut() {
        st.promote_full = Some(true);
    }
    sim.settle(20);
    cases.push(case(
        "canary: fully promoted",
        &sim.ro,
        health("Healthy", ""),
    ));

    sim.set_image("frontend:v3");
    sim.settle(20);
    if let Some(st) = sim.ro.status.as_mut() {
        st.abort = Some(true);
    }
    sim.settle(20);
    cases.push(case(
        "canary: aborted",
        &sim.ro,
        health(
            "Degraded",
            "RolloutAborted: Rollout aborted update to revision 3",
        ),
    ));

    let mut slow = Sim::seed();
    slow.pods = Pods::NeverReadyTag;
    slow.settle(20);
    slow.set_image("frontend:never-ready");
    slow.settle(3);
    cases.push(case(
        "canary: first step, the canary pod never available",
        &slow.ro,
        health("Progressing", "more replicas need to be updated"),
    ));

    let mut invalid = Sim::new(&SEED.replace("setWeight: 20", "setWeight: 150"));
    invalid.settle(20);
    cases.push(case(
        "canary: invalid spec",
        &invalid.ro,
        health(
            "Degraded",
            "InvalidSpec: The Rollout \"frontend\" is invalid: spec.strategy.steps[0].setWeight: \
             Invalid value: 150: SetWeight needs to be between 0 and 100",
        ),
    ));
    cases
}

/// The seed manifest as a blue-green rollout (the same pods; the canary steps replaced by an
/// active and a preview Service and a manual promotion), in a simulator that has those Services.
fn blue_green_sim(extra: &str) -> Sim {
    let canary = SEED
        .find("    canary:")
        .and_then(|from| Some(from..from + SEED[from..].find("  revisionHistoryLimit")?))
        .unwrap_or_else(|| panic!("the seed manifest has no canary block"));
    let strategy = format!(
        "    blueGreen:\n      activeService: frontend\n      previewService: frontend-preview\n      \
         autoPromotionEnabled: false\n{extra}"
    );
    let mut yaml = SEED.to_string();
    yaml.replace_range(canary, &strategy);
    let mut sim = Sim::new(&yaml);
    sim.add_service("frontend", &[("app", "frontend")]);
    sim.add_service("frontend-preview", &[("app", "frontend")]);
    sim
}

fn promote(sim: &mut Sim) {
    if let Some(st) = sim.ro.status.as_mut() {
        st.pause_conditions = None;
    }
}

/// The blue-green planner walked through the simulator.
fn blue_green_sim_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let mut sim = blue_green_sim("");
    sim.settle(20);
    cases.push(case(
        "blue-green sim: initial deploy",
        &sim.ro,
        health("Healthy", ""),
    ));

    sim.set_image("frontend:v2");
    cases.push(case(
        "blue-green sim: new template, not yet observed",
        &sim.ro,
        health(
            "Progressing",
            "Waiting for rollout spec update to be observed",
        ),
    ));
    sim.settle(20);
    cases.push(case(
        "blue-green sim: preview up, paused before promotion",
        &sim.ro,
        health("Suspended", "BlueGreenPause"),
    ));
    promote(&mut sim);
    sim.settle(20);
    cases.push(case(
        "blue-green sim: promoted, old ReplicaSet in its scale-down delay",
        &sim.ro,
        health("Healthy", ""),
    ));
    sim.advance(31);
    sim.settle(20);
    cases.push(case(
        "blue-green sim: old ReplicaSet scaled down",
        &sim.ro,
        health("Healthy", ""),
    ));

    sim.set_image("frontend:v3");
    sim.settle(20);
    if let Some(st) = sim.ro.status.as_mut() {
        st.abort = Some(true);
    }
    sim.settle(20);
    cases.push(case(
        "blue-green sim: aborted before promotion",
        &sim.ro,
        health(
            "Degraded",
            "RolloutAborted: Rollout aborted update to revision 3",
        ),
    ));

    let mut slow = blue_green_sim("");
    slow.pods = Pods::NeverReadyTag;
    slow.settle(20);
    slow.set_image("frontend:never-ready");
    slow.settle(3);
    cases.push(case(
        "blue-green sim: preview pods never available",
        &slow.ro,
        // The preview's pods count as updated once they exist; available counts the active
        // ReplicaSet only, so the wait shows as the pending switch (as in Argo).
        health("Progressing", "active service cutover pending"),
    ));

    let mut post = blue_green_sim(
        "      postPromotionAnalysis:\n        templates: [{templateName: smoke}]\n",
    );
    post.templates.push(
        serde_saphyr::from_str(
            "apiVersion: argoproj.io/v1alpha1\nkind: AnalysisTemplate\n\
             metadata: {name: smoke, namespace: default}\n\
             spec: {metrics: [{name: up, provider: {web: {url: 'http://smoke'}}}]}\n",
        )
        .unwrap_or_else(|e| panic!("template: {e}")),
    );
    post.settle(20);
    post.set_image("frontend:v2");
    post.settle(20);
    promote(&mut post);
    post.settle(20);
    cases.push(case(
        "blue-green sim: promoted, post-promotion analysis running",
        &post.ro,
        health("Progressing", "waiting for analysis to complete"),
    ));

    let mut missing = blue_green_sim("");
    missing.services.clear();
    missing.settle(20);
    cases.push(case(
        "blue-green sim: active Service missing",
        &missing.ro,
        health(
            "Degraded",
            "InvalidSpec: The Rollout \"frontend\" is invalid: \
             spec.strategy.blueGreen.activeService: Invalid value: \"frontend\": \
             services \"frontend\" not found",
        ),
    ));
    cases
}

/// Blue-green statuses shaped as Argo's own controller writes them (the CLI's golden inputs,
/// read here too): the same stages as the simulator's, from the reference implementation.
fn blue_green_cases() -> Vec<Case> {
    let rollout_of = |file: &str| -> Value {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(file);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        docs.into_iter()
            .find(|d| d["kind"] == "Rollout")
            .unwrap_or_else(|| panic!("{file}: no Rollout"))
    };
    let paused = rollout_of("bluegreen-paused.yaml");
    // Before the pause: the preview ReplicaSet still scaling up.
    let mut scaling = paused.clone();
    let st = &mut scaling["status"];
    st["updatedReplicas"] = json!(2);
    st["availableReplicas"] = json!(5);
    st["phase"] = json!("Progressing");
    st["message"] = json!("more replicas need to be updated");
    st["pauseConditions"] = Value::Null;
    st["controllerPause"] = Value::Null;
    // Promoted, waiting on post-promotion analysis: active switched, not yet stable.
    let mut post = rollout_of("bluegreen-promoted.yaml");
    post["spec"]["strategy"]["blueGreen"]["postPromotionAnalysis"] =
        json!({"templates": [{"templateName": "smoke"}]});
    let st = &mut post["status"];
    st["stableRS"] = json!("6b9f7c9d4");
    st["phase"] = json!("Progressing");
    st["message"] = json!("waiting for analysis to complete");
    vec![
        Case {
            name: "blue-green: preview scaling up",
            rollout: scaling,
            want: health("Progressing", "more replicas need to be updated"),
        },
        Case {
            name: "blue-green: paused before promotion",
            rollout: paused,
            want: health("Suspended", "BlueGreenPause"),
        },
        Case {
            name: "blue-green: post-promotion analysis running",
            rollout: post,
            want: health("Progressing", "waiting for analysis to complete"),
        },
        Case {
            name: "blue-green: promoted, old ReplicaSet in its scale-down delay",
            rollout: rollout_of("bluegreen-promoted.yaml"),
            want: health("Healthy", ""),
        },
        Case {
            name: "blue-green: healthy",
            rollout: rollout_of("bluegreen-healthy.yaml"),
            want: health("Healthy", ""),
        },
        Case {
            name: "blue-green: aborted",
            rollout: rollout_of("bluegreen-aborted.yaml"),
            want: health(
                "Degraded",
                "RolloutAborted: Rollout aborted update to revision 2",
            ),
        },
    ]
}

fn check(cases: &[Case], test: &str) {
    let lua = script(test);
    let mut failures = Vec::new();
    for c in cases {
        let rule = surfaced(&c.rollout);
        if rule.as_ref() != Some(&c.want) {
            failures.push(format!(
                "{}: want {:?}, the phase rule says {rule:?}",
                c.name, c.want
            ));
        }
        if let Some((_, script)) = &lua {
            let got = run_script(script, &c.rollout);
            if got.as_ref() != Ok(&c.want) {
                failures.push(format!(
                    "{}: want {:?}, Argo CD's script says {got:?}",
                    c.name, c.want
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn argocd_health_of_canary_stages() {
    check(&canary_cases(), "argocd_health_of_canary_stages");
}

#[test]
fn argocd_health_of_blue_green_stages() {
    check(
        &blue_green_sim_cases(),
        "argocd_health_of_blue_green_stages",
    );
}

#[test]
fn argocd_health_of_argo_shaped_blue_green_statuses() {
    check(
        &blue_green_cases(),
        "argocd_health_of_argo_shaped_blue_green_statuses",
    );
}
