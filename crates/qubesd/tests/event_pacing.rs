//! Event streams under a storm of writes with many subscribers: every subscriber gets every
//! event, in order, and the daemon writes to each at most its share of the write budget
//! (a burst, then one write per interval: 5 ms each with 50 subscribers). The pacing itself
//! is tested on a paused clock in `server.rs`; this is the real daemon over real sockets.

// Tests may unwrap: a panic there is a failed test, not a crashed daemon.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::TestDaemon;

/// Writes a stream gets at once after a quiet spell (the daemon's `Pace::BURST`).
const BURST: u64 = 32;
/// The spacing of one stream's writes with 50 subscribers (10,000 writes/s shared).
const INTERVAL_50: Duration = Duration::from_millis(5);
const SUBSCRIBERS: usize = 50;
const SETS: usize = 300;

/// What one subscriber read: the event bodies and how many reads brought them.
struct Received {
    events: Vec<String>,
    reads: u64,
}

/// Reads events until `feature-set:f` with value `last`; `subscribed` is waited on once
/// `connection-established` came (the subscription exists from then on).
fn read_until(mut s: UnixStream, last: &str, subscribed: &Barrier) -> Received {
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    let mut got = Received {
        events: Vec::new(),
        reads: 0,
    };
    let mut established = false;
    loop {
        let n = s.read(&mut chunk).expect("events within 30 s");
        assert!(n > 0, "stream closed");
        buf.extend_from_slice(&chunk[..n]);
        if established {
            got.reads += 1;
        }
        while buf.len() > 2 {
            let Ok((ev, used)) = qubes_api::framing::parse_event_body(&buf[2..]) else {
                break;
            };
            buf.drain(..used + 2);
            if ev.name == "connection-established" {
                established = true;
                subscribed.wait();
                continue;
            }
            let value = ev.get("value").unwrap_or_default().to_string();
            let done = ev.name == "domain-feature-set:f" && value == last;
            got.events.push(format!("{} {}", ev.name, value));
            if done {
                return got;
            }
        }
    }
}

#[test]
fn a_storm_reaches_every_subscriber_whole_in_paced_writes() {
    let d = TestDaemon::start();
    d.with_basic_qubes();
    let last = format!("{}", SETS - 1);
    let start = Instant::now();
    // The storm starts once every subscription exists.
    let subscribed = Arc::new(Barrier::new(SUBSCRIBERS + 1));
    let readers: Vec<_> = (0..SUBSCRIBERS)
        .map(|_| {
            let s = d.stream("admin.Events", "dom0", "dom0");
            let (last, subscribed) = (last.clone(), subscribed.clone());
            std::thread::spawn(move || {
                let got = read_until(s, &last, &subscribed);
                (got, start.elapsed())
            })
        })
        .collect();
    subscribed.wait();
    for i in 0..SETS {
        d.ok(
            "admin.vm.feature.Set",
            "work",
            "f",
            i.to_string().as_bytes(),
        );
    }
    let want: Vec<String> = (0..SETS)
        .flat_map(|i| {
            [
                format!("domain-feature-pre-set:f {i}"),
                format!("domain-feature-set:f {i}"),
            ]
        })
        .collect();
    let mut reads = Vec::new();
    for reader in readers {
        let (got, elapsed) = reader.join().unwrap();
        assert_eq!(got.events, want, "every event, once, in order");
        // A token bucket's bound: its burst, plus one write per interval since the first
        // Set (every write happened between the subscription and the last read).
        let bound = BURST + (elapsed.as_micros() / INTERVAL_50.as_micros()) as u64 + 1;
        assert!(
            got.reads <= bound,
            "{} reads in {elapsed:?}: more than the pace allows ({bound})",
            got.reads
        );
        reads.push(got.reads);
    }
    eprintln!(
        "{SETS} feature.Set to {SUBSCRIBERS} subscribers in {:?}: reads per subscriber {:?}",
        start.elapsed(),
        (reads.iter().min(), reads.iter().max())
    );
}
