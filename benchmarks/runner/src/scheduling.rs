//! `--scheduling`: many requests on one process, measured through the SDK (`cargo xtask bench --suite scheduling`).
//!
//! openautoglm-bench --scheduling --interactive MINILM.onnx --interactive-recipe R.json --background YOLO.onnx
//!                   --background-recipe R.json [--llm DIR] [--ort LIB] [--requests 400] [--interval-ms 25]
//!                   [--seconds 3] --out RESULT.json
//!
//! - interactive latency: MiniLM requests arriving every `interval` ms, alone (idle), then while two threads keep
//!   YOLOv8n runs going at background priority (loaded), then with every request at normal priority (FIFO), in
//!   interleaved rounds; latency is the SDK's, from the call to its return (time queued in the SDK included), and
//!   also reported from each request's due time (the app thread's own wake-up under load included);
//! - concurrent throughput: two callers on one MiniLM engine with 2 sessions vs the same with 1 (serialised);
//! - cancel latency: YOLOv8n runs cancelled part-way, from `cancel()` to the call returning;
//! - late results: interactive requests with deadlines around their own latency, under load;
//! - LLM stream gaps: one stream's gaps between pieces while a second request prefills a 2,000-token prompt.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bench_schema::scheduling::{LlmStreamGaps, SchedulingMetrics, SchedulingOutput};
use openautoglm::metrics::{Summary, memory};
use openautoglm::{CancelToken, Engine, EngineConfig, Error, Priority, RunOptions, Runtime, TensorRef};

use super::{Input, load_recipe, progress};

struct Args {
    interactive: std::path::PathBuf,
    interactive_recipe: std::path::PathBuf,
    background: std::path::PathBuf,
    background_recipe: std::path::PathBuf,
    llm: Option<std::path::PathBuf>,
    ort: Option<std::path::PathBuf>,
    requests: usize,
    /// Times the idle / loaded / FIFO rounds are measured (each its own ratio).
    repeat: usize,
    interval: Duration,
    seconds: f64,
    out: std::path::PathBuf,
}

fn parse() -> Result<Args, String> {
    let mut args = std::env::args().skip(1).filter(|a| a != "--scheduling");
    let (mut interactive, mut interactive_recipe, mut background, mut background_recipe) = (None, None, None, None);
    let (mut llm, mut ort, mut out) = (None, None, None);
    let (mut requests, mut interval_ms, mut seconds, mut repeat) = (400usize, 25u64, 3.0f64, 1usize);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--interactive" => interactive = Some(value()?.into()),
            "--interactive-recipe" => interactive_recipe = Some(value()?.into()),
            "--background" => background = Some(value()?.into()),
            "--background-recipe" => background_recipe = Some(value()?.into()),
            "--llm" => llm = Some(value()?.into()),
            "--ort" => ort = Some(value()?.into()),
            "--out" => out = Some(value()?.into()),
            "--requests" => requests = value()?.parse().map_err(|e| format!("--requests: {e}"))?,
            "--interval-ms" => interval_ms = value()?.parse().map_err(|e| format!("--interval-ms: {e}"))?,
            "--seconds" => seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--repeat" => repeat = value()?.parse().map_err(|e| format!("--repeat: {e}"))?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Args {
        interactive: interactive.ok_or("--interactive is required")?,
        interactive_recipe: interactive_recipe.ok_or("--interactive-recipe is required")?,
        background: background.ok_or("--background is required")?,
        background_recipe: background_recipe.ok_or("--background-recipe is required")?,
        llm,
        ort,
        requests: requests.max(10),
        repeat: repeat.max(1),
        interval: Duration::from_millis(interval_ms.max(1)),
        seconds,
        out: out.ok_or("--out is required")?,
    })
}

/// A model and its recipe inputs.
struct Loaded {
    engine: Engine,
    inputs: Vec<Input>,
}

impl Loaded {
    fn open(model: &std::path::Path, recipe: &std::path::Path, config: EngineConfig) -> Result<Loaded, String> {
        let inputs = load_recipe(recipe)?;
        let engine = Engine::from_file(model, config).map_err(|e| e.to_string())?;
        let loaded = Loaded { engine, inputs };
        for _ in 0..10 {
            loaded.run(&RunOptions::default()).map_err(|e| e.to_string())?;
        }
        Ok(loaded)
    }

    /// One run; `Ok` holds when it returned (before its outputs are freed).
    fn run(&self, options: &RunOptions) -> Result<Instant, Error> {
        let views: Vec<(&str, TensorRef<'_>)> = self
            .inputs
            .iter()
            .map(|i| (i.name.as_str(), TensorRef::from_bytes(i.element_type, &i.shape, &i.data)))
            .collect();
        let outputs = self.engine.run_with(&views, options);
        let returned = Instant::now();
        outputs.map(|_| returned)
    }
}

/// Rounds of the idle / loaded / FIFO scenarios.
const ROUNDS: usize = 5;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A small deterministic generator for delays (the same trials on every run).
struct Lcg(u64);

impl Lcg {
    fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Load {
    Idle,
    Prioritized,
    Fifo,
}

/// One scenario's interactive latencies (from each request's due time) and what the background got done.
#[derive(Default)]
struct Scenario {
    /// From the call to its return: the SDK's request latency.
    latencies: Vec<f64>,
    /// From the request's due time: the app thread's own wake-up under load included.
    from_due: Vec<f64>,
    background_runs: u64,
    seconds: f64,
    preempted: u64,
    /// The background engine's time in runs, and in runs stopped for interactive ones.
    busy: Duration,
    lost: Duration,
    /// With deadlines: results that came back after their deadline, and requests refused or stopped by it.
    late: usize,
    deadline_exceeded: usize,
}

impl Scenario {
    fn add(&mut self, other: Scenario) {
        self.latencies.extend(other.latencies);
        self.from_due.extend(other.from_due);
        self.background_runs += other.background_runs;
        self.seconds += other.seconds;
        self.preempted += other.preempted;
        self.busy += other.busy;
        self.lost += other.lost;
        self.late += other.late;
        self.deadline_exceeded += other.deadline_exceeded;
    }

    fn summary(&self) -> Result<Summary, String> {
        Summary::of(&self.latencies).ok_or_else(|| "no interactive request finished".to_owned())
    }

    fn p99_from_due(&self) -> f64 {
        Summary::of(&self.from_due).map_or(0.0, |s| s.p99)
    }

    fn lost_share(&self) -> f64 {
        self.lost.as_secs_f64() / self.busy.as_secs_f64().max(1e-9)
    }

    fn background_per_s(&self) -> f64 {
        self.background_runs as f64 / self.seconds.max(1e-9)
    }
}

/// `requests` interactive requests every `interval` (optionally with deadlines of 0.5-2x `deadlines` ms), while two
/// threads keep background runs going (unless idle).
fn interactive_latency(
    interactive: &Loaded,
    background: &Loaded,
    args: &Args,
    requests: usize,
    load: Load,
    deadlines: Option<f64>,
) -> Result<Scenario, String> {
    let stop = AtomicBool::new(false);
    let background_runs = AtomicU64::new(0);
    let preempted_before = background.engine.preempted_runs();
    let time_before = background.engine.run_time();
    let (background_priority, interactive_priority) = match load {
        Load::Fifo => (Priority::Normal, Priority::Normal),
        _ => (Priority::Background, Priority::Interactive),
    };
    let mut rng = Lcg(7);
    let mut scenario = std::thread::scope(|scope| {
        if load != Load::Idle {
            for _ in 0..2 {
                scope.spawn(|| {
                    let options = RunOptions::new().with_priority(background_priority);
                    while !stop.load(Ordering::Relaxed) {
                        if background.run(&options).is_ok() {
                            background_runs.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
            std::thread::sleep(Duration::from_millis(200)); // the background reaches its pace
        }
        let started = Instant::now();
        let mut scenario = Scenario::default();
        for i in 0..requests {
            let due = started + args.interval * i as u32;
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let mut options = RunOptions::new().with_priority(interactive_priority);
            if let Some(budget_ms) = deadlines {
                let factor = 0.5 + 1.5 * rng.unit();
                options = options.with_deadline(due + Duration::from_secs_f64(budget_ms * factor / 1e3));
            }
            let called = Instant::now();
            match interactive.run(&options) {
                Ok(returned) => {
                    if options.deadline.is_some_and(|d| returned > d) {
                        scenario.late += 1;
                    }
                    scenario.latencies.push(ms(returned - called));
                    scenario.from_due.push(ms(returned - due));
                }
                Err(Error::DeadlineExceeded) => scenario.deadline_exceeded += 1,
                Err(e) => return Err(e.to_string()),
            }
        }
        scenario.seconds = started.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        Ok(scenario)
    })?;
    scenario.background_runs = background_runs.load(Ordering::Relaxed);
    scenario.preempted = background.engine.preempted_runs() - preempted_before;
    let time = background.engine.run_time();
    scenario.busy = time.busy - time_before.busy;
    scenario.lost = time.preempted - time_before.preempted;
    Ok(scenario)
}

/// Requests per second from two callers running `loaded` back to back at `priority` for `seconds`.
fn two_callers(loaded: &Loaded, priority: Priority, seconds: f64) -> f64 {
    let runs = AtomicU64::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                let options = RunOptions::new().with_priority(priority);
                while started.elapsed().as_secs_f64() < seconds {
                    if loaded.run(&options).is_ok() {
                        runs.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    runs.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// Milliseconds from `cancel()` to the call returning `Cancelled`, for runs cancelled part-way.
fn cancel_latencies(background: &Loaded, trials: usize, run_ms: f64) -> Vec<f64> {
    let mut rng = Lcg(11);
    let mut latencies = Vec::with_capacity(trials);
    for _ in 0..trials {
        let token = CancelToken::new();
        let options = RunOptions::new().with_cancel(token.clone());
        let delay = Duration::from_secs_f64(run_ms * (0.1 + 0.7 * rng.unit()) / 1e3);
        let returned = std::thread::scope(|scope| {
            let run = scope.spawn(|| {
                let outcome = background.run(&options);
                (outcome, Instant::now())
            });
            std::thread::sleep(delay);
            let cancelled_at = Instant::now();
            token.cancel();
            let (outcome, returned_at) = run.join().expect("run thread");
            (outcome, returned_at.saturating_duration_since(cancelled_at))
        });
        if let (Err(Error::Cancelled), took) = returned {
            latencies.push(ms(took));
        }
    }
    latencies
}

fn mb(bytes: Option<u64>) -> f64 {
    bytes.map_or(0.0, |b| b as f64 / (1024.0 * 1024.0))
}

pub(super) fn run() -> Result<(), String> {
    let args = parse()?;
    let runtime = Runtime::init(args.ort.as_deref()).map_err(|e| e.to_string())?;
    let steps = ROUNDS * (args.repeat + 1) + 5 + usize::from(args.llm.is_some());
    let mut step = 0;
    let done = |step: &mut usize| {
        *step += 1;
        progress(*step, steps);
    };
    let interactive = Loaded::open(&args.interactive, &args.interactive_recipe, EngineConfig::default())?;
    let background = Loaded::open(&args.background, &args.background_recipe, EngineConfig::default())?;

    // Idle, loaded and FIFO in interleaved rounds, so drift in the machine hits each alike; `--repeat` times, each
    // repeat its own ratio.
    let (mut idle, mut loaded, mut fifo) = (Scenario::default(), Scenario::default(), Scenario::default());
    let per_round = args.requests / ROUNDS;
    let mut ratios = Vec::new();
    for _ in 0..args.repeat {
        let (mut idle_now, mut loaded_now) = (Scenario::default(), Scenario::default());
        for _ in 0..ROUNDS {
            idle_now.add(interactive_latency(&interactive, &background, &args, per_round, Load::Idle, None)?);
            loaded_now.add(interactive_latency(&interactive, &background, &args, per_round, Load::Prioritized, None)?);
            fifo.add(interactive_latency(&interactive, &background, &args, per_round, Load::Fifo, None)?);
            done(&mut step);
        }
        ratios.push(loaded_now.summary()?.p99 / idle_now.summary()?.p99);
        idle.add(idle_now);
        loaded.add(loaded_now);
    }
    let (idle_summary, loaded_summary, fifo_summary) = (idle.summary()?, loaded.summary()?, fifo.summary()?);
    // The same load without this SDK's gentler preemption: background threads at the app's priority, and every
    // background run stopped for an interactive one however near its end.
    openautoglm::schedule::set_lower_background_priority(false);
    openautoglm::schedule::set_finish_nearly_done(false);
    let mut without = Scenario::default();
    for _ in 0..ROUNDS {
        without.add(interactive_latency(&interactive, &background, &args, per_round, Load::Prioritized, None)?);
        done(&mut step);
    }
    openautoglm::schedule::set_lower_background_priority(true);
    openautoglm::schedule::set_finish_nearly_done(true);
    let with_deadlines = interactive_latency(
        &interactive,
        &background,
        &args,
        args.requests,
        Load::Prioritized,
        Some(idle_summary.p50),
    )?;
    done(&mut step);
    // The background's pace with nothing else running, for what interactive load costs it.
    let alone = two_callers(&background, Priority::Background, args.seconds);
    done(&mut step);

    // The same engine serialised (1 session: callers take turns) vs with 2 sessions; memory of the extra session.
    let rss_before = memory().map(|m| m.rss);
    let serial = Loaded::open(&args.interactive, &args.interactive_recipe, EngineConfig::default())?;
    let rss_serial = memory().map(|m| m.rss);
    let concurrent =
        Loaded::open(&args.interactive, &args.interactive_recipe, EngineConfig::default().with_concurrency(2))?;
    let rss_concurrent = memory().map(|m| m.rss);
    let (mut serial_rate, mut concurrent_rate) = (0.0, 0.0);
    for _ in 0..2 {
        serial_rate += two_callers(&serial, Priority::Normal, args.seconds / 2.0);
        concurrent_rate += two_callers(&concurrent, Priority::Normal, args.seconds / 2.0);
    }
    done(&mut step);
    let serial_mb = mb(rss_serial) - mb(rss_before);
    let concurrent_mb = mb(rss_concurrent) - mb(rss_serial);

    let run_ms = {
        let started = Instant::now();
        for _ in 0..20 {
            background.run(&RunOptions::default()).map_err(|e| e.to_string())?;
        }
        ms(started.elapsed()) / 20.0
    };
    let cancels = cancel_latencies(&background, 100, run_ms);
    let cancel = Summary::of(&cancels).ok_or("no run was cancelled part-way")?;
    done(&mut step);

    let llm = match &args.llm {
        Some(dir) => {
            let gaps = super::llm_gaps::measure(dir)?;
            done(&mut step);
            gaps
        }
        None => LlmStreamGaps::default(),
    };
    done(&mut step);

    let scheduling = SchedulingMetrics {
        interactive_p50_idle_ms: idle_summary.p50,
        interactive_p90_idle_ms: idle_summary.p90,
        interactive_p99_idle_ms: idle_summary.p99,
        interactive_p50_loaded_ms: loaded_summary.p50,
        interactive_p90_loaded_ms: loaded_summary.p90,
        interactive_p99_loaded_ms: loaded_summary.p99,
        interactive_p99_ratio: loaded_summary.p99 / idle_summary.p99,
        interactive_p99_ratio_max: ratios.iter().copied().fold(0.0, f64::max),
        interactive_p99_ratios: ratios,
        background_work_lost_share: loaded.lost_share(),
        background_work_lost_share_without: without.lost_share(),
        interactive_p99_ratio_without: without.summary()?.p99 / idle_summary.p99,
        interactive_p99_from_due_idle_ms: idle.p99_from_due(),
        interactive_p99_from_due_loaded_ms: loaded.p99_from_due(),
        fifo_interactive_p50_ms: fifo_summary.p50,
        fifo_interactive_p99_ms: fifo_summary.p99,
        fifo_interactive_p99_ratio: fifo_summary.p99 / idle_summary.p99,
        background_runs_per_s_alone: alone,
        background_runs_per_s_under_interactive: loaded.background_per_s(),
        background_runs_per_s_fifo: fifo.background_per_s(),
        background_preempted_runs: loaded.preempted,
        concurrent_requests_per_s: concurrent_rate / 2.0,
        serialised_requests_per_s: serial_rate / 2.0,
        concurrent_throughput_ratio: concurrent_rate / serial_rate,
        engine_rss_mb_one_session: serial_mb,
        extra_session_rss_mb: concurrent_mb - serial_mb,
        background_run_ms: run_ms,
        cancelled_part_way: cancels.len() as u64,
        cancel_latency_p50_ms: cancel.p50,
        cancel_latency_p99_ms: cancel.p99,
        deadline_requests: args.requests as u64,
        deadline_exceeded: with_deadlines.deadline_exceeded as u64,
        late_results: with_deadlines.late as u64,
        llm,
    };
    let output = SchedulingOutput {
        ort_version: runtime.ort_version,
        interval_ms: ms(args.interval),
        requests: args.requests as u64,
        scheduling,
    };
    std::fs::write(&args.out, serde_json::to_string_pretty(&output).map_err(|e| e.to_string())?)
        .map_err(|e| format!("{}: {e}", args.out.display()))
}
