//! A bandwidth-limited TCP link for the shipping benchmark: a relay on loopback that forwards
//! each direction of each connection through its own token bucket (std threads, no `tc`, no
//! root). The agent connects to the relay; the relay connects to the collector. TLS passes
//! through untouched (the agent's `server-name` names the collector's certificate).

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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
        let accept = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((down, _)) => {
                            if let Err(e) = connect(down, upstream, bytes_per_sec) {
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
fn connect(down: TcpStream, upstream: SocketAddr, bytes_per_sec: f64) -> Result<()> {
    down.set_nonblocking(false)?;
    let up = TcpStream::connect(upstream).with_context(|| format!("relay connect {upstream}"))?;
    for s in [&down, &up] {
        s.set_nodelay(true)?;
    }
    let (down2, up2) = (down.try_clone()?, up.try_clone()?);
    std::thread::spawn(move || pump(down, up, bytes_per_sec));
    std::thread::spawn(move || pump(up2, down2, bytes_per_sec));
    Ok(())
}

/// Copies `from` to `to`, each chunk waiting until the bucket holds its bytes; at the end of
/// `from` (or an error on either side) shuts `to` down for writing, as the peer would.
fn pump(mut from: TcpStream, mut to: TcpStream, bytes_per_sec: f64) {
    let mut bucket = Bucket::new(bytes_per_sec);
    let mut buf = vec![0u8; CHUNK_BYTES];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        bucket.take(n);
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

    #[test]
    fn a_bucket_refills_no_more_than_its_burst() {
        let mut b = Bucket::new(1e6);
        std::thread::sleep(Duration::from_millis(100));
        b.take(0);
        assert!(b.tokens <= BURST_BYTES);
    }
}
