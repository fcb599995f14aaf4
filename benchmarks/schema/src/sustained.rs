//! What the runner's `--sustained` reports, and `bench --sustained MINUTES` writes under `"sustained"`.

use serde::{Deserialize, Serialize};

/// A model run continuously for some minutes: latency, rate, heat and energy per minute.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct Sustained {
    pub minutes: u32,
    pub per_minute: Vec<Minute>,
    /// The last minute's p50 over the first's: above 1 the device slowed down (throttling).
    pub slowdown_last_vs_first: f64,
    /// Whether any thermal zone or CPU frequency could be read.
    pub thermal_readable: bool,
    /// What was read for it (the sysfs folders), or why nothing was.
    pub thermal_source: String,
    /// Joules per inference above idle: (energy over the run − idle power × its length) / inferences; null where no
    /// counter is readable.
    pub energy_j_per_inference: Option<f64>,
    /// The counter energy came from, or the reason it is null.
    pub energy_source: String,
    /// The idle window measured before the run (same counter), and the power it gave.
    pub idle_seconds: f64,
    pub idle_power_w: Option<f64>,
    /// Temperature and CPU frequency before the first run.
    pub start: Thermal,
    /// (seconds since the start, latency ms) for the plot, at most a few thousand points spread over the run.
    pub latency_over_time: Vec<[f64; 2]>,
}

/// One minute of the run.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct Minute {
    pub minute: u32,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub inferences_per_s: f64,
    pub inferences: u64,
    /// At the minute's end.
    pub thermal: Thermal,
    /// Energy over the minute from the counter, where one is readable.
    pub energy_j: Option<f64>,
}

/// The hottest thermal zone and the mean current CPU frequency, where readable.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct Thermal {
    pub max_temp_c: Option<f64>,
    pub hottest_zone: Option<String>,
    pub cpu_mhz_mean: Option<f64>,
    pub cpu_mhz_max: Option<f64>,
}

/// The runner's whole output: the figures, and what ran.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct SustainedOutput {
    pub ort_version: String,
    pub threads: i32,
    pub sustained: Sustained,
}
