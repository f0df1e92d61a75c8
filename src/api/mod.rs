//! CRD types, label and annotation constants. No I/O.

pub mod analysis;
pub mod consts;
pub mod crd;
pub mod experiment;
pub mod rollout;
pub mod schema;
pub mod selector;
