//! The hypervisor as the core sees it: a few blocking operations and a stream of lifecycle
//! events. [`libvirt::Libvirt`] implements it with the `virt` crate on a dedicated thread.

pub mod domain_xml;
mod events;
pub mod libvirt;

use crate::model::PowerState;

/// What the hypervisor reports about one domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DomainStatus {
    /// Power state as qubesd names it.
    pub state: PowerState,
    /// Current memory in KiB.
    pub mem_kib: u64,
    /// Maximum memory in KiB.
    pub maxmem_kib: u64,
    /// CPU time in nanoseconds.
    pub cputime_ns: u64,
    /// Virtual CPUs.
    pub vcpus: u32,
    /// Hypervisor id (`xid`), -1 when not running.
    pub id: i64,
}

/// A lifecycle change reported by the hypervisor (possibly caused by someone else).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LifecycleEvent {
    /// The domain started.
    Started(String),
    /// The domain was paused.
    Suspended(String),
    /// The domain was resumed.
    Resumed(String),
    /// The domain stopped (shut down, destroyed, crashed).
    Stopped(String),
    /// The domain was suspended to RAM.
    PmSuspended(String),
    /// The connection to the hypervisor broke; states are unknown until it is back.
    ConnectionLost,
    /// The connection is back: states must be read again.
    Reconnected,
}

/// The host as the hypervisor describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeInfo {
    /// Memory in KiB.
    pub memory_kib: u64,
    /// Logical processors.
    pub cpus: u64,
}

/// Why a hypervisor operation failed; the message is shown to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HvError(pub String);

/// Operations the core needs. All of them block: call them off the async workers.
pub trait Hypervisor: Send + Sync {
    /// Defines (or redefines) a domain from its XML.
    fn define(&self, xml: &str) -> Result<(), HvError>;
    /// Starts a defined domain.
    fn start(&self, name: &str) -> Result<(), HvError>;
    /// Asks the domain to shut down.
    fn shutdown(&self, name: &str) -> Result<(), HvError>;
    /// Stops the domain at once.
    fn destroy(&self, name: &str) -> Result<(), HvError>;
    /// Pauses the domain.
    fn suspend(&self, name: &str) -> Result<(), HvError>;
    /// Resumes a paused domain.
    fn resume(&self, name: &str) -> Result<(), HvError>;
    /// Removes the domain's definition (no error if it does not exist).
    fn undefine(&self, name: &str) -> Result<(), HvError>;
    /// Status of one domain; `None` if the hypervisor does not know it.
    fn status(&self, name: &str) -> Result<Option<DomainStatus>, HvError>;
    /// Status of every domain the hypervisor knows.
    fn list(&self) -> Result<Vec<(String, DomainStatus)>, HvError>;
    /// The domain's console pty, if it has one.
    fn console(&self, name: &str) -> Result<Option<String>, HvError>;
    /// The libvirt domain type to write in domain XML (`test`, `kvm`, `xen`).
    fn domain_type(&self) -> &'static str;
    /// Tells a running domain that the disk backed by `path` now has `bytes` bytes.
    fn block_resize(&self, name: &str, path: &str, bytes: u64) -> Result<(), HvError>;
    /// XML descriptions of the host's PCI devices (node devices with the `pci` capability).
    fn pci_node_devices(&self) -> Result<Vec<String>, HvError>;
    /// The host's memory and processors, as libvirt counts them (on Xen, the whole
    /// machine's, not dom0's).
    fn node_info(&self) -> Result<NodeInfo, HvError>;
    /// The live XML of a defined domain.
    fn live_xml(&self, name: &str) -> Result<String, HvError>;
    /// Hot-plugs a device (libvirt device XML) into a running domain.
    fn attach_device(&self, name: &str, xml: &str) -> Result<(), HvError>;
    /// Hot-unplugs a device (libvirt device XML) from a running domain.
    fn detach_device(&self, name: &str, xml: &str) -> Result<(), HvError>;
}
