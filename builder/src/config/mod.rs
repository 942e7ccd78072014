//! Configuration: reading `--config` sources, expanding `${…}`, merging, `--set`, and turning
//! the result into a [`Plan`](crate::plan::Plan) with every fault reported at once.
//! (skeleton: filled in by the config work)
