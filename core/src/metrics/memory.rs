//! Resident memory of this process, as the kernel accounts it (Linux and Android: /proc/self/status).

/// Resident set size now and at its peak, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    pub rss: u64,
    pub peak_rss: u64,
}

/// `None` where the platform does not expose it this way (iOS and macOS report it through task_info).
pub fn memory() -> Option<Memory> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kb: u64 = line[name.len()..].trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kb * 1024)
    };
    Some(Memory { rss: field("VmRSS:")?, peak_rss: field("VmHWM:")? })
}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    #[test]
    fn reads_this_process() {
        let m = super::memory().expect("/proc/self/status");
        assert!(m.rss > 0 && m.peak_rss >= m.rss);
    }
}
