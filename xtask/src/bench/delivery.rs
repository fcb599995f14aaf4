//! `cargo xtask bench --suite delivery`: the model store against `curl`, killed at random points, resumed and
//! fetching one bundle, all from a loopback server (crate::loopback) on this machine. Each download runs in a child
//! process (the release runner's `--fetch`: the store with its built-in HTTP client) so it can be killed with SIGKILL
//! as a phone kills an app, and so ours and curl's each pay for a process. Writes a top-level `"delivery"` object.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use openautoglm::store::ModelEntry;
use rand::{Rng, SeedableRng};

use super::{Args, Device, device_info, git_commit, result_path};
use crate::loopback::{Content, Loopback};
use crate::results::{self, Delivery, DeliveryFile, SCHEMA_VERSION};
use crate::{cache, cmd, models, runner};

/// Timed rounds of the whole set, ours and curl's interleaved.
const ROUNDS: usize = 5;
/// Processes killed at random points.
const KILL_TRIALS: usize = 100;
/// The model the kills, the resume and the bundle use: a camera model of 12 MB.
const MODEL: &str = "yolov8n-320";
/// The pause per 64 KB piece on the slow route: a 12 MB download takes about 0.6 s there.
const SLOW_PIECE: Duration = Duration::from_millis(3);
/// A fast phone link (Wi-Fi 6 or 5G at their best deliver about this): the rate of each response on the link route.
const LINK_RATE: u64 = 100_000_000;

pub(super) fn run(args: &Args) -> Result<()> {
    if args.device != Device::Host {
        bail!("--suite delivery runs on this machine (its loopback server and processes); --device is not used");
    }
    cmd::ensure_debian_packages(&["curl"], &["curl"])?;
    let work = std::env::temp_dir().join(format!("openautoglm-delivery-{}", std::process::id()));
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(work.join("served"))?;
    let result = measure(args, &work);
    let _ = fs::remove_dir_all(&work);
    result
}

fn measure(args: &Args, work: &Path) -> Result<()> {
    // The standard models, served as `models/<id>.onnx`.
    let mut files = Vec::new();
    for entry in models::manifest()?.models.into_iter().filter(|m| m.package.is_some()) {
        let path = models::fetch(&entry.id)?;
        let link = work.join("served").join(format!("{}.onnx", entry.id));
        std::os::unix::fs::symlink(&path, &link)?;
        files.push((entry.id, path));
    }
    models::prepared_variants(MODEL)?;
    let bundle = models::variants_dir(MODEL);
    let server = Loopback::start(Content {
        folders: vec![("models".into(), work.join("served")), ("variants".into(), models::bundles_dir())],
        slow_piece: SLOW_PIECE,
        link_rate: LINK_RATE,
    })?;
    let entries: Vec<ModelEntry> = files
        .iter()
        .map(|(id, path)| entry(&format!("{id}.onnx"), path, server.url(&format!("models/{id}.onnx"))))
        .collect::<Result<_>>()?;
    let fetcher = Fetcher { work: work.to_owned(), exe: runner::build(None, &[])?, ort: cache::host_onnxruntime()? };

    let unpaced = throughput(&fetcher, &entries, work, "loopback, unpaced")?;
    let on_link: Vec<ModelEntry> = entries
        .iter()
        .map(|e| ModelEntry { urls: vec![server.url(&format!("link/models/{}", e.name))], ..e.clone() })
        .collect();
    let at_link = throughput(&fetcher, &on_link, work, "at 100 MB/s")?;
    let model = entries.iter().find(|e| e.name == format!("{MODEL}.onnx")).context("the kill model")?.clone();
    let slow = ModelEntry { urls: vec![server.url(&format!("slow/models/{MODEL}.onnx"))], ..model.clone() };
    let kills = kill_trials(&fetcher, &slow, &model)?;
    let resume = resume(&fetcher, &server, &slow, &model)?;
    let bundle = bundle_fetch(&fetcher, &server, &bundle)?;

    let delivery = Delivery {
        files: entries.len(),
        bytes_per_round: entries.iter().map(|e| e.size).sum(),
        rounds: ROUNDS,
        ours_mb_s: unpaced.0,
        curl_mb_s: unpaced.1,
        throughput_ratio_vs_curl: unpaced.0 / unpaced.1,
        link_mb_s: LINK_RATE as f64 / 1e6,
        ours_at_link_mb_s: at_link.0,
        curl_at_link_mb_s: at_link.1,
        throughput_ratio_vs_curl_at_link: at_link.0 / at_link.1,
        kill_model: format!("{MODEL}.onnx"),
        kill_trials: KILL_TRIALS,
        kill_trials_corrupt: kills.corrupt,
        kill_trials_mid_download: kills.mid_download,
        kill_trials_completed: kills.completed,
        resume_interrupted_at: resume.0,
        resume_saved_fraction: resume.1,
        bundle_model: MODEL.into(),
        bundle_variant: bundle.variant,
        bundle_bytes_fetched: bundle.fetched,
        bundle_bytes_whole: bundle.whole,
        bytes_fetched_for_bundle_ratio: bundle.fetched as f64 / bundle.whole as f64,
    };
    print_table(&delivery);
    let file =
        DeliveryFile { schema: SCHEMA_VERSION, device: device_info(&Device::Host), git_commit: git_commit(), delivery };
    let path = args.json.clone().unwrap_or_else(|| result_path("delivery-host"));
    results::write(&path, &file)?;
    println!("wrote {}", path.display());
    Ok(())
}

fn entry(name: &str, path: &Path, url: String) -> Result<ModelEntry> {
    Ok(ModelEntry {
        name: name.to_owned(),
        version: "1".into(),
        urls: vec![url],
        size: fs::metadata(path)?.len(),
        sha256: cache::sha256_file(path)?,
    })
}

/// Starts `openautoglm-bench --fetch` children.
struct Fetcher {
    work: PathBuf,
    exe: PathBuf,
    ort: PathBuf,
}

impl Fetcher {
    fn spawn(&self, root: &Path, entries: &[ModelEntry], bundle: bool) -> Result<std::process::Child> {
        let list = self.work.join("entries.json");
        fs::write(&list, serde_json::to_vec(&entries.iter().map(entry_json).collect::<Vec<_>>())?)?;
        let mut command = Command::new(&self.exe);
        command.arg("--fetch").arg("--root").arg(root).arg("--entries").arg(&list).arg("--ort").arg(&self.ort);
        if bundle {
            command.arg("--bundle");
        }
        Ok(command.stdout(Stdio::null()).stderr(Stdio::piped()).spawn()?)
    }

    fn run(&self, root: &Path, entries: &[ModelEntry], bundle: bool) -> Result<()> {
        let out = self.spawn(root, entries, bundle)?.wait_with_output()?;
        if !out.status.success() {
            bail!("the runner's --fetch failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }
}

fn entry_json(e: &ModelEntry) -> serde_json::Value {
    serde_json::json!({"name": e.name, "version": e.version, "urls": e.urls, "size": e.size, "sha256": e.sha256})
}

/// MB/s of ours and of curl over the same files, each the median of [`ROUNDS`] interleaved rounds into empty folders.
fn throughput(fetcher: &Fetcher, entries: &[ModelEntry], work: &Path, how: &str) -> Result<(f64, f64)> {
    let bytes: u64 = entries.iter().map(|e| e.size).sum();
    let spinner = cache::spinner(format!(
        "throughput ({how}): {} files, {:.0} MB, ours and curl, {ROUNDS} rounds",
        entries.len(),
        bytes as f64 / 1e6
    ));
    let (mut ours, mut curl) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let root = work.join(format!("ours-{round}"));
        let start = Instant::now();
        fetcher.run(&root, entries, false)?;
        ours.push(start.elapsed().as_secs_f64());
        let _ = fs::remove_dir_all(&root);

        let dir = work.join(format!("curl-{round}"));
        fs::create_dir_all(&dir)?;
        let mut command = Command::new("curl");
        command.args(["--silent", "--show-error", "--fail"]);
        for e in entries {
            command.arg("-o").arg(dir.join(&e.name)).arg(&e.urls[0]);
        }
        let start = Instant::now();
        let status = command.status()?;
        curl.push(start.elapsed().as_secs_f64());
        if !status.success()
            || entries.iter().any(|e| fs::metadata(dir.join(&e.name)).map(|m| m.len()).ok() != Some(e.size))
        {
            bail!("curl did not fetch every file");
        }
        let _ = fs::remove_dir_all(&dir);
    }
    spinner.finish_and_clear();
    let mb = bytes as f64 / 1e6;
    Ok((mb / median(&mut ours), mb / median(&mut curl)))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

struct Kills {
    corrupt: usize,
    mid_download: usize,
    completed: usize,
}

/// [`KILL_TRIALS`] children killed with SIGKILL at a random point of a slow download, each continuing what the last
/// left; after each, the model's name must hold nothing or the verified model, with at most one temporary file.
fn kill_trials(fetcher: &Fetcher, slow: &ModelEntry, model: &ModelEntry) -> Result<Kills> {
    let root = fetcher.work.join("kills");
    let version_dir = root.join(&model.name).join(&model.version);
    let installed = version_dir.join(&model.name);
    let mut rng = rand::rngs::SmallRng::seed_from_u64(std::process::id().into());
    let bar = indicatif::ProgressBar::new(KILL_TRIALS as u64).with_message("kill trials (SIGKILL mid-download)");
    bar.set_style(indicatif::ProgressStyle::with_template("{msg} {bar:30} {pos}/{len}").expect("a valid template"));
    let mut kills = Kills { corrupt: 0, mid_download: 0, completed: 0 };
    for _ in 0..KILL_TRIALS {
        let mut child = fetcher.spawn(&root, std::slice::from_ref(slow), false)?;
        std::thread::sleep(Duration::from_millis(rng.random_range(0..600)));
        let _ = child.kill();
        let _ = child.wait();
        let partials = fs::read_dir(&version_dir)
            .map(|d| d.flatten().filter(|f| f.file_name().to_string_lossy().starts_with(".partial-")).count())
            .unwrap_or(0);
        let corrupt = installed.exists() && cache::sha256_file(&installed)? != model.sha256;
        if corrupt || partials > 1 {
            kills.corrupt += 1;
        }
        if installed.exists() {
            kills.completed += 1;
            fs::remove_dir_all(root.join(&model.name))?; // the next trial starts from nothing
        } else if partials == 1 {
            kills.mid_download += 1;
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    // What the last kill left completes into the right model.
    fetcher.run(&root, std::slice::from_ref(model), false)?;
    if cache::sha256_file(&installed)? != model.sha256 {
        kills.corrupt += 1;
    }
    let _ = fs::remove_dir_all(&root);
    Ok(kills)
}

/// A download killed once it passed half the file, then resumed: (where it was stopped, as a share of the file; the
/// share of the file not fetched again).
fn resume(fetcher: &Fetcher, server: &Loopback, slow: &ModelEntry, model: &ModelEntry) -> Result<(f64, f64)> {
    let root = fetcher.work.join("resume");
    let version_dir = root.join(&model.name).join(&model.version);
    let partial_size = || {
        fs::read_dir(&version_dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|f| f.file_name().to_string_lossy().starts_with(".partial-"))
            .filter_map(|f| f.metadata().ok())
            .map(|m| m.len())
            .max()
            .unwrap_or(0)
    };
    let mut child = fetcher.spawn(&root, std::slice::from_ref(slow), false)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while partial_size() < model.size / 2 {
        if Instant::now() > deadline || child.try_wait()?.is_some() {
            bail!("the slow download did not reach half the file");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let _ = child.kill();
    let _ = child.wait();
    std::thread::sleep(Duration::from_millis(200)); // the server's writer notices the closed socket
    let stopped_at = partial_size() as f64 / model.size as f64;
    let before = server.served();
    fetcher.run(&root, std::slice::from_ref(model), false)?;
    let fetched_again = (server.served() - before) as f64;
    let _ = fs::remove_dir_all(&root);
    Ok((stopped_at, 1.0 - fetched_again / model.size as f64))
}

struct BundleFetch {
    variant: String,
    fetched: u64,
    whole: u64,
}

/// The bundle fetched for this machine's device class: the bytes it took against the whole bundle's.
fn bundle_fetch(fetcher: &Fetcher, server: &Loopback, dir: &Path) -> Result<BundleFetch> {
    let manifest_path = dir.join("bundle.json");
    let manifest: openautoglm::bundle::BundleManifest = serde_json::from_slice(&fs::read(&manifest_path)?)?;
    let whole = fs::metadata(&manifest_path)?.len()
        + manifest.variants.iter().map(|v| fs::metadata(dir.join(&v.file)).map_or(0, |m| m.len())).sum::<u64>();
    let entry = entry(MODEL, &manifest_path, server.url(&format!("variants/{MODEL}/bundle.json")))?;
    let root = fetcher.work.join("bundle");
    let before = server.served();
    fetcher.run(&root, std::slice::from_ref(&entry), true)?;
    let fetched = server.served() - before;
    let variant = fs::read_dir(root.join(MODEL).join("1"))?
        .flatten()
        .map(|f| f.file_name().to_string_lossy().into_owned())
        .find(|n| !n.starts_with('.') && n != "bundle.json")
        .unwrap_or_default();
    let _ = fs::remove_dir_all(&root);
    Ok(BundleFetch { variant, fetched, whole })
}

fn print_table(d: &Delivery) {
    println!("| measure | value |");
    println!("|---|---:|");
    println!(
        "| download throughput, ours / curl ({} files, {:.0} MB) | {:.3} ({:.0} vs {:.0} MB/s) |",
        d.files,
        d.bytes_per_round as f64 / 1e6,
        d.throughput_ratio_vs_curl,
        d.ours_mb_s,
        d.curl_mb_s
    );
    println!(
        "| kill trials (SIGKILL at random points) | {} ({} mid-download, {} completed) |",
        d.kill_trials, d.kill_trials_mid_download, d.kill_trials_completed
    );
    println!("| kill trials leaving a partial or unverified file under the name | {} |", d.kill_trials_corrupt);
    println!(
        "| resume: share not fetched again after a stop at {:.0}% | {:.3} |",
        100.0 * d.resume_interrupted_at,
        d.resume_saved_fraction
    );
    println!(
        "| bundle {} for this device ({}): bytes fetched / whole bundle | {:.3} ({:.1} of {:.1} MB) |",
        d.bundle_model,
        d.bundle_variant,
        d.bytes_fetched_for_bundle_ratio,
        d.bundle_bytes_fetched as f64 / 1e6,
        d.bundle_bytes_whole as f64 / 1e6
    );
}
