//! Many requests on one process: concurrent runs on one engine, priorities, deadlines, cancellation and close, on a
//! real model (MiniLM) and a long MatMul chain that takes long enough to stop part-way.
//!
//! The lanes are process-wide, so these tests take turns (an interactive run in one would preempt another's).

mod common;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use openautoglm::{CancelToken, Engine, EngineConfig, Error, Priority, RunOptions, TensorRef};

fn one_at_a_time() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

const SIZE: usize = 384;

/// 400 MatMuls of 384x384 (`matmul_chain.onnx`): long enough (a few hundred ms) that a stop lands part-way.
fn slow_engine(config: EngineConfig) -> Engine {
    common::init();
    Engine::from_file(common::model("matmul_chain"), config).expect("chain loads")
}

fn slow_input() -> Vec<f32> {
    // Values that stay finite through the products: each row sums to 1/SIZE of itself per product.
    vec![1.0 / SIZE as f32; SIZE * SIZE]
}

fn run_slow(engine: &Engine, x: &[f32], options: &RunOptions) -> Result<Vec<f32>, Error> {
    let shape = [SIZE as i64, SIZE as i64];
    engine.run_with(&[("x", TensorRef::new(&shape, x))], options).map(|out| out[0].to_vec::<f32>().unwrap())
}

fn minilm(concurrency: i32) -> Engine {
    common::init();
    Engine::from_file(common::real_model("minilm-l6-int8"), EngineConfig::default().with_concurrency(concurrency))
        .expect("MiniLM loads")
}

fn minilm_run(engine: &Engine, tokens: &[i64]) -> Vec<u8> {
    let shape = [1, tokens.len() as i64];
    let mask = vec![1i64; tokens.len()];
    let types = vec![0i64; tokens.len()];
    let inputs: Vec<(&str, TensorRef<'_>)> = engine
        .info()
        .inputs
        .iter()
        .map(|i| match i.name.as_str() {
            "input_ids" => ("input_ids", TensorRef::new(&shape, tokens)),
            "attention_mask" => ("attention_mask", TensorRef::new(&shape, &mask)),
            _ => ("token_type_ids", TensorRef::new(&shape, &types)),
        })
        .collect();
    engine.run(&inputs).unwrap().iter().flat_map(|t| t.data.clone()).collect()
}

#[test]
fn concurrent_runs_are_bit_identical_to_serial_runs() {
    let _turn = one_at_a_time();
    let serial = minilm(1);
    let concurrent = Arc::new(minilm(2));
    let requests: Vec<Vec<i64>> =
        (0..12).map(|i| (0..8 + i).map(|t| 101 + ((t * 37 + i * 11) % 2000) as i64).collect()).collect();
    let expected: Vec<Vec<u8>> = requests.iter().map(|r| minilm_run(&serial, r)).collect();
    std::thread::scope(|scope| {
        for worker in 0..3 {
            let (concurrent, requests, expected) = (&concurrent, &requests, &expected);
            scope.spawn(move || {
                for round in 0..3 {
                    for (i, request) in requests.iter().enumerate().skip((worker + round) % 2) {
                        assert_eq!(&minilm_run(concurrent, request), &expected[i], "request {i}");
                    }
                }
            });
        }
    });
    assert_eq!(concurrent.warmup(1).unwrap().len(), 1, "warmup runs every session");
}

#[test]
fn concurrency_outside_its_range_is_refused() {
    common::init();
    for concurrency in [0, openautoglm::MAX_CONCURRENCY + 1] {
        let config = EngineConfig::default().with_concurrency(concurrency);
        match Engine::from_file(common::model("matmul_dynamic"), config) {
            Err(Error::InvalidConfig { reason }) => assert!(reason.contains("concurrency"), "{reason}"),
            other => panic!("concurrency {concurrency}: expected InvalidConfig, got {other:?}"),
        }
    }
}

#[test]
fn cancelling_a_running_inference_stops_it_and_leaves_the_engine_usable() {
    let _turn = one_at_a_time();
    let engine = slow_engine(EngineConfig::default());
    let x = slow_input();
    let started = Instant::now();
    let full = run_slow(&engine, &x, &RunOptions::default()).unwrap();
    log_elapsed("a whole run", started);
    let token = CancelToken::new();
    let options = RunOptions::new().with_cancel(token.clone());
    let started = Instant::now();
    let cancelled = std::thread::scope(|scope| {
        let run = scope.spawn(|| run_slow(&engine, &x, &options));
        std::thread::sleep(Duration::from_millis(5));
        token.cancel();
        run.join().unwrap()
    });
    assert_eq!(cancelled.unwrap_err(), Error::Cancelled);
    log_elapsed("cancelled run returned", started);
    // Stopped part-way by ONNX Runtime, not run to the end and then reported as cancelled.
    assert_eq!(engine.stopped_runs(), 1, "the cancel reached the running inference");
    // An already-cancelled token refuses at once, before any work; the engine still answers exactly.
    assert_eq!(run_slow(&engine, &x, &options).unwrap_err(), Error::Cancelled);
    assert_eq!(engine.stopped_runs(), 1, "a refused request never ran");
    assert_eq!(run_slow(&engine, &x, &RunOptions::default()).unwrap(), full);
}

#[test]
fn a_deadline_fails_queued_and_running_requests_and_never_delivers_late() {
    let _turn = one_at_a_time();
    let engine = slow_engine(EngineConfig::default());
    let x = slow_input();
    let full = run_slow(&engine, &x, &RunOptions::default()).unwrap();
    // Already past: refused before any work.
    let past = RunOptions::new().with_deadline(Instant::now());
    assert_eq!(run_slow(&engine, &x, &past).unwrap_err(), Error::DeadlineExceeded);
    assert_eq!(engine.stopped_runs(), 0, "a request past its deadline never runs");
    // Reached while running: stopped at a node boundary by ONNX Runtime, not run to the end and then refused.
    let soon = RunOptions::new().with_timeout(Duration::from_millis(3));
    assert_eq!(run_slow(&engine, &x, &soon).unwrap_err(), Error::DeadlineExceeded);
    assert_eq!(engine.stopped_runs(), 1, "the deadline stopped the running inference");
    // Reached while queued behind another run.
    std::thread::scope(|scope| {
        let first = scope.spawn(|| run_slow(&engine, &x, &RunOptions::default()));
        std::thread::sleep(Duration::from_millis(10));
        let queued = RunOptions::new().with_timeout(Duration::from_millis(5));
        assert_eq!(run_slow(&engine, &x, &queued).unwrap_err(), Error::DeadlineExceeded);
        assert_eq!(first.join().unwrap().unwrap(), full);
    });
    assert_eq!(engine.stopped_runs(), 1, "a request that expired in the queue never ran");
    // A generous deadline changes nothing.
    let generous = RunOptions::new().with_timeout(Duration::from_secs(600));
    assert_eq!(run_slow(&engine, &x, &generous).unwrap(), full);
}

#[test]
fn a_queued_request_is_cancelled_at_once() {
    let _turn = one_at_a_time();
    let engine = slow_engine(EngineConfig::default());
    let x = slow_input();
    std::thread::scope(|scope| {
        let first = scope.spawn(|| run_slow(&engine, &x, &RunOptions::default()));
        std::thread::sleep(Duration::from_millis(10));
        let token = CancelToken::new();
        let options = RunOptions::new().with_cancel(token.clone());
        let (engine, x) = (&engine, &x);
        let queued = scope.spawn(move || run_slow(engine, x, &options));
        std::thread::sleep(Duration::from_millis(10));
        token.cancel();
        assert_eq!(queued.join().unwrap().unwrap_err(), Error::Cancelled);
        assert!(first.join().unwrap().is_ok(), "the running request was not touched");
    });
    assert_eq!(engine.stopped_runs(), 0, "the cancelled request never ran, the other ran to the end");
}

#[test]
fn an_interactive_run_stops_background_runs_which_then_finish_exactly() {
    let _turn = one_at_a_time();
    let background = slow_engine(EngineConfig::default());
    let interactive = minilm(1);
    let x = slow_input();
    let expected = run_slow(&background, &x, &RunOptions::default()).unwrap();
    let tokens: Vec<i64> = (0..16).map(|t| 1000 + t).collect();
    let answer = minilm_run(&interactive, &tokens);
    std::thread::scope(|scope| {
        let bg = scope.spawn(|| {
            run_slow(&background, &x, &RunOptions::new().with_priority(Priority::Background))
                .map(|y| (y, Instant::now()))
        });
        std::thread::sleep(Duration::from_millis(10));
        let shape = [1, tokens.len() as i64];
        let ones = vec![1i64; tokens.len()];
        let zeros = vec![0i64; tokens.len()];
        let inputs = [
            ("input_ids", TensorRef::new(&shape, &tokens)),
            ("attention_mask", TensorRef::new(&shape, &ones)),
            ("token_type_ids", TensorRef::new(&shape, &zeros)),
        ];
        let out = interactive.run_with(&inputs, &RunOptions::new().with_priority(Priority::Interactive)).unwrap();
        let interactive_done = Instant::now();
        assert_eq!(out.iter().flat_map(|t| t.data.clone()).collect::<Vec<u8>>(), answer);
        let (y, background_done) = bg.join().unwrap().expect("the background run is re-queued, not failed");
        assert_eq!(y, expected, "a restarted run gives the same answer");
        assert!(background_done > interactive_done, "the background run finished after the interactive one");
    });
    assert!(background.preempted_runs() >= 1, "the background run was stopped for the interactive one");
}

#[test]
fn queued_requests_start_in_order_of_priority() {
    let _turn = one_at_a_time();
    let engine = slow_engine(EngineConfig::default());
    let x = slow_input();
    let finished = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        // Normal, so nothing preempts it: the others queue behind it on the engine's one session.
        scope.spawn(|| run_slow(&engine, &x, &RunOptions::default()).unwrap());
        std::thread::sleep(Duration::from_millis(10));
        for priority in [Priority::Background, Priority::Normal, Priority::Interactive] {
            let (engine, x, finished) = (&engine, &x, &finished);
            scope.spawn(move || {
                run_slow(engine, x, &RunOptions::new().with_priority(priority)).unwrap();
                finished.lock().unwrap().push(priority);
            });
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    assert_eq!(*finished.lock().unwrap(), [Priority::Interactive, Priority::Normal, Priority::Background]);
}

#[test]
fn close_stops_running_and_queued_requests_with_engine_closed() {
    let _turn = one_at_a_time();
    let engine = slow_engine(EngineConfig::default());
    let x = slow_input();
    std::thread::scope(|scope| {
        let running = scope.spawn(|| run_slow(&engine, &x, &RunOptions::default()));
        std::thread::sleep(Duration::from_millis(10));
        let queued = scope.spawn(|| run_slow(&engine, &x, &RunOptions::default()));
        std::thread::sleep(Duration::from_millis(10));
        engine.close();
        assert_eq!(running.join().unwrap().unwrap_err(), Error::EngineClosed);
        assert_eq!(queued.join().unwrap().unwrap_err(), Error::EngineClosed);
    });
    assert_eq!(run_slow(&engine, &x, &RunOptions::default()).unwrap_err(), Error::EngineClosed);
}

fn log_elapsed(what: &str, started: Instant) {
    eprintln!("{what} after {:.1} ms", started.elapsed().as_secs_f64() * 1e3);
}
