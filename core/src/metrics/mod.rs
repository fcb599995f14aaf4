//! Measuring the engine: latency statistics, process memory and CPU time, shared by the benchmark runner on every device
//! and by the LLM's per-request metrics.

mod cpu;
mod memory;
mod stats;

pub use cpu::process_cpu_time;
pub use memory::{Memory, memory};
pub use stats::Summary;
