#!/bin/bash
# Captures real Linux audit records for agent-core/testdata/audit/: a private auditd (its own
# config and log file under WORKDIR) while a real sshd login (right and wrong password, invalid
# users, one with a space), su, shadow tools and passwd run. Needs root, auditd, openssh-server,
# sshpass; creates and deletes the user ataudit1. The records are in WORKDIR/audit.log.
set -u
T=${1:?usage: capture-audit.sh WORKDIR [RAW|ENRICHED]}; FORMAT=${2:-RAW}; rm -rf $T; mkdir -p $T/conf
cat > $T/conf/auditd.conf <<C
local_events = yes
write_logs = yes
log_file = $T/audit.log
log_format = $FORMAT
flush = INCREMENTAL_ASYNC
freq = 1
max_log_file = 8
num_logs = 2
max_log_file_action = ROTATE
space_left = 2
admin_space_left = 1
disk_full_action = IGNORE
disk_error_action = IGNORE
end_of_event_timeout = 2
plugin_dir = $T/plugins
C
mkdir -p $T/plugins
/usr/sbin/auditd -c $T/conf -n >$T/auditd.out 2>&1 &
AP=$!
sleep 2
mkdir -p /run/sshd; touch /run/utmp
ssh-keygen -q -t ed25519 -N '' -f $T/hk
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
cat > $T/sshd.conf <<C
Port $PORT
ListenAddress 127.0.0.1
HostKey $T/hk
UsePAM yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
PidFile $T/sshd.pid
LogLevel INFO
C
/usr/sbin/sshd -D -f $T/sshd.conf -E $T/sshd.log &
SP=$!
sleep 1
useradd -m ataudit1 ; echo 'ataudit1:Pw-1234567' | chpasswd
groupadd atauditg; usermod -aG atauditg ataudit1
O="-F /dev/null -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o PreferredAuthentications=password -o NumberOfPasswordPrompts=1 -p $PORT"
sshpass -p 'Pw-1234567' ssh $O -b 127.0.0.2 ataudit1@127.0.0.1 true
sshpass -p 'wrong' ssh $O -b 127.0.0.3 ataudit1@127.0.0.1 true
sshpass -p 'wrong' ssh $O -b 127.0.0.4 nosuchuser@127.0.0.1 true
sshpass -p 'wrong' ssh $O -b 127.0.0.5 'bad user'@127.0.0.1 true
sshpass -p 'Pw-1234567' ssh $O -tt -b 127.0.0.6 ataudit1@127.0.0.1 exit
script -qc "su -c true ataudit1" /dev/null </dev/null
setpriv --reuid ataudit1 --regid ataudit1 --init-groups bash -c 'echo wrongpw | script -qc "su -c true root" /dev/null' 
echo -e 'Pw-1234567\nNew-Pw-98765x\nNew-Pw-98765x' | setpriv --reuid ataudit1 --regid ataudit1 --init-groups script -qc passwd /dev/null
passwd -l ataudit1; passwd -u ataudit1
userdel -r ataudit1; groupdel atauditg
sleep 3
kill $SP; kill $AP; wait
