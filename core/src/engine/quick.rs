//! Small models at the runtime's own speed without burning the battery: how ONNX Runtime's worker threads wait
//! between runs is chosen per call, from what the app does.
//!
//! A worker that spins between back-to-back calls starts the next one at once, but it spins up to tens of
//! milliseconds after every run: an app calling a voice detector every 32 ms then keeps a core busy all the time
//! (measured with python onnxruntime's defaults: 32 ms of CPU per 0.2 ms inference). A worker told to stop after
//! each run (the engine's default session) must be woken by the next one, which on a tiny model costs more than the
//! model (openWakeWord's classifier: 0.021 against 0.013 ms back to back; at a 32 ms cadence 0.33 ms at the median
//! and 4 ms at p90, where waking a sleeping worker is slow). A tiny model gains little from a second thread at all.
//!
//! So a small model (its bytes under [`QUICK_MODEL_BYTES`], run on the CPU with the thread settings left to the
//! engine) gets two more sessions at load: one whose workers spin, used while calls arrive closer together than
//! [`spin_window`] (a burst), and one running on the calling thread alone, used for calls that come after a pause.
//! A model whose measured runs take [`QUICK_RUN`] or more keeps to the engine's own session.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ort::session::Session;

use crate::config::EngineConfig;
use crate::error::Result;
use crate::session::{Waiting, Workers, open_waiting};
use crate::source::Source;

/// Models up to this size get the quick sessions: each costs one more copy of the weights and graph.
pub(crate) const QUICK_MODEL_BYTES: u64 = 4 << 20;

/// Runs shorter than this are where waking a worker costs as much as the work (measured here: 0.002 to 0.2 ms for
/// the tiny models, where the choice pays; 1.3 ms for MiniLM, where the default session is within noise).
const QUICK_RUN: Duration = Duration::from_millis(1);

/// The two extra sessions of a small model.
pub(super) struct QuickSessions {
    pub(super) spinning: Session,
    pub(super) alone: Session,
}

/// Which session a call runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub(super) enum Pick {
    /// The engine's own session (its threads told to stop after each run).
    Default,
    Spinning,
    Alone,
}

impl QuickSessions {
    /// The quick sessions, when the model and the settings qualify: the CPU provider alone, threads and spinning
    /// left to the engine (or one per core), one run at a time, no shape buckets, no placement profile, a small model, and more than
    /// one core (on one core the default session already runs alone).
    pub(super) fn open(
        source: Source<'_>,
        config: &EngineConfig,
        cpu_only: bool,
        workers: &Arc<Workers>,
    ) -> Result<Option<QuickSessions>> {
        let qualifies = cpu_only
            // 0, or every core: the count the engine would choose anyway.
            && (config.intra_op_threads == 0 || config.intra_op_threads as usize == crate::config::cores())
            && config.inter_op_threads <= 1
            && config.spinning.is_none()
            && config.concurrency <= 1
            && config.shape_buckets.is_empty()
            && !config.report_placement
            && crate::config::cores() > 1
            && source.byte_len().is_some_and(|n| n <= QUICK_MODEL_BYTES);
        // External weights would be loaded twice more.
        if !qualifies {
            return Ok(None);
        }
        // One model check for both sessions.
        let checked = source.check()?;
        if checked.external_data > 0 {
            return Ok(None);
        }
        // The CPU provider alone ran the default session (an accelerator asked for may have failed to compile it).
        let cpu = EngineConfig { accelerators: vec![crate::config::Accelerator::Cpu], ..config.clone() };
        let spinning = open_waiting(source, &checked, &cpu, Waiting::Spinning, workers)?;
        let alone = open_waiting(source, &checked, &cpu, Waiting::Alone, workers)?;
        Ok(Some(QuickSessions { spinning, alone }))
    }

    pub(super) fn get(&mut self, pick: Pick) -> Option<&mut Session> {
        match pick {
            Pick::Default => None,
            Pick::Spinning => Some(&mut self.spinning),
            Pick::Alone => Some(&mut self.alone),
        }
    }
}

/// What the engine knows of the app's calls: how long runs take and when the last one ended. Calls reach it one at
/// a time (quick sessions exist only in engines of one slot), so a plain lock serves.
pub(super) struct Cadence(Mutex<CadenceState>);

#[derive(Default)]
struct CadenceState {
    last_end: Option<Instant>,
    /// Calls in a row that came within the spin window of the one before.
    close_calls: u32,
    /// A running average of run times, over about the last eight: one slow run (a page fault, a preemption) does
    /// not flip the choice.
    run: Option<Duration>,
}

impl Cadence {
    pub(super) fn new() -> Cadence {
        Cadence(Mutex::new(CadenceState::default()))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, CadenceState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The session for a call starting at `now`: in a burst, the spinning one (what ONNX Runtime's own APIs do by
    /// default, so back-to-back calls cost what they cost there); after a pause, the one running alone (nothing
    /// spins across the gap, nothing needs waking).
    pub(super) fn pick(&self, now: Instant) -> Pick {
        let mut state = self.state();
        match (state.run, state.last_end) {
            (Some(run), Some(end)) if run < QUICK_RUN => {
                if now.saturating_duration_since(end) < spin_window(run) {
                    state.close_calls = state.close_calls.saturating_add(1);
                } else {
                    state.close_calls = 0;
                }
                if state.close_calls >= BURST_CALLS { Pick::Spinning } else { Pick::Alone }
            }
            _ => Pick::Default,
        }
    }

    /// How long a run takes, on average over the recent ones (`None`: none finished yet).
    pub(super) fn expected_run(&self) -> Option<Duration> {
        self.state().run
    }

    /// Records a run that started at `started` and has just ended.
    pub(super) fn ran(&self, started: Instant) {
        let now = Instant::now();
        let took = now.saturating_duration_since(started);
        let mut state = self.state();
        state.run = Some(state.run.map_or(took, |old| (old * 7 + took) / 8));
        state.last_end = Some(now);
    }
}

/// Close calls in a row before a burst spins: one run on the spinning session keeps its workers spinning for tens
/// of milliseconds after it (measured: 80 ms of a core after one openWakeWord run), so two calls that happen to
/// come together are not worth it.
const BURST_CALLS: u32 = 3;

/// Calls closer together than this are a burst, run on spinning workers: a worker spins across at most a gap of
/// twice the run it waits for (so spinning never costs much more CPU than the model itself), and never less than
/// 50 us (a caller's own work between back-to-back calls: copying outputs, a JNI or Swift crossing).
fn spin_window(run: Duration) -> Duration {
    (run * 2).max(Duration::from_micros(50))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_spin_and_pauses_run_alone() {
        let cadence = Cadence::new();
        let start = Instant::now();
        assert_eq!(cadence.pick(start), Pick::Default, "nothing measured yet");
        cadence.ran(start);
        assert_eq!(cadence.pick(Instant::now()), Pick::Alone, "two calls together are not yet a burst");
        assert_eq!(cadence.pick(Instant::now()), Pick::Alone);
        assert_eq!(cadence.pick(Instant::now()), Pick::Spinning, "a third close call is");
        assert_eq!(cadence.pick(Instant::now() + Duration::from_millis(32)), Pick::Alone, "a call after a pause");
        assert_eq!(cadence.pick(Instant::now() + Duration::from_millis(32)), Pick::Alone, "and the next");
    }

    #[test]
    fn slow_models_keep_the_default_session() {
        let cadence = Cadence::new();
        cadence.ran(Instant::now() - Duration::from_millis(5));
        assert_eq!(cadence.pick(Instant::now()), Pick::Default);
        assert_eq!(cadence.pick(Instant::now() + Duration::from_millis(32)), Pick::Default);
    }

    #[test]
    fn the_window_follows_the_run_time() {
        assert_eq!(spin_window(Duration::from_micros(5)), Duration::from_micros(50));
        assert_eq!(spin_window(Duration::from_micros(300)), Duration::from_micros(600));
    }
}
