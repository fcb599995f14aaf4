//! Energy as the device's own counters report it, read where the runner runs (on an adb device too, through the
//! same sysfs files `adb shell` shows), first readable wins:
//! 1. Android power rails (ODPM, Pixel 6 and later): `/sys/bus/iio/devices/iio:device*/energy_value`, lines
//!    `CH<n>(T=<ms>)[<RAIL>], <energy µWs>`, summed over every rail;
//! 2. RAPL (Linux, Intel and AMD): `/sys/class/powercap/intel-rapl:<n>/energy_uj` for each package domain, with
//!    its `max_energy_range_uj` wrap;
//! 3. the battery (`/sys/class/power_supply/*` of type Battery): `current_now` (µA) × `voltage_now` (µV) sampled
//!    every 100 ms. On USB power the charger supplies part of it, so this reads low unless the phone is unplugged
//!    (adb over Wi-Fi).
//!
//! Where none is readable, [`Meter::detect`] says why; nothing is estimated.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::thermal::{read_number, sorted_entries};

/// A cumulative energy reading in joules since the meter was made.
pub enum Meter {
    Counters { source: String, counters: Vec<Counter>, joules: f64 },
    Battery { source: String, sampler: Sampler },
}

impl Meter {
    /// The first readable counter under `root` (`/` on a device), or why there is none.
    pub fn detect(root: &Path) -> Result<Meter, String> {
        let rails = odpm_files(root);
        if !rails.is_empty() {
            let counters: Vec<Counter> = rails.into_iter().map(|path| Counter::new(path, None, read_odpm_uj)).collect();
            if counters.iter().all(|c| c.last.is_some()) {
                let source = format!("Android power rails (ODPM, {} iio devices, energy_value)", counters.len());
                return Ok(Meter::Counters { source, counters, joules: 0.0 });
            }
        }
        let packages = rapl_packages(root);
        if !packages.is_empty() {
            let counters: Vec<Counter> = packages
                .iter()
                .map(|dir| {
                    Counter::new(dir.join("energy_uj"), read_number(&dir.join("max_energy_range_uj")), read_number)
                })
                .collect();
            if counters.iter().any(|c| c.last.is_none()) {
                return Err(format!(
                    "RAPL is present ({} package domains) but energy_uj is not readable (root only since Linux 5.10)",
                    packages.len()
                ));
            }
            let source = format!("RAPL (powercap, {} package domains, energy_uj)", counters.len());
            return Ok(Meter::Counters { source, counters, joules: 0.0 });
        }
        if let Some(battery) = battery(root)
            && battery_power_w(&battery).is_some()
        {
            let source = format!(
                "battery {}: current_now x voltage_now every 100 ms (on USB power the charger supplies part)",
                battery.display()
            );
            return Ok(Meter::Battery { source, sampler: Sampler::start(battery) });
        }
        Err("no energy counter is readable here: no Android power rails (ODPM), no RAPL domain \
             (/sys/class/powercap), no battery with current_now and voltage_now"
            .into())
    }

    pub fn source(&self) -> &str {
        match self {
            Meter::Counters { source, .. } | Meter::Battery { source, .. } => source,
        }
    }

    /// Joules since the meter was made.
    pub fn joules(&mut self) -> f64 {
        match self {
            Meter::Counters { counters, joules, .. } => {
                *joules += counters.iter_mut().map(Counter::advance_uj).sum::<f64>() / 1e6;
                *joules
            }
            Meter::Battery { sampler, .. } => sampler.uj.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

/// One cumulative counter in µJ, read again on each advance; a counter that wrapped at `range` is carried over.
pub struct Counter {
    path: PathBuf,
    range: Option<f64>,
    read: fn(&Path) -> Option<f64>,
    last: Option<f64>,
}

impl Counter {
    fn new(path: PathBuf, range: Option<f64>, read: fn(&Path) -> Option<f64>) -> Counter {
        let last = read(&path);
        Counter { path, range, read, last }
    }

    /// µJ since the last reading (0 when unreadable now).
    fn advance_uj(&mut self) -> f64 {
        let (Some(now), Some(last)) = ((self.read)(&self.path), self.last) else { return 0.0 };
        self.last = Some(now);
        if now >= last { now - last } else { self.range.map_or(0.0, |range| range - last + now) }
    }
}

/// The sum over an ODPM `energy_value` file's rails, in µJ (µWs).
pub fn read_odpm_uj(path: &Path) -> Option<f64> {
    let text = fs::read_to_string(path).ok()?;
    let values: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with("CH"))
        .filter_map(|l| l.rsplit(',').next()?.trim().parse::<f64>().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

fn odpm_files(root: &Path) -> Vec<PathBuf> {
    sorted_entries(&root.join("sys/bus/iio/devices"), "iio:device")
        .into_iter()
        .map(|dir| dir.join("energy_value"))
        .filter(|p| p.is_file())
        .collect()
}

/// The top-level RAPL domains (`intel-rapl:0`, not the sub-domains `intel-rapl:0:0` inside them).
fn rapl_packages(root: &Path) -> Vec<PathBuf> {
    sorted_entries(&root.join("sys/class/powercap"), "intel-rapl:")
}

fn battery(root: &Path) -> Option<PathBuf> {
    let dir = root.join("sys/class/power_supply");
    let mut supplies: Vec<PathBuf> = fs::read_dir(&dir).ok()?.flatten().map(|e| e.path()).collect();
    supplies.sort();
    supplies.into_iter().find(|s| fs::read_to_string(s.join("type")).is_ok_and(|t| t.trim() == "Battery"))
}

/// The battery's power now in watts: |current_now| (µA) × voltage_now (µV).
pub fn battery_power_w(battery: &Path) -> Option<f64> {
    let current = read_number(&battery.join("current_now"))?;
    let voltage = read_number(&battery.join("voltage_now"))?;
    Some(current.abs() * 1e-6 * voltage * 1e-6)
}

/// Integrates the battery's power on a thread of its own until dropped.
pub struct Sampler {
    uj: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    fn start(battery: PathBuf) -> Sampler {
        let uj = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (total, stopped) = (uj.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut last = Instant::now();
            while !stopped.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                let now = Instant::now();
                if let Some(watts) = battery_power_w(&battery) {
                    total.fetch_add((watts * (now - last).as_secs_f64() * 1e6) as u64, Ordering::Relaxed);
                }
                last = now;
            }
        });
        Sampler { uj, stop, thread: Some(thread) }
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata").join(name)
    }

    /// A writable copy of nothing but the files a test writes.
    fn scratch(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("openautoglm-energy-{test}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn power_rails_are_summed_and_preferred() {
        let rails = fixture("pixel/sys/bus/iio/devices/iio:device0/energy_value");
        assert_eq!(read_odpm_uj(&rails), Some(2_127_830.0 + 98_311.0 + 5_631_112.0));
        let meter = Meter::detect(&fixture("pixel")).unwrap();
        assert!(meter.source().contains("ODPM"), "{}", meter.source());
    }

    #[test]
    fn rapl_deltas_carry_over_a_wrap() {
        let root = scratch("rapl");
        let package = root.join("sys/class/powercap/intel-rapl:0");
        fs::create_dir_all(package.join("intel-rapl:0:0")).unwrap();
        fs::write(package.join("name"), "package-0\n").unwrap();
        fs::write(package.join("max_energy_range_uj"), "262143328850\n").unwrap();
        fs::write(package.join("energy_uj"), "262143000000\n").unwrap();
        let mut meter = Meter::detect(&root).unwrap();
        assert!(meter.source().starts_with("RAPL"), "{}", meter.source());
        fs::write(package.join("energy_uj"), "262143328000\n").unwrap();
        assert!((meter.joules() - 0.328).abs() < 1e-9);
        // Wrapped: 850 µJ to the top of the range, then 1,150 more.
        fs::write(package.join("energy_uj"), "1150\n").unwrap();
        assert!((meter.joules() - 0.330).abs() < 1e-9);
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn the_battery_gives_current_times_voltage() {
        let battery = fixture("pixel/sys/class/power_supply/battery");
        // -420,000 µA discharging at 3.85 V.
        assert!((battery_power_w(&battery).unwrap() - 0.42 * 3.85).abs() < 1e-9);
    }

    #[test]
    fn without_counters_the_reason_is_given() {
        let Err(reason) = Meter::detect(&fixture("no-counters")) else { panic!("no counter should be found") };
        assert!(reason.contains("no energy counter"), "{reason}");
    }
}
