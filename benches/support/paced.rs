//! A daemon as slow as the reference qubesd (included with `#[path = ...] mod paced;`): a
//! real embedded qubesd whose answers are held back, one call at a time, for as long as the
//! reference takes to serve each (it runs every call on one Python event loop, so calls made
//! at the same time wait for each other). The event and statistics streams are not held back.
//!
//! The times are the reference's (QubesOS/qubes-core-admin 4.4 on libvirt's test driver, run
//! by /work/oracle's harness with 1000 app qubes; medians of 100 calls on this machine):
//! `admin.vm.List` 13.4 ms, `admin.vm.property.GetAll` 7.2 ms, every other call about 1.7 ms
//! (Get, tag.List, feature.List, feature.Get, volume.List, volume.Info, label.Get,
//! CurrentState); eight clients at once get no more than one: 5.3 ms a GetAll, 1.9 ms a
//! volume.Info. `BENCH_CALL_MS` replaces them with one time for every call.
#![allow(dead_code)]

use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use qubes_api::Transport;

/// The time the reference takes to serve `method` (with 1000 qubes).
pub fn reference_cost(method: &str) -> Duration {
    if let Some(ms) = std::env::var("BENCH_CALL_MS")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
    {
        return Duration::from_secs_f64(ms / 1000.0);
    }
    Duration::from_micros(match method {
        "admin.vm.List" => 13_400,
        "admin.vm.property.GetAll" | "admin.property.GetAll" => 7_200,
        _ => 1_700,
    })
}

/// A transport that serves one call at a time, each after `cost(method)`.
pub struct Paced<T> {
    inner: Arc<T>,
    one_at_a_time: Mutex<()>,
    cost: fn(&str) -> Duration,
}

impl<T: Transport> Paced<T> {
    /// `inner`, paced by `cost`.
    pub fn new(inner: Arc<T>, cost: fn(&str) -> Duration) -> Paced<T> {
        Paced {
            inner,
            one_at_a_time: Mutex::new(()),
            cost,
        }
    }
}

impl<T: Transport> Transport for Paced<T> {
    fn call_raw(
        &self,
        method: &str,
        dest: &str,
        arg: &str,
        payload: &[u8],
    ) -> std::io::Result<Vec<u8>> {
        let answer = self.inner.call_raw(method, dest, arg, payload)?;
        // The daemon's one thread: calls wait for each other.
        let _serving = self
            .one_at_a_time
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        std::thread::sleep((self.cost)(method));
        Ok(answer)
    }

    fn open_stream(&self, method: &str, dest: &str) -> std::io::Result<Box<dyn Read + Send>> {
        self.inner.open_stream(method, dest)
    }

    fn describe(&self) -> String {
        format!("{} (paced as the reference)", self.inner.describe())
    }

    fn real_system(&self) -> bool {
        false
    }
}
