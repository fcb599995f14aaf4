//! Swift tests: `swift test` of ios/ in the Debian trixie chroot, against the host library.

use std::path::Path;

use anyhow::{Result, bail};

use super::Suite;
use crate::swift_toolchain::Stage;

/// `swift test` against the host library.
pub(super) fn test(library: &Path, ort: &Path, models: &Path) -> Result<Suite> {
    let stage = Stage::new(library, ort, models)?;
    let out =
        stage.sh("swift build --build-tests --quiet 2>&1 && swift test --skip-build --disable-swift-testing 2>&1")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    print!("{text}");
    let suite = Suite::from_xctest("Swift", &text, out.status.success());
    if !out.status.success() {
        bail!("swift test failed ({})", out.status);
    }
    Ok(suite)
}
