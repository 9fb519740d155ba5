//! Load scenarios of the qubesd benchmark (included with `#[path = ...] mod load;`): many
//! clients mixing reads and writes, event subscribers that read or do not, and the
//! measurements the redesign of the core is judged by (issue 12).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use qubes_api::Request;
use qubes_api::client::call_raw;

/// Latencies of reads and of writes measured under a mixed load.
pub struct Mixed {
    /// Every read's latency.
    pub reads: Vec<Duration>,
    /// Every write's latency.
    pub writes: Vec<Duration>,
}

/// `clients` threads for `secs` seconds; each call is a write with probability
/// `write_percent`/100 (a `property.Set` of memory), else a read (`property.GetAll` or
/// `property.Get`), on qubes `app0..apps`. The choice is a fixed pseudo-random sequence per
/// client, so runs compare.
pub fn mixed(socket: &Path, apps: usize, clients: usize, write_percent: u64, secs: f64) -> Mixed {
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let (stop, socket) = (stop.clone(), socket.to_path_buf());
            std::thread::spawn(move || {
                let (mut reads, mut writes) = (Vec::new(), Vec::new());
                let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ (c as u64 + 1);
                let mut next = || {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed
                };
                while !stop.load(Ordering::Relaxed) {
                    let r = next();
                    let vm = format!("app{}", r as usize % apps);
                    let write = (r >> 32) % 100 < write_percent;
                    let req = if write {
                        let mem = 400 + (r >> 40) % 1000;
                        Request::encode(
                            "admin.vm.property.Set",
                            "memory",
                            "dom0",
                            &vm,
                            mem.to_string().as_bytes(),
                        )
                    } else if r & 1 == 0 {
                        Request::encode("admin.vm.property.GetAll", "", "dom0", &vm, b"")
                    } else {
                        Request::encode("admin.vm.property.Get", "label", "dom0", &vm, b"")
                    };
                    let t = Instant::now();
                    let out = call_raw(&socket, &req).expect("call");
                    let took = t.elapsed();
                    assert!(out.starts_with(b"0\0"), "{}", String::from_utf8_lossy(&out));
                    if write {
                        writes.push(took)
                    } else {
                        reads.push(took)
                    }
                }
                (reads, writes)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    let mut all = Mixed {
        reads: Vec::new(),
        writes: Vec::new(),
    };
    for t in threads {
        let (r, w) = t.join().expect("client thread");
        all.reads.extend(r);
        all.writes.extend(w);
    }
    all
}

/// Calls per second of one request sent over and over by one client for `secs` seconds.
pub fn rate(socket: &Path, req: &[u8], secs: f64) -> f64 {
    let t = Instant::now();
    let mut n = 0u64;
    while t.elapsed().as_secs_f64() < secs {
        let out = call_raw(socket, req).expect("call");
        assert!(out.starts_with(b"0\0"), "{}", String::from_utf8_lossy(&out));
        n += 1;
    }
    n as f64 / t.elapsed().as_secs_f64()
}

/// `admin.Events` subscribers from `src` that read everything until told to stop.
pub struct Subscribers {
    stop: Arc<AtomicBool>,
    received: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Subscribers {
    /// Connects `n` subscribers and waits until each has its `connection-established`.
    pub fn start(socket: &Path, src: &str, n: usize) -> Subscribers {
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(AtomicU64::new(0));
        let ready = Arc::new(AtomicU64::new(0));
        let threads = (0..n)
            .map(|_| {
                let mut s = subscribe(socket, src);
                let (stop, received, ready) = (stop.clone(), received.clone(), ready.clone());
                std::thread::spawn(move || {
                    let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
                    let mut buf = vec![0u8; 1 << 16];
                    let mut first = true;
                    while !stop.load(Ordering::Relaxed) {
                        match s.read(&mut buf) {
                            Ok(0) => return,
                            Ok(k) => {
                                if first {
                                    ready.fetch_add(1, Ordering::Relaxed);
                                    first = false;
                                }
                                received.fetch_add(k as u64, Ordering::Relaxed);
                            }
                            Err(_) => {}
                        }
                    }
                })
            })
            .collect();
        while ready.load(Ordering::Relaxed) < n as u64 {
            std::thread::sleep(Duration::from_millis(5));
        }
        Subscribers {
            stop,
            received,
            threads,
        }
    }

    /// Stops reading and disconnects; returns the bytes received.
    pub fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        self.received.load(Ordering::Relaxed)
    }
}

/// An `admin.Events` connection from `src` to dom0 (everything), request sent.
pub fn subscribe(socket: &Path, src: &str) -> UnixStream {
    let mut s = UnixStream::connect(socket).expect("connect");
    s.write_all(&Request::encode("admin.Events", "", src, "dom0", b""))
        .expect("send");
    s.shutdown(std::net::Shutdown::Write).expect("half-close");
    s
}

/// `feature.Set` calls per second from one client for `secs` seconds, values of
/// `value_len` bytes (`feature` on `vm`).
pub fn feature_writes(socket: &Path, vm: &str, value_len: usize, secs: f64) -> f64 {
    let t = Instant::now();
    let mut n = 0usize;
    while t.elapsed().as_secs_f64() < secs {
        feature_set(socket, vm, n, value_len);
        n += 1;
    }
    n as f64 / t.elapsed().as_secs_f64()
}

/// One `feature.Set bench` on `vm` with a value of `value_len` bytes that differs per `i`.
pub fn feature_set(socket: &Path, vm: &str, i: usize, value_len: usize) {
    let mut value = format!("{i:08}").into_bytes();
    value.resize(value_len.max(8), b'x');
    let out = call_raw(
        socket,
        &Request::encode("admin.vm.feature.Set", "bench", "dom0", vm, &value),
    )
    .expect("call");
    assert_eq!(out, b"0\0", "{}", String::from_utf8_lossy(&out));
}
