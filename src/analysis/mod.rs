//! The measurement engine: AnalysisRun state machine, condition evaluation, the planner of one
//! reconcile, and metric providers behind one trait. The state machine, the evaluator and the
//! planner are pure; providers do I/O (their writes through the controller's writer).

pub mod args;
pub mod expr;
pub mod plan;
pub mod providers;
pub mod run;
