//! The measurement engine: AnalysisRun state machine, condition evaluation and metric
//! providers behind one trait. The state machine and the evaluator are pure; providers do I/O.

pub mod args;
pub mod expr;
pub mod providers;
pub mod run;
