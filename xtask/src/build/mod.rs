//! `cargo xtask build android|ios`: the SDK for phones.

pub mod android;
pub mod ios;
