//! A lane: the process-wide queue of runs for one kind of accelerator. Engines in one process share it, so work on
//! the CPU and work on NNAPI or CoreML proceed side by side, and the CPU lane never runs more at once than it has
//! cores for.
//!
//! A run needs two things: room in the lane (its capacity) and a free session of its own engine (its pool). Waiting
//! runs start in order of priority, then arrival; a run whose engine has no free session does not hold back one
//! whose engine has. Interactive work reserves the lane: background runs do not start while an interactive run waits
//! or runs, and the ones running are stopped and re-queued at their old place.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use super::{Active, CancelToken, OnCancel, Priority, Stop};
use crate::accelerator::AcceleratorReport;
use crate::error::{Error, Result};

/// The accelerator class a lane serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LaneKind {
    /// The CPU, XNNPACK included: as many runs at once as the device has cores, by default.
    Cpu,
    /// NNAPI: one run at a time by default (the driver serialises its calls).
    Nnapi,
    /// CoreML: one run at a time by default (ONNX Runtime locks each call to a CoreML model).
    CoreMl,
    /// Plugin execution providers (OpenVINO, QNN, ...): one run at a time by default (an NPU runs one graph at a
    /// time; OpenVINO's CPU device already uses every core for one run).
    Plugin,
}

impl LaneKind {
    /// The lane of an engine whose sessions registered `accelerators` (the first one leads).
    pub(crate) fn of(accelerators: &AcceleratorReport) -> LaneKind {
        match accelerators.active.first().map(String::as_str) {
            Some("NnapiExecutionProvider") => LaneKind::Nnapi,
            Some("CoreMLExecutionProvider") => LaneKind::CoreMl,
            Some("CPUExecutionProvider" | "XnnpackExecutionProvider") | None => LaneKind::Cpu,
            Some(_) => LaneKind::Plugin,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How many runs a lane starts at once, across all engines.
pub fn lane_capacity(kind: LaneKind) -> usize {
    lanes()[kind.index()].lock().capacity
}

/// Sets how many runs a lane starts at once (at least 1); runs already going are not stopped.
pub fn set_lane_capacity(kind: LaneKind, runs: usize) {
    let lane = &lanes()[kind.index()];
    let mut state = lane.lock();
    state.capacity = runs.max(1);
    lane.notify(state);
}

fn lanes() -> &'static [Lane; 4] {
    static LANES: OnceLock<[Lane; 4]> = OnceLock::new();
    LANES.get_or_init(|| {
        let cores = crate::config::cores();
        [Lane::new(cores), Lane::new(1), Lane::new(1), Lane::new(1)]
    })
}

pub(crate) struct Lane {
    state: Mutex<LaneState>,
    changed: Condvar,
}

#[derive(Default)]
struct LaneState {
    capacity: usize,
    /// When the last interactive run ended: background runs wait [`INTERACTIVE_HOLD`] after it.
    interactive_ended: Option<Instant>,
    next_seq: u64,
    waiting: Vec<Ticket>,
    running: Vec<Running>,
    /// Free sessions per pool (a handful of engines: a list, not a map); a closed pool is gone from here.
    free: Vec<(u64, usize)>,
    /// Threads waiting on `changed`: with none, a run that starts or ends wakes nobody (and makes no system call).
    sleepers: usize,
}

struct Ticket {
    seq: u64,
    priority: Priority,
    pool: u64,
}

struct Running {
    seq: u64,
    priority: Priority,
    pool: u64,
    /// `None`: a run that cannot be stopped part-way (an LLM step).
    active: Option<Arc<Active>>,
    /// When an interactive run asked it to stop.
    preempted_at: Option<Instant>,
    started: Instant,
    /// How long runs of its engine take (a running average), when known.
    expected: Option<std::time::Duration>,
}

impl Running {
    /// Whether the run should be done within [`NEARLY_DONE`]: stopping it would throw away nearly a whole run to
    /// save an interactive request a fraction of a millisecond.
    fn nearly_done(&self, now: Instant) -> bool {
        FINISH_NEARLY_DONE.load(Ordering::Relaxed)
            && self
                .expected
                .is_some_and(|expected| (self.started + expected).saturating_duration_since(now) < NEARLY_DONE)
    }
}

impl LaneState {
    fn interactive_present(&self) -> bool {
        self.waiting.iter().any(|t| t.priority == Priority::Interactive)
            || self.running.iter().any(|r| r.priority == Priority::Interactive)
            || self.holding().is_some()
    }

    /// Until when the lane stays reserved after the last interactive run (`None`: not held).
    fn holding(&self) -> Option<Instant> {
        self.interactive_ended.map(|ended| ended + INTERACTIVE_HOLD).filter(|until| *until > Instant::now())
    }

    /// Until when an interactive run waits for the background runs it stopped to return: usually a fraction of a
    /// millisecond (the node in progress). Started beside them it would share the cores with their last node for a
    /// whole scheduler time slice (measured: 3 ms of a 4 ms MiniLM run); but a stopping run the OS has not
    /// scheduled holds no core, so the wait is bounded by [`STOP_WAIT`].
    fn stopping_until(&self) -> Option<Instant> {
        self.running
            .iter()
            .filter_map(|r| r.preempted_at)
            .map(|at| at + STOP_WAIT)
            .filter(|u| *u > Instant::now())
            .max()
    }

    /// Whether `t` could start now if it were first in line.
    fn ready(&self, t: &Ticket) -> bool {
        self.running.len() < self.capacity
            && self.free_sessions(t.pool).is_some_and(|n| n > 0)
            && !(t.priority == Priority::Background && self.interactive_present())
            && !(t.priority == Priority::Interactive && self.stopping_until().is_some())
    }

    /// Whether the ticket `seq` is the first ready one in order of priority, then arrival.
    fn may_start(&self, seq: u64) -> bool {
        self.waiting.iter().filter(|t| self.ready(t)).min_by_key(|t| (t.priority, t.seq)).is_some_and(|t| t.seq == seq)
    }

    fn free_sessions(&self, pool: u64) -> Option<usize> {
        self.free.iter().find(|(id, _)| *id == pool).map(|(_, n)| *n)
    }

    fn free_mut(&mut self, pool: u64) -> Option<&mut usize> {
        self.free.iter_mut().find(|(id, _)| *id == pool).map(|(_, n)| n)
    }

    fn leave(&mut self, seq: u64) {
        self.waiting.retain(|t| t.seq != seq);
    }
}

/// How long background runs keep off the lane after an interactive run ends. The caller of the interactive run
/// still has to take its outputs and return; background runs woken at once take the cores from it, and the OS
/// then makes it wait for a time slice (measured: MiniLM's 4 ms runs returned 2 ms late at the median under
/// YOLOv8n load). The hold also lets a burst of interactive requests run back to back without preempting again.
const INTERACTIVE_HOLD: std::time::Duration = std::time::Duration::from_millis(2);

static FINISH_NEARLY_DONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Whether a background run about to end ([`NEARLY_DONE`]) is left to finish when an interactive run arrives
/// (default: on); off, every background run in the lane is stopped and started again.
pub fn set_finish_nearly_done(enabled: bool) {
    FINISH_NEARLY_DONE.store(enabled, Ordering::Relaxed);
}

/// A background run expected to end within this is left to finish when an interactive run arrives (it is then
/// waited for, as a stopped run is: [`STOP_WAIT`]).
const NEARLY_DONE: std::time::Duration = std::time::Duration::from_micros(500);

/// The longest an interactive run waits for the background runs it stopped (see `LaneState::stopping_until`).
const STOP_WAIT: std::time::Duration = std::time::Duration::from_millis(1);

/// Wakes a lane's waiting runs when a token is cancelled, so a queued request fails at once.
struct Waker(&'static Lane);

impl OnCancel for Waker {
    fn cancelled(&self) {
        self.0.notify(self.0.lock());
    }
}

/// An engine's (or an LLM's) sessions as the lane counts them.
pub(crate) struct Pool {
    lane: &'static Lane,
    id: u64,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("id", &self.id).finish()
    }
}

/// Room in the lane and one session of the pool, held while a run goes; dropping it gives both back.
pub(crate) struct Grant<'a> {
    pool: &'a Pool,
    seq: u64,
}

impl Drop for Grant<'_> {
    fn drop(&mut self) {
        let lane = self.pool.lane;
        let mut state = lane.lock();
        if state.running.iter().any(|r| r.seq == self.seq && r.priority == Priority::Interactive) {
            state.interactive_ended = Some(Instant::now());
        }
        state.running.retain(|r| r.seq != self.seq);
        if let Some(free) = state.free_mut(self.pool.id) {
            *free += 1;
        }
        lane.notify(state);
    }
}

impl Grant<'_> {
    /// The ticket number, for re-queuing a preempted run at its old place.
    pub(crate) fn seq(&self) -> u64 {
        self.seq
    }
}

/// What a run asks for when it queues.
pub(crate) struct Request<'a> {
    pub(crate) priority: Priority,
    pub(crate) deadline: Option<Instant>,
    pub(crate) cancel: Option<&'a CancelToken>,
    /// The run to register as stoppable (preemption, close), if it can be stopped part-way.
    pub(crate) active: Option<Arc<Active>>,
    /// The place of an earlier attempt (a preempted run keeps its turn).
    pub(crate) seq: Option<u64>,
    /// How long the run is expected to take (its engine's recent runs), for leaving nearly finished background runs
    /// alone.
    pub(crate) expected: Option<std::time::Duration>,
}

impl Lane {
    /// Wakes the waiting runs after a change, if any wait; `state` is released first.
    fn notify(&self, state: MutexGuard<'_, LaneState>) {
        let anyone = state.sleepers > 0;
        drop(state);
        if anyone {
            self.changed.notify_all();
        }
    }

    fn new(capacity: usize) -> Lane {
        Lane { state: Mutex::new(LaneState { capacity, ..LaneState::default() }), changed: Condvar::new() }
    }

    fn lock(&self) -> MutexGuard<'_, LaneState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Pool {
    /// `sessions` sessions of one engine, queued on the lane for `kind`.
    pub(crate) fn new(kind: LaneKind, sessions: usize) -> Pool {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let lane = &lanes()[kind.index()];
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        lane.lock().free.push((id, sessions.max(1)));
        Pool { lane, id }
    }

    /// Waits for this request's turn. Fails at once when cancelled, when its deadline passes first, or when the pool
    /// is closed.
    pub(crate) fn acquire(&self, request: Request<'_>) -> Result<Grant<'_>> {
        let lane = self.lane;
        // Held until this returns: the token only keeps a weak reference.
        let _waker = request.cancel.map(|token| {
            let waker: Arc<dyn OnCancel> = Arc::new(Waker(lane));
            token.watch(Arc::downgrade(&waker));
            waker
        });
        let mut state = lane.lock();
        let seq = request.seq.unwrap_or_else(|| {
            state.next_seq += 1;
            state.next_seq
        });
        state.waiting.push(Ticket { seq, priority: request.priority, pool: self.id });
        loop {
            let refusal = if request.cancel.is_some_and(CancelToken::is_cancelled) {
                Some(Error::Cancelled)
            } else if state.free_sessions(self.id).is_none() {
                Some(Error::EngineClosed)
            } else if request.deadline.is_some_and(|d| Instant::now() >= d) {
                Some(Error::DeadlineExceeded)
            } else {
                None
            };
            if let Some(error) = refusal {
                state.leave(seq);
                lane.notify(state);
                return Err(error);
            }
            if request.priority == Priority::Interactive {
                // Background runs would share the cores with it: stop them (they queue again behind it).
                let now = Instant::now();
                for running in state.running.iter_mut().filter(|r| r.priority == Priority::Background) {
                    if running.nearly_done(now) {
                        continue;
                    }
                    if let (Some(active), None) = (&running.active, running.preempted_at) {
                        active.stop(Stop::Preempted);
                        running.preempted_at = Some(now);
                    }
                }
            }
            if state.may_start(seq) {
                state.leave(seq);
                *state.free_mut(self.id).expect("checked above") -= 1;
                state.running.push(Running {
                    seq,
                    priority: request.priority,
                    pool: self.id,
                    active: request.active,
                    preempted_at: None,
                    started: Instant::now(),
                    expected: request.expected,
                });
                // Others may be able to start too (capacity left, another pool free).
                lane.notify(state);
                return Ok(Grant { pool: self, seq });
            }
            // Wake at the deadline, or when a hold on the lane ends, if nothing else wakes this run first.
            let hold = match request.priority {
                Priority::Background => state.holding(),
                Priority::Interactive => state.stopping_until(),
                Priority::Normal => None,
            };
            state.sleepers += 1;
            state = match [request.deadline, hold].into_iter().flatten().min() {
                Some(until) => {
                    let left = until.saturating_duration_since(Instant::now());
                    lane.changed.wait_timeout(state, left).unwrap_or_else(|e| e.into_inner()).0
                }
                None => lane.changed.wait(state).unwrap_or_else(|e| e.into_inner()),
            };
            state.sleepers -= 1;
        }
    }

    /// Closes the pool: its queued runs fail with `EngineClosed`, and its running ones stop at their next node.
    pub(crate) fn close(&self) {
        let mut state = self.lane.lock();
        state.free.retain(|(id, _)| *id != self.id);
        for running in state.running.iter().filter(|r| r.pool == self.id) {
            if let Some(active) = &running.active {
                active.stop(Stop::Closed);
            }
        }
        self.lane.notify(state);
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_leading_provider_picks_the_lane() {
        let report = |active: &[&str]| AcceleratorReport {
            active: active.iter().map(|s| s.to_string()).collect(),
            skipped: Vec::new(),
        };
        assert_eq!(LaneKind::of(&report(&["CPUExecutionProvider"])), LaneKind::Cpu);
        assert_eq!(LaneKind::of(&report(&["XnnpackExecutionProvider", "CPUExecutionProvider"])), LaneKind::Cpu);
        assert_eq!(LaneKind::of(&report(&["NnapiExecutionProvider", "CPUExecutionProvider"])), LaneKind::Nnapi);
        assert_eq!(LaneKind::of(&report(&["CoreMLExecutionProvider", "CPUExecutionProvider"])), LaneKind::CoreMl);
        assert_eq!(LaneKind::of(&report(&["OpenVINOExecutionProvider", "CPUExecutionProvider"])), LaneKind::Plugin);
        assert_eq!(lane_capacity(LaneKind::Plugin), 1);
    }
}
