//! Many requests, one phone: what a request asks of the scheduler (priority, deadline, cancellation) and how runs
//! are stopped.
//!
//! Every run of every engine (and every step of every LLM generation) passes through the [`lane`] of the accelerator
//! leading it: a process-wide queue that starts work in order of priority and arrival, as far as the lane's capacity
//! and the engine's own sessions allow. A run in progress can be stopped between two nodes through ONNX Runtime's
//! terminate flag ([`Active`]): by its cancel token, its deadline ([`watchdog`]), the engine closing, or an
//! interactive request that needs the cores (a background run is then re-queued and started again, unless it was
//! about to end). While a background run goes, its threads run at a low OS priority ([`priority`]).

pub(crate) mod lane;
pub(crate) mod priority;
pub(crate) mod watchdog;

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::error::{Error, OrtResultExt, Result};

pub use lane::{LaneKind, lane_capacity, set_finish_nearly_done, set_lane_capacity};
pub use priority::{lower_background_priority, set_lower_background_priority};

/// How much a request matters to the user right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Priority {
    /// Someone is waiting on it (a tap, a camera frame, a chat answer on screen): started before anything else,
    /// and background runs in its lane stop for it (they are started again afterwards).
    Interactive,
    /// Started after interactive requests, before background ones; never stopped for others.
    #[default]
    Normal,
    /// Work nobody watches (indexing, prefetching): runs when nothing more urgent waits in its lane.
    Background,
}

/// A priority that can change while its request runs (a generation's stream moving to the background and back).
#[derive(Debug, Clone, Default)]
pub struct PriorityHandle(Arc<AtomicU8>);

impl PriorityHandle {
    pub fn new(priority: Priority) -> PriorityHandle {
        let handle = PriorityHandle::default();
        handle.set(priority);
        handle
    }

    pub fn set(&self, priority: Priority) {
        self.0.store(priority as u8, Ordering::Relaxed);
    }

    pub fn get(&self) -> Priority {
        match self.0.load(Ordering::Relaxed) {
            0 => Priority::Interactive,
            1 => Priority::Normal,
            _ => Priority::Background,
        }
    }
}

/// What one request asks of the scheduler. `Default`: normal priority, no deadline, not cancellable.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub priority: Priority,
    /// After this instant the request fails with [`Error::DeadlineExceeded`]: at once if it has not started, at the
    /// next node boundary if it runs. A result is never delivered late.
    pub deadline: Option<Instant>,
    /// Cancelling it fails the request with [`Error::Cancelled`]: at once if queued, at the next node if running.
    pub cancel: Option<CancelToken>,
}

impl RunOptions {
    pub fn new() -> RunOptions {
        RunOptions::default()
    }

    pub fn with_priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    pub fn with_deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// A deadline `timeout` from now.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.deadline = Instant::now().checked_add(timeout);
        self
    }

    pub fn with_cancel(mut self, cancel: CancelToken) -> Self {
        self.cancel = Some(cancel);
        self
    }

    /// The error a request gets when its deadline passed or it was cancelled, checked before any work.
    pub(crate) fn refusal(&self) -> Option<Error> {
        if self.cancel.as_ref().is_some_and(CancelToken::is_cancelled) {
            return Some(Error::Cancelled);
        }
        self.deadline.filter(|d| Instant::now() >= *d).map(|_| Error::DeadlineExceeded)
    }
}

/// Something a cancel token wakes: a run to terminate, a queue to re-check.
pub(crate) trait OnCancel: Send + Sync {
    fn cancelled(&self);
}

/// Cancels requests from any thread: the ones queued fail at once, the ones running stop at their next node (an
/// LLM generation: before its next step). One token may serve many requests; cancelling is permanent.
#[derive(Clone, Default)]
pub struct CancelToken(Arc<CancelInner>);

#[derive(Default)]
struct CancelInner {
    cancelled: AtomicBool,
    watchers: Mutex<Vec<Weak<dyn OnCancel>>>,
}

impl std::fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CancelToken").field("cancelled", &self.is_cancelled()).finish()
    }
}

impl CancelToken {
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    pub fn cancel(&self) {
        self.0.cancelled.store(true, Ordering::SeqCst);
        let watchers = std::mem::take(&mut *self.0.watchers.lock().unwrap_or_else(|e| e.into_inner()));
        for watcher in watchers.iter().filter_map(Weak::upgrade) {
            watcher.cancelled();
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.cancelled.load(Ordering::SeqCst)
    }

    /// Calls `watcher` when cancelled (at once if already), for as long as the watcher lives.
    pub(crate) fn watch(&self, watcher: Weak<dyn OnCancel>) {
        {
            let mut watchers = self.0.watchers.lock().unwrap_or_else(|e| e.into_inner());
            watchers.retain(|w| w.strong_count() > 0);
            watchers.push(watcher.clone());
        }
        // Checked after registering, so a cancel between the two is not lost.
        if self.is_cancelled()
            && let Some(w) = watcher.upgrade()
        {
            w.cancelled();
        }
    }
}

/// Why a run was stopped before its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Stop {
    Cancelled = 1,
    Deadline = 2,
    /// For an interactive request: run it again later.
    Preempted = 3,
    Closed = 4,
}

/// A run in progress that others may stop: ONNX Runtime's run options (whose terminate flag the run checks between
/// nodes) and the first reason it was stopped for. One per attempt: a terminate flag once set stays set.
pub(crate) struct Active {
    pub(crate) options: ort::session::RunOptions,
    stop: AtomicU8,
}

impl Active {
    pub(crate) fn new() -> Result<Arc<Active>> {
        let options = ort::session::RunOptions::new()
            .and_then(|o| o.with_tag(crate::logging::RUN_TAG))
            .or_internal("run options")?;
        Ok(Arc::new(Active { options, stop: AtomicU8::new(0) }))
    }

    /// Stops the run for `why`, unless it was already stopped for another reason.
    pub(crate) fn stop(&self, why: Stop) {
        if self.stop.compare_exchange(0, why as u8, Ordering::SeqCst, Ordering::SeqCst).is_ok()
            && let Err(e) = self.options.terminate()
        {
            log::warn!("could not stop a run ({why:?}): {e}");
        }
    }

    pub(crate) fn stopped(&self) -> Option<Stop> {
        match self.stop.load(Ordering::SeqCst) {
            1 => Some(Stop::Cancelled),
            2 => Some(Stop::Deadline),
            3 => Some(Stop::Preempted),
            4 => Some(Stop::Closed),
            _ => None,
        }
    }
}

impl OnCancel for Active {
    fn cancelled(&self) {
        self.stop(Stop::Cancelled);
    }
}

impl Stop {
    /// The caller's error for a run stopped this way (a preempted run is re-queued, not reported).
    pub(crate) fn error(self) -> Error {
        match self {
            Stop::Cancelled => Error::Cancelled,
            Stop::Deadline => Error::DeadlineExceeded,
            Stop::Closed => Error::EngineClosed,
            Stop::Preempted => Error::internal("a preempted run was reported instead of re-queued"),
        }
    }
}
