//! [`Hypervisor`] through libvirt. libvirt calls block, so one thread owns the connection and
//! runs jobs sent to it; callers wait a bounded time, so a hung libvirt gives a clear error
//! instead of a hang. A broken connection is reopened with backoff.

use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::time::Duration;

use virt::connect::Connect;
use virt::domain::{Domain, DomainState};
use virt::sys;

use super::{DomainStatus, HvError, Hypervisor, LifecycleEvent, events};
use crate::model::PowerState;

/// Longest wait for one libvirt call.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

type Job = Box<dyn FnOnce(Option<&Connect>) + Send>;

/// A libvirt connection served by its own thread.
pub struct Libvirt {
    jobs: Sender<Job>,
    kind: &'static str,
}

fn err(e: virt::error::Error) -> HvError {
    HvError(e.message().to_string())
}

fn power(state: DomainState) -> PowerState {
    match state {
        DomainState::Running | DomainState::Blocked => PowerState::Running,
        DomainState::Paused => PowerState::Paused,
        DomainState::Shutdown => PowerState::Halting,
        DomainState::Shutoff | DomainState::NoState => PowerState::Halted,
        DomainState::Crashed => PowerState::Crashed,
        DomainState::PMSuspended => PowerState::Suspended,
    }
}

fn status_of(dom: &Domain) -> Result<DomainStatus, HvError> {
    let info = dom.info().map_err(err)?;
    let state = match info.state {
        virt::enumutil::Enum::Known(s) => power(s),
        virt::enumutil::Enum::Unknown(_) => PowerState::NA,
    };
    let running = !matches!(state, PowerState::Halted);
    Ok(DomainStatus {
        state,
        mem_kib: if running { info.memory } else { 0 },
        maxmem_kib: if running { info.max_mem } else { 0 },
        cputime_ns: if running { info.cpu_time } else { 0 },
        vcpus: info.nr_virt_cpu,
        id: dom.id().map(i64::from).unwrap_or(-1),
    })
}

/// The libvirt domain type for a connection URI.
fn kind_for(uri: &str) -> &'static str {
    if uri.starts_with("test:") {
        "test"
    } else if uri.starts_with("xen") {
        "xen"
    } else {
        "kvm"
    }
}

fn open(uri: &str, events_tx: &Sender<LifecycleEvent>, watch: bool) -> Result<Connect, String> {
    let conn = Connect::open(Some(uri)).map_err(|e| e.message().to_string())?;
    if watch && let Err(e) = events::register(&conn, events_tx.clone()) {
        tracing::warn!("{e}: state changes made outside qubesd will be missed");
    }
    Ok(conn)
}

impl Libvirt {
    /// Starts the connection thread. Lifecycle events arrive on the returned receiver. A
    /// connection that cannot be opened now is retried in the background.
    ///
    /// `watch_events` runs libvirt's default event loop. That loop iterates GLib's default
    /// main context, so it must be off inside a GTK program (the embedded core): there only
    /// qubesd's own lifecycle changes are seen, which it reports itself.
    pub fn start(uri: &str, watch_events: bool) -> (Arc<Libvirt>, Receiver<LifecycleEvent>) {
        // libvirt prints every error on stderr by default; we report them ourselves.
        virt::error::clear_error_callback();
        if watch_events {
            events::start_event_loop();
        }
        let (events_tx, events_rx) = mpsc::channel();
        let (jobs, job_rx) = mpsc::channel::<Job>();
        let uri = uri.to_string();
        let kind = kind_for(&uri);
        let spawned = std::thread::Builder::new()
            .name("libvirt".into())
            .spawn(move || serve(&uri, job_rx, events_tx, watch_events));
        if let Err(e) = spawned {
            tracing::error!("libvirt thread: {e}");
        }
        (Arc::new(Libvirt { jobs, kind }), events_rx)
    }

    /// Runs `f` on the libvirt thread and waits for its answer.
    fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connect) -> Result<T, HvError> + Send + 'static,
    ) -> Result<T, HvError> {
        let (tx, rx): (SyncSender<Result<T, HvError>>, _) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |conn| {
            let r = match conn {
                Some(c) => f(c),
                None => Err(HvError("not connected to libvirt".into())),
            };
            let _ = tx.send(r);
        });
        self.jobs
            .send(job)
            .map_err(|_| HvError("the libvirt thread is gone".into()))?;
        rx.recv_timeout(CALL_TIMEOUT)
            .map_err(|_| HvError("libvirt did not answer in time".into()))?
    }

    fn with_domain<T: Send + 'static>(
        &self,
        name: &str,
        f: impl FnOnce(&Domain) -> Result<T, virt::error::Error> + Send + 'static,
    ) -> Result<T, HvError> {
        let name = name.to_string();
        self.run(move |c| {
            let dom = c.lookup_domain_by_name(&name).map_err(err)?;
            f(&dom).map_err(err)
        })
    }
}

/// The connection thread: serves jobs, reconnects with backoff when the connection breaks.
fn serve(uri: &str, jobs: Receiver<Job>, events_tx: Sender<LifecycleEvent>, watch: bool) {
    let mut conn = match open(uri, &events_tx, watch) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!("libvirt {uri}: {e}; will retry");
            None
        }
    };
    let mut backoff = Duration::from_millis(250);
    let mut next_try = std::time::Instant::now();
    loop {
        let job = match jobs.recv_timeout(Duration::from_secs(2)) {
            Ok(j) => Some(j),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        let alive = conn.as_ref().is_some_and(|c| c.is_alive().unwrap_or(false));
        if !alive {
            if conn.take().is_some() {
                tracing::warn!("lost the connection to libvirt {uri}");
                let _ = events_tx.send(LifecycleEvent::ConnectionLost);
            }
            if std::time::Instant::now() >= next_try {
                match open(uri, &events_tx, watch) {
                    Ok(c) => {
                        tracing::info!("connected to libvirt {uri}");
                        conn = Some(c);
                        backoff = Duration::from_millis(250);
                        let _ = events_tx.send(LifecycleEvent::Reconnected);
                    }
                    Err(_) => {
                        next_try = std::time::Instant::now() + backoff;
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                    }
                }
            }
        }
        if let Some(job) = job {
            job(conn.as_ref());
        }
    }
}

impl Hypervisor for Libvirt {
    fn define(&self, xml: &str) -> Result<(), HvError> {
        let xml = xml.to_string();
        self.run(move |c| c.define_domain_xml(&xml).map(|_| ()).map_err(err))
    }

    fn start(&self, name: &str) -> Result<(), HvError> {
        self.with_domain(name, |d| d.create().map(|_| ()))
    }

    fn shutdown(&self, name: &str) -> Result<(), HvError> {
        self.with_domain(name, |d| d.shutdown().map(|_| ()))
    }

    fn destroy(&self, name: &str) -> Result<(), HvError> {
        self.with_domain(name, |d| d.destroy())
    }

    fn suspend(&self, name: &str) -> Result<(), HvError> {
        self.with_domain(name, |d| d.suspend().map(|_| ()))
    }

    fn resume(&self, name: &str) -> Result<(), HvError> {
        self.with_domain(name, |d| d.resume().map(|_| ()))
    }

    fn block_resize(&self, name: &str, path: &str, bytes: u64) -> Result<(), HvError> {
        let (name, path) = (name.to_string(), path.to_string());
        // VIR_DOMAIN_BLOCK_RESIZE_BYTES: the size is in bytes, not KiB.
        self.run(move |c| {
            let d = c.lookup_domain_by_name(&name).map_err(err)?;
            d.block_resize(&path, bytes, 1).map_err(err)
        })
    }

    fn undefine(&self, name: &str) -> Result<(), HvError> {
        let name = name.to_string();
        self.run(move |c| match c.lookup_domain_by_name(&name) {
            Ok(d) => d.undefine().map_err(err),
            Err(_) => Ok(()),
        })
    }

    fn status(&self, name: &str) -> Result<Option<DomainStatus>, HvError> {
        let name = name.to_string();
        self.run(move |c| match c.lookup_domain_by_name(&name) {
            Ok(d) => status_of(&d).map(Some),
            Err(_) => Ok(None),
        })
    }

    fn list(&self) -> Result<Vec<(String, DomainStatus)>, HvError> {
        self.run(|c| {
            let doms = c.list_all_domains(0).map_err(err)?;
            let mut out = Vec::with_capacity(doms.len());
            for d in doms {
                if let Ok(name) = d.name() {
                    out.push((name, status_of(&d)?));
                }
            }
            Ok(out)
        })
    }

    fn console(&self, name: &str) -> Result<Option<String>, HvError> {
        self.with_domain(name, |d| {
            let xml = d.xml_desc(0 as sys::virDomainXMLFlags)?;
            Ok(xml
                .split("tty='")
                .nth(1)
                .and_then(|rest| rest.split('\'').next())
                .map(str::to_string))
        })
    }

    fn domain_type(&self) -> &'static str {
        self.kind
    }

    fn node_info(&self) -> Result<super::NodeInfo, HvError> {
        self.run(|c| {
            let info = c.node_info().map_err(err)?;
            Ok(super::NodeInfo {
                memory_kib: info.memory,
                cpus: u64::from(info.cpus),
            })
        })
    }

    fn pci_node_devices(&self) -> Result<Vec<String>, HvError> {
        self.run(|c| {
            let devs = c.list_all_node_devices(0).map_err(err)?;
            let mut out = Vec::new();
            for d in devs {
                // The reference picks devices by capability, not by name.
                if d.list_caps()
                    .is_ok_and(|caps| caps.iter().any(|c| c == "pci"))
                {
                    out.push(d.xml_desc(0).map_err(err)?);
                }
            }
            Ok(out)
        })
    }

    fn live_xml(&self, name: &str) -> Result<String, HvError> {
        self.with_domain(name, |d| d.xml_desc(0 as sys::virDomainXMLFlags))
    }

    fn attach_device(&self, name: &str, xml: &str) -> Result<(), HvError> {
        let xml = xml.to_string();
        // VIR_DOMAIN_AFFECT_LIVE: the running domain only; its definition is rewritten at the
        // next start from the assignments.
        self.with_domain(name, move |d| d.attach_device_flags(&xml, 1))
    }

    fn detach_device(&self, name: &str, xml: &str) -> Result<(), HvError> {
        let xml = xml.to_string();
        self.with_domain(name, move |d| d.detach_device_flags(&xml, 1))
    }
}
