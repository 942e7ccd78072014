//! End-to-end tests: the real `agentcol` binary, real sockets on 127.0.0.1, real peers (the
//! OpenTelemetry Python SDK, otelcol-contrib, rotel) where installed by `tests/peers.sh`. Tests
//! that need a missing peer print a `SKIP:` line and return.

mod support;

mod bad_input;
mod claude;
mod cli;
mod codex;
mod delivery;
mod hooks;
mod interop;
mod otlp;
mod store;
