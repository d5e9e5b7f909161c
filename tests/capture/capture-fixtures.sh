#!/usr/bin/env bash
# Capture real auth-log lines from real programs (OpenSSH sshd, sudo, util-linux su,
# login, shadow-utils account tools) through a real rsyslogd (and, if present, a
# hand-started systemd-journald) and write them as test fixtures into
# agent-core/testdata/.
#
# Usage (as root, Debian 12):   bash tests/capture/capture-fixtures.sh [--keep-tmp]
#
# Needs: openssh-server openssh-client sudo rsyslog util-linux login passwd expect python3
#        (optional: systemd, for the journald sample).
#
# Isolation: the whole capture runs in a private mount namespace (unshare -m) with
#   - /dev  overlaid (overlayfs, upper dir in the temp dir) so that our rsyslogd creates its own
#           /dev/log without touching the host's /dev,
#   - /run, /var/log, /var/lib/sudo on private tmpfs/dirs (utmp, wtmp, btmp, lastlog, sudo
#           timestamps and lecture files never touch the host),
# Only the test users/groups (at* names) are created in the real /etc/passwd, /etc/group; they
# are deleted at the end (the deletion is part of the capture) and again by the exit trap if
# something failed. Only loopback addresses (127.0.0.0/8, ::1) are used. Only PIDs started by
# this script are killed.
set -euo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
REPO=$(cd "$(dirname "$SELF")/../.." && pwd)
OUT=${AT_CAPTURE_OUT:-$REPO/agent-core/testdata}
PORT_BASE=${AT_CAPTURE_PORT_BASE:-22270}
FIXHOST=testhost
USERS=(atalice atbob atcarol atdave atdave2 ateve)
GROUPS_=(atgrp atgrp2 atgrp3 atdave atdave2 ateve)
PW_ALICE='Alice-pw-1'
PW_BOB='Bob-pw-2'
PW_CAROL='Carol-pw-3'
PW_DAVE='Dave-pw-4'

log() { printf '[capture %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ----------------------------------------------------------------------------------------------
# outer: checks, lock, re-exec in a private mount namespace
# ----------------------------------------------------------------------------------------------
outer() {
    [[ $(id -u) == 0 ]] || die "must run as root"
    local missing=()
    for b in /usr/sbin/sshd ssh ssh-keygen sudo su login rsyslogd expect python3 setpriv script \
             useradd usermod userdel groupadd groupdel gpasswd passwd chpasswd chage chfn unshare; do
        command -v "$b" >/dev/null 2>&1 || missing+=("$b")
    done
    ((${#missing[@]} == 0)) || die "missing programs: ${missing[*]} (apt-get install openssh-server openssh-client sudo rsyslog util-linux login passwd expect python3)"
    exec 9>/tmp/authtrail-capture-fixtures.lock
    flock -n 9 || die "another capture-fixtures.sh run holds /tmp/authtrail-capture-fixtures.lock"
    AT_HOSTNAME=$(hostname) AT_CAPTURE_INNER=1 exec unshare -m --propagation private bash "$SELF" __inner "$@"
}

# ----------------------------------------------------------------------------------------------
# helpers used inside the namespace
# ----------------------------------------------------------------------------------------------
T=""
KEEP_TMP=0

track_pid() { echo "$1 $2" >>"$T/pids"; }   # pid comm

kill_tracked() {
    [[ -f $T/pids ]] || return 0
    local pid comm
    while read -r pid comm; do
        if [[ -e /proc/$pid ]] && [[ $(cat /proc/$pid/comm 2>/dev/null) == "$comm"* ]]; then
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done <"$T/pids"
    local i
    for i in $(seq 50); do
        local alive=0
        while read -r pid comm; do
            if [[ -e /proc/$pid ]] && ! grep -q '^State:.*Z' /proc/$pid/status 2>/dev/null; then alive=1; fi
        done <"$T/pids"
        ((alive)) || break
        sleep 0.1
    done
    : >"$T/pids"
}

delete_test_accounts() {
    local u g
    for u in "${USERS[@]}"; do
        if getent passwd "$u" >/dev/null; then userdel -r "$u" >/dev/null 2>&1 || userdel -f -r "$u" >/dev/null 2>&1 || true; fi
    done
    for g in "${GROUPS_[@]}"; do
        if getent group "$g" >/dev/null; then groupdel "$g" >/dev/null 2>&1 || true; fi
    done
}

cleanup() {
    local rc=$?
    set +e
    kill_tracked
    delete_test_accounts
    if [[ -n $T && -d $T ]] && mountpoint -q "$T/dev-lower" 2>/dev/null; then
        umount -R -l "$T/dev-lower" 2>/dev/null
    fi
    if ((KEEP_TMP)); then
        log "temp dir kept: $T"
    elif [[ -n $T && -d $T && $T == /tmp/authtrail-capture.* ]]; then
        umount -l /dev/pts /dev/shm 2>/dev/null; umount -l /dev /run /var/log /var/lib/sudo 2>/dev/null
        # never delete through a mount point: refuse if anything is still mounted below $T
        if findmnt -rn -o TARGET | grep -q "^$T/"; then
            log "something is still mounted below $T; not deleting it"
        else
            rm -rf --one-file-system "$T"
        fi
    fi
    exit $rc
}

wait_port() { # port
    local i
    for i in $(seq 100); do
        if ss -Hltn "sport = :$1" | grep -q .; then return 0; fi
        sleep 0.1
    done
    die "nothing listens on port $1"
}

# record a scenario (for the scenario index in testdata)
SCEN() { # family source user description...
    local fam=$1 src=$2 user=$3; shift 3
    printf '%s\t%s\t%s\t%s\t%s\n' "$(date -u +%Y-%m-%dT%H:%M:%S.%6N+00:00)" "$fam" "$src" "$user" "$*" >>"$T/scenarios.tsv"
}

SSH_COMMON=(-F /dev/null -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
            -o LogLevel=QUIET -o ConnectTimeout=10 -o ServerAliveInterval=0)

# sshpw PORT SRC USER PASSWORDS(comma separated, used in order, last repeats) PROMPTS [extra ssh args] -- [remote cmd]
sshpw() {
    local port=$1 src=$2 user=$3 pws=$4 prompts=$5; shift 5
    local seq; seq=$(mktemp "$T/pwseq.XXXXXX")
    tr ',' '\n' <<<"$pws" >"$seq"
    local host=127.0.0.1 bind=(-b "$src")
    [[ $src == ::1 ]] && host=::1
    local extra=()
    while (($#)) && [[ $1 != -- ]]; do extra+=("$1"); shift; done
    (($#)) && shift
    AT_PW_SEQ=$seq SSH_ASKPASS="$T/askpass.sh" SSH_ASKPASS_REQUIRE=force SSH_AUTH_SOCK= \
        timeout 40 setsid -w ssh "${SSH_COMMON[@]}" "${bind[@]}" -p "$port" -l "$user" "${extra[@]}" \
        -o PubkeyAuthentication=no -o NumberOfPasswordPrompts="$prompts" -o PreferredAuthentications=password \
        "$host" "$@" </dev/null >>"$T/client.out" 2>&1 || true
}

# sshkey PORT SRC USER KEYFILE(S, comma separated) [extra ssh args] -- [remote cmd]
sshkey() {
    local port=$1 src=$2 user=$3 keys=$4; shift 4
    local host=127.0.0.1 bind=(-b "$src")
    [[ $src == ::1 ]] && host=::1
    local ids=() k
    IFS=, read -ra k <<<"$keys"
    for key in "${k[@]}"; do ids+=(-i "$key"); done
    local extra=()
    while (($#)) && [[ $1 != -- ]]; do extra+=("$1"); shift; done
    (($#)) && shift
    SSH_AUTH_SOCK= timeout 40 setsid -w ssh "${SSH_COMMON[@]}" "${bind[@]}" -p "$port" -l "$user" \
        -o IdentitiesOnly=yes -o PasswordAuthentication=no -o KbdInteractiveAuthentication=no \
        -o BatchMode=yes "${ids[@]}" "${extra[@]}" "$host" "$@" </dev/null >>"$T/client.out" 2>&1 || true
}

# rawtcp SRC PORT MODE: close-now | close-after-banner | garbage
rawtcp() {
    python3 - "$@" <<'EOF' || true
import socket, sys, time
src, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.socket()
s.bind((src, 0))
s.settimeout(10)
s.connect(("127.0.0.1", port))
if mode == "close-now":
    s.close()
elif mode == "close-after-banner":
    s.recv(256)
    s.close()
elif mode == "garbage":
    s.recv(256)
    s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    time.sleep(1)
    s.close()
EOF
}

# talk PASSWORDS cmd...: run cmd on a fresh pty (expect), answer password prompts in order
talk() { timeout 60 "$T/converse.exp" "$@" >>"$T/client.out" 2>&1 || true; }

# as USER cmd...: run as USER (no PAM, no log line of its own)
as() { local u=$1; shift; setpriv --reuid="$u" --regid="$u" --init-groups --reset-env "$@"; }

write_sshd_config() { # name port loglevel extra-lines...
    local name=$1 port=$2 level=$3; shift 3
    {
        echo "# authtrail capture: $name"
        echo "Port $port"
        echo "ListenAddress 127.0.0.1"
        ((HAVE_V6)) && echo "ListenAddress ::1"
        echo "HostKey $T/ssh_host_ed25519_key"
        echo "HostKey $T/ssh_host_rsa_key"
        echo "PidFile $T/sshd-$name.pid"
        echo "SyslogFacility AUTH"
        echo "LogLevel $level"
        echo "UsePAM yes"
        echo "PubkeyAuthentication yes"
        echo "AuthorizedKeysFile .ssh/authorized_keys /run/authtrail-keys/%u"
        echo "PrintMotd no"
        echo "X11Forwarding no"
        echo "AcceptEnv LANG LC_*"
        echo "Subsystem sftp /usr/lib/openssh/sftp-server"
        printf '%s\n' "$@"
    } >"$T/sshd-$name.conf"
    /usr/sbin/sshd -t -f "$T/sshd-$name.conf" || die "sshd config $name invalid"
}

start_sshd() { # name port
    /usr/sbin/sshd -D -f "$T/sshd-$1.conf" &
    track_pid $! sshd
    wait_port "$2"
}

# ----------------------------------------------------------------------------------------------
# scenario groups (run in parallel; each uses its own source addresses)
# ----------------------------------------------------------------------------------------------
P_INFO=$((PORT_BASE + 1)); P_VERB=$((PORT_BASE + 2)); P_KBD=$((PORT_BASE + 3)); P_JD=$((PORT_BASE + 4))

group_sshd_info() {
    local p=$P_INFO
    SCEN sshd 127.0.0.2 atalice "INFO: password success, command without pty"
    sshpw $p 127.0.0.2 atalice "$PW_ALICE" 1 -- id
    SCEN sshd 127.0.0.3 atalice "INFO: password success, interactive pty (ssh -tt ... exit)"
    sshpw $p 127.0.0.3 atalice "$PW_ALICE" 1 -tt -- exit
    SCEN sshd 127.0.0.4 atalice "INFO: 3 wrong passwords in one connection, MaxAuthTries 3"
    sshpw $p 127.0.0.4 atalice "wrong1,wrong2,wrong3,wrong4" 6 -- id
    SCEN sshd 127.0.0.5 atalice "INFO: one wrong password then the right one"
    sshpw $p 127.0.0.5 atalice "wrong1,$PW_ALICE" 3 -- id
    SCEN sshd 127.0.0.6 nosuchuser "INFO: invalid user, 2 wrong passwords, client gives up"
    sshpw $p 127.0.0.6 nosuchuser "wrong1,wrong2" 2 -- id
    SCEN sshd 127.0.0.7 "test from 10.10.1.2 port 55555 ssh2" "INFO: invalid user name with spaces/from/port, 1 password"
    sshpw $p 127.0.0.7 "test from 10.10.1.2 port 55555 ssh2" "wrong1" 1 -- id
    SCEN sshd 127.0.0.8 atalice "INFO: publickey ED25519 success, pty"
    sshkey $p 127.0.0.8 atalice "$T/id_ed25519" -tt -- exit
    SCEN sshd 127.0.0.9 atalice "INFO: publickey RSA success, command"
    sshkey $p 127.0.0.9 atalice "$T/id_rsa" -- id
    SCEN sshd 127.0.0.10 atalice "INFO: BatchMode, no acceptable key (client closes while authenticating)"
    sshkey $p 127.0.0.10 atalice "$T/id_wrong_ed25519" -- id
    SCEN sshd 127.0.0.11 nosuchuser "INFO: invalid user, BatchMode, no acceptable key"
    sshkey $p 127.0.0.11 nosuchuser "$T/id_wrong_ed25519" -- id
    SCEN sshd 127.0.0.12 atcarol "INFO: user in DenyUsers, right password"
    sshpw $p 127.0.0.12 atcarol "$PW_CAROL" 1 -- id
    SCEN sshd 127.0.0.13 root "INFO: root with PermitRootLogin no, 1 password"
    sshpw $p 127.0.0.13 root "wrong-root-pw" 1 -- id
    SCEN sshd 127.0.0.38 root "INFO: root with PermitRootLogin no, authorized ED25519 key"
    sshkey $p 127.0.0.38 root "$T/id_ed25519" -- id
    SCEN sshd 127.0.0.19 atalice "INFO: default client method order (keyboard-interactive, then password): 2 wrong, then right"
    AT_PW_SEQ=$(mktemp "$T/pwseq.XXXXXX"); printf 'wrong1\nwrong2\n%s\n' "$PW_ALICE" >"$AT_PW_SEQ"
    AT_PW_SEQ=$AT_PW_SEQ SSH_ASKPASS="$T/askpass.sh" SSH_ASKPASS_REQUIRE=force SSH_AUTH_SOCK= \
        timeout 40 setsid -w ssh "${SSH_COMMON[@]}" -b 127.0.0.19 -p $p -l atalice -o PubkeyAuthentication=no \
        127.0.0.1 id </dev/null >>"$T/client.out" 2>&1 || true
    SCEN sshd 127.0.0.20 atalice "INFO: askpass cancelled (exits 1) at the password prompt"
    AT_PW_CANCEL=1 SSH_ASKPASS="$T/askpass.sh" SSH_ASKPASS_REQUIRE=force SSH_AUTH_SOCK= \
        timeout 40 setsid -w ssh "${SSH_COMMON[@]}" -b 127.0.0.20 -p $p -l atalice -o PubkeyAuthentication=no \
        -o PreferredAuthentications=password 127.0.0.1 id </dev/null >>"$T/client.out" 2>&1 || true
    SCEN sshd 127.0.0.14 atalice "INFO: client killed (timeout 3) while at the password prompt"
    timeout 3 env AT_PW_HANG=1 SSH_ASKPASS="$T/askpass.sh" SSH_ASKPASS_REQUIRE=force \
        ssh "${SSH_COMMON[@]}" -b 127.0.0.14 -p $p -l atalice -o PubkeyAuthentication=no 127.0.0.1 id \
        </dev/null >>"$T/client.out" 2>&1 || true
    SCEN sshd 127.0.0.15 - "INFO: TCP connect, close before banner"
    rawtcp 127.0.0.15 $p close-now
    SCEN sshd 127.0.0.16 - "INFO: TCP connect, read banner, close"
    rawtcp 127.0.0.16 $p close-after-banner
    SCEN sshd 127.0.0.17 - "INFO: HTTP request instead of SSH banner"
    rawtcp 127.0.0.17 $p garbage
    SCEN sshd 127.0.0.18 atbob "INFO: atbob password success, pty, runs sudo inside (not in sudoers)"
    sshpw $p 127.0.0.18 atbob "$PW_BOB" 1 -tt -- 'echo x | sudo -S -k true; exit 0'
    if ((HAVE_V6)); then
        SCEN sshd ::1 atalice "INFO: IPv6 password success, pty"
        sshpw $p ::1 atalice "$PW_ALICE" 1 -tt -- exit
        SCEN sshd ::1 atalice "INFO: IPv6 one wrong password, client gives up"
        sshpw $p ::1 atalice "wrong1" 1 -- id
        SCEN sshd ::1 nosuchuser "INFO: IPv6 invalid user, 1 wrong password"
        sshpw $p ::1 nosuchuser "wrong1" 1 -- id
    fi
}

group_sshd_verbose() {
    local p=$P_VERB
    SCEN sshd 127.0.0.21 atalice "VERBOSE: password success, command"
    sshpw $p 127.0.0.21 atalice "$PW_ALICE" 1 -- id
    SCEN sshd 127.0.0.22 atalice "VERBOSE: publickey ED25519 success, pty"
    sshkey $p 127.0.0.22 atalice "$T/id_ed25519" -tt -- exit
    SCEN sshd 127.0.0.23 atalice "VERBOSE: unknown key only (BatchMode): Failed publickey, client closes"
    sshkey $p 127.0.0.23 atalice "$T/id_wrong_ed25519" -- id
    SCEN sshd 127.0.0.24 atalice "VERBOSE: unknown key, then known RSA key: Failed publickey then Accepted publickey"
    sshkey $p 127.0.0.24 atalice "$T/id_wrong_ed25519,$T/id_rsa" -- id
    SCEN sshd 127.0.0.25 nosuchuser "VERBOSE: invalid user offering a key"
    sshkey $p 127.0.0.25 nosuchuser "$T/id_ed25519" -- id
    SCEN sshd 127.0.0.26 atalice "VERBOSE: unknown key, then 2 wrong passwords, client gives up"
    AT_PW_SEQ=$(mktemp "$T/pwseq.XXXXXX"); printf 'wrong1\nwrong2\n' >"$AT_PW_SEQ"
    AT_PW_SEQ=$AT_PW_SEQ SSH_ASKPASS="$T/askpass.sh" SSH_ASKPASS_REQUIRE=force SSH_AUTH_SOCK= \
        timeout 40 setsid -w ssh "${SSH_COMMON[@]}" -b 127.0.0.26 -p $p -l atalice -o IdentitiesOnly=yes \
        -i "$T/id_wrong_ed25519" -o NumberOfPasswordPrompts=2 -o PreferredAuthentications=publickey,password \
        127.0.0.1 id </dev/null >>"$T/client.out" 2>&1 || true
    SCEN sshd 127.0.0.27 - "VERBOSE: TCP connect, read banner, close"
    rawtcp 127.0.0.27 $p close-after-banner
    SCEN sshd 127.0.0.28 atcarol "VERBOSE: user in DenyUsers, right password"
    sshpw $p 127.0.0.28 atcarol "$PW_CAROL" 1 -- id
    SCEN sshd 127.0.0.29 atalice "VERBOSE: 7 wrong passwords, default MaxAuthTries 6"
    sshpw $p 127.0.0.29 atalice "w1,w2,w3,w4,w5,w6,w7" 8 -- id
    if ((HAVE_V6)); then
        SCEN sshd ::1 atalice "VERBOSE: IPv6 publickey RSA success, command"
        sshkey $p ::1 atalice "$T/id_rsa" -- id
    fi
}

group_sshd_kbdint() {
    local p=$P_KBD
    SCEN sshd 127.0.0.31 atalice "KBDINT: keyboard-interactive/pam success, pty"
    sshpw $p 127.0.0.31 atalice "$PW_ALICE" 1 -o PreferredAuthentications=keyboard-interactive -tt -- exit
    SCEN sshd 127.0.0.32 atalice "KBDINT: 2 wrong keyboard-interactive passwords, client gives up"
    sshpw $p 127.0.0.32 atalice "wrong1,wrong2" 2 -o PreferredAuthentications=keyboard-interactive -- id
    SCEN sshd 127.0.0.33 nosuchuser "KBDINT: invalid user, 1 wrong password"
    sshpw $p 127.0.0.33 nosuchuser "wrong1" 1 -o PreferredAuthentications=keyboard-interactive -- id
    SCEN sshd 127.0.0.34 atcarol "KBDINT: user not in AllowUsers, right password"
    sshpw $p 127.0.0.34 atcarol "$PW_CAROL" 1 -o PreferredAuthentications=keyboard-interactive -- id
    SCEN sshd 127.0.0.35 atalice "KBDINT: 4 wrong passwords, MaxAuthTries 3"
    sshpw $p 127.0.0.35 atalice "w1,w2,w3,w4" 4 -o PreferredAuthentications=keyboard-interactive -- id
    SCEN sshd 127.0.0.36 atalice "KBDINT: client hangs at the password prompt past LoginGraceTime 15 (sshd logs nothing)"
    AT_PW_HANG=1 SSH_ASKPASS="$T/askpass.sh" SSH_ASKPASS_REQUIRE=force timeout 20 \
        ssh "${SSH_COMMON[@]}" -b 127.0.0.36 -p $p -l atalice -o PubkeyAuthentication=no \
        -o PreferredAuthentications=keyboard-interactive 127.0.0.1 id </dev/null >>"$T/client.out" 2>&1 || true
    SCEN sshd 127.0.0.37 atalice "KBDINT: password method offered but disabled (PasswordAuthentication no)"
    sshpw $p 127.0.0.37 atalice "$PW_ALICE" 1 -o PreferredAuthentications=password -- id
}

group_sudo() {
    SCEN sudo 127.0.0.51 atalice "inside an ssh login session (pubkey, pty): sudo right password, then sudo 3 wrong passwords"
    talk "$PW_ALICE,bad1,bad2,bad3" ssh "${SSH_COMMON[@]}" -b 127.0.0.51 -p $P_INFO -l atalice -o IdentitiesOnly=yes \
        -i "$T/id_ed25519" -tt 127.0.0.1 'sudo -k; sudo /usr/bin/id; sudo -k; sudo /usr/bin/true'
    SCEN sudo pty atalice "sudo with tty, right password (first use: lecture)"
    talk "$PW_ALICE" setpriv --reuid=atalice --regid=atalice --init-groups --reset-env sh -c 'cd; sudo -k; sudo /usr/bin/id'
    SCEN sudo pty atalice "sudo with tty, 3 wrong passwords"
    talk "bad1,bad2,bad3" setpriv --reuid=atalice --regid=atalice --init-groups --reset-env sh -c 'cd; sudo -k; sudo /usr/bin/id'
    SCEN sudo pty atalice "sudo with tty, 1 wrong then right password, command with arguments"
    talk "bad1,$PW_ALICE" setpriv --reuid=atalice --regid=atalice --init-groups --reset-env sh -c 'cd /tmp; sudo -k; sudo /usr/bin/echo hello "two  spaces"'
    SCEN sudo pty atalice "sudo -u atbob with tty"
    talk "$PW_ALICE" setpriv --reuid=atalice --regid=atalice --init-groups --reset-env sh -c 'cd; sudo -k; sudo -u atbob /usr/bin/id'
    SCEN sudo pty atalice "sudo -l, sudo -i (shell), sudo -s"
    talk "$PW_ALICE" setpriv --reuid=atalice --regid=atalice --init-groups --reset-env sh -c 'cd; sudo -k; sudo -l >/dev/null; sudo -i true; sudo -s true'
    SCEN sudo none atalice "sudo -S without tty, right password"
    (cd /tmp && setsid -w setpriv --reuid=atalice --regid=atalice --init-groups --reset-env sh -c "cd; sudo -k; echo '$PW_ALICE' | sudo -S /usr/bin/id" </dev/null >>"$T/client.out" 2>&1) || true
    SCEN sudo none atalice "sudo -S without tty, 3 wrong passwords"
    (setsid -w setpriv --reuid=atalice --regid=atalice --init-groups --reset-env sh -c "cd; sudo -k; printf 'b1\nb2\nb3\n' | sudo -S /usr/bin/id" </dev/null >>"$T/client.out" 2>&1) || true
    SCEN sudo none atalice "sudo without tty and without -S (a terminal is required)"
    (setsid -w setpriv --reuid=atalice --regid=atalice --init-groups --reset-env sh -c "cd; sudo -k; sudo /usr/bin/id" </dev/null >>"$T/client.out" 2>&1) || true
    SCEN sudo pty atbob "sudo by a user NOT in sudoers, with tty"
    talk "$PW_BOB" setpriv --reuid=atbob --regid=atbob --init-groups --reset-env sh -c 'cd; sudo -k; sudo /usr/bin/id'
    SCEN sudo none atbob "sudo by a user NOT in sudoers, no tty, -S"
    (setsid -w setpriv --reuid=atbob --regid=atbob --init-groups --reset-env sh -c "cd; sudo -k; echo '$PW_BOB' | sudo -S /usr/bin/id" </dev/null >>"$T/client.out" 2>&1) || true
    SCEN sudo pty atalice "sudo of a command not allowed by sudoers rule (atalice has ALL, so use -u nosuchuser)"
    talk "$PW_ALICE" setpriv --reuid=atalice --regid=atalice --init-groups --reset-env sh -c 'cd; sudo -k; sudo -u nosuchuser /usr/bin/id'
    SCEN sudo pty root "root runs sudo (no password)"
    talk "" sh -c 'cd /root; sudo /usr/bin/id'
}

group_su_login() {
    SCEN su 127.0.0.52 atalice "inside an ssh login session (pubkey, pty): su atbob right password, su - atbob wrong password"
    talk "$PW_BOB,bad1" ssh "${SSH_COMMON[@]}" -b 127.0.0.52 -p $P_INFO -l atalice -o IdentitiesOnly=yes \
        -i "$T/id_ed25519" -tt 127.0.0.1 'su atbob -c id; su - atbob -c id'
    SCEN su pty atalice "su atbob, right password"
    talk "$PW_BOB" setpriv --reuid=atalice --regid=atalice --init-groups --reset-env su atbob -c id
    SCEN su pty atalice "su - atbob (su-l), right password"
    talk "$PW_BOB" setpriv --reuid=atalice --regid=atalice --init-groups --reset-env su - atbob -c id
    SCEN su pty atalice "su atbob, wrong password"
    talk "bad1" setpriv --reuid=atalice --regid=atalice --init-groups --reset-env su atbob -c id
    SCEN su pty atalice "su (to root), wrong password"
    talk "bad1" setpriv --reuid=atalice --regid=atalice --init-groups --reset-env su -c id
    SCEN su pty atbob "su - atalice, wrong password (su-l)"
    talk "bad1" setpriv --reuid=atbob --regid=atbob --init-groups --reset-env su - atalice -c id
    SCEN su pty root "root: su - atalice (no password)"
    talk "" su - atalice -c id
    SCEN su none root "root: su atbob without a tty"
    (setsid -w su atbob -c id </dev/null >>"$T/client.out" 2>&1) || true
    SCEN su none atalice "su atbob without a tty (password from stdin)"
    (setsid -w setpriv --reuid=atalice --regid=atalice --init-groups --reset-env sh -c "echo '$PW_BOB' | su atbob -c id" </dev/null >>"$T/client.out" 2>&1) || true
    SCEN login pty atalice "login atalice, right password, shell, exit"
    talk "$PW_ALICE" login atalice
    SCEN login pty atbob "login atbob, wrong password"
    talk "bad1" login atbob
    SCEN login pty nosuchuser "login nosuchuser"
    talk "bad1" login nosuchuser
}

group_accounts() {
    SCEN account - - "groupadd atgrp; groupadd -r atgrp2"
    groupadd atgrp; groupadd -r atgrp2
    SCEN account - atdave "useradd -m -s /bin/bash -G atgrp atdave"
    useradd -m -s /bin/bash -G atgrp atdave
    SCEN account - ateve "useradd -r ateve (system user, no home)"
    useradd -r -s /usr/sbin/nologin ateve
    SCEN account - atdave "chpasswd (root sets password)"
    echo "atdave:$PW_DAVE" | chpasswd
    SCEN account - atdave "passwd atdave (root, password from stdin)"
    printf '%s\n%s\n' "$PW_DAVE-x" "$PW_DAVE-x" | passwd atdave >/dev/null 2>&1 || true
    SCEN account pty atdave "passwd as atdave (changes own password on a tty)"
    talk "$PW_DAVE-x,Zq9-new-Pw-77,Zq9-new-Pw-77" setpriv --reuid=atdave --regid=atdave --init-groups --reset-env passwd
    SCEN account pty atdave "passwd as atdave, wrong current password"
    talk "wrong-current" setpriv --reuid=atdave --regid=atdave --init-groups --reset-env passwd
    SCEN account - atdave "chage -M 90 -W 7 atdave; chage -E 2030-01-01 atdave"
    chage -M 90 -W 7 atdave; chage -E 2030-01-01 atdave
    SCEN account - atdave "chfn -f 'Dave Test' atdave"
    chfn -f 'Dave Test' atdave
    SCEN account - atdave "usermod -s /bin/sh; usermod -aG atgrp2; usermod -L; usermod -U; usermod -c"
    usermod -s /bin/sh atdave; usermod -aG atgrp2 atdave; usermod -L atdave; usermod -U atdave; usermod -c 'Dave T' atdave
    SCEN account - atbob "gpasswd -a atbob atgrp; gpasswd -d atbob atgrp; gpasswd -A atdave atgrp"
    gpasswd -a atbob atgrp >/dev/null; gpasswd -d atbob atgrp >/dev/null; gpasswd -A atdave atgrp
    SCEN account - atdave2 "usermod -l atdave2 -d /home/atdave2 -m atdave (rename)"
    usermod -l atdave2 -d /home/atdave2 -m atdave
    SCEN account - atdave2 "userdel -r atdave2; userdel ateve; groupdel atdave (primary group keeps the old name)"
    userdel -r atdave2 2>/dev/null || true; userdel ateve; groupdel atdave
    SCEN account - atbob "useradd atbob although atbob exists (fails, exit code 9)"
    useradd atbob 2>/dev/null || true
    SCEN account - - "groupmod -n atgrp3 atgrp2; groupdel atgrp3; groupdel atgrp"
    groupmod -n atgrp3 atgrp2 2>/dev/null || true; groupdel atgrp3 2>/dev/null || true; groupdel atgrp
}

# ----------------------------------------------------------------------------------------------
# journald sample (optional): separate mount namespace where /dev/log is journald's socket
# ----------------------------------------------------------------------------------------------
journald_phase() {
    mount --bind /run/systemd/journal/dev-log /dev/log
    write_sshd_config jd $P_JD INFO "PasswordAuthentication yes" "KbdInteractiveAuthentication yes" "MaxAuthTries 3" "PermitRootLogin no"
    /usr/sbin/sshd -D -f "$T/sshd-jd.conf" &
    local sp=$!
    echo "$sp sshd" >>"$T/pids"
    wait_port $P_JD
    SCEN journald 127.0.0.41 atalice "JOURNALD: password success, pty"
    sshpw $P_JD 127.0.0.41 atalice "$PW_ALICE" 1 -tt -- exit
    SCEN journald 127.0.0.42 atalice "JOURNALD: one wrong password"
    sshpw $P_JD 127.0.0.42 atalice "wrong1" 1 -- id
    SCEN journald 127.0.0.43 nosuchuser "JOURNALD: invalid user"
    sshpw $P_JD 127.0.0.43 nosuchuser "wrong1" 1 -- id
    SCEN journald 127.0.0.44 atalice "JOURNALD: publickey ED25519 success"
    sshkey $P_JD 127.0.0.44 atalice "$T/id_ed25519" -- id
    SCEN journald pty atalice "JOURNALD: sudo with tty"
    talk "$PW_ALICE" setpriv --reuid=atalice --regid=atalice --init-groups --reset-env sh -c 'cd; sudo -k; sudo /usr/bin/id'
    SCEN journald pty atalice "JOURNALD: su atbob wrong password"
    talk "bad1" setpriv --reuid=atalice --regid=atalice --init-groups --reset-env su atbob -c id
    sleep 1
    kill -TERM $sp 2>/dev/null || true
    wait $sp 2>/dev/null || true
}

# ----------------------------------------------------------------------------------------------
# splitting into fixture files
# ----------------------------------------------------------------------------------------------
# split_by_program INPUT OUTDIR FORMAT(rfc3339|traditional)
split_by_program() {
    local in=$1 dir=$2 fmt=$3 tagfield=3
    [[ $fmt == traditional ]] && tagfield=5
    mkdir -p "$dir"
    rm -f "$dir"/*.log
    cp "$in" "$dir/auth.log"
    awk -v tf=$tagfield -v dir="$dir" '
        {
            p = $tf; sub(/\[.*/, "", p); sub(/:$/, "", p)
            if (p == "sshd") f = "sshd"
            else if (p == "sudo") f = "sudo"
            else if (p == "su") f = "su"
            else if (p == "login") f = "login"
            else if (p ~ /^(useradd|userdel|usermod|groupadd|groupdel|groupmod|gpasswd|passwd|chpasswd|chage|chfn|chsh|newusers|chgpasswd)$/) f = "account"
            else f = "other"
            print > (dir "/" f ".log")
        }' "$in"
}

rewrite_host() { # fmt file
    local h=$AT_HOSTNAME
    if [[ $1 == rfc3339 ]]; then
        sed -i -E "s/^([^ ]+) ${h//./\\.} /\\1 $FIXHOST /" "$2"
    else
        sed -i -E "s/^([A-Z][a-z]{2} [ 0-9][0-9] [0-9:]{8}) ${h//./\\.} /\\1 $FIXHOST /" "$2"
    fi
}

# ----------------------------------------------------------------------------------------------
# README (regenerated with the fixtures so that versions and line counts always match)
# ----------------------------------------------------------------------------------------------
write_readme() { # jd_ok
    local jd_ok=$1 f
    {
        cat <<'EOF'
# Auth-log fixtures captured from real programs

Every line in `debian12-rfc3339/`, `debian12-traditional/`, `journald/` and `debian12-utmp/` was
written by the real program on Debian 12 (OpenSSH 9.2 sshd, sudo 1.9, util-linux su, shadow's
login/useradd/..., rsyslogd, systemd-journald). Nothing is hand-written or edited, except that the
host-name field of each line (and `_HOSTNAME` in the journald JSON/export and the host in the utmp
dumps) is rewritten to `testhost`. PIDs, timestamps, ports and key fingerprints are real and
change on every regeneration.

Regenerate (as root on Debian 12, about 1-2 minutes; needs
`openssh-server openssh-client sudo rsyslog util-linux login passwd expect python3`, optional
`systemd` for the journald sample):

    bash tests/capture/capture-fixtures.sh            # --keep-tmp keeps the work dir for debugging

The script runs everything in a private mount namespace (its own `/dev/log` on an overlay of
`/dev`, private `/run`, `/var/log`, `/var/lib/sudo`), starts its own rsyslogd and sshd instances on
127.0.0.1/::1 ports 22271-22274 (`AT_CAPTURE_PORT_BASE`, default 22270, moves them), creates and deletes the test users `atalice` (in group `sudo`),
`atbob` (not in sudoers), `atcarol` (in `DenyUsers`, not in `AllowUsers`), `atdave`, `ateve`, and
drives the events with ssh clients bound to distinct source addresses (`ssh -b 127.0.0.N`), with
expect (su, sudo, login, passwd on a pty) and with plain commands. Independent scenario groups run
in parallel, so `auth.log` interleaves them the way a busy host would.

## Layout

| path | content |
| --- | --- |
| `debian12-rfc3339/` | rsyslog `RSYSLOG_FileFormat` (Debian 12 default): `2026-11-28T07:58:02.783020+00:00 testhost sshd[4586]: ...` |
| `debian12-traditional/` | the same events through `RSYSLOG_TraditionalFileFormat`: `Nov 28 07:58:02 testhost sshd[4586]: ...` |
| `*/auth.log` | everything the `auth,authpriv.*` rule (plus the account tools by program name) received, in arrival order |
| `*/sshd.log`, `sudo.log`, `su.log`, `login.log` | `auth.log` split by the program name of the syslog tag |
| `*/account.log` | useradd, userdel, usermod, groupadd, groupdel, groupmod, gpasswd, passwd, chpasswd, chage, chfn |
| `*/other.log` | any other program (only present if something else logged) |
| `debian12-scenarios.tsv` | start time (UTC), family, source address (or `pty`/`none`/`-`), user and description of every scenario; sshd scenarios each use their own source address, so `grep -F '127.0.0.4 '` finds one scenario's lines |
| `debian12-versions.txt` | exact program versions of the capture |
| `debian12-utmp/` | the private `wtmp`/`btmp` written during the capture (384-byte `struct utmp` records) and their `utmpdump` text |
| `journald/` | a smaller separate run through a hand-started `systemd-journald`: `journalctl -o short-iso-precise`, `-o short`, `-o json` (`journal.jsonl`, one object per line) and `-o export` (`journal.export`), filtered with `-t sshd -t sudo -t su -t unix_chkpwd` |

## sshd instances

| name | port | settings (all: UsePAM yes, PubkeyAuthentication yes, SyslogFacility AUTH, PermitRootLogin no) |
| --- | --- | --- |
| INFO | 22271 | LogLevel INFO, PasswordAuthentication yes, KbdInteractiveAuthentication yes, MaxAuthTries 3, DenyUsers atcarol |
| VERBOSE | 22272 | LogLevel VERBOSE, PasswordAuthentication yes, KbdInteractiveAuthentication yes, MaxAuthTries 6 (default), DenyUsers atcarol |
| KBDINT | 22273 | LogLevel INFO, PasswordAuthentication no, KbdInteractiveAuthentication yes, MaxAuthTries 3, AllowUsers atalice atbob, LoginGraceTime 15 |
| journald | 22274 | LogLevel INFO, password + keyboard-interactive, MaxAuthTries 3 (logs to journald only) |

Password clients use `-o PreferredAuthentications=password` unless the scenario says otherwise
(the default client order tries keyboard-interactive first, see 127.0.0.19). Note that Debian 12's
stock sshd_config has `KbdInteractiveAuthentication no`.

## Scenarios (source address -> what happened)

| source | instance | scenario | characteristic lines |
| --- | --- | --- | --- |
| 127.0.0.2 | INFO | password success, command (no pty) | `Accepted password`, `session opened/closed`, `Received disconnect ...:11: disconnected by user`, `Disconnected from user` |
| 127.0.0.3 | INFO | password success, `ssh -tt ... exit` | as above, plus wtmp login/logout |
| 127.0.0.4 | INFO | 3 wrong passwords, MaxAuthTries 3 | `Failed password` x3, `error: maximum authentication attempts exceeded ... [preauth]`, `Disconnecting authenticating user ...: Too many authentication failures [preauth]`, `PAM 2 more authentication failures; ...` |
| 127.0.0.5 | INFO | one wrong, then right password | `Failed password` then `Accepted password` in the same connection |
| 127.0.0.6 | INFO | invalid user, 2 wrong passwords | `Invalid user nosuchuser from`, `Failed password for invalid user`, `Connection closed by invalid user ... [preauth]`, `PAM 1 more authentication failure` |
| 127.0.0.7 | INFO | user name `test from 10.10.1.2 port 55555 ssh2` | `Invalid user test from 10.10.1.2 port 55555 ssh2 from 127.0.0.7 port N`, `Failed password for invalid user test from 10.10.1.2 port 55555 ssh2 from 127.0.0.7 port N ssh2` |
| 127.0.0.8 / .9 | INFO | publickey ED25519 (pty) / RSA (command) | `Accepted publickey ... ssh2: ED25519 SHA256:...` / `RSA SHA256:...` |
| 127.0.0.10 | INFO | `BatchMode=yes`, unknown key | `Connection closed by authenticating user atalice ... [preauth]` |
| 127.0.0.11 | INFO | invalid user, `BatchMode=yes` | `Invalid user`, `Connection closed by invalid user ... [preauth]` |
| 127.0.0.12 | INFO | atcarol (DenyUsers), right password | `User atcarol from 127.0.0.12 not allowed because listed in DenyUsers`, then treated as invalid user |
| 127.0.0.13 | INFO | root, wrong password, PermitRootLogin no | `Failed password for root` (no `ROOT LOGIN REFUSED`: that is only logged when the authentication itself succeeded) |
| 127.0.0.38 | INFO | root with an authorized key, PermitRootLogin no | `ROOT LOGIN REFUSED FROM 127.0.0.38 port N` (twice: once without, once with `[preauth]`) |
| 127.0.0.19 | INFO | default client method order: 2 wrong keyboard-interactive answers, then right | `Postponed keyboard-interactive`, `Failed keyboard-interactive/pam`, `Accepted keyboard-interactive/pam` |
| 127.0.0.20 | INFO | askpass cancelled (empty passwords) | `Failed password` without a `pam_unix` line, `maximum authentication attempts exceeded` |
| 127.0.0.14 | INFO | client killed (`timeout 3`) at the password prompt | `Connection closed by authenticating user atalice ... [preauth]` |
| 127.0.0.15 / .16 | INFO | TCP connect and close before / after the server banner | `error: kex_exchange_identification: Connection closed by remote host`, `Connection closed by 127.0.0.15 port N` |
| 127.0.0.17 | INFO | HTTP request instead of an SSH banner | `kex_exchange_identification: client sent invalid protocol identifier "GET / HTTP/1.1"`, `banner exchange: Connection from ... invalid format` |
| 127.0.0.18 | INFO | atbob password login with pty, runs `sudo` (not in sudoers) | sudo lines with `logname=atbob` |
| 127.0.0.51 / .52 | INFO | atalice pubkey login with pty, runs sudo (right, then 3 wrong) / su (right, then wrong) inside the session | sudo/su lines from a real login session: `by atalice(uid=1001)`, `logname=atalice` |
| ::1 | INFO | IPv6: password success (pty), one wrong password, invalid user | `from ::1 port N` |
| 127.0.0.21 | VERBOSE | password success | `Connection from 127.0.0.21 port N on 127.0.0.1 port 22272 rdomain ""`, `User child is on pid N`, `Starting session: command for ...` |
| 127.0.0.22 | VERBOSE | publickey ED25519, pty | `Accepted key ED25519 SHA256:... found at /home/atalice/.ssh/authorized_keys:1`, `Postponed publickey`, `Starting session: command on pts/N for ...` |
| 127.0.0.23 | VERBOSE | unknown key only | `Failed publickey for atalice from ... ssh2: ED25519 SHA256:...`, `Connection closed by authenticating user` |
| 127.0.0.24 | VERBOSE | unknown key, then authorized RSA key | `Failed publickey` then `Accepted publickey` |
| 127.0.0.25 | VERBOSE | invalid user offering a key | `Invalid user`, `Connection closed by invalid user` (no `Failed publickey`) |
| 127.0.0.26 | VERBOSE | unknown key, then 2 wrong passwords | `Failed publickey`, `Failed password` |
| 127.0.0.27 | VERBOSE | TCP connect, close after banner | `Connection from`, `Connection closed by` |
| 127.0.0.28 | VERBOSE | atcarol (DenyUsers) | `not allowed because listed in DenyUsers` |
| 127.0.0.29 | VERBOSE | 7 wrong passwords, MaxAuthTries 6 | `maximum authentication attempts exceeded`, `PAM 5 more authentication failures` |
| ::1 | VERBOSE | publickey RSA | `Close session: user atalice from ::1 port N id 0` |
| 127.0.0.31 | KBDINT | keyboard-interactive success, pty | `Accepted keyboard-interactive/pam` |
| 127.0.0.32 | KBDINT | 2 wrong answers | `error: PAM: Authentication failure for atalice from 127.0.0.32`, `Failed keyboard-interactive/pam for atalice` |
| 127.0.0.33 | KBDINT | invalid user | `error: PAM: Authentication failure for illegal user nosuchuser from 127.0.0.33`, `Failed keyboard-interactive/pam for invalid user` |
| 127.0.0.34 | KBDINT | atcarol (not in AllowUsers) | `User atcarol from 127.0.0.34 not allowed because not listed in AllowUsers` |
| 127.0.0.35 | KBDINT | 4 wrong answers, MaxAuthTries 3 | `maximum authentication attempts exceeded`, `Too many authentication failures` |
| 127.0.0.36 | KBDINT | client silent past LoginGraceTime 15 | nothing at all (see below) |
| 127.0.0.37 | KBDINT | client insists on the disabled password method | `Connection closed by authenticating user atalice ... [preauth]` |
| 127.0.0.41-44 | journald | password success, wrong password, invalid user, publickey; then sudo and a failed su | `journald/` |

sudo (driven on a pty by expect unless "no tty"): right password (first use shows the lecture), 3
wrong passwords, 1 wrong then right with arguments containing two spaces, `-u atbob`, `-l`, `-i`,
`-s`, `-S` without tty (right / 3 wrong), no tty and no `-S`, atbob (NOT in sudoers) with and
without tty, `-u nosuchuser`, root. su: `su atbob` right/wrong, `su - atbob`, `su` to root wrong,
`su - atalice` as root, without a tty as root and as atalice. login: `login atalice` right password,
`login atbob` wrong password, `login nosuchuser`. Account tools: groupadd (normal and `-r`),
useradd (`-m -G`, `-r`), chpasswd, passwd as root and as the user (right and wrong current
password), chage, chfn, usermod (`-s -aG -L -U -c -l -d -m`), gpasswd (`-a -d -A`), userdel,
groupmod `-n`, groupdel, a failing useradd of an existing user, and the final deletion of the test
users. These sudo/su/login scenarios run without a login session (setpriv as the user), so their
PAM lines say `by (uid=1001)` and `logname=`; the 127.0.0.18/.51/.52 ones run inside an ssh login.

## Things a parser must expect (observed in these files)

- **sudo lines carry no `[pid]`** in the rsyslog files (`testhost sudo:  atalice : TTY=...`), and
  the user is right-aligned to 8 columns after `sudo: ` (`sudo:  atalice :`, `sudo:    atbob :`,
  `sudo:     root :`), so there are two or more spaces. Without a tty the `TTY=` field is missing
  (`sudo:  atalice : PWD=/home/atalice ; USER=root ; COMMAND=/usr/bin/id`). A failure is
  `N incorrect password attempts ; TTY=...`, a refusal `user NOT in sudoers ; ...`, an unknown
  run-as user `unknown user nosuchuser ; ... ; USER=nosuchuser ; ` (trailing `; `, no COMMAND).
  Arguments with spaces are quoted: `COMMAND=/usr/bin/echo hello 'two  spaces'`. `sudo -i` logs
  `PWD=/root`, `COMMAND=/bin/bash --login -c true` and PAM service `sudo-i`. A wrong password
  followed by the right one logs the `pam_unix(sudo:auth): authentication failure` line but no
  `incorrect password attempt` line.
- **su's own lines have a pid, its PAM auth failure does not**: `su: pam_unix(su:auth): authentication failure; ...`
  next to `su[11524]: FAILED SU (to atbob) atalice on pts/3`. util-linux su writes
  `(to atbob) atalice on pts/1` and `... on none` without a tty; `su -` uses PAM service `su-l`.
- In journald the same sudo and su lines do have a pid (`sudo[15684]:`, `su[15690]:`): journald
  takes it from the socket credentials (`_PID`); `SYSLOG_PID` is absent for all sudo lines and for
  su's PAM line, present for su's own lines.
- pam_unix lines contain **double spaces and trailing spaces**: `rhost=127.0.0.4  user=atalice`,
  and for unknown users the line ends in `rhost=127.0.0.6 ` (trailing space, no `user=`).
  `PAM 2 more authentication failures; ...` has no `pam_unix(...)` prefix; with one it is
  `PAM 1 more authentication failure;` (singular).
- **PIDs differ within one connection**: `Accepted ...`/`session opened` come from the monitor
  process, `Received disconnect`/`Disconnected from user` from the session child
  (`User child is on pid N` at VERBOSE); with PAM the `pam_unix(sshd:auth)` failure lines often
  come from yet another (PAM helper) pid.
- **User names are not token-safe**: `Invalid user test from 10.10.1.2 port 55555 ssh2 from 127.0.0.7 port 36533`,
  `Connection closed by invalid user test from 10.10.1.2 port 55555 ssh2 127.0.0.7 port 36533 [preauth]`.
  Parse address and port from the right.
- Users refused by `DenyUsers`/`AllowUsers` continue as **invalid user** (`Failed password for invalid user atcarol`).
- Keyboard-interactive/PAM writes `Postponed keyboard-interactive ... [preauth]` and
  `error: PAM: Authentication failure for illegal user X from IP` (the word *illegal*) at INFO.
- `ROOT LOGIN REFUSED FROM 127.0.0.38 port N` is logged twice (without and with `[preauth]`),
  and only when the root authentication itself succeeded.
- **LoginGraceTime expiry logs nothing** with this Debian build (the CVE-2024-6387 fix removed the
  `Timeout before authentication` message from the signal handler). Older builds and other
  versions log `fatal: Timeout before authentication for IP port N`; not captured here.
- No `message repeated N times` lines: Debian 12's rsyslog does not enable repeated-message
  reduction.
- Timestamps: rsyslog RFC 3339 is `+00:00`, journald `short-iso-precise` is `+0000`.
  The traditional format pads days 1-9 with a space (`Nov  8`); this capture's date may not show it.
- Noise lines from PAM in this container: `pam_limits(sshd:session): Could not set limit for 'nofile' ...`,
  `pam_env(sshd:session): deprecated reading of user environment enabled`, `pam_unix(sudo:auth): conversation failed`,
  `pam_unix(sudo:auth): auth could not identify password for [atalice]`. `pam_systemd` is silent
  here because systemd is not PID 1 (on a systemd host it adds its own lines).
- login: `FAILED LOGIN (1) on '/dev/pts/1' FOR 'atbob', Authentication failure`, unknown users
  as `FOR 'UNKNOWN'`; a successful login logs only the PAM session lines (`LOG_OK_LOGINS no`).
  `logname=` in its PAM failure line may name the previous user of the same pty.
- shadow tools log `failed adding user 'atbob', exit code: 9`, `add 'atalice' to shadow group 'sudo'`,
  `change user name 'atdave' to 'atdave2'`, `delete user 'atdave2'`, `group 'atgrp' removed`, and
  `pam_unix(passwd:chauthtok): password changed for atdave`.
- Not produced by this OpenSSH version: `sshd-session[pid]` (OpenSSH 9.8+). Do not expect it here.

## Files of this capture
EOF
        echo
        echo '```'
        cat "$OUT/debian12-versions.txt"
        echo '```'
        echo
        echo '| file | lines |'
        echo '| --- | --- |'
        for f in "$OUT"/debian12-rfc3339/*.log "$OUT"/debian12-traditional/*.log "$OUT"/journald/* "$OUT"/debian12-scenarios.tsv; do
            [[ -f $f ]] || continue
            echo "| \`${f#"$OUT"/}\` | $(wc -l <"$f") |"
        done
        if ((!jd_ok)); then
            echo
            echo "The journald sample was not produced in this run (no systemd-journald, or it did not start)."
        fi
    } >"$OUT/README.md"
}

# ----------------------------------------------------------------------------------------------
# inner main
# ----------------------------------------------------------------------------------------------
inner() {
    [[ ${1:-} == --keep-tmp ]] && KEEP_TMP=1
    T=$(mktemp -d /tmp/authtrail-capture.XXXXXX)
    chmod 755 "$T"
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    : >"$T/pids"; : >"$T/client.out"
    printf 'start\tfamily\tsource\tuser\tscenario\n' >"$T/scenarios.tsv"

    # --- private /dev (overlay), /run, /var/log, /var/lib/sudo -----------------------------
    mkdir -p "$T/dev-lower" "$T/dev-upper" "$T/dev-work" "$T/run" "$T/varlog" "$T/varlibsudo"
    mount --rbind /dev "$T/dev-lower"
    mount -t overlay overlay -o "lowerdir=/dev,upperdir=$T/dev-upper,workdir=$T/dev-work" /dev
    local m
    for m in pts shm mqueue hugepages; do
        if mountpoint -q "$T/dev-lower/$m" 2>/dev/null; then mount --rbind "$T/dev-lower/$m" "/dev/$m"; fi
    done
    # The rbind of the real /dev is needed only for the lines above: drop it at once, so that nothing
    # under $T is ever a view of the host's /dev (cleanup's rm -rf must not reach it).
    umount -R "$T/dev-lower" || umount -R -l "$T/dev-lower"
    mountpoint -q "$T/dev-lower" && die "could not unmount $T/dev-lower"
    rm -f /dev/log   # only in our overlay
    mount -t tmpfs -o mode=755 tmpfs /run
    mkdir -p /run/sshd /run/lock /run/systemd/journal && chmod 700 /run/sshd
    : >/run/utmp; chmod 664 /run/utmp; chgrp utmp /run/utmp 2>/dev/null || true
    mount --bind "$T/varlog" /var/log
    : >/var/log/wtmp; : >/var/log/btmp; : >/var/log/lastlog; : >/var/log/faillog
    chmod 664 /var/log/wtmp /var/log/lastlog; chmod 660 /var/log/btmp; chgrp utmp /var/log/wtmp /var/log/btmp /var/log/lastlog 2>/dev/null || true
    mkdir -p /var/lib/sudo && mount --bind "$T/varlibsudo" /var/lib/sudo && chmod 711 /var/lib/sudo

    HAVE_V6=0
    python3 -c 'import socket; s=socket.socket(socket.AF_INET6); s.bind(("::1",0))' 2>/dev/null && HAVE_V6=1

    # --- rsyslogd ----------------------------------------------------------------------------
    mkdir -p "$T/rsyslog-work"
    cat >"$T/rsyslog.conf" <<EOF
global(workDirectory="$T/rsyslog-work")
module(load="imuxsock")     # creates /dev/log (private overlay)
if (\$syslogfacility-text == "auth" or \$syslogfacility-text == "authpriv"
    or \$programname == ["useradd","userdel","usermod","groupadd","groupdel","groupmod","gpasswd",
                         "passwd","chpasswd","chage","chfn","chsh","newusers","chgpasswd"]) then {
    action(type="omfile" file="$T/auth-rfc3339.log" template="RSYSLOG_FileFormat")
    action(type="omfile" file="$T/auth-traditional.log" template="RSYSLOG_TraditionalFileFormat")
}
*.* action(type="omfile" file="$T/all-rfc3339.log" template="RSYSLOG_FileFormat")
EOF
    rsyslogd -N1 -f "$T/rsyslog.conf" >/dev/null 2>&1 || die "rsyslog config invalid"
    rsyslogd -n -f "$T/rsyslog.conf" -i "$T/rsyslogd.pid" &
    local rs=$!
    track_pid $rs rsyslogd
    local i
    for i in $(seq 100); do [[ -S /dev/log ]] && break; sleep 0.1; done
    [[ -S /dev/log ]] || die "rsyslogd did not create /dev/log"

    # --- helpers, keys ------------------------------------------------------------------------
    cat >"$T/askpass.sh" <<'EOF'
#!/bin/sh
# SSH_ASKPASS helper: prints the next line of $AT_PW_SEQ (the last line repeats); hangs with AT_PW_HANG
if [ -n "$AT_PW_HANG" ]; then sleep 30; exit 1; fi
if [ -n "$AT_PW_CANCEL" ]; then exit 1; fi
n=$(cat "$AT_PW_SEQ.n" 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" >"$AT_PW_SEQ.n"
total=$(wc -l <"$AT_PW_SEQ"); [ "$n" -gt "$total" ] && n=$total
sed -n "${n}p" "$AT_PW_SEQ"
EOF
    cat >"$T/converse.exp" <<'EOF'
#!/usr/bin/expect -f
# converse.exp PASSWORDS(comma separated, in order; the last repeats) cmd args...
set pws [split [lindex $argv 0] ","]
set cmd [lrange $argv 1 end]
set timeout 30
log_user 1
spawn -noecho {*}$cmd
set i 0
expect {
    -nocase -re {password[^\n:]*: ?$} {
        if {$i < [llength $pws]} { set pw [lindex $pws $i] } else { set pw [lindex $pws end] }
        incr i
        send -- "$pw\r"
        exp_continue
    }
    -re {login: ?$} { exit 0 }
    -re {[$#] $} { send -- "exit\r"; exp_continue }
    eof {}
    timeout { puts "converse: timeout"; exit 99 }
}
catch wait result
exit [lindex $result 3]
EOF
    chmod 755 "$T/askpass.sh" "$T/converse.exp"
    ssh-keygen -q -t ed25519 -N '' -C '' -f "$T/ssh_host_ed25519_key"
    ssh-keygen -q -t rsa -b 3072 -N '' -C '' -f "$T/ssh_host_rsa_key"
    ssh-keygen -q -t ed25519 -N '' -C 'atalice@capture' -f "$T/id_ed25519"
    ssh-keygen -q -t rsa -b 3072 -N '' -C 'atalice@capture' -f "$T/id_rsa"
    ssh-keygen -q -t ed25519 -N '' -C 'unknown@capture' -f "$T/id_wrong_ed25519"

    # --- accounts (logged: part of account.log) -----------------------------------------------
    delete_test_accounts   # leftovers of an aborted earlier run
    SCEN account - atalice "useradd atalice/atbob/atcarol, usermod -aG sudo atalice, chpasswd"
    useradd -m -s /bin/bash atalice
    useradd -m -s /bin/bash atbob
    useradd -m -s /bin/bash atcarol
    usermod -aG sudo atalice
    printf 'atalice:%s\natbob:%s\natcarol:%s\n' "$PW_ALICE" "$PW_BOB" "$PW_CAROL" | chpasswd
    install -d -m 700 -o atalice -g atalice /home/atalice/.ssh
    cat "$T/id_ed25519.pub" "$T/id_rsa.pub" >/home/atalice/.ssh/authorized_keys
    chown atalice:atalice /home/atalice/.ssh/authorized_keys; chmod 600 /home/atalice/.ssh/authorized_keys
    # root's key lives in the private /run, not in /root/.ssh
    install -d -m 755 /run/authtrail-keys
    install -m 644 "$T/id_ed25519.pub" /run/authtrail-keys/root
    grep -q '^%sudo' /etc/sudoers || die "/etc/sudoers has no %sudo rule (Debian default expected)"

    # --- sshd instances -----------------------------------------------------------------------
    local common=("PasswordAuthentication yes" "PermitRootLogin no" "DenyUsers atcarol")
    write_sshd_config info $P_INFO INFO "${common[@]}" "KbdInteractiveAuthentication yes" "MaxAuthTries 3"
    write_sshd_config verbose $P_VERB VERBOSE "${common[@]}" "KbdInteractiveAuthentication yes"
    write_sshd_config kbd $P_KBD INFO "PasswordAuthentication no" "KbdInteractiveAuthentication yes" \
        "PermitRootLogin no" "AllowUsers atalice atbob" "MaxAuthTries 3" "LoginGraceTime 15"
    start_sshd info $P_INFO
    start_sshd verbose $P_VERB
    start_sshd kbd $P_KBD

    # --- scenarios ----------------------------------------------------------------------------
    log "running scenarios"
    local g pids=()
    for g in group_sshd_info group_sshd_verbose group_sshd_kbdint group_sudo group_su_login group_accounts; do
        ( set +e; $g ) >>"$T/$g.out" 2>&1 &
        pids+=($!)
    done
    for g in "${pids[@]}"; do wait "$g" || true; done
    log "scenarios done"
    sleep 1

    # --- sshd down, then the journald sample --------------------------------------------------
    kill_tracked_sshd() {
        local pid comm
        while read -r pid comm; do
            [[ $comm == sshd && -e /proc/$pid ]] && kill -TERM "$pid" 2>/dev/null || true
        done <"$T/pids"
    }
    kill_tracked_sshd

    local jd_ok=0
    if [[ -x /lib/systemd/systemd-journald ]] && command -v journalctl >/dev/null; then
        log "journald sample"
        /lib/systemd/systemd-journald &
        local jp=$!
        track_pid $jp systemd-journal
        for i in $(seq 100); do [[ -S /run/systemd/journal/dev-log ]] && break; sleep 0.1; done
        if [[ -S /run/systemd/journal/dev-log ]]; then
            local jstart; jstart=$(date '+%Y-%m-%d %H:%M:%S')
            T=$T HAVE_V6=$HAVE_V6 AT_HOSTNAME=$AT_HOSTNAME unshare -m --propagation private bash "$SELF" __journald "$T" "$HAVE_V6" || true
            sleep 1
            journalctl --flush >/dev/null 2>&1 || true
            local ids=(-t sshd -t sudo -t su -t unix_chkpwd)
            journalctl --no-pager -q --since "$jstart" "${ids[@]}" -o short-iso-precise >"$T/journal-short-iso-precise.log" 2>/dev/null || true
            journalctl --no-pager -q --since "$jstart" "${ids[@]}" -o short >"$T/journal-short.log" 2>/dev/null || true
            journalctl --no-pager -q --since "$jstart" "${ids[@]}" -o json >"$T/journal.json" 2>/dev/null || true
            journalctl --no-pager -q --since "$jstart" "${ids[@]}" -o export >"$T/journal.export" 2>/dev/null || true
            [[ -s $T/journal-short-iso-precise.log ]] && jd_ok=1
        fi
        kill -TERM $jp 2>/dev/null || true
    fi

    # --- remove the test users while rsyslog still records -----------------------------------
    SCEN account - atalice "userdel -r atalice atbob atcarol (cleanup, recorded)"
    for u in atalice atbob atcarol; do userdel -r "$u" 2>/dev/null || true; done
    sleep 1
    kill -TERM $rs 2>/dev/null || true
    for i in $(seq 50); do [[ -e /proc/$rs ]] || break; grep -q '^State:.*Z' /proc/$rs/status 2>/dev/null && break; sleep 0.1; done

    # --- write fixtures -----------------------------------------------------------------------
    local rfc=$OUT/debian12-rfc3339 trad=$OUT/debian12-traditional
    rewrite_host rfc3339 "$T/auth-rfc3339.log"
    rewrite_host traditional "$T/auth-traditional.log"
    split_by_program "$T/auth-rfc3339.log" "$rfc" rfc3339
    split_by_program "$T/auth-traditional.log" "$trad" traditional
    cp "$T/scenarios.tsv" "$OUT/debian12-scenarios.tsv"

    mkdir -p "$OUT/debian12-utmp"
    cp /var/log/wtmp "$OUT/debian12-utmp/wtmp"
    cp /var/log/btmp "$OUT/debian12-utmp/btmp"
    utmpdump /var/log/wtmp >"$OUT/debian12-utmp/wtmp.utmpdump.txt" 2>/dev/null || true
    utmpdump /var/log/btmp >"$OUT/debian12-utmp/btmp.utmpdump.txt" 2>/dev/null || true
    sed -i "s/\b${AT_HOSTNAME}\b/$FIXHOST/g" "$OUT/debian12-utmp/"*.txt 2>/dev/null || true

    if ((jd_ok)); then
        mkdir -p "$OUT/journald"
        rm -f "$OUT/journald/"*
        sed -E "s/^([^ ]+) ${AT_HOSTNAME} /\\1 $FIXHOST /" "$T/journal-short-iso-precise.log" >"$OUT/journald/short-iso-precise.log"
        sed -E "s/^([A-Z][a-z]{2} [ 0-9][0-9] [0-9:]{8}) ${AT_HOSTNAME} /\\1 $FIXHOST /" "$T/journal-short.log" >"$OUT/journald/short.log"
        sed -E "s/\"_HOSTNAME\":\"${AT_HOSTNAME}\"/\"_HOSTNAME\":\"$FIXHOST\"/" "$T/journal.json" >"$OUT/journald/journal.jsonl"
        sed -E "s/^_HOSTNAME=${AT_HOSTNAME}\$/_HOSTNAME=$FIXHOST/" "$T/journal.export" >"$OUT/journald/journal.export"
    fi

    # --- versions -----------------------------------------------------------------------------
    {
        echo "captured_at: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
        echo "debian: $(cat /etc/debian_version)"
        echo "sshd: $(/usr/sbin/sshd -V 2>&1 | head -1)"
        echo "openssh-server package: $(dpkg-query -W -f '${Version}' openssh-server)"
        echo "sudo: $(sudo -V | head -1) (package $(dpkg-query -W -f '${Version}' sudo))"
        echo "su: $(su --version | head -1)"
        echo "login/passwd (shadow): $(dpkg-query -W -f '${Version}' login) / $(dpkg-query -W -f '${Version}' passwd)"
        echo "libpam-modules: $(dpkg-query -W -f '${Version}' libpam-modules)"
        echo "rsyslogd: $(rsyslogd -v | head -1 | sed 's/ compiled with:$//; s/  */ /g') (package $(dpkg-query -W -f '${Version}' rsyslog))"
        if ((jd_ok)); then echo "systemd-journald: $(journalctl --version | head -1)"; fi
    } >"$OUT/debian12-versions.txt"

    chmod 644 "$OUT/debian12-utmp/"*
    write_readme "$jd_ok"

    # --- report -------------------------------------------------------------------------------
    log "fixture files:"
    wc -l "$rfc"/*.log "$trad"/*.log $( ((jd_ok)) && echo "$OUT"/journald/*.log "$OUT"/journald/*.jsonl) >&2 || true
    local phrase missing=0
    for phrase in "Accepted password" "Accepted publickey" "Accepted keyboard-interactive/pam" "Failed password" \
        "Failed keyboard-interactive/pam" "Invalid user" "for invalid user" "maximum authentication attempts exceeded" \
        "Too many authentication failures" "more authentication failures" "Connection closed by authenticating user" \
        "Connection closed by invalid user" "Disconnected from" "Received disconnect" "not allowed because" \
        "ROOT LOGIN REFUSED" "Connection from" "Failed publickey" "Accepted key" "session opened" "session closed" \
        "authentication failure" "incorrect password attempt" "NOT in sudoers" "COMMAND=" "(to " "FAILED SU" \
        "new user" "delete user" "new group" "password changed" "Timeout before authentication" \
        "banner exchange" "FAILED LOGIN" "test from 10.10.1.2 port 55555"; do
        if grep -rqF -- "$phrase" "$rfc"; then printf '  found    %s\n' "$phrase" >&2
        else printf '  MISSING  %s\n' "$phrase" >&2; missing=$((missing + 1)); fi
    done
    log "missing phrases: $missing; journald sample: $jd_ok"
}

case "${1:-}" in
    __inner) shift; [[ -n ${AT_CAPTURE_INNER:-} ]] || die "internal"; inner "$@" ;;
    __journald) T=$2; HAVE_V6=$3; journald_phase ;;
    *) outer "$@" ;;
esac
