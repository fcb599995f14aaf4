//! Background work at a low OS priority: while a background run goes, the thread that called it and the worker
//! threads ONNX Runtime runs its operators on are scheduled below the app's other threads, and are put back
//! afterwards. An interactive run then gets the cores even before the background run sees its terminate flag.
//!
//! - Linux and Android: each thread's nice value (`setpriority` on its thread id), +10 as Android's
//!   `THREAD_PRIORITY_BACKGROUND`. Android apps may move their own threads anywhere in -20..19 and back (init gives
//!   every process RLIMIT_NICE 40, and ART relies on threads raising their priority again); a Linux desktop user
//!   without CAP_SYS_NICE may lower a thread's priority but not raise it back, so there nothing is lowered.
//! - Apple platforms: the calling thread's QoS class drops to utility; threads ONNX Runtime created cannot be given
//!   another thread's QoS, so they keep theirs.
//! - Elsewhere: nothing.
//!
//! The worker threads are known because the engine creates them itself, through ONNX Runtime's custom thread
//! creation ([`SpawnedThreads`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// How much lower a background run's threads are scheduled: Android's `THREAD_PRIORITY_BACKGROUND`.
#[cfg(any(target_os = "linux", target_os = "android"))]
const BACKGROUND_NICE: i32 = 10;

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Whether background runs lower their threads' OS priority (default: on, where the platform allows it).
pub fn set_lower_background_priority(enabled: bool) {
    ENABLED.store(enabled, Ordering::Relaxed);
}

pub fn lower_background_priority() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The OS threads ONNX Runtime's thread pools of one set of sessions run on (an engine slot's).
#[derive(Default)]
pub(crate) struct Workers {
    #[cfg_attr(not(any(target_os = "linux", target_os = "android")), allow(dead_code))]
    tids: Mutex<Vec<i32>>,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers").finish_non_exhaustive()
    }
}

/// ONNX Runtime's thread creation for sessions: plain threads that record their ids in [`Workers`].
pub(crate) struct SpawnedThreads(pub(crate) Arc<Workers>);

impl ort::environment::ThreadManager for SpawnedThreads {
    type Thread = std::thread::JoinHandle<()>;

    fn create(&self, work: impl FnOnce() + Send + 'static) -> ort::Result<Self::Thread> {
        let workers = Arc::clone(&self.0);
        std::thread::Builder::new()
            .name("openautoglm-ort".into())
            .spawn(move || {
                let tid = current_tid();
                if let Some(tid) = tid {
                    workers.tids.lock().unwrap_or_else(|e| e.into_inner()).push(tid);
                }
                work();
                if let Some(tid) = tid {
                    workers.tids.lock().unwrap_or_else(|e| e.into_inner()).retain(|t| *t != tid);
                }
            })
            .map_err(|e| ort::Error::new(format!("cannot start a worker thread: {e}")))
    }

    fn join(thread: Self::Thread) -> ort::Result<()> {
        thread.join().map_err(|_| ort::Error::new("a worker thread panicked"))
    }
}

/// Threads lowered for one background run; dropping it puts them back.
#[must_use]
pub(crate) struct Lowered {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    restore: Vec<(i32, i32)>,
    #[cfg(target_vendor = "apple")]
    qos: Option<(libc::qos_class_t, libc::c_int)>,
}

/// Lowers the calling thread and `workers` for a background run, when enabled and undoable here.
pub(crate) fn lower(workers: &Workers) -> Option<Lowered> {
    if !lower_background_priority() {
        return None;
    }
    platform::lower(workers)
}

fn current_tid() -> Option<i32> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // SAFETY: gettid has no preconditions.
        Some(unsafe { libc::gettid() })
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    None
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod platform {
    use super::{BACKGROUND_NICE, Lowered, Workers, current_tid};
    use std::sync::OnceLock;

    /// Whether a thread's nice value can be raised back after lowering it: as root (CAP_SYS_NICE), or where
    /// RLIMIT_NICE allows the way back (Android apps: 40, every value).
    fn can_restore() -> bool {
        static CAN: OnceLock<bool> = OnceLock::new();
        *CAN.get_or_init(|| {
            // SAFETY: geteuid and getrlimit only read process state into the struct given.
            let root = unsafe { libc::geteuid() } == 0;
            let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            let limited = unsafe { libc::getrlimit(libc::RLIMIT_NICE, &mut limit) } == 0;
            // The lowest nice value reachable without privilege is 20 - rlim_cur; threads start at 0.
            let can = root || (limited && limit.rlim_cur >= 20);
            if !can {
                log::info!(
                    "background runs keep their threads' priority: this process may not raise a thread's \
                     priority back (RLIMIT_NICE {}, not root)",
                    limit.rlim_cur
                );
            }
            can
        })
    }

    fn errno() -> *mut libc::c_int {
        // SAFETY: both return the calling thread's errno slot.
        #[cfg(target_os = "android")]
        return unsafe { libc::__errno() };
        #[cfg(target_os = "linux")]
        return unsafe { libc::__errno_location() };
    }

    fn nice_of(tid: i32) -> Option<i32> {
        // getpriority returns -1 both as a value and as an error: errno tells them apart.
        // SAFETY: errno is thread-local; getpriority reads a thread's scheduling value.
        unsafe {
            *errno() = 0;
            let value = libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t);
            (*errno() == 0).then_some(value)
        }
    }

    fn set_nice(tid: i32, nice: i32) -> bool {
        // SAFETY: setpriority changes one thread's nice value (Linux: per thread when given a thread id).
        unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) == 0 }
    }

    pub(super) fn lower(workers: &Workers) -> Option<Lowered> {
        if !can_restore() {
            return None;
        }
        let mut tids = workers.tids.lock().unwrap_or_else(|e| e.into_inner()).clone();
        tids.extend(current_tid());
        let mut restore = Vec::with_capacity(tids.len());
        for tid in tids {
            if let Some(nice) = nice_of(tid)
                && nice < BACKGROUND_NICE
                && set_nice(tid, BACKGROUND_NICE)
            {
                restore.push((tid, nice));
            }
        }
        Some(Lowered { restore })
    }

    impl Drop for Lowered {
        fn drop(&mut self) {
            for (tid, nice) in self.restore.drain(..) {
                if !set_nice(tid, nice) {
                    log::warn!("could not restore a thread's priority after a background run");
                }
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn a_background_run_lowers_its_threads_and_puts_them_back() {
            if !can_restore() {
                return assert!(lower(&Workers::default()).is_none());
            }
            let tid = current_tid().unwrap();
            let before = nice_of(tid).unwrap();
            let lowered = lower(&Workers::default()).expect("lowered");
            assert_eq!(nice_of(tid), Some(BACKGROUND_NICE));
            drop(lowered);
            assert_eq!(nice_of(tid), Some(before));
        }
    }
}

#[cfg(target_vendor = "apple")]
mod platform {
    use super::{Lowered, Workers};

    pub(super) fn lower(_workers: &Workers) -> Option<Lowered> {
        let mut class: libc::qos_class_t = libc::qos_class_t::QOS_CLASS_UNSPECIFIED;
        let mut relative: libc::c_int = 0;
        // SAFETY: reads and sets the calling thread's own QoS class.
        unsafe {
            if libc::pthread_get_qos_class_np(libc::pthread_self(), &mut class, &mut relative) != 0 {
                return None;
            }
            if libc::pthread_set_qos_class_self_np(libc::qos_class_t::QOS_CLASS_UTILITY, 0) != 0 {
                return None;
            }
        }
        Some(Lowered { qos: Some((class, relative)) })
    }

    impl Drop for Lowered {
        fn drop(&mut self) {
            if let Some((class, relative)) = self.qos.take() {
                // SAFETY: restores the calling thread's own QoS class (a Lowered is dropped on the thread that
                // made it: it lives for one run inside one call).
                unsafe { libc::pthread_set_qos_class_self_np(class, relative) };
            }
        }
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_vendor = "apple")))]
mod platform {
    use super::{Lowered, Workers};

    pub(super) fn lower(_workers: &Workers) -> Option<Lowered> {
        None
    }
}
