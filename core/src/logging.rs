//! Diagnostics go through `log`; this picks the platform's sink once: logcat on Android, os_log on Apple
//! (only with the `apple-log` feature, whose build needs Xcode), stderr (filtered by `RUST_LOG`) elsewhere.

use std::sync::Once;

#[cfg(target_os = "android")]
const TAG: &str = "OpenAutoGLM";

/// Installs the platform logger if the app has not installed one. Safe to call many times.
pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(install);
}

#[cfg(target_os = "android")]
fn install() {
    android_logger::init_once(android_logger::Config::default().with_tag(TAG).with_max_level(log::LevelFilter::Info));
}

#[cfg(all(target_vendor = "apple", feature = "apple-log"))]
fn install() {
    let _ = oslog::OsLogger::new("ai.openautoglm").level_filter(log::LevelFilter::Info).init();
}

#[cfg(all(target_vendor = "apple", not(feature = "apple-log")))]
fn install() {}

#[cfg(not(any(target_os = "android", target_vendor = "apple")))]
fn install() {
    // An app or test that installed its own logger keeps it.
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).try_init();
}
