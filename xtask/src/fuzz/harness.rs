//! The process-isolated mutation run: probes (`openautoglm-probe`) under an address-space limit take mutants one at a
//! time; a probe that dies is a crash, one that does not answer in time is a hang, an answer of `panic` is a caught
//! panic. Each finding is saved, replayed alone in a fresh probe to confirm it, and minimised.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::mutate::{self, Field};

/// A probe that takes longer than this over one mutant is hung (a real model loads and runs in well under 1 s here).
pub const HANG_AFTER: Duration = Duration::from_secs(30);

/// A probe's address-space limit in KiB (8 GiB): an allocation past it fails, as on a phone, instead of swapping the
/// machine. Set with the shell's `ulimit -v` (util-linux's `prlimit` wrapper segfaults in some sandboxes).
const ADDRESS_SPACE_KIB: u64 = 8 << 20;

/// A model the mutants are made from, parsed once.
pub struct Seed {
    pub name: String,
    pub tree: Vec<Field>,
    pub bytes: usize,
}

impl Seed {
    pub fn load(path: &Path) -> Result<Seed> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let tree = mutate::parse(&bytes).with_context(|| format!("{} is not a protobuf message", path.display()))?;
        // Variant files share names across models (fp16.onnx): the directory tells them apart.
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("seed");
        let dir = path.parent().and_then(|d| d.file_name()).and_then(|d| d.to_str()).unwrap_or("");
        let name = if matches!(dir, "models" | "fuzz") { stem.to_owned() } else { format!("{dir}-{stem}") };
        Ok(Seed { name, tree, bytes: bytes.len() })
    }
}

/// What went wrong with one mutant, or nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Finding {
    Crash,
    Hang,
    Panic,
    /// An `Internal` error: typed, but by definition a bug in the SDK.
    Internal,
}

/// Counts of one run.
#[derive(Default)]
pub struct Tally {
    pub mutants: usize,
    /// Outcome words (`ok/ok`, `InvalidModel/-`, ...) per entry point.
    pub outcomes: BTreeMap<String, usize>,
    /// The first mutant of each distinct finding (kind and message, numbers aside), with how it was loaded.
    pub findings: Vec<(Finding, PathBuf, String)>,
    /// Every finding, distinct or not.
    pub finding_count: BTreeMap<Finding, usize>,
}

/// A finding's identity: its kind and message with the numbers taken out (sizes and addresses vary).
fn signature(finding: Finding, detail: &str) -> String {
    let text: String = detail.chars().map(|c| if c.is_ascii_digit() { 'N' } else { c }).collect();
    format!("{finding:?}|{text}")
}

struct Probe {
    child: Child,
    stdin: ChildStdin,
    answers: Receiver<String>,
    stderr: PathBuf,
}

impl Probe {
    fn start(binary: &Path, ort: &Path, scratch: &Path) -> Result<Probe> {
        let stderr = scratch.join("probe.stderr");
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!("ulimit -v {ADDRESS_SPACE_KIB} && exec \"$0\" \"$@\""))
            .arg(binary)
            .arg("--ort")
            .arg(ort)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr)?)
            .spawn()
            .context("starting the probe")?;
        let stdin = child.stdin.take().context("probe stdin")?;
        let stdout = child.stdout.take().context("probe stdout")?;
        let (tx, answers) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Probe { child, stdin, answers, stderr })
    }

    /// Sends one mutant; the answer, or the finding.
    fn ask(&mut self, entry: &str, mutant: &Path) -> std::result::Result<String, (Finding, String)> {
        let sent = writeln!(self.stdin, "{entry} {}", mutant.display()).and_then(|_| self.stdin.flush());
        let answer = match sent {
            Ok(()) => self.answers.recv_timeout(HANG_AFTER),
            Err(_) => Err(RecvTimeoutError::Disconnected),
        };
        match answer {
            Ok(line) if line.contains("panic") => Err((Finding::Panic, line)),
            Ok(line) if line.contains("Internal") => Err((Finding::Internal, line)),
            Ok(line) => Ok(line),
            Err(RecvTimeoutError::Timeout) => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                Err((Finding::Hang, format!("no answer in {} s", HANG_AFTER.as_secs())))
            }
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.child.wait().map(|s| s.to_string()).unwrap_or_default();
                let text = std::fs::read_to_string(&self.stderr).unwrap_or_default();
                let last = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
                Err((Finding::Crash, format!("{status}: {last}")))
            }
        }
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The entry point a mutant is loaded through, in turn.
const ENTRIES: [&str; 4] = ["bytes", "file", "cached", "placement"];

/// Runs `worker`'s share of mutants until `deadline`; findings are saved under `out`.
#[allow(clippy::too_many_arguments)]
pub fn run_worker(
    worker: usize,
    seeds: &[Seed],
    probe: &Path,
    ort: &Path,
    out: &Path,
    deadline: Instant,
    seed: u64,
    progress: &dyn Fn(usize),
) -> Result<Tally> {
    let scratch = out.join(format!("worker-{worker}"));
    std::fs::create_dir_all(&scratch)?;
    let mut rng = SmallRng::seed_from_u64(seed ^ (worker as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut tally = Tally::default();
    let mut current = Probe::start(probe, ort, &scratch)?;
    // Small seeds are cheap to load: they get more of the mutants, the large ones still get theirs.
    let weights: Vec<f64> = seeds.iter().map(|s| 1.0 / (1.0 + (s.bytes as f64 / 2e6))).collect();
    let total: f64 = weights.iter().sum();
    while Instant::now() < deadline {
        let mut pick = rng.random_range(0.0..total);
        let seed = seeds
            .iter()
            .zip(&weights)
            .find(|(_, w)| {
                pick -= **w;
                pick < 0.0
            })
            .map_or(&seeds[0], |(s, _)| s);
        let bytes = mutate::mutant(&seed.tree, &mut rng, 64 << 20);
        let entry = ENTRIES[tally.mutants % ENTRIES.len()];
        let path = scratch.join("mutant.onnx");
        std::fs::write(&path, &bytes)?;
        tally.mutants += 1;
        match current.ask(entry, &path) {
            Ok(answer) => *tally.outcomes.entry(format!("{entry}: {answer}")).or_default() += 1,
            Err((finding, detail)) => {
                *tally.outcomes.entry(format!("{entry}: {finding:?}")).or_default() += 1;
                *tally.finding_count.entry(finding).or_default() += 1;
                let sig = signature(finding, &detail);
                if !tally.findings.iter().any(|(f, _, d)| signature(*f, d.split_once('|').map_or(d, |x| x.1)) == sig) {
                    let dir = out.join(format!("{finding:?}").to_lowercase());
                    std::fs::create_dir_all(&dir)?;
                    let saved = dir.join(format!("{}-{worker}-{}-{entry}.onnx", seed.name, tally.mutants));
                    std::fs::write(&saved, &bytes)?;
                    eprintln!("\n{finding:?} on {} ({entry}): {detail}", saved.display());
                    tally.findings.push((finding, saved, format!("{entry}|{detail}")));
                }
                if matches!(finding, Finding::Crash | Finding::Hang) {
                    current = Probe::start(probe, ort, &scratch)?;
                }
            }
        }
        progress(tally.mutants);
    }
    Ok(tally)
}

/// Replays a saved finding alone in a fresh probe: whether it reproduces, and a minimised copy beside it if so.
pub fn triage(finding: Finding, path: &Path, entry: &str, probe: &Path, ort: &Path, out: &Path) -> Result<bool> {
    let scratch = out.join("triage");
    std::fs::create_dir_all(&scratch)?;
    let mut reproduces = |bytes: &[u8]| -> bool {
        let mutant = scratch.join("mutant.onnx");
        if std::fs::write(&mutant, bytes).is_err() {
            return false;
        }
        let Ok(mut fresh) = Probe::start(probe, ort, &scratch) else { return false };
        matches!(fresh.ask(entry, &mutant), Err((f, _)) if f == finding)
    };
    let bytes = std::fs::read(path)?;
    if !reproduces(&bytes) {
        return Ok(false);
    }
    if let Some(tree) = mutate::parse(&bytes) {
        let small = mutate::minimise(&tree, &mut reproduces, Duration::from_secs(120));
        std::fs::write(path.with_extension("min.onnx"), small)?;
    }
    Ok(true)
}
