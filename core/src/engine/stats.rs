//! What an engine counts about its runs, for apps and benchmarks.

/// Time an engine spent running its model ([`Engine::run_time`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RunTime {
    pub busy: std::time::Duration,
    /// The part of `busy` in runs stopped for an interactive run and started again.
    pub preempted: std::time::Duration,
}

/// Runs by the session that served them ([`Engine::waiting_stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WaitingStats {
    /// On the engine's own session (its threads stop after each run), shape buckets included.
    pub default_runs: u64,
    /// A small model's runs in bursts, on workers that keep spinning between calls.
    pub spinning_runs: u64,
    /// A small model's runs after a pause, on the calling thread alone.
    pub alone_runs: u64,
}

/// Runs served per shape bucket, for apps tuning their buckets to real traffic.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShapeBucketStats {
    /// Per bucket, in configuration order.
    pub bucket_runs: Vec<i64>,
    /// Runs whose shape matched no bucket.
    pub dynamic_runs: i64,
}
