//! One integration-test binary: the real `baton` binary on temporary git
//! repositories, with a scripted model and no network.

mod support;

mod config;
mod demo;
mod routes;
mod run_dir;
mod safety;
mod stops;
