//! Deadlines of running requests: one thread, asleep until the earliest deadline, that stops the runs whose deadline
//! passed.

use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::time::Instant;

use super::{Active, Stop};

struct Watchdog {
    due: Mutex<Vec<(Instant, Weak<Active>)>>,
    changed: Condvar,
}

fn watchdog() -> &'static Watchdog {
    static WATCHDOG: OnceLock<&'static Watchdog> = OnceLock::new();
    WATCHDOG.get_or_init(|| {
        let watchdog: &'static Watchdog =
            Box::leak(Box::new(Watchdog { due: Mutex::new(Vec::new()), changed: Condvar::new() }));
        let spawned = std::thread::Builder::new().name("openautoglm-deadlines".into()).spawn(move || watchdog.serve());
        if let Err(e) = spawned {
            // Without the thread a run still fails at its deadline, only after its end (never with a late result).
            log::error!("could not start the deadline thread: {e}");
        }
        watchdog
    })
}

/// Stops `run` with [`Stop::Deadline`] at `deadline` if it is still going then.
pub(crate) fn stop_at(deadline: Instant, run: &Arc<Active>) {
    let watchdog = watchdog();
    watchdog.due.lock().unwrap_or_else(|e| e.into_inner()).push((deadline, Arc::downgrade(run)));
    watchdog.changed.notify_one();
}

impl Watchdog {
    fn serve(&self) {
        let mut due = self.due.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let now = Instant::now();
            due.retain(|(deadline, run)| match run.upgrade() {
                Some(run) if *deadline <= now => {
                    run.stop(Stop::Deadline);
                    false
                }
                Some(_) => true,
                None => false,
            });
            due = match due.iter().map(|(deadline, _)| *deadline).min() {
                Some(next) => {
                    self.changed
                        .wait_timeout(due, next.saturating_duration_since(now))
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
                None => self.changed.wait(due).unwrap_or_else(|e| e.into_inner()),
            };
        }
    }
}
