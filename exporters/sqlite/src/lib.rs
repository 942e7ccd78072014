//! The `sqlite` exporter (being written).
use std::sync::Arc;

use agentcol_component::AnyExporterFactory;

/// The `sqlite` exporter factory, erased for the registry.
pub fn factory() -> Option<Arc<dyn AnyExporterFactory>> {
    None
}
