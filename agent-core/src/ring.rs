//! [`ByteRing`]: a fixed-capacity FIFO of variable-length byte records. The agent's memory
//! buffer (`[sink.buffer] type = "memory"`) keeps its closed, compressed batches in one until
//! the collector acknowledges them.
//!
//! The ring owns its storage and nothing else, kept apart from the framing as postcard keeps
//! its `Flavor`: `[u8; N]` inline (no allocation, and [`ByteRing::new`] is a `const fn`, so a
//! ring can live in a `static` behind the caller's lock) or, with `alloc`, a boxed slice sized
//! at run time ([`ByteRing::with_capacity`]). Each record is stored as a LEB128 varint of its
//! length followed by its bytes; both may wrap around the end of the buffer, so no space is
//! lost to padding and a record comes back as up to two slices ([`ByteRing::iter`]). A record
//! that does not fit is handed back to the caller ([`ByteRing::push`] returns `Err(record)`),
//! as heapless does; nothing already in the ring is ever overwritten.

use core::fmt;

/// A fixed-capacity FIFO of byte records in the bytes of `B` (`[u8; N]`, or `Box<[u8]>` with
/// `alloc`).
///
/// A record of `len` bytes takes [`framed_len`]`(len)` bytes of the ring: a varint length
/// prefix (1 byte up to 127, 2 up to 16 383, 3 up to 2 097 151, ...) and the bytes. The longest
/// record that fits an empty ring is [`ByteRing::max_record_len`]. Zero-length records are
/// allowed and take one byte.
///
/// ```
/// use agent_core::ring::ByteRing;
///
/// let mut ring: ByteRing<[u8; 16]> = ByteRing::new();
/// ring.push(b"hello").unwrap(); // 6 bytes: prefix 5, then the record
/// ring.push(b"world").unwrap();
/// assert_eq!(ring.free(), 4);
/// assert_eq!(ring.push(b"no room"), Err(&b"no room"[..]));
/// assert_eq!(ring.pop(), Some(5));
/// assert_eq!(ring.iter().next(), Some((&b"world"[..], &b""[..])));
///
/// // `new` is const: a ring can be a static.
/// static SHARED: std::sync::Mutex<ByteRing<[u8; 4096]>> = std::sync::Mutex::new(ByteRing::new());
/// SHARED.lock().unwrap().push(b"event").unwrap();
/// ```
pub struct ByteRing<B> {
    buf: B,
    /// Index of the front record's length prefix (`< capacity`, 0 when empty).
    head: usize,
    /// Bytes in use, prefixes included (`<= capacity`).
    used: usize,
    /// Records in the ring.
    len: usize,
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

/// The longest record whose framed length is at most `n` (0 when not even an empty record fits).
pub const fn max_record_len(n: usize) -> usize {
    let mut p = 1;
    while p <= n {
        if prefix_len(n - p) <= p {
            return n - p;
        }
        p += 1;
    }
    0
}

impl<const N: usize> ByteRing<[u8; N]> {
    /// An empty ring of `N` bytes inline. `const`, so it can initialise a `static`.
    ///
    /// Fails to compile when `N` is 0.
    pub const fn new() -> Self {
        const { assert!(N > 0, "a ByteRing needs at least one byte") };
        ByteRing {
            buf: [0; N],
            head: 0,
            used: 0,
            len: 0,
        }
    }
}

impl<const N: usize> Default for ByteRing<[u8; N]> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(feature = "alloc")]
impl ByteRing<alloc::boxed::Box<[u8]>> {
    /// An empty ring of `capacity` bytes (at least 1) on the heap, allocated once, here.
    pub fn with_capacity(capacity: usize) -> Self {
        ByteRing {
            buf: alloc::vec![0u8; capacity.max(1)].into_boxed_slice(),
            head: 0,
            used: 0,
            len: 0,
        }
    }
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> ByteRing<B> {
    /// The capacity in bytes, length prefixes included.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.buf.as_ref().len()
    }

    /// The longest record an empty ring accepts: the largest `len` with
    /// [`framed_len`]`(len) <= capacity`.
    pub fn max_record_len(&self) -> usize {
        max_record_len(self.capacity())
    }

    /// Appends `record` at the back.
    ///
    /// # Errors
    /// Hands `record` back, untouched and unstored, when [`framed_len`]`(record.len())` exceeds
    /// [`free`](Self::free), including when it could never fit (longer than
    /// [`max_record_len`](Self::max_record_len)).
    pub fn push<'r>(&mut self, record: &'r [u8]) -> Result<(), &'r [u8]> {
        let framed = framed_len(record.len());
        if framed > self.free() {
            return Err(record);
        }
        let n = self.capacity();
        let mut tail = self.wrap(self.head + self.used);
        let buf = self.buf.as_mut();

        // Length prefix, byte by byte (it may wrap).
        let mut v = record.len();
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            buf[tail] = if v == 0 { byte } else { byte | 0x80 };
            tail = if tail + 1 >= n {
                tail + 1 - n
            } else {
                tail + 1
            };
            if v == 0 {
                break;
            }
        }

        // The record, in at most two copies.
        let first = record.len().min(n - tail);
        let (a, b) = record.split_at(first);
        buf[tail..tail + first].copy_from_slice(a);
        buf[..b.len()].copy_from_slice(b);

        self.used += framed;
        self.len += 1;
        Ok(())
    }

    /// Removes the front record and returns its length; `None` when the ring is empty.
    pub fn pop(&mut self) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let (start, len) = self.record_at(self.head);
        self.used -= framed_len(len);
        self.len -= 1;
        // Reset to 0 when empty so that later records wrap as late as possible.
        self.head = if self.len == 0 {
            0
        } else {
            self.wrap(start + len)
        };
        Some(len)
    }

    /// The records from front to back, each as two slices to be read in order (the second is
    /// empty unless the record wraps around the end of the buffer), without removing them.
    pub fn iter(&self) -> Iter<'_, B> {
        Iter {
            ring: self,
            pos: self.head,
            left: self.len,
        }
    }

    /// Number of records.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the ring holds no records.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes in use, length prefixes included.
    #[inline]
    pub fn bytes_used(&self) -> usize {
        self.used
    }

    /// Bytes free. A record of `len` bytes fits when [`framed_len`]`(len) <= free()`.
    #[inline]
    pub fn free(&self) -> usize {
        self.capacity() - self.used
    }

    #[inline]
    fn wrap(&self, i: usize) -> usize {
        let n = self.capacity();
        if i >= n { i - n } else { i }
    }

    /// Reads the length prefix at `pos`: the index where the record's bytes start and its length.
    fn record_at(&self, mut pos: usize) -> (usize, usize) {
        let mut len = 0usize;
        let mut shift = 0;
        // The ring wrote this prefix itself; the shift bound only guards against a logic error.
        while shift < usize::BITS {
            let b = self.buf.as_ref()[pos];
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
        let buf = self.buf.as_ref();
        let first = len.min(buf.len() - start);
        (&buf[start..start + first], &buf[..len - first])
    }
}

/// Shows occupancy, not the contents (which may be megabytes).
impl<B: AsRef<[u8]>> fmt::Debug for ByteRing<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ByteRing")
            .field("capacity", &self.buf.as_ref().len())
            .field("len", &self.len)
            .field("bytes_used", &self.used)
            .finish()
    }
}

/// Iterator over a [`ByteRing`]'s records, front to back; see [`ByteRing::iter`].
pub struct Iter<'a, B> {
    ring: &'a ByteRing<B>,
    pos: usize,
    left: usize,
}

impl<'a, B: AsRef<[u8]> + AsMut<[u8]>> Iterator for Iter<'a, B> {
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

impl<B: AsRef<[u8]> + AsMut<[u8]>> ExactSizeIterator for Iter<'_, B> {}

impl<B: AsRef<[u8]>> fmt::Debug for Iter<'_, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter").field("left", &self.left).finish()
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
    static EMPTY: ByteRing<[u8; 8]> = ByteRing::new();

    fn joined((a, b): (&[u8], &[u8])) -> Vec<u8> {
        [a, b].concat()
    }

    fn contents<const N: usize>(ring: &ByteRing<[u8; N]>) -> Vec<Vec<u8>> {
        ring.iter().map(joined).collect()
    }

    #[test]
    fn static_ring_is_empty() {
        assert!(EMPTY.is_empty());
        assert_eq!(EMPTY.len(), 0);
        assert_eq!(EMPTY.free(), 8);
        assert_eq!(EMPTY.iter().next(), None);
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
        assert_eq!(max_record_len(1), 0);
        assert_eq!(max_record_len(128), 127);
        assert_eq!(max_record_len(129), 127);
        assert_eq!(max_record_len(130), 128);
        assert_eq!(max_record_len(4 << 20), (4 << 20) - 4);
    }

    #[test]
    fn record_of_exactly_the_max_size() {
        let mut ring: ByteRing<[u8; 130]> = ByteRing::new();
        let max = [7u8; max_record_len(130)];
        assert_eq!(ring.push(&max), Ok(()));
        assert_eq!(ring.free(), 0);
        assert_eq!(joined(ring.iter().next().unwrap()), max);
        assert_eq!(ring.push(b""), Err(&b""[..]));
        assert_eq!(ring.pop(), Some(128));
        assert!(ring.is_empty());

        // One byte more never fits, even in an empty ring.
        let mut ring: ByteRing<[u8; 129]> = ByteRing::new();
        let too_long = [7u8; 128];
        assert_eq!(ring.push(&too_long), Err(&too_long[..]));
        assert_eq!(ring.push(&too_long[..127]), Ok(()));
        assert_eq!(ring.free(), 1);

        let mut ring: ByteRing<[u8; 1]> = ByteRing::new();
        assert_eq!(ring.push(b"x"), Err(&b"x"[..]));
        assert_eq!(ring.push(b""), Ok(()));
        assert_eq!(ring.iter().next(), Some((&b""[..], &b""[..])));
    }

    #[test]
    fn exact_fit_after_wrapping() {
        let mut ring: ByteRing<[u8; 16]> = ByteRing::new();
        ring.push(b"abcde").unwrap(); // bytes 0..6
        ring.push(b"xyz").unwrap(); // bytes 6..10
        assert_eq!(ring.pop(), Some(5)); // head at 6
        assert_eq!(ring.free(), 12);
        // 11 bytes + 1 prefix: exactly the free space, split 5 | 6 around the end.
        assert_eq!(ring.push(b"0123456789A"), Ok(()));
        assert_eq!(ring.free(), 0);
        assert_eq!(ring.push(b""), Err(&b""[..]));
        assert_eq!(ring.pop(), Some(3));
        assert_eq!(ring.iter().next(), Some((&b"01234"[..], &b"56789A"[..])));
        assert_eq!(ring.pop(), Some(11));
        assert!(ring.is_empty());
        assert_eq!(ring.bytes_used(), 0);
    }

    #[test]
    fn length_prefix_that_wraps() {
        let mut ring: ByteRing<[u8; 200]> = ByteRing::new();
        ring.push(&[1; 196]).unwrap(); // 2-byte prefix: bytes 0..198
        ring.push(b"").unwrap(); // byte 198
        ring.push(b"").unwrap(); // byte 199
        assert_eq!(ring.pop(), Some(196));
        assert_eq!(ring.pop(), Some(0));
        // The next prefix is 2 bytes starting at the last byte of the buffer.
        let rec: Vec<u8> = (0..150u8).collect();
        assert_eq!(ring.push(&rec), Ok(()));
        assert_eq!(ring.pop(), Some(0));
        assert_eq!(ring.iter().next(), Some((&rec[..], &b""[..])));
        assert_eq!(ring.pop(), Some(150));
    }

    #[test]
    fn zero_length_records() {
        let mut ring: ByteRing<[u8; 4]> = ByteRing::new();
        for _ in 0..4 {
            assert_eq!(ring.push(b""), Ok(()));
        }
        assert_eq!(ring.push(b""), Err(&b""[..]));
        assert_eq!(ring.len(), 4);
        assert_eq!(ring.bytes_used(), 4);
        assert_eq!(ring.iter().next(), Some((&b""[..], &b""[..])));
        assert_eq!(ring.pop(), Some(0));
        assert_eq!(ring.pop(), Some(0));
        assert_eq!(ring.len(), 2);
    }

    #[test]
    fn empty_ring_operations() {
        let mut ring: ByteRing<[u8; 8]> = ByteRing::new();
        assert_eq!(ring.pop(), None);
        assert_eq!(ring.iter().next(), None);
        assert_eq!(ring.iter().next(), None);
    }

    #[test]
    fn rejections_are_counted_and_nothing_is_overwritten() {
        let mut ring: ByteRing<[u8; 10]> = ByteRing::new();
        ring.push(b"1234").unwrap();
        ring.push(b"abc").unwrap();
        assert_eq!(ring.free(), 1);
        assert_eq!(ring.push(b"z"), Err(&b"z"[..]));
        assert_eq!(ring.push(&[0; 100]), Err(&[0u8; 100][..]));
        assert_eq!(contents(&ring), [b"1234".to_vec(), b"abc".to_vec()]);
        while ring.pop().is_some() {}
        assert!(ring.is_empty());
        assert_eq!(ring.free(), 10);
    }

    #[test]
    fn fifo_across_many_wrap_arounds() {
        let mut ring: ByteRing<[u8; 97]> = ByteRing::new();
        let mut model = VecDeque::new();
        for round in 0..20_000u32 {
            let len = (round * 7 % 40) as usize;
            let rec: Vec<u8> = (0..len).map(|i| (round as usize + i) as u8).collect();
            while ring.push(&rec).is_err() {
                let (a, b) = ring.iter().next().unwrap();
                assert_eq!([a, b].concat(), model.pop_front().unwrap());
                ring.pop().unwrap();
            }
            model.push_back(rec);
        }
        assert_eq!(contents(&ring), Vec::from(model));
    }

    #[test]
    fn debug_shows_occupancy_not_contents() {
        let mut ring: ByteRing<[u8; 64]> = ByteRing::new();
        ring.push(b"secret-password").unwrap();
        let s = format!("{ring:?}");
        assert!(s.contains("len: 1"), "{s}");
        assert!(!s.contains("115"), "{s}"); // no byte values
    }

    #[cfg(feature = "alloc")]
    #[test]
    fn a_ring_sized_at_run_time_behaves_like_an_inline_one() {
        let mut boxed = ByteRing::with_capacity(16);
        let mut inline: ByteRing<[u8; 16]> = ByteRing::new();
        for round in 0..200usize {
            let rec: Vec<u8> = (0..round % 9).map(|i| (round + i) as u8).collect();
            let (a, b) = (boxed.push(&rec).is_ok(), inline.push(&rec).is_ok());
            assert_eq!(a, b);
            if !a {
                assert_eq!(boxed.pop(), inline.pop());
            }
            assert_eq!(
                boxed.iter().map(joined).collect::<Vec<_>>(),
                contents(&inline)
            );
        }
        assert_eq!(boxed.capacity(), 16);
        assert_eq!(boxed.max_record_len(), 15);
        assert_eq!(ByteRing::with_capacity(0).capacity(), 1);
    }

    #[test]
    fn iter_is_exact_size() {
        let mut ring: ByteRing<[u8; 64]> = ByteRing::new();
        for r in [&b"a"[..], b"bb", b"", b"dddd"] {
            ring.push(r).unwrap();
        }
        let it = ring.iter();
        assert_eq!(it.len(), 4);
        let all: Vec<Vec<u8>> = ring.iter().map(joined).collect();
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
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (any::<usize>(), prop::bool::weighted(0.7), any::<u8>())
                .prop_map(|(raw, small, seed)| Op::Push { raw, small, seed }),
            3 => Just(Op::Pop),
        ]
    }

    struct Model {
        records: VecDeque<Vec<u8>>,
        used: usize,
    }

    impl Model {
        fn pop(&mut self) -> Option<Vec<u8>> {
            let r = self.records.pop_front()?;
            self.used -= framed_len(r.len());
            Some(r)
        }
    }

    fn run_model<const N: usize>(ops: &[Op]) -> Result<(), TestCaseError> {
        let mut ring: ByteRing<[u8; N]> = ByteRing::new();
        let mut model = Model {
            records: VecDeque::new(),
            used: 0,
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
                        model.records.push_back(rec);
                    } else {
                        prop_assert_eq!(got, Err(&rec[..]));
                    }
                }
                Op::Pop => {
                    let want = model.pop().map(|r| r.len());
                    prop_assert_eq!(ring.pop(), want);
                }
            }
            prop_assert_eq!(ring.len(), model.records.len());
            prop_assert_eq!(ring.is_empty(), model.records.is_empty());
            prop_assert_eq!(ring.bytes_used(), model.used);
            prop_assert_eq!(ring.free(), N - model.used);
            prop_assert_eq!(
                ring.iter().next().map(joined),
                model.records.front().cloned()
            );
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
