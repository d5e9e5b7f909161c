#!/bin/bash
# Real vsftpd lines: a private vsftpd (own config, free port) with its own log and xferlog;
# logins right, wrong, unknown user, anonymous.
set -u
T=/tmp/ep-ftp/w; rm -rf $T; mkdir -p $T/empty /var/run/vsftpd/empty
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
useradd -m atftp1 2>/dev/null; echo 'atftp1:Ftp-12345678' | chpasswd
cat > $T/vsftpd.conf <<C
listen=YES
listen_address=127.0.0.1
listen_port=$PORT
anonymous_enable=YES
anon_root=$T/empty
local_enable=YES
write_enable=YES
xferlog_enable=YES
vsftpd_log_file=$T/vsftpd.log
dual_log_enable=YES
xferlog_file=$T/xferlog
log_ftp_protocol=NO
secure_chroot_dir=/var/run/vsftpd/empty
pam_service_name=vsftpd
seccomp_sandbox=NO
background=NO
C
/usr/sbin/vsftpd $T/vsftpd.conf &
VP=$!
sleep 1
python3 - $PORT <<'P'
import ftplib, sys, io
port=int(sys.argv[1])
def t(u,p,src):
    try:
        f=ftplib.FTP(); f.connect('127.0.0.1',port,source_address=(src,0)); f.login(u,p)
        try:
            f.storbinary('STOR up.txt', io.BytesIO(b'hello'))
        except Exception as e: print('stor',e)
        f.quit()
    except Exception as e: print(u,e)
t('atftp1','Ftp-12345678','127.0.0.2')
t('atftp1','wrong','127.0.0.3')
t('nosuchuser','wrong','127.0.0.4')
t('anonymous','guest@example.com','127.0.0.5')
P
sleep 1
kill $VP; wait
userdel -r atftp1 2>/dev/null
cat $T/vsftpd.log
