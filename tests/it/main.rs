//! One integration-test binary: the real `baton` binary on temporary git
//! repositories, with a scripted model and no network.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::needless_pass_by_value,
    reason = "test set-up panics on failure; helpers take owned JSON for brevity"
)]

mod support;

mod actions;
mod architecture;
mod config;
mod demo;
mod e2e;
mod fake_forge_selftest;
mod first_run;
mod forge_hostile;
mod forges;
mod lifecycle;
mod models;
mod providers;
mod routes;
mod run_dir;
mod safety;
mod sandbox;
mod stops;
mod triggers;
mod workflows;
