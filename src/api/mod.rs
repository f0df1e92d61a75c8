//! CRD types, label and annotation constants. No I/O.

pub mod consts;
pub mod crd;
pub mod rollout;
