//! FNV-1a, the project's one non-cryptographic hash: the detector spreads its table keys with
//! the 32-bit form, and the agent knows a file by the 64-bit form of its first bytes (a value
//! stored in checkpoints, so it must never change across versions or platforms).
//!
//! Both forms continue from a state, so a caller can hash several parts (or every prefix of a
//! region) without copying them together: start from [`FNV1A_64_START`] or [`FNV1A_32_START`].

/// The 64-bit offset basis: the state before any byte.
pub const FNV1A_64_START: u64 = 0xcbf2_9ce4_8422_2325;
const FNV1A_64_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The 32-bit offset basis: the state before any byte.
pub(crate) const FNV1A_32_START: u32 = 0x811c_9dc5;
const FNV1A_32_PRIME: u32 = 0x0100_0193;

/// FNV-1a 64 of `bytes`, continuing from `state`.
#[must_use]
pub fn fnv1a_64(state: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(state, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(FNV1A_64_PRIME)
    })
}

/// FNV-1a 32 of `bytes`, continuing from `state`.
#[must_use]
pub(crate) fn fnv1a_32(state: u32, bytes: &[u8]) -> u32 {
    bytes.iter().fold(state, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(FNV1A_32_PRIME)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_test_vectors() {
        // From the FNV reference (draft-eastlake-fnv): "", "a", "foobar".
        assert_eq!(fnv1a_64(FNV1A_64_START, b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_64(FNV1A_64_START, b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a_64(FNV1A_64_START, b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(fnv1a_32(FNV1A_32_START, b"a"), 0xe40c_292c);
        assert_eq!(fnv1a_32(FNV1A_32_START, b"foobar"), 0xbf9c_f968);
        // Continuing from a state is hashing the parts together.
        assert_eq!(
            fnv1a_64(fnv1a_64(FNV1A_64_START, b"foo"), b"bar"),
            fnv1a_64(FNV1A_64_START, b"foobar")
        );
    }
}
