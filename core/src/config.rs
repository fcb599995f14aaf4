//! How an engine is built: which accelerators, how hard to optimize the graph, how many threads.

/// Where a model runs, in the caller's order of preference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accelerator {
    /// ONNX Runtime's CPU execution provider, available everywhere.
    Cpu,
}

/// Graph optimization before the first run, mapped to ONNX Runtime's levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OptimizeLevel {
    /// No graph optimization.
    O0,
    /// Basic: constant folding, redundant node removal.
    O1,
    /// Extended: adds complex node fusions.
    O2,
    /// All: adds layout optimizations (graph fusion + constant folding + layout).
    #[default]
    O3,
}

/// Engine settings. `Default` is a sensible mobile choice: CPU, O3, ONNX Runtime's thread count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// Accelerators in order of preference; empty means `[Cpu]`.
    pub accelerators: Vec<Accelerator>,
    pub optimize_level: OptimizeLevel,
    /// Threads for one operator; 0 lets ONNX Runtime choose (one per physical core).
    pub intra_op_threads: u32,
    /// Threads running independent branches of the graph in parallel; 0 or 1 runs nodes one after another.
    pub inter_op_threads: u32,
    /// Whether idle threads spin waiting for work: lower latency, more power and CPU contention. `None` keeps ONNX
    /// Runtime's default (on).
    pub spinning: Option<bool>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            accelerators: vec![Accelerator::Cpu],
            optimize_level: OptimizeLevel::O3,
            intra_op_threads: 0,
            inter_op_threads: 0,
            spinning: None,
        }
    }
}

impl EngineConfig {
    pub fn with_threads(mut self, intra_op_threads: u32) -> Self {
        self.intra_op_threads = intra_op_threads;
        self
    }

    pub fn with_inter_op_threads(mut self, inter_op_threads: u32) -> Self {
        self.inter_op_threads = inter_op_threads;
        self
    }

    pub fn with_spinning(mut self, spinning: bool) -> Self {
        self.spinning = Some(spinning);
        self
    }

    pub fn with_optimize_level(mut self, level: OptimizeLevel) -> Self {
        self.optimize_level = level;
        self
    }

    pub fn with_accelerators(mut self, accelerators: Vec<Accelerator>) -> Self {
        self.accelerators = accelerators;
        self
    }
}
