//! The project's non-cryptographic hashes. Their values are stored (in checkpoints, on the
//! wire, in the detector's memory), so none may change across versions or platforms.
//!
//! FNV-1a: the agent knows a file by the 64-bit form of its first bytes; the compact batch
//! encoding picks a key's slot, and the detector keys its long-learned tables (user/source
//! pairs, accounts), by the 32-bit form. Both forms continue from a state, so a caller can hash
//! several parts (or every prefix of a region) without copying them together: start from
//! [`FNV1A_64_START`] or [`FNV1A_32_START`].
//!
//! [`fold_32`]: the detector's hash of the keys it looks up on every failure line.

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

/// The detector's hash of the keys it looks up on every failure line (an address, a user
/// name), 32 bits: whole words folded by a 64×64→128-bit multiply (the high half xored into
/// the low), twice. A name up to 16 bytes costs two loads and two multiplies whatever its
/// length, where FNV-1a takes a multiply per byte, each waiting for the last. `seed` is the
/// agent's secret, so that names cannot be chosen to fall into one table set. Not
/// cryptographic. Saved with the detector's memory: it must never change (a test pins it).
#[must_use]
pub(crate) fn fold_32(seed: u32, bytes: &[u8]) -> u32 {
    let len = bytes.len();
    let (a, b) = if len <= 16 {
        if len >= 8 {
            (word(bytes, 0), word(bytes, len - 8))
        } else if len >= 4 {
            (half(bytes, 0), half(bytes, len - 4))
        } else if len > 0 {
            let x = u64::from(bytes[0]) << 16 | u64::from(bytes[len / 2]) << 8;
            (x | u64::from(bytes[len - 1]), 0)
        } else {
            (0, 0)
        }
    } else {
        // 16 bytes a round, each folded into the state, then the last 16 (which may overlap).
        let mut h = FOLD_K[1];
        let mut i = 0;
        while len - i > 16 {
            h = fold(word(bytes, i) ^ FOLD_K[2], word(bytes, i + 8) ^ h);
            i += 16;
        }
        (word(bytes, len - 16) ^ h, word(bytes, len - 8))
    };
    fold_words(seed, a, b, len as u64)
}

/// [`fold_32`]'s last step, for keys already in words (an IP address: its 4 or 16 bytes, its
/// family in `extra`).
#[must_use]
#[inline]
pub(crate) fn fold_words(seed: u32, a: u64, b: u64, extra: u64) -> u32 {
    let h = fold(a ^ FOLD_K[0] ^ u64::from(seed), b ^ FOLD_K[1]);
    let h = fold(h ^ FOLD_K[2], extra ^ FOLD_K[3]);
    (h ^ (h >> 32)) as u32
}

/// Odd 64-bit constants with about half their bits set (the fractional part of π's hex digits),
/// so that no word folds to zero unless it was chosen to.
const FOLD_K: [u64; 4] = [
    0x243f_6a88_85a3_08d3,
    0x1319_8a2e_0370_7345,
    0xa409_3822_299f_31d1,
    0x082e_fa98_ec4e_6c89,
];

#[inline(always)]
fn fold(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

#[inline(always)]
fn word(bytes: &[u8], i: usize) -> u64 {
    let mut w = [0; 8];
    w.copy_from_slice(&bytes[i..i + 8]);
    u64::from_le_bytes(w)
}

#[inline(always)]
fn half(bytes: &[u8], i: usize) -> u64 {
    let mut w = [0; 4];
    w.copy_from_slice(&bytes[i..i + 4]);
    u64::from(u32::from_le_bytes(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_32_is_pinned() {
        let all: Vec<u32> = ["", "a", "abc", "root", "admin", "postgres", "administrator"]
            .iter()
            .map(|k| fold_32(0, k.as_bytes()))
            .chain([
                fold_32(0x1234_5678, b"root"),
                fold_32(0, b"a-name-of-more-than-sixteen-bytes"),
                fold_words(0, 0xc633_6407, 0, 4),
            ])
            .collect();
        // Saved in the detector's memory: a change here forgets what agents learnt.
        let pinned = [
            0x0e1d_e747,
            0x15c2_6f2e,
            0xa642_15a5,
            0xeb2c_8b10,
            0xe1b7_6c0e,
            0xb338_4795,
            0xf753_b4d8,
            0xd822_46f4,
            0x64d8_1b3b,
            0x271f_00cb,
        ];
        assert_eq!(all, pinned);
    }

    #[test]
    fn fold_32_reads_every_byte_of_every_length() {
        let key: Vec<u8> = (0..48u8).map(|b| b'a' + b % 26).collect();
        let mut seen = std::collections::BTreeSet::new();
        for len in 0..=key.len() {
            assert!(seen.insert(fold_32(7, &key[..len])), "length {len}");
            // Every byte counts: its change changes the hash.
            for i in 0..len {
                let mut k = key[..len].to_vec();
                k[i] ^= 0x20;
                assert_ne!(fold_32(7, &k), fold_32(7, &key[..len]), "{len} {i}");
            }
        }
        // The seed counts too.
        assert_ne!(fold_32(1, b"root"), fold_32(2, b"root"));
    }

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
