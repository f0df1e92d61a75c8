//! The measurement engine: AnalysisRun state machine, condition evaluation, the planner of one
//! reconcile, and metric providers behind one trait. The state machine, the evaluator and the
//! planner are pure; providers do I/O (their writes through the controller's writer).
//!
//! The evaluator ([`expr`]) is pure in this sense: no network, no shared mutable state, and an
//! outcome that depends only on the expression and the measured value, unless the expression
//! asks for the time (`now()` reads the wall clock; Prometheus `rangeQuery` bounds are made of
//! it) or the `"Local"` time zone (`TZ`, else the system zone), both as in Argo. Its work is
//! bounded by [`expr::Limits`]: 2,000,000 interpreter steps, 1,000,000 memory units and a 100 ms
//! backstop on the monotonic clock (`Instant::now()` at the start, compared every 1,024 steps).
//! Each call runs on a fresh scoped thread with a 16 MiB stack and joins it before returning, to
//! isolate stack depth and panics; nothing runs after the call returns. Steps and memory are
//! counted exactly, and the clock can only turn a result into a time-budget error, which a
//! realistic condition never gets near, so a well-behaved condition has the same outcome on
//! every run.

pub mod args;
pub mod expr;
pub mod plan;
pub mod providers;
pub mod run;
pub mod templates;
