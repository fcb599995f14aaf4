//! `bench --suite delivery`: the model store's download figures, under `"delivery"`.

use serde::{Deserialize, Serialize};

use super::DeviceInfo;

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
#[serde(default)]
pub struct DeliveryFile {
    pub schema: u32,
    pub device: DeviceInfo,
    pub git_commit: Option<String>,
    pub delivery: Delivery,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct Delivery {
    /// The standard models, each round fetched into an empty folder by ours and by curl.
    pub files: usize,
    pub bytes_per_round: u64,
    pub rounds: usize,
    /// Median over the rounds, process start to exit.
    pub ours_mb_s: f64,
    pub curl_mb_s: f64,
    pub throughput_ratio_vs_curl: f64,
    /// The same with each response paced to `link_mb_s`, as a fast phone link delivers it.
    pub link_mb_s: f64,
    pub ours_at_link_mb_s: f64,
    pub curl_at_link_mb_s: f64,
    pub throughput_ratio_vs_curl_at_link: f64,
    /// Processes killed with SIGKILL at random points of a slow download of `kill_model`.
    pub kill_model: String,
    pub kill_trials: usize,
    /// Trials after which a partial or unverified file was under the model's name, or more than one temporary file
    /// was left: must be 0.
    pub kill_trials_corrupt: usize,
    /// Trials stopped with a temporary file in place, and trials whose download had finished before the kill.
    pub kill_trials_mid_download: usize,
    pub kill_trials_completed: usize,
    /// A download stopped once past half the file (where, as a share of it), then resumed: the share not fetched
    /// again.
    pub resume_interrupted_at: f64,
    pub resume_saved_fraction: f64,
    /// A precision bundle fetched for this device class: the variant chosen, and bytes fetched over the whole
    /// bundle's (`bundle.json` and every variant it lists).
    pub bundle_model: String,
    pub bundle_variant: String,
    pub bundle_bytes_fetched: u64,
    pub bundle_bytes_whole: u64,
    pub bytes_fetched_for_bundle_ratio: f64,
}
