//! [`ByteRing`]: a fixed-capacity FIFO of variable-length byte records, for holding encoded
//! events (see [`crate::encode`]) between the parser and the batcher.
//!
//! The ring owns a `[u8; N]` and nothing else: no allocation, and [`ByteRing::new`] is a `const
//! fn`, so a ring can live in a `static` (behind the caller's lock). Each record is stored as a
//! LEB128 varint of its length followed by its bytes; both may wrap around the end of the buffer,
//! so no space is lost to padding and a record comes back as up to two slices
//! ([`ByteRing::peek`]). A record that does not fit is handed back to the caller
//! ([`ByteRing::push`] returns `Err(record)`), as heapless does; nothing already in the ring is
//! ever overwritten.

use core::fmt;

/// Counters kept by a [`ByteRing`] since it was created ([`ByteRing::clear`] does not reset them).
///
/// `pushed - popped` is always the number of records in the ring.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RingStats {
    /// Records accepted by [`ByteRing::push`].
    pub pushed: u64,
    /// Records removed: by [`ByteRing::pop`], [`ByteRing::pop_into`] and [`ByteRing::clear`].
    pub popped: u64,
    /// Records refused by [`ByteRing::push`] for want of space.
    pub rejected: u64,
    /// Bytes in accepted records, without their length prefixes.
    pub bytes_pushed: u64,
}

impl RingStats {
    /// All counters zero.
    pub const fn new() -> Self {
        RingStats {
            pushed: 0,
            popped: 0,
            rejected: 0,
            bytes_pushed: 0,
        }
    }
}

/// [`ByteRing::pop_into`]'s error: the output buffer is shorter than the front record, which stays
/// in the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BufferTooSmall {
    /// The length of the front record.
    pub needed: usize,
}

impl fmt::Display for BufferTooSmall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "output buffer too small: the record is {} bytes",
            self.needed
        )
    }
}

impl core::error::Error for BufferTooSmall {}

/// A fixed-capacity FIFO of byte records in `N` bytes of inline storage.
///
/// A record of `len` bytes takes [`framed_len`]`(len)` bytes of the ring: a varint length
/// prefix (1 byte up to 127, 2 up to 16 383, 3 up to 2 097 151, ...) and the bytes. The longest
/// record that fits an empty ring is [`ByteRing::MAX_RECORD_LEN`]. Zero-length records are
/// allowed and take one byte.
///
/// `N` must be at least 1 (checked at compile time by [`ByteRing::new`]).
///
/// ```
/// use agent_core::ring::ByteRing;
///
/// let mut ring: ByteRing<16> = ByteRing::new();
/// ring.push(b"hello").unwrap(); // 6 bytes: prefix 5, then the record
/// ring.push(b"world").unwrap();
/// assert_eq!(ring.free(), 4);
/// assert_eq!(ring.push(b"no room"), Err(&b"no room"[..]));
///
/// let mut out = [0u8; 16];
/// assert_eq!(ring.pop_into(&mut out), Ok(Some(5)));
/// assert_eq!(&out[..5], b"hello");
/// assert_eq!(ring.peek(), Some((&b"world"[..], &b""[..])));
/// assert_eq!(ring.stats().rejected, 1);
///
/// // `new` is const: a ring can be a static.
/// static SHARED: std::sync::Mutex<ByteRing<4096>> = std::sync::Mutex::new(ByteRing::new());
/// SHARED.lock().unwrap().push(b"event").unwrap();
/// ```
pub struct ByteRing<const N: usize> {
    buf: [u8; N],
    /// Index of the front record's length prefix (`< N`, 0 when empty).
    head: usize,
    /// Bytes in use, prefixes included (`<= N`).
    used: usize,
    /// Records in the ring.
    len: usize,
    stats: RingStats,
}

/// Bytes a record of `record_len` bytes takes in a [`ByteRing`]: its varint length prefix plus
/// the record.
#[inline]
pub const fn framed_len(record_len: usize) -> usize {
    prefix_len(record_len) + record_len
}

/// Bytes in the LEB128 varint of `len`.
#[inline]
const fn prefix_len(mut len: usize) -> usize {
    let mut n = 1;
    while len >= 0x80 {
        len >>= 7;
        n += 1;
    }
    n
}

/// The longest record whose framed length is at most `n` (0 when not even an empty record fits;
/// `ByteRing::new` rules that case out).
const fn max_record_len(n: usize) -> usize {
    let mut p = 1;
    while p <= n {
        if prefix_len(n - p) <= p {
            return n - p;
        }
        p += 1;
    }
    0
}

impl<const N: usize> ByteRing<N> {
    /// The capacity in bytes, length prefixes included.
    pub const CAPACITY: usize = N;

    /// The longest record an empty ring accepts: the largest `len` with
    /// [`framed_len`]`(len) <= N`.
    pub const MAX_RECORD_LEN: usize = max_record_len(N);

    /// An empty ring. `const`, so it can initialise a `static`.
    ///
    /// Fails to compile when `N` is 0.
    pub const fn new() -> Self {
        const { assert!(N > 0, "a ByteRing needs at least one byte") };
        ByteRing {
            buf: [0; N],
            head: 0,
            used: 0,
            len: 0,
            stats: RingStats::new(),
        }
    }

    /// Appends `record` at the back.
    ///
    /// # Errors
    /// Hands `record` back, untouched and unstored, when [`framed_len`]`(record.len())` exceeds
    /// [`free`](Self::free), including when it could never fit (longer than
    /// [`MAX_RECORD_LEN`](Self::MAX_RECORD_LEN)). The refusal is counted in
    /// [`RingStats::rejected`].
    pub fn push<'r>(&mut self, record: &'r [u8]) -> Result<(), &'r [u8]> {
        let framed = framed_len(record.len());
        if framed > self.free() {
            self.stats.rejected += 1;
            return Err(record);
        }
        let mut tail = self.wrap(self.head + self.used);

        // Length prefix, byte by byte (it may wrap).
        let mut v = record.len();
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            self.buf[tail] = if v == 0 { byte } else { byte | 0x80 };
            tail = self.wrap(tail + 1);
            if v == 0 {
                break;
            }
        }

        // The record, in at most two copies.
        let first = record.len().min(N - tail);
        let (a, b) = record.split_at(first);
        self.buf[tail..tail + first].copy_from_slice(a);
        self.buf[..b.len()].copy_from_slice(b);

        self.used += framed;
        self.len += 1;
        self.stats.pushed += 1;
        self.stats.bytes_pushed += record.len() as u64;
        Ok(())
    }

    /// The front (oldest) record without removing it, as two slices to be read in order: the
    /// second is empty unless the record wraps around the end of the buffer. `None` when empty.
    pub fn peek(&self) -> Option<(&[u8], &[u8])> {
        if self.len == 0 {
            return None;
        }
        let (start, len) = self.record_at(self.head);
        Some(self.slices(start, len))
    }

    /// Removes the front record and returns its length; `None` when the ring is empty.
    pub fn pop(&mut self) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let (start, len) = self.record_at(self.head);
        self.used -= framed_len(len);
        self.len -= 1;
        self.stats.popped += 1;
        // Reset to 0 when empty so that later records wrap as late as possible.
        self.head = if self.len == 0 {
            0
        } else {
            self.wrap(start + len)
        };
        Some(len)
    }

    /// Copies the front record into the front of `out`, removes it, and returns its length;
    /// `Ok(None)` when the ring is empty.
    ///
    /// # Errors
    /// [`BufferTooSmall`] when `out` is shorter than the record, which then stays in the ring.
    pub fn pop_into(&mut self, out: &mut [u8]) -> Result<Option<usize>, BufferTooSmall> {
        let Some((a, b)) = self.peek() else {
            return Ok(None);
        };
        let needed = a.len() + b.len();
        let Some(dst) = out.get_mut(..needed) else {
            return Err(BufferTooSmall { needed });
        };
        dst[..a.len()].copy_from_slice(a);
        dst[a.len()..].copy_from_slice(b);
        Ok(self.pop())
    }

    /// The records from front to back, each as two slices like [`peek`](Self::peek), without
    /// removing them.
    pub fn iter(&self) -> Iter<'_, N> {
        Iter {
            ring: self,
            pos: self.head,
            left: self.len,
        }
    }

    /// Number of records.
    #[inline]
    pub const fn len(&self) -> usize {
        self.len
    }

    /// True when the ring holds no records.
    #[inline]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes in use, length prefixes included.
    #[inline]
    pub const fn bytes_used(&self) -> usize {
        self.used
    }

    /// Bytes free. A record of `len` bytes fits when [`framed_len`]`(len) <= free()`.
    #[inline]
    pub const fn free(&self) -> usize {
        N - self.used
    }

    /// Removes every record. They count as popped in [`stats`](Self::stats); the other counters
    /// are kept.
    pub fn clear(&mut self) {
        self.stats.popped += self.len as u64;
        self.head = 0;
        self.used = 0;
        self.len = 0;
    }

    /// The counters since the ring was created.
    #[inline]
    pub const fn stats(&self) -> RingStats {
        self.stats
    }

    #[inline]
    const fn wrap(&self, i: usize) -> usize {
        if i >= N { i - N } else { i }
    }

    /// Reads the length prefix at `pos`: the index where the record's bytes start and its length.
    fn record_at(&self, mut pos: usize) -> (usize, usize) {
        let mut len = 0usize;
        let mut shift = 0;
        // The ring wrote this prefix itself; the shift bound only guards against a logic error.
        while shift < usize::BITS {
            let b = self.buf[pos];
            pos = self.wrap(pos + 1);
            len |= usize::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        (pos, len)
    }

    /// The `len` bytes starting at `start`, split where they wrap.
    fn slices(&self, start: usize, len: usize) -> (&[u8], &[u8]) {
        let first = len.min(N - start);
        (&self.buf[start..start + first], &self.buf[..len - first])
    }
}

impl<const N: usize> Default for ByteRing<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// Shows occupancy and counters, not the contents (which may be megabytes).
impl<const N: usize> fmt::Debug for ByteRing<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ByteRing")
            .field("capacity", &N)
            .field("len", &self.len)
            .field("bytes_used", &self.used)
            .field("stats", &self.stats)
            .finish()
    }
}

/// Iterator over a [`ByteRing`]'s records, front to back; see [`ByteRing::iter`].
#[derive(Debug)]
pub struct Iter<'a, const N: usize> {
    ring: &'a ByteRing<N>,
    pos: usize,
    left: usize,
}

impl<'a, const N: usize> Iterator for Iter<'a, N> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let (start, len) = self.ring.record_at(self.pos);
        self.pos = self.ring.wrap(start + len);
        self.left -= 1;
        Some(self.ring.slices(start, len))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<const N: usize> ExactSizeIterator for Iter<'_, N> {}

impl<'a, const N: usize> IntoIterator for &'a ByteRing<N> {
    type Item = (&'a [u8], &'a [u8]);
    type IntoIter = Iter<'a, N>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
// The workspace lint exempts tests: an unwrap here fails the test, which is what we want.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    /// A ring can initialise a `static`.
    static EMPTY: ByteRing<8> = ByteRing::new();

    fn joined((a, b): (&[u8], &[u8])) -> Vec<u8> {
        [a, b].concat()
    }

    fn contents<const N: usize>(ring: &ByteRing<N>) -> Vec<Vec<u8>> {
        ring.iter().map(joined).collect()
    }

    #[test]
    fn static_ring_is_empty() {
        assert!(EMPTY.is_empty());
        assert_eq!(EMPTY.len(), 0);
        assert_eq!(EMPTY.free(), 8);
        assert_eq!(EMPTY.peek(), None);
        assert_eq!(EMPTY.stats(), RingStats::default());
    }

    #[test]
    fn framing_lengths() {
        assert_eq!(framed_len(0), 1);
        assert_eq!(framed_len(127), 128);
        assert_eq!(framed_len(128), 130);
        assert_eq!(framed_len(16_383), 16_385);
        assert_eq!(framed_len(16_384), 16_387);
    }

    #[test]
    fn max_record_len_is_the_largest_that_fits() {
        for n in 1..40_000 {
            let max = max_record_len(n);
            assert!(framed_len(max) <= n, "{n}");
            assert!(framed_len(max + 1) > n, "{n}");
        }
        assert_eq!(max_record_len(0), 0);
        assert_eq!(ByteRing::<1>::MAX_RECORD_LEN, 0);
        assert_eq!(ByteRing::<128>::MAX_RECORD_LEN, 127);
        assert_eq!(ByteRing::<129>::MAX_RECORD_LEN, 127);
        assert_eq!(ByteRing::<130>::MAX_RECORD_LEN, 128);
        assert_eq!(ByteRing::<{ 4 << 20 }>::MAX_RECORD_LEN, (4 << 20) - 4);
    }

    #[test]
    fn record_of_exactly_the_max_size() {
        let mut ring: ByteRing<130> = ByteRing::new();
        let max = [7u8; ByteRing::<130>::MAX_RECORD_LEN];
        assert_eq!(ring.push(&max), Ok(()));
        assert_eq!(ring.free(), 0);
        assert_eq!(joined(ring.peek().unwrap()), max);
        assert_eq!(ring.push(b""), Err(&b""[..]));
        assert_eq!(ring.pop(), Some(128));
        assert!(ring.is_empty());

        // One byte more never fits, even in an empty ring.
        let mut ring: ByteRing<129> = ByteRing::new();
        let too_long = [7u8; 128];
        assert_eq!(ring.push(&too_long), Err(&too_long[..]));
        assert_eq!(ring.stats().rejected, 1);
        assert_eq!(ring.push(&too_long[..127]), Ok(()));
        assert_eq!(ring.free(), 1);

        let mut ring: ByteRing<1> = ByteRing::new();
        assert_eq!(ring.push(b"x"), Err(&b"x"[..]));
        assert_eq!(ring.push(b""), Ok(()));
        assert_eq!(ring.peek(), Some((&b""[..], &b""[..])));
    }

    #[test]
    fn exact_fit_after_wrapping() {
        let mut ring: ByteRing<16> = ByteRing::new();
        ring.push(b"abcde").unwrap(); // bytes 0..6
        ring.push(b"xyz").unwrap(); // bytes 6..10
        assert_eq!(ring.pop(), Some(5)); // head at 6
        assert_eq!(ring.free(), 12);
        // 11 bytes + 1 prefix: exactly the free space, split 5 | 6 around the end.
        assert_eq!(ring.push(b"0123456789A"), Ok(()));
        assert_eq!(ring.free(), 0);
        assert_eq!(ring.push(b""), Err(&b""[..]));
        assert_eq!(ring.pop(), Some(3));
        assert_eq!(ring.peek(), Some((&b"01234"[..], &b"56789A"[..])));
        let mut out = [0u8; 11];
        assert_eq!(ring.pop_into(&mut out), Ok(Some(11)));
        assert_eq!(&out, b"0123456789A");
        assert!(ring.is_empty());
        assert_eq!(ring.bytes_used(), 0);
    }

    #[test]
    fn length_prefix_that_wraps() {
        let mut ring: ByteRing<200> = ByteRing::new();
        ring.push(&[1; 196]).unwrap(); // 2-byte prefix: bytes 0..198
        ring.push(b"").unwrap(); // byte 198
        ring.push(b"").unwrap(); // byte 199
        assert_eq!(ring.pop(), Some(196));
        assert_eq!(ring.pop(), Some(0));
        // The next prefix is 2 bytes starting at the last byte of the buffer.
        let rec: Vec<u8> = (0..150u8).collect();
        assert_eq!(ring.push(&rec), Ok(()));
        assert_eq!(ring.pop(), Some(0));
        assert_eq!(ring.peek(), Some((&rec[..], &b""[..])));
        assert_eq!(ring.pop_into(&mut [0; 200]), Ok(Some(150)));
    }

    #[test]
    fn zero_length_records() {
        let mut ring: ByteRing<4> = ByteRing::new();
        for _ in 0..4 {
            assert_eq!(ring.push(b""), Ok(()));
        }
        assert_eq!(ring.push(b""), Err(&b""[..]));
        assert_eq!(ring.len(), 4);
        assert_eq!(ring.bytes_used(), 4);
        assert_eq!(ring.peek(), Some((&b""[..], &b""[..])));
        assert_eq!(ring.pop_into(&mut []), Ok(Some(0)));
        assert_eq!(ring.pop(), Some(0));
        assert_eq!(ring.len(), 2);
        assert_eq!(
            ring.stats(),
            RingStats {
                pushed: 4,
                popped: 2,
                rejected: 1,
                bytes_pushed: 0
            }
        );
    }

    #[test]
    fn empty_ring_operations() {
        let mut ring: ByteRing<8> = ByteRing::default();
        assert_eq!(ring.pop(), None);
        assert_eq!(ring.pop_into(&mut [0; 8]), Ok(None));
        assert_eq!(ring.peek(), None);
        assert_eq!(ring.iter().next(), None);
        ring.clear();
        assert_eq!(ring.stats(), RingStats::new());
    }

    #[test]
    fn pop_into_too_small_keeps_the_record() {
        let mut ring: ByteRing<32> = ByteRing::new();
        ring.push(b"twelve bytes").unwrap();
        let mut out = [0u8; 11];
        assert_eq!(ring.pop_into(&mut out), Err(BufferTooSmall { needed: 12 }));
        assert_eq!(ring.len(), 1);
        assert_eq!(ring.stats().popped, 0);
        let mut out = [0u8; 20];
        assert_eq!(ring.pop_into(&mut out), Ok(Some(12)));
        assert_eq!(&out[..12], b"twelve bytes");
        assert_eq!(
            BufferTooSmall { needed: 12 }.to_string(),
            "output buffer too small: the record is 12 bytes"
        );
    }

    #[test]
    fn rejections_are_counted_and_nothing_is_overwritten() {
        let mut ring: ByteRing<10> = ByteRing::new();
        ring.push(b"1234").unwrap();
        ring.push(b"abc").unwrap();
        assert_eq!(ring.free(), 1);
        assert_eq!(ring.push(b"z"), Err(&b"z"[..]));
        assert_eq!(ring.push(&[0; 100]), Err(&[0u8; 100][..]));
        assert_eq!(contents(&ring), [b"1234".to_vec(), b"abc".to_vec()]);
        assert_eq!(
            ring.stats(),
            RingStats {
                pushed: 2,
                popped: 0,
                rejected: 2,
                bytes_pushed: 7
            }
        );
        ring.clear();
        assert!(ring.is_empty());
        assert_eq!(ring.free(), 10);
        assert_eq!(ring.stats().popped, 2);
        assert_eq!(ring.stats().pushed, 2);
    }

    #[test]
    fn fifo_across_many_wrap_arounds() {
        let mut ring: ByteRing<97> = ByteRing::new();
        let mut model = VecDeque::new();
        for round in 0..20_000u32 {
            let len = (round * 7 % 40) as usize;
            let rec: Vec<u8> = (0..len).map(|i| (round as usize + i) as u8).collect();
            while ring.push(&rec).is_err() {
                let (a, b) = ring.peek().unwrap();
                assert_eq!([a, b].concat(), model.pop_front().unwrap());
                ring.pop().unwrap();
            }
            model.push_back(rec);
        }
        assert_eq!(contents(&ring), Vec::from(model));
        assert_eq!(ring.stats().pushed, 20_000);
        assert!(ring.stats().popped > 1_000, "{:?}", ring.stats());
    }

    #[test]
    fn debug_shows_occupancy_not_contents() {
        let mut ring: ByteRing<64> = ByteRing::new();
        ring.push(b"secret-password").unwrap();
        let s = format!("{ring:?}");
        assert!(s.contains("len: 1"), "{s}");
        assert!(!s.contains("115"), "{s}"); // no byte values
    }

    #[test]
    fn iter_is_exact_size() {
        let mut ring: ByteRing<64> = ByteRing::new();
        for r in [&b"a"[..], b"bb", b"", b"dddd"] {
            ring.push(r).unwrap();
        }
        let it = ring.iter();
        assert_eq!(it.len(), 4);
        let all: Vec<Vec<u8>> = (&ring).into_iter().map(joined).collect();
        assert_eq!(all, [&b"a"[..], b"bb", b"", b"dddd"]);
    }

    // -----------------------------------------------------------------------------------------
    // Model test against a VecDeque

    #[derive(Clone, Debug)]
    enum Op {
        /// A record of `raw % (N/4 + 1)` bytes when `small`, else `raw % (N + 4)` (so some never
        /// fit), filled from `seed` upwards.
        Push {
            raw: usize,
            small: bool,
            seed: u8,
        },
        Pop,
        /// `pop_into` with an output of `raw % (N + 2)` bytes.
        PopInto {
            raw: usize,
        },
        Clear,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (any::<usize>(), prop::bool::weighted(0.7), any::<u8>())
                .prop_map(|(raw, small, seed)| Op::Push { raw, small, seed }),
            3 => Just(Op::Pop),
            2 => any::<usize>().prop_map(|raw| Op::PopInto { raw }),
            1 => Just(Op::Clear),
        ]
    }

    struct Model {
        records: VecDeque<Vec<u8>>,
        used: usize,
        stats: RingStats,
    }

    impl Model {
        fn pop(&mut self) -> Option<Vec<u8>> {
            let r = self.records.pop_front()?;
            self.used -= framed_len(r.len());
            self.stats.popped += 1;
            Some(r)
        }
    }

    fn run_model<const N: usize>(ops: &[Op]) -> Result<(), TestCaseError> {
        let mut ring: ByteRing<N> = ByteRing::new();
        let mut model = Model {
            records: VecDeque::new(),
            used: 0,
            stats: RingStats::new(),
        };
        for op in ops {
            match *op {
                Op::Push { raw, small, seed } => {
                    let len = if small {
                        raw % (N / 4 + 1)
                    } else {
                        raw % (N + 4)
                    };
                    let rec: Vec<u8> = (0..len).map(|i| seed.wrapping_add(i as u8)).collect();
                    let fits = framed_len(len) <= N - model.used;
                    let got = ring.push(&rec);
                    if fits {
                        prop_assert_eq!(got, Ok(()));
                        model.used += framed_len(len);
                        model.stats.pushed += 1;
                        model.stats.bytes_pushed += len as u64;
                        model.records.push_back(rec);
                    } else {
                        prop_assert_eq!(got, Err(&rec[..]));
                        model.stats.rejected += 1;
                    }
                }
                Op::Pop => {
                    let want = model.pop().map(|r| r.len());
                    prop_assert_eq!(ring.pop(), want);
                }
                Op::PopInto { raw } => {
                    let mut out = vec![0xee; raw % (N + 2)];
                    let got = ring.pop_into(&mut out);
                    match model.records.front().map(Vec::len) {
                        None => prop_assert_eq!(got, Ok(None)),
                        Some(needed) if needed > out.len() => {
                            prop_assert_eq!(got, Err(BufferTooSmall { needed }));
                        }
                        Some(_) => {
                            let want = model.pop().unwrap_or_default();
                            prop_assert_eq!(got, Ok(Some(want.len())));
                            prop_assert_eq!(&out[..want.len()], &want[..]);
                        }
                    }
                }
                Op::Clear => {
                    ring.clear();
                    while model.pop().is_some() {}
                }
            }
            prop_assert_eq!(ring.len(), model.records.len());
            prop_assert_eq!(ring.is_empty(), model.records.is_empty());
            prop_assert_eq!(ring.bytes_used(), model.used);
            prop_assert_eq!(ring.free(), N - model.used);
            prop_assert_eq!(ring.stats(), model.stats);
            prop_assert_eq!(ring.peek().map(joined), model.records.front().cloned());
            prop_assert_eq!(contents(&ring), Vec::from(model.records.clone()));
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn prop_matches_model_tiny(ops in prop::collection::vec(op(), 1..300)) {
            run_model::<1>(&ops)?;
            run_model::<7>(&ops)?;
        }

        #[test]
        fn prop_matches_model_small(ops in prop::collection::vec(op(), 1..400)) {
            run_model::<64>(&ops)?;
        }

        /// Records of 128 bytes and more take a two-byte prefix, which may itself wrap.
        #[test]
        fn prop_matches_model_two_byte_prefixes(ops in prop::collection::vec(op(), 1..400)) {
            run_model::<300>(&ops)?;
        }
    }
}
