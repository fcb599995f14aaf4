//! Cascades on real engines: the gate routes, the counters count, the request's options reach both engines, and bad
//! set-ups or gates are typed errors that leave the cascade usable.

mod common;

use std::time::{Duration, Instant};

use openautoglm::cascade::{Cascade, CascadePath, Confidence, Gate};
use openautoglm::{Error, RunOptions, TensorRef};

/// Identity engines: the "scores" the gate reads are the input itself, two rows of three.
fn cascade(gate: Gate) -> Cascade {
    Cascade::new(common::engine("identity_f32"), common::engine("identity_f32"), gate).unwrap()
}

const SURE: [f32; 6] = [0.9, 0.05, 0.05, 0.8, 0.1, 0.1];
const UNSURE: [f32; 6] = [0.9, 0.05, 0.05, 0.4, 0.35, 0.25];

#[test]
fn the_gate_routes_and_the_counters_count() {
    common::init();
    let c = cascade(Gate::builtin(Confidence::TopProbability, "y", 0.7));
    let sure = c.run(&[("x", TensorRef::new(&[2, 3], &SURE))]).unwrap();
    assert_eq!(sure.path, CascadePath::Fast);
    assert!((sure.confidence.unwrap() - 0.8).abs() < 1e-6);
    let unsure = c.run(&[("x", TensorRef::new(&[2, 3], &UNSURE))]).unwrap();
    assert_eq!(unsure.path, CascadePath::Main);
    assert_eq!(unsure.outputs[0].to_vec::<f32>().unwrap(), UNSURE);
    let stats = c.stats();
    assert_eq!((stats.inputs, stats.escalations), (2, 1));
    assert!(stats.fast_ms > 0.0 && stats.main_ms > 0.0, "{stats:?}");
    assert!((stats.escalation_rate() - 0.5).abs() < 1e-9);
}

#[test]
fn a_custom_gate_decides_and_a_panicking_one_is_an_error() {
    common::init();
    let c = cascade(Gate::custom(|outputs| outputs[0].to_vec::<f32>().unwrap()[0] < 0.5));
    assert_eq!(c.run(&[("x", TensorRef::new(&[2, 3], &SURE))]).unwrap().path, CascadePath::Fast);
    let low = [0.1f32; 6];
    let result = c.run(&[("x", TensorRef::new(&[2, 3], &low))]).unwrap();
    assert_eq!((result.path, result.confidence), (CascadePath::Main, None));

    let panicking = cascade(Gate::custom(|_| panic!("app bug")));
    let err = panicking.run(&[("x", TensorRef::new(&[2, 3], &SURE))]).unwrap_err();
    assert!(matches!(&err, Error::InvalidConfig { reason } if reason.contains("panicked")), "{err}");
    // Still usable afterwards: its engines are fine.
    assert!(panicking.fast().run(&[("x", TensorRef::new(&[2, 3], &SURE))]).is_ok());
}

#[test]
fn the_request_options_reach_the_engines() {
    common::init();
    let c = cascade(Gate::builtin(Confidence::Margin, "y", 0.5));
    let expired = RunOptions::new().with_deadline(Instant::now() - Duration::from_millis(1));
    let err = c.run_with(&[("x", TensorRef::new(&[2, 3], &SURE))], &expired).unwrap_err();
    assert!(matches!(err, Error::DeadlineExceeded), "{err}");
    let cancel = openautoglm::CancelToken::new();
    cancel.cancel();
    let err = c.run_with(&[("x", TensorRef::new(&[2, 3], &SURE))], &RunOptions::new().with_cancel(cancel)).unwrap_err();
    assert!(matches!(err, Error::Cancelled), "{err}");
    // Bad input is the engines' typed error; the cascade goes on.
    assert!(matches!(c.run(&[("x", TensorRef::new(&[3, 3], &[0f32; 9]))]), Err(Error::InvalidInput { .. })));
    assert!(c.run(&[("x", TensorRef::new(&[2, 3], &SURE))]).is_ok());
}

#[test]
fn bad_set_ups_are_invalid_configs() {
    common::init();
    let mismatched = Cascade::new(common::engine("identity_f32"), common::engine("multi_io"), Gate::custom(|_| false));
    assert!(matches!(mismatched, Err(Error::InvalidConfig { reason }) if reason.contains("same inputs")));
    let missing = Cascade::new(
        common::engine("identity_f32"),
        common::engine("identity_f32"),
        Gate::builtin(Confidence::Entropy, "nope", 0.5),
    );
    assert!(matches!(missing, Err(Error::InvalidConfig { reason }) if reason.contains("`nope`")));
    let not_float = Cascade::new(
        common::engine("identity_i64"),
        common::engine("identity_i64"),
        Gate::builtin(Confidence::TopProbability, "y", 0.5),
    );
    assert!(matches!(not_float, Err(Error::InvalidConfig { reason }) if reason.contains("not a float")));
    let nan = Cascade::new(
        common::engine("identity_f32"),
        common::engine("identity_f32"),
        Gate::builtin(Confidence::TopProbability, "y", f32::NAN),
    );
    assert!(matches!(nan, Err(Error::InvalidConfig { .. })));
}

#[test]
fn closing_is_engine_closed_for_the_cascade_and_leaves_the_apps_engines_open() {
    common::init();
    let (fast, main) =
        (std::sync::Arc::new(common::engine("identity_f32")), std::sync::Arc::new(common::engine("identity_f32")));
    let c = Cascade::new(fast.clone(), main.clone(), Gate::builtin(Confidence::TopProbability, "y", 0.7)).unwrap();
    assert!(c.run(&[("x", TensorRef::new(&[2, 3], &SURE))]).is_ok());
    c.close();
    c.close();
    assert!(c.is_closed());
    assert!(matches!(c.run(&[("x", TensorRef::new(&[2, 3], &SURE))]), Err(Error::EngineClosed)));
    assert_eq!(c.stats().inputs, 1, "counters survive close");
    assert!(!fast.is_closed() && !main.is_closed(), "the app's engines stay open");
}
