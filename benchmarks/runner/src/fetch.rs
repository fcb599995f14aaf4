//! `--fetch`: the model store downloading entries, as an app would (`cargo xtask bench --suite delivery` times it
//! against curl and kills it at random points).
//!
//! openautoglm-bench --fetch --root DIR --entries ENTRIES.json [--bundle] [--ort LIB]
//!
//! ENTRIES.json is a list of manifest entries (`name`, `version`, `urls`, `size`, `sha256`); with `--bundle` each is
//! a bundle's `bundle.json`, fetched with the one variant this machine's engine would run.

use std::path::PathBuf;
use std::time::Duration;

use openautoglm::store::{ModelEntry, ModelStore, StoreConfig};
use openautoglm::{EngineConfig, Runtime};

pub fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let (mut root, mut entries, mut ort, mut bundle) = (None, None, None, false);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--fetch" => {}
            "--root" => root = Some(PathBuf::from(value()?)),
            "--entries" => entries = Some(PathBuf::from(value()?)),
            "--ort" => ort = Some(PathBuf::from(value()?)),
            "--bundle" => bundle = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let (root, entries) = (root.ok_or("--root is required")?, entries.ok_or("--entries is required")?);
    let text = std::fs::read(&entries).map_err(|e| format!("{}: {e}", entries.display()))?;
    let entries: Vec<ModelEntry> = serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", entries.display()))?;
    let config = StoreConfig { backoff: Duration::from_millis(20), ..StoreConfig::new(root) };
    let store = ModelStore::new(config).map_err(|e| e.to_string())?;
    if bundle {
        Runtime::init(ort.as_deref()).map_err(|e| e.to_string())?; // the variant this machine's engine would run
    }
    for entry in &entries {
        let fetched = if bundle {
            store.ensure_bundle(entry, &EngineConfig::default(), &mut |_| {}, None)
        } else {
            store.ensure(entry, &mut |_| {}, None)
        };
        fetched.map_err(|e| e.to_string())?;
    }
    Ok(())
}
