//! The labelled scenario: weeks of a small fleet's auth logs, benign activity with the traps
//! real fleets have, and injected attacks, every line labelled with the attack it belongs to.
//!
//! Nothing here is tuned to the detector: the rates are what a small company's hosts see (people
//! who mistype, move between home, office and phone, automation every few minutes, a backup
//! server logging in as root every hour, a monitoring script with a stale password, internet
//! scanners on the exposed hosts), and the attacks are what the issue lists. Each seed gives
//! another fleet: other people, addresses, hosts, times and attack shapes.

use std::fmt::Write as _;

/// A small, fast, seedable generator (splitmix64): the scenario must not depend on a crate's
/// version to stay reproducible from its seed.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// `0..n` (n > 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// `lo..=hi`.
    pub(crate) fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1).max(1) as u64) as i64
    }
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    /// An exponential gap with mean `mean` seconds (at least 1).
    pub(crate) fn gap(&mut self, mean: f64) -> i64 {
        let u = ((self.next() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        ((-u.ln() * mean) as i64).max(1)
    }
    /// A public-looking IPv4 address outside the fleet's own ranges.
    pub(crate) fn internet_ip(&mut self) -> String {
        loop {
            let a = self.range(1, 223);
            if [10, 127, 172, 192, 198, 203, 169, 100].contains(&a) {
                continue;
            }
            return format!(
                "{a}.{}.{}.{}",
                self.below(256),
                self.below(256),
                self.range(1, 254)
            );
        }
    }
}

/// What an injected attack is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    BruteForce,
    PasswordSpray,
    SlowBruteForce,
    SlowSpray,
    DistributedSpray,
    GuessThenLogin,
    SprayThenLogin,
    NewNetworkAtNight,
    SudoAttempts,
    Persistence,
    RootPassword,
    PasswordReset,
    LateralMovement,
    FirstHostLogin,
    FleetBruteForce,
    FleetSpray,
    AgentStopped,
}

impl Kind {
    pub(crate) const ALL: [Kind; 17] = [
        Kind::BruteForce,
        Kind::PasswordSpray,
        Kind::SlowBruteForce,
        Kind::SlowSpray,
        Kind::DistributedSpray,
        Kind::GuessThenLogin,
        Kind::SprayThenLogin,
        Kind::NewNetworkAtNight,
        Kind::SudoAttempts,
        Kind::Persistence,
        Kind::RootPassword,
        Kind::PasswordReset,
        Kind::LateralMovement,
        Kind::FirstHostLogin,
        Kind::FleetBruteForce,
        Kind::FleetSpray,
        Kind::AgentStopped,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::BruteForce => "brute force",
            Kind::PasswordSpray => "password spray",
            Kind::SlowBruteForce => "slow brute force",
            Kind::SlowSpray => "slow spray",
            Kind::DistributedSpray => "distributed spray (40-60 addresses)",
            Kind::GuessThenLogin => "guessed password, login, sudo/su",
            Kind::SprayThenLogin => "spray, then login from a new address",
            Kind::NewNetworkAtNight => "stolen password from a new network at night, sudo",
            Kind::SudoAttempts => "sudo refused / su failures",
            Kind::Persistence => "backdoor account in sudo group, its login",
            Kind::RootPassword => "root password login from the internet",
            Kind::PasswordReset => "root resets another account's password",
            Kind::LateralMovement => "stolen account on 3-5 hosts in minutes (fleet)",
            Kind::FirstHostLogin => "stolen account on a host it never used (fleet)",
            Kind::FleetBruteForce => "one source guessing across hosts (fleet)",
            Kind::FleetSpray => "one account guessed across hosts (fleet)",
            Kind::AgentStopped => "agent stopped after a login (fleet)",
        }
    }
}

/// One injected attack.
pub(crate) struct Attack {
    pub(crate) kind: Kind,
    /// Where it happened (for fleet rules and for reading a scenario).
    pub(crate) host: usize,
    /// Its first line's time.
    pub(crate) start: i64,
}

/// One log line of one host.
pub(crate) struct Line {
    pub(crate) host: usize,
    pub(crate) t: i64,
    pub(crate) text: String,
    /// The index of the attack it belongs to; `None` for benign lines.
    pub(crate) attack: Option<usize>,
}

/// A time an agent sent nothing, heartbeats included (its host's log still grows; the agent
/// ships the lines when it comes back).
pub(crate) struct Outage {
    pub(crate) host: usize,
    pub(crate) from: i64,
    pub(crate) to: i64,
    /// The attack that stopped it; `None` for a reboot.
    pub(crate) attack: Option<usize>,
}

pub(crate) struct Scenario {
    pub(crate) hosts: Vec<String>,
    /// Every line of every host, in time order.
    pub(crate) lines: Vec<Line>,
    pub(crate) attacks: Vec<Attack>,
    /// Agent outages, in no particular order.
    pub(crate) outages: Vec<Outage>,
}

/// Monday 2026-11-02 00:00 UTC.
const START: i64 = 1_793_577_600;
const INTERNET_FACING: [&str; 3] = ["web1", "web2", "bastion"];
const HOSTS: [&str; 8] = [
    "web1", "web2", "bastion", "app1", "app2", "db1", "db2", "ci",
];
const FIRST_NAMES: [&str; 24] = [
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
    "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "yara", "zoe",
    "liam", "mia", "noah",
];
/// What scanners and sprayers try.
const GUESSES: [&str; 24] = [
    "root", "admin", "test", "user", "ubuntu", "oracle", "postgres", "git", "guest", "ftpuser",
    "pi", "support", "deploy", "mysql", "www", "jenkins", "dev", "backup", "nagios", "hadoop",
    "ansible", "centos", "debian", "tomcat",
];
const BACKUP: &str = "10.0.0.5";
const MONITOR: &str = "10.0.0.9";
const CI: &str = "10.0.0.20";
const ANSIBLE: &str = "10.0.0.21";
const OFFICE_NAT: &str = "198.51.100.10";
/// The bastion's inside address: admins reach the inner hosts through it.
const JUMP: &str = "10.0.1.3";
/// The bastion's index in `HOSTS`.
const BASTION: usize = 2;
const VPN: &str = "198.51.100.200";

struct Person {
    name: String,
    admin: bool,
    /// The hosts they use.
    hosts: Vec<usize>,
    home: String,
    key: bool,
}

struct Gen {
    rng: Rng,
    lines: Vec<Line>,
    pid: u32,
    attack: Option<usize>,
    outages: Vec<Outage>,
}

impl Gen {
    fn line(&mut self, host: usize, t: i64, program: &str, msg: &str) {
        self.pid = self.pid.wrapping_add(self.rng.range(1, 40) as u32) % 4_000_000 + 100;
        let mut text = String::with_capacity(msg.len() + 64);
        let _ = write!(
            text,
            "{} {} {program}[{}]: {msg}",
            rfc3339(t),
            HOSTS[host],
            self.pid
        );
        self.lines.push(Line {
            host,
            t,
            text,
            attack: self.attack,
        });
    }

    fn port(&mut self) -> i64 {
        self.rng.range(32768, 60999)
    }

    fn accepted(&mut self, host: usize, t: i64, user: &str, ip: &str, key: bool) {
        let port = self.port();
        if key {
            self.line(
                host,
                t,
                "sshd",
                &format!(
                    "Accepted publickey for {user} from {ip} port {port} ssh2: ED25519 SHA256:k{}",
                    user.len()
                ),
            );
        } else {
            self.line(
                host,
                t,
                "sshd",
                &format!("Accepted password for {user} from {ip} port {port} ssh2"),
            );
        }
        let uid = if user == "root" { 0 } else { 1000 + user.len() };
        self.line(
            host,
            t,
            "sshd",
            &format!(
                "pam_unix(sshd:session): session opened for user {user}(uid={uid}) by (uid=0)"
            ),
        );
    }

    fn failed(&mut self, host: usize, t: i64, user: &str, ip: &str, valid: bool) {
        let port = self.port();
        if valid {
            self.line(host, t, "sshd", &format!("pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}  user={user}"));
            self.line(
                host,
                t,
                "sshd",
                &format!("Failed password for {user} from {ip} port {port} ssh2"),
            );
        } else {
            self.line(
                host,
                t,
                "sshd",
                &format!("Invalid user {user} from {ip} port {port}"),
            );
            self.line(
                host,
                t,
                "sshd",
                "pam_unix(sshd:auth): check pass; user unknown",
            );
            self.line(
                host,
                t,
                "sshd",
                &format!("Failed password for invalid user {user} from {ip} port {port} ssh2"),
            );
        }
    }

    fn sudo(&mut self, host: usize, t: i64, user: &str, command: &str) {
        self.line(
            host,
            t,
            "sudo",
            &format!("   {user} : TTY=pts/0 ; PWD=/home/{user} ; USER=root ; COMMAND={command}"),
        );
    }
}

/// Seconds to an RFC 3339 header time, as rsyslog writes it (agent-core's formatter).
fn rfc3339(t: i64) -> String {
    agent_core::Timestamp::from_secs(t).rfc3339().to_string()
}

/// The fleet's hosts, in the order lines name them.
pub(crate) fn hosts() -> Vec<String> {
    HOSTS.iter().map(|h| (*h).to_owned()).collect()
}

/// Builds `days` of the fleet with `per_kind` attacks of every kind.
pub(crate) fn build(seed: u64, days: i64, per_kind: usize) -> Scenario {
    let mut g = Gen {
        rng: Rng::new(seed),
        lines: Vec::new(),
        pid: 1000,
        attack: None,
        outages: Vec::new(),
    };
    let end = START + days * 86_400;
    let people = people(&mut g.rng);
    automation(&mut g, end);
    for p in &people {
        person(&mut g, p, end);
    }
    scanners(&mut g, end);
    admin_changes(&mut g, &people, end);
    maintenance(&mut g, &people, end);

    let mut attacks = Vec::new();
    for kind in Kind::ALL {
        for _ in 0..per_kind {
            // After the first three days (the detector's learning is one day); a first login
            // to a host after the collector's first-login learning (a week).
            let after = if kind == Kind::FirstHostLogin { 8 } else { 3 };
            let start = START + after * 86_400 + g.rng.range(0, (days - after - 1).max(1) * 86_400);
            let index = attacks.len();
            g.attack = Some(index);
            let host = inject(&mut g, kind, start, &people);
            g.attack = None;
            attacks.push(Attack { kind, host, start });
        }
    }
    g.lines.sort_by_key(|l| l.t);
    Scenario {
        hosts: hosts(),
        lines: g.lines,
        attacks,
        outages: g.outages,
    }
}

/// What makes a fleet look like lateral movement when it is not: admins who fix something on
/// several hosts in a few minutes (through the bastion, or directly from the office or the
/// VPN), and weekly patch reboots, each agent silent for the one to four minutes its host
/// takes to come back.
fn maintenance(g: &mut Gen, people: &[Person], end: i64) {
    for admin in people.iter().filter(|p| p.admin) {
        let mut day = START + g.rng.range(0, 2) * 86_400;
        while day < end {
            let weekday = (day - START) / 86_400 % 7;
            // About twice a week, on a working day, a round over 3 to 6 hosts.
            if weekday < 5 && g.rng.chance(0.4) {
                let mut t = day + g.rng.range(9, 17) * 3600 + g.rng.range(0, 3599);
                let via_bastion = g.rng.chance(0.5);
                let from = if g.rng.chance(0.7) { OFFICE_NAT } else { VPN };
                if via_bastion {
                    g.accepted(BASTION, t, &admin.name, from, admin.key);
                }
                let mut hosts: Vec<usize> = (0..HOSTS.len()).filter(|&h| h != BASTION).collect();
                for _ in 0..g.rng.range(3, 6) {
                    let host = hosts.remove(g.rng.below(hosts.len() as u64) as usize);
                    t += g.rng.range(30, 180);
                    let src = if via_bastion { JUMP } else { from };
                    g.accepted(host, t, &admin.name, src, admin.key);
                    let at = t + g.rng.range(5, 60);
                    g.sudo(host, at, &admin.name, "/usr/bin/systemctl restart nginx");
                }
            }
            day += 86_400;
        }
    }
    // Weekly patch night: each host reboots at 02:00-03:00 on Wednesday.
    for host in 0..HOSTS.len() {
        let mut day = START + 2 * 86_400;
        while day < end {
            let from = day + g.rng.range(7200, 10_800);
            g.outages.push(Outage {
                host,
                from,
                to: from + g.rng.range(60, 240),
                attack: None,
            });
            day += 7 * 86_400;
        }
    }
}

fn people(rng: &mut Rng) -> Vec<Person> {
    let n = rng.range(9, 14) as usize;
    let mut names: Vec<&str> = FIRST_NAMES.to_vec();
    (0..n)
        .map(|i| {
            let name = names
                .remove(rng.below(names.len() as u64) as usize)
                .to_owned();
            let hosts = (0..rng.range(2, 5))
                .map(|_| rng.below(HOSTS.len() as u64) as usize)
                .collect();
            Person {
                name,
                admin: i < 3,
                hosts,
                home: rng.internet_ip(),
                key: rng.chance(0.6),
            }
        })
        .collect()
}

/// Backups, monitoring, CI deploys and configuration management.
fn automation(g: &mut Gen, end: i64) {
    for (host, name) in HOSTS.iter().enumerate() {
        // Hourly root backup by key from the backup server.
        let minute = g.rng.range(0, 59) * 60;
        let mut t = START + minute;
        while t < end {
            let at = t + g.rng.range(0, 20);
            g.accepted(host, at, "root", BACKUP, true);
            t += 3600;
        }
        // Monitoring every 10 minutes by key; on two hosts its script still tries an old
        // password three times first.
        let stale = *name == "db1" || *name == "db2";
        let mut t = START + g.rng.range(0, 599);
        while t < end {
            if stale {
                for k in 0..3 {
                    g.failed(host, t + k, "nagios", MONITOR, true);
                }
            }
            g.accepted(host, t + 3, "nagios", MONITOR, true);
            t += 600;
        }
        // Configuration management every 30 minutes, with sudo.
        let mut t = START + g.rng.range(0, 1799);
        while t < end {
            g.accepted(host, t, "ansible", ANSIBLE, true);
            g.sudo(host, t + 2, "ansible", "/bin/sh -c echo BECOME-SUCCESS");
            t += 1800;
        }
        // CI deploys to the app and web hosts every 5 minutes, with sudo.
        if ["app1", "app2", "web1", "web2"].contains(name) {
            let mut t = START + g.rng.range(0, 299);
            while t < end {
                g.accepted(host, t, "deploy", CI, true);
                g.sudo(host, t + 1, "deploy", "/usr/bin/systemctl restart app");
                t += 300 + g.rng.range(-20, 20);
            }
        }
    }
}

/// The hosts but the bastion `user` has not logged in on before `t`.
fn unused_hosts(g: &Gen, user: &str, t: i64) -> Vec<usize> {
    let needle = format!(" for {user} from ");
    let used: Vec<usize> = g
        .lines
        .iter()
        .filter(|l| l.t < t && l.text.contains("Accepted ") && l.text.contains(&needle))
        .map(|l| l.host)
        .collect();
    (0..HOSTS.len())
        .filter(|h| *h != BASTION && !used.contains(h))
        .collect()
}

/// A person's logins: office hours mostly, from the office NAT, home, VPN, sometimes a phone or
/// a hotel; typos; sudo for admins; the odd sudo mistake.
fn person(g: &mut Gen, p: &Person, end: i64) {
    let mut home = p.home.clone();
    let mut day = START;
    while day < end {
        let weekday = (day - START) / 86_400 % 7; // 0 = Monday
        // Dynamic home addresses: often in the ISP's same /24, sometimes a new network.
        if g.rng.chance(0.05) {
            home = if g.rng.chance(0.6) {
                let base: Vec<&str> = home.rsplitn(2, '.').collect();
                format!("{}.{}", base[1], g.rng.range(1, 254))
            } else {
                g.rng.internet_ip()
            };
        }
        let logins = if weekday < 5 {
            g.rng.range(1, 5)
        } else if g.rng.chance(0.15) {
            1
        } else {
            0
        };
        for _ in 0..logins {
            let evening = weekday >= 5 || g.rng.chance(0.08);
            let hour = if evening {
                g.rng.range(19, 23)
            } else {
                g.rng.range(8, 18)
            };
            let t = day + hour * 3600 + g.rng.range(0, 3599);
            let ip = if g.rng.chance(0.01) {
                g.rng.internet_ip() // hotel, phone, a friend's place
            } else if !evening && g.rng.chance(0.7) {
                OFFICE_NAT.to_owned()
            } else if g.rng.chance(0.3) {
                VPN.to_owned()
            } else {
                home.clone()
            };
            let host = *g.rng.pick(&p.hosts);
            let key = p.key && !g.rng.chance(0.05);
            let mut at = t;
            if !key {
                let typos = if g.rng.chance(0.06) {
                    1
                } else if g.rng.chance(0.015) {
                    2
                } else if g.rng.chance(0.003) {
                    3
                } else {
                    0
                };
                for _ in 0..typos {
                    g.failed(host, at, &p.name, &ip, true);
                    at += g.rng.range(3, 12);
                }
            }
            g.accepted(host, at, &p.name, &ip, key);
            if p.admin && g.rng.chance(0.5) {
                let s = at + g.rng.range(20, 1500);
                if g.rng.chance(0.03) {
                    g.line(host, s, "sudo", &format!("   {} : 1 incorrect password attempt ; TTY=pts/0 ; PWD=/home/{} ; USER=root ; COMMAND=/usr/bin/apt upgrade", p.name, p.name));
                }
                g.sudo(host, s + 5, &p.name, "/usr/bin/apt upgrade");
            } else if !p.admin && g.rng.chance(0.004) {
                g.line(host, at + 60, "sudo", &format!("   {} : user NOT in sudoers ; TTY=pts/0 ; PWD=/home/{} ; USER=root ; COMMAND=/usr/bin/apt install htop", p.name, p.name));
            }
            if g.rng.chance(0.003) {
                g.line(
                    host,
                    at + 120,
                    "passwd",
                    &format!(
                        "pam_unix(passwd:chauthtok): password changed for {}",
                        p.name
                    ),
                );
            }
        }
        day += 86_400;
    }
}

/// Internet scanners on the exposed hosts: short visits guessing common names, some addresses
/// coming back during the day, now and then a botnet sweep of many addresses.
fn scanners(g: &mut Gen, end: i64) {
    let pool: Vec<String> = (0..300).map(|_| g.rng.internet_ip()).collect();
    for (host, name) in HOSTS.iter().enumerate() {
        if !INTERNET_FACING.contains(name) {
            continue;
        }
        let per_day = g.rng.range(30, 90) as f64;
        let mut t = START + g.rng.gap(86_400.0 / per_day);
        while t < end {
            let ip = if g.rng.chance(0.3) {
                g.rng.pick(&pool).clone()
            } else {
                g.rng.internet_ip()
            };
            let mut at = t;
            for _ in 0..g.rng.range(1, 6) {
                let user = if g.rng.chance(0.5) {
                    "root"
                } else {
                    *g.rng.pick(&GUESSES)
                };
                g.failed(host, at, user, &ip, user == "root");
                at += g.rng.range(1, 8);
            }
            t += g.rng.gap(86_400.0 / per_day);
        }
    }
}

/// New colleagues: an admin creates an account, the person logs in the next day; rarely an
/// admin adds someone to docker.
fn admin_changes(g: &mut Gen, people: &[Person], end: i64) {
    let mut day = START + g.rng.range(2, 9) * 86_400;
    let mut n = 0;
    while day < end {
        let admin = &people[g.rng.below(3) as usize];
        let host = *g.rng.pick(&admin.hosts);
        let t = day + g.rng.range(9, 16) * 3600;
        let name = format!("new{n}");
        n += 1;
        g.accepted(host, t, &admin.name, OFFICE_NAT, admin.key);
        g.sudo(
            host,
            t + 30,
            &admin.name,
            &format!("/usr/sbin/useradd -m {name}"),
        );
        g.line(host, t + 31, "useradd", &format!("new user: name={name}, UID={}, GID={}, home=/home/{name}, shell=/bin/bash, from=/dev/pts/0", 2000 + n, 2000 + n));
        g.line(
            host,
            t + 40,
            "usermod",
            &format!("add '{name}' to group 'developers'"),
        );
        let next_day = t + 86_400 + g.rng.range(0, 7200);
        g.accepted(host, next_day, &name, OFFICE_NAT, false);
        if g.rng.chance(0.3) {
            g.line(
                host,
                t + 90_000,
                "gpasswd",
                &format!("user {} added by root to group docker", admin.name),
            );
        }
        day += g.rng.range(6, 12) * 86_400;
    }
}

/// A sprayer's list of `n` distinct names, each one of the company's people (harvested) with
/// probability `harvested` while they last, else a common guess; and whether the account exists.
fn spray_list(g: &mut Gen, people: &[Person], harvested: f64, n: usize) -> Vec<(String, bool)> {
    let mut names: Vec<&str> = people.iter().map(|p| p.name.as_str()).collect();
    let mut guesses: Vec<&str> = GUESSES.to_vec();
    let mut out = Vec::new();
    while out.len() < n && !(names.is_empty() && guesses.is_empty()) {
        let from_people = !names.is_empty() && (guesses.is_empty() || g.rng.chance(harvested));
        let list = if from_people {
            &mut names
        } else {
            &mut guesses
        };
        let name = list.remove(g.rng.below(list.len() as u64) as usize);
        out.push((name.to_owned(), from_people || name == "root"));
    }
    out
}

/// Writes one attack's lines; returns its host.
fn inject(g: &mut Gen, kind: Kind, start: i64, people: &[Person]) -> usize {
    let victim = &people[g.rng.below(people.len() as u64) as usize];
    let admin = &people[g.rng.below(3) as usize];
    let exposed = g.rng.below(3) as usize;
    let attacker = g.rng.internet_ip();
    match kind {
        Kind::BruteForce => {
            let user = if g.rng.chance(0.7) {
                "root"
            } else {
                victim.name.as_str()
            };
            let mut t = start;
            for _ in 0..g.rng.range(30, 120) {
                g.failed(exposed, t, user, &attacker, true);
                t += g.rng.range(1, 4);
            }
            exposed
        }
        Kind::PasswordSpray => {
            // Harvested names (the company's people) mixed with common ones.
            let mut t = start;
            let n = g.rng.range(8, 20) as usize;
            for (user, valid) in spray_list(g, people, 0.6, n) {
                g.failed(exposed, t, &user, &attacker, valid);
                t += g.rng.range(5, 40);
            }
            exposed
        }
        Kind::SlowBruteForce => {
            let user = if g.rng.chance(0.5) {
                "root"
            } else {
                victim.name.as_str()
            };
            let hours = g.rng.range(3, 8);
            let mut t = start;
            while t < start + hours * 3600 {
                g.failed(exposed, t, user, &attacker, true);
                t += g.rng.range(60, 180);
            }
            exposed
        }
        Kind::SlowSpray => {
            let mut t = start;
            // A targeted, stealthy spray: mostly harvested names.
            let n = g.rng.range(15, 40) as usize;
            for (user, valid) in spray_list(g, people, 0.8, n) {
                g.failed(exposed, t, &user, &attacker, valid);
                t += g.rng.range(480, 1200);
            }
            exposed
        }
        Kind::DistributedSpray => {
            let names: Vec<String> = (0..25)
                .map(|k| {
                    if k < 5 {
                        people[k % people.len()].name.clone()
                    } else {
                        (*g.rng.pick(&GUESSES)).to_owned()
                    }
                })
                .collect();
            let span = g.rng.range(20, 50) * 60;
            for _ in 0..g.rng.range(40, 60) {
                let ip = g.rng.internet_ip();
                let t = start + g.rng.range(0, span);
                for k in 0..g.rng.range(1, 3) {
                    let user = g.rng.pick(&names).clone();
                    g.failed(exposed, t + k * 4, &user, &ip, true);
                }
            }
            exposed
        }
        Kind::GuessThenLogin => {
            let host = *g.rng.pick(&victim.hosts);
            let mut t = start;
            for _ in 0..g.rng.range(5, 15) {
                g.failed(host, t, &victim.name, &attacker, true);
                t += g.rng.range(2, 10);
            }
            g.accepted(host, t, &victim.name, &attacker, false);
            let s = t + g.rng.range(60, 600);
            if victim.admin {
                g.sudo(host, s, &victim.name, "/bin/bash");
            } else {
                g.line(
                    host,
                    s,
                    "su",
                    &format!("(to root) {} on pts/0", victim.name),
                );
            }
            host
        }
        Kind::SprayThenLogin => {
            let host = *g.rng.pick(&victim.hosts);
            let mut t = start;
            for _ in 0..g.rng.range(5, 10) {
                let ip = g.rng.internet_ip();
                g.failed(host, t, &victim.name, &ip, true);
                t += g.rng.range(20, 90);
            }
            let at = t + g.rng.range(60, 600);
            g.accepted(host, at, &victim.name, &attacker, false);
            host
        }
        Kind::NewNetworkAtNight => {
            let host = *g.rng.pick(&admin.hosts);
            let night = start - start.rem_euclid(86_400) + g.rng.range(1800, 16_200);
            g.accepted(host, night, &admin.name, &attacker, false);
            let at = night + g.rng.range(60, 900);
            g.sudo(host, at, &admin.name, "/bin/bash");
            host
        }
        Kind::SudoAttempts => {
            let user = &people[3 + g.rng.below((people.len() - 3) as u64) as usize];
            let host = *g.rng.pick(&user.hosts);
            g.accepted(host, start, &user.name, OFFICE_NAT, user.key);
            if g.rng.chance(0.5) {
                g.line(host, start + 40, "sudo", &format!("   {} : user NOT in sudoers ; TTY=pts/0 ; PWD=/home/{} ; USER=root ; COMMAND=/bin/bash", user.name, user.name));
            } else {
                for k in 0..3 {
                    g.line(
                        host,
                        start + 40 + k * 15,
                        "su",
                        &format!("FAILED SU (to root) {} on pts/0", user.name),
                    );
                }
            }
            host
        }
        Kind::Persistence => {
            let host = *g.rng.pick(&admin.hosts);
            let name = format!("{}x", g.rng.pick(&GUESSES));
            g.accepted(host, start, &admin.name, &admin.home, admin.key);
            g.sudo(host, start + 20, &admin.name, "/bin/bash");
            g.line(host, start + 60, "useradd", &format!("new user: name={name}, UID=1500, GID=1500, home=/home/{name}, shell=/bin/bash, from=/dev/pts/0"));
            g.line(
                host,
                start + 70,
                "usermod",
                &format!("add '{name}' to group 'sudo'"),
            );
            g.line(
                host,
                start + 70,
                "usermod",
                &format!("add '{name}' to shadow group 'sudo'"),
            );
            let at = start + g.rng.range(3600, 80_000);
            g.accepted(host, at, &name, &attacker, false);
            host
        }
        Kind::RootPassword => {
            let mut t = start;
            for _ in 0..g.rng.range(0, 3) {
                g.failed(exposed, t, "root", &attacker, true);
                t += g.rng.range(2, 10);
            }
            g.accepted(exposed, t, "root", &attacker, false);
            exposed
        }
        Kind::LateralMovement => {
            // In through the bastion with a stolen password, then on to other hosts from it.
            g.accepted(BASTION, start, &victim.name, &attacker, false);
            let mut t = start;
            let mut hosts: Vec<usize> = (0..HOSTS.len()).filter(|&h| h != BASTION).collect();
            for _ in 0..g.rng.range(2, 4) {
                let host = hosts.remove(g.rng.below(hosts.len() as u64) as usize);
                t += g.rng.range(40, 200);
                g.accepted(host, t, &victim.name, JUMP, false);
            }
            BASTION
        }
        Kind::FirstHostLogin => {
            // One step, slowly, to a host the account never logged in on (admins' rounds reach
            // most hosts: the victim is the first person, from a random one on, who has one).
            let first = g.rng.below(people.len() as u64) as usize;
            let (name, hosts) = (0..people.len())
                .map(|i| &people[(first + i) % people.len()])
                .map(|p| (p.name.as_str(), unused_hosts(g, &p.name, start)))
                .find(|(_, h)| !h.is_empty())
                .unwrap_or((victim.name.as_str(), vec![0]));
            let host = hosts[g.rng.below(hosts.len() as u64) as usize];
            g.accepted(host, start, name, JUMP, false);
            host
        }
        Kind::FleetBruteForce => {
            // A few guesses on each exposed host, staying under each host's own threshold.
            let mut t = start;
            for host in 0..INTERNET_FACING.len() {
                for _ in 0..g.rng.range(2, 3) {
                    g.failed(host, t, victim.name.as_str(), &attacker, true);
                    t += g.rng.range(20, 120);
                }
                t += g.rng.range(60, 600);
            }
            0
        }
        Kind::FleetSpray => {
            // One account, a guess or two on each exposed host, each from another address.
            let mut t = start;
            for host in 0..INTERNET_FACING.len() {
                let ip = g.rng.internet_ip();
                for _ in 0..g.rng.range(1, 2) {
                    g.failed(host, t, &victim.name, &ip, true);
                    t += g.rng.range(60, 400);
                }
            }
            0
        }
        Kind::AgentStopped => {
            let host = *g.rng.pick(&admin.hosts);
            g.accepted(host, start, &admin.name, &attacker, false);
            let at = start + g.rng.range(30, 300);
            g.sudo(host, at, &admin.name, "/usr/bin/systemctl stop authtrail");
            g.outages.push(Outage {
                host,
                from: at + 1,
                to: at + g.rng.range(3600, 6 * 3600),
                attack: g.attack,
            });
            host
        }
        Kind::PasswordReset => {
            let host = *g.rng.pick(&admin.hosts);
            g.accepted(host, start, &admin.name, &admin.home, admin.key);
            g.sudo(host, start + 30, &admin.name, "/usr/sbin/chpasswd");
            g.line(
                host,
                start + 31,
                "chpasswd",
                &format!(
                    "pam_unix(chpasswd:chauthtok): password changed for {}",
                    victim.name
                ),
            );
            host
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_of_known_times() {
        // A Monday: the generator's weekdays count from it.
        assert!(rfc3339(START).starts_with("2026-11-02T00:00:00"));
    }

    #[test]
    fn a_seed_is_one_scenario() {
        let (a, b) = (build(7, 5, 1), build(7, 5, 1));
        assert_eq!(a.lines.len(), b.lines.len());
        assert!(a.lines.iter().zip(&b.lines).all(|(x, y)| x.text == y.text));
        assert_ne!(build(8, 5, 1).lines.len(), a.lines.len());
        assert_eq!(a.attacks.len(), Kind::ALL.len());
    }
}
