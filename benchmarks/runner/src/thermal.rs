//! The device's heat as Linux and Android expose it in sysfs: thermal zones (`/sys/class/thermal/thermal_zone*/temp`,
//! millidegrees Celsius, named by `type`) and each CPU's current frequency
//! (`/sys/devices/system/cpu/cpu*/cpufreq/scaling_cur_freq`, kHz). On an adb device the runner reads them there itself.
//! Read from a root folder so tests can use recorded trees.

use std::fs;
use std::path::{Path, PathBuf};

use bench_schema::sustained::Thermal;

/// Reads thermal state under `root` (`/` on a device).
pub struct ThermalReader {
    zones: Vec<(String, PathBuf)>,
    cpus: Vec<PathBuf>,
}

impl ThermalReader {
    pub fn new(root: &Path) -> ThermalReader {
        let mut zones = Vec::new();
        for dir in sorted_entries(&root.join("sys/class/thermal"), "thermal_zone") {
            let name = fs::read_to_string(dir.join("type")).map_or_else(|_| file_name(&dir), |t| t.trim().to_owned());
            if read_number(&dir.join("temp")).is_some() {
                zones.push((name, dir.join("temp")));
            }
        }
        let cpus = sorted_entries(&root.join("sys/devices/system/cpu"), "cpu")
            .into_iter()
            .map(|dir| dir.join("cpufreq/scaling_cur_freq"))
            .filter(|path| read_number(path).is_some())
            .collect();
        ThermalReader { zones, cpus }
    }

    /// Whether anything is readable.
    pub fn readable(&self) -> bool {
        !self.zones.is_empty() || !self.cpus.is_empty()
    }

    /// What is read, or why nothing is, in words.
    pub fn source(&self) -> String {
        if !self.readable() {
            return "no thermal zone (/sys/class/thermal) or CPU frequency (cpufreq) is readable here".into();
        }
        format!("{} thermal zones, {} CPU frequencies (sysfs)", self.zones.len(), self.cpus.len())
    }

    pub fn read(&self) -> Thermal {
        let temps: Vec<(&str, f64)> =
            self.zones.iter().filter_map(|(name, path)| Some((name.as_str(), read_number(path)? / 1000.0))).collect();
        let hottest = temps.iter().copied().max_by(|a, b| a.1.total_cmp(&b.1));
        let mhz: Vec<f64> = self.cpus.iter().filter_map(|p| read_number(p)).map(|khz| khz / 1000.0).collect();
        Thermal {
            max_temp_c: hottest.map(|h| h.1),
            hottest_zone: hottest.map(|h| h.0.to_owned()),
            cpu_mhz_mean: (!mhz.is_empty()).then(|| mhz.iter().sum::<f64>() / mhz.len() as f64),
            cpu_mhz_max: mhz.iter().copied().reduce(f64::max),
        }
    }
}

/// The integer in a sysfs file, as f64.
pub fn read_number(path: &Path) -> Option<f64> {
    fs::read_to_string(path).ok()?.trim().parse::<i64>().ok().map(|n| n as f64)
}

/// `dir/<prefix><n>` folders in numeric order.
pub fn sorted_entries(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
    let mut found: Vec<(u64, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n = name.strip_prefix(prefix)?.parse::<u64>().ok()?;
            Some((n, e.path()))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, p)| p).collect()
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata").join(name)
    }

    #[test]
    fn a_phone_s_zones_and_frequencies_are_read() {
        let reader = ThermalReader::new(&recorded("pixel"));
        assert!(reader.readable());
        let t = reader.read();
        assert_eq!(t.max_temp_c, Some(47.2));
        assert_eq!(t.hottest_zone.as_deref(), Some("BIG"));
        assert_eq!(t.cpu_mhz_max, Some(2850.0));
        assert_eq!(t.cpu_mhz_mean, Some((1803.0 + 2850.0) / 2.0));
    }

    #[test]
    fn a_machine_without_sysfs_thermal_reads_nothing_and_says_so() {
        let reader = ThermalReader::new(&recorded("no-counters"));
        assert!(!reader.readable());
        assert_eq!(reader.read(), Thermal::default());
        assert!(reader.source().contains("no thermal zone"));
    }
}
