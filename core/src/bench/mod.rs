//! Measuring the engine: latency statistics and process memory, shared by the benchmark runner on every device.

mod memory;
mod stats;

pub use memory::{Memory, memory};
pub use stats::Summary;
