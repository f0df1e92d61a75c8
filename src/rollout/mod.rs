//! The pure planning core: no kube client, no async, no clock reads.

pub mod replicas;
