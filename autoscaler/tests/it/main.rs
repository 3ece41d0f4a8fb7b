//! Integration tests of the autoscaler, one binary (linking once is what takes time here).

// Helpers outside `#[test]` functions unwrap too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod controller;
mod erlang;
mod kube_target;
mod large_scale_up;
mod prometheus;
mod scrape;
mod server;
mod simulator;
mod state_configmap;
mod state_restart;
