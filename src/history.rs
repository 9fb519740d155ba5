//! The last minutes of a running qube's CPU and memory use, kept from the statistics stream
//! (`admin.vm.Stats`) for the table's sparklines and the usage popover. Bounded: samples older
//! than [`KEEP_SECS`] go, and never more than [`MAX_SAMPLES`] stay, however often statistics
//! come.

use std::collections::VecDeque;
use std::sync::OnceLock;
use std::time::Instant;

/// How long samples are kept, in seconds.
pub const KEEP_SECS: u32 = 600;
/// The most samples kept (statistics every half second for ten minutes).
pub const MAX_SAMPLES: usize = 1200;

/// One statistics round's figures for a qube.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// When, in seconds since the program started ([`now`]).
    pub at: u32,
    /// CPU use in percent of its virtual CPUs.
    pub cpu: u8,
    /// Memory in KiB.
    pub mem_kib: u32,
}

/// Seconds since the program started (a monotonic clock).
pub fn now() -> u32 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    u32::try_from(start.elapsed().as_secs()).unwrap_or(u32::MAX)
}

/// A qube's samples, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    samples: VecDeque<Sample>,
}

impl History {
    /// Adds a sample taken at `at`, dropping what is too old or too many.
    pub fn push(&mut self, at: u32, cpu: u32, mem_kib: u64) {
        self.samples.push_back(Sample {
            at,
            cpu: cpu.min(100) as u8,
            mem_kib: u32::try_from(mem_kib).unwrap_or(u32::MAX),
        });
        let oldest = at.saturating_sub(KEEP_SECS);
        while self
            .samples
            .front()
            .is_some_and(|s| s.at < oldest || self.samples.len() > MAX_SAMPLES)
        {
            self.samples.pop_front();
        }
    }

    /// Forgets everything (the qube stopped).
    pub fn clear(&mut self) {
        self.samples.clear();
    }

    /// How many samples there are.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The samples taken at `since` or later, oldest first.
    pub fn since(&self, since: u32) -> impl Iterator<Item = &Sample> {
        let first = self.samples.partition_point(|s| s.at < since);
        self.samples.range(first..)
    }

    /// The newest sample.
    pub fn last(&self) -> Option<&Sample> {
        self.samples.back()
    }

    /// The highest CPU use and memory since `since`.
    pub fn peaks(&self, since: u32) -> (u8, u32) {
        self.since(since)
            .fold((0, 0), |(c, m), s| (c.max(s.cpu), m.max(s.mem_kib)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_and_surplus_samples_go() {
        let mut h = History::default();
        for t in 0..700 {
            h.push(t, t, u64::from(t) * 1024);
        }
        assert_eq!(h.len(), 601, "ten minutes back from 699: 99..=699");
        assert_eq!(h.since(0).next().map(|s| s.at), Some(99));
        assert_eq!(h.last().map(|s| s.cpu), Some(100), "capped at 100 %");
        assert_eq!(h.peaks(690), (100, 699 * 1024));
        assert_eq!(h.since(698).count(), 2);
        let mut burst = History::default();
        for _ in 0..5000 {
            burst.push(7, 1, 1);
        }
        assert_eq!(burst.len(), MAX_SAMPLES);
        burst.clear();
        assert!(burst.is_empty());
    }
}
