//! `agentcol`: the collector binary (skeleton).
mod config;
mod plan;
mod registry;
mod service;

fn main() {}
