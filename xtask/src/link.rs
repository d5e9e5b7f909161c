//! A bandwidth-limited TCP link for the shipping benchmark: a relay on loopback that forwards
//! each direction through one token bucket shared by all its connections (the agent may send
//! on several at once; a link's rate is the sum over them), with std threads, no `tc`, no
//! root. The agent connects to the relay; the relay connects to the collector. TLS passes
//! through untouched (the agent's `server-name` names the collector's certificate).

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// Bytes a direction may send at once after being idle: 64 KiB, about one TCP window, so an
/// idle link does not save up credit for a later burst beyond what a real link buffers.
pub(crate) const BURST_BYTES: f64 = 64.0 * 1024.0;

/// Bytes read from a socket at a time before they wait for tokens.
const CHUNK_BYTES: usize = 16 * 1024;

/// How often the accept loop looks at the stop flag.
const ACCEPT_POLL: Duration = Duration::from_millis(10);

/// A running relay; stops accepting when dropped (open connections end with their peers).
pub(crate) struct Link {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Link {
    /// Listens on `listen` (port 0: any free port) and forwards every connection to
    /// `upstream` at `mbit` megabits per second (10^6 bit/s) in each direction.
    pub(crate) fn start(listen: &str, upstream: SocketAddr, mbit: f64) -> Result<Link> {
        anyhow::ensure!(mbit > 0.0, "link rate must be positive, not {mbit} Mbit/s");
        let listener = TcpListener::bind(listen).with_context(|| format!("relay bind {listen}"))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let bytes_per_sec = mbit * 1e6 / 8.0;
        // One bucket per direction for the whole link: to the collector, and back.
        let buckets = (
            Arc::new(Mutex::new(Bucket::new(bytes_per_sec))),
            Arc::new(Mutex::new(Bucket::new(bytes_per_sec))),
        );
        let accept = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((down, _)) => {
                            if let Err(e) = connect(down, upstream, &buckets) {
                                eprintln!("relay: {e:#}");
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(ACCEPT_POLL);
                        }
                        Err(e) => {
                            eprintln!("relay accept: {e}");
                            std::thread::sleep(ACCEPT_POLL);
                        }
                    }
                }
            })
        };
        Ok(Link {
            addr,
            stop,
            accept: Some(accept),
        })
    }

    /// Where clients connect.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// Connects to `upstream` and starts one paced pump per direction.
fn connect(
    down: TcpStream,
    upstream: SocketAddr,
    (to_up, to_down): &(Arc<Mutex<Bucket>>, Arc<Mutex<Bucket>>),
) -> Result<()> {
    down.set_nonblocking(false)?;
    let up = TcpStream::connect(upstream).with_context(|| format!("relay connect {upstream}"))?;
    for s in [&down, &up] {
        s.set_nodelay(true)?;
    }
    let (down2, up2) = (down.try_clone()?, up.try_clone()?);
    let (to_up, to_down) = (to_up.clone(), to_down.clone());
    std::thread::spawn(move || pump(down, up, &to_up));
    std::thread::spawn(move || pump(up2, down2, &to_down));
    Ok(())
}

/// Copies `from` to `to`, each chunk waiting until the bucket holds its bytes; at the end of
/// `from` (or an error on either side) shuts `to` down for writing, as the peer would.
fn pump(mut from: TcpStream, mut to: TcpStream, bucket: &Mutex<Bucket>) {
    let mut buf = vec![0u8; CHUNK_BYTES];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // Held while waiting: the connections of one direction queue for the link in turn.
        match bucket.lock() {
            Ok(mut b) => b.take(n),
            Err(_) => break,
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

/// A token bucket in bytes: refilled at the link rate, holding at most [`BURST_BYTES`].
struct Bucket {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new(rate: f64) -> Bucket {
        Bucket {
            rate,
            tokens: BURST_BYTES,
            at: Instant::now(),
        }
    }

    /// Waits until `n` bytes may go, then spends them (a chunk larger than the burst waits
    /// for its whole size: the bucket goes below zero and repays it first).
    fn take(&mut self, n: usize) {
        let n = n as f64;
        loop {
            let now = Instant::now();
            self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate)
                .min(BURST_BYTES);
            self.at = now;
            if self.tokens >= n.min(BURST_BYTES) {
                self.tokens -= n;
                return;
            }
            std::thread::sleep(Duration::from_secs_f64(
                (n.min(BURST_BYTES) - self.tokens) / self.rate,
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The relay carries bytes intact both ways and no faster than its rate (beyond one burst).
    #[test]
    fn the_link_forwards_intact_at_its_rate() {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let upstream = server.local_addr().unwrap();
        // The server echoes what it reads.
        let echo = std::thread::spawn(move || {
            let (mut s, _) = server.accept().unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).unwrap();
            s.write_all(&got).unwrap();
            got
        });
        // 8 Mbit/s = 1 MB/s: 512 KiB take at least (512 - 64) KiB / 1 MB/s, about 0.46 s.
        let link = Link::start("127.0.0.1:0", upstream, 8.0).unwrap();
        let data: Vec<u8> = (0..512 * 1024u32).map(|i| (i * 7 % 251) as u8).collect();
        let start = Instant::now();
        let mut c = TcpStream::connect(link.addr()).unwrap();
        c.write_all(&data).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let mut back = Vec::new();
        c.read_to_end(&mut back).unwrap();
        let secs = start.elapsed().as_secs_f64();
        assert_eq!(echo.join().unwrap(), data);
        assert_eq!(back, data);
        // Each direction pays separately: (512 - 64) KiB twice at 1 MB/s.
        let floor = 2.0 * (data.len() as f64 - BURST_BYTES) / 1e6;
        assert!(
            secs >= floor,
            "{secs:.3} s < {floor:.3} s: the link was not paced"
        );
    }

    /// Two connections at once share the link's rate: together no faster than one.
    #[test]
    fn connections_share_the_links_rate() {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let upstream = server.local_addr().unwrap();
        let sink = std::thread::spawn(move || {
            let mut readers = Vec::new();
            for _ in 0..2 {
                let (mut s, _) = server.accept().unwrap();
                readers.push(std::thread::spawn(move || {
                    let mut got = Vec::new();
                    s.read_to_end(&mut got).unwrap();
                    got.len()
                }));
            }
            readers
                .into_iter()
                .map(|r| r.join().unwrap())
                .sum::<usize>()
        });
        let link = Link::start("127.0.0.1:0", upstream, 8.0).unwrap();
        let start = Instant::now();
        let senders: Vec<_> = (0..2)
            .map(|_| {
                let addr = link.addr();
                std::thread::spawn(move || {
                    let mut c = TcpStream::connect(addr).unwrap();
                    c.write_all(&vec![7u8; 256 * 1024]).unwrap();
                    c.shutdown(Shutdown::Write).unwrap();
                    let mut rest = Vec::new();
                    c.read_to_end(&mut rest).unwrap();
                })
            })
            .collect();
        for s in senders {
            s.join().unwrap();
        }
        assert_eq!(sink.join().unwrap(), 512 * 1024);
        let secs = start.elapsed().as_secs_f64();
        let floor = (512.0 * 1024.0 - BURST_BYTES) / 1e6;
        assert!(
            secs >= floor,
            "{secs:.3} s < {floor:.3} s: each connection had its own rate"
        );
    }

    #[test]
    fn a_bucket_refills_no_more_than_its_burst() {
        let mut b = Bucket::new(1e6);
        std::thread::sleep(Duration::from_millis(100));
        b.take(0);
        assert!(b.tokens <= BURST_BYTES);
    }
}
