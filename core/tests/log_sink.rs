//! Its own test binary (its own process): the app's log sink replaces the platform's for the whole process.

mod common;

use std::sync::{Arc, Mutex};

use openautoglm::logging::{self, LogSink};
use openautoglm::{Engine, EngineConfig, Error, LogLevel, TensorRef};

#[derive(Default)]
struct Taken(Mutex<Vec<(LogLevel, String, String)>>);

impl LogSink for Taken {
    fn log(&self, level: LogLevel, target: &str, message: &str) {
        self.0.lock().unwrap().push((level, target.to_owned(), message.to_owned()));
    }
}

#[test]
fn a_sink_takes_the_records_at_the_level_in_force_and_none_gives_them_back() {
    let taken = Arc::new(Taken::default());
    logging::set_sink(Some(taken.clone())).unwrap();
    logging::set_level(LogLevel::Info);
    common::init();
    let records = std::mem::take(&mut *taken.0.lock().unwrap());
    assert!(
        records.iter().any(|(level, target, m)| *level == LogLevel::Info
            && target.starts_with("openautoglm")
            && m.contains("ONNX Runtime")),
        "the SDK's own record of the runtime it loaded: {records:?}"
    );

    // A failed run: ONNX Runtime's report arrives at debug, only when debug is in force.
    let engine = common::engine("matmul_dynamic");
    let bad = [1.0f32; 3];
    let fail = || engine.run(&[("x", TensorRef::new(&[1, 3], &bad))]);
    assert!(matches!(fail(), Err(Error::InvalidInput { .. }) | Err(Error::InferenceFailed { .. })));
    assert!(taken.0.lock().unwrap().iter().all(|(level, ..)| *level <= LogLevel::Info), "nothing below info");
    logging::set_level(LogLevel::Off);
    let _ = Engine::from_bytes(b"not a model", EngineConfig::default());
    assert!(taken.0.lock().unwrap().iter().all(|(level, ..)| *level <= LogLevel::Info));
    let before = taken.0.lock().unwrap().len();
    let _ = Engine::from_bytes(b"not a model", EngineConfig::default());
    assert_eq!(taken.0.lock().unwrap().len(), before, "off: nothing reaches the sink");

    // Back to the platform's sink: the app's sees nothing more.
    logging::set_level(LogLevel::Trace);
    logging::set_sink(None).unwrap();
    let _ = common::engine("matmul_dynamic");
    assert_eq!(taken.0.lock().unwrap().len(), before);
    logging::set_level(LogLevel::Warn);

    // A sink that panics loses its record, not the caller's thread.
    struct Panics;
    impl LogSink for Panics {
        fn log(&self, _: LogLevel, _: &str, _: &str) {
            panic!("the app's handler failed");
        }
    }
    logging::set_sink(Some(Arc::new(Panics))).unwrap();
    log::error!(target: "openautoglm::test", "one record");
    logging::set_sink(None).unwrap();
}
