#!/usr/bin/env bash
# Real rsyslogd + sshd for the end-to-end tests, inside a private mount namespace.
#
# Usage (root; the test runs it this way):
#   unshare -m --propagation private bash tests/e2e/sshd-rsyslog.sh DIR PORT
#
# DIR is the test's own scratch directory (absolute). The script
#   - overlays /dev (upper dir DIR/ns/dev-upper) so that rsyslogd creates its own /dev/log
#     without touching the host's /dev, and mounts a private tmpfs on /run (/run/sshd, /run/utmp)
#     and DIR/ns/varlog on /var/log (wtmp, btmp, lastlog never touch the host's);
#   - starts rsyslogd (-n, imuxsock) writing `auth,authpriv.*` to DIR/log/auth.log in
#     RSYSLOG_FileFormat, and sshd (-D) on 127.0.0.1:PORT with its own host key, UsePAM yes,
#     PasswordAuthentication yes, LogLevel INFO, logging through syslog;
#   - writes `rsyslogd PID` and `sshd PID` lines to DIR/pids, then DIR/ready;
#   - on SIGTERM (or SIGINT) stops both, waits for them, and exits 0.
# All mounts live only in this namespace: they vanish when its last process exits, and they are
# never visible below DIR from the host's namespace. Nothing here deletes anything recursively.
set -euo pipefail

die() { echo "sshd-rsyslog.sh: $*" >&2; exit 1; }

[[ $# == 2 ]] || die "usage: unshare -m --propagation private $0 DIR PORT"
T=$1
PORT=$2
[[ $T == /* && -d $T ]] || die "DIR must be an existing absolute directory: $T"
[[ $PORT =~ ^[0-9]+$ ]] || die "PORT must be a number: $PORT"
[[ $(id -u) == 0 ]] || die "must run as root"
# Refuse to mount anything unless we really are in a mount namespace of our own: in the host's
# namespace the overlay would cover the host's /dev.
[[ $(readlink /proc/self/ns/mnt) != "$(readlink /proc/1/ns/mnt)" ]] ||
    die "not in a private mount namespace (run me under unshare -m --propagation private)"
[[ $(findmnt -n -o PROPAGATION /) == private ]] || die "/ is not private in this namespace"

PIDS=()
stop() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    exit 0
}
trap stop TERM INT

# --- private /dev, /run, /var/log ------------------------------------------------------------
NS=$T/ns
mkdir -p "$NS/dev-upper" "$NS/dev-work" "$NS/varlog" "$T/log"
mount -t overlay overlay -o "lowerdir=/dev,upperdir=$NS/dev-upper,workdir=$NS/dev-work" /dev
rm -f /dev/log # a whiteout in our overlay only
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /run/sshd && chmod 700 /run/sshd
: >/run/utmp && chmod 664 /run/utmp
mount --bind "$NS/varlog" /var/log
: >/var/log/wtmp; : >/var/log/btmp; : >/var/log/lastlog
chmod 664 /var/log/wtmp /var/log/lastlog; chmod 660 /var/log/btmp

# --- rsyslogd --------------------------------------------------------------------------------
mkdir -p "$T/rsyslog-work"
cat >"$T/rsyslog.conf" <<EOF
global(workDirectory="$T/rsyslog-work")
module(load="imuxsock")
auth,authpriv.* action(type="omfile" file="$T/log/auth.log" template="RSYSLOG_FileFormat")
EOF
rsyslogd -N1 -f "$T/rsyslog.conf" >/dev/null 2>&1 || die "rsyslog config invalid"
rsyslogd -n -f "$T/rsyslog.conf" -i "$T/rsyslogd.pid" &
PIDS+=($!)
echo "rsyslogd $!" >>"$T/pids"
for _ in $(seq 100); do [[ -S /dev/log ]] && break; sleep 0.05; done
[[ -S /dev/log ]] || die "rsyslogd did not create /dev/log"

# --- sshd ------------------------------------------------------------------------------------
ssh-keygen -q -t ed25519 -N '' -C '' -f "$T/ssh_host_ed25519_key"
cat >"$T/sshd.conf" <<EOF
Port $PORT
ListenAddress 127.0.0.1
HostKey $T/ssh_host_ed25519_key
PidFile $T/sshd.pid
SyslogFacility AUTH
LogLevel INFO
UsePAM yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
PubkeyAuthentication no
PermitRootLogin no
MaxStartups 100:30:200
PrintMotd no
X11Forwarding no
EOF
/usr/sbin/sshd -t -f "$T/sshd.conf" || die "sshd config invalid"
/usr/sbin/sshd -D -f "$T/sshd.conf" &
PIDS+=($!)
echo "sshd $!" >>"$T/pids"
for _ in $(seq 100); do
    ss -Hltn "sport = :$PORT" | grep -q . && break
    sleep 0.05
done
ss -Hltn "sport = :$PORT" | grep -q . || die "sshd does not listen on port $PORT"

: >"$T/ready"
# Returns when a child exits; a SIGTERM during the wait runs `stop` instead, which exits 0.
wait -n "${PIDS[@]}" || true
echo "sshd-rsyslog.sh: rsyslogd or sshd exited unexpectedly" >&2
for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
exit 1
