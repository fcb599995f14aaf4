//! The model store past one download, against a loopback server serving real models: signed manifests, updates
//! while an engine runs on the old version, eviction under a budget, bundles that fetch only this device's variant,
//! encrypted models, and processes killed mid-download.
#![cfg(feature = "store-http")]

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::http::{Behaviour, Server, serve, sha256};
use ed25519_dalek::{Signer, SigningKey};
use openautoglm::store::{Manifest, ModelEntry, ModelStore, StoreConfig};
use openautoglm::{Engine, EngineConfig, Error, Tensor, TensorRef};

fn read(path: &Path) -> Arc<Vec<u8>> {
    Arc::new(std::fs::read(path).unwrap_or_else(|e| panic!("{} (cargo xtask models fetch): {e}", path.display())))
}

fn entry(name: &str, version: &str, data: &[u8], url: String) -> ModelEntry {
    ModelEntry {
        name: name.into(),
        version: version.into(),
        urls: vec![url],
        size: data.len() as u64,
        sha256: sha256(data),
    }
}

fn store_at(dir: &Path, budget: Option<u64>) -> ModelStore {
    let config = StoreConfig { backoff: Duration::from_millis(10), budget_bytes: budget, ..StoreConfig::new(dir) };
    ModelStore::new(config).unwrap()
}

fn versions(dir: &Path, name: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir.join(name))
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Runs Silero VAD once on silence: the engine works.
fn runs(engine: &Engine) {
    let (audio, state, sr) = (vec![0f32; 512], vec![0f32; 256], 16000i64);
    let inputs = [
        ("input", TensorRef::new(&[1, 512], &audio)),
        ("state", TensorRef::new(&[2, 1, 128], &state)),
        ("sr", TensorRef::new(&[], std::slice::from_ref(&sr))),
    ];
    let outputs: Vec<Tensor> = engine.run(&inputs).expect("the engine runs");
    assert!(!outputs.is_empty());
}

const KEY_SEED: [u8; 32] = [7; 32];

fn signed(json: &str) -> (Vec<u8>, Vec<u8>) {
    let signature = SigningKey::from_bytes(&KEY_SEED).sign(json.as_bytes());
    (json.as_bytes().to_vec(), signature.to_bytes().to_vec())
}

#[test]
fn a_signed_manifest_is_trusted_and_a_tampered_one_is_not() {
    let data = read(&common::real_model("silero-vad"));
    let server = serve(
        HashMap::from([
            ("m.json".to_owned(), Arc::new(Vec::new())), // replaced below
            ("silero-vad.onnx".to_owned(), data.clone()),
        ]),
        Behaviour::default(),
    );
    let model = entry("silero-vad.onnx", "5", &data, server.url("silero-vad.onnx"));
    let json = serde_json::json!({"format": 1, "models": [{"name": model.name, "version": model.version,
        "urls": model.urls, "size": model.size, "sha256": model.sha256}]})
    .to_string();
    let (bytes, signature) = signed(&json);
    let public = SigningKey::from_bytes(&KEY_SEED).verifying_key().to_bytes();

    let manifest = Manifest::verified(&bytes, &signature, &public).unwrap();
    assert_eq!(manifest.model("silero-vad.onnx").unwrap(), &model);
    assert!(matches!(manifest.model("other.onnx"), Err(Error::InvalidConfig { .. })));

    // A server that swaps the model's hash (one character) is caught by the signature.
    let tampered = json.replacen(&model.sha256[..8], "00000000", 1);
    let result = Manifest::verified(tampered.as_bytes(), &signature, &public);
    assert!(matches!(result, Err(Error::IntegrityFailed { .. })), "{result:?}");
    // Another key's signature, a short signature, a key of the wrong length.
    let other = SigningKey::from_bytes(&[9; 32]).sign(json.as_bytes()).to_bytes();
    assert!(matches!(Manifest::verified(&bytes, &other, &public), Err(Error::IntegrityFailed { .. })));
    assert!(matches!(Manifest::verified(&bytes, &signature[..10], &public), Err(Error::IntegrityFailed { .. })));
    assert!(matches!(Manifest::verified(&bytes, &signature, &public[..31]), Err(Error::InvalidConfig { .. })));

    // Over HTTP: the manifest and its signature fetched, verified, then its model installed.
    let files = HashMap::from([
        ("m.json".to_owned(), Arc::new(bytes.clone())),
        ("m.json.sig".to_owned(), Arc::new(signature.clone())),
        ("bad.sig".to_owned(), Arc::new(other.to_vec())),
        ("silero-vad.onnx".to_owned(), data.clone()),
    ]);
    let server2 = serve(files, Behaviour::default());
    let dir = tempfile::tempdir().unwrap();
    let store = store_at(dir.path(), None);
    let fetched = store.fetch_manifest(&server2.url("m.json"), &server2.url("m.json.sig"), &public).unwrap();
    let bad = store.fetch_manifest(&server2.url("m.json"), &server2.url("bad.sig"), &public);
    assert!(matches!(bad, Err(Error::IntegrityFailed { .. })), "{bad:?}");
    let model =
        ModelEntry { urls: vec![server2.url("silero-vad.onnx")], ..fetched.model("silero-vad.onnx").unwrap().clone() };
    common::init();
    runs(&store.ensure(&model, &mut |_| {}, None).unwrap().load(EngineConfig::default()).unwrap());
    drop(server);
}

#[test]
fn an_update_installs_beside_the_old_version_which_goes_when_its_engine_closes() {
    let old = read(&common::real_model("silero-vad"));
    let new = read(&common::bundle("silero-vad").join("fp16.onnx"));
    let server =
        serve(HashMap::from([("v1".to_owned(), old.clone()), ("v2".to_owned(), new.clone())]), Behaviour::default());
    let dir = tempfile::tempdir().unwrap();
    let store = store_at(dir.path(), None);
    common::init();
    let v1 = entry("vad.onnx", "1", &old, server.url("v1"));
    let v2 = entry("vad.onnx", "2", &new, server.url("v2"));
    let engine = store.ensure(&v1, &mut |_| {}, None).unwrap().load(EngineConfig::default()).unwrap();

    let updated = store.ensure(&v2, &mut |_| {}, None).unwrap();
    assert_eq!(versions(dir.path(), "vad.onnx"), ["1", "2"], "the old version stays while its engine is open");
    runs(&engine);
    let engine2 = updated.load(EngineConfig::default()).unwrap();
    runs(&engine2);

    engine.close();
    assert_eq!(versions(dir.path(), "vad.onnx"), ["2"], "closed: the old version is removed");
    runs(&engine2);
    drop(engine2);
    assert_eq!(versions(dir.path(), "vad.onnx"), ["2"], "the current version stays when no one holds it");
    // Without an engine on it, an old version goes at once.
    let v3 = entry("vad.onnx", "3", &old, server.url("v1"));
    drop(store.ensure(&v3, &mut |_| {}, None).unwrap());
    assert_eq!(versions(dir.path(), "vad.onnx"), ["3"]);
}

#[test]
fn a_budget_evicts_the_least_recently_used_models_no_one_holds() {
    let models: Vec<(String, Arc<Vec<u8>>)> = ["silero-vad", "oww-hey-jarvis", "oww-melspectrogram", "pp-ocr-cls"]
        .iter()
        .map(|id| (format!("{id}.onnx"), read(&common::real_model(id))))
        .collect();
    let server = serve(models.iter().cloned().collect(), Behaviour::default());
    let dir = tempfile::tempdir().unwrap();
    let entries: Vec<ModelEntry> = models.iter().map(|(name, data)| entry(name, "1", data, server.url(name))).collect();
    // Room for the largest two of the four.
    let mut sizes: Vec<u64> = entries.iter().map(|e| e.size).collect();
    sizes.sort_unstable();
    let budget = sizes[2] + sizes[3] + 4096;
    let store = store_at(dir.path(), Some(budget));

    let held = store.ensure(&entries[0], &mut |_| {}, None).unwrap();
    for e in &entries[1..] {
        drop(store.ensure(e, &mut |_| {}, None).unwrap());
        std::thread::sleep(Duration::from_millis(20)); // distinct last-used times
    }
    let left: Vec<String> = store.stored().into_iter().map(|v| v.name).collect();
    assert!(left.contains(&entries[0].name), "held, so kept over budget: {left:?}");
    assert!(left.contains(&entries[3].name), "the last one installed stays: {left:?}");
    assert!(!left.contains(&entries[1].name), "the least recently used goes first: {left:?}");
    drop(held);
    let gone = store.evict(0);
    assert_eq!(gone.len(), left.len(), "nothing is held any more: {gone:?}");
    assert!(store.stored().is_empty());
}

#[test]
fn a_bundle_fetches_only_the_variant_this_device_runs() {
    let bundle_dir = common::bundle("silero-vad");
    let manifest = read(&bundle_dir.join("bundle.json"));
    let listed: openautoglm::bundle::BundleManifest = serde_json::from_slice(&manifest).unwrap();
    let mut files: HashMap<String, Arc<Vec<u8>>> = HashMap::from([("b/1/bundle.json".to_owned(), manifest.clone())]);
    let mut whole = manifest.len() as u64;
    for v in &listed.variants {
        let data = read(&bundle_dir.join(&v.file));
        whole += data.len() as u64;
        files.insert(format!("b/1/{}", v.file), data);
    }
    let server: Server = serve(files, Behaviour::default());
    let dir = tempfile::tempdir().unwrap();
    let store = store_at(dir.path(), None);
    let e = entry("silero-vad", "1", &manifest, server.url("b/1/bundle.json"));
    common::init();
    let installed = store.ensure_bundle(&e, &EngineConfig::default(), &mut |_| {}, None).unwrap();
    let engine = installed.load(EngineConfig::default()).unwrap();
    runs(&engine);
    let chosen = engine.precision().expect("a bundle's choice").file.clone();
    let fetched = server.served.load(Ordering::SeqCst);
    let chosen_size = std::fs::metadata(bundle_dir.join(&chosen)).unwrap().len();
    assert_eq!(fetched, manifest.len() as u64 + chosen_size, "bundle.json and {chosen} only");
    assert!(fetched < whole / 2, "{fetched} of {whole} bytes");
    let on_disk: Vec<String> = std::fs::read_dir(dir.path().join("silero-vad/1"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert_eq!(on_disk.len(), 2, "{on_disk:?}");
}

/// The test's stand-in for an app's cipher (the key and the cipher are the app's business): XOR with a keystream,
/// and a tag the hook checks so a wrong key is refused rather than decrypted to garbage.
fn seal(plain: &[u8], key: u8) -> Vec<u8> {
    let mut out = b"SEALED".to_vec();
    out.push(key);
    out.extend(plain.iter().enumerate().map(|(i, b)| b ^ key.wrapping_add(i as u8)));
    out
}

fn open(sealed: &[u8], key: u8) -> Result<Vec<u8>, String> {
    if sealed.len() < 7 || &sealed[..6] != b"SEALED" || sealed[6] != key {
        return Err("wrong key".into());
    }
    Ok(sealed[7..].iter().enumerate().map(|(i, b)| b ^ key.wrapping_add(i as u8)).collect())
}

#[test]
fn an_encrypted_model_is_decrypted_in_memory_and_never_stored_in_clear() {
    let plain = read(&common::real_model("silero-vad"));
    let sealed = Arc::new(seal(&plain, 42));
    let server = serve(HashMap::from([("sealed".to_owned(), sealed.clone())]), Behaviour::default());
    let dir = tempfile::tempdir().unwrap();
    let store = store_at(dir.path(), None);
    let e = entry("vad.sealed", "1", &sealed, server.url("sealed"));
    common::init();
    let engine = store.open_encrypted(&e, &|s: &[u8]| open(s, 42), EngineConfig::default(), &mut |_| {}, None).unwrap();
    runs(&engine);
    for file in walk(dir.path()) {
        assert_ne!(std::fs::read(&file).unwrap(), *plain, "{} holds the model in clear", file.display());
    }
    let wrong = store.open_encrypted(&e, &|s: &[u8]| open(s, 1), EngineConfig::default(), &mut |_| {}, None);
    let Err(Error::IntegrityFailed { reason, .. }) = wrong else { panic!("{wrong:?}") };
    assert!(reason.contains("decryption failed"), "{reason}");
    let cached = EngineConfig { cache_dir: Some(dir.path().display().to_string()), ..EngineConfig::default() };
    let refused = store.open_encrypted(&e, &|s: &[u8]| open(s, 42), cached, &mut |_| {}, None);
    assert!(matches!(refused, Err(Error::InvalidConfig { .. })), "{refused:?}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
}

const CHILD_ENV: &str = "OPENAUTOGLM_STORE_CHILD";

/// Downloads the entry given in the environment (`ROOT|URL|SIZE|SHA256`): what the killed children of
/// `processes_killed_mid_download_never_leave_a_partial_model` run, in a copy of this test binary.
fn download_as_child(spec: &str) {
    let parts: Vec<&str> = spec.split('|').collect();
    let e = ModelEntry {
        name: "vad.onnx".into(),
        version: "1".into(),
        urls: vec![parts[1].into()],
        size: parts[2].parse().unwrap(),
        sha256: parts[3].into(),
    };
    store_at(Path::new(parts[0]), None).ensure(&e, &mut |_| {}, None).unwrap();
}

#[test]
fn processes_killed_mid_download_never_leave_a_partial_model() {
    // In a child started below, this test only downloads (and is killed doing it).
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        return download_as_child(&spec);
    }
    let data = read(&common::real_model("silero-vad"));
    // About 40 pieces of 64 KB at 2 ms each: a download takes ~80 ms, so the kills land all along it.
    let server = serve(
        HashMap::from([("vad".to_owned(), data.clone())]),
        Behaviour { delay: Some(Duration::from_millis(2)), ..Behaviour::default() },
    );
    let dir = tempfile::tempdir().unwrap();
    let e = entry("vad.onnx", "1", &data, server.url("vad"));
    let spec = format!("{}|{}|{}|{}", dir.path().display(), e.urls[0], e.size, e.sha256);
    let model = dir.path().join("vad.onnx/1/vad.onnx");
    let seeds = std::collections::hash_map::RandomState::new();
    let trials = 20;
    let mut interrupted = 0;
    for trial in 0..trials {
        use std::hash::BuildHasher;
        let wait = Duration::from_millis(seeds.hash_one(trial) % 120);
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "processes_killed_mid_download_never_leave_a_partial_model",
                "--test-threads",
                "1",
                "--quiet",
            ])
            .env(CHILD_ENV, &spec)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(wait);
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        if model.exists() {
            assert_eq!(sha256(&std::fs::read(&model).unwrap()), e.sha256, "trial {trial}: a wrong file under its name");
            std::fs::remove_dir_all(dir.path().join("vad.onnx")).unwrap(); // start the next trial from nothing
            continue;
        }
        let partials = std::fs::read_dir(dir.path().join("vad.onnx/1"))
            .map(|d| d.flatten().filter(|f| f.file_name().to_string_lossy().starts_with(".partial-")).count())
            .unwrap_or(0);
        assert!(partials <= 1, "trial {trial}: {partials} temporary files");
        interrupted += partials;
    }
    assert!(interrupted >= trials / 4, "only {interrupted} of {trials} kills landed mid-download");
    // What the kills left resumes into the right model.
    let installed = store_at(dir.path(), None).ensure(&e, &mut |_| {}, None).unwrap();
    assert_eq!(sha256(&std::fs::read(installed.path()).unwrap()), e.sha256);
}
