//! Open-AutoGLM: run ONNX models on phones through ONNX Runtime.
//!
//! ```no_run
//! use openautoglm::{Engine, EngineConfig, TensorRef};
//! let engine = Engine::from_file("model.onnx", EngineConfig::default().with_threads(2))?;
//! let x = [1.0f32, 2.0, 3.0, 4.0];
//! let outputs = engine.run(&[("x", TensorRef::new(&[1, 4], &x))])?;
//! let y: Vec<f32> = outputs[0].to_vec()?;
//! # Ok::<(), openautoglm::Error>(())
//! ```

mod accelerator;
mod alloc;
pub mod bundle;
pub mod cascade;
mod compile_cache;
mod config;
pub mod ctc;
mod engine;
mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
#[cfg(feature = "llm")]
pub mod llm;
pub mod logging;
pub mod metrics;
mod model;
mod model_check;
mod ort_value;
mod placement;
mod plugin;
mod protobuf;
mod runtime;
pub mod schedule;
mod session;
mod source;
#[cfg(feature = "store")]
pub mod store;
mod tensor;
mod variant_choice;

pub use accelerator::{AcceleratorReport, SkippedAccelerator};
pub use bundle::PrecisionChoice;
pub use compile_cache::CacheOutcome;
pub use config::{
    Accelerator, CoreMlComputeUnits, CoreMlModelFormat, DEFAULT_MEMORY_LIMIT_MB, DeviceKind, EngineConfig,
    MAX_CONCURRENCY, OPENVINO_PROVIDER, OptimizeLevel, Precision, ProviderOption, QNN_PROVIDER, ShapeBucket,
};
pub use engine::{Engine, MAX_WARMUP_RUNS, RunTime, ShapeBucketStats, WaitingStats};
pub use error::{Error, Result, catch_panic};
pub use logging::LogLevel;
pub use model::{Dim, ModelInfo, ModelMetadata, TensorInfo};
pub use placement::{Placement, ProviderPlacement};
pub use runtime::{Feature as RuntimeFeature, MIN_ORT_VERSION, ORT_PATH_ENV, Runtime, RuntimeInfo};
pub use schedule::{CancelToken, Priority, PriorityHandle, RunOptions};
pub use tensor::{Element, ElementType, Tensor, TensorRef, decode_strings, encode_strings};
pub use variant_choice::{Measured, Measurements, device_class, numerics_class};

/// Version of this library, checked by the Kotlin and Swift layers against the version they were generated for.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The protobuf wire format's varints, for tools that write or take apart ONNX files (the integration tests' model
/// builder, `cargo xtask fuzz`); not part of the SDK's API.
#[doc(hidden)]
pub mod wire {
    pub use crate::protobuf::put_varint;

    /// A varint at the start of `bytes`: its value and the bytes it used; `None` when truncated or overlong.
    pub fn read_varint(bytes: &[u8]) -> Option<(u64, usize)> {
        crate::protobuf::varint(bytes).ok()
    }
}
