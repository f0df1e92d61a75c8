//! The pure planning core: no kube client, no async, no clock reads.

pub mod analysis;
pub mod hash;
pub mod observed;
pub mod plan;
pub mod replicas;
pub mod restart;
pub mod sanitize;
pub mod status;
pub mod validation;

pub use observed::Observed;
pub use plan::{Plan, plan};

#[cfg(test)]
pub mod sim;
#[cfg(test)]
mod tests;
