//! Edge detections: alerts computed on the host from the parsed events, with fixed-size state.
//!
//! A [`Detector`] is fed every [`LoginEvent`] in log order ([`Detector::observe_seq`], with the
//! event's `event.sequence`) and answers with at most [`MAX_ALERTS`] [`Alert`]s. It does no I/O,
//! reads no clock (time is the event's `@timestamp`) and never allocates: every table is a
//! const-generic array, sized once.
//!
//! # Severity
//!
//! `event.severity` is one of three values (ECS's 0-100 scale):
//!
//! - **73, high: look now.** A login or a privilege that is likely not the account owner's: a
//!   password login right after guessing, a login from a new address after a spray, sudo right
//!   after such a login, an account added to a privileged group.
//! - **47, medium: look today.** An attack in progress that has not (yet) worked, or a change
//!   that is usually an administrator's but must be checked (an account created, a password
//!   reset by root, root over the network).
//! - **21, low: context.** Expected now and then: a user's new address, a first sudo, a login
//!   outside working hours.
//!
//! # Rules
//!
//! | rule | fires when | severity |
//! | --- | --- | --- |
//! | [`Rule::BruteForce`] | one source IP makes ≥ N failed attempts within W (10 in 5 min) | 47 |
//! | [`Rule::PasswordSpray`] | one source IP fails against ≥ K distinct existing accounts within W (5 in 10 min) | 47 |
//! | [`Rule::SlowBruteForce`] | one source IP makes ≥ N attempts within a long window (40 in 6 h), never logging in within it | 47 |
//! | [`Rule::SlowSpray`] | one source IP fails against ≥ K existing accounts within the long window (6 in 6 h) | 47 |
//! | [`Rule::DistributedSpray`] | ≥ S sources fail against ≥ U names on this host within W, above its learnt background (20, 10, 1 h) | 47 |
//! | [`Rule::SuccessAfterFailures`] | a login after ≥ M failures that can explain it (3 in 10 min), see below | 73 / 47 / 21 |
//! | [`Rule::FirstSeenSource`] | a password login of a known user from an IP (and /16 or /48) never seen for that user nor shared by other users | 21 |
//! | [`Rule::RootLogin`] | root (or uid 0) logs in over the network from a source not allow-listed | 47, 73 password from a new address |
//! | [`Rule::OffHoursLogin`] | a network login outside working hours (opt-in) | 21, 47 from a new address |
//! | [`Rule::NewAccountLogin`] | the first login of an account created in the last days (3), not from an address other users share (the creation's alert covers the new colleague) | 47 |
//! | [`Rule::PrivilegeAfterLogin`] | sudo or su by a user within W (30 min) of a login of theirs that alerted | 73 after a medium/high login alert, else 47 |
//! | [`Rule::SudoRefused`] | `NOT in sudoers`, `user NOT authorized`, `command not allowed` | 47 (73 after a suspicious login) |
//! | [`Rule::PrivilegeFailures`] | ≥ N sudo/su password failures by a user within W (3 in 10 min) | 47 |
//! | [`Rule::FirstSudo`] | the first sudo by a user on this host who had logged in here before the current login (after a week of learning) | 21 |
//! | [`Rule::AccountCreated`] | `useradd`: a new account | 47 |
//! | [`Rule::PrivilegedGroup`] | an account added to a privileged group (sudo, wheel, adm, root, docker, lxd) | 73 |
//! | [`Rule::PasswordReset`] | root (or `chpasswd`) changed another account's password | 47 |
//!
//! # Success after failures: which failures explain a login
//!
//! Guessing a password explains a password login, not a key login. So the source scope (failures
//! from the login's own address since its last success) gives 73 for a password (or
//! keyboard-interactive) login from an address new for the user, 47 for one from the user's usual
//! address (three typos) or for a key login from a new address, and nothing
//! for a key login from an address the user has used before (a monitoring script that tries a
//! stale password before its key). The user scope (failures against the user from any address,
//! the spray-then-login case) never counts for a key login from a known address (internet
//! scanners guessing `root` do not make the backup server's hourly root key login suspicious);
//! otherwise it gives 73 when the login's address is new for the user and 21 when it is not.
//! For a password login from an address new for the user, the user scope counts the failures
//! since the user's last success over the long window ([`SlowAttack::window_secs`], used
//! whether or not the slow rules are on) rather than the short one: the account was being
//! guessed, no login of its owner has followed, and now its password works from a network it
//! never used, whatever the pause the attacker took. Every other login counts the short window
//! only (a user's own typos, scanners guessing `root`).
//!
//! # What counts as a failed attempt
//!
//! One failed sshd password produces several lines: `pam_unix(sshd:auth): authentication
//! failure` (no port, no method), for keyboard-interactive also `error: PAM: Authentication
//! failure for ...` (method, no port), then `Failed <method> for ... port N ssh2`; a connection
//! that hits `MaxAuthTries` adds `maximum authentication attempts exceeded`, `Disconnecting ...:
//! Too many authentication failures` and `PAM N more authentication failures`, which summarise
//! attempts already logged one by one. An invalid user adds `Invalid user X from ... port N`
//! before its attempts; a `DenyUsers` user adds `User X ... not allowed`.
//!
//! So the attempt count ([`attempts`]) takes exactly one line per attempt: a failure
//! (`auth_failure` or `invalid_user`) from a source IP **that carries both an authentication
//! method other than `none` and a source port**: sshd's `Failed <method> for ... port N`,
//! dropbear's `Bad password attempt for ... from ip:port`. The `none` method is the client asking
//! which methods are allowed, not a guess. Lines without a method count only for programs other
//! than sshd when they say `invalid_user` with a port (dropbear's `Login attempt for nonexistent
//! user`, after which dropbear logs nothing per password). An attempt weighs its `count` (rsyslog's
//! `message repeated N times: [ Failed password ... ]` is N attempts). Everything else, PAM lines
//! and summaries included, adds nothing to the count. It is taken into account elsewhere: every
//! counted attempt adds its user name to the source's set of distinct names for the
//! password-spray rule (a set, so repeats are harmless; names only listed by `Invalid user`
//! notices, with no password tried, do not count), and any failure line keeps the source
//! "active" for the re-arm rule below. Failures whose source is a host name
//! (`source.domain`, sshd with `UseDNS yes`) or absent are not tracked: the rules key on IPs.
//! Remote `login` (telnet) failures carry no port and are not counted either.
//!
//! # Windows, re-arming, time
//!
//! Short windows slide: each source keeps its last [`FAILURE_SLOTS`] attempt lines, each slot
//! with its first and last time (exact while the thresholds are below that; beyond it the two
//! oldest slots are merged: the merged slot stays in the window until its last attempt leaves
//! it, so a failure may be counted for longer than it belongs there, never shorter, while the
//! alert's `event.start` is still its first attempt) and its last [`NAME_SLOTS`] distinct user
//! names (names pushed out while still inside the window are kept as a count). The long window
//! of the slow rules is [`SLOW_BUCKETS`] buckets of counts and two half-window bitmaps of user
//! names (64 bits: the distinct count is a lower bound), in fixed memory whatever the rate.
//! The host-wide distributed-spray window is two half-window bitmaps of sources (512 bits) and
//! names (256 bits); its background is a moving average over past half windows.
//!
//! A rule fires once per attack, not once per further failure: after an alert it is disarmed
//! for that source and re-arms when the source has been quiet for the rule's window, or after
//! `cooldown_secs` (default one hour) for an attack that never pauses. Success-after-failures
//! fires at most once per success, and every success starts the count afresh.
//!
//! Times are kept as 32-bit seconds and compared with wrapping arithmetic, so state stays exact
//! across any span below 68 years. Events without a timestamp are ignored by the windowed rules
//! (counted in [`DetectStats::untimed`]). Lines out of order (an earlier time after a later one)
//! are handled: an entry "in the future" counts as age zero; nothing underflows or panics.
//!
//! # Capacity and eviction
//!
//! Each table is set-associative: a key (IP, user name hash, user/IP pair) hashes to a set of 8
//! slots ([`WAYS`]) and, when the set is full, a slot of that set is reused (counted in
//! [`DetectStats`]): for sources, the one with the fewest attempts in the long window (then the
//! least recently seen), so that a flood of one-off sources evicts itself and not the
//! persistent attacker; elsewhere the least recently seen. The hash is FNV-1a seeded with
//! [`DetectConfig::hash_seed`]: the agent passes a random seed so that an attacker cannot aim
//! addresses at one set. Accounts (users that logged in, used sudo or were changed) have a table
//! of their own, which failed guesses cannot fill. A lookup reads the set's tags (one cache
//! line, [`Tags`]) and then only a slot whose tag matches.
//!
//! The default [`Detector`] (`Detector<1024, 256, 1024, 256>`) size is checked in a test
//! (`core::mem::size_of`). It is built by value: on a small stack, put it in a `static` or a
//! `Box`.

use core::fmt;
use core::net::IpAddr;
use core::ops::Range;

use crate::event::{Action, LoginEvent, Method, Outcome};
use crate::text::Text;
use crate::time::Timestamp;

mod state;
pub use state::StateError;

/// At most this many alerts come out of one event.
pub(crate) const MAX_ALERTS: usize = 6;

/// Attempt lines remembered per source and per user; thresholds up to this are exact.
pub(crate) const FAILURE_SLOTS: usize = 12;

/// Distinct user names remembered per source (more are kept as a count).
pub(crate) const NAME_SLOTS: usize = 8;

/// Buckets of the slow rules' long window.
pub(crate) const SLOW_BUCKETS: usize = 12;

/// Bytes of a user name copied into an [`Alert`]; longer names are cut and flagged.
pub(crate) const NAME_CAP: usize = 32;

/// Slots per set in every table: a key can live in one of this many slots.
pub(crate) const WAYS: usize = 8;

/// Event sequence numbers an alert cites at most.
pub(crate) const MAX_CITES: usize = 4;

/// Networks per rule's allow-list.
pub const ALLOW_NETS: usize = 8;

/// User names per rule's allow-list.
pub const ALLOW_USERS: usize = 8;

/// Privileged group names at most.
pub const MAX_GROUPS: usize = 12;

/// Severity 21: context.
pub(crate) const LOW: u8 = 21;
/// Severity 47: look today.
pub const MEDIUM: u8 = 47;
/// Severity 73: look now.
pub const HIGH: u8 = 73;

/// The alerts from one event.
pub type Alerts = heapless::Vec<Alert, MAX_ALERTS>;

/// The default detector: 1024 sources, 256 users, 1024 user/IP pairs, 256 accounts.
pub type DefaultDetector = Detector<1024, 256, 1024, 256>;

// ---------------------------------------------------------------------------------------------
// Configuration

/// Brute force: many failed attempts from one source IP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BruteForce {
    /// Defaults to `true`.
    pub enabled: bool,
    /// Failed attempts (weighted by `count`) that make an alert. Defaults to 10.
    pub threshold: u32,
    /// The sliding window, in seconds. Defaults to 300 (5 minutes).
    pub window_secs: u32,
    /// After an alert, the rule fires again for the same source once this long has passed even
    /// if the attack never paused; 0 turns this off (only a quiet window re-arms). Defaults to
    /// 3600 (1 hour).
    pub cooldown_secs: u32,
}

/// Password spray: one source IP failing against many user names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PasswordSpray {
    /// Defaults to `true`.
    pub enabled: bool,
    /// Distinct user names that make an alert. Defaults to 5.
    pub threshold: u32,
    /// The sliding window, in seconds. Defaults to 600 (10 minutes).
    pub window_secs: u32,
    /// As [`BruteForce::cooldown_secs`]. Defaults to 3600 (1 hour).
    pub cooldown_secs: u32,
}

/// Success after failures: a login that follows failed attempts that can explain it (see the
/// module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SuccessAfterFailures {
    /// Defaults to `true`.
    pub enabled: bool,
    /// Failed attempts since the last success that make a success suspicious. Defaults to 3.
    pub threshold: u32,
    /// The window, in seconds. Defaults to 600 (10 minutes).
    pub window_secs: u32,
    /// Also count failures per user name, from any source (the spray-then-login case), at its
    /// own severity; for a password login from an address new for the user, over the long
    /// window ([`SlowAttack::window_secs`]). Defaults to `true`.
    pub by_user: bool,
}

/// First-seen source: a login for a user from an IP not seen for that user before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FirstSeenSource {
    /// Defaults to `true`.
    pub enabled: bool,
    /// Learning period, in seconds from the first success the detector sees: pairs are recorded
    /// without alerts. Users with no
    /// recorded address (new, or evicted) never alert: there is nothing to compare with.
    /// Defaults to 86 400 (one day).
    pub learning_secs: u32,
    /// Also report key logins (publickey, hostbased, GSSAPI) from a new address: a key is
    /// much harder to steal than a password, and people's keys travel with their laptops.
    /// Defaults to `false`.
    pub key_logins: bool,
}

/// Slow brute force and slow spray: the long window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlowAttack {
    /// Defaults to `true`.
    pub enabled: bool,
    /// Failed attempts from one source within the window. Defaults to 40.
    pub brute_threshold: u32,
    /// Distinct existing accounts one source failed against within the window. Defaults to 6.
    pub spray_threshold: u32,
    /// The long window, in seconds (kept in [`SLOW_BUCKETS`] buckets); also the user scope's
    /// window of [`SuccessAfterFailures`] for a password login from a new address. Defaults to
    /// 21 600 (6 h).
    pub window_secs: u32,
}

/// Distributed spray on this host: many sources against many names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DistributedSpray {
    /// Defaults to `true`.
    pub enabled: bool,
    /// Distinct failing sources that make an alert, at least. Defaults to 20.
    pub min_sources: u32,
    /// Distinct user names they failed against, at least. Defaults to 10.
    pub min_users: u32,
    /// The window, in seconds. Defaults to 3600 (1 hour).
    pub window_secs: u32,
    /// The sources must also exceed this many times the learnt background (distinct failing
    /// sources per window). Defaults to 3.
    pub baseline_factor: u32,
}

/// Privilege after login, refused sudo, repeated sudo/su failures, first sudo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Privilege {
    /// Defaults to `true`.
    pub enabled: bool,
    /// sudo or su within this many seconds after a login of that user that alerted. Defaults to 1800.
    pub window_secs: u32,
    /// sudo/su password failures by one user that make an alert. Defaults to 3.
    pub failure_threshold: u32,
    /// ...within this many seconds. Defaults to 600.
    pub failure_window_secs: u32,
    /// Report a user's first sudo on this host. Defaults to `true`.
    pub first_sudo: bool,
    /// ...once the detector has seen this many seconds of logins (people use sudo on a host
    /// they rarely visit). Defaults to 604 800 (a week).
    pub first_sudo_learning_secs: u32,
}

/// Account changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccountChanges {
    /// Defaults to `true`.
    pub enabled: bool,
    /// Groups that give privilege. Defaults to sudo, wheel, adm, root, docker, lxd.
    pub privileged_groups: NameList<MAX_GROUPS>,
    /// Logins of an account created less than this many seconds ago are reported. Defaults to
    /// 259 200 (3 days).
    pub new_account_secs: u32,
}

/// Root over the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RootLogin {
    /// Defaults to `true`.
    pub enabled: bool,
}

/// Logins outside working hours (opt-in).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffHours {
    /// Defaults to `false`.
    pub enabled: bool,
    /// The host's zone, seconds east of UTC. Defaults to 0.
    pub utc_offset_secs: i32,
    /// Working days, bit 0 Monday to bit 6 Sunday. Defaults to `0b001_1111` (Monday-Friday).
    pub weekdays: u8,
    /// First working hour (0-23). Defaults to 7.
    pub start_hour: u8,
    /// The hour working time ends (1-24, exclusive). Defaults to 20.
    pub end_hour: u8,
}

/// A network: an address and a prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// `addr/prefix`; `None` when the prefix is longer than the address.
    pub(crate) fn new(addr: IpAddr, prefix: u8) -> Option<Cidr> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(Cidr { addr, prefix })
    }

    /// Parses `192.0.2.0/24`, `2001:db8::/32` or a bare address (a /32 or /128).
    pub fn parse(s: &str) -> Option<Cidr> {
        match s.split_once('/') {
            Some((a, p)) => Cidr::new(a.parse().ok()?, p.parse().ok()?),
            None => {
                let addr: IpAddr = s.parse().ok()?;
                Cidr::new(addr, if addr.is_ipv4() { 32 } else { 128 })
            }
        }
    }

    /// True when `ip` is in this network.
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                (u32::from(n) ^ u32::from(a)) & mask == 0
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                (u128::from(n) ^ u128::from(a)) & mask == 0
            }
            _ => false,
        }
    }
}

/// A fixed list of at most `N` names (each cut to [`NAME_CAP`] bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NameList<const N: usize> {
    names: [UserName; N],
    len: u8,
}

impl<const N: usize> NameList<N> {
    /// An empty list.
    pub const EMPTY: Self = NameList {
        names: [UserName::EMPTY; N],
        len: 0,
    };

    /// Adds a name; hands it back when the list is full.
    pub fn push<'a>(&mut self, name: &'a [u8]) -> Result<(), &'a [u8]> {
        let i = usize::from(self.len);
        if i >= N {
            return Err(name);
        }
        self.names[i] = UserName::new(name);
        self.len += 1;
        Ok(())
    }

    /// True when `name` is in the list.
    pub fn contains(&self, name: &[u8]) -> bool {
        self.names[..usize::from(self.len)]
            .iter()
            .any(|n| n.as_text().as_bytes() == name)
    }

    /// The names.
    pub fn iter(&self) -> impl Iterator<Item = Text<'_>> {
        self.names[..usize::from(self.len)]
            .iter()
            .map(UserName::as_text)
    }
}

/// What a rule must not alert on: automation accounts and source networks. An allow-listed
/// event is still shipped; only the alert is not raised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllowList {
    nets: [Option<Cidr>; ALLOW_NETS],
    /// User names (`user.name` of the alert).
    pub users: NameList<ALLOW_USERS>,
}

impl AllowList {
    /// Allows nothing.
    pub const EMPTY: AllowList = AllowList {
        nets: [None; ALLOW_NETS],
        users: NameList::EMPTY,
    };

    /// Adds a network; hands it back when the list is full.
    pub fn push_net(&mut self, net: Cidr) -> Result<(), Cidr> {
        match self.nets.iter_mut().find(|n| n.is_none()) {
            Some(slot) => {
                *slot = Some(net);
                Ok(())
            }
            None => Err(net),
        }
    }

    /// True when the alert's source or user is listed.
    fn allows(&self, ip: Option<IpAddr>, user: Option<&UserName>) -> bool {
        ip.is_some_and(|ip| self.nets.iter().flatten().any(|n| n.contains(ip)))
            || user.is_some_and(|u| self.users.contains(u.as_text().as_bytes()))
    }
}

/// Thresholds of every rule. `DetectConfig::default()` is the documented defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DetectConfig {
    /// See [`BruteForce`].
    pub brute_force: BruteForce,
    /// See [`PasswordSpray`].
    pub password_spray: PasswordSpray,
    /// See [`SuccessAfterFailures`].
    pub success_after_failures: SuccessAfterFailures,
    /// See [`FirstSeenSource`].
    pub first_seen_source: FirstSeenSource,
    /// See [`SlowAttack`].
    pub slow: SlowAttack,
    /// See [`DistributedSpray`].
    pub distributed_spray: DistributedSpray,
    /// See [`Privilege`].
    pub privilege: Privilege,
    /// See [`AccountChanges`].
    pub account_changes: AccountChanges,
    /// See [`RootLogin`].
    pub root_login: RootLogin,
    /// See [`OffHours`].
    pub off_hours: OffHours,
    /// Per rule (indexed by [`Rule::index`]). Defaults to empty lists.
    pub allow: [AllowList; Rule::ALL.len()],
    /// Seeds the table hashes; the agent should pass a random value. Defaults to 0.
    pub hash_seed: u32,
}

impl DetectConfig {
    /// The allow-list of `rule`.
    pub fn allow_mut(&mut self, rule: Rule) -> &mut AllowList {
        &mut self.allow[rule.index()]
    }
}

impl Default for DetectConfig {
    fn default() -> Self {
        let mut groups = NameList::EMPTY;
        for g in ["sudo", "wheel", "adm", "root", "docker", "lxd"] {
            let _ = groups.push(g.as_bytes());
        }
        DetectConfig {
            brute_force: BruteForce {
                enabled: true,
                threshold: 10,
                window_secs: 300,
                cooldown_secs: 3600,
            },
            password_spray: PasswordSpray {
                enabled: true,
                threshold: 5,
                window_secs: 600,
                cooldown_secs: 3600,
            },
            success_after_failures: SuccessAfterFailures {
                enabled: true,
                threshold: 3,
                window_secs: 600,
                by_user: true,
            },
            first_seen_source: FirstSeenSource {
                enabled: true,
                learning_secs: 86_400,
                key_logins: false,
            },
            slow: SlowAttack {
                enabled: true,
                brute_threshold: 40,
                spray_threshold: 6,
                window_secs: 21_600,
            },
            distributed_spray: DistributedSpray {
                enabled: true,
                min_sources: 20,
                min_users: 10,
                window_secs: 3600,
                baseline_factor: 3,
            },
            privilege: Privilege {
                enabled: true,
                window_secs: 1800,
                failure_threshold: 3,
                failure_window_secs: 600,
                first_sudo: true,
                first_sudo_learning_secs: 604_800,
            },
            account_changes: AccountChanges {
                enabled: true,
                privileged_groups: groups,
                new_account_secs: 259_200,
            },
            root_login: RootLogin { enabled: true },
            off_hours: OffHours {
                enabled: false,
                utc_offset_secs: 0,
                weekdays: 0b001_1111,
                start_hour: 7,
                end_hour: 20,
            },
            allow: [AllowList::EMPTY; Rule::ALL.len()],
            hash_seed: 0,
        }
    }
}

/// A threshold or window that cannot work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A threshold of 0 (it would fire on every event).
    ZeroThreshold(Rule),
    /// A window of 0 seconds, or one of 2^31 seconds or more (68 years).
    BadWindow(Rule),
    /// Working hours that are not `0 <= start < end <= 24`, or no working day.
    BadHours,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::ZeroThreshold(r) => write!(f, "{r}: the threshold must be at least 1"),
            ConfigError::BadWindow(r) => {
                write!(f, "{r}: the window must be 1 to 2147483647 seconds")
            }
            ConfigError::BadHours => f.write_str(
                "off_hours_login: working hours must be start < end <= 24 on at least one day",
            ),
        }
    }
}

impl core::error::Error for ConfigError {}

/// Windows are compared as non-negative `i32` ages.
const MAX_WINDOW: u32 = i32::MAX as u32;

impl DetectConfig {
    /// (rule, enabled, threshold, window) of every windowed rule.
    fn windows(&self) -> [(Rule, bool, u32, u32); 8] {
        let (s, d, p) = (self.slow, self.distributed_spray, self.privilege);
        [
            (
                Rule::BruteForce,
                self.brute_force.enabled,
                self.brute_force.threshold,
                self.brute_force.window_secs,
            ),
            (
                Rule::PasswordSpray,
                self.password_spray.enabled,
                self.password_spray.threshold,
                self.password_spray.window_secs,
            ),
            (
                Rule::SuccessAfterFailures,
                self.success_after_failures.enabled,
                self.success_after_failures.threshold,
                self.success_after_failures.window_secs,
            ),
            (
                Rule::SlowBruteForce,
                s.enabled,
                s.brute_threshold,
                s.window_secs,
            ),
            (Rule::SlowSpray, s.enabled, s.spray_threshold, s.window_secs),
            (
                Rule::DistributedSpray,
                d.enabled,
                d.min_sources.min(d.min_users),
                d.window_secs,
            ),
            (
                Rule::PrivilegeFailures,
                p.enabled,
                p.failure_threshold,
                p.failure_window_secs,
            ),
            (Rule::PrivilegeAfterLogin, p.enabled, 1, p.window_secs),
        ]
    }

    /// Checks that every enabled rule has a threshold of at least 1 and a window of 1 second to
    /// 68 years, and that working hours make sense. [`Detector::new`] clamps such values
    /// instead; a config loader should call this and refuse them.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (rule, enabled, threshold, window) in self.windows() {
            if !enabled {
                continue;
            }
            if threshold == 0 {
                return Err(ConfigError::ZeroThreshold(rule));
            }
            if window == 0 || window > MAX_WINDOW {
                return Err(ConfigError::BadWindow(rule));
            }
        }
        let h = self.off_hours;
        if h.enabled && (h.start_hour >= h.end_hour || h.end_hour > 24 || h.weekdays & 0x7F == 0) {
            return Err(ConfigError::BadHours);
        }
        Ok(())
    }

    /// The same config with every threshold at least 1 and every window in `1..=MAX_WINDOW`.
    fn clamped(mut self) -> Self {
        let t = |v: &mut u32| *v = (*v).max(1);
        let w = |v: &mut u32| *v = (*v).clamp(1, MAX_WINDOW);
        t(&mut self.brute_force.threshold);
        w(&mut self.brute_force.window_secs);
        t(&mut self.password_spray.threshold);
        w(&mut self.password_spray.window_secs);
        t(&mut self.success_after_failures.threshold);
        w(&mut self.success_after_failures.window_secs);
        t(&mut self.slow.brute_threshold);
        t(&mut self.slow.spray_threshold);
        w(&mut self.slow.window_secs);
        t(&mut self.distributed_spray.min_sources);
        t(&mut self.distributed_spray.min_users);
        t(&mut self.distributed_spray.baseline_factor);
        w(&mut self.distributed_spray.window_secs);
        t(&mut self.privilege.failure_threshold);
        w(&mut self.privilege.failure_window_secs);
        w(&mut self.privilege.window_secs);
        self.first_seen_source.learning_secs = self.first_seen_source.learning_secs.min(MAX_WINDOW);
        self.account_changes.new_account_secs =
            self.account_changes.new_account_secs.min(MAX_WINDOW);
        self.privilege.first_sudo_learning_secs =
            self.privilege.first_sudo_learning_secs.min(MAX_WINDOW);
        self
    }
}

// ---------------------------------------------------------------------------------------------
// Alerts

/// Which rule fired (`rule.id`, also the alert's `event.action`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Rule {
    /// Many failed attempts from one source.
    BruteForce,
    /// One source failing against many user names.
    PasswordSpray,
    /// A login after failed attempts that can explain it.
    SuccessAfterFailures,
    /// A login for a user from an address not seen for that user.
    FirstSeenSource,
    /// Failed attempts from one source spread over hours.
    SlowBruteForce,
    /// One source failing against many names over hours.
    SlowSpray,
    /// Many sources failing against many names on this host.
    DistributedSpray,
    /// sudo or su soon after a login that alerted.
    PrivilegeAfterLogin,
    /// sudo refused: not in sudoers, not authorised.
    SudoRefused,
    /// Repeated sudo/su password failures.
    PrivilegeFailures,
    /// A user's first sudo on this host.
    FirstSudo,
    /// An account was created.
    AccountCreated,
    /// An account was added to a privileged group.
    PrivilegedGroup,
    /// Root changed another account's password.
    PasswordReset,
    /// A login of an account created in the last days.
    NewAccountLogin,
    /// Root logged in over the network.
    RootLogin,
    /// A login outside working hours.
    OffHoursLogin,
}

impl Rule {
    /// Every rule, in [`Rule::index`] order.
    pub const ALL: [Rule; 17] = [
        Rule::BruteForce,
        Rule::PasswordSpray,
        Rule::SuccessAfterFailures,
        Rule::FirstSeenSource,
        Rule::SlowBruteForce,
        Rule::SlowSpray,
        Rule::DistributedSpray,
        Rule::PrivilegeAfterLogin,
        Rule::SudoRefused,
        Rule::PrivilegeFailures,
        Rule::FirstSudo,
        Rule::AccountCreated,
        Rule::PrivilegedGroup,
        Rule::PasswordReset,
        Rule::NewAccountLogin,
        Rule::RootLogin,
        Rule::OffHoursLogin,
    ];

    /// The position in [`Rule::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// `rule.id` (and the alert's `event.action`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Rule::BruteForce => "brute_force",
            Rule::PasswordSpray => "password_spray",
            Rule::SuccessAfterFailures => "success_after_failures",
            Rule::FirstSeenSource => "first_seen_source",
            Rule::SlowBruteForce => "slow_brute_force",
            Rule::SlowSpray => "slow_spray",
            Rule::DistributedSpray => "distributed_spray",
            Rule::PrivilegeAfterLogin => "privilege_after_login",
            Rule::SudoRefused => "sudo_refused",
            Rule::PrivilegeFailures => "privilege_failures",
            Rule::FirstSudo => "first_sudo",
            Rule::AccountCreated => "account_created",
            Rule::PrivilegedGroup => "privileged_group",
            Rule::PasswordReset => "password_reset",
            Rule::NewAccountLogin => "new_account_login",
            Rule::RootLogin => "root_login",
            Rule::OffHoursLogin => "off_hours_login",
        }
    }

    /// The rule whose [`Rule::as_str`] is `s`.
    pub fn from_str_exact(s: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// `rule.name`: a short title.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Rule::BruteForce => "Brute force",
            Rule::PasswordSpray => "Password spray",
            Rule::SuccessAfterFailures => "Login after failed attempts",
            Rule::FirstSeenSource => "Login from a new address",
            Rule::SlowBruteForce => "Slow brute force",
            Rule::SlowSpray => "Slow password spray",
            Rule::DistributedSpray => "Distributed password spray",
            Rule::PrivilegeAfterLogin => "Privilege use after a suspicious login",
            Rule::SudoRefused => "sudo refused",
            Rule::PrivilegeFailures => "Repeated sudo/su failures",
            Rule::FirstSudo => "First sudo by a user",
            Rule::AccountCreated => "Account created",
            Rule::PrivilegedGroup => "Account added to a privileged group",
            Rule::PasswordReset => "Password of another account changed",
            Rule::NewAccountLogin => "Login of a new account",
            Rule::RootLogin => "Root login over the network",
            Rule::OffHoursLogin => "Login outside working hours",
        }
    }

    /// The alert's `event.outcome`: `success` when the alert is about something that worked.
    pub(crate) const fn outcome(self) -> Outcome {
        match self {
            Rule::SuccessAfterFailures
            | Rule::FirstSeenSource
            | Rule::PrivilegeAfterLogin
            | Rule::NewAccountLogin
            | Rule::RootLogin
            | Rule::OffHoursLogin
            | Rule::FirstSudo
            | Rule::AccountCreated
            | Rule::PrivilegedGroup
            | Rule::PasswordReset => Outcome::Success,
            Rule::SudoRefused | Rule::PrivilegeFailures => Outcome::Failure,
            _ => Outcome::Unknown,
        }
    }

    /// The alert's `event.category`.
    pub(crate) const fn category(self) -> &'static str {
        match self {
            Rule::PrivilegeAfterLogin
            | Rule::SudoRefused
            | Rule::PrivilegeFailures
            | Rule::FirstSudo => "process",
            Rule::AccountCreated | Rule::PrivilegedGroup | Rule::PasswordReset => "iam",
            _ => "authentication",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the failures of an alert were counted over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Failures from the alert's source IP.
    Source,
    /// Failures against the alert's user name, from any source (success after failures only).
    User,
    /// Failures on the whole host (distributed spray).
    Host,
}

impl Scope {
    /// `source`, `user` or `host` (`authtrail.scope`).
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Scope::Source => "source",
            Scope::User => "user",
            Scope::Host => "host",
        }
    }
}

/// A user name copied into an alert: at most [`NAME_CAP`] bytes, cut at a UTF-8 character
/// boundary when it is longer (and flagged).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct UserName {
    bytes: [u8; NAME_CAP],
    len: u8,
    truncated: bool,
}

impl UserName {
    const EMPTY: UserName = UserName {
        bytes: [0; NAME_CAP],
        len: 0,
        truncated: false,
    };

    /// Copies `name`, cutting it to [`NAME_CAP`] bytes.
    pub(crate) fn new(name: &[u8]) -> Self {
        let mut cut = name.len().min(NAME_CAP);
        if cut < name.len() {
            // Do not split a UTF-8 sequence: back off over continuation bytes.
            while cut > 0 && name[cut] & 0xC0 == 0x80 {
                cut -= 1;
            }
        }
        let mut bytes = [0; NAME_CAP];
        bytes[..cut].copy_from_slice(&name[..cut]);
        UserName {
            bytes,
            len: cut as u8,
            truncated: cut < name.len(),
        }
    }

    /// The (possibly cut) name.
    pub(crate) fn as_text(&self) -> Text<'_> {
        Text(&self.bytes[..usize::from(self.len)])
    }

    /// True when the name was longer than [`NAME_CAP`] bytes and was cut.
    pub(crate) const fn is_truncated(&self) -> bool {
        self.truncated
    }
}

impl fmt::Debug for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.as_text(), f)?;
        if self.truncated {
            f.write_str("...")?;
        }
        Ok(())
    }
}

/// One alert: small, `Copy`, no borrowed data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Alert {
    /// Which rule fired.
    pub rule: Rule,
    /// What `count` was counted over.
    pub scope: Scope,
    /// `event.severity`: [`LOW`], [`MEDIUM`] or [`HIGH`].
    pub severity: u8,
    /// The source IP: the attacker's, or the one the login came from.
    pub source: Option<IpAddr>,
    /// The user name of the event that fired the rule (for brute force and spray the last name
    /// tried; for sudo, su and account changes who acted).
    pub user: Option<UserName>,
    /// `user.target.name`: the sudo/su target or the account changed.
    pub target: Option<UserName>,
    /// `group.name`: the privileged group an account was added to.
    pub group: Option<UserName>,
    /// The action of the event that fired the rule (`sudo` or `su` for the privilege rules).
    pub action: Action,
    /// Failed attempts counted (1 for a single event).
    pub count: u32,
    /// Distinct user names failed against (0 when not tracked).
    pub users: u32,
    /// Distinct failing sources (distributed spray; 0 otherwise).
    pub sources: u32,
    /// The earliest event counted (whole seconds).
    pub start: Timestamp,
    /// The event that fired the rule.
    pub end: Timestamp,
    cites: [u64; MAX_CITES],
    n_cites: u8,
}

impl Alert {
    /// `event.sequence` of the events the alert cites, oldest first: the first event counted (or
    /// the login before a sudo) and the event that fired it.
    pub fn cites(&self) -> &[u64] {
        &self.cites[..usize::from(self.n_cites)]
    }

    fn cite(mut self, seq: u64) -> Self {
        let n = usize::from(self.n_cites);
        if n < MAX_CITES && (n == 0 || self.cites[n - 1] != seq) {
            self.cites[n] = seq;
            self.n_cites += 1;
        }
        self
    }
}

/// A duration in words: `45 s`, `12 min`, `3 h 20 min`, `2 days`.
struct Span(i64);

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0.max(0);
        match s {
            0..120 => write!(f, "{s} s"),
            120..7200 => write!(f, "{} min", s / 60),
            7200..172_800 => match s / 60 % 60 {
                0 => write!(f, "{} h", s / 3600),
                m => write!(f, "{} h {m} min", s / 3600),
            },
            _ => write!(f, "{} days", s / 86_400),
        }
    }
}

impl fmt::Display for Alert {
    /// `message`: one plain sentence.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let span = Span(self.end.secs.saturating_sub(self.start.secs));
        let user = self.user;
        let u = OrUnknown(user.as_ref(), "someone");
        let target = OrUnknown(self.target.as_ref(), "an account");
        let ip = Ip(self.source);
        let attempts = Plural(self.count, "attempt", "attempts");
        // Brute force and spray count only failures.
        let tool = match self.action {
            Action::Su => "su",
            _ => "sudo",
        };
        match (self.rule, self.scope) {
            (Rule::BruteForce, _) => {
                write!(
                    f,
                    "{} failed login attempts from {ip} in {span}",
                    self.count
                )?;
                if let Some(user) = user {
                    write!(f, " (last user tried: {})", user.as_text())?;
                }
                f.write_str(".")
            }
            (Rule::PasswordSpray, _) => write!(
                f,
                "{ip} failed to log in as {} different users in {span} ({attempts}).",
                self.users
            ),
            (Rule::SlowBruteForce, _) => write!(
                f,
                "{} failed login attempts from {ip} spread over {span}: a slow brute force.",
                self.count
            ),
            (Rule::SlowSpray, _) => write!(
                f,
                "{ip} failed to log in as {} different users over {span} ({attempts}): a slow password spray.",
                self.users
            ),
            (Rule::DistributedSpray, _) => write!(
                f,
                "{} addresses failed to log in as {} different users in {span} ({attempts}), more than this host's usual background.",
                self.sources, self.users
            ),
            (Rule::SuccessAfterFailures, scope) => {
                let whose = match scope {
                    Scope::User => "against that user from other addresses",
                    _ => "from that address",
                };
                let failed = Plural(self.count, "failed attempt", "failed attempts");
                write!(
                    f,
                    "{u} logged in from {ip} after {failed} {whose} in {span}."
                )
            }
            (Rule::FirstSeenSource, _) => write!(
                f,
                "{u} logged in from {ip}, an address not seen before for that user."
            ),
            (Rule::RootLogin, _) => write!(f, "{u} logged in over the network from {ip}."),
            (Rule::OffHoursLogin, _) => {
                write!(f, "{u} logged in from {ip} outside working hours.")
            }
            (Rule::NewAccountLogin, _) => write!(
                f,
                "{u} logged in from {ip}, {span} after the account was created."
            ),
            (Rule::PrivilegeAfterLogin, _) => write!(
                f,
                "{u} used {tool} to act as {} {span} after a suspicious login from {ip}.",
                OrUnknown(self.target.as_ref(), "another user")
            ),
            (Rule::SudoRefused, _) => write!(
                f,
                "{u} tried sudo but is not allowed to use it on this host."
            ),
            (Rule::PrivilegeFailures, _) => {
                write!(
                    f,
                    "{u} failed {attempts} at sudo or su passwords in {span}."
                )
            }
            (Rule::FirstSudo, _) => write!(f, "{u} used sudo for the first time on this host."),
            (Rule::AccountCreated, _) => write!(f, "Account {target} was created."),
            (Rule::PrivilegedGroup, _) => write!(
                f,
                "{target} was added to the privileged group {}.",
                OrUnknown(self.group.as_ref(), "unknown")
            ),
            (Rule::PasswordReset, _) => {
                write!(
                    f,
                    "{} changed the password of {target}.",
                    OrUnknown(user.as_ref(), "root")
                )
            }
        }
    }
}

/// A name, or a stand-in word.
struct OrUnknown<'a>(Option<&'a UserName>, &'static str);

impl fmt::Display for OrUnknown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.filter(|n| !n.as_text().is_empty()) {
            Some(n) => write!(f, "{}", n.as_text()),
            None => f.write_str(self.1),
        }
    }
}

/// `1 attempt`, `3 attempts`.
struct Plural(u32, &'static str, &'static str);

impl fmt::Display for Plural {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}",
            self.0,
            if self.0 == 1 { self.1 } else { self.2 }
        )
    }
}

/// Displays an optional IP, `an unknown address` when absent.
struct Ip(Option<IpAddr>);

impl fmt::Display for Ip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(ip) => write!(f, "{ip}"),
            None => f.write_str("an unknown address"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Counting

/// How many failed attempts `ev` stands for (0 for a line that only repeats, summarises or
/// announces attempts logged elsewhere). See the module documentation for the policy.
pub fn attempts(ev: &LoginEvent<'_>) -> u32 {
    if !matches!(ev.action, Action::AuthFailure | Action::InvalidUser) || ev.source_ip().is_none() {
        return 0;
    }
    failure_attempts(ev)
}

/// [`attempts`] of a failure from a source IP (the failure path has tested both already).
#[inline]
fn failure_attempts(ev: &LoginEvent<'_>) -> u32 {
    debug_assert!(
        matches!(ev.action, Action::AuthFailure | Action::InvalidUser) && ev.source_ip().is_some()
    );
    if ev.port.is_none() {
        return 0;
    }
    let count = ev.count.max(1);
    match ev.method {
        Some(Method::None) => 0,
        Some(_) => count,
        None if is_sshd(ev.program.as_bytes()) => 0,
        None if ev.action == Action::InvalidUser => count,
        None => 0,
    }
}

/// A failure against an account that exists (not `Invalid user`, not sshd's `Failed password
/// for invalid user`, which comes as an `auth_failure` whose reason says so).
fn names_an_account(ev: &LoginEvent<'_>) -> bool {
    ev.action == Action::AuthFailure && ev.reason.is_none_or(|r| r.as_bytes() != b"invalid user")
}

/// Written as a test of the first 4 bytes (one word) and then the rest, not as a match on the
/// three names (which compares byte by byte, a branch each): every failure without a method
/// asks it.
fn is_sshd(program: &[u8]) -> bool {
    program.get(..4) == Some(b"sshd") && matches!(&program[4..], b"" | b"-session" | b"-auth")
}

/// The hash of a user name in the state a failure line updates (a source's names, the users
/// table, the long window's and the host's name bits): [`crate::hash::fold_32`], a few
/// instructions whatever the name's length.
#[inline]
fn name_hash(seed: u32, name: &[u8]) -> u32 {
    crate::hash::fold_32(seed, name)
}

/// The hash of a source address in the sources table and the host's source bits.
#[inline]
fn source_hash(seed: u32, ip: IpAddr) -> u32 {
    match ip {
        IpAddr::V4(v4) => crate::hash::fold_words(seed, u64::from(v4.to_bits()), 0, 4),
        IpAddr::V6(v6) => {
            let x = v6.to_bits();
            crate::hash::fold_words(seed, x as u64, (x >> 64) as u64, 6)
        }
    }
}

/// FNV-1a, 32 bits, with the offset basis mixed with `seed`, then murmur3's finaliser: FNV's
/// last byte barely reaches the high bits (`127.0.0.1` and `127.0.0.2` agree in bits 17-31), and
/// the pair table combines a rotated IP hash. Not cryptographic: it spreads keys over table sets.
/// The key of the tables learnt over weeks (user/source pairs, accounts), which are saved as
/// these hashes: another hash there would forget what they learnt.
fn fnv1a(seed: u32, parts: &[&[u8]]) -> u32 {
    let mut h = crate::hash::FNV1A_32_START ^ seed;
    for part in parts {
        h = crate::hash::fnv1a_32(h, part);
    }
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// [`fnv1a`] of an address, for [`pair_key`].
fn ip_hash(seed: u32, ip: IpAddr) -> u32 {
    match ip {
        IpAddr::V4(v4) => fnv1a(seed, &[&[4], &v4.octets()]),
        IpAddr::V6(v6) => fnv1a(seed, &[&[6], &v6.octets()]),
    }
}

/// The key of a user/IP pair: the user-name hash and the address's, rotated.
fn pair_key(seed: u32, user: u32, ip: IpAddr) -> u32 {
    user ^ ip_hash(seed, ip).rotate_left(16)
}

/// The /16 (IPv4) or /48 (IPv6) an address is in: a user's "same network". A home or phone
/// address changes within the provider's pool, which is rarely a single /24 (IPv4) and is the
/// customer's site prefix (IPv6), while a stolen password is tried from a host, proxy or VPN
/// of the attacker's, in another provider's space: without a database of providers (the core
/// has none), the /16 is the nearest stand-in for "the same provider". Public so the collector
/// folds a first-seen alert repeated on several hosts by the same definition of a network.
pub fn same_net(a: IpAddr, b: IpAddr) -> bool {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => a.octets()[..2] == b.octets()[..2],
        (IpAddr::V6(a), IpAddr::V6(b)) => a.octets()[..6] == b.octets()[..6],
        _ => false,
    }
}

/// Seconds from `then` to `now` on the wrapping 32-bit clock; an entry "in the future" (lines
/// out of order) is age 0.
#[inline]
fn age(now: u32, then: u32) -> u32 {
    let d = now.wrapping_sub(then) as i32;
    if d < 0 { 0 } else { d as u32 }
}

/// The later of two times on the wrapping clock.
#[inline]
fn later(a: u32, b: u32) -> u32 {
    if (b.wrapping_sub(a) as i32) > 0 { b } else { a }
}

/// The earlier of two times on the wrapping clock.
#[inline]
fn earlier(a: u32, b: u32) -> u32 {
    if (b.wrapping_sub(a) as i32) < 0 { b } else { a }
}

/// What a window holds: attempts, the age of the first one, the sequence number of the first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counted {
    count: u32,
    oldest: u32,
    first_seq: Option<u64>,
}

/// The attempt lines of a source or user: a ring of (first time, last time, count, first
/// sequence number) in arrival order.
#[derive(Clone, Copy)]
struct Failures {
    t: [u32; FAILURE_SLOTS],
    t0: [u32; FAILURE_SLOTS],
    seq: [u64; FAILURE_SLOTS],
    n: [u16; FAILURE_SLOTS],
    head: u8,
    len: u8,
    /// The counts of the slots in the ring, summed: no window holds more, so a rule whose
    /// threshold is above it need not read the slots. Kept as slots come and go (it fits in the
    /// struct's padding); not saved: [`Failures::recount`] after a restore.
    total: u32,
}

impl Failures {
    const EMPTY: Failures = Failures {
        t: [0; FAILURE_SLOTS],
        t0: [0; FAILURE_SLOTS],
        seq: [0; FAILURE_SLOTS],
        n: [0; FAILURE_SLOTS],
        head: 0,
        len: 0,
        total: 0,
    };

    /// Sets `total` from the slots in the ring.
    fn recount(&mut self) {
        self.total = (0..usize::from(self.len))
            .map(|k| u32::from(self.n[self.slot(k)]))
            .sum();
    }

    /// Attempts in the ring, whatever their age: at least the count of any window.
    #[inline]
    fn at_most(&self) -> u32 {
        debug_assert_eq!(self.total, {
            let mut f = *self;
            f.recount();
            f.total
        });
        self.total
    }

    #[inline]
    fn slot(&self, k: usize) -> usize {
        // `head < FAILURE_SLOTS` (kept so, and checked on restore) and `k <= FAILURE_SLOTS`:
        // one conditional subtraction is the remainder, without a division per slot.
        let i = usize::from(self.head) + k;
        debug_assert!(usize::from(self.head) < FAILURE_SLOTS && k <= FAILURE_SLOTS);
        if i >= FAILURE_SLOTS {
            i - FAILURE_SLOTS
        } else {
            i
        }
    }

    /// Adds `count` attempts at `now`; drops slots older than `horizon` first and merges the two
    /// oldest when still full (the merged slot keeps the first time and sequence of the older
    /// and the last time of the younger).
    fn push(&mut self, now: u32, count: u32, seq: u64, horizon: u32) {
        while self.len > 0 && age(now, self.t[usize::from(self.head)]) > horizon {
            self.total -= u32::from(self.n[usize::from(self.head)]);
            self.head = self.slot(1) as u8;
            self.len -= 1;
        }
        if usize::from(self.len) == FAILURE_SLOTS {
            let (a, b) = (self.slot(0), self.slot(1));
            self.total -= u32::from(self.n[a]) + u32::from(self.n[b]);
            self.n[b] = self.n[b].saturating_add(self.n[a]);
            self.total += u32::from(self.n[b]);
            self.t[b] = later(self.t[a], self.t[b]);
            self.t0[b] = earlier(self.t0[a], self.t0[b]);
            self.seq[b] = self.seq[a].min(self.seq[b]);
            self.head = b as u8;
            self.len -= 1;
        }
        let i = self.slot(usize::from(self.len));
        self.t[i] = now;
        self.t0[i] = now;
        self.seq[i] = seq;
        self.n[i] = u16::try_from(count).unwrap_or(u16::MAX);
        self.total += u32::from(self.n[i]);
        self.len += 1;
    }

    /// Attempts within `window` of `now` and strictly after `after`.
    fn within(&self, now: u32, window: u32, after: Option<u32>) -> Counted {
        let mut c = Counted::default();
        for k in 0..usize::from(self.len) {
            let i = self.slot(k);
            let fresh = after.is_none_or(|m| (self.t[i].wrapping_sub(m) as i32) > 0);
            if age(now, self.t[i]) <= window && fresh {
                c.count = c.count.saturating_add(u32::from(self.n[i]));
                // A merged slot's first attempt may lie before the window (or the last
                // success): the start is bounded by them.
                let mut first = age(now, self.t0[i]).min(window);
                if let Some(m) = after {
                    first = first.min(age(now, m));
                }
                c.oldest = c.oldest.max(first);
                c.first_seq = Some(c.first_seq.map_or(self.seq[i], |s| s.min(self.seq[i])));
            }
        }
        c
    }
}

/// Distinct user-name hashes of a source, with the time each was last tried.
#[derive(Clone, Copy)]
struct Names {
    h: [u32; NAME_SLOTS],
    t: [u32; NAME_SLOTS],
    len: u8,
    /// Names pushed out of the slots while still inside the window, and the latest of their times.
    overflow: u16,
    overflow_t: u32,
}

impl Names {
    const EMPTY: Names = Names {
        h: [0; NAME_SLOTS],
        t: [0; NAME_SLOTS],
        len: 0,
        overflow: 0,
        overflow_t: 0,
    };

    fn insert(&mut self, hash: u32, now: u32, window: u32) {
        let len = usize::from(self.len);
        if let Some(i) = self.h[..len].iter().position(|&h| h == hash) {
            self.t[i] = later(self.t[i], now);
            return;
        }
        if len < NAME_SLOTS {
            self.h[len] = hash;
            self.t[len] = now;
            self.len += 1;
            return;
        }
        let mut i = 0;
        for k in 1..NAME_SLOTS {
            if age(now, self.t[k]) > age(now, self.t[i]) {
                i = k;
            }
        }
        if age(now, self.t[i]) <= window {
            if self.overflow > 0 && age(now, self.overflow_t) <= window {
                self.overflow = self.overflow.saturating_add(1);
                self.overflow_t = later(self.overflow_t, self.t[i]);
            } else {
                self.overflow = 1;
                self.overflow_t = self.t[i];
            }
        }
        self.h[i] = hash;
        self.t[i] = now;
    }

    /// Distinct names kept, whatever their age: at least the count of any window.
    #[inline]
    fn at_most(&self) -> u32 {
        u32::from(self.len) + u32::from(self.overflow)
    }

    /// Distinct names tried within `window` of `now`, and the age of the oldest.
    fn within(&self, now: u32, window: u32) -> (u32, u32) {
        let mut count = 0u32;
        let mut oldest = 0;
        for &t in &self.t[..usize::from(self.len)] {
            let a = age(now, t);
            if a <= window {
                count += 1;
                oldest = oldest.max(a);
            }
        }
        let a = age(now, self.overflow_t);
        if self.overflow > 0 && a <= window {
            count += u32::from(self.overflow);
            // The overflow keeps only its latest time: the window bounds its start.
            oldest = window;
        }
        (count, oldest)
    }
}

/// The long window of a source: attempts per bucket and user names per half window, with the
/// time and sequence number of the first attempt since the counts were last empty.
#[derive(Clone, Copy)]
struct Slow {
    epoch: u32,
    n: [u16; SLOW_BUCKETS],
    names: [u64; 2],
    first_t: u32,
    first_seq: u64,
    brute_fired: bool,
    spray_fired: bool,
    brute_at: u32,
    spray_at: u32,
}

impl Slow {
    const EMPTY: Slow = Slow {
        epoch: 0,
        n: [0; SLOW_BUCKETS],
        names: [0; 2],
        first_t: 0,
        first_seq: 0,
        brute_fired: false,
        spray_fired: false,
        brute_at: 0,
        spray_at: 0,
    };
    const HALF: u32 = (SLOW_BUCKETS / 2) as u32;

    fn bucket_len(window: u32) -> u32 {
        (window / SLOW_BUCKETS as u32).max(1)
    }

    /// Moves the window to `now`, zeroing the buckets (and name halves) that left it.
    #[inline]
    fn advance(&mut self, now: u32, window: u32) {
        let len = Self::bucket_len(window);
        if in_epoch(now, self.epoch, len) {
            return;
        }
        let epoch = now / len;
        let d = epoch.wrapping_sub(self.epoch);
        if d == 0 || d as i32 <= 0 {
            return;
        }
        self.roll(epoch, d);
    }

    /// [`Slow::advance`] to a later bucket `epoch`, `d` buckets on. Out of line: once a bucket.
    #[cold]
    #[inline(never)]
    fn roll(&mut self, epoch: u32, d: u32) {
        for k in 1..=d.min(SLOW_BUCKETS as u32) {
            self.n[(self.epoch.wrapping_add(k) % SLOW_BUCKETS as u32) as usize] = 0;
        }
        let (old_half, half) = (self.epoch / Self::HALF, epoch / Self::HALF);
        if half != old_half {
            if half == old_half.wrapping_add(1) {
                self.names[(half % 2) as usize] = 0;
            } else {
                self.names = [0; 2];
            }
        }
        self.epoch = epoch;
    }

    fn total(&self) -> u32 {
        self.n.iter().map(|&n| u32::from(n)).sum()
    }

    fn distinct(&self) -> u32 {
        (self.names[0] | self.names[1]).count_ones()
    }

    /// Adds `weight` attempts at `now`; returns [`Slow::total`] after them (summed once here, for
    /// the rules that read it next).
    fn add(&mut self, now: u32, weight: u32, name: Option<u32>, seq: u64, window: u32) -> u32 {
        self.advance(now, window);
        let total = self.total();
        if total == 0 {
            (self.first_t, self.first_seq) = (now, seq);
            // Quiet for a whole window: the rules re-arm.
            (self.brute_fired, self.spray_fired) = (false, false);
        }
        let i = (self.epoch % SLOW_BUCKETS as u32) as usize;
        let before = self.n[i];
        self.n[i] = before.saturating_add(u16::try_from(weight).unwrap_or(u16::MAX));
        if let Some(h) = name {
            self.names[(self.epoch / Self::HALF % 2) as usize] |= 1 << (h % 64);
        }
        let total = total - u32::from(before) + u32::from(self.n[i]);
        debug_assert_eq!(total, self.total());
        total
    }

    /// Attempts still in the window at `now`, without moving it (for eviction).
    fn weight(&self, now: u32, window: u32) -> u32 {
        let epoch = now / Self::bucket_len(window);
        if epoch.wrapping_sub(self.epoch) as i32 >= SLOW_BUCKETS as i32 {
            0
        } else {
            self.total()
        }
    }
}

/// Failures on the whole host, for the distributed spray: two half windows of source and name
/// bitmaps, and the moving background of distinct sources per half window (×16).
#[derive(Clone, Copy)]
struct Spread {
    epoch: u32,
    srcs: [[u64; 8]; 2],
    names: [[u64; 4]; 2],
    n: [u32; 2],
    first_t: [u32; 2],
    first_seq: [u64; 2],
    baseline: u32,
    /// Half windows folded into the background so far (saturating).
    seen: u16,
    fired: bool,
    fired_epoch: u32,
    /// Distinct sources and names over both halves: the popcounts of `srcs` and `names`, kept
    /// as bits are set and recounted when a half is cleared (every failure reads them; only a
    /// new half window changes more than one bit). Not saved: [`Spread::recount`] after a
    /// restore.
    distinct: [u32; 2],
    /// Something the rule's test reads has changed since [`Detector::check_spread`] last ran:
    /// a new source or name bit, a new half window (true when new or restored). Most failures
    /// repeat a source and a name already counted: the test would give the same answer, and
    /// is not run. Not saved.
    moved: bool,
}

/// Half windows the distributed spray learns for before its background counts; meanwhile the
/// bar is twice the minimum.
const SPREAD_LEARNING: u16 = 4;

fn popcount<const N: usize>(a: &[u64; N], b: &[u64; N]) -> u32 {
    a.iter().zip(b).map(|(x, y)| (x | y).count_ones()).sum()
}

impl Spread {
    const EMPTY: Spread = Spread {
        epoch: 0,
        srcs: [[0; 8]; 2],
        names: [[0; 4]; 2],
        n: [0; 2],
        first_t: [0; 2],
        first_seq: [0; 2],
        baseline: 0,
        seen: 0,
        fired: false,
        fired_epoch: 0,
        distinct: [0; 2],
        moved: true,
    };

    /// Sets `distinct` from the bit sets.
    fn recount(&mut self) {
        self.distinct = [
            popcount(&self.srcs[0], &self.srcs[1]),
            popcount(&self.names[0], &self.names[1]),
        ];
    }

    #[inline]
    fn advance(&mut self, now: u32, window: u32) {
        let len = (window / 2).max(1);
        if in_epoch(now, self.epoch, len) && !(self.epoch == 0 && self.seen == 0) {
            return;
        }
        let epoch = now / len;
        if self.epoch == 0 && self.seen == 0 {
            // The first failure: nothing before it to learn from.
            self.epoch = epoch;
            return;
        }
        let d = epoch.wrapping_sub(self.epoch);
        if d == 0 || d as i32 <= 0 {
            return;
        }
        self.roll(epoch, d);
    }

    /// [`Spread::advance`] to a later half window `epoch`, `d` halves on. Out of line: once a
    /// half window.
    #[cold]
    #[inline(never)]
    fn roll(&mut self, epoch: u32, d: u32) {
        // Fold the finished half windows into the background (one that alerted is left out).
        for k in 0..d.min(8) {
            let i = (self.epoch.wrapping_add(k) % 2) as usize;
            let count = if k == 0 {
                self.srcs[i].iter().map(|w| w.count_ones()).sum()
            } else {
                0
            };
            if !(self.fired && self.fired_epoch == self.epoch.wrapping_add(k)) {
                self.baseline = if self.seen == 0 {
                    count * 16
                } else {
                    (self.baseline * 3 + count * 16) / 4
                };
                self.seen = self.seen.saturating_add(1);
            }
            let next = (self.epoch.wrapping_add(k + 1) % 2) as usize;
            (self.srcs[next], self.names[next], self.n[next]) = ([0; 8], [0; 4], 0);
        }
        if d >= 2 {
            self.srcs = [[0; 8]; 2];
            self.names = [[0; 4]; 2];
            self.n = [0; 2];
        }
        if self.fired && epoch.wrapping_sub(self.fired_epoch) >= 2 {
            self.fired = false;
        }
        self.epoch = epoch;
        self.recount();
        self.moved = true;
    }

    fn add(&mut self, now: u32, ip: u32, name: Option<u32>, weight: u32, seq: u64, window: u32) {
        self.advance(now, window);
        let i = (self.epoch % 2) as usize;
        if self.n[i] == 0 && self.srcs[i] == [0; 8] {
            (self.first_t[i], self.first_seq[i]) = (now, seq);
        }
        let (w, bit) = ((ip % 512 / 64) as usize, 1u64 << (ip % 64));
        if (self.srcs[0][w] | self.srcs[1][w]) & bit == 0 {
            self.distinct[0] += 1;
            self.moved = true;
        }
        self.srcs[i][w] |= bit;
        if let Some(h) = name {
            let (w, bit) = ((h % 256 / 64) as usize, 1u64 << (h % 64));
            if (self.names[0][w] | self.names[1][w]) & bit == 0 {
                self.distinct[1] += 1;
                self.moved = true;
            }
            self.names[i][w] |= bit;
        }
        self.n[i] = self.n[i].saturating_add(weight);
    }

    /// (sources, names) over both halves: every failure reads them.
    fn distinct(&self) -> (u32, u32) {
        debug_assert_eq!(
            self.distinct,
            [
                popcount(&self.srcs[0], &self.srcs[1]),
                popcount(&self.names[0], &self.names[1])
            ]
        );
        (self.distinct[0], self.distinct[1])
    }

    /// (attempts, first time, first sequence) over both halves: only an alert reads them.
    fn first(&self) -> (u32, u32, u64) {
        let cur = (self.epoch % 2) as usize;
        let prev = 1 - cur;
        let (t, seq) = if self.srcs[prev] != [0; 8] {
            (self.first_t[prev], self.first_seq[prev])
        } else {
            (self.first_t[cur], self.first_seq[cur])
        };
        (self.n[0].saturating_add(self.n[1]), t, seq)
    }
}

/// True when `now / len == epoch`, tested with a multiplication instead of a division (the
/// windows' bucket lengths are config values, so the compiler cannot turn that division into
/// a multiplication, and every failure asks it twice).
#[inline(always)]
fn in_epoch(now: u32, epoch: u32, len: u32) -> bool {
    // In u64 the product cannot overflow; `now` below it wraps to a large difference.
    u64::from(now).wrapping_sub(u64::from(epoch) * u64::from(len)) < u64::from(len)
}

/// Fire-once state of a rule for one source: re-arms (clears `fired`) after a quiet window (the
/// source's previous failure line, `prev`, is older than `window`) or `cooldown` seconds after
/// the alert at `at` (0: never).
fn rearm(fired: &mut bool, at: u32, now: u32, prev: Option<u32>, window: u32, cooldown: u32) {
    if *fired
        && (prev.is_none_or(|p| age(now, p) > window) || (cooldown > 0 && age(now, at) >= cooldown))
    {
        *fired = false;
    }
}

// ---------------------------------------------------------------------------------------------
// Tables

trait Slot {
    fn used(&self) -> bool;
    fn last_seen(&self) -> u32;
}

/// The slots of the set `hash` falls in, in a table of `n` slots.
fn set_of(n: usize, hash: u32) -> Range<usize> {
    let ways = n.min(WAYS);
    let sets = n / ways;
    let set = hash as usize % sets;
    set * ways..set * ways + ways
}

/// The tags of a table's slots, kept beside the slots: a set's 8 tags share one cache line, so
/// a lookup reads that line and only the slot whose tag matches, not the 8 slots (each several
/// lines apart) of the set.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Tags<const N: usize>([u32; N]);

impl<const N: usize> Tags<N> {
    const EMPTY: Tags<N> = Tags([0; N]);
}

/// The tag of a slot whose key hashes to `hash`: never 0, which marks an empty slot. Two keys
/// may share a tag; the slot itself decides.
#[inline]
fn tag(hash: u32) -> u32 {
    hash | 1
}

/// Finds the slot for a key: `Ok(i)` when a slot matches, `Err(i)` with the slot to reuse (an
/// empty one, else the one of least `worth`, then least recently seen) when none does. `tags`
/// holds [`tag`] of each used slot's key hash and 0 for an empty one.
#[inline]
fn find_by<S: Slot>(
    tags: &[u32],
    slots: &[S],
    hash: u32,
    now: u32,
    is: impl Fn(&S) -> bool,
    worth: impl Fn(&S) -> u32,
) -> Result<usize, usize> {
    let range = set_of(slots.len(), hash);
    let want = tag(hash);
    let set = &tags[range.clone()];
    for (k, &t) in set.iter().enumerate() {
        debug_assert_eq!(
            t != 0,
            slots[range.start + k].used(),
            "slot {}: tag and slot disagree",
            range.start + k
        );
    }
    let mut hits = tag_mask(set, want);
    // The hit is the common case: look for it before weighing victims. A tag is the key's
    // hash cut short: the slot decides.
    while hits != 0 {
        let i = range.start + hits.trailing_zeros() as usize;
        if is(&slots[i]) {
            return Ok(i);
        }
        hits &= hits - 1;
    }
    // A miss: an empty slot, else a victim.
    let empty = tag_mask(set, 0);
    if empty != 0 {
        return Err(range.start + empty.trailing_zeros() as usize);
    }
    Err(victim(slots, range, now, worth))
}

/// The mask of the tags in `set` equal to `want` (bit k for slot k; `want` 0 finds the empty
/// ones), without a branch per slot: which slot of a set holds a key is as good as random,
/// and a loop that stops at it mispredicts its exit.
#[inline(always)]
fn tag_mask(set: &[u32], want: u32) -> u32 {
    let mut hits = 0u32;
    for (k, &t) in set.iter().enumerate() {
        hits |= u32::from(t == want) << k;
    }
    hits
}

/// The slot of a full set to reuse: the one of least `worth`, then least recently seen. Cold:
/// it reads every slot of the set.
#[cold]
#[inline(never)]
fn victim<S: Slot>(slots: &[S], range: Range<usize>, now: u32, worth: impl Fn(&S) -> u32) -> usize {
    let mut victim = range.start;
    let mut victim_rank = None;
    for i in range {
        let s = &slots[i];
        // Less worth, then older, is a better victim; an entry "in the future" has age 0.
        let rank = (worth(s), u64::from(age(now, s.last_seen())));
        if victim_rank.is_none_or(|(w, a)| rank.0 < w || (rank.0 == w && rank.1 > a)) {
            victim = i;
            victim_rank = Some(rank);
        }
    }
    victim
}

/// [`find_by`] with every slot worth the same: least recently seen goes.
#[inline]
fn find<S: Slot>(
    tags: &[u32],
    slots: &[S],
    hash: u32,
    now: u32,
    is: impl Fn(&S) -> bool,
) -> Result<usize, usize> {
    find_by(tags, slots, hash, now, is, |_| 0)
}

/// One source IP. The flags and times of the latches and marks are kept flat (not as
/// `Option<u32>`s or nested structs) so that they share padding.
#[derive(Clone, Copy)]
struct SourceState {
    used: bool,
    /// `last_failure` is set.
    failed: bool,
    /// `success` is set.
    succeeded: bool,
    brute_fired: bool,
    spray_fired: bool,
    ip: IpAddr,
    last_seen: u32,
    /// Time of the latest failure line of any kind (for the quiet-window re-arm).
    last_failure: u32,
    /// Time of the last success from this source: success-after-failures counts after it.
    success: u32,
    brute_at: u32,
    spray_at: u32,
    failures: Failures,
    names: Names,
    slow: Slow,
}

impl SourceState {
    const EMPTY: SourceState = SourceState {
        used: false,
        failed: false,
        succeeded: false,
        brute_fired: false,
        spray_fired: false,
        ip: IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED),
        last_seen: 0,
        last_failure: 0,
        success: 0,
        brute_at: 0,
        spray_at: 0,
        failures: Failures::EMPTY,
        names: Names::EMPTY,
        slow: Slow::EMPTY,
    };

    fn last_failure(&self) -> Option<u32> {
        self.failed.then_some(self.last_failure)
    }

    fn note_failure(&mut self, now: u32) {
        self.last_failure = if self.failed {
            later(self.last_failure, now)
        } else {
            now
        };
        self.failed = true;
    }

    fn success(&self) -> Option<u32> {
        self.succeeded.then_some(self.success)
    }

    fn note_success(&mut self, now: u32) {
        self.success = if self.succeeded {
            later(self.success, now)
        } else {
            now
        };
        self.succeeded = true;
    }
}

impl Slot for SourceState {
    fn used(&self) -> bool {
        self.used
    }
    fn last_seen(&self) -> u32 {
        self.last_seen
    }
}

#[derive(Clone, Copy)]
struct UserState {
    used: bool,
    hash: u32,
    last_seen: u32,
    failures: Failures,
    success: Option<u32>,
}

impl UserState {
    const EMPTY: UserState = UserState {
        used: false,
        hash: 0,
        last_seen: 0,
        failures: Failures::EMPTY,
        success: None,
    };
}

impl Slot for UserState {
    fn used(&self) -> bool {
        self.used
    }
    fn last_seen(&self) -> u32 {
        self.last_seen
    }
}

#[derive(Clone, Copy)]
struct Pair {
    used: bool,
    user: u32,
    ip: IpAddr,
    last_seen: u32,
}

impl Pair {
    const EMPTY: Pair = Pair {
        used: false,
        user: 0,
        ip: IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED),
        last_seen: 0,
    };
}

impl Slot for Pair {
    fn used(&self) -> bool {
        self.used
    }
    fn last_seen(&self) -> u32 {
        self.last_seen
    }
}

/// An account of this host: a user that logged in, used sudo or su, or was changed. Failed
/// guesses never create one.
#[derive(Clone, Copy)]
struct Account {
    used: bool,
    /// It logged in before.
    logged_in: bool,
    /// It used sudo before.
    sudo: bool,
    /// `created` is set (useradd seen).
    is_new: bool,
    /// `suspicious` is set: a login that alerted, not yet followed by sudo/su.
    flagged: bool,
    /// The sudo/su failure count has alerted in its window.
    failures_fired: bool,
    /// The suspicious login alerted at medium or high severity (a sudo after it is high).
    flagged_high: bool,
    /// It had logged in before its latest login (a history on this host).
    returning: bool,
    hash: u32,
    last_seen: u32,
    created: u32,
    created_seq: u64,
    suspicious: u32,
    suspicious_seq: u64,
    suspicious_ip: Option<IpAddr>,
    /// sudo/su password failures since `fail_t` (the first of the window), the first one's seq.
    fail_n: u32,
    fail_t: u32,
    fail_seq: u64,
}

impl Account {
    const EMPTY: Account = Account {
        used: false,
        logged_in: false,
        sudo: false,
        is_new: false,
        flagged: false,
        failures_fired: false,
        flagged_high: false,
        returning: false,
        hash: 0,
        last_seen: 0,
        created: 0,
        created_seq: 0,
        suspicious: 0,
        suspicious_seq: 0,
        suspicious_ip: None,
        fail_n: 0,
        fail_t: 0,
        fail_seq: 0,
    };
}

impl Slot for Account {
    fn used(&self) -> bool {
        self.used
    }
    fn last_seen(&self) -> u32 {
        self.last_seen
    }
}

/// Counters of what the detector dropped, replaced or held back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) struct DetectStats {
    /// Events ignored by the windowed rules because they had no timestamp.
    pub untimed: u64,
    /// Source slots reused for a new source while in use.
    pub source_evictions: u64,
    /// User slots reused while in use.
    pub user_evictions: u64,
    /// User/IP pair slots reused while in use.
    pub pair_evictions: u64,
    /// Account slots reused while in use.
    pub account_evictions: u64,
    /// Alerts not raised because a rule's allow-list matched.
    pub allowed: u64,
}

// ---------------------------------------------------------------------------------------------
// The detector

/// The edge detections, over fixed-capacity tables: `SOURCES` source IPs, `USERS` user names
/// (for success after failures per user), `PAIRS` user/IP pairs (first-seen source) and
/// `ACCOUNTS` accounts of this host (privilege and account rules). Each should be a multiple of
/// [`WAYS`] (8); a table smaller than 8 is one set.
pub struct Detector<
    const SOURCES: usize = 1024,
    const USERS: usize = 256,
    const PAIRS: usize = 1024,
    const ACCOUNTS: usize = 256,
> {
    config: DetectConfig,
    /// How long a source keeps attempt slots: the longer of the two windows that read them.
    horizon: u32,
    /// How long a user keeps attempt slots: the long window (or the short one, if longer).
    user_horizon: u32,
    sources: [SourceState; SOURCES],
    users: [UserState; USERS],
    pairs: [Pair; PAIRS],
    accounts: [Account; ACCOUNTS],
    /// [`Tags`] of the four tables, probed before their slots.
    source_tags: Tags<SOURCES>,
    user_tags: Tags<USERS>,
    pair_tags: Tags<PAIRS>,
    account_tags: Tags<ACCOUNTS>,
    spread: Spread,
    /// Time of the first success seen, which starts the learning period.
    first_success: Option<u32>,
    /// The latest event time seen (whole seconds), for events without a timestamp.
    latest: Option<i64>,
    /// Events seen by [`Detector::observe`] (its sequence numbers).
    events: u64,
    stats: DetectStats,
}

impl<const SOURCES: usize, const USERS: usize, const PAIRS: usize, const ACCOUNTS: usize> fmt::Debug
    for Detector<SOURCES, USERS, PAIRS, ACCOUNTS>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Detector")
            .field("config", &self.config)
            .field("sources", &self.sources.iter().filter(|s| s.used).count())
            .field("users", &self.users.iter().filter(|s| s.used).count())
            .field("pairs", &self.pairs.iter().filter(|s| s.used).count())
            .field("accounts", &self.accounts.iter().filter(|s| s.used).count())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Default for DefaultDetector {
    fn default() -> Self {
        Detector::new(DetectConfig::default())
    }
}

/// An address that this many other users logged in from is shared (an office NAT, a VPN): a
/// user's first login from it is not from a new address.
const SHARED_ADDRESS_USERS: usize = 2;

/// What a success looked like before it was recorded.
#[derive(Clone, Copy)]
struct LoginContext {
    /// The user/IP pair (or the user on that /16 or /48) was seen before.
    known_source: bool,
    /// The user has some recorded address.
    known_user: bool,
    /// Still learning: nothing is "new".
    learning: bool,
    /// A password or keyboard-interactive login (a guessable secret), or a method not logged.
    guessable: bool,
}

impl LoginContext {
    /// The address is new for a user with a history, after learning.
    fn new_source(&self) -> bool {
        !self.learning && !self.known_source
    }
}

impl<const SOURCES: usize, const USERS: usize, const PAIRS: usize, const ACCOUNTS: usize>
    Detector<SOURCES, USERS, PAIRS, ACCOUNTS>
{
    const NONEMPTY: () = assert!(
        SOURCES > 0 && USERS > 0 && PAIRS > 0 && ACCOUNTS > 0,
        "detector tables need at least one slot"
    );

    /// A detector with empty tables. Thresholds of 0 and windows of 0 are raised to 1 (see
    /// [`DetectConfig::validate`] to refuse them instead).
    pub fn new(config: DetectConfig) -> Self {
        #[allow(clippy::let_unit_value)] // Evaluates the compile-time size check.
        let () = Self::NONEMPTY;
        let config = config.clamped();
        let horizon = config
            .brute_force
            .window_secs
            .max(config.success_after_failures.window_secs);
        let user_horizon = config
            .slow
            .window_secs
            .max(config.success_after_failures.window_secs);
        Detector {
            config,
            horizon,
            user_horizon,
            sources: [SourceState::EMPTY; SOURCES],
            users: [UserState::EMPTY; USERS],
            pairs: [Pair::EMPTY; PAIRS],
            accounts: [Account::EMPTY; ACCOUNTS],
            source_tags: Tags::EMPTY,
            user_tags: Tags::EMPTY,
            pair_tags: Tags::EMPTY,
            account_tags: Tags::EMPTY,
            spread: Spread::EMPTY,
            first_success: None,
            latest: None,
            events: 0,
            stats: DetectStats::default(),
        }
    }

    /// The configuration in force (after clamping).
    #[cfg(test)]
    pub(crate) fn config(&self) -> &DetectConfig {
        &self.config
    }

    /// What was dropped or replaced so far.
    #[cfg(test)]
    pub(crate) fn stats(&self) -> DetectStats {
        self.stats
    }

    /// Feeds one event; returns the alerts it raises (usually none). The alerts cite events by
    /// the detector's own count of events; the agent uses [`Detector::observe_seq`].
    pub fn observe(&mut self, ev: &LoginEvent<'_>) -> Alerts {
        let seq = self.events;
        self.observe_seq(ev, seq)
    }

    /// The host zone's offset from UTC in force now, seconds east, for the working-hours rule
    /// (the core has no clock and no zone database): the caller, which resolves times in the
    /// zone, passes it as it changes, so a change to or from summer time needs no new detector.
    pub fn set_utc_offset(&mut self, secs: i32) {
        self.config.off_hours.utc_offset_secs = secs;
    }

    /// Feeds one event whose `event.sequence` is `seq` (the alerts cite these numbers).
    pub fn observe_seq(&mut self, ev: &LoginEvent<'_>, seq: u64) -> Alerts {
        let mut out = Alerts::new();
        self.observe_into(ev, seq, &mut out);
        out
    }

    /// [`Detector::observe_seq`] into `out` (cleared first), which a caller keeps from one event
    /// to the next: [`Alerts`] is a kilobyte, and most events raise nothing.
    pub fn observe_into(&mut self, ev: &LoginEvent<'_>, seq: u64, out: &mut Alerts) {
        out.clear();
        self.events = seq.wrapping_add(1);
        let ts = ev.timestamp;
        if let Some(ts) = ts {
            self.latest = Some(self.latest.map_or(ts.secs, |l| l.max(ts.secs)));
        }
        // Failures first, with one test: they are the hot path (a scanner's many lines).
        if matches!(ev.action, Action::AuthFailure | Action::InvalidUser) {
            match (ts, ev.source_ip()) {
                (Some(ts), Some(ip)) => self.on_failure(ev, ip, ts, seq, out),
                (None, _) => self.stats.untimed += 1,
                (Some(_), None) => {}
            }
            return;
        }
        if matches!(
            ev.action,
            Action::AuthSuccess | Action::Sudo | Action::Su | Action::AccountChange
        ) {
            self.observe_other(ev, ts, seq, out);
        }
    }

    /// [`Detector::observe_into`] for the kinds other than failures that a rule reads.
    #[cold]
    #[inline(never)]
    fn observe_other(
        &mut self,
        ev: &LoginEvent<'_>,
        ts: Option<Timestamp>,
        seq: u64,
        out: &mut Alerts,
    ) {
        if ts.is_none() && ev.action == Action::AuthSuccess {
            self.stats.untimed += 1;
        }
        match ev.action {
            Action::AuthSuccess => self.on_success(ev, ts, seq, out),
            Action::Sudo | Action::Su => {
                if let Some(ts) = ts {
                    self.on_privilege(ev, ts, seq, out);
                }
            }
            Action::AccountChange => {
                if let Some(ts) = ts {
                    self.on_account_change(ev, ts, seq, out);
                }
            }
            _ => {}
        }
    }

    /// Adds an alert unless the rule's allow-list covers it; its severity when added, else 0.
    fn raise(&mut self, out: &mut Alerts, a: Alert) -> u8 {
        raise_into(&self.config.allow, &mut self.stats, out, a)
    }

    /// Out of line: the hot path, kept in one piece of code apart from the caller's.
    #[inline(never)]
    fn on_failure(
        &mut self,
        ev: &LoginEvent<'_>,
        ip: IpAddr,
        ts: Timestamp,
        seq: u64,
        out: &mut Alerts,
    ) {
        let now = ts.secs as u32;
        let weight = failure_attempts(ev);
        let seed = self.config.hash_seed;
        // The name is read only by an attempt or an invalid-user notice.
        let name = ev
            .user
            .filter(|_| weight > 0 || ev.action == Action::InvalidUser)
            .map(|u| name_hash(seed, u.as_bytes()));
        let ip_h = source_hash(seed, ip);
        let ds = &self.config.distributed_spray;
        if ds.enabled && (weight > 0 || ev.action == Action::InvalidUser) {
            self.spread
                .add(now, ip_h, name, weight, seq, ds.window_secs);
            if self.spread.moved {
                self.check_spread(ts, seq, ev, out);
            }
        }
        if weight == 0 {
            // Nothing to count: the line only keeps its source active (for the re-arm rule).
            // Without a user name, it does not spend a slot on it either.
            if ev.user.is_some() {
                let i = self.source_index(ip, ip_h, now);
                self.sources[i].note_failure(now);
            } else if let Ok(i) = find(&self.source_tags.0, &self.sources, ip_h, now, |s| {
                s.ip == ip
            }) {
                self.sources[i].note_failure(now);
            }
            return;
        }
        // From here on the line is an attempt (`weight > 0`).
        let i = self.source_index(ip, ip_h, now);
        // Read in place (not copied): the common path reads a few fields of each.
        let (bf, ps, saf, slow) = (
            &self.config.brute_force,
            &self.config.password_spray,
            self.config.success_after_failures,
            &self.config.slow,
        );
        let horizon = self.horizon;
        let (allow, stats) = (&self.config.allow, &mut self.stats);
        let s = &mut self.sources[i];
        // Out of line: builds and raises the alert (the user name is copied only then).
        let mut fire = |rule, oldest, count, users, first: Option<u64>| {
            fire_source(
                allow,
                stats,
                out,
                rule,
                ip,
                ev,
                ts,
                oldest,
                (count, users),
                first,
                seq,
            );
        };
        let prev = s.last_failure();
        s.note_failure(now);
        // Only accounts that exist count toward a spray: a guess against a name the host does
        // not have cannot succeed, and internet scanners try a handful of such names on every
        // visit (`Invalid user X`, `Failed password for invalid user X`).
        let account = name.filter(|_| names_an_account(ev));
        s.failures.push(now, weight, seq, horizon);
        if let Some(h) = account {
            s.names.insert(h, now, ps.window_secs);
        }

        if bf.enabled {
            rearm(
                &mut s.brute_fired,
                s.brute_at,
                now,
                prev,
                bf.window_secs,
                bf.cooldown_secs,
            );
            // A latched rule cannot fire, nor can one whose threshold is above every attempt
            // kept: its window is not read.
            if !s.brute_fired && s.failures.at_most() >= bf.threshold {
                let c = s.failures.within(now, bf.window_secs, None);
                if c.count >= bf.threshold {
                    (s.brute_fired, s.brute_at) = (true, now);
                    let (users, _) = s.names.within(now, bf.window_secs);
                    fire(Rule::BruteForce, c.oldest, c.count, users, c.first_seq);
                }
            }
        }
        if ps.enabled && account.is_some() {
            rearm(
                &mut s.spray_fired,
                s.spray_at,
                now,
                prev,
                ps.window_secs,
                ps.cooldown_secs,
            );
            if !s.spray_fired && s.names.at_most() >= ps.threshold {
                let (users, oldest) = s.names.within(now, ps.window_secs);
                if users >= ps.threshold {
                    (s.spray_fired, s.spray_at) = (true, now);
                    let c = s.failures.within(now, ps.window_secs, None);
                    let oldest = oldest.max(c.oldest);
                    fire(Rule::PasswordSpray, oldest, c.count, users, c.first_seq);
                }
            }
        }
        // The long window: a source that logged in within it is a client of this host with a
        // stale password, not a slow attacker (success after failures watches its logins).
        if slow.enabled {
            let total = s.slow.add(now, weight, account, seq, slow.window_secs);
            let client = s.success().is_some_and(|t| age(now, t) <= slow.window_secs);
            let c = &mut s.slow;
            // Re-armed by a quiet long window (in `add`) or one long window after the alert.
            if c.brute_fired && age(now, c.brute_at) >= slow.window_secs {
                c.brute_fired = false;
            }
            if c.spray_fired && age(now, c.spray_at) >= slow.window_secs {
                c.spray_fired = false;
            }
            // An attack the fast rules reported within the long window is not reported again.
            let fast =
                |fired: bool, at: u32| fired || (at != 0 && age(now, at) <= slow.window_secs);
            let fast_brute = fast(s.brute_fired, s.brute_at);
            let fast_spray = fast(s.spray_fired, s.spray_at);
            let c = &mut s.slow;
            let sprayed = fast_spray || c.spray_fired;
            let brute_armed = !client && !fast_brute && !sprayed && !c.brute_fired;
            let spray_armed = !client && !fast_spray && !c.spray_fired;
            // Neither can fire (a client, or both latched): the counts are not summed.
            if brute_armed || spray_armed {
                let distinct = c.distinct();
                let since = age(now, c.first_t).min(slow.window_secs);
                let first = Some(c.first_seq);
                if brute_armed && total >= slow.brute_threshold {
                    (c.brute_fired, c.brute_at) = (true, now);
                    fire(Rule::SlowBruteForce, since, total, distinct, first);
                }
                if spray_armed && distinct >= slow.spray_threshold {
                    (c.spray_fired, c.spray_at) = (true, now);
                    fire(Rule::SlowSpray, since, total, distinct, first);
                }
            }
        }
        // Per user: only accounts that exist (a name the host does not have cannot log in, and
        // scanners' made-up names would push real users out of the table).
        if let Some(h) = account.filter(|_| saf.enabled && saf.by_user) {
            let horizon = self.user_horizon;
            let u = self.user_slot(h, now);
            u.failures.push(now, weight, seq, horizon);
        }
    }

    /// The distributed spray's test, after a failure that moved its counts ([`Spread::moved`]).
    /// Out of line: most failures do not.
    #[inline(never)]
    fn check_spread(&mut self, ts: Timestamp, seq: u64, ev: &LoginEvent<'_>, out: &mut Alerts) {
        let ds = &self.config.distributed_spray;
        let now = ts.secs as u32;
        let sp = &mut self.spread;
        sp.moved = false;
        if sp.fired {
            return;
        }
        let (sources, names) = sp.distinct();
        let background = u64::from(sp.baseline) * 2 * u64::from(ds.baseline_factor) / 16;
        let floor = u64::from(ds.min_sources) * if sp.seen < SPREAD_LEARNING { 2 } else { 1 };
        let need = floor.max(background + 1);
        if u64::from(sources) >= need && names >= ds.min_users {
            (sp.fired, sp.fired_epoch) = (true, sp.epoch);
            // Only for the alert: the attempts and the first of them.
            let (count, first_t, first_seq) = sp.first();
            let user = ev.user.map(|u| UserName::new(u.as_bytes()));
            let since = age(now, first_t).min(ds.window_secs);
            let mut a = alert(Rule::DistributedSpray, MEDIUM, None, user, ts, since)
                .counts(count, names, sources)
                .cite(first_seq)
                .cite(seq);
            a.scope = Scope::Host;
            self.raise(out, a);
        }
    }

    /// Looks at a success before it is recorded: is its address known for the user?
    fn login_context(
        &self,
        ev: &LoginEvent<'_>,
        ip: Option<IpAddr>,
        hash: Option<u32>,
        now: u32,
    ) -> LoginContext {
        let learning = self
            .first_success
            .is_none_or(|first| age(now, first) < self.config.first_seen_source.learning_secs);
        let guessable = matches!(
            ev.method,
            None | Some(Method::Password | Method::KeyboardInteractive)
        );
        let (mut known_source, mut known_user) = (false, false);
        if let (Some(ip), Some(h)) = (ip, hash) {
            let key = pair_key(self.config.hash_seed, h, ip);
            known_source = find(&self.pair_tags.0, &self.pairs, key, now, |p| {
                p.user == h && p.ip == ip
            })
            .is_ok();
            if !known_source {
                // A miss is rare (a new pair): a full scan for the user and its networks, and
                // for an address other users log in from (an office NAT, a VPN).
                let mut others = 0;
                for p in self.pairs.iter().filter(|p| p.used) {
                    if p.user == h {
                        known_user = true;
                        known_source |= same_net(p.ip, ip);
                    } else if p.ip == ip {
                        others += 1;
                    }
                }
                known_source |= others >= SHARED_ADDRESS_USERS;
            } else {
                known_user = true;
            }
        }
        LoginContext {
            known_source,
            known_user,
            learning,
            guessable,
        }
    }

    /// Cold, as the other kinds but failures: one event in a hundred, and its code (first-seen
    /// source, the account rules) stays out of the failures' instruction cache lines.
    #[cold]
    #[inline(never)]
    fn on_success(
        &mut self,
        ev: &LoginEvent<'_>,
        ts: Option<Timestamp>,
        seq: u64,
        out: &mut Alerts,
    ) {
        let ip = ev.source_ip();
        let seed = self.config.hash_seed;
        let name = ev.user.map(|u| fnv1a(seed, &[u.as_bytes()]));
        let user = ev.user.map(|u| UserName::new(u.as_bytes()));
        let Some(secs) = ts.map(|t| t.secs).or(self.latest) else {
            return;
        };
        let now = secs as u32;
        let at = ts.unwrap_or(Timestamp::from_secs(secs));
        let ctx = self.login_context(ev, ip, name, now);
        // The highest severity this login alerted at (0: none).
        let mut suspicious = 0u8;

        if let Some(ts) = ts {
            let saf = self.config.success_after_failures;
            let mut fired = false;
            if let Some(ip) = ip {
                // A slot even without failures: the slow rules know a client by its logins.
                let s = self.source_slot(ip, now);
                let c = s.failures.within(now, saf.window_secs, s.success());
                let (users, _) = s.names.within(now, saf.window_secs);
                s.note_success(now);
                // Guessing explains a password login; a key login only from a new address.
                // A guessed password is high from the start (not only after learning); a key
                // login only from an address that is new after learning.
                let severity = match (ctx.guessable, ctx.known_source, ctx.new_source()) {
                    (true, false, _) => Some(HIGH),
                    (true, true, _) | (false, _, true) => Some(MEDIUM),
                    (false, _, false) => None,
                };
                if let Some(sev) = severity.filter(|_| saf.enabled && c.count >= saf.threshold) {
                    let a = alert(
                        Rule::SuccessAfterFailures,
                        sev,
                        Some(ip),
                        user,
                        ts,
                        c.oldest,
                    )
                    .counts(c.count, users, 0)
                    .cite_opt(c.first_seq)
                    .cite(seq);
                    fired = true;
                    suspicious = suspicious.max(self.raise(out, a));
                }
            }
            if let Some(h) = ev
                .user
                .filter(|_| saf.by_user)
                .map(|u| name_hash(seed, u.as_bytes()))
                && let Ok(i) = find(&self.user_tags.0, &self.users, h, now, |u| u.hash == h)
            {
                // A password login from an address new for the user, after guesses against the
                // account that no success of the user has followed, is the spray-then-login
                // whatever the pause: the guesses count over the long window. Anything else
                // (a key, the user's own address) counts only the short window's.
                let long = ctx.guessable && ctx.new_source();
                let window = if long {
                    self.user_horizon
                } else {
                    saf.window_secs
                };
                let u = &mut self.users[i];
                let c = u.failures.within(now, window, u.success);
                u.success = Some(u.success.map_or(now, |p| later(p, now)));
                // Failures from other addresses say nothing about a key login from an
                // address the user has used before.
                let severity = match (ctx.guessable, ctx.new_source()) {
                    (_, true) => Some(HIGH),
                    (true, false) => Some(LOW),
                    (false, false) => None,
                };
                if let Some(sev) =
                    severity.filter(|_| saf.enabled && !fired && c.count >= saf.threshold)
                {
                    let mut a = alert(Rule::SuccessAfterFailures, sev, ip, user, ts, c.oldest)
                        .counts(c.count, 0, 0)
                        .cite_opt(c.first_seq)
                        .cite(seq);
                    a.scope = Scope::User;
                    suspicious = suspicious.max(self.raise(out, a));
                }
            }
        }

        let (Some(ip), Some(h)) = (ip, name) else {
            return;
        };
        self.first_success.get_or_insert(now);

        // First-seen source: needs an IP and a user, not a window; an untimed event uses the
        // latest time seen.
        let key = pair_key(seed, h, ip);
        match find(&self.pair_tags.0, &self.pairs, key, now, |p| {
            p.user == h && p.ip == ip
        }) {
            Ok(i) => self.pairs[i].last_seen = later(self.pairs[i].last_seen, now),
            Err(i) => {
                if self.pairs[i].used {
                    self.stats.pair_evictions += 1;
                }
                self.pair_tags.0[i] = tag(key);
                self.pairs[i] = Pair {
                    used: true,
                    user: h,
                    ip,
                    last_seen: now,
                };
                let fs = self.config.first_seen_source;
                if fs.enabled
                    && ctx.known_user
                    && ctx.new_source()
                    && (ctx.guessable || fs.key_logins)
                {
                    let a = alert(Rule::FirstSeenSource, LOW, Some(ip), user, at, 0).cite(seq);
                    suspicious = suspicious.max(self.raise(out, a));
                }
            }
        }

        let is_root = ev.user.is_some_and(|u| u.as_bytes() == b"root") || ev.uid == Some(0);
        if self.config.root_login.enabled && is_root {
            let sev = if ctx.guessable && ctx.new_source() {
                HIGH
            } else {
                MEDIUM
            };
            let a = alert(Rule::RootLogin, sev, Some(ip), user, at, 0).cite(seq);
            suspicious = suspicious.max(self.raise(out, a));
        }
        let oh = self.config.off_hours;
        if oh.enabled && !working_time(&oh, secs) {
            let sev = if ctx.new_source() { MEDIUM } else { LOW };
            let a = alert(Rule::OffHoursLogin, sev, Some(ip), user, at, 0).cite(seq);
            suspicious = suspicious.max(self.raise(out, a));
        }

        let ac = self.config.account_changes;
        let acct = self.account_slot(h, now);
        let mut new_account = None;
        if !acct.logged_in && acct.is_new && age(now, acct.created) < ac.new_account_secs {
            new_account = Some((age(now, acct.created), acct.created_seq));
        }
        // From the company's shared address it is the new colleague, whose account the
        // creation's alert already reported (one incident, one alert); from anywhere else,
        // maybe the account's creator.
        if let Some((since, created_seq)) = new_account.filter(|_| ac.enabled && !ctx.known_source)
        {
            let a = alert(Rule::NewAccountLogin, MEDIUM, Some(ip), user, at, since)
                .cite(created_seq)
                .cite(seq);
            suspicious = suspicious.max(self.raise(out, a));
        }
        let acct = self.account_slot(h, now);
        acct.returning |= acct.logged_in;
        acct.logged_in = true;
        if suspicious > 0 {
            acct.flagged = true;
            acct.flagged_high = suspicious >= MEDIUM;
            acct.suspicious = now;
            acct.suspicious_seq = seq;
            acct.suspicious_ip = Some(ip);
        }
    }

    #[cold]
    #[inline(never)]
    fn on_privilege(&mut self, ev: &LoginEvent<'_>, ts: Timestamp, seq: u64, out: &mut Alerts) {
        let p = self.config.privilege;
        let Some(who) = ev.user else {
            return;
        };
        let now = ts.secs as u32;
        let h = fnv1a(self.config.hash_seed, &[who.as_bytes()]);
        let user = Some(UserName::new(who.as_bytes()));
        let target = ev.target_user.map(|t| UserName::new(t.as_bytes()));
        let learning = self
            .first_success
            .is_none_or(|first| age(now, first) < p.first_sudo_learning_secs);
        let reason = ev.reason.map_or(&b""[..], |r| r.as_bytes());
        let refused = ev.action == Action::Sudo
            && ev.outcome == Outcome::Failure
            && (contains(reason, b"NOT in sudoers")
                || contains(reason, b"NOT authorized")
                || contains(reason, b"command not allowed"));
        let password_failure = ev.outcome == Outcome::Failure
            && !refused
            && (ev.action == Action::Su || contains(reason, b"incorrect password attempt"));
        let i = self.account_index(h, now);
        let (allow, stats) = (&self.config.allow, &mut self.stats);
        let a = &mut self.accounts[i];
        let mut raise = |x: Alert| raise_into(allow, stats, out, x);
        let with = |mut x: Alert| {
            x.target = target;
            x.action = ev.action;
            x
        };
        let recent = a.flagged && age(now, a.suspicious) <= p.window_secs;
        // After a login that alerted at medium or high: look now. After one
        // from a new address (low): look today.
        let level = if a.flagged_high { HIGH } else { MEDIUM };
        if p.enabled && ev.outcome == Outcome::Success && recent {
            a.flagged = false;
            let x = alert(
                Rule::PrivilegeAfterLogin,
                level,
                a.suspicious_ip,
                user,
                ts,
                age(now, a.suspicious),
            )
            .cite(a.suspicious_seq)
            .cite(seq);
            raise(with(x));
        }
        if p.enabled && refused {
            let sev = if recent { level } else { MEDIUM };
            let mut x = alert(Rule::SudoRefused, sev, None, user, ts, 0).cite(seq);
            if recent {
                x = x.cite(a.suspicious_seq);
                x.source = a.suspicious_ip;
            }
            raise(with(x));
        }
        if p.enabled && password_failure {
            let n = ev.count.max(1);
            if a.fail_n == 0 || age(now, a.fail_t) > p.failure_window_secs {
                (a.fail_n, a.fail_t, a.fail_seq, a.failures_fired) = (0, now, seq, false);
            }
            a.fail_n = a.fail_n.saturating_add(n);
            if !a.failures_fired && a.fail_n >= p.failure_threshold {
                a.failures_fired = true;
                let x = alert(
                    Rule::PrivilegeFailures,
                    MEDIUM,
                    None,
                    user,
                    ts,
                    age(now, a.fail_t),
                )
                .counts(a.fail_n, 0, 0)
                .cite(a.fail_seq)
                .cite(seq);
                raise(with(x));
            }
        }
        if ev.action == Action::Sudo && ev.outcome == Outcome::Success {
            // News from a user with a history here (an earlier login) who never needed sudo;
            // in a user's first session on this host there is no habit to break, and the new
            // login itself is what the login rules (here and the fleet's) judge.
            if p.enabled && p.first_sudo && !a.sudo && a.returning && !learning {
                raise(with(
                    alert(Rule::FirstSudo, LOW, None, user, ts, 0).cite(seq),
                ));
            }
            a.sudo = true;
        }
    }

    #[cold]
    #[inline(never)]
    fn on_account_change(
        &mut self,
        ev: &LoginEvent<'_>,
        ts: Timestamp,
        seq: u64,
        out: &mut Alerts,
    ) {
        let ac = self.config.account_changes;
        if ev.outcome != Outcome::Success {
            return;
        }
        let now = ts.secs as u32;
        let reason = ev.reason.map_or(&b""[..], |r| r.as_bytes());
        let actor = ev.user.map(|u| UserName::new(u.as_bytes()));
        let Some(target_text) = ev.target_user else {
            return;
        };
        let target = Some(UserName::new(target_text.as_bytes()));
        let h = fnv1a(self.config.hash_seed, &[target_text.as_bytes()]);
        let mut x = None;
        if reason == b"new user" {
            let a = self.account_slot(h, now);
            (a.is_new, a.created, a.created_seq) = (true, now, seq);
            x = Some(alert(Rule::AccountCreated, MEDIUM, None, actor, ts, 0));
        } else if let Some(group) = added_to_group(reason)
            && ac.privileged_groups.contains(group)
        {
            let mut a = alert(Rule::PrivilegedGroup, HIGH, None, actor, ts, 0);
            a.group = Some(UserName::new(group));
            x = Some(a);
        } else if contains(reason, b"password") && !contains(reason, b"group") {
            // `password for 'bob' changed by 'root'` (shadow), or `password changed for bob`
            // from chpasswd (root only). A user changing their own password is not reported.
            let by_root = actor.is_some_and(|a| a.as_text().as_bytes() == b"root")
                || ev.program.as_bytes() == b"chpasswd";
            if by_root && target_text.as_bytes() != b"root" {
                let mut a = alert(Rule::PasswordReset, MEDIUM, None, actor, ts, 0);
                if a.user.is_none() {
                    a.user = Some(UserName::new(b"root"));
                }
                x = Some(a);
            }
        }
        if let Some(mut a) = x.filter(|_| ac.enabled) {
            a.target = target;
            a.action = Action::AccountChange;
            self.raise(out, a.cite(seq));
        }
    }

    /// The slot of `ip`, created (evicting the least worth of its set) if absent.
    fn source_slot(&mut self, ip: IpAddr, now: u32) -> &mut SourceState {
        let i = self.source_index(ip, source_hash(self.config.hash_seed, ip), now);
        &mut self.sources[i]
    }

    /// The index of [`Detector::source_slot`]; `hash` is `ip`'s [`source_hash`].
    fn source_index(&mut self, ip: IpAddr, hash: u32, now: u32) -> usize {
        let window = self.config.slow.window_secs;
        let i = match find_by(
            &self.source_tags.0,
            &self.sources,
            hash,
            now,
            |s| s.ip == ip,
            |s| s.slow.weight(now, window),
        ) {
            Ok(i) => i,
            Err(i) => {
                self.new_source(i, ip, hash, now);
                i
            }
        };
        let s = &mut self.sources[i];
        s.last_seen = later(s.last_seen, now);
        i
    }

    /// Puts `ip` (whose [`source_hash`] is `hash`) in slot `i`, empty or evicted. Out of line: once
    /// per new source, and it writes a whole slot.
    #[cold]
    #[inline(never)]
    fn new_source(&mut self, i: usize, ip: IpAddr, hash: u32, now: u32) {
        if self.sources[i].used {
            self.stats.source_evictions += 1;
        }
        self.source_tags.0[i] = tag(hash);
        self.sources[i] = SourceState {
            used: true,
            ip,
            last_seen: now,
            ..SourceState::EMPTY
        };
    }

    /// The slot of user-name hash `hash`, created if absent.
    fn user_slot(&mut self, hash: u32, now: u32) -> &mut UserState {
        let i = match find(&self.user_tags.0, &self.users, hash, now, |u| {
            u.hash == hash
        }) {
            Ok(i) => i,
            Err(i) => {
                self.new_user(i, hash, now);
                i
            }
        };
        let u = &mut self.users[i];
        u.last_seen = later(u.last_seen, now);
        u
    }

    /// Puts user-name hash `hash` in slot `i`, empty or evicted. Out of line, as
    /// [`Detector::new_source`].
    #[cold]
    #[inline(never)]
    fn new_user(&mut self, i: usize, hash: u32, now: u32) {
        if self.users[i].used {
            self.stats.user_evictions += 1;
        }
        self.user_tags.0[i] = tag(hash);
        self.users[i] = UserState {
            used: true,
            hash,
            last_seen: now,
            ..UserState::EMPTY
        };
    }

    /// The account of user-name hash `hash`, created if absent.
    fn account_slot(&mut self, hash: u32, now: u32) -> &mut Account {
        let i = self.account_index(hash, now);
        &mut self.accounts[i]
    }

    /// The index of [`Detector::account_slot`].
    fn account_index(&mut self, hash: u32, now: u32) -> usize {
        let i = match find(&self.account_tags.0, &self.accounts, hash, now, |a| {
            a.hash == hash
        }) {
            Ok(i) => i,
            Err(i) => {
                if self.accounts[i].used {
                    self.stats.account_evictions += 1;
                }
                self.account_tags.0[i] = tag(hash);
                self.accounts[i] = Account {
                    used: true,
                    hash,
                    last_seen: now,
                    ..Account::EMPTY
                };
                i
            }
        };
        let a = &mut self.accounts[i];
        a.last_seen = later(a.last_seen, now);
        i
    }
}

/// [`Detector::raise`] on the fields it needs, so that a rule can raise while it holds a slot.
/// Cold, as [`alert`]: most events raise nothing, and the code that builds and checks an
/// alert stays out of the instruction cache the parser and the tables share.
#[cold]
#[inline(never)]
fn raise_into(allow: &[AllowList], stats: &mut DetectStats, out: &mut Alerts, a: Alert) -> u8 {
    if allow[a.rule.index()].allows(a.source, a.user.as_ref()) {
        stats.allowed += 1;
        return 0;
    }
    // MAX_ALERTS is more than one event can raise, so nothing is lost.
    if out.push(a).is_ok() { a.severity } else { 0 }
}

/// Builds a source rule's alert from the failure path and raises it: `counts` are (attempts,
/// distinct names), `first` cites the first attempt, `seq` the event. Cold and out of line, so
/// that the failure path's hot code holds no alert building.
#[cold]
#[inline(never)]
#[allow(clippy::too_many_arguments)] // One call per rule from `on_failure`; a struct would only rename them.
fn fire_source(
    allow: &[AllowList],
    stats: &mut DetectStats,
    out: &mut Alerts,
    rule: Rule,
    ip: IpAddr,
    ev: &LoginEvent<'_>,
    ts: Timestamp,
    oldest: u32,
    counts: (u32, u32),
    first: Option<u64>,
    seq: u64,
) {
    let user = ev.user.map(|u| UserName::new(u.as_bytes()));
    let a = alert(rule, MEDIUM, Some(ip), user, ts, oldest)
        .counts(counts.0, counts.1, 0)
        .cite_opt(first)
        .cite(seq);
    raise_into(allow, stats, out, a);
}

/// True when `secs` (UTC) falls in working hours in the host's zone.
fn working_time(oh: &OffHours, secs: i64) -> bool {
    let local = secs.saturating_add(i64::from(oh.utc_offset_secs));
    let day = local.div_euclid(86_400);
    // 1970-01-01 was a Thursday (Monday = 0).
    let weekday = (day + 3).rem_euclid(7) as u32;
    let hour = local.rem_euclid(86_400) / 3600;
    oh.weekdays & (1 << weekday) != 0
        && hour >= i64::from(oh.start_hour)
        && hour < i64::from(oh.end_hour)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The group of `add 'bob' to group 'sudo'`, `add 'bob' to shadow group 'sudo'` (usermod,
/// useradd) or `user bob added by root to group sudo` (gpasswd).
fn added_to_group(reason: &[u8]) -> Option<&[u8]> {
    if !(reason.starts_with(b"add ")
        || reason.starts_with(b"user ") && contains(reason, b" added by "))
    {
        return None;
    }
    let after = |marker: &[u8]| {
        reason
            .windows(marker.len())
            .position(|w| w == marker)
            .map(|i| &reason[i + marker.len()..])
    };
    let rest = after(b" to group ").or_else(|| after(b" to shadow group "))?;
    let rest = rest.trim_ascii();
    let rest = rest.strip_prefix(b"'").unwrap_or(rest);
    let rest = rest.strip_suffix(b"'").unwrap_or(rest);
    (!rest.is_empty()).then_some(rest)
}

#[cold]
#[inline(never)]
fn alert(
    rule: Rule,
    severity: u8,
    ip: Option<IpAddr>,
    user: Option<UserName>,
    end: Timestamp,
    oldest_age: u32,
) -> Alert {
    Alert {
        rule,
        scope: Scope::Source,
        severity,
        source: ip,
        user,
        target: None,
        group: None,
        action: Action::AuthFailure,
        count: 1,
        users: 0,
        sources: 0,
        start: Timestamp::from_secs(end.secs.saturating_sub(i64::from(oldest_age))),
        end,
        cites: [0; MAX_CITES],
        n_cites: 0,
    }
}

impl Alert {
    fn counts(mut self, count: u32, users: u32, sources: u32) -> Self {
        (self.count, self.users, self.sources) = (count, users, sources);
        self
    }

    fn cite_opt(self, seq: Option<u64>) -> Self {
        match seq {
            Some(s) => self.cite(s),
            None => self,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ecs::{Envelope, write_alert};
    use crate::event::Source;
    use crate::parse::{Parsed, parse_line};
    use crate::syslog::Context;

    /// 2026-11-28T08:00:00Z: `t` in the helpers is seconds after this.
    const BASE: i64 = 1_795_852_800;

    fn ctx() -> Context {
        Context::new(Timestamp::from_secs(BASE))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Parses one sshd line written at `BASE + t` and feeds it.
    fn feed<const S: usize, const U: usize, const P: usize>(
        d: &mut Detector<S, U, P>,
        t: u32,
        msg: &str,
    ) -> Alerts {
        let line = format!(
            "Nov 28 {:02}:{:02}:{:02} testhost sshd[4242]: {msg}",
            8 + t / 3600,
            t / 60 % 60,
            t % 60
        );
        match parse_line(line.as_bytes(), &ctx()) {
            Parsed::Event(ev) => {
                assert_eq!(
                    ev.timestamp,
                    Some(Timestamp::from_secs(BASE + i64::from(t)))
                );
                d.observe(&ev)
            }
            other => panic!("{line:?} gave {other:?}"),
        }
    }

    fn failed(user: &str, from: &str) -> String {
        format!("Failed password for {user} from {from} port 40000 ssh2")
    }

    fn accepted(user: &str, from: &str) -> String {
        format!("Accepted password for {user} from {from} port 40001 ssh2")
    }

    fn pam(user: &str, from: &str) -> String {
        format!(
            "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={from}  user={user}"
        )
    }

    fn rules(a: &Alerts) -> Vec<Rule> {
        a.iter().map(|a| a.rule).collect()
    }

    /// All rules but the one under test off, so counts are clean.
    fn only(rule: Rule) -> DetectConfig {
        let mut c = DetectConfig::default();
        c.brute_force.enabled = rule == Rule::BruteForce;
        c.password_spray.enabled = rule == Rule::PasswordSpray;
        c.success_after_failures.enabled = rule == Rule::SuccessAfterFailures;
        c.first_seen_source.enabled = rule == Rule::FirstSeenSource;
        c.first_seen_source.learning_secs = 0;
        c.slow.enabled = matches!(rule, Rule::SlowBruteForce | Rule::SlowSpray);
        c.distributed_spray.enabled = rule == Rule::DistributedSpray;
        c.privilege.enabled = matches!(
            rule,
            Rule::PrivilegeAfterLogin
                | Rule::SudoRefused
                | Rule::PrivilegeFailures
                | Rule::FirstSudo
        );
        c.account_changes.enabled = matches!(
            rule,
            Rule::AccountCreated
                | Rule::PrivilegedGroup
                | Rule::PasswordReset
                | Rule::NewAccountLogin
        );
        c.root_login.enabled = rule == Rule::RootLogin;
        c.off_hours.enabled = rule == Rule::OffHoursLogin;
        c
    }

    fn detector(c: DetectConfig) -> Box<DefaultDetector> {
        Box::new(Detector::new(c))
    }

    /// What `save_state` writes, in one vector.
    fn state<const S: usize, const U: usize, const P: usize>(d: &Detector<S, U, P>) -> Vec<u8> {
        let mut v = Vec::new();
        d.save_state(|b| v.extend_from_slice(b));
        v
    }

    /// A mixed stream: a brute force, a spray, successes after failures, and new sources for
    /// known users, from `n` events on; `k` picks the line.
    fn mixed(k: u32) -> String {
        let src = format!("198.51.100.{}", k % 7);
        let user = ["root", "alice", "bob", "admin", "oracle"][(k % 5) as usize];
        match k % 11 {
            0 => accepted(user, &src),
            1 => accepted("alice", &format!("2001:db8::{:x}", k % 13)),
            2..=5 => pam(user, &src),
            _ => failed(user, &src),
        }
    }

    #[test]
    fn a_restored_memory_raises_exactly_the_alerts_the_original_would() {
        let mut config = DetectConfig::default();
        config.first_seen_source.learning_secs = 60;
        config.hash_seed = 0x1234_5678;
        for cut in [0u32, 1, 40, 300, 999] {
            let mut original = detector(config);
            for k in 0..cut {
                feed(&mut *original, k * 3, &mixed(k));
            }
            let saved = state(&*original);
            // Another process: another seed, which the saved tables override.
            let mut other = config;
            other.hash_seed = 0x9abc_def0;
            let mut restored = detector(other);
            restored.restore_state(&saved).unwrap();
            assert_eq!(restored.config().hash_seed, config.hash_seed);
            assert_eq!(restored.stats(), original.stats());
            assert_eq!(state(&*restored), saved);
            let mut fresh = detector(config);
            let (mut alerts, mut forgetful) = (0, false);
            for k in cut..cut + 600 {
                let a = feed(&mut *original, k * 3, &mixed(k));
                assert_eq!(
                    feed(&mut *restored, k * 3, &mixed(k)),
                    a,
                    "cut {cut}, event {k}"
                );
                // What a restart gave before: a detector that forgot.
                forgetful |= feed(&mut *fresh, k * 3, &mixed(k)) != a;
                alerts += a.len();
            }
            assert!(alerts > 0, "cut {cut}: the stream raises alerts");
            assert_eq!(forgetful, cut > 0, "cut {cut}: memory changes the alerts");
        }

        // A brute force alerted just before the cut: no second alert within its cooldown,
        // where a detector that forgot raises one.
        let hammer = |d: &mut DefaultDetector, k: u32| feed(d, k, &failed("root", "203.0.113.9"));
        let mut original = detector(config);
        let fired: usize = (0..12).map(|k| hammer(&mut original, k).len()).sum();
        assert_eq!(fired, 1);
        let mut restored = detector(config);
        restored.restore_state(&state(&*original)).unwrap();
        let mut fresh = detector(config);
        let (mut again, mut forgetful) = (0, 0);
        // (Below the slow brute force's 40.)
        for k in 12..38 {
            let a = hammer(&mut original, k);
            assert_eq!(hammer(&mut restored, k), a);
            again += a.len();
            forgetful += hammer(&mut fresh, k).len();
        }
        assert_eq!((again, forgetful), (0, 1));
    }

    /// A memory saved by the version 2 detector (agent-core at ce52bd9, hash seed 0x1234_5678,
    /// first-seen learning 60 s, other settings default), after: alice's password logins from
    /// 198.51.100.7 at t = 0 and 100; 9 failures for root from 203.0.113.9 at t = 1000-1008;
    /// failures for u1, u2, u3, u4 from 203.0.113.50 at t = 1010-1013.
    const MEMORY_V2: &[u8] = include_bytes!("../testdata/detector-memory-v2.bin");

    #[test]
    fn a_version_2_memory_is_brought_forward_without_forgetting_or_double_counting() {
        let mut config = DetectConfig::default();
        config.first_seen_source.learning_secs = 60;
        let mut d = detector(config);
        assert_eq!(MEMORY_V2[4..6], 2u16.to_le_bytes());
        d.restore_state(MEMORY_V2).unwrap();
        // The brute force goes on where it was: the source is found in its new set, with its 9
        // failures (a fresh slot would count 1).
        let a = feed(&mut *d, 1020, &failed("root", "203.0.113.9"));
        assert_eq!(rules(&a), [Rule::BruteForce]);
        assert_eq!(a[0].count, 10);
        // The names tried before the upgrade were saved as old hashes: the same four names
        // again are four, not eight (a spray threshold is 5, the long window's 6).
        for (k, u) in ["u1", "u2", "u3", "u4"].iter().enumerate() {
            let a = feed(&mut *d, 1030 + k as u32, &failed(u, "203.0.113.50"));
            assert!(a.is_empty(), "{u}: {:?}", rules(&a));
        }
        // A fifth name completes the spray: the source and its attempts were kept.
        let a = feed(&mut *d, 1040, &failed("u5", "203.0.113.50"));
        assert_eq!(rules(&a), [Rule::PasswordSpray]);
        // The pairs learnt stay: alice's own address is known, another is new.
        assert!(feed(&mut *d, 1100, &accepted("alice", "198.51.100.7")).is_empty());
        let a = feed(&mut *d, 1110, &accepted("alice", "192.0.2.200"));
        assert!(
            rules(&a).contains(&Rule::FirstSeenSource),
            "{:?}",
            rules(&a)
        );
        // Saved again, it is a version 3 memory that restores to the same.
        let saved = state(&*d);
        assert_eq!(saved[4..6], 3u16.to_le_bytes());
        let mut again = detector(config);
        again.restore_state(&saved).unwrap();
        assert_eq!(state(&*again), saved);
        // Damaged version 2 bytes never panic on the way forward.
        flips_never_panic(config, 6, MEMORY_V2);
    }

    /// `saved` with each byte from `from` on flipped in turn: a restore never panics, nor
    /// does a detector that accepted the bytes.
    fn flips_never_panic(config: DetectConfig, from: usize, saved: &[u8]) {
        for i in from..saved.len() {
            let mut bad = saved.to_vec();
            bad[i] ^= 0xA5;
            let mut r = detector(config);
            if r.restore_state(&bad).is_ok() {
                feed(&mut *r, 9_000, &mixed(3));
            }
        }
    }

    #[test]
    fn a_memory_whose_background_exceeds_any_count_is_refused() {
        // The host's background is distinct sources per half window ×16, so at most the
        // bitmap's 512 bits ×16. A larger one, restored, overflowed the moving average at the
        // next half window (found by fuzzing detector_state).
        let config = DetectConfig::default();
        let mut d = detector(config);
        feed(&mut *d, 0, &failed("u1", "198.51.100.2"));
        d.spread.baseline = 512 * 16;
        let mut r = detector(config);
        r.restore_state(&state(&*d)).unwrap();
        for k in 0..3 {
            feed(&mut *r, 1800 * (k + 1), &failed("u1", "198.51.100.2"));
        }
        d.spread.baseline = 512 * 16 + 1;
        let mut r = detector(config);
        assert_eq!(r.restore_state(&state(&*d)), Err(StateError::Damaged));
        d.spread.baseline = u32::MAX;
        let mut r = detector(config);
        assert_eq!(r.restore_state(&state(&*d)), Err(StateError::Damaged));
        feed(&mut *r, 1800, &failed("u1", "198.51.100.2"));
    }

    #[test]
    fn damaged_or_foreign_memory_is_refused_and_leaves_the_detector_empty() {
        let mut config = DetectConfig::default();
        config.first_seen_source.learning_secs = 0;
        let mut d = detector(config);
        for k in 0..200 {
            feed(&mut *d, k * 3, &mixed(k));
        }
        let saved = state(&*d);
        let empty = state(&*detector(config));
        // Every truncation and an extra byte.
        for len in 0..saved.len() {
            let mut r = detector(config);
            assert!(r.restore_state(&saved[..len]).is_err(), "{len} bytes");
            assert_eq!(state(&*r), empty);
        }
        let mut long = saved.clone();
        long.push(0);
        assert_eq!(
            detector(config).restore_state(&long),
            Err(StateError::Damaged)
        );
        // Flipped bytes never panic; what is accepted is a memory of the same shape.
        flips_never_panic(config, 0, &saved);
        let mut wrong = saved.clone();
        wrong[0] = b'X';
        assert_eq!(
            detector(config).restore_state(&wrong),
            Err(StateError::NotState)
        );
        for version in [1u16, 4] {
            let mut other = saved.clone();
            other[4..6].copy_from_slice(&version.to_le_bytes());
            assert_eq!(
                detector(config).restore_state(&other),
                Err(StateError::Version(version))
            );
        }
        let mut small = Box::new(Detector::<64, 64, 64>::new(config));
        assert_eq!(small.restore_state(&saved), Err(StateError::Shape));
        assert_eq!(
            detector(config).restore_state(&state(&*small)),
            Err(StateError::Shape)
        );
    }

    #[test]
    fn sshd_is_its_three_program_names_exactly() {
        for p in ["sshd", "sshd-session", "sshd-auth"] {
            assert!(is_sshd(p.as_bytes()), "{p}");
        }
        let others = ",ssh,sshd-,sshdx,sshd-sessio,sshd-sessions,sshd-authx,xshd,sudo,sshd_auth";
        for p in others.split(',') {
            assert!(!is_sshd(p.as_bytes()), "{p}");
        }
    }

    #[test]
    fn default_detector_memory_is_bounded() {
        let size = core::mem::size_of::<DefaultDetector>();
        println!(
            "size_of::<DefaultDetector>() = {size} bytes ({} KiB); source {} B, user {} B, pair {} B, alert {} B, Alerts {} B",
            size / 1024,
            core::mem::size_of::<SourceState>(),
            core::mem::size_of::<UserState>(),
            core::mem::size_of::<Pair>(),
            core::mem::size_of::<Alert>(),
            core::mem::size_of::<Alerts>(),
        );
        assert!(size < 560 * 1024, "{size}");
    }

    #[test]
    fn config_defaults_and_validation() {
        let c = DetectConfig::default();
        assert_eq!(c.brute_force.threshold, 10);
        assert_eq!(c.brute_force.window_secs, 300);
        assert_eq!(c.password_spray.threshold, 5);
        assert_eq!(c.success_after_failures.threshold, 3);
        assert_eq!(c.first_seen_source.learning_secs, 86_400);
        assert_eq!(c.validate(), Ok(()));
        let mut bad = c;
        bad.brute_force.threshold = 0;
        assert_eq!(
            bad.validate(),
            Err(ConfigError::ZeroThreshold(Rule::BruteForce))
        );
        bad.brute_force.enabled = false;
        assert_eq!(bad.validate(), Ok(()));
        bad.password_spray.window_secs = 0;
        assert_eq!(
            bad.validate(),
            Err(ConfigError::BadWindow(Rule::PasswordSpray))
        );
        // `new` clamps instead of refusing.
        let d = Detector::<8, 8, 8>::new(bad);
        assert_eq!(d.config().password_spray.window_secs, 1);
        assert_eq!(d.config().brute_force.threshold, 1);
    }

    /// The rules skip reading a window whose threshold is above `at_most`: it must be the
    /// attempts of the widest window, through slots dropped, merged and saturated.
    #[test]
    fn failures_at_most_is_the_count_of_the_widest_window() {
        let mut f = Failures::EMPTY;
        for k in 0..200u32 {
            let count = match k % 7 {
                0 => 40_000,
                n => n,
            };
            // Bursts and pauses: some pushes drop old slots, some merge the two oldest.
            let now = k * 5 + (k / 30) * 400;
            f.push(now, count, u64::from(k), 300);
            assert_eq!(f.at_most(), f.within(now, 300, None).count, "{k}");
        }
        let mut names = Names::EMPTY;
        for k in 0..40u32 {
            names.insert(k % 13, k * 60, 600);
            assert!(names.at_most() >= names.within(k * 60, 600).0, "{k}");
        }
    }

    #[test]
    fn brute_force_fires_exactly_at_threshold_and_once() {
        let mut d = detector(only(Rule::BruteForce));
        for t in 0..9 {
            assert!(feed(&mut *d, t * 10, &failed("root", "203.0.113.5")).is_empty());
        }
        let a = feed(&mut *d, 90, &failed("admin", "203.0.113.5"));
        assert_eq!(rules(&a), [Rule::BruteForce]);
        let a = a[0];
        assert_eq!(a.count, 10);
        assert_eq!(a.source, Some(ip("203.0.113.5")));
        assert_eq!(a.user.unwrap().as_text(), "admin");
        assert_eq!(a.start, Timestamp::from_secs(BASE));
        assert_eq!(a.end, Timestamp::from_secs(BASE + 90));
        assert_eq!(a.users, 2);
        assert_eq!(a.severity, 47);
        // Not once per further failure.
        for t in 100..200 {
            assert!(feed(&mut *d, t, &failed("root", "203.0.113.5")).is_empty());
        }
        // Another source has its own count.
        for t in 0..9 {
            assert!(feed(&mut *d, 300 + t, &failed("root", "198.51.100.7")).is_empty());
        }
    }

    #[test]
    fn brute_force_window_slides() {
        let mut d = detector(only(Rule::BruteForce));
        let src = "2001:db8::66";
        for t in 0..9 {
            assert!(feed(&mut *d, t, &failed("root", src)).is_empty());
        }
        // 301 s after the first: that one has left the window, 8 remain + this one = 9.
        assert!(feed(&mut *d, 301, &failed("root", src)).is_empty());
        // 309: the 9th (t=8) is at age 301 and out too: still 9 in window (t=301..309 side).
        for t in 302..309 {
            assert!(feed(&mut *d, t, &failed("root", src)).is_empty(), "t={t}");
        }
        // In window now: t=301..308 (8) + 309 = 9, since 0..8 aged out.
        assert!(feed(&mut *d, 309, &failed("root", src)).is_empty());
        let a = feed(&mut *d, 310, &failed("root", src));
        assert_eq!(rules(&a), [Rule::BruteForce]);
        assert_eq!(a[0].count, 10);
        assert_eq!(a[0].start, Timestamp::from_secs(BASE + 301));
    }

    #[test]
    fn brute_force_rearms_after_quiet_window_or_cooldown() {
        let mut c = only(Rule::BruteForce);
        c.brute_force.cooldown_secs = 1000;
        let mut d = detector(c);
        let src = "192.0.2.9";
        let mut alerts = 0;
        for t in 0..10 {
            alerts += feed(&mut *d, t, &failed("root", src)).len();
        }
        assert_eq!(alerts, 1);
        // Quiet for more than the 300 s window: re-armed, fires again at the next 10.
        for t in 400..409 {
            assert!(feed(&mut *d, t, &failed("root", src)).is_empty());
        }
        assert_eq!(feed(&mut *d, 409, &failed("root", src)).len(), 1);
        // A steady attack (one attempt every 20 s, never quiet for 300 s): the next alert
        // comes with the cooldown, 1000 s after the last one.
        let mut fired_at = Vec::new();
        for k in 0..150 {
            let t = 420 + k * 20;
            if !feed(&mut *d, t, &failed("root", src)).is_empty() {
                fired_at.push(t);
            }
        }
        assert_eq!(fired_at, [1420, 2420]);
        // Cooldown 0: only a quiet window re-arms.
        let mut c = only(Rule::BruteForce);
        c.brute_force.cooldown_secs = 0;
        let mut d = detector(c);
        let n: usize = (0..500)
            .map(|k| feed(&mut *d, k * 20, &failed("root", src)).len())
            .sum();
        assert_eq!(n, 1);
    }

    /// The real line pattern of a failed sshd attempt: the PAM line, for keyboard-interactive
    /// `error: PAM:`, then `Failed <method>`, and at MaxAuthTries the summaries.
    #[test]
    fn pam_and_sshd_lines_of_one_attempt_count_once() {
        let mut d = detector(only(Rule::BruteForce));
        let src = "203.0.113.77";
        let mut fired = Vec::new();
        let mut t = 0;
        for attempt in 1..=10u32 {
            let lines = [
                pam("root", src),
                format!("error: PAM: Authentication failure for root from {src}"),
                format!("Failed keyboard-interactive/pam for root from {src} port 5022 ssh2"),
            ];
            for l in &lines {
                if !feed(&mut *d, t, l).is_empty() {
                    fired.push(attempt);
                }
                t += 1;
            }
            if attempt % 3 == 0 {
                let summaries = [
                    format!(
                        "error: maximum authentication attempts exceeded for root from {src} port 5022 ssh2 [preauth]"
                    ),
                    format!(
                        "Disconnecting authenticating user root {src} port 5022: Too many authentication failures [preauth]"
                    ),
                    format!(
                        "PAM 2 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost={src}  user=root"
                    ),
                    format!(
                        "Connection closed by authenticating user root {src} port 5022 [preauth]"
                    ),
                ];
                for l in &summaries {
                    assert!(feed(&mut *d, t, l).is_empty(), "{l}");
                    t += 1;
                }
            }
        }
        assert_eq!(fired, [10]);

        // Invalid and denied users: the notice line, the PAM lines, then `Failed ...`.
        let mut d = detector(only(Rule::BruteForce));
        let src = "203.0.113.78";
        let mut fired = Vec::new();
        for attempt in 1..=10u32 {
            let t = attempt * 10;
            let lines = [
                format!("Invalid user guest{attempt} from {src} port 4000"),
                "pam_unix(sshd:auth): check pass; user unknown".to_owned(),
                format!(
                    "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={src}"
                ),
                format!("User guest{attempt} from {src} not allowed because listed in DenyUsers"),
                format!("Failed none for invalid user guest{attempt} from {src} port 4000 ssh2"),
                format!(
                    "Failed password for invalid user guest{attempt} from {src} port 4000 ssh2"
                ),
            ];
            for (k, l) in lines.iter().enumerate() {
                if !feed(&mut *d, t + k as u32, l).is_empty() {
                    fired.push((attempt, k));
                }
            }
        }
        assert_eq!(fired, [(10, 5)]);
    }

    #[test]
    fn attempts_policy_on_real_lines() {
        let cases = [
            (failed("root", "192.0.2.1"), 1),
            (pam("root", "192.0.2.1"), 0),
            ("error: PAM: Authentication failure for root from 192.0.2.1".to_owned(), 0),
            ("Failed publickey for root from 192.0.2.1 port 22 ssh2: ED25519 SHA256:abc".to_owned(), 1),
            ("Failed none for invalid user x from 192.0.2.1 port 22 ssh2".to_owned(), 0),
            ("Invalid user x from 192.0.2.1 port 22".to_owned(), 0),
            ("PAM 5 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.1  user=root".to_owned(), 0),
            ("ROOT LOGIN REFUSED FROM 192.0.2.1 port 22".to_owned(), 0),
            ("message repeated 7 times: [ Failed password for root from 192.0.2.1 port 22 ssh2]".to_owned(), 7),
            ("Failed password for root from host.example port 22 ssh2".to_owned(), 0),
            (accepted("root", "192.0.2.1"), 0),
        ];
        for (msg, want) in cases {
            let line = format!("Nov 28 08:00:00 testhost sshd[1]: {msg}");
            let Parsed::Event(ev) = parse_line(line.as_bytes(), &ctx()) else {
                panic!("{line}");
            };
            assert_eq!(attempts(&ev), want, "{msg}");
        }
        // Dropbear: a bad password and a nonexistent user are attempts; the exit summary is not.
        let cases = [
            ("Bad password attempt for 'root' from 192.0.2.5:41234", 1),
            ("Login attempt for nonexistent user from 192.0.2.5:41234", 1),
            (
                "Exit before auth from <192.0.2.6:40000>: (user 'root', 10 fails): Max auth tries reached - user 'root'",
                0,
            ),
        ];
        for (msg, want) in cases {
            let line = format!("Nov 28 08:00:00 testhost dropbear[1]: {msg}");
            let Parsed::Event(ev) = parse_line(line.as_bytes(), &ctx()) else {
                panic!("{line}");
            };
            assert_eq!(attempts(&ev), want, "{msg}");
        }
    }

    #[test]
    fn message_repeated_weighs_its_count() {
        let mut d = detector(only(Rule::BruteForce));
        let src = "198.51.100.3";
        let msg = format!(
            "message repeated 8 times: [ Failed password for root from {src} port 22 ssh2]"
        );
        assert!(feed(&mut *d, 0, &msg).is_empty());
        assert!(feed(&mut *d, 1, &failed("root", src)).is_empty());
        let a = feed(&mut *d, 2, &failed("root", src));
        assert_eq!(rules(&a), [Rule::BruteForce]);
        assert_eq!(a[0].count, 10);
        // One line over the threshold on its own.
        let msg =
            "message repeated 25 times: [ Failed password for root from 198.51.100.4 port 22 ssh2]";
        let a = feed(&mut *d, 3, msg);
        assert_eq!(a[0].count, 25);
    }

    #[test]
    fn thresholds_above_the_slots_still_fire() {
        let mut c = only(Rule::BruteForce);
        c.brute_force.threshold = 40;
        let mut d = detector(c);
        let n = (0..39)
            .map(|t| feed(&mut *d, t, &failed("root", "192.0.2.40")).len())
            .sum::<usize>();
        assert_eq!(n, 0);
        let a = feed(&mut *d, 39, &failed("root", "192.0.2.40"));
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].count, 40);
    }

    #[test]
    fn password_spray_fires_at_distinct_names() {
        let mut d = detector(only(Rule::PasswordSpray));
        let src = "203.0.113.9";
        // The same names again and again: never a spray.
        for t in 0..40 {
            let user = ["root", "admin", "oracle", "test"][t as usize % 4];
            assert!(feed(&mut *d, t, &failed(user, src)).is_empty());
            // The PAM line of the same attempt names the same user: no new name.
            assert!(feed(&mut *d, t, &pam(user, src)).is_empty());
        }
        // A name only listed (`Invalid user`, no password tried) does not count...
        assert!(
            feed(
                &mut *d,
                49,
                &format!("Invalid user ubuntu from {src} port 1")
            )
            .is_empty()
        );
        // ...a fifth name with a password tried does.
        let a = feed(&mut *d, 50, &failed("ubuntu", src));
        assert_eq!(rules(&a), [Rule::PasswordSpray]);
        assert_eq!(a[0].users, 5);
        assert_eq!(a[0].user.unwrap().as_text(), "ubuntu");
        assert!(a[0].start >= Timestamp::from_secs(BASE) && a[0].start < a[0].end);
        assert_eq!(a[0].count, 41);
        // Once.
        assert!(feed(&mut *d, 51, &failed("postgres", src)).is_empty());

        // Names expire with the window (600 s): 4 old + 1 new is not a spray.
        let mut d = detector(only(Rule::PasswordSpray));
        for (t, u) in ["a", "b", "c", "d"].iter().enumerate() {
            assert!(feed(&mut *d, t as u32, &failed(u, src)).is_empty());
        }
        assert!(feed(&mut *d, 700, &failed("e", src)).is_empty());

        // More names than the slots hold.
        let mut c = only(Rule::PasswordSpray);
        c.password_spray.threshold = 20;
        let mut d = detector(c);
        let fired: Vec<u32> = (0..30)
            .filter(|&k| !feed(&mut *d, k, &failed(&format!("user{k}"), src)).is_empty())
            .collect();
        assert_eq!(fired, [19]);
    }

    #[test]
    fn success_after_failures_from_a_source() {
        let mut d = detector(only(Rule::SuccessAfterFailures));
        let src = "203.0.113.50";
        for t in 0..2 {
            assert!(feed(&mut *d, t, &failed("root", src)).is_empty());
        }
        // Two failures, then a success: a typo, not an alert; the count restarts.
        assert!(feed(&mut *d, 5, &accepted("root", src)).is_empty());
        for t in 10..13 {
            assert!(feed(&mut *d, t, &pam("root", src)).is_empty());
            assert!(feed(&mut *d, t, &failed("root", src)).is_empty());
        }
        let a = feed(&mut *d, 20, &accepted("root", src));
        assert_eq!(rules(&a), [Rule::SuccessAfterFailures]);
        let a = a[0];
        // From an address root used before: medium (a new one is high, see below).
        assert_eq!((a.count, a.scope, a.severity), (3, Scope::Source, MEDIUM));
        assert_eq!(a.start, Timestamp::from_secs(BASE + 10));
        assert_eq!(a.end, Timestamp::from_secs(BASE + 20));
        // The next success, with no new failures, is not an alert again.
        assert!(feed(&mut *d, 30, &accepted("root", src)).is_empty());
        // Failures older than the window (600 s) do not count.
        for t in 100..110 {
            assert!(feed(&mut *d, t, &failed("root", src)).is_empty());
        }
        assert!(feed(&mut *d, 711, &accepted("root", src)).is_empty());
    }

    #[test]
    fn success_after_failures_for_a_user_from_other_sources() {
        let mut d = detector(only(Rule::SuccessAfterFailures));
        for (t, src) in ["192.0.2.1", "192.0.2.2", "192.0.2.3"].iter().enumerate() {
            assert!(feed(&mut *d, t as u32, &failed("bob", src)).is_empty());
        }
        let a = feed(&mut *d, 60, &accepted("bob", "198.51.100.99"));
        assert_eq!(rules(&a), [Rule::SuccessAfterFailures]);
        assert_eq!((a[0].scope, a[0].count), (Scope::User, 3));
        assert_eq!(a[0].source, Some(ip("198.51.100.99")));
        // Off when by_user is off.
        let mut c = only(Rule::SuccessAfterFailures);
        c.success_after_failures.by_user = false;
        let mut d = detector(c);
        for (t, src) in ["192.0.2.1", "192.0.2.2", "192.0.2.3"].iter().enumerate() {
            feed(&mut *d, t as u32, &failed("bob", src));
        }
        assert!(feed(&mut *d, 60, &accepted("bob", "198.51.100.99")).is_empty());
    }

    /// A home address changes within the provider's pool: a new address in a network the user
    /// logs in from (/16 for IPv4, /48 for IPv6) is not news; another network is.
    #[test]
    fn first_seen_source_is_quiet_on_the_users_own_networks() {
        let mut d = detector(only(Rule::FirstSeenSource));
        assert!(feed(&mut *d, 0, &accepted("alice", "192.0.2.10")).is_empty());
        // Her first IPv6 address is a new network (an alert, not checked here).
        feed(&mut *d, 1, &accepted("alice", "2001:db8:1:2::10"));
        // The same /24, another /24 of the same /16, another /64 of the same /48: quiet.
        assert!(feed(&mut *d, 10, &accepted("alice", "192.0.2.77")).is_empty());
        assert!(feed(&mut *d, 20, &accepted("alice", "192.0.141.9")).is_empty());
        assert!(feed(&mut *d, 30, &accepted("alice", "2001:db8:1:7::3")).is_empty());
        // Another /16, another /48: first seen.
        assert_eq!(
            rules(&feed(&mut *d, 40, &accepted("alice", "192.1.2.10"))),
            [Rule::FirstSeenSource]
        );
        assert_eq!(
            rules(&feed(&mut *d, 50, &accepted("alice", "2001:db8:2::10"))),
            [Rule::FirstSeenSource]
        );
    }

    #[test]
    fn first_seen_source() {
        let mut d = detector(only(Rule::FirstSeenSource));
        // A user never seen: nothing to compare with.
        assert!(feed(&mut *d, 0, &accepted("alice", "192.0.2.10")).is_empty());
        assert!(feed(&mut *d, 10, &accepted("alice", "192.0.2.10")).is_empty());
        let a = feed(&mut *d, 20, &accepted("alice", "198.51.100.11"));
        assert_eq!(rules(&a), [Rule::FirstSeenSource]);
        assert_eq!((a[0].severity, a[0].count), (21, 1));
        assert!(feed(&mut *d, 30, &accepted("alice", "198.51.100.11")).is_empty());
        // Per user: bob from alice's address is bob's first.
        assert!(feed(&mut *d, 40, &accepted("bob", "198.51.100.11")).is_empty());
        // Failures do not teach addresses.
        assert!(feed(&mut *d, 50, &failed("alice", "203.0.113.12")).is_empty());
        assert_eq!(
            feed(&mut *d, 60, &accepted("alice", "203.0.113.12")).len(),
            1
        );

        // Learning period: quiet for its first hour.
        let mut c = only(Rule::FirstSeenSource);
        c.first_seen_source.learning_secs = 3600;
        let mut d = detector(c);
        assert!(feed(&mut *d, 0, &accepted("alice", "192.0.2.10")).is_empty());
        assert!(feed(&mut *d, 3599, &accepted("alice", "198.51.100.11")).is_empty());
        assert_eq!(
            feed(&mut *d, 3600, &accepted("alice", "203.0.113.12")).len(),
            1
        );
    }

    #[test]
    fn tables_keep_working_when_full() {
        // 16 slots: two sets of 8.
        let mut d: Detector<16, 16, 16> = Detector::new(only(Rule::BruteForce));
        for k in 0..1000u32 {
            let src = format!("10.0.{}.{}", k / 256, k % 256);
            for j in 0..3 {
                assert!(feed(&mut d, k + j, &failed("root", &src)).is_empty());
            }
        }
        assert!(d.stats().source_evictions >= 1000 - 16);
        let n: usize = (0..10)
            .map(|t| feed(&mut d, 2000 + t, &failed("root", "203.0.113.1")).len())
            .sum();
        assert_eq!(n, 1);

        // Pairs: evicted pairs are forgotten, the table keeps answering.
        let mut c = only(Rule::FirstSeenSource);
        c.success_after_failures.enabled = false;
        let mut d: Detector<8, 8, 8> = Detector::new(c);
        for k in 0..100u32 {
            feed(&mut d, k, &accepted(&format!("u{k}"), "192.0.2.1"));
        }
        assert!(d.stats().pair_evictions >= 92);
        assert!(feed(&mut d, 200, &accepted("carol", "192.0.2.1")).is_empty());
        assert_eq!(
            feed(&mut d, 201, &accepted("carol", "198.51.100.2")).len(),
            1
        );

        // A table smaller than a set.
        let mut d: Detector<1, 1, 1> = Detector::new(DetectConfig::default());
        for k in 0..50u32 {
            feed(&mut d, k, &failed("root", &format!("192.0.2.{k}")));
        }
    }

    fn raw(action: Action, secs: i64, src: IpAddr, user: &'static str) -> LoginEvent<'static> {
        let mut e = LoginEvent::new(
            action,
            if action == Action::AuthSuccess {
                Outcome::Success
            } else {
                Outcome::Failure
            },
        );
        e.timestamp = Some(Timestamp::from_secs(secs));
        e.program = Text(b"sshd");
        e.source = Some(Source::Ip(src));
        e.port = Some(22);
        e.method = Some(Method::Password);
        e.user = Some(Text(user.as_bytes()));
        e
    }

    #[test]
    fn time_going_backwards_does_not_panic_or_underflow() {
        let mut c = DetectConfig::default();
        c.first_seen_source.learning_secs = 0;
        let mut d = detector(c);
        let src = ip("192.0.2.200");
        let mut n = 0;
        // Ten failures, newest first: all inside one window, so it is a brute force.
        for k in (0..10).rev() {
            n += d
                .observe(&raw(Action::AuthFailure, BASE + k, src, "root"))
                .iter()
                .filter(|a| a.rule == Rule::BruteForce)
                .count();
        }
        assert_eq!(n, 1);
        // A success "before" the failures.
        let a = d.observe(&raw(Action::AuthSuccess, BASE - 1000, src, "root"));
        for a in &a {
            assert!(a.start <= a.end, "{a:?}");
        }
        // Extreme and jumping timestamps.
        for secs in [
            i64::MIN,
            i64::MAX,
            0,
            -1,
            BASE,
            i64::MIN + 1,
            BASE - (1 << 33),
            BASE + (1 << 40),
        ] {
            for action in [
                Action::AuthFailure,
                Action::InvalidUser,
                Action::AuthSuccess,
            ] {
                for a in &d.observe(&raw(action, secs, src, "root")) {
                    let mut s = String::new();
                    write_alert(&mut s, a, &Envelope::default()).unwrap();
                }
            }
        }
    }

    #[test]
    fn untimed_events_are_ignored_by_windowed_rules() {
        let mut d = detector(only(Rule::BruteForce));
        let mut e = raw(Action::AuthFailure, 0, ip("192.0.2.1"), "root");
        e.timestamp = None;
        for _ in 0..20 {
            assert!(d.observe(&e).is_empty());
        }
        assert_eq!(d.stats().untimed, 20);
    }

    #[test]
    fn user_name_is_cut_at_a_char_boundary() {
        let long = "é".repeat(20); // 40 bytes
        let n = UserName::new(long.as_bytes());
        assert!(n.is_truncated());
        assert_eq!(n.as_text().len(), 32);
        assert!(n.as_text().to_str().is_some());
        let n = UserName::new(b"root");
        assert!(!n.is_truncated());
        assert_eq!(n.as_text(), "root");
        let exact = [b'x'; NAME_CAP];
        assert!(!UserName::new(&exact).is_truncated());
    }

    #[test]
    fn alerts_as_ecs_json() {
        let mut d = detector(DetectConfig::default());
        let src = "203.0.113.5";
        let mut all = Vec::new();
        for t in 0..10 {
            all.extend(feed(&mut *d, t, &failed(&format!("u\"{t}"), src)));
        }
        all.extend(feed(&mut *d, 20, &accepted("u\"9", src)));
        let env = Envelope {
            hostname: Some(Text(b"web1")),
            agent_id: Some("a-1"),
            ..Envelope::default()
        };
        let json: Vec<String> = all
            .iter()
            .map(|a| {
                let mut s = String::new();
                write_alert(&mut s, a, &env).unwrap();
                s
            })
            .collect();
        for j in &json {
            println!("{j}");
            assert!(!j.contains("\"\""), "{j}");
        }
        assert_eq!(
            json,
            [
                concat!(
                    r#"{"@timestamp":"2026-11-28T08:00:04Z","event":{"kind":"alert","category":["authentication"],"#,
                    r#""action":"password_spray","outcome":"unknown","severity":47,"#,
                    r#""reason":"203.0.113.5 failed to log in as 5 different users in 4 s (5 attempts).","#,
                    r#""start":"2026-11-28T08:00:00Z","end":"2026-11-28T08:00:04Z"},"#,
                    r#""rule":{"id":"password_spray","name":"Password spray"},"#,
                    r#""host":{"hostname":"web1"},"agent":{"id":"a-1"},"source":{"ip":"203.0.113.5"},"#,
                    r#""user":{"name":"u\"4"},"authtrail":{"count":5,"users":5,"evidence":[0,4]},"#,
                    r#""message":"203.0.113.5 failed to log in as 5 different users in 4 s (5 attempts)."}"#
                ),
                concat!(
                    r#"{"@timestamp":"2026-11-28T08:00:09Z","event":{"kind":"alert","category":["authentication"],"#,
                    r#""action":"brute_force","outcome":"unknown","severity":47,"#,
                    r#""reason":"10 failed login attempts from 203.0.113.5 in 9 s (last user tried: u\"9).","#,
                    r#""start":"2026-11-28T08:00:00Z","end":"2026-11-28T08:00:09Z"},"#,
                    r#""rule":{"id":"brute_force","name":"Brute force"},"#,
                    r#""host":{"hostname":"web1"},"agent":{"id":"a-1"},"source":{"ip":"203.0.113.5"},"#,
                    r#""user":{"name":"u\"9"},"authtrail":{"count":10,"users":10,"evidence":[0,9]},"#,
                    r#""message":"10 failed login attempts from 203.0.113.5 in 9 s (last user tried: u\"9)."}"#
                ),
                concat!(
                    r#"{"@timestamp":"2026-11-28T08:00:20Z","event":{"kind":"alert","category":["authentication"],"#,
                    r#""action":"success_after_failures","outcome":"success","severity":73,"#,
                    r#""reason":"u\"9 logged in from 203.0.113.5 after 10 failed attempts from that address in 20 s.","#,
                    r#""start":"2026-11-28T08:00:00Z","end":"2026-11-28T08:00:20Z"},"#,
                    r#""rule":{"id":"success_after_failures","name":"Login after failed attempts"},"#,
                    r#""host":{"hostname":"web1"},"agent":{"id":"a-1"},"source":{"ip":"203.0.113.5"},"#,
                    r#""user":{"name":"u\"9"},"authtrail":{"count":10,"users":10,"scope":"source","evidence":[0,10]},"#,
                    r#""message":"u\"9 logged in from 203.0.113.5 after 10 failed attempts from that address in 20 s."}"#
                ),
            ]
        );
        // A cut name is flagged.
        let mut a = all[0];
        a.user = Some(UserName::new(&[b'x'; 40]));
        let mut s = String::new();
        write_alert(&mut s, &a, &Envelope::default()).unwrap();
        assert!(s.contains(r#""user_truncated":true"#), "{s}");
    }

    /// Parses `program[4242]: msg` and feeds it as written at `BASE + t` (any span: the
    /// header's own time is replaced).
    fn at<const S: usize, const U: usize, const P: usize, const A: usize>(
        d: &mut Detector<S, U, P, A>,
        t: i64,
        program: &str,
        msg: &str,
    ) -> Alerts {
        let line = format!("Nov 28 08:00:00 testhost {program}[4242]: {msg}");
        match parse_line(line.as_bytes(), &ctx()) {
            Parsed::Event(mut ev) => {
                ev.timestamp = Some(Timestamp::from_secs(BASE + t));
                d.observe(&ev)
            }
            other => panic!("{line:?} gave {other:?}"),
        }
    }

    fn key(user: &str, from: &str) -> String {
        format!("Accepted publickey for {user} from {from} port 40002 ssh2: ED25519 SHA256:abc")
    }

    fn sev(a: &Alerts, rule: Rule) -> Option<u8> {
        a.iter().find(|a| a.rule == rule).map(|a| a.severity)
    }

    /// The regression the issue names: internet scanners guess `root` from other addresses in
    /// the minutes before the backup server's hourly root key login.
    #[test]
    fn scanners_guessing_root_do_not_make_the_backup_key_login_suspicious() {
        let mut d = detector(only(Rule::SuccessAfterFailures));
        let backup = "10.0.0.5";
        assert!(at(&mut *d, 0, "sshd", &key("root", backup)).is_empty());
        for (k, scanner) in ["198.51.100.7", "203.0.113.8", "192.0.2.9"]
            .iter()
            .enumerate()
        {
            assert!(at(&mut *d, 3500 + k as i64, "sshd", &failed("root", scanner)).is_empty());
        }
        assert!(at(&mut *d, 3600, "sshd", &key("root", backup)).is_empty());
        // The same failures before a password login from the usual address: low.
        for (k, scanner) in ["198.51.100.7", "203.0.113.8", "192.0.2.9"]
            .iter()
            .enumerate()
        {
            at(&mut *d, 7100 + k as i64, "sshd", &failed("root", scanner));
        }
        let a = at(&mut *d, 7200, "sshd", &accepted("root", backup));
        assert_eq!(sev(&a, Rule::SuccessAfterFailures), Some(LOW));
        assert_eq!(a[0].scope, Scope::User);
        // ...and before a login from an address new for root: high (spray, then login).
        for (k, scanner) in ["198.51.100.7", "203.0.113.8", "192.0.2.9"]
            .iter()
            .enumerate()
        {
            at(&mut *d, 10_700 + k as i64, "sshd", &failed("root", scanner));
        }
        let a = at(&mut *d, 10_800, "sshd", &key("root", "198.18.7.7"));
        assert_eq!(sev(&a, Rule::SuccessAfterFailures), Some(HIGH));
    }

    /// The monitoring host whose script tries a stale password three times before its key.
    #[test]
    fn a_key_login_after_its_own_password_failures_from_a_known_address_is_quiet() {
        let mut d = detector(only(Rule::SuccessAfterFailures));
        let monitor = "10.0.0.9";
        assert!(at(&mut *d, 0, "sshd", &key("nagios", monitor)).is_empty());
        for round in 1..5i64 {
            for k in 0..3 {
                at(&mut *d, round * 300 + k, "sshd", &failed("nagios", monitor));
            }
            assert!(at(&mut *d, round * 300 + 5, "sshd", &key("nagios", monitor)).is_empty());
        }
        // A password login after the same failures may be a guess that worked (from the usual
        // address, three typos look the same: medium).
        for k in 0..3 {
            at(&mut *d, 2000 + k, "sshd", &failed("nagios", monitor));
        }
        let a = at(&mut *d, 2005, "sshd", &accepted("nagios", monitor));
        assert_eq!(sev(&a, Rule::SuccessAfterFailures), Some(MEDIUM));
        // A key login from a new network after failures from there: medium.
        for k in 0..3 {
            at(&mut *d, 3000 + k, "sshd", &failed("nagios", "198.18.0.1"));
        }
        let a = at(&mut *d, 3005, "sshd", &key("nagios", "198.18.0.1"));
        assert_eq!(sev(&a, Rule::SuccessAfterFailures), Some(MEDIUM));
        assert_eq!(a[0].scope, Scope::Source);
    }

    /// The spray-then-login the short window missed: six addresses guess one account once each,
    /// and a seventh, new for the user, logs in with its password 10 min 14 s after the last
    /// guess. Within the long window that is still the account's own guessing.
    #[test]
    fn a_password_login_from_a_new_address_after_guesses_within_the_long_window() {
        let long = i64::from(DetectConfig::default().slow.window_secs);
        // `guesses` failures against olivia at `t0` (from as many addresses), then a login.
        let run = |guesses: usize, t0: i64, login_at: i64, login: &str| {
            let mut d = detector(only(Rule::SuccessAfterFailures));
            assert!(at(&mut *d, 0, "sshd", &accepted("olivia", "10.0.0.7")).is_empty());
            for k in 0..guesses {
                let src = format!("198.51.100.{}", k + 1);
                assert!(at(&mut *d, t0, "sshd", &failed("olivia", &src)).is_empty());
            }
            at(&mut *d, login_at, "sshd", login)
        };
        let new = accepted("olivia", "203.0.113.77");
        let a = run(6, 1000, 1000 + 614, &new);
        assert_eq!(sev(&a, Rule::SuccessAfterFailures), Some(HIGH));
        assert_eq!((a[0].scope, a[0].count), (Scope::User, 6));
        assert_eq!(a[0].cites(), &[1, 7][..]);
        // The long window's edge: its last second still counts, the next does not.
        let a = run(3, 1000, 1000 + long, &new);
        assert_eq!(sev(&a, Rule::SuccessAfterFailures), Some(HIGH));
        assert!(run(3, 1000, 1000 + long + 1, &new).is_empty());
        // The threshold (3): two guesses are not enough.
        assert!(run(2, 1000, 1000 + 614, &new).is_empty());
        // Past the short window, the long one does not speak for a login from the user's own
        // address (typos and scanners), nor for a key login (guessing does not explain a key).
        assert!(run(6, 1000, 1000 + 614, &accepted("olivia", "10.0.0.7")).is_empty());
        assert!(run(6, 1000, 1000 + 614, &key("olivia", "203.0.113.77")).is_empty());
        // Guesses further apart than the short window are all kept (the user's slots last the
        // long window).
        let mut d = detector(only(Rule::SuccessAfterFailures));
        at(&mut *d, 0, "sshd", &accepted("olivia", "10.0.0.7"));
        for k in 0..3i64 {
            let src = format!("198.51.100.{k}");
            at(&mut *d, 1000 + k * 1200, "sshd", &failed("olivia", &src));
        }
        let a = at(&mut *d, 3400 + 614, "sshd", &new);
        assert_eq!((a[0].rule, a[0].count), (Rule::SuccessAfterFailures, 3));
        // Nor for failures before the user's last success.
        let mut d = detector(only(Rule::SuccessAfterFailures));
        at(&mut *d, 0, "sshd", &accepted("olivia", "10.0.0.7"));
        for k in 0..6 {
            at(
                &mut *d,
                1000,
                "sshd",
                &failed("olivia", &format!("198.51.100.{k}")),
            );
        }
        at(&mut *d, 1200, "sshd", &accepted("olivia", "10.0.0.7"));
        assert!(at(&mut *d, 1614, "sshd", &new).is_empty());
    }

    /// 150 failures, which merge slots: the start is the first failure, not a merged slot's
    /// later time, and the sentence says how long the attack took.
    #[test]
    fn success_after_many_failures_starts_at_the_first_failure() {
        let mut d = detector(only(Rule::SuccessAfterFailures));
        let src = "203.0.113.77";
        for k in 0..150i64 {
            at(&mut *d, k * 2, "sshd", &failed("root", src));
        }
        let a = at(&mut *d, 330, "sshd", &accepted("root", src));
        assert_eq!(rules(&a), [Rule::SuccessAfterFailures]);
        assert_eq!((a[0].count, a[0].start), (150, Timestamp::from_secs(BASE)));
        assert_eq!(a[0].cites(), [0, 150]);
        assert_eq!(
            a[0].to_string(),
            "root logged in from 203.0.113.77 after 150 failed attempts from that address in 5 min."
        );
    }

    #[test]
    fn slow_brute_force_counts_a_guess_a_minute_over_hours() {
        let mut d = detector(only(Rule::SlowBruteForce));
        let src = "203.0.113.60";
        // One guess every 90 s: never 10 in 5 minutes; the 40th within 6 h fires, once.
        for k in 0..39i64 {
            let a = at(&mut *d, k * 90, "sshd", &failed("root", src));
            assert!(a.is_empty(), "{k} {a:?}");
        }
        let a = at(&mut *d, 39 * 90, "sshd", &failed("root", src));
        assert_eq!(rules(&a), [Rule::SlowBruteForce]);
        assert_eq!((a[0].count, a[0].start), (40, Timestamp::from_secs(BASE)));
        // Not again while the attack goes on, until a long window after the alert.
        for k in 40..279i64 {
            assert!(at(&mut *d, k * 90, "sshd", &failed("root", src)).is_empty());
        }
        assert_eq!(at(&mut *d, 279 * 90, "sshd", &failed("root", src)).len(), 1);
        // One guess every 10 minutes is 36 in 6 h: below the threshold for ever.
        let src = "203.0.113.61";
        for k in 0..200i64 {
            assert!(at(&mut *d, 20_000 + k * 600, "sshd", &failed("root", src)).is_empty());
        }
        // A client of this host (it logged in within the window) is not a slow attacker.
        let src = "10.1.1.1";
        at(&mut *d, 100_000, "sshd", &accepted("svc", src));
        for k in 0..60i64 {
            assert!(at(&mut *d, 100_010 + k * 60, "sshd", &failed("svc", src)).is_empty());
        }
    }

    #[test]
    fn slow_spray_fires_at_distinct_names_over_hours() {
        let mut d = detector(only(Rule::SlowSpray));
        let src = "203.0.113.62";
        // Names whose 64-bit bitmap bins differ (the count is a lower bound: two names in one
        // bin count once).
        let mut names: Vec<String> = Vec::new();
        for k in 0.. {
            let n = format!("user{k}");
            let bin = |n: &str| name_hash(0, n.as_bytes()) % 64;
            if names.iter().all(|m| bin(m) != bin(&n)) {
                names.push(n);
            }
            if names.len() == 6 {
                break;
            }
        }
        // Names are kept for at least half the long window (3 h).
        for (k, user) in names[..5].iter().enumerate() {
            assert!(at(&mut *d, k as i64 * 1000, "sshd", &failed(user, src)).is_empty());
        }
        // Repeats of known names add nothing.
        assert!(at(&mut *d, 10_000, "sshd", &failed(&names[3], src)).is_empty());
        // Invalid names (scanners' guesses) do not count.
        assert!(
            at(
                &mut *d,
                10_050,
                "sshd",
                "Failed password for invalid user oracle from 203.0.113.62 port 4 ssh2"
            )
            .is_empty()
        );
        let a = at(&mut *d, 10_100, "sshd", &failed(&names[5], src));
        assert_eq!(rules(&a), [Rule::SlowSpray]);
        assert_eq!(a[0].users, 6);
    }

    /// A flood of one-off sources evicts itself, not the persistent attacker, and the memory
    /// stays the size of the type.
    #[test]
    fn a_flood_of_sources_does_not_evict_the_slow_attacker() {
        let mut d: Box<Detector<64, 8, 8, 8>> = Box::new(Detector::new(only(Rule::SlowBruteForce)));
        let size = core::mem::size_of_val(&*d);
        let mut alerts = Vec::new();
        let mut flood = 0u32;
        // The attacker has been at it for half an hour when a flood of one-off sources starts:
        // 100 new sources between two of its guesses, over 64 slots.
        for k in 0..40i64 {
            alerts.extend(at(
                &mut *d,
                k * 120,
                "sshd",
                &failed("root", "203.0.113.99"),
            ));
            for _ in 0..if k < 15 { 0 } else { 100 } {
                flood += 1;
                let src = format!("10.{}.{}.{}", flood >> 16, (flood >> 8) & 255, flood & 255);
                at(&mut *d, k * 120 + 1, "sshd", &failed("admin", &src));
            }
        }
        assert!(d.stats().source_evictions > 2000);
        assert_eq!(core::mem::size_of_val(&*d), size);
        assert_eq!(rules(&alerts.into_iter().collect()), [Rule::SlowBruteForce]);
    }

    /// `n` keys `key(0)`, `key(1)`, ..., skipping any that shares its bit with one taken in
    /// a bitmap of `bits` by `hash`: the distributed spray counts distinct bits (two keys in one
    /// bit count once), so a test at its threshold needs keys apart.
    fn apart(
        n: usize,
        bits: u32,
        hash: impl Fn(&str) -> u32,
        key: impl Fn(usize) -> String,
    ) -> Vec<String> {
        let mut taken: Vec<String> = Vec::new();
        for k in 0.. {
            let c = key(k);
            if taken.iter().all(|t| hash(t) % bits != hash(&c) % bits) {
                taken.push(c);
            }
            if taken.len() == n {
                break;
            }
        }
        taken
    }

    /// Source addresses in distinct bits of the host's source bitmap (hash seed 0).
    fn spread_sources(n: usize) -> Vec<String> {
        let hash = |s: &str| source_hash(0, ip(s));
        apart(n, 512, hash, |k| {
            format!("198.51.{}.{}", k % 250, 1 + k / 250)
        })
    }

    /// User names in distinct bits of the host's name bitmap (hash seed 0).
    fn spread_names(n: usize) -> Vec<String> {
        apart(n, 256, |s| name_hash(0, s.as_bytes()), |k| format!("n{k}"))
    }

    #[test]
    fn distributed_spray_fires_once_beyond_the_background() {
        let (srcs, names) = (spread_sources(40), spread_names(40));
        let mut d = detector(only(Rule::DistributedSpray));
        // Learning: one failure per half window for two hours, from the spray's first source.
        for half in 0..5i64 {
            assert!(at(&mut *d, half * 1800, "sshd", &failed(&names[0], &srcs[0])).is_empty());
        }
        // 19 sources (that one among them) against 19 names: below 20.
        let t0 = 5 * 1800;
        for k in 1..19 {
            let a = at(
                &mut *d,
                t0 + k as i64 * 60,
                "sshd",
                &failed(&names[k], &srcs[k]),
            );
            assert!(a.is_empty());
        }
        let a = at(&mut *d, t0 + 1200, "sshd", &failed(&names[19], &srcs[19]));
        assert_eq!(rules(&a), [Rule::DistributedSpray]);
        assert_eq!((a[0].sources, a[0].users, a[0].count), (20, 20, 20));
        assert_eq!((a[0].source, a[0].scope), (None, Scope::Host));
        assert_eq!(a[0].start, Timestamp::from_secs(BASE + 4 * 1800));
        for k in 20..40i64 {
            assert!(
                at(
                    &mut *d,
                    t0 + 1200 + k,
                    "sshd",
                    &failed("x", &format!("198.51.{k}.1"))
                )
                .is_empty()
            );
        }
        // While learning, the bar is twice as high.
        let mut d = detector(only(Rule::DistributedSpray));
        for k in 0..39 {
            assert!(at(&mut *d, k as i64, "sshd", &failed(&names[k], &srcs[k])).is_empty());
        }
        assert_eq!(
            at(&mut *d, 39, "sshd", &failed(&names[39], &srcs[39])).len(),
            1
        );

        // A host whose background is 15 scanners per half hour needs more than 20.
        let mut d = detector(only(Rule::DistributedSpray));
        let mut fired = 0;
        for half in 0..48i64 {
            for k in 0..15i64 {
                let src = format!("192.0.{}.{}", half % 200, k);
                let a = at(
                    &mut *d,
                    half * 1800 + k * 60,
                    "sshd",
                    &failed(&format!("s{k}"), &src),
                );
                if !a.is_empty() {
                    println!("{half} {k} {}", a[0]);
                }
                fired += a.len();
            }
        }
        assert_eq!(fired, 0);
        let base = 48 * 1800;
        let mut first = None;
        for k in 0..120i64 {
            let a = at(
                &mut *d,
                base + k * 5,
                "sshd",
                &failed(&format!("v{k}"), &format!("203.0.{k}.9")),
            );
            if !a.is_empty() && first.is_none() {
                first = Some(a[0].sources);
            }
        }
        let n = first.expect("a spray of 120 sources fires");
        assert!(n > 60, "{n}: above three times the background of 2x15");
    }

    #[test]
    fn privilege_after_an_alerted_login() {
        let mut c = only(Rule::PrivilegeAfterLogin);
        c.first_seen_source.enabled = true;
        c.success_after_failures.enabled = true;
        let mut d = detector(c);
        let sudo = |u: &str| {
            format!("   {u} : TTY=pts/0 ; PWD=/home/{u} ; USER=root ; COMMAND=/usr/bin/id")
        };
        at(&mut *d, 0, "sshd", &key("mallory", "10.0.0.3"));
        assert!(at(&mut *d, 10, "sudo", &sudo("mallory")).is_empty());
        // A first login that raised nothing is not suspicious.
        at(&mut *d, 20, "sshd", &key("eve", "10.0.0.4"));
        assert!(at(&mut *d, 30, "sudo", &sudo("eve")).is_empty());
        // A password from a new network (low), then sudo within 30 minutes: medium.
        let a = at(&mut *d, 100, "sshd", &accepted("eve", "198.18.1.1"));
        assert_eq!(rules(&a), [Rule::FirstSeenSource]);
        let a = at(&mut *d, 100 + 1800, "sudo", &sudo("eve"));
        assert_eq!(sev(&a, Rule::PrivilegeAfterLogin), Some(MEDIUM));
        assert_eq!(a[0].cites(), [4, 5]);
        assert_eq!(a[0].source, Some(ip("198.18.1.1")));
        assert_eq!(
            a[0].to_string(),
            "eve used sudo to act as root 30 min after a suspicious login from 198.18.1.1."
        );
        // Once per login.
        assert!(at(&mut *d, 100 + 1801, "sudo", &sudo("eve")).is_empty());
        // One second too late.
        let a = at(&mut *d, 5000, "sshd", &accepted("mallory", "198.18.1.2"));
        assert_eq!(rules(&a), [Rule::FirstSeenSource]);
        assert!(at(&mut *d, 5000 + 1801, "su", "(to root) mallory on pts/1").is_empty());
        // After a guessed password (a medium or high login alert): high, for su too.
        for k in 0..3 {
            at(&mut *d, 9000 + k, "sshd", &failed("eve", "198.18.1.1"));
        }
        let a = at(&mut *d, 9010, "sshd", &accepted("eve", "198.18.1.1"));
        assert_eq!(sev(&a, Rule::SuccessAfterFailures), Some(MEDIUM));
        let a = at(&mut *d, 9060, "su", "(to root) eve on pts/1");
        assert_eq!(sev(&a, Rule::PrivilegeAfterLogin), Some(HIGH));
        assert_eq!(a[0].action, Action::Su);
    }

    #[test]
    fn sudo_refusals_failures_and_first_sudo() {
        let mut c = only(Rule::SudoRefused);
        c.privilege.first_sudo_learning_secs = 100;
        let mut d = detector(c);
        at(&mut *d, 0, "sshd", &key("alice", "10.0.0.2"));
        let refused = "   bob : user NOT in sudoers ; TTY=pts/0 ; PWD=/home/bob ; USER=root ; COMMAND=/usr/bin/id";
        let a = at(&mut *d, 10, "sudo", refused);
        assert_eq!(sev(&a, Rule::SudoRefused), Some(MEDIUM));
        assert_eq!(
            a[0].to_string(),
            "bob tried sudo but is not allowed to use it on this host."
        );
        // su failures: 2 in the window are typos, the 3rd alerts, once.
        assert!(at(&mut *d, 20, "su", "FAILED SU (to root) carol on pts/1").is_empty());
        assert!(at(&mut *d, 30, "su", "FAILED SU (to root) carol on pts/1").is_empty());
        let a = at(&mut *d, 40, "su", "FAILED SU (to root) carol on pts/1");
        assert_eq!(rules(&a), [Rule::PrivilegeFailures]);
        assert_eq!((a[0].count, a[0].cites()), (3, &[2u64, 4][..]));
        assert!(at(&mut *d, 50, "su", "FAILED SU (to root) carol on pts/1").is_empty());
        // Outside the window (600 s) the count starts again.
        assert!(at(&mut *d, 700, "su", "FAILED SU (to root) dave on pts/1").is_empty());
        assert!(at(&mut *d, 1301, "su", "FAILED SU (to root) dave on pts/1").is_empty());
        assert!(at(&mut *d, 1302, "su", "FAILED SU (to root) dave on pts/1").is_empty());
        // sudo's own count: `3 incorrect password attempts` is three.
        let three = "   erin : 3 incorrect password attempts ; TTY=pts/0 ; PWD=/home/erin ; USER=root ; COMMAND=/usr/bin/id";
        assert_eq!(
            rules(&at(&mut *d, 2000, "sudo", three)),
            [Rule::PrivilegeFailures]
        );
        // First sudo: quiet while learning, low after, once; and only from a user with an
        // earlier login here (not in their first session on this host).
        let ok = "   frank : TTY=pts/0 ; PWD=/home/frank ; USER=root ; COMMAND=/usr/bin/id";
        at(&mut *d, 40, "sshd", &key("gina", "10.0.0.2"));
        assert!(at(&mut *d, 50, "sudo", &ok.replace("frank", "gina")).is_empty());
        at(&mut *d, 2000, "sshd", &key("hal", "10.0.0.4"));
        let hal = ok.replace("frank", "hal");
        assert!(
            at(&mut *d, 2010, "sudo", &hal).is_empty(),
            "hal's first session"
        );
        at(&mut *d, 2000, "sshd", &key("frank", "10.0.0.3"));
        at(&mut *d, 2900, "sshd", &key("frank", "10.0.0.3"));
        assert_eq!(
            sev(&at(&mut *d, 3000, "sudo", ok), Rule::FirstSudo),
            Some(LOW)
        );
        assert!(at(&mut *d, 3001, "sudo", ok).is_empty());
        assert!(at(&mut *d, 3002, "sudo", &ok.replace("frank", "gina")).is_empty());
    }

    /// A restored memory knows who had logged in here before (the first-sudo rule's history).
    #[test]
    fn a_restored_memory_keeps_who_had_logged_in_before() {
        let mut c = only(Rule::FirstSudo);
        c.privilege.first_sudo_learning_secs = 0;
        let mut d = detector(c);
        at(&mut *d, 0, "sshd", &key("frank", "10.0.0.3"));
        at(&mut *d, 10, "sshd", &key("frank", "10.0.0.3"));
        let mut r = detector(c);
        r.restore_state(&state(&*d)).unwrap();
        let ok = "   frank : TTY=pts/0 ; PWD=/home/frank ; USER=root ; COMMAND=/usr/bin/id";
        assert_eq!(
            sev(&at(&mut *r, 20, "sudo", ok), Rule::FirstSudo),
            Some(LOW)
        );
    }

    /// The first login of a new account from the address the company's people share (two
    /// other users log in from it) is the new colleague, whose account the creation's alert
    /// already reported; from any other address it may be its creator's: medium.
    #[test]
    fn a_new_accounts_first_login_from_a_shared_address_adds_nothing() {
        for (others, want) in [(2, None), (1, Some(MEDIUM))] {
            let mut d = detector(only(Rule::NewAccountLogin));
            for (k, u) in ["carol", "dave"].iter().take(others).enumerate() {
                at(&mut *d, k as i64, "sshd", &accepted(u, "198.51.100.10"));
            }
            at(
                &mut *d,
                100,
                "useradd",
                "new user: name=eve, UID=1005, GID=1005, home=/home/eve, shell=/bin/bash, from=/dev/pts/0",
            );
            let a = at(&mut *d, 86_400, "sshd", &accepted("eve", "198.51.100.10"));
            assert_eq!(sev(&a, Rule::NewAccountLogin), want, "{others} other users");
        }
    }

    #[test]
    fn account_changes() {
        let mut d = detector(only(Rule::AccountCreated));
        let a = at(
            &mut *d,
            0,
            "useradd",
            "new user: name=eve, UID=1005, GID=1005, home=/home/eve, shell=/bin/bash, from=/dev/pts/0",
        );
        assert_eq!(rules(&a), [Rule::AccountCreated]);
        assert_eq!(a[0].to_string(), "Account eve was created.");
        let a = at(&mut *d, 10, "usermod", "add 'eve' to group 'sudo'");
        assert_eq!(sev(&a, Rule::PrivilegedGroup), Some(HIGH));
        assert_eq!(
            a[0].to_string(),
            "eve was added to the privileged group sudo."
        );
        let a = at(&mut *d, 11, "usermod", "add 'eve' to shadow group 'sudo'");
        assert_eq!(rules(&a), [Rule::PrivilegedGroup]);
        let a = at(
            &mut *d,
            12,
            "gpasswd",
            "user eve added by root to group docker",
        );
        assert_eq!(rules(&a), [Rule::PrivilegedGroup]);
        assert!(
            at(
                &mut *d,
                13,
                "gpasswd",
                "user eve added by root to group devs"
            )
            .is_empty()
        );
        assert!(at(&mut *d, 14, "usermod", "add 'eve' to group 'dockers'").is_empty());
        let a = at(
            &mut *d,
            20,
            "passwd",
            "password for 'bob' changed by 'root'",
        );
        assert_eq!(rules(&a), [Rule::PasswordReset]);
        assert_eq!(a[0].to_string(), "root changed the password of bob.");
        assert!(at(&mut *d, 21, "passwd", "password for 'bob' changed by 'bob'").is_empty());
        let a = at(
            &mut *d,
            22,
            "chpasswd",
            "pam_unix(chpasswd:chauthtok): password changed for carol",
        );
        assert_eq!(rules(&a), [Rule::PasswordReset]);
        // The first login of the new account, within 3 days; not the second.
        let a = at(&mut *d, 259_199, "sshd", &accepted("eve", "10.0.0.7"));
        assert_eq!(rules(&a), [Rule::NewAccountLogin]);
        assert_eq!(a[0].cites(), [0, 9]);
        assert!(at(&mut *d, 259_300, "sshd", &accepted("eve", "10.0.0.7")).is_empty());
        at(
            &mut *d,
            300_000,
            "useradd",
            "new user: name=old, UID=1006, GID=1006, home=/home/old, shell=/bin/bash, from=/dev/pts/0",
        );
        assert!(
            at(
                &mut *d,
                300_000 + 259_200,
                "sshd",
                &accepted("old", "10.0.0.7")
            )
            .is_empty()
        );
        // Configurable groups.
        let mut c = only(Rule::PrivilegedGroup);
        c.account_changes.privileged_groups = NameList::EMPTY;
        c.account_changes.privileged_groups.push(b"devs").unwrap();
        let mut d = detector(c);
        assert!(at(&mut *d, 0, "usermod", "add 'eve' to group 'sudo'").is_empty());
        assert_eq!(
            at(&mut *d, 1, "usermod", "add 'eve' to group 'devs'").len(),
            1
        );
    }

    #[test]
    fn root_over_the_network_unless_allow_listed() {
        let mut c = only(Rule::RootLogin);
        c.allow_mut(Rule::RootLogin)
            .push_net(Cidr::parse("10.0.0.0/29").unwrap())
            .unwrap();
        let mut d = detector(c);
        assert!(at(&mut *d, 0, "sshd", &key("root", "10.0.0.7")).is_empty());
        assert_eq!(d.stats().allowed, 1);
        let a = at(&mut *d, 10, "sshd", &key("root", "10.0.0.8"));
        assert_eq!(sev(&a, Rule::RootLogin), Some(MEDIUM));
        assert_eq!(
            a[0].to_string(),
            "root logged in over the network from 10.0.0.8."
        );
        let a = at(&mut *d, 20, "sshd", &accepted("root", "198.18.3.3"));
        assert_eq!(sev(&a, Rule::RootLogin), Some(HIGH));
        assert!(at(&mut *d, 30, "sshd", &key("alice", "198.18.3.3")).is_empty());
        // A local root login (no address) is not over the network.
        assert!(
            at(
                &mut *d,
                40,
                "login",
                "pam_unix(login:session): session opened for user root(uid=0) by LOGIN(uid=0)"
            )
            .is_empty()
        );
    }

    #[test]
    fn logins_outside_working_hours_are_opt_in() {
        // BASE is Saturday 2026-11-28 08:00 UTC.
        let monday = 2 * 86_400 - 8 * 3600;
        let mut d = detector(only(Rule::FirstSeenSource));
        assert!(
            at(
                &mut *d,
                monday + 3 * 3600,
                "sshd",
                &key("alice", "10.0.0.2")
            )
            .is_empty()
        );
        let mut c = only(Rule::OffHoursLogin);
        c.off_hours.utc_offset_secs = 3600;
        let mut d = detector(c);
        // 07:00 local is 06:00 UTC.
        let h = |hour: i64| monday + hour * 3600 - 3600;
        assert_eq!(
            rules(&at(&mut *d, h(7) - 1, "sshd", &key("alice", "10.0.0.2"))),
            [Rule::OffHoursLogin]
        );
        assert!(at(&mut *d, h(7), "sshd", &key("alice", "10.0.0.2")).is_empty());
        assert!(at(&mut *d, h(20) - 1, "sshd", &key("alice", "10.0.0.2")).is_empty());
        assert_eq!(
            at(&mut *d, h(20), "sshd", &key("alice", "10.0.0.2")).len(),
            1
        );
        // Saturday noon.
        assert_eq!(
            at(&mut *d, 4 * 3600, "sshd", &key("alice", "10.0.0.2")).len(),
            1
        );
        // Summer time: the caller passes the new offset, the same detector follows it
        // (06:30 UTC is 07:30 at +01:00 and at +02:00 alike; 05:30 UTC only at +02:00).
        d.set_utc_offset(7200);
        assert!(at(&mut *d, h(7) - 1800, "sshd", &key("alice", "10.0.0.2")).is_empty());
        d.set_utc_offset(3600);
        assert_eq!(
            at(&mut *d, h(7) - 1800, "sshd", &key("alice", "10.0.0.2")).len(),
            1
        );
        // An automation account, allow-listed by name.
        let mut c = only(Rule::OffHoursLogin);
        c.allow_mut(Rule::OffHoursLogin)
            .users
            .push(b"backup")
            .unwrap();
        let mut d = detector(c);
        assert!(at(&mut *d, 4 * 3600, "sshd", &key("backup", "10.0.0.5")).is_empty());
        assert_eq!(
            at(&mut *d, 4 * 3600, "sshd", &key("alice", "10.0.0.5")).len(),
            1
        );
        let mut bad = DetectConfig::default();
        bad.off_hours.enabled = true;
        bad.off_hours.start_hour = 20;
        assert_eq!(bad.validate(), Err(ConfigError::BadHours));
    }

    #[test]
    fn allow_lists_are_per_rule_and_keep_counting() {
        let mut c = only(Rule::BruteForce);
        c.allow_mut(Rule::BruteForce)
            .push_net(Cidr::parse("2001:db8::/32").unwrap())
            .unwrap();
        c.allow_mut(Rule::PasswordSpray)
            .push_net(Cidr::parse("203.0.113.0/24").unwrap())
            .unwrap();
        let mut d = detector(c);
        for k in 0..10 {
            assert!(feed(&mut *d, k, &failed("root", "2001:db8::7")).is_empty());
        }
        assert_eq!(d.stats().allowed, 1);
        let n: usize = (0..10)
            .map(|k| feed(&mut *d, k, &failed("root", "203.0.113.7")).len())
            .sum();
        assert_eq!(n, 1);
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("10.0.0.1").unwrap().contains(ip("10.0.0.1")));
        assert!(!Cidr::parse("10.0.0.1").unwrap().contains(ip("10.0.0.2")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("10.0.0.2")));
        assert!(!Cidr::parse("0.0.0.0/0").unwrap().contains(ip("::1")));
        let mut full = AllowList::EMPTY;
        for k in 0..ALLOW_NETS {
            full.push_net(Cidr::parse(&format!("10.0.0.{k}")).unwrap())
                .unwrap();
        }
        assert!(full.push_net(Cidr::parse("10.0.1.0/24").unwrap()).is_err());
    }

    /// Feeds a whole log through `parse_line` (re-observing `last message repeated N times`)
    /// and returns the alerts.
    fn replay<const S: usize, const U: usize, const P: usize>(
        d: &mut Detector<S, U, P>,
        log: &[u8],
        ctx: &Context,
    ) -> Vec<Alert> {
        let mut out = Vec::new();
        let mut prev: Option<LoginEvent<'_>> = None;
        for line in log.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            match parse_line(line, ctx) {
                Parsed::Event(ev) => {
                    out.extend(d.observe(&ev));
                    prev = Some(ev);
                }
                Parsed::RepeatLast { count, header } => {
                    if let Some(mut ev) = prev {
                        ev.count = count;
                        ev.timestamp = Some(header.timestamp);
                        out.extend(d.observe(&ev));
                    }
                }
                _ => {}
            }
        }
        out
    }

    #[test]
    fn replay_debian12_auth_log() {
        let log = include_bytes!("../testdata/debian12-traditional/auth.log");
        let mut d = detector(DetectConfig::default());
        let alerts = replay(&mut *d, log, &ctx());
        for a in &alerts {
            println!("{:<22} {a}", a.rule.as_str());
        }
        println!("{d:?}");
        // The capture's scenarios create accounts, add atalice to sudo, reset passwords as root,
        // refuse sudo to atbob, fail su and sudo passwords, and fail atalice's password from
        // several addresses (MaxAuthTries, typos, keyboard-interactive) between her logins:
        // per-user success-after-failures. No source reaches 10 attempts or 5 names; first-seen
        // is still learning.
        let raised: std::collections::BTreeSet<Rule> = alerts.iter().map(|a| a.rule).collect();
        assert_eq!(
            raised.into_iter().collect::<Vec<_>>(),
            [
                Rule::SuccessAfterFailures,
                Rule::PrivilegeAfterLogin,
                Rule::SudoRefused,
                Rule::PrivilegeFailures,
                Rule::AccountCreated,
                Rule::PrivilegedGroup,
                Rule::PasswordReset,
                Rule::NewAccountLogin,
            ],
            "{alerts:#?}"
        );
        for a in alerts
            .iter()
            .filter(|a| a.rule == Rule::SuccessAfterFailures)
        {
            assert_eq!(a.scope, Scope::User);
            assert_eq!(a.user.unwrap().as_text(), "atalice");
            assert!(a.count >= 3);
        }
        // One first login per new account.
        let firsts: Vec<_> = alerts
            .iter()
            .filter(|a| a.rule == Rule::NewAccountLogin)
            .map(|a| a.user.unwrap().as_text().to_string())
            .collect();
        assert_eq!(firsts, ["atalice", "atbob"]);
        assert_eq!(d.stats().source_evictions, 0);

        // Lower thresholds: 127.0.0.29 (MaxAuthTries 6: six `Failed password`, plus the PAM,
        // `maximum authentication attempts` and `PAM 5 more` lines) is a brute force of exactly 6;
        // with no learning period atalice's new addresses show up.
        let mut c = DetectConfig::default();
        c.brute_force.threshold = 6;
        c.first_seen_source.learning_secs = 0;
        let mut d = detector(c);
        let alerts = replay(&mut *d, log, &ctx());
        for a in &alerts {
            println!("{:<22} {a}", a.rule.as_str());
        }
        let bf: Vec<_> = alerts
            .iter()
            .filter(|a| a.rule == Rule::BruteForce)
            .collect();
        assert_eq!(bf.len(), 1, "{bf:?}");
        assert_eq!((bf[0].source, bf[0].count), (Some(ip("127.0.0.29")), 6));
        // atalice's 127.0.0.x addresses are one network, hers: only ::1 is new.
        let fs: Vec<_> = alerts
            .iter()
            .filter(|a| a.rule == Rule::FirstSeenSource)
            .collect();
        assert!(fs.iter().all(|a| a.source == Some(ip("::1"))), "{fs:?}");
    }

    #[test]
    fn replay_loggen_bursts() {
        let opts = loggen::Options {
            lines: 250_000,
            seed: 1,
            ..Default::default()
        };
        let mut log = Vec::new();
        let stats = loggen::generate(&mut log, &opts).unwrap();
        assert_eq!(stats.bursts, 3);
        let text = String::from_utf8_lossy(&log);
        let burst_ips: Vec<IpAddr> = text
            .lines()
            .filter_map(|l| {
                l.split_once("Accepted password for root from ")?
                    .1
                    .split(' ')
                    .next()?
                    .parse()
                    .ok()
            })
            .collect();
        assert_eq!(burst_ips.len() as u64, stats.bursts, "{burst_ips:?}");

        let mut d = detector(DetectConfig::default());
        let ctx = Context::new(Timestamp::from_secs(loggen::DEFAULT_START));
        let alerts = replay(&mut *d, &log, &ctx);
        let mut by_rule = std::collections::BTreeMap::new();
        for a in &alerts {
            *by_rule.entry(a.rule.as_str()).or_insert(0) += 1;
        }
        println!(
            "{} lines, bursts from {burst_ips:?}: {by_rule:?}; {d:?}",
            stats.lines
        );
        for a in alerts.iter().filter(|a| a.rule != Rule::FirstSeenSource) {
            println!("{:<22} {a}", a.rule.as_str());
        }
        for ip in &burst_ips {
            let saf: Vec<_> = alerts
                .iter()
                .filter(|a| a.rule == Rule::SuccessAfterFailures && a.source == Some(*ip))
                .collect();
            assert_eq!(saf.len(), 1, "{ip}: {saf:?}");
            assert_eq!(saf[0].scope, Scope::Source);
            assert_eq!(saf[0].user.unwrap().as_text(), "root");
            assert!(saf[0].count >= 100, "{:?}", saf[0]);
            let bf = alerts
                .iter()
                .filter(|a| a.rule == Rule::BruteForce && a.source == Some(*ip))
                .count();
            assert_eq!(bf, 1, "{ip}");
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(ops in proptest::collection::vec((0u8..3, -700i64..700, 0u8..6, 0u8..4, 1u32..40), 1..300)) {
            let mut c = DetectConfig::default();
            c.first_seen_source.learning_secs = 0;
            let mut d: Detector<8, 8, 8> = Detector::new(c);
            const USERS: [&str; 4] = ["root", "alice", "bob", "admin"];
            for (action, dt, src, user, count) in ops {
                let action = [Action::AuthFailure, Action::InvalidUser, Action::AuthSuccess][usize::from(action)];
                let mut e = raw(action, BASE + dt, IpAddr::from([192, 0, 2, src]), USERS[usize::from(user)]);
                e.count = count;
                for a in &d.observe(&e) {
                    proptest::prop_assert!(a.start <= a.end);
                    let mut s = String::new();
                    write_alert(&mut s, a, &Envelope::default()).unwrap();
                }
            }
        }
    }
}
