//! Element types and priorities as the numbers the JNI and Swift lean paths send: their declaration order, which
//! the generated Kotlin enums keep as `ordinal` and the Swift layer mirrors in `ElementType.code`.

use openautoglm::{ElementType, Priority};

pub(crate) const TYPES: [ElementType; 14] = [
    ElementType::F32,
    ElementType::F16,
    ElementType::F64,
    ElementType::I8,
    ElementType::U8,
    ElementType::I16,
    ElementType::U16,
    ElementType::I32,
    ElementType::U32,
    ElementType::I64,
    ElementType::U64,
    ElementType::Bool,
    ElementType::Bf16,
    ElementType::String,
];

pub(crate) fn element_type(code: i64) -> Option<ElementType> {
    usize::try_from(code).ok().and_then(|c| TYPES.get(c)).copied()
}

pub(crate) fn type_code(ty: ElementType) -> i32 {
    TYPES.iter().position(|t| *t == ty).unwrap_or(0) as i32
}

pub(crate) fn priority(code: i32) -> Priority {
    const PRIORITIES: [Priority; 3] = [Priority::Interactive, Priority::Normal, Priority::Background];
    usize::try_from(code).ok().and_then(|p| PRIORITIES.get(p)).copied().unwrap_or_default()
}

/// A deadline `timeout_us` from now; none when negative or past what the clock holds.
pub(crate) fn deadline(timeout_us: i64) -> Option<std::time::Instant> {
    u64::try_from(timeout_us)
        .ok()
        .and_then(|us| std::time::Instant::now().checked_add(std::time::Duration::from_micros(us)))
}

/// A caught panic as the error the caller receives.
pub(crate) fn panicked(at: &str, panic: &Box<dyn std::any::Any + Send>) -> openautoglm::Error {
    let text = panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned());
    openautoglm::Error::internal(format!("panic in {at}: {}", text.unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_ones_are_refused() {
        for (code, ty) in TYPES.iter().enumerate() {
            assert_eq!(element_type(code as i64), Some(*ty));
            assert_eq!(type_code(*ty), code as i32);
        }
        assert_eq!(element_type(-1), None);
        assert_eq!(element_type(14), None);
        assert_eq!(priority(0), Priority::Interactive);
        assert_eq!(priority(99), Priority::Normal);
        assert!(deadline(-1).is_none() && deadline(0).is_some());
    }
}
