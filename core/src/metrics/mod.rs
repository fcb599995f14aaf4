//! Measuring the engine: latency statistics and process memory, shared by the benchmark runner on every device
//! and by the LLM's per-request metrics.

mod memory;
mod stats;

pub use memory::{Memory, memory};
pub use stats::Summary;
