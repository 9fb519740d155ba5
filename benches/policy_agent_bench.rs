//! The ask agent: time from a `policy.Ask` request on the agent's socket to the prompt drawn on
//! screen (the agent reports its first frame with `QUBES_POLICY_AGENT_TRACE`, on the same
//! monotonic clock), the first prompt after start and the following ones. Prints a table.
//! Run: `xvfb-run -a cargo bench --bench policy_agent_bench`.

// Benchmarks may unwrap: a panic here is a failed run, not a crashed program.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "support/measure.rs"]
mod measure;
use measure::percentile;

const ROUNDS: usize = 15;

/// CLOCK_MONOTONIC in microseconds, as `g_get_monotonic_time` reads it.
fn monotonic_us() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec * 1_000_000 + ts.tv_nsec / 1000
}

fn main() {
    if std::env::var_os("DISPLAY").is_none() {
        println!("policy agent benchmark: no display (run under xvfb-run -a)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agent.sock");
    let mut agent = Command::new(env!("CARGO_BIN_EXE_qrexec-policy-agent"))
        .arg("--socket")
        .arg(&socket)
        .args(["--timeout", "1"])
        .env("QUBES_POLICY_AGENT_TRACE", "1")
        .env("GSK_RENDERER", "cairo")
        .env("GTK_A11Y", "none")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut trace = BufReader::new(agent.stderr.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "the agent listens");
        std::thread::sleep(Duration::from_millis(10));
    }
    let targets: Vec<String> = (0..40).map(|i| format!("\"vm{i}\"")).collect();
    let icons: Vec<String> = (0..40)
        .map(|i| format!("\"vm{i}\": \"appvm-blue\""))
        .collect();
    let body = format!(
        "{{\"source\": \"work\", \"service\": \"qubes.FileCopy\", \"argument\": \"+\", \"targets\": [{}], \"default_target\": \"vm3\", \"icons\": {{{}}}}}",
        targets.join(", "),
        icons.join(", ")
    );
    let mut latencies = Vec::new();
    for _ in 0..ROUNDS {
        let t0 = monotonic_us();
        let mut conn = UnixStream::connect(&socket).unwrap();
        conn.write_all(b"policy.Ask dom0 name dom0\0").unwrap();
        conn.write_all(body.as_bytes()).unwrap();
        conn.shutdown(std::net::Shutdown::Write).unwrap();
        let drawn = loop {
            let mut line = String::new();
            assert!(trace.read_line(&mut line).unwrap() > 0, "the agent ended");
            if let Some(at) = line.trim_end().rsplit_once("at monotonic ") {
                break at.1.trim_end_matches(" us").parse::<i64>().unwrap();
            }
        };
        latencies.push(Duration::from_micros((drawn - t0).max(0) as u64));
        // The prompt denies after its one-second timeout; wait for that answer.
        let mut answer = String::new();
        std::io::Read::read_to_string(&mut conn, &mut answer).unwrap();
        assert_eq!(answer, "deny");
    }
    let pid = libc::pid_t::try_from(agent.id()).expect("a process id fits in pid_t");
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let _ = agent.wait();
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
    let first = latencies[0];
    let mut rest = latencies[1..].to_vec();
    println!("policy agent benchmark: {ROUNDS} asks with 40 targets, request sent to prompt drawn");
    println!("| measure | result | target |");
    println!("|---|---|---|");
    println!("| first prompt after start | {} | < 150 ms |", ms(first));
    println!(
        "| later prompts p50 / max | {} / {} | < 150 ms |",
        ms(percentile(&mut rest, 0.5)),
        ms(percentile(&mut rest, 1.0))
    );
}
