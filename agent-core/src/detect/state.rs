//! The detector's memory as bytes, so that an agent restart does not forget a brute force in
//! progress, a cooldown, or the user/source pairs and accounts the detector has learnt.
//!
//! Format, version 3, integers little-endian; only the slots in use are written:
//!
//! | field | encoding |
//! |-------|----------|
//! | magic | `ATDM` |
//! | version | u16 (2) |
//! | table shape | sources, users, pairs, accounts: u32 each; failure slots, name slots, slow buckets: u8 each |
//! | hash seed | u32 (the tables are laid out by it, so it comes back with them) |
//! | first success, latest event | option (u8 0/1) of u32, of i64 |
//! | events seen | u64 |
//! | stats | six u64 |
//! | spread | epoch u32, sources 2×8 u64, names 2×4 u64, attempts 2 u32, first times 2 u32, first sequences 2 u64, background u32, half windows learnt u16, fired flag u8, fired epoch u32 |
//! | sources | count u32; per slot: index u32, flags u8, address, 5 u32 times, failures, names, slow |
//! | users | count u32; per slot: index u32, name hash u32, last seen u32, failures, option u32 |
//! | pairs | count u32; per slot: index u32, name hash u32, address, last seen u32 |
//! | accounts | count u32; per slot: index u32, flags u8, name hash u32, last seen u32, created u32, created seq u64, suspicious u32, suspicious seq u64, option (u8) address, failures n u32, first u32, seq u64 |
//!
//! An address is a u8 tag (4 or 6) and its 4 or 16 bytes; failures are head u8, len u8 and
//! the slots' last times (u32), first times (u32), first sequences (u64) and counts (u16); names
//! are len u8, overflow u16, overflow time u32 and the slots' hashes and times (u32); slow is
//! flags u8, epoch u32, the buckets (u16), two name words (u64), first time u32, first sequence
//! u64, and the two alert times u32. The bytes carry no checksum: the caller stores them with
//! one.
//!
//! Version 2 has the same layout, but its sources table, sources' names, users table and bit
//! sets were keyed by FNV-1a, which version 3 keeps only for the pairs and accounts (see
//! `name_hash`): it is read and brought forward (see `Detector::migrate_v2`). Any other version
//! is refused with [`StateError::Version`]: the detector then starts empty, as after a first
//! start.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{
    Account, DetectStats, Detector, FAILURE_SLOTS, Failures, NAME_SLOTS, Names, Pair, SLOW_BUCKETS,
    Slow, SourceState, Spread, Tags, UserState, age, pair_key, set_of, source_hash, tag, victim,
};

/// The first bytes of a saved memory.
pub(crate) const STATE_MAGIC: [u8; 4] = *b"ATDM";
/// The format version [`Detector::save_state`] writes.
pub(crate) const STATE_VERSION: u16 = 3;

/// Why [`Detector::restore_state`] refused saved bytes (the detector is then left empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StateError {
    /// Not a saved detector memory (magic).
    NotState,
    /// Written in another format version (older or newer).
    Version(u16),
    /// Saved by a detector with tables of other sizes.
    Shape,
    /// Cut short, too long, or a value out of range.
    Damaged,
}

impl core::fmt::Display for StateError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StateError::NotState => f.write_str("not a saved detector memory"),
            StateError::Version(v) => {
                write!(
                    f,
                    "detector memory format {v} is not this agent's ({STATE_VERSION})"
                )
            }
            StateError::Shape => f.write_str("saved by a detector with tables of other sizes"),
            StateError::Damaged => f.write_str("detector memory is damaged"),
        }
    }
}

impl core::error::Error for StateError {}

const FLAG_FAILED: u8 = 1;
const FLAG_SUCCEEDED: u8 = 2;
const FLAG_BRUTE_FIRED: u8 = 4;
const FLAG_SPRAY_FIRED: u8 = 8;
const SOURCE_FLAGS: u8 = FLAG_FAILED | FLAG_SUCCEEDED | FLAG_BRUTE_FIRED | FLAG_SPRAY_FIRED;

const FLAG_LOGGED_IN: u8 = 1;
const FLAG_SUDO: u8 = 2;
const FLAG_NEW: u8 = 4;
const FLAG_FLAGGED: u8 = 8;
const FLAG_FAILURES_FIRED: u8 = 16;
const FLAG_FLAGGED_HIGH: u8 = 32;
/// Added without a new version: an older memory reads as "not returning" (the first sudo
/// waits for the account's next login).
const FLAG_RETURNING: u8 = 64;
const ACCOUNT_FLAGS: u8 = 127;

struct Out<F: FnMut(&[u8])>(F);

impl<F: FnMut(&[u8])> Out<F> {
    fn bytes(&mut self, b: &[u8]) {
        (self.0)(b);
    }
    fn u8(&mut self, v: u8) {
        self.bytes(&[v]);
    }
    fn u16(&mut self, v: u16) {
        self.bytes(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
    fn opt_u32(&mut self, v: Option<u32>) {
        self.u8(u8::from(v.is_some()));
        self.u32(v.unwrap_or(0));
    }
    fn ip(&mut self, ip: IpAddr) {
        match ip {
            IpAddr::V4(a) => {
                self.u8(4);
                self.bytes(&a.octets());
            }
            IpAddr::V6(a) => {
                self.u8(6);
                self.bytes(&a.octets());
            }
        }
    }
    fn failures(&mut self, f: &Failures) {
        self.u8(f.head);
        self.u8(f.len);
        for t in f.t {
            self.u32(t);
        }
        for t in f.t0 {
            self.u32(t);
        }
        for q in f.seq {
            self.u64(q);
        }
        for n in f.n {
            self.u16(n);
        }
    }
    fn slow(&mut self, s: &Slow) {
        self.u8(bit(s.brute_fired, 1) | bit(s.spray_fired, 2));
        self.u32(s.epoch);
        for n in s.n {
            self.u16(n);
        }
        for w in s.names {
            self.u64(w);
        }
        self.u32(s.first_t);
        self.u64(s.first_seq);
        self.u32(s.brute_at);
        self.u32(s.spray_at);
    }
    fn spread(&mut self, s: &Spread) {
        self.u32(s.epoch);
        for w in s.srcs.iter().flatten().chain(s.names.iter().flatten()) {
            self.u64(*w);
        }
        for v in s.n.iter().chain(&s.first_t) {
            self.u32(*v);
        }
        for q in s.first_seq {
            self.u64(q);
        }
        self.u32(s.baseline);
        self.u16(s.seen);
        self.u8(u8::from(s.fired));
        self.u32(s.fired_epoch);
    }
    fn opt_ip(&mut self, ip: Option<IpAddr>) {
        self.u8(u8::from(ip.is_some()));
        if let Some(ip) = ip {
            self.ip(ip);
        }
    }
    fn names(&mut self, n: &Names) {
        self.u8(n.len);
        self.u16(n.overflow);
        self.u32(n.overflow_t);
        for h in n.h {
            self.u32(h);
        }
        for t in n.t {
            self.u32(t);
        }
    }
}

struct In<'a>(&'a [u8]);

impl In<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], StateError> {
        let (head, rest) = self.0.split_first_chunk::<N>().ok_or(StateError::Damaged)?;
        self.0 = rest;
        Ok(*head)
    }
    fn u8(&mut self) -> Result<u8, StateError> {
        Ok(self.take::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, StateError> {
        Ok(u16::from_le_bytes(self.take()?))
    }
    fn u32(&mut self) -> Result<u32, StateError> {
        Ok(u32::from_le_bytes(self.take()?))
    }
    fn u64(&mut self) -> Result<u64, StateError> {
        Ok(u64::from_le_bytes(self.take()?))
    }
    fn flag(&mut self) -> Result<bool, StateError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(StateError::Damaged),
        }
    }
    fn opt_u32(&mut self) -> Result<Option<u32>, StateError> {
        let some = self.flag()?;
        let v = self.u32()?;
        Ok(some.then_some(v))
    }
    fn ip(&mut self) -> Result<IpAddr, StateError> {
        match self.u8()? {
            4 => Ok(IpAddr::V4(Ipv4Addr::from(self.take::<4>()?))),
            6 => Ok(IpAddr::V6(Ipv6Addr::from(self.take::<16>()?))),
            _ => Err(StateError::Damaged),
        }
    }
    fn failures(&mut self) -> Result<Failures, StateError> {
        let mut f = Failures::EMPTY;
        f.head = self.u8()?;
        f.len = self.u8()?;
        if usize::from(f.head) >= FAILURE_SLOTS || usize::from(f.len) > FAILURE_SLOTS {
            return Err(StateError::Damaged);
        }
        for t in &mut f.t {
            *t = self.u32()?;
        }
        for t in &mut f.t0 {
            *t = self.u32()?;
        }
        for q in &mut f.seq {
            *q = self.u64()?;
        }
        for n in &mut f.n {
            *n = self.u16()?;
        }
        f.recount();
        Ok(f)
    }
    fn slow(&mut self) -> Result<Slow, StateError> {
        let mut s = Slow::EMPTY;
        let flags = self.u8()?;
        if flags & !3 != 0 {
            return Err(StateError::Damaged);
        }
        (s.brute_fired, s.spray_fired) = (flags & 1 != 0, flags & 2 != 0);
        s.epoch = self.u32()?;
        for n in &mut s.n {
            *n = self.u16()?;
        }
        for w in &mut s.names {
            *w = self.u64()?;
        }
        s.first_t = self.u32()?;
        s.first_seq = self.u64()?;
        s.brute_at = self.u32()?;
        s.spray_at = self.u32()?;
        Ok(s)
    }
    fn spread(&mut self) -> Result<Spread, StateError> {
        let mut s = Spread::EMPTY;
        s.epoch = self.u32()?;
        for w in s
            .srcs
            .iter_mut()
            .flatten()
            .chain(s.names.iter_mut().flatten())
        {
            *w = self.u64()?;
        }
        for v in s.n.iter_mut().chain(&mut s.first_t) {
            *v = self.u32()?;
        }
        for q in &mut s.first_seq {
            *q = self.u64()?;
        }
        s.baseline = self.u32()?;
        // Distinct sources per half window ×16: no more than the bitmap's bits ×16 (a larger
        // one would overflow the moving average).
        if s.baseline > s.srcs[0].len() as u32 * 64 * 16 {
            return Err(StateError::Damaged);
        }
        s.seen = self.u16()?;
        s.fired = self.flag()?;
        s.fired_epoch = self.u32()?;
        s.recount();
        Ok(s)
    }
    fn opt_ip(&mut self) -> Result<Option<IpAddr>, StateError> {
        match self.flag()? {
            true => Ok(Some(self.ip()?)),
            false => Ok(None),
        }
    }
    fn names(&mut self) -> Result<Names, StateError> {
        let mut n = Names::EMPTY;
        n.len = self.u8()?;
        if usize::from(n.len) > NAME_SLOTS {
            return Err(StateError::Damaged);
        }
        n.overflow = self.u16()?;
        n.overflow_t = self.u32()?;
        for h in &mut n.h {
            *h = self.u32()?;
        }
        for t in &mut n.t {
            *t = self.u32()?;
        }
        Ok(n)
    }
    /// A slot index below `len`.
    fn index(&mut self, len: usize) -> Result<usize, StateError> {
        let i = self.u32()? as usize;
        if i < len {
            Ok(i)
        } else {
            Err(StateError::Damaged)
        }
    }
}

/// `flag` when `on`, else 0.
fn bit(on: bool, flag: u8) -> u8 {
    if on { flag } else { 0 }
}

fn table_len(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl<const SOURCES: usize, const USERS: usize, const PAIRS: usize, const ACCOUNTS: usize>
    Detector<SOURCES, USERS, PAIRS, ACCOUNTS>
{
    /// Writes the detector's memory (see the module documentation) to `out`, in pieces. The
    /// configuration is not part of it: [`Detector::restore_state`] keeps the one in force,
    /// all but the hash seed.
    pub fn save_state(&self, out: impl FnMut(&[u8])) {
        let mut o = Out(out);
        o.bytes(&STATE_MAGIC);
        o.u16(STATE_VERSION);
        o.u32(table_len(SOURCES));
        o.u32(table_len(USERS));
        o.u32(table_len(PAIRS));
        o.u32(table_len(ACCOUNTS));
        o.u8(FAILURE_SLOTS as u8);
        o.u8(NAME_SLOTS as u8);
        o.u8(SLOW_BUCKETS as u8);
        o.u32(self.config.hash_seed);
        o.opt_u32(self.first_success);
        o.u8(u8::from(self.latest.is_some()));
        o.bytes(&self.latest.unwrap_or(0).to_le_bytes());
        o.u64(self.events);
        let s = self.stats;
        for v in [
            s.untimed,
            s.source_evictions,
            s.user_evictions,
            s.pair_evictions,
            s.account_evictions,
            s.allowed,
        ] {
            o.u64(v);
        }
        o.spread(&self.spread);

        o.u32(table_len(self.sources.iter().filter(|s| s.used).count()));
        for (i, s) in self.sources.iter().enumerate().filter(|(_, s)| s.used) {
            o.u32(table_len(i));
            o.u8(bit(s.failed, FLAG_FAILED)
                | bit(s.succeeded, FLAG_SUCCEEDED)
                | bit(s.brute_fired, FLAG_BRUTE_FIRED)
                | bit(s.spray_fired, FLAG_SPRAY_FIRED));
            o.ip(s.ip);
            for t in [
                s.last_seen,
                s.last_failure,
                s.success,
                s.brute_at,
                s.spray_at,
            ] {
                o.u32(t);
            }
            o.failures(&s.failures);
            o.names(&s.names);
            o.slow(&s.slow);
        }
        o.u32(table_len(self.users.iter().filter(|u| u.used).count()));
        for (i, u) in self.users.iter().enumerate().filter(|(_, u)| u.used) {
            o.u32(table_len(i));
            o.u32(u.hash);
            o.u32(u.last_seen);
            o.failures(&u.failures);
            o.opt_u32(u.success);
        }
        o.u32(table_len(self.pairs.iter().filter(|p| p.used).count()));
        for (i, p) in self.pairs.iter().enumerate().filter(|(_, p)| p.used) {
            o.u32(table_len(i));
            o.u32(p.user);
            o.ip(p.ip);
            o.u32(p.last_seen);
        }
        o.u32(table_len(self.accounts.iter().filter(|a| a.used).count()));
        for (i, a) in self.accounts.iter().enumerate().filter(|(_, a)| a.used) {
            o.u32(table_len(i));
            o.u8(bit(a.logged_in, FLAG_LOGGED_IN)
                | bit(a.sudo, FLAG_SUDO)
                | bit(a.is_new, FLAG_NEW)
                | bit(a.flagged, FLAG_FLAGGED)
                | bit(a.failures_fired, FLAG_FAILURES_FIRED)
                | bit(a.flagged_high, FLAG_FLAGGED_HIGH)
                | bit(a.returning, FLAG_RETURNING));
            o.u32(a.hash);
            o.u32(a.last_seen);
            o.u32(a.created);
            o.u64(a.created_seq);
            o.u32(a.suspicious);
            o.u64(a.suspicious_seq);
            o.opt_ip(a.suspicious_ip);
            o.u32(a.fail_n);
            o.u32(a.fail_t);
            o.u64(a.fail_seq);
        }
    }

    /// The memory [`Detector::save_state`] wrote, as one vector.
    #[cfg(feature = "alloc")]
    pub fn state_bytes(&self) -> alloc::vec::Vec<u8> {
        let mut v = alloc::vec::Vec::new();
        self.save_state(|b| v.extend_from_slice(b));
        v
    }

    /// Replaces the detector's memory with one [`Detector::save_state`] wrote, keeping the
    /// configuration in force except its hash seed (the saved tables are laid out by the saved
    /// one). On error the detector is left empty, as [`Detector::new`] makes it.
    pub fn restore_state(&mut self, bytes: &[u8]) -> Result<(), StateError> {
        let result = self.restore_inner(bytes);
        if result.is_err() {
            self.clear();
        }
        result
    }

    fn clear(&mut self) {
        self.sources.fill(SourceState::EMPTY);
        self.users.fill(UserState::EMPTY);
        self.pairs.fill(Pair::EMPTY);
        self.accounts.fill(Account::EMPTY);
        self.source_tags = Tags::EMPTY;
        self.user_tags = Tags::EMPTY;
        self.pair_tags = Tags::EMPTY;
        self.account_tags = Tags::EMPTY;
        self.spread = Spread::EMPTY;
        self.events = 0;
        self.first_success = None;
        self.latest = None;
        self.stats = DetectStats::default();
    }

    fn restore_inner(&mut self, bytes: &[u8]) -> Result<(), StateError> {
        let mut r = In(bytes);
        if r.take::<4>().map_err(|_| StateError::NotState)? != STATE_MAGIC {
            return Err(StateError::NotState);
        }
        let version = r.u16()?;
        if version != STATE_VERSION && version != 2 {
            return Err(StateError::Version(version));
        }
        let shape = (
            [r.u32()?, r.u32()?, r.u32()?, r.u32()?],
            [r.u8()?, r.u8()?, r.u8()?],
        );
        let ours = (
            [
                table_len(SOURCES),
                table_len(USERS),
                table_len(PAIRS),
                table_len(ACCOUNTS),
            ],
            [FAILURE_SLOTS as u8, NAME_SLOTS as u8, SLOW_BUCKETS as u8],
        );
        if shape != ours {
            return Err(StateError::Shape);
        }
        self.clear();
        let seed = r.u32()?;
        self.first_success = r.opt_u32()?;
        let has_latest = r.flag()?;
        let latest = i64::from_le_bytes(r.take()?);
        self.latest = has_latest.then_some(latest);
        self.events = r.u64()?;
        self.stats = DetectStats {
            untimed: r.u64()?,
            source_evictions: r.u64()?,
            user_evictions: r.u64()?,
            pair_evictions: r.u64()?,
            account_evictions: r.u64()?,
            allowed: r.u64()?,
        };
        self.spread = r.spread()?;

        for _ in 0..r.u32()? {
            let i = r.index(SOURCES)?;
            let flags = r.u8()?;
            if flags & !SOURCE_FLAGS != 0 {
                return Err(StateError::Damaged);
            }
            let ip = r.ip()?;
            let [last_seen, last_failure, success, brute_at, spray_at] =
                [r.u32()?, r.u32()?, r.u32()?, r.u32()?, r.u32()?];
            self.sources[i] = SourceState {
                used: true,
                failed: flags & FLAG_FAILED != 0,
                succeeded: flags & FLAG_SUCCEEDED != 0,
                brute_fired: flags & FLAG_BRUTE_FIRED != 0,
                spray_fired: flags & FLAG_SPRAY_FIRED != 0,
                ip,
                last_seen,
                last_failure,
                success,
                brute_at,
                spray_at,
                failures: r.failures()?,
                names: r.names()?,
                slow: r.slow()?,
            };
        }
        for _ in 0..r.u32()? {
            let i = r.index(USERS)?;
            self.users[i] = UserState {
                used: true,
                hash: r.u32()?,
                last_seen: r.u32()?,
                failures: r.failures()?,
                success: r.opt_u32()?,
            };
        }
        for _ in 0..r.u32()? {
            let i = r.index(PAIRS)?;
            self.pairs[i] = Pair {
                used: true,
                user: r.u32()?,
                ip: r.ip()?,
                last_seen: r.u32()?,
            };
        }
        for _ in 0..r.u32()? {
            let i = r.index(ACCOUNTS)?;
            let flags = r.u8()?;
            if flags & !ACCOUNT_FLAGS != 0 {
                return Err(StateError::Damaged);
            }
            self.accounts[i] = Account {
                used: true,
                logged_in: flags & FLAG_LOGGED_IN != 0,
                sudo: flags & FLAG_SUDO != 0,
                is_new: flags & FLAG_NEW != 0,
                flagged: flags & FLAG_FLAGGED != 0,
                failures_fired: flags & FLAG_FAILURES_FIRED != 0,
                flagged_high: flags & FLAG_FLAGGED_HIGH != 0,
                returning: flags & FLAG_RETURNING != 0,
                hash: r.u32()?,
                last_seen: r.u32()?,
                created: r.u32()?,
                created_seq: r.u64()?,
                suspicious: r.u32()?,
                suspicious_seq: r.u64()?,
                suspicious_ip: r.opt_ip()?,
                fail_n: r.u32()?,
                fail_t: r.u32()?,
                fail_seq: r.u64()?,
            };
        }
        if !r.0.is_empty() {
            return Err(StateError::Damaged);
        }
        self.config.hash_seed = seed;
        if version == 2 {
            self.migrate_v2();
        }
        self.retag();
        Ok(())
    }

    /// Brings a version 2 memory forward. Its sources sit in the table sets of their FNV-1a
    /// hash: each moves to the set of its [`source_hash`] (where a set overflows, the least
    /// worth goes, as on any insertion). What was kept only as FNV-1a hashes of names (a
    /// source's names, the users table, the name and source bits of the long window and the
    /// host) is dropped: read beside new hashes, a name would count twice and raise a spray
    /// that did not happen. The attempt counts, the latches, the pairs and accounts learnt and
    /// the host's background stay.
    fn migrate_v2(&mut self) {
        let (seed, window) = (self.config.hash_seed, self.config.slow.window_secs);
        let now = self.latest.map_or(0, |t| t as u32);
        let home = |s: &SourceState| set_of(SOURCES, source_hash(seed, s.ip));
        for s in self.sources.iter_mut().filter(|s| s.used) {
            s.names = Names::EMPTY;
            s.slow.names = [0; 2];
        }
        // Slots before `i` hold a source at home or none. A source away from home takes an
        // empty slot of its set, else swaps with one that is away too (that one is looked at
        // next, from slot `i`), else it or the set's least worth is dropped.
        let mut i = 0;
        while i < SOURCES {
            let s = &self.sources[i];
            if !s.used || home(s).contains(&i) {
                i += 1;
                continue;
            }
            let set = home(s);
            let spot = set
                .clone()
                .find(|&j| !self.sources[j].used)
                .or_else(|| set.clone().find(|&j| !home(&self.sources[j]).contains(&j)));
            if let Some(j) = spot {
                self.sources.swap(i, j);
                continue;
            }
            let v = victim(&self.sources, set, now, |s| s.slow.weight(now, window));
            let rank = |s: &SourceState| (s.slow.weight(now, window), age(now, s.last_seen));
            let (mine, theirs) = (rank(&self.sources[i]), rank(&self.sources[v]));
            if mine.0 > theirs.0 || (mine.0 == theirs.0 && mine.1 < theirs.1) {
                self.sources[v] = self.sources[i];
            }
            self.sources[i] = SourceState::EMPTY;
            self.stats.source_evictions += 1;
        }
        self.users.fill(UserState::EMPTY);
        self.spread.srcs = [[0; 8]; 2];
        self.spread.names = [[0; 4]; 2];
        self.spread.recount();
        self.spread.moved = true;
    }

    /// Sets the tags of the used slots from their keys (the tags are not saved: they follow
    /// from the keys and the hash seed).
    fn retag(&mut self) {
        let seed = self.config.hash_seed;
        for (t, s) in self.source_tags.0.iter_mut().zip(&self.sources) {
            *t = if s.used {
                tag(source_hash(seed, s.ip))
            } else {
                0
            };
        }
        for (t, u) in self.user_tags.0.iter_mut().zip(&self.users) {
            *t = if u.used { tag(u.hash) } else { 0 };
        }
        for (t, p) in self.pair_tags.0.iter_mut().zip(&self.pairs) {
            *t = if p.used {
                tag(pair_key(seed, p.user, p.ip))
            } else {
                0
            };
        }
        for (t, a) in self.account_tags.0.iter_mut().zip(&self.accounts) {
            *t = if a.used { tag(a.hash) } else { 0 };
        }
    }
}
