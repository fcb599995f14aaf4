//! Buffers whose size a model or a caller decides: warmup inputs, output copies, float16 conversions. Rust aborts the
//! process when an allocation fails, so these are sized with checked arithmetic, held to the engine's memory limit
//! ([`crate::EngineConfig::memory_limit_mb`]) and allocated fallibly: a model that declares a 2^62-element input
//! gets [`Error::MemoryLimit`], never an abort.

use crate::error::{Error, Result};

/// The largest buffer an engine allocates for one tensor, in bytes (`None`: only the system's limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limit(Option<u64>);

impl Limit {
    /// The limit in bytes (`None`: only the system's).
    pub(crate) fn bytes(self) -> Option<u64> {
        self.0
    }

    pub(crate) fn from_mb(mb: i32) -> Limit {
        Limit(u64::try_from(mb).ok().filter(|&mb| mb > 0).map(|mb| mb << 20))
    }

    /// `count` elements of `size` bytes, if that is within the limit; `what` names the buffer in the error.
    pub(crate) fn bytes_for(self, count: usize, size: usize, what: impl FnOnce() -> String) -> Result<usize> {
        let bytes = count.checked_mul(size).filter(|&b| self.0.is_none_or(|limit| b as u64 <= limit));
        bytes.ok_or_else(|| {
            let needed = (count as u128) * (size as u128);
            let limit =
                self.0.map_or("the address space".to_owned(), |l| format!("the engine's limit of {} MB", l >> 20));
            Error::MemoryLimit { reason: format!("{} needs {needed} bytes, over {limit}", what()) }
        })
    }

    /// A zero-filled buffer of `count` elements of `size` bytes.
    pub(crate) fn zeroed(self, count: usize, size: usize, what: impl Fn() -> String) -> Result<Vec<u8>> {
        let bytes = self.bytes_for(count, size, &what)?;
        let mut buffer = Vec::new();
        buffer.try_reserve_exact(bytes).map_err(|_| unavailable(bytes, what()))?;
        buffer.resize(bytes, 0);
        Ok(buffer)
    }

    /// An empty vector with room for `count` elements of `T`.
    pub(crate) fn vec<T>(self, count: usize, what: impl Fn() -> String) -> Result<Vec<T>> {
        let bytes = self.bytes_for(count, size_of::<T>(), &what)?;
        let mut buffer = Vec::new();
        buffer.try_reserve_exact(count).map_err(|_| unavailable(bytes, what()))?;
        Ok(buffer)
    }
}

fn unavailable(bytes: usize, what: String) -> Error {
    Error::MemoryLimit { reason: format!("{what} needs {bytes} bytes, which the system could not provide") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_over_the_limit_or_the_address_space_are_typed_errors() {
        let one_mb = Limit::from_mb(1);
        assert_eq!(one_mb.zeroed(256, 4, || "x".into()).unwrap().len(), 1024);
        assert!(matches!(one_mb.zeroed(1 << 20, 4, || "x".into()), Err(Error::MemoryLimit { .. })));
        let none = Limit::from_mb(0);
        assert!(matches!(none.bytes_for(usize::MAX, 4, || "x".into()), Err(Error::MemoryLimit { .. })));
        // More than any machine has: the allocation itself fails, as a typed error.
        let err = none.zeroed(1 << 62, 1, || "warmup input `x`".into()).unwrap_err().to_string();
        assert!(err.contains("warmup input `x`"), "{err}");
        assert!(matches!(none.vec::<f32>(1 << 61, || "y".into()), Err(Error::MemoryLimit { .. })));
    }
}
