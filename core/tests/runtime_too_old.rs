//! Its own test binary (its own process): a real ONNX Runtime older than the SDK needs (1.20.1, from its PyPI wheel;
//! `cargo xtask test` gives its path in OPENAUTOGLM_OLD_ORT) is refused with a typed error naming both versions, and
//! the real one still loads afterwards.

mod common;

use openautoglm::{Error, Runtime, RuntimeFeature};

#[test]
fn an_older_runtime_is_runtime_too_old_and_the_supported_one_loads_after() {
    let old = std::env::var("OPENAUTOGLM_OLD_ORT").expect("OPENAUTOGLM_OLD_ORT: run through cargo xtask test");
    let refused = Runtime::init(Some(std::path::Path::new(&old)));
    assert_eq!(
        refused,
        Err(Error::RuntimeTooOld {
            feature: RuntimeFeature::Engine.name().into(),
            required: "1.22".into(),
            loaded: "1.20.1".into(),
        })
    );
    assert!(Runtime::info().is_none(), "nothing was loaded");
    let info = Runtime::init(Some(&common::ort_path())).unwrap();
    for feature in RuntimeFeature::ALL {
        assert_eq!(feature.check(&info.ort_version), Ok(()), "{feature:?} on {}", info.ort_version);
    }
    common::engine("matmul_dynamic");
}
