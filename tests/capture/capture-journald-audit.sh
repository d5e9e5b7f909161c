#!/bin/bash
# Run as root inside a private mount namespace: unshare -m --propagation private tests/capture/capture-journald-audit.sh
# Private systemd-journald (own /run/systemd, own /var/log/journal) that also reads the kernel's
# audit multicast; then a real sshd login whose PAM and sshd audit records reach it.
set -u
T=/tmp/ep-jd/w; rm -rf $T; mkdir -p $T
mount -t tmpfs tmpfs /run/systemd 2>/dev/null || { mkdir -p /run/systemd; mount -t tmpfs tmpfs /run/systemd; }
mkdir -p /run/systemd/journal
mount -t tmpfs tmpfs /var/log/journal
/lib/systemd/systemd-journald &
JP=$!
sleep 2
mkdir -p /run/sshd
useradd -m atjd1 2>/dev/null; echo 'atjd1:Jd-12345678' | chpasswd
ssh-keygen -q -t ed25519 -N '' -f $T/hk
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
printf "Port $PORT\nListenAddress 127.0.0.1\nHostKey $T/hk\nUsePAM yes\nPasswordAuthentication yes\nPidFile $T/sshd.pid\n" > $T/sshd.conf
/usr/sbin/sshd -D -f $T/sshd.conf &
SP=$!
sleep 1
O="-F /dev/null -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o PreferredAuthentications=password -o NumberOfPasswordPrompts=1 -p $PORT"
sshpass -p 'Jd-12345678' ssh $O -tt -b 127.0.0.171 atjd1@127.0.0.1 exit
sshpass -p 'wrong' ssh $O -b 127.0.0.172 atjd1@127.0.0.1 true
sleep 2
journalctl -D /var/log/journal -o short-iso-precise --no-pager > $T/journal.txt 2>&1 || journalctl -o short-iso-precise --no-pager > $T/journal.txt 2>&1
journalctl -o short --no-pager > $T/journal-short.txt 2>&1
kill $SP $JP; wait
userdel -r atjd1 2>/dev/null
