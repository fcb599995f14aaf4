//! The benchmark files as types (layout: benchmarks/README.md). The runner (`openautoglm-bench`) is given a
//! [`recipe`] and writes the other modules' types; `cargo xtask` writes recipes and reads results through the same
//! types. Peers in other languages (python-ort, ORT Java, the Kotlin and Swift runners) write a subset of
//! [`measured::Measured`]: every field is optional or defaulted.

pub mod cascade;
pub mod chat;
pub mod generation;
pub mod measured;
pub mod outputs;
pub mod recipe;
pub mod scheduling;
pub mod sustained;
