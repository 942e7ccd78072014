//! The `dedupe` processor (being written).
use std::sync::Arc;

use agentcol_component::AnyProcessorFactory;

/// The `dedupe` processor factory, erased for the registry.
pub fn factory() -> Option<Arc<dyn AnyProcessorFactory>> {
    None
}
