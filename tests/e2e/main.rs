//! End-to-end suite: one genuine control plane per run, scenarios in parallel, each with its own
//! namespaced controller. Prints `N passed, M failed` and exits non-zero on any failure.

mod harness;
mod scenarios;

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

type Scenario<'a> = (
    &'static str,
    Pin<Box<dyn Future<Output = anyhow::Result<()>> + 'a>>,
);

#[tokio::main]
async fn main() {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let cluster = match harness::Cluster::start().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("e2e: cannot start the control plane: {e:#}");
            println!("0 passed, 1 failed");
            std::process::exit(1);
        }
    };
    let c = &cluster;
    let all: Vec<Scenario> = vec![
        ("seed_walk", Box::pin(scenarios::seed_walk(c))),
        (
            "timed_walk_and_idle",
            Box::pin(scenarios::timed_walk_and_idle(c)),
        ),
        (
            "indefinite_pause_then_promote",
            Box::pin(scenarios::indefinite_pause_then_promote(c)),
        ),
        ("abort_then_retry", Box::pin(scenarios::abort_then_retry(c))),
        ("promote_full", Box::pin(scenarios::promote_full(c))),
        (
            "revision_history_limit",
            Box::pin(scenarios::revision_history_limit(c)),
        ),
        ("invalid_spec", Box::pin(scenarios::invalid_spec(c))),
        ("kill9_resume", Box::pin(scenarios::kill9_resume(c))),
        (
            "progress_deadline",
            Box::pin(scenarios::progress_deadline(c, false)),
        ),
        (
            "progress_deadline_abort",
            Box::pin(scenarios::progress_deadline(c, true)),
        ),
    ];
    let selected: Vec<Scenario> = all
        .into_iter()
        .filter(|(n, _)| filter.is_empty() || filter.iter().any(|f| n.contains(f.as_str())))
        .collect();
    let start = Instant::now();
    let runs = selected.into_iter().map(|(name, fut)| async move {
        let t = Instant::now();
        let r = fut.await;
        match &r {
            Ok(()) => println!(
                "test e2e::{name} ... ok ({:.1}s)",
                t.elapsed().as_secs_f64()
            ),
            Err(e) => println!(
                "test e2e::{name} ... FAILED ({:.1}s): {e:#}",
                t.elapsed().as_secs_f64()
            ),
        }
        r.is_ok()
    });
    let results = futures::future::join_all(runs).await;
    let passed = results.iter().filter(|ok| **ok).count();
    let failed = results.len() - passed;
    drop(cluster);
    println!(
        "e2e finished in {:.1}s (logs in target/e2e-logs)",
        start.elapsed().as_secs_f64()
    );
    println!("{passed} passed, {failed} failed");
    if failed > 0 || passed == 0 {
        std::process::exit(1);
    }
}
