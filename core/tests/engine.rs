//! Engine behaviour: introspection, dynamic shapes, many inputs and outputs, configuration, threads, close.

mod common;

use std::sync::Arc;

use openautoglm::{
    Accelerator, CoreMlComputeUnits, CoreMlModelFormat, Dim, ElementType, Engine, EngineConfig, Error, OptimizeLevel,
    Runtime, TensorRef,
};

#[test]
fn engine_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Engine>();
}

#[test]
fn introspection_keeps_symbolic_dims_and_metadata() {
    let engine = common::engine("matmul_dynamic");
    let info = engine.info();
    assert_eq!(info.inputs.len(), 1);
    assert_eq!(info.inputs[0].name, "x");
    assert_eq!(info.inputs[0].element_type, Some(ElementType::F32));
    assert_eq!(info.inputs[0].shape, vec![Dim::Symbolic { name: "batch".into() }, Dim::Fixed { size: 4 }]);
    assert_eq!(info.outputs[0].shape, vec![Dim::Symbolic { name: "batch".into() }, Dim::Fixed { size: 3 }]);
    let meta = &info.metadata;
    assert_eq!(meta.producer.as_deref(), Some("openautoglm-fixtures"));
    assert_eq!(meta.version, Some(7));
    assert_eq!(meta.domain.as_deref(), Some("ai.openautoglm.tests"));
    assert_eq!(meta.description.as_deref(), Some("y = x @ W + b"));
    assert_eq!(meta.custom.get("author").map(String::as_str), Some("openautoglm tests"));
    assert_eq!(meta.custom.get("purpose").map(String::as_str), Some("introspection"));
}

#[test]
fn dynamic_batch_gives_numpy_values() {
    let engine = common::engine("matmul_dynamic");
    for batch in [1usize, 2, 7] {
        let x: Vec<f32> = (0..batch * 4).map(|i| i as f32 * 0.5 - 1.0).collect();
        let out = engine.run(&[("x", TensorRef::new(&[batch as i64, 4], &x))]).unwrap();
        assert_eq!(out[0].shape, vec![batch as i64, 3]);
        common::assert_close(&out[0].to_vec::<f32>().unwrap(), &common::expected_matmul(&x), 1e-5);
    }
}

#[test]
fn multiple_inputs_and_outputs_in_model_order() {
    let engine = common::engine("multi_io");
    let a = [-1.0f32, 0.5, 2.0];
    let b = [1i64, 2, 3];
    // Inputs given in another order than the model's.
    let out = engine.run(&[("b", TensorRef::new(&[3], &b)), ("a", TensorRef::new(&[3], &a))]).unwrap();
    let names: Vec<&str> = out.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["sum", "positive", "total"]);
    assert_eq!(out[0].to_vec::<f32>().unwrap(), [0.0, 2.5, 5.0]);
    assert_eq!(out[1].to_bools().unwrap(), [false, true, true]);
    assert_eq!(out[2].to_vec::<i64>().unwrap(), [6]);
    assert!(out[2].shape.is_empty(), "a scalar output has an empty shape");
}

#[test]
fn from_bytes_matches_from_file() {
    common::init();
    let bytes = std::fs::read(common::model("matmul_dynamic")).unwrap();
    let from_bytes = Engine::from_bytes(&bytes, EngineConfig::default()).unwrap();
    drop(bytes);
    let x = [1.0f32, 2.0, 3.0, 4.0];
    let a = from_bytes.run(&[("x", TensorRef::new(&[1, 4], &x))]).unwrap();
    let b = common::engine("matmul_dynamic").run(&[("x", TensorRef::new(&[1, 4], &x))]).unwrap();
    assert_eq!(a, b);
}

#[test]
fn every_optimize_level_and_thread_count_gives_the_same_answer() {
    common::init();
    let x = [0.25f32, -1.0, 2.0, 8.0];
    let want = common::expected_matmul(&x);
    for level in [OptimizeLevel::O0, OptimizeLevel::O1, OptimizeLevel::O2, OptimizeLevel::O3] {
        for threads in [0, 1, 2] {
            let config = EngineConfig::default()
                .with_optimize_level(level)
                .with_threads(threads)
                .with_accelerators(vec![Accelerator::Cpu]);
            let engine = Engine::from_file(common::model("matmul_dynamic"), config.clone()).unwrap();
            assert_eq!(engine.config(), &config);
            let out = engine.run(&[("x", TensorRef::new(&[1, 4], &x))]).unwrap();
            common::assert_close(&out[0].to_vec::<f32>().unwrap(), &want, 1e-5);
        }
    }
}

#[test]
fn empty_accelerator_list_means_cpu() {
    common::init();
    let engine =
        Engine::from_file(common::model("matmul_dynamic"), EngineConfig::default().with_accelerators(vec![])).unwrap();
    assert!(engine.run(&[("x", TensorRef::new(&[1, 4], &[0f32; 4]))]).is_ok());
}

#[test]
fn many_threads_share_one_engine() {
    let engine = Arc::new(common::engine("matmul_dynamic"));
    std::thread::scope(|scope| {
        for t in 0..8 {
            let engine = Arc::clone(&engine);
            scope.spawn(move || {
                for i in 0..25 {
                    let x = [t as f32, i as f32, 1.0, -1.0];
                    let out = engine.run(&[("x", TensorRef::new(&[1, 4], &x))]).unwrap();
                    common::assert_close(&out[0].to_vec::<f32>().unwrap(), &common::expected_matmul(&x), 1e-5);
                }
            });
        }
    });
}

#[test]
fn closed_engine_gives_engine_closed() {
    let engine = common::engine("matmul_dynamic");
    assert!(!engine.is_closed());
    engine.close();
    assert!(engine.is_closed());
    let err = engine.run(&[("x", TensorRef::new(&[1, 4], &[0f32; 4]))]).unwrap_err();
    assert_eq!(err, Error::EngineClosed);
    // Introspection stays available after close.
    assert_eq!(engine.info().inputs[0].name, "x");
}

#[test]
fn close_twice_is_harmless() {
    let engine = common::engine("matmul_dynamic");
    engine.close();
    engine.close();
    assert!(engine.is_closed());
}

#[test]
fn close_while_other_threads_run_gives_results_or_engine_closed() {
    let engine = Arc::new(common::engine("matmul_dynamic"));
    std::thread::scope(|scope| {
        for _ in 0..4 {
            let engine = Arc::clone(&engine);
            scope.spawn(move || {
                for _ in 0..200 {
                    match engine.run(&[("x", TensorRef::new(&[1, 4], &[1f32; 4]))]) {
                        Ok(out) => assert_eq!(out[0].shape, vec![1, 3]),
                        Err(e) => assert_eq!(e, Error::EngineClosed),
                    }
                }
            });
        }
        engine.close();
    });
    assert!(engine.is_closed());
}

#[test]
fn runtime_reports_its_version_and_path() {
    common::init();
    let info = Runtime::info().expect("loaded");
    assert!(info.ort_version.starts_with("1."), "{}", info.ort_version);
    assert!(info.library_path.ends_with(".so") || info.library_path.contains("onnxruntime"));
    // Asking again for the same library is fine; asking for a missing one is an error naming it.
    assert_eq!(Runtime::init(Some(&common::ort_path())).unwrap(), info);
    let missing = std::path::Path::new("/no/such/libonnxruntime.so");
    match Runtime::init(Some(missing)) {
        Err(Error::RuntimeUnavailable { path, .. }) => {
            assert_eq!(path, "/no/such/libonnxruntime.so")
        }
        other => panic!("expected RuntimeUnavailable, got {other:?}"),
    }
}

#[test]
fn a_second_different_runtime_is_refused() {
    common::init();
    // Any existing file that is not the loaded library: the process cannot switch runtimes.
    let other = common::model("matmul_dynamic");
    assert!(matches!(Runtime::init(Some(&other)), Err(Error::InvalidConfig { .. })));
}

#[test]
fn profile_once_reports_the_provider_of_every_node() {
    common::init();
    let x = [1.0f32, 2.0, 3.0, 4.0];
    let placement = Engine::profile_once(
        common::model("matmul_dynamic"),
        EngineConfig::default(),
        &[("x", TensorRef::new(&[1, 4], &x))],
    )
    .expect("profile");
    assert_eq!(placement.providers.len(), 1, "{placement:?}");
    assert_eq!(placement.providers[0].provider, "CPUExecutionProvider");
    assert!(placement.providers[0].nodes >= 1);
    assert_eq!(placement.providers[0].partitions, 1);
    assert!(placement.warnings.is_empty());
    // Bad inputs are still typed errors on the profiling path.
    let err = Engine::profile_once(common::model("matmul_dynamic"), EngineConfig::default(), &[]).unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }));
}

#[test]
fn warmup_runs_zero_inputs_of_the_declared_shapes() {
    let engine = common::engine("matmul_dynamic");
    let times = engine.warmup(3).unwrap();
    assert_eq!(times.len(), 3);
    assert!(times.iter().all(|t| *t >= 0.0));
    assert!(engine.warmup(0).unwrap().is_empty());
    // Several inputs of different types, and a real model with i64 token inputs.
    assert_eq!(common::engine("multi_io").warmup(1).unwrap().len(), 1);
    let minilm = Engine::from_file(common::real_model("minilm-l6-int8"), EngineConfig::default()).unwrap();
    assert_eq!(minilm.warmup(2).unwrap().len(), 2);
    engine.close();
    assert_eq!(engine.warmup(1).unwrap_err(), Error::EngineClosed);
}

#[test]
fn inter_op_threads_and_spinning_give_the_same_answer() {
    common::init();
    let x = [0.5f32, 1.5, -2.0, 3.0];
    for spinning in [true, false] {
        let config = EngineConfig::default().with_threads(1).with_inter_op_threads(2).with_spinning(spinning);
        let engine = Engine::from_file(common::model("matmul_dynamic"), config).unwrap();
        let out = engine.run(&[("x", TensorRef::new(&[1, 4], &x))]).unwrap();
        common::assert_close(&out[0].to_vec::<f32>().unwrap(), &common::expected_matmul(&x), 1e-5);
    }
}

#[test]
fn unavailable_accelerators_are_skipped_with_a_reason_and_the_cpu_runs() {
    common::init();
    let accelerators = vec![
        Accelerator::Nnapi { fp16: true, nchw: false, cpu_disabled: false, cpu_only: false },
        Accelerator::CoreMl {
            compute_units: CoreMlComputeUnits::CpuAndNeuralEngine,
            model_format: CoreMlModelFormat::MlProgram,
            static_shapes: true,
            subgraphs: false,
            cache_dir: Some(std::env::temp_dir().display().to_string()),
        },
        Accelerator::Xnnpack { threads: 0 },
        Accelerator::Cpu,
    ];
    let engine =
        Engine::from_file(common::model("matmul_dynamic"), EngineConfig::default().with_accelerators(accelerators))
            .unwrap();
    let report = engine.accelerators();
    assert_eq!(report.active, ["CPUExecutionProvider"]);
    let skipped: Vec<&str> = report.skipped.iter().map(|s| s.provider.as_str()).collect();
    assert_eq!(skipped, ["NnapiExecutionProvider", "CoreMLExecutionProvider", "XnnpackExecutionProvider"]);
    assert!(report.skipped.iter().all(|s| s.reason.contains("not in this ONNX Runtime build")), "{report:?}");
    let x = [1.0f32, 2.0, 3.0, 4.0];
    let out = engine.run(&[("x", TensorRef::new(&[1, 4], &x))]).unwrap();
    common::assert_close(&out[0].to_vec::<f32>().unwrap(), &common::expected_matmul(&x), 1e-5);
}

#[test]
fn auto_resolves_to_this_platforms_list_and_strict_mode_does_not_refuse_its_choices() {
    common::init();
    for strict in [false, true] {
        let config = EngineConfig::default().with_accelerators(vec![Accelerator::Auto]).with_strict(strict);
        let engine = Engine::from_file(common::model("matmul_dynamic"), config).unwrap();
        let report = engine.accelerators();
        // On Linux Auto is the CPU alone; what it resolved to is reported, never "auto" or NNAPI.
        assert_eq!(report.active.last().map(String::as_str), Some("CPUExecutionProvider"));
        let tried: Vec<&str> =
            report.active.iter().chain(report.skipped.iter().map(|s| &s.provider)).map(String::as_str).collect();
        assert!(!tried.iter().any(|p| *p == "auto" || *p == "NnapiExecutionProvider"), "{report:?}");
        let x = [0.5f32, -1.0, 2.0, 4.0];
        let y = engine.run(&[("x", TensorRef::new(&[1, 4], &x))]).unwrap();
        common::assert_close(&y[0].to_vec::<f32>().unwrap(), &common::expected_matmul(&x), 1e-5);
    }
}

#[test]
fn strict_mode_refuses_an_unavailable_accelerator_and_allows_the_cpu() {
    common::init();
    for accelerator in [
        Accelerator::Xnnpack { threads: 2 },
        Accelerator::Nnapi { fp16: false, nchw: true, cpu_disabled: true, cpu_only: false },
    ] {
        let name = accelerator.provider_name().to_owned();
        let config = EngineConfig::default().with_accelerators(vec![accelerator]).with_strict(true);
        match Engine::from_file(common::model("matmul_dynamic"), config) {
            Err(Error::InvalidConfig { reason }) => {
                assert!(reason.contains(&name) && reason.contains("strict"), "{reason}")
            }
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
    }
    let cpu_only = EngineConfig::default().with_strict(true);
    assert!(Engine::from_file(common::model("matmul_dynamic"), cpu_only).is_ok());
}

#[test]
fn accelerator_options_map_to_onnx_runtime_providers() {
    use openautoglm::Accelerator as A;
    let coreml = A::CoreMl {
        compute_units: CoreMlComputeUnits::All,
        model_format: CoreMlModelFormat::NeuralNetwork,
        static_shapes: false,
        subgraphs: true,
        cache_dir: None,
    };
    let cases = [
        (A::Cpu, "CPUExecutionProvider"),
        (A::Xnnpack { threads: 4 }, "XnnpackExecutionProvider"),
        (A::Nnapi { fp16: true, nchw: true, cpu_disabled: true, cpu_only: false }, "NnapiExecutionProvider"),
        (coreml, "CoreMLExecutionProvider"),
    ];
    for (accelerator, provider) in cases {
        assert_eq!(accelerator.provider_name(), provider);
    }
}

#[test]
fn warmup_takes_the_sizes_or_the_inputs_the_app_will_use() {
    let engine = common::engine("matmul_dynamic");
    assert_eq!(engine.warmup_dims(&[("batch", 3)], 2).unwrap().len(), 2);
    let x = [1.0f32; 8];
    assert_eq!(engine.warmup_with(&[("x", TensorRef::new(&[2, 4], &x))], 1).unwrap().len(), 1);
    match engine.warmup_dims(&[("time", 3)], 1) {
        Err(Error::InvalidConfig { reason }) => {
            assert!(reason.contains("`time`") && reason.contains("batch"), "{reason}")
        }
        other => panic!("expected InvalidConfig, got {other:?}"),
    }
    assert!(matches!(engine.warmup_with(&[], 1), Err(Error::InvalidInput { .. })));

    // A model that cannot run with 1 for its dynamic dims says what to pass instead, and warms up with either.
    let pairs = common::engine("pairs");
    let err = pairs.warmup(1).unwrap_err();
    assert!(
        err.to_string().contains("warm up with the sizes the app uses") && err.to_string().contains("\"n\""),
        "{err}"
    );
    assert_eq!(pairs.warmup_dims(&[("n", 64)], 1).unwrap().len(), 1);
    assert_eq!(pairs.warmup_with(&[("x", TensorRef::new(&[4], &[0f32; 4]))], 1).unwrap().len(), 1);
    engine.close();
    assert_eq!(engine.warmup_dims(&[("batch", 3)], 1).unwrap_err(), Error::EngineClosed);
}

/// Counts are signed (they are also the Kotlin and Swift API, where unsigned numbers are awkward): a negative one is
/// refused when the engine is built, and a negative warmup size when warming up.
#[test]
fn negative_counts_are_refused_with_invalid_config() {
    common::init();
    let model = common::model("matmul_dynamic");
    let configs = [
        EngineConfig::default().with_threads(-1),
        EngineConfig::default().with_inter_op_threads(-2),
        EngineConfig::default().with_memory_limit_mb(-1),
        EngineConfig::default().with_accelerators(vec![Accelerator::Xnnpack { threads: -4 }]),
        EngineConfig::default().with_concurrency(-1),
        EngineConfig::default().with_shape_buckets(vec![openautoglm::ShapeBucket::new([("batch", -3)])]),
    ];
    for config in configs {
        let err = Engine::from_file(&model, config.clone()).err().unwrap_or_else(|| panic!("{config:?} loaded"));
        assert!(matches!(err, Error::InvalidConfig { .. }), "{err}");
    }
    let engine = common::engine("matmul_dynamic");
    let err = engine.warmup_dims(&[("batch", -1)], 1).unwrap_err();
    assert!(matches!(&err, Error::InvalidConfig { reason } if reason.contains("negative")), "{err}");
}

/// Outputs go into the caller's buffers (no allocation for them); outputs without a buffer come back allocated,
/// and a buffer of the wrong size is a typed error that leaves the engine usable.
#[test]
fn run_into_fills_caller_buffers() {
    let engine = common::engine("multi_io");
    let info = engine.info().clone();
    let inputs_owned: Vec<(String, Vec<i64>, Vec<u8>, ElementType)> = info
        .inputs
        .iter()
        .map(|i| {
            let shape: Vec<i64> =
                i.shape.iter().map(|d| if let openautoglm::Dim::Fixed { size } = d { *size } else { 2 }).collect();
            let et = i.element_type.unwrap();
            let count: i64 = shape.iter().product();
            (i.name.clone(), shape, vec![1u8; count as usize * et.size()], et)
        })
        .collect();
    let inputs: Vec<(&str, TensorRef<'_>)> =
        inputs_owned.iter().map(|(n, s, d, et)| (n.as_str(), TensorRef::from_bytes(*et, s, d))).collect();
    let want = engine.run(&inputs).unwrap();
    let mut first = vec![0u8; want[0].data.len()];
    let mut slots: Vec<Option<&mut [u8]>> = (0..want.len()).map(|_| None).collect();
    slots[0] = Some(&mut first);
    let got = engine.run_into(&inputs, &Default::default(), &mut slots).unwrap();
    assert!(got[0].is_none());
    assert_eq!(first, want[0].data);
    for (g, w) in got.iter().zip(&want).skip(1) {
        assert_eq!(g.as_ref(), Some(w));
    }
    let mut short = vec![0u8; want[0].data.len() - 1];
    let mut slots: Vec<Option<&mut [u8]>> = (0..want.len()).map(|_| None).collect();
    slots[0] = Some(&mut short);
    let err = engine.run_into(&inputs, &Default::default(), &mut slots).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidInput { name, reason } if *name == want[0].name && reason.contains("bytes")),
        "{err}"
    );
    let err = engine.run_into(&inputs, &Default::default(), &mut []).unwrap_err();
    assert!(matches!(err, Error::InvalidConfig { .. }), "{err}");
    assert_eq!(engine.run(&inputs).unwrap(), want);
}

/// A small model on the CPU runs bursts of calls on spinning workers and calls after a pause on the calling thread
/// alone (`engine::quick`), with the same answers as the engine's own session; explicit thread settings keep every
/// run on that one session.
#[test]
fn small_models_spin_through_bursts_and_run_alone_after_pauses() {
    let engine = common::engine("matmul_dynamic");
    let x = [0.5f32, -1.0, 2.0, 4.0];
    let run = || engine.run(&[("x", TensorRef::new(&[1, 4], &x))]).unwrap()[0].to_vec::<f32>().unwrap();
    let first = run();
    // Back to back (in a debug build beside other tests, some gaps exceed the burst window: those run alone).
    for _ in 0..200 {
        assert_eq!(run(), first);
    }
    let after_burst = engine.waiting_stats();
    if std::thread::available_parallelism().map_or(1, |n| n.get()) == 1 {
        // One core: the engine's own session already runs alone.
        assert_eq!(after_burst.default_runs, 201, "{after_burst:?}");
        return;
    }
    // The first run comes before any was measured; later ones go back to the engine's own session only if runs
    // grow slow (a debug build beside other tests).
    assert!(after_burst.default_runs >= 1, "{after_burst:?}");
    assert!(after_burst.spinning_runs > 0, "{after_burst:?}");
    let total = |s: &openautoglm::WaitingStats| s.default_runs + s.spinning_runs + s.alone_runs;
    assert_eq!(total(&after_burst), 201, "{after_burst:?}");
    for _ in 0..3 {
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(run(), first);
    }
    let after_pauses = engine.waiting_stats();
    assert_eq!(
        after_pauses.spinning_runs, after_burst.spinning_runs,
        "a call after a pause never spins: {after_pauses:?}"
    );
    assert_eq!(total(&after_pauses), 204, "{after_pauses:?}");

    let one_thread =
        Engine::from_file(common::model("matmul_dynamic"), EngineConfig::default().with_threads(1)).unwrap();
    for _ in 0..10 {
        one_thread.run(&[("x", TensorRef::new(&[1, 4], &x))]).unwrap();
    }
    let stats = one_thread.waiting_stats();
    assert_eq!((stats.default_runs, stats.spinning_runs, stats.alone_runs), (10, 0, 0), "{stats:?}");
}
