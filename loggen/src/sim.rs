//! The simulated servers: who connects, what each program logs, and when.
//!
//! A scenario (a scanner trying one user name, a real login with its session, a sudo command)
//! is decided at one instant but logs lines over seconds or hours. Its lines go into a min-heap
//! keyed by (time, sequence); the driver in `lib.rs` pops everything due before the next
//! scenario starts. New lines are never scheduled before the current instant and popped lines
//! are never after it, so the output is in time order.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use crate::Format;
use crate::clock::Stamp;
use crate::rng::Rng;

const MS: u64 = 1_000;
const SEC: u64 = 1_000_000;
const MINUTE: u64 = 60 * SEC;
/// Linux's default `pid_max` on 64-bit machines with many CPUs (`/proc/sys/kernel/pid_max`).
const PID_MAX: u64 = 4_194_304;
/// Scanner addresses reused over the run (a few "regulars" do most of the knocking).
const ATTACKER_POOL: usize = 400;

/// Accounts that exist on the servers: name, uid, may use sudo, ssh key type.
const USERS: &[(&str, u32, bool, &str)] = &[
    ("alice", 1000, true, "ED25519"),
    ("bob", 1001, false, "RSA"),
    ("carol", 1002, true, "ECDSA"),
    ("deploy", 1003, true, "ED25519"),
    ("dave", 1004, false, "ED25519"),
    ("ci-runner", 1005, true, "ECDSA"),
    ("j.smith", 1006, false, "RSA"),
];
/// How often each of [`USERS`] logs in.
const LOGIN_WEIGHTS: &[(usize, u32)] =
    &[(0, 30), (1, 12), (2, 15), (3, 25), (4, 6), (5, 20), (6, 4)];

/// Names scanners try that do not exist on the servers (from real honeypot top lists).
const INVALID_USERS: &[&str] = &[
    "admin",
    "test",
    "oracle",
    "ubuntu",
    "user",
    "postgres",
    "guest",
    "ftpuser",
    "pi",
    "git",
    "support",
    "test1",
    "administrator",
    "hadoop",
    "jenkins",
    "ansible",
    "minecraft",
    "steam",
    "ts3",
    "nagios",
    "mysql",
    "centos",
    "ec2-user",
    "azureuser",
    "vagrant",
    "dev",
    "www",
    "web",
    "user1",
    "debian",
    "odoo",
    "teamspeak",
    "sysadmin",
    "elastic",
    "kafka",
    "solana",
    "sol",
    "validator",
    "tomcat",
    "apache",
    "mongodb",
    "redis",
    "docker",
    "zabbix",
    "gitlab",
    "test2",
    "admin1",
    "123456",
];

const SUDO_COMMANDS: &[&str] = &[
    "/usr/bin/systemctl restart nginx",
    "/usr/bin/systemctl status postgresql",
    "/usr/bin/systemctl reload nginx",
    "/usr/bin/apt-get update",
    "/usr/bin/apt-get upgrade -y",
    "/usr/bin/journalctl -u nginx --since today",
    "/usr/bin/tail -n 200 /var/log/nginx/error.log",
    "/usr/bin/docker ps",
    "/usr/bin/docker compose up -d",
    "/bin/bash",
    "/usr/bin/vim /etc/nginx/sites-available/default",
    "/usr/bin/certbot renew",
    "/usr/bin/ls -la /root",
    "/usr/sbin/ufw status",
    "/usr/bin/du -sh /var/lib/docker",
];
/// What people without sudo rights try.
const FORBIDDEN_COMMANDS: &[&str] = &[
    "/bin/cat /etc/shadow",
    "/bin/bash",
    "/usr/bin/passwd root",
    "/usr/bin/apt install nmap",
    "/usr/bin/su -",
];
const WORK_DIRS: &[&str] = &["", "/app", "/src/site"];
const SYSTEM_DIRS: &[&str] = &[
    "/etc/nginx",
    "/var/www/html",
    "/var/log",
    "/opt/app",
    "/tmp",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    ScanInvalid,
    RootGuess,
    RootMaxTries,
    PreauthClosed,
    Probe,
    LoginKey,
    LoginPassword,
    LoginTypo,
    FailedValid,
    Sudo,
    SudoIncorrect,
    SudoNotInSudoers,
    Su,
    SuFailed,
    SshdReload,
    SshdRestart,
}

/// The mix of a busy internet-facing server: scanners dominate, real work is a small share.
const MIX: &[(Kind, u32)] = &[
    (Kind::ScanInvalid, 3000),
    (Kind::RootGuess, 1800),
    (Kind::RootMaxTries, 500),
    (Kind::PreauthClosed, 900),
    (Kind::Probe, 500),
    (Kind::LoginKey, 250),
    (Kind::LoginPassword, 60),
    (Kind::LoginTypo, 25),
    (Kind::FailedValid, 60),
    (Kind::Sudo, 150),
    (Kind::SudoIncorrect, 15),
    (Kind::SudoNotInSudoers, 10),
    (Kind::Su, 40),
    (Kind::SuFailed, 20),
    (Kind::SshdReload, 1),
    (Kind::SshdRestart, 1),
];

/// One log line waiting for its time.
#[derive(Debug)]
pub(crate) struct Line {
    /// Microseconds since `Options::start`.
    t: u64,
    seq: u64,
    host: usize,
    closes_burst: bool,
    /// Everything after the host name: `sshd[1234]: Accepted ...`.
    body: String,
}

impl Line {
    pub(crate) fn closes_burst(&self) -> bool {
        self.closes_burst
    }
}

impl PartialEq for Line {
    fn eq(&self, other: &Self) -> bool {
        (self.t, self.seq) == (other.t, other.seq)
    }
}
impl Eq for Line {}
impl PartialOrd for Line {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Line {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.t, self.seq).cmp(&(other.t, other.seq))
    }
}

#[derive(Debug)]
struct Host {
    name: String,
    local_v4: String,
    local_v6: String,
    last_pid: u64,
    sshd_pid: u64,
    logind_pid: u64,
    session: u64,
    pts: u64,
}

#[derive(Debug)]
struct User {
    name: &'static str,
    uid: u32,
    sudoer: bool,
    key_type: &'static str,
    fingerprint: String,
    sources: Vec<String>,
}

#[derive(Debug)]
pub(crate) struct Simulation {
    rng: Rng,
    hosts: Vec<Host>,
    users: Vec<User>,
    attackers: Vec<String>,
    queue: BinaryHeap<Reverse<Line>>,
    seq: u64,
    now: u64,
    start_us: i64,
    stamp: Stamp,
}

impl Simulation {
    pub(crate) fn new(seed: u64, start: i64, format: Format, host_names: &[String]) -> Self {
        let mut rng = Rng::new(seed);
        let hosts = host_names
            .iter()
            .enumerate()
            .map(|(i, name)| Host {
                name: name.clone(),
                local_v4: format!("10.0.0.{}", 5 + i % 250),
                local_v6: format!("2001:db8:10::{:x}", 5 + i),
                last_pid: rng.between(2_000, 400_000),
                sshd_pid: rng.between(600, 1_200),
                logind_pid: rng.between(400, 900),
                session: rng.between(1, 400),
                pts: 0,
            })
            .collect();
        let users = USERS
            .iter()
            .map(|&(name, uid, sudoer, key_type)| {
                let fingerprint = fingerprint(&mut rng);
                let mut sources = vec![internal_v4(&mut rng), internal_v4(&mut rng)];
                match rng.below(3) {
                    0 => sources.push(doc_v6(&mut rng)),
                    1 => sources.push(doc_v4(&mut rng)), // from home, through no VPN
                    _ => {}
                }
                User {
                    name,
                    uid,
                    sudoer,
                    key_type,
                    fingerprint,
                    sources,
                }
            })
            .collect();
        let attackers = (0..ATTACKER_POOL)
            .map(|_| {
                if rng.percent(15) {
                    doc_v6(&mut rng)
                } else {
                    doc_v4(&mut rng)
                }
            })
            .collect();
        Self {
            rng,
            hosts,
            users,
            attackers,
            queue: BinaryHeap::new(),
            seq: 0,
            now: 0,
            start_us: start.saturating_mul(1_000_000),
            stamp: Stamp::new(format),
        }
    }

    pub(crate) fn now(&self) -> u64 {
        self.now
    }

    pub(crate) fn advance_to(&mut self, t: u64) {
        debug_assert!(t >= self.now);
        self.now = t;
    }

    /// Time until the next scenario: about 1.3 s on average, now and then a lull.
    pub(crate) fn gap(&mut self) -> u64 {
        let mut gap = self.rng.below(1_300 * MS) + self.rng.below(1_300 * MS);
        if self.rng.percent(2) {
            gap += self.rng.below(20 * SEC);
        }
        gap.max(1)
    }

    /// The earliest queued line if it is due at or before `t`.
    pub(crate) fn pop_until(&mut self, t: u64) -> Option<Line> {
        match self.queue.peek() {
            Some(Reverse(line)) if line.t <= t => self.queue.pop().map(|Reverse(line)| line),
            _ => None,
        }
    }

    /// Appends `line` with its timestamp, host and newline.
    pub(crate) fn render(&mut self, buf: &mut Vec<u8>, line: &Line) {
        let unix_us = self.start_us.saturating_add_unsigned(line.t);
        self.stamp.write(buf, unix_us);
        buf.extend_from_slice(self.hosts[line.host].name.as_bytes());
        buf.push(b' ');
        buf.extend_from_slice(line.body.as_bytes());
        buf.push(b'\n');
    }

    fn push(&mut self, t: u64, host: usize, body: String) {
        self.push_line(t, host, body, false);
    }

    fn push_line(&mut self, t: u64, host: usize, body: String, closes_burst: bool) {
        debug_assert!(t >= self.now, "a line scheduled in the past");
        self.seq += 1;
        self.queue.push(Reverse(Line {
            t,
            seq: self.seq,
            host,
            closes_burst,
            body,
        }));
    }

    /// A random delay between `lo` and `hi` milliseconds, in microseconds.
    fn ms(&mut self, lo: u64, hi: u64) -> u64 {
        self.rng.between(lo * MS, hi * MS)
    }

    /// The next pid on `host`: Linux hands them out in increasing order, and a busy machine
    /// starts a few other processes between two that log.
    fn pid(&mut self, host: usize) -> u64 {
        let step = 1 + self.rng.below(24);
        let h = &mut self.hosts[host];
        h.last_pid += step;
        if h.last_pid >= PID_MAX {
            h.last_pid = 300 + step;
        }
        h.last_pid
    }

    fn pick_host(&mut self) -> usize {
        self.rng.below(self.hosts.len() as u64) as usize
    }

    fn attacker(&mut self) -> String {
        let i = self.rng.skewed(self.attackers.len() as u64);
        self.attackers[i].clone()
    }

    fn user_source(&mut self, user: usize) -> String {
        if self.rng.per_mille(15) {
            // Someone on the same segment, by link-local address with its zone.
            return format!("fe80::{:x}%eth0", self.rng.between(1, 0xffff));
        }
        let sources = &self.users[user].sources;
        sources[self.rng.below(sources.len() as u64) as usize].clone()
    }

    fn next_tty(&mut self, host: usize) -> String {
        let h = &mut self.hosts[host];
        h.pts = (h.pts + 1) % 6;
        format!("pts/{}", h.pts)
    }

    fn work_dir(&mut self, user: usize) -> String {
        if self.rng.percent(25) {
            (*self.rng.pick(SYSTEM_DIRS)).to_owned()
        } else {
            let sub = self.rng.pick(WORK_DIRS);
            format!("/home/{}{sub}", self.users[user].name)
        }
    }

    /// `Connection from ...` is only logged at `LogLevel VERBOSE`; some admins turn it on.
    fn maybe_connection_from(&mut self, t: u64, h: usize, pid: u64, ip: &str, port: u64) {
        if self.rng.percent(10) {
            let local = if ip.contains(':') {
                &self.hosts[h].local_v6
            } else {
                &self.hosts[h].local_v4
            };
            let body = format!(
                "sshd[{pid}]: Connection from {ip} port {port} on {local} port 22 rdomain \"\""
            );
            self.push(t, h, body);
        }
    }

    /// Queues cron sessions for every minute boundary after now, up to `until`.
    pub(crate) fn schedule_cron(&mut self, until: u64) {
        let abs_now = self.start_us.saturating_add_unsigned(self.now);
        let abs_until = self.start_us.saturating_add_unsigned(until);
        let minute = MINUTE as i64;
        let mut m = abs_now.div_euclid(minute) + 1;
        while m.saturating_mul(minute) <= abs_until {
            let boundary = (m * minute - self.start_us) as u64;
            let minute_of_day = m.rem_euclid(24 * 60);
            for h in 0..self.hosts.len() {
                if minute_of_day % 5 == 0 {
                    self.cron(boundary, h, "root", 0, 20 * SEC);
                }
                if minute_of_day % 15 == 0 {
                    self.cron(boundary, h, "www-data", 33, 5 * SEC);
                }
                if minute_of_day % 60 == 17 {
                    self.cron(boundary, h, "root", 0, 60 * SEC); // cron.hourly
                }
                if minute_of_day == 6 * 60 + 25 {
                    self.cron(boundary, h, "root", 0, 300 * SEC); // cron.daily
                }
            }
            m += 1;
        }
    }

    fn cron(&mut self, boundary: u64, h: usize, user: &str, uid: u32, max_run: u64) {
        let pid = self.pid(h);
        let t = boundary + self.ms(5, 900);
        self.push(
            t,
            h,
            format!("CRON[{pid}]: pam_unix(cron:session): session opened for user {user}(uid={uid}) by (uid=0)"),
        );
        let t = t + 10 * MS + self.rng.below(max_run);
        self.push(
            t,
            h,
            format!("CRON[{pid}]: pam_unix(cron:session): session closed for user {user}"),
        );
    }

    /// Starts one randomly chosen scenario at the current instant.
    pub(crate) fn scenario(&mut self) {
        let t = self.now;
        match self.rng.weighted(MIX) {
            Kind::ScanInvalid => self.scan_invalid(t),
            Kind::RootGuess => self.root_guess(t),
            Kind::RootMaxTries => self.root_max_tries(t),
            Kind::PreauthClosed => self.preauth_closed(t),
            Kind::Probe => self.probe(t),
            Kind::LoginKey => self.login(t, Login::Key),
            Kind::LoginPassword => self.login(t, Login::Password),
            Kind::LoginTypo => self.login(t, Login::AfterTypo),
            Kind::FailedValid => self.failed_valid(t),
            Kind::Sudo => {
                let (h, u, tty) = self.console_user(true);
                self.sudo(t, h, u, &tty);
            }
            Kind::SudoIncorrect => {
                let (h, u, tty) = self.console_user(true);
                self.sudo_incorrect(t, h, u, &tty);
            }
            Kind::SudoNotInSudoers => {
                let (h, u, tty) = self.console_user(false);
                self.sudo_not_in_sudoers(t, h, u, &tty);
            }
            Kind::Su => {
                let (h, u, tty) = self.console_user(true);
                self.su(t, h, u, &tty);
            }
            Kind::SuFailed => {
                let (h, u, tty) = self.console_user(false);
                self.su_failed(t, h, u, &tty);
            }
            Kind::SshdReload => self.sshd_reload(t),
            Kind::SshdRestart => self.sshd_restart(t),
        }
    }

    /// A host, a user (with sudo rights or without) and a terminal for work in a session
    /// that began before the log did.
    fn console_user(&mut self, sudoer: bool) -> (usize, usize, String) {
        let h = self.pick_host();
        let candidates: Vec<usize> = (0..self.users.len())
            .filter(|&u| self.users[u].sudoer == sudoer)
            .collect();
        let u = *self.rng.pick(&candidates);
        let tty = format!("pts/{}", self.rng.below(4));
        (h, u, tty)
    }

    fn scan_invalid(&mut self, mut t: u64) {
        let h = self.pick_host();
        let ip = self.attacker();
        let port = self.rng.between(1024, 65535);
        let pid = self.pid(h);
        let user = match self.rng.below(1000) {
            // OpenSSH logs an empty name as two spaces.
            0..=2 => String::new(),
            // A name that tries to inject a fake source; the real one is the last `from`.
            3..=4 => format!("admin from {}", internal_v4(&mut self.rng)),
            _ => (*self.rng.pick(INVALID_USERS)).to_owned(),
        };
        self.maybe_connection_from(t, h, pid, &ip, port);
        t += self.ms(20, 400);
        self.push(
            t,
            h,
            format!("sshd[{pid}]: Invalid user {user} from {ip} port {port}"),
        );
        if self.rng.percent(70) {
            if self.rng.percent(25) {
                t += self.ms(1, 20);
                self.push(
                    t,
                    h,
                    format!("sshd[{pid}]: pam_unix(sshd:auth): check pass; user unknown"),
                );
                self.push(t, h, format!("sshd[{pid}]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}"));
            }
            t += self.ms(1_500, 3_500);
            self.push(
                t,
                h,
                format!(
                    "sshd[{pid}]: Failed password for invalid user {user} from {ip} port {port} ssh2"
                ),
            );
        }
        t += self.ms(50, 1_500);
        if self.rng.percent(60) {
            self.push(
                t,
                h,
                format!(
                    "sshd[{pid}]: Connection closed by invalid user {user} {ip} port {port} [preauth]"
                ),
            );
        } else {
            self.bye_bye(t, h, pid, &ip, port, &format!("invalid user {user}"));
        }
    }

    /// `Received disconnect ... Bye Bye` and `Disconnected from WHO ...`, both pre-auth.
    fn bye_bye(&mut self, t: u64, h: usize, pid: u64, ip: &str, port: u64, who: &str) {
        self.push(
            t,
            h,
            format!("sshd[{pid}]: Received disconnect from {ip} port {port}:11: Bye Bye [preauth]"),
        );
        self.push(
            t,
            h,
            format!("sshd[{pid}]: Disconnected from {who} {ip} port {port} [preauth]"),
        );
    }

    fn auth_failure(&mut self, t: u64, h: usize, pid: u64, ip: &str, user: &str) {
        self.push(t, h, format!("sshd[{pid}]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}  user={user}"));
    }

    fn root_guess(&mut self, mut t: u64) {
        let h = self.pick_host();
        let ip = self.attacker();
        let port = self.rng.between(1024, 65535);
        let pid = self.pid(h);
        self.maybe_connection_from(t, h, pid, &ip, port);
        t += self.ms(200, 900);
        self.auth_failure(t, h, pid, &ip, "root");
        t += self.ms(1_500, 2_500);
        self.push(
            t,
            h,
            format!("sshd[{pid}]: Failed password for root from {ip} port {port} ssh2"),
        );
        t += self.ms(50, 1_200);
        if self.rng.percent(55) {
            self.push(t, h, format!("sshd[{pid}]: Connection closed by authenticating user root {ip} port {port} [preauth]"));
        } else {
            self.bye_bye(t, h, pid, &ip, port, "authenticating user root");
        }
    }

    /// Several passwords on one connection; at six, sshd's `MaxAuthTries` ends it.
    fn root_max_tries(&mut self, mut t: u64) {
        let h = self.pick_host();
        let ip = self.attacker();
        let port = self.rng.between(1024, 65535);
        let pid = self.pid(h);
        let tries = self.rng.between(2, 6);
        // rsyslog folds identical consecutive messages into `message repeated N times`.
        let fold = tries >= 3 && self.rng.percent(30);
        self.maybe_connection_from(t, h, pid, &ip, port);
        t += self.ms(200, 900);
        self.auth_failure(t, h, pid, &ip, "root");
        let failed = format!("Failed password for root from {ip} port {port} ssh2");
        for i in 0..tries {
            t += self.ms(1_500, 3_000);
            if !fold || i == 0 {
                self.push(t, h, format!("sshd[{pid}]: {failed}"));
            }
        }
        if fold {
            let n = tries - 1;
            self.push(
                t,
                h,
                format!("sshd[{pid}]: message repeated {n} times: [ {failed}]"),
            );
        }
        t += self.ms(1, 50);
        if tries == 6 {
            self.push(t, h, format!("sshd[{pid}]: error: maximum authentication attempts exceeded for root from {ip} port {port} ssh2 [preauth]"));
            self.push(t, h, format!("sshd[{pid}]: Disconnecting authenticating user root {ip} port {port}: Too many authentication failures [preauth]"));
        } else {
            self.push(t, h, format!("sshd[{pid}]: Connection closed by authenticating user root {ip} port {port} [preauth]"));
        }
        let more = tries - 1;
        let plural = if more == 1 { "" } else { "s" };
        let t = t + self.ms(0, 5);
        self.push(t, h, format!("sshd[{pid}]: PAM {more} more authentication failure{plural}; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}  user=root"));
    }

    /// Key probing: the client offers keys, none fits, and it goes away.
    fn preauth_closed(&mut self, mut t: u64) {
        let h = self.pick_host();
        let ip = self.attacker();
        let port = self.rng.between(1024, 65535);
        let pid = self.pid(h);
        let user = if self.rng.percent(80) {
            "root"
        } else {
            self.rng.pick(USERS).0
        };
        self.maybe_connection_from(t, h, pid, &ip, port);
        t += self.ms(100, 1_500);
        if self.rng.percent(60) {
            self.push(t, h, format!("sshd[{pid}]: Connection closed by authenticating user {user} {ip} port {port} [preauth]"));
        } else {
            self.bye_bye(t, h, pid, &ip, port, &format!("authenticating user {user}"));
        }
    }

    /// Port scanners and broken clients.
    fn probe(&mut self, mut t: u64) {
        let h = self.pick_host();
        let ip = self.attacker();
        let port = self.rng.between(1024, 65535);
        let pid = self.pid(h);
        self.maybe_connection_from(t, h, pid, &ip, port);
        t += self.ms(5, 2_000);
        let msg = match self.rng.below(5) {
            0 => format!("Connection closed by {ip} port {port} [preauth]"),
            1 => format!("Did not receive identification string from {ip} port {port}"),
            2 => format!("banner exchange: Connection from {ip} port {port}: invalid format"),
            3 => format!("Connection reset by {ip} port {port} [preauth]"),
            _ => format!(
                "Unable to negotiate with {ip} port {port}: no matching key exchange method found. Their offer: diffie-hellman-group14-sha1,diffie-hellman-group-exchange-sha1,diffie-hellman-group1-sha1 [preauth]"
            ),
        };
        self.push(t, h, format!("sshd[{pid}]: {msg}"));
    }

    /// A valid user and a wrong password, from anywhere.
    fn failed_valid(&mut self, mut t: u64) {
        let h = self.pick_host();
        let u = self.rng.weighted(LOGIN_WEIGHTS);
        let name = self.users[u].name;
        let ip = if self.rng.percent(50) {
            self.attacker()
        } else {
            self.user_source(u)
        };
        let port = self.rng.between(1024, 65535);
        let pid = self.pid(h);
        self.maybe_connection_from(t, h, pid, &ip, port);
        t += self.ms(300, 3_000);
        self.auth_failure(t, h, pid, &ip, name);
        t += self.ms(1_500, 2_500);
        self.push(
            t,
            h,
            format!("sshd[{pid}]: Failed password for {name} from {ip} port {port} ssh2"),
        );
        t += self.ms(100, 5_000);
        self.push(t, h, format!("sshd[{pid}]: Connection closed by authenticating user {name} {ip} port {port} [preauth]"));
    }

    /// A real login, its session, what the user does there, and the logout.
    fn login(&mut self, mut t: u64, how: Login) {
        let h = self.pick_host();
        let u = self.rng.weighted(LOGIN_WEIGHTS);
        let ip = self.user_source(u);
        let port = self.rng.between(32_768, 60_999);
        let pid = self.pid(h);
        // The privilege-separated child that logs the disconnect.
        let child = self.pid(h);
        let (name, uid) = (self.users[u].name, self.users[u].uid);
        self.maybe_connection_from(t, h, pid, &ip, port);
        t += self.ms(80, 600);
        let accepted = match how {
            Login::Key => {
                let user = &self.users[u];
                format!(
                    "Accepted publickey for {name} from {ip} port {port} ssh2: {} SHA256:{}",
                    user.key_type, user.fingerprint
                )
            }
            Login::Password | Login::AfterTypo => {
                if how == Login::AfterTypo {
                    self.auth_failure(t, h, pid, &ip, name);
                    t += self.ms(1_500, 2_500);
                    self.push(
                        t,
                        h,
                        format!(
                            "sshd[{pid}]: Failed password for {name} from {ip} port {port} ssh2"
                        ),
                    );
                }
                t += self.ms(1_000, 6_000);
                format!("Accepted password for {name} from {ip} port {port} ssh2")
            }
        };
        self.push(t, h, format!("sshd[{pid}]: {accepted}"));
        t += self.ms(1, 15);
        self.push(t, h, format!("sshd[{pid}]: pam_unix(sshd:session): session opened for user {name}(uid={uid}) by (uid=0)"));
        let session = {
            let host = &mut self.hosts[h];
            host.session += 1;
            host.session
        };
        let logind = self.hosts[h].logind_pid;
        t += self.ms(5, 40);
        self.push(
            t,
            h,
            format!("systemd-logind[{logind}]: New session {session} of user {name}."),
        );

        let duration = self.session_duration();
        let tty = self.next_tty(h);
        if self.users[u].sudoer {
            if self.rng.percent(45) {
                for _ in 0..self.rng.between(1, 3) {
                    let at = t + self.rng.below(duration);
                    self.sudo(at, h, u, &tty);
                }
            }
            if self.rng.percent(8) {
                let at = t + self.rng.below(duration);
                self.su(at, h, u, &tty);
            }
        } else if self.rng.percent(4) {
            let at = t + self.rng.below(duration);
            if self.rng.percent(50) {
                self.sudo_not_in_sudoers(at, h, u, &tty);
            } else {
                self.su_failed(at, h, u, &tty);
            }
        }

        t += duration;
        self.push(
            t,
            h,
            format!(
                "sshd[{child}]: Received disconnect from {ip} port {port}:11: disconnected by user"
            ),
        );
        self.push(
            t,
            h,
            format!("sshd[{child}]: Disconnected from user {name} {ip} port {port}"),
        );
        t += self.ms(1, 20);
        self.push(
            t,
            h,
            format!("sshd[{pid}]: pam_unix(sshd:session): session closed for user {name}"),
        );
        t += self.ms(1, 20);
        self.push(
            t,
            h,
            format!("systemd-logind[{logind}]: Session {session} logged out. Waiting for processes to exit."),
        );
        t += self.ms(5, 200);
        self.push(
            t,
            h,
            format!("systemd-logind[{logind}]: Removed session {session}."),
        );
    }

    /// Most sessions last minutes, some an afternoon.
    fn session_duration(&mut self) -> u64 {
        match self.rng.below(100) {
            0..=69 => self.rng.between(10 * SEC, 15 * MINUTE),
            70..=94 => self.rng.between(15 * MINUTE, 120 * MINUTE),
            _ => self.rng.between(120 * MINUTE, 480 * MINUTE),
        }
    }

    fn sudo(&mut self, mut t: u64, h: usize, u: usize, tty: &str) {
        let (name, uid) = (self.users[u].name, self.users[u].uid);
        let pwd = self.work_dir(u);
        let cmd = *self.rng.pick(SUDO_COMMANDS);
        // sudo right-aligns the user name in 8 columns after the tag's space.
        self.push(
            t,
            h,
            format!("sudo: {name:>8} : TTY={tty} ; PWD={pwd} ; USER=root ; COMMAND={cmd}"),
        );
        t += self.ms(1, 10);
        self.push(t, h, format!("sudo: pam_unix(sudo:session): session opened for user root(uid=0) by {name}(uid={uid})"));
        t += if cmd == "/bin/bash" {
            self.rng.between(20 * SEC, 30 * MINUTE)
        } else {
            self.ms(30, 20_000)
        };
        self.push(
            t,
            h,
            "sudo: pam_unix(sudo:session): session closed for user root".to_owned(),
        );
    }

    fn sudo_incorrect(&mut self, mut t: u64, h: usize, u: usize, tty: &str) {
        let (name, uid) = (self.users[u].name, self.users[u].uid);
        let pwd = self.work_dir(u);
        let cmd = *self.rng.pick(SUDO_COMMANDS);
        let attempts = if self.rng.percent(70) {
            3
        } else {
            self.rng.between(1, 2)
        };
        let plural = if attempts == 1 { "" } else { "s" };
        self.push(t, h, format!("sudo: pam_unix(sudo:auth): authentication failure; logname={name} uid={uid} euid=0 tty=/dev/{tty} ruser={name} rhost=  user={name}"));
        t += self.ms(3_000, 20_000);
        self.push(t, h, format!("sudo: {name:>8} : {attempts} incorrect password attempt{plural} ; TTY={tty} ; PWD={pwd} ; USER=root ; COMMAND={cmd}"));
    }

    fn sudo_not_in_sudoers(&mut self, t: u64, h: usize, u: usize, tty: &str) {
        let name = self.users[u].name;
        let pwd = self.work_dir(u);
        let cmd = *self.rng.pick(FORBIDDEN_COMMANDS);
        self.push(
            t,
            h,
            format!(
                "sudo: {name:>8} : user NOT in sudoers ; TTY={tty} ; PWD={pwd} ; USER=root ; COMMAND={cmd}"
            ),
        );
    }

    fn su(&mut self, mut t: u64, h: usize, u: usize, tty: &str) {
        let (name, uid) = (self.users[u].name, self.users[u].uid);
        let pid = self.pid(h);
        let service = if self.rng.percent(60) { "su-l" } else { "su" };
        self.push(t, h, format!("su[{pid}]: (to root) {name} on {tty}"));
        t += self.ms(1, 10);
        self.push(t, h, format!("su[{pid}]: pam_unix({service}:session): session opened for user root(uid=0) by {name}(uid={uid})"));
        t += self.rng.between(5 * SEC, 40 * MINUTE);
        self.push(
            t,
            h,
            format!("su[{pid}]: pam_unix({service}:session): session closed for user root"),
        );
    }

    fn su_failed(&mut self, mut t: u64, h: usize, u: usize, tty: &str) {
        let (name, uid) = (self.users[u].name, self.users[u].uid);
        let pid = self.pid(h);
        let service = if self.rng.percent(50) { "su-l" } else { "su" };
        self.push(t, h, format!("su[{pid}]: pam_unix({service}:auth): authentication failure; logname={name} uid={uid} euid=0 tty=/dev/{tty} ruser={name} rhost=  user=root"));
        t += self.ms(2_000, 3_500);
        self.push(
            t,
            h,
            format!("su[{pid}]: FAILED SU (to root) {name} on {tty}"),
        );
    }

    fn sshd_reload(&mut self, mut t: u64) {
        let h = self.pick_host();
        let pid = self.hosts[h].sshd_pid;
        self.push(t, h, format!("sshd[{pid}]: Received SIGHUP; restarting."));
        t += self.ms(20, 300);
        self.listening(t, h, pid);
    }

    fn sshd_restart(&mut self, mut t: u64) {
        let h = self.pick_host();
        let old = self.hosts[h].sshd_pid;
        self.push(
            t,
            h,
            format!("sshd[{old}]: Received signal 15; terminating."),
        );
        let pid = self.pid(h);
        self.hosts[h].sshd_pid = pid;
        t += self.ms(300, 2_000);
        self.listening(t, h, pid);
    }

    fn listening(&mut self, t: u64, h: usize, pid: u64) {
        self.push(
            t,
            h,
            format!("sshd[{pid}]: Server listening on 0.0.0.0 port 22."),
        );
        self.push(
            t,
            h,
            format!("sshd[{pid}]: Server listening on :: port 22."),
        );
    }

    /// Hundreds of failed logins from one address over a minute or two, then the password
    /// works: `Accepted password for root from` that address.
    pub(crate) fn brute_force_burst(&mut self) {
        let start = self.now;
        let h = self.pick_host();
        let ip = if self.rng.percent(80) {
            doc_v4(&mut self.rng)
        } else {
            doc_v6(&mut self.rng)
        };
        let attempts = self.rng.between(150, 299);
        let duration = self.rng.between(60 * SEC, 120 * SEC);
        let spacing = duration / attempts;
        let mut port = self.rng.between(30_000, 60_000);
        for i in 0..attempts {
            let mut t = start + i * spacing + self.rng.below(spacing / 2);
            port = next_port(port, self.rng.between(2, 12));
            let pid = self.pid(h);
            let user = if self.rng.percent(40) {
                "root"
            } else {
                *self.rng.pick(INVALID_USERS)
            };
            if user == "root" {
                if self.rng.percent(50) {
                    self.auth_failure(t, h, pid, &ip, "root");
                }
                t += self.ms(1_000, 2_200);
                self.push(
                    t,
                    h,
                    format!("sshd[{pid}]: Failed password for root from {ip} port {port} ssh2"),
                );
                if self.rng.percent(60) {
                    t += self.ms(20, 200);
                    self.push(t, h, format!("sshd[{pid}]: Connection closed by authenticating user root {ip} port {port} [preauth]"));
                }
            } else {
                self.push(
                    t,
                    h,
                    format!("sshd[{pid}]: Invalid user {user} from {ip} port {port}"),
                );
                t += self.ms(1_000, 2_200);
                self.push(t, h, format!("sshd[{pid}]: Failed password for invalid user {user} from {ip} port {port} ssh2"));
                if self.rng.percent(50) {
                    t += self.ms(20, 200);
                    self.push(t, h, format!("sshd[{pid}]: Connection closed by invalid user {user} {ip} port {port} [preauth]"));
                }
            }
        }

        let mut t = start + duration + self.ms(2_500, 6_000);
        let port = next_port(port, self.rng.between(2, 12));
        let pid = self.pid(h);
        let child = self.pid(h);
        self.push_line(
            t,
            h,
            format!("sshd[{pid}]: Accepted password for root from {ip} port {port} ssh2"),
            true,
        );
        t += self.ms(1, 15);
        self.push(t, h, format!("sshd[{pid}]: pam_unix(sshd:session): session opened for user root(uid=0) by (uid=0)"));
        let session = {
            let host = &mut self.hosts[h];
            host.session += 1;
            host.session
        };
        let logind = self.hosts[h].logind_pid;
        t += self.ms(5, 40);
        self.push(
            t,
            h,
            format!("systemd-logind[{logind}]: New session {session} of user root."),
        );
        t += self.rng.between(30 * SEC, 10 * MINUTE);
        self.push(
            t,
            h,
            format!(
                "sshd[{child}]: Received disconnect from {ip} port {port}:11: disconnected by user"
            ),
        );
        self.push(
            t,
            h,
            format!("sshd[{child}]: Disconnected from user root {ip} port {port}"),
        );
        t += self.ms(1, 20);
        self.push(
            t,
            h,
            format!("sshd[{pid}]: pam_unix(sshd:session): session closed for user root"),
        );
        t += self.ms(5, 200);
        self.push(
            t,
            h,
            format!("systemd-logind[{logind}]: Removed session {session}."),
        );
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Login {
    Key,
    Password,
    /// A wrong password first.
    AfterTypo,
}

/// Source ports of a scanning tool creep upwards; wrap within the ephemeral range.
fn next_port(port: u64, step: u64) -> u64 {
    let p = port + step;
    if p > 65_535 { 1_024 + (p - 65_536) } else { p }
}

/// An address in the IPv4 documentation ranges (RFC 5737).
fn doc_v4(rng: &mut Rng) -> String {
    let net = rng.pick(&["192.0.2", "198.51.100", "203.0.113"]);
    format!("{net}.{}", rng.between(1, 254))
}

/// An address in the IPv6 documentation prefix (RFC 3849), in canonical short form.
fn doc_v6(rng: &mut Rng) -> String {
    match rng.below(3) {
        0 => format!("2001:db8::{:x}", rng.between(1, 0xffff)),
        1 => format!(
            "2001:db8:{:x}::{:x}",
            rng.between(1, 0xffff),
            rng.between(1, 0xffff)
        ),
        _ => format!(
            "2001:db8:{:x}:{:x}::{:x}:{:x}",
            rng.between(1, 0xffff),
            rng.between(1, 0xffff),
            rng.between(1, 0xffff),
            rng.between(1, 0xffff)
        ),
    }
}

fn internal_v4(rng: &mut Rng) -> String {
    format!(
        "10.{}.{}.{}",
        rng.below(32),
        rng.below(256),
        rng.between(1, 254)
    )
}

/// `SHA256:` fingerprint body: 32 random bytes in unpadded standard base64 (43 characters),
/// exactly as `ssh-keygen -l` and sshd print it.
fn fingerprint(rng: &mut Rng) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bytes = [0u8; 32];
    for chunk in bytes.chunks_mut(8) {
        chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
    }
    let mut out = String::with_capacity(43);
    for group in bytes.chunks(3) {
        let b = [
            group[0],
            group.get(1).copied().unwrap_or(0),
            group.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        let chars = group.len() + 1;
        for i in 0..chars {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_look_like_ssh_keygen() {
        let mut rng = Rng::new(3);
        for _ in 0..100 {
            let fp = fingerprint(&mut rng);
            assert_eq!(fp.len(), 43);
            assert!(
                fp.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
            );
            // 256 bits leave the last character's two low bits zero.
            let last = alphabet_index(fp.as_bytes()[42]);
            assert_eq!(last % 4, 0, "{fp}");
        }
    }

    fn alphabet_index(c: u8) -> u8 {
        match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            _ => 63,
        }
    }

    #[test]
    fn generated_addresses_parse() {
        let mut rng = Rng::new(5);
        for _ in 0..1_000 {
            for ip in [doc_v4(&mut rng), doc_v6(&mut rng), internal_v4(&mut rng)] {
                assert!(ip.parse::<std::net::IpAddr>().is_ok(), "{ip}");
            }
        }
    }

    #[test]
    fn ports_wrap_into_the_unprivileged_range() {
        assert_eq!(next_port(65_530, 10), 1_028);
        assert_eq!(next_port(1_000, 5), 1_005);
    }
}
