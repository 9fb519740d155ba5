//! The qube model: classes, qubes, labels, pools, global properties (admin-api.md §3, §6).
//!
//! [`State`] is cheap to clone (qubes sit behind `Arc`), which is how a call that fails is
//! undone: the dispatcher keeps the old `State` and puts it back.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Qube classes (`admin.vmclass.List` order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// A qube based on a template.
    AppVM,
    /// A template.
    TemplateVM,
    /// A qube with its own root filesystem.
    StandaloneVM,
    /// dom0.
    AdminVM,
    /// A disposable.
    DispVM,
    /// A qube on another machine.
    RemoteVM,
}

impl Class {
    /// All classes, in `admin.vmclass.List` order.
    pub const ALL: [Class; 6] = [
        Class::AppVM,
        Class::TemplateVM,
        Class::StandaloneVM,
        Class::AdminVM,
        Class::DispVM,
        Class::RemoteVM,
    ];

    /// Class name on the wire and in qubes.xml.
    pub fn name(self) -> &'static str {
        match self {
            Class::AppVM => "AppVM",
            Class::TemplateVM => "TemplateVM",
            Class::StandaloneVM => "StandaloneVM",
            Class::AdminVM => "AdminVM",
            Class::DispVM => "DispVM",
            Class::RemoteVM => "RemoteVM",
        }
    }

    /// Parses a class name.
    pub fn from_name(s: &str) -> Option<Class> {
        Class::ALL.into_iter().find(|c| c.name() == s)
    }

    /// Position in [`Class::ALL`].
    pub fn index(self) -> usize {
        Class::ALL.iter().position(|c| *c == self).unwrap_or(0)
    }

    /// Bit in [`cls`].
    pub fn bit(self) -> u8 {
        match self {
            Class::AdminVM => cls::ADM,
            Class::AppVM => cls::APP,
            Class::TemplateVM => cls::TPL,
            Class::StandaloneVM => cls::SA,
            Class::DispVM => cls::DISP,
            Class::RemoteVM => cls::REM,
        }
    }

    /// Whether the class has a `template` property.
    pub fn has_template(self) -> bool {
        matches!(self, Class::AppVM | Class::DispVM)
    }

    /// AppVM, TemplateVM, StandaloneVM or DispVM: has storage, a domain and a netvm.
    pub fn is_local_qube(self) -> bool {
        matches!(
            self,
            Class::AppVM | Class::TemplateVM | Class::StandaloneVM | Class::DispVM
        )
    }

    /// Directory of a qube's side files below the state directory.
    pub fn dir_prefix(self) -> &'static str {
        match self {
            Class::TemplateVM => "vm-templates",
            _ => "appvms",
        }
    }
}

/// Class sets as bit masks.
pub mod cls {
    /// AdminVM.
    pub const ADM: u8 = 1;
    /// AppVM.
    pub const APP: u8 = 2;
    /// TemplateVM.
    pub const TPL: u8 = 4;
    /// StandaloneVM.
    pub const SA: u8 = 8;
    /// DispVM.
    pub const DISP: u8 = 16;
    /// RemoteVM.
    pub const REM: u8 = 32;
    /// The four local qube classes with storage and a hypervisor domain.
    pub const Q: u8 = APP | TPL | SA | DISP;
    /// Every class.
    pub const ALL: u8 = ADM | Q | REM;
    /// Pseudo class bit for the global (`Qubes`) holder.
    pub const GLOBAL: u8 = 64;
}

/// Power states (admin-api.md §3.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerState {
    /// Not running.
    Halted,
    /// Starting.
    Transient,
    /// Running.
    Running,
    /// Paused.
    Paused,
    /// Suspended to RAM.
    Suspended,
    /// Shutting down.
    Halting,
    /// Being destroyed.
    Dying,
    /// Crashed.
    Crashed,
    /// Unknown (hypervisor unreachable).
    NA,
}

impl PowerState {
    /// Name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            PowerState::Halted => "Halted",
            PowerState::Transient => "Transient",
            PowerState::Running => "Running",
            PowerState::Paused => "Paused",
            PowerState::Suspended => "Suspended",
            PowerState::Halting => "Halting",
            PowerState::Dying => "Dying",
            PowerState::Crashed => "Crashed",
            PowerState::NA => "NA",
        }
    }
}

/// A colour label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    /// Index (1..=8 built in, custom ones from 9).
    pub index: u32,
    /// Name.
    pub name: String,
    /// Colour as written, `0xRRGGBB`.
    pub color: String,
}

/// Highest index of the built-in labels.
pub const MAX_DEFAULT_LABEL: u32 = 8;

/// The eight built-in labels.
pub fn default_labels() -> BTreeMap<u32, Label> {
    [
        "red:0xcc0000",
        "orange:0xf57900",
        "yellow:0xedd400",
        "green:0x73d216",
        "gray:0x555555",
        "blue:0x3465a4",
        "purple:0x75507b",
        "black:0x000000",
    ]
    .iter()
    .enumerate()
    .map(|(i, s)| {
        let (name, color) = s.split_once(':').unwrap_or((s, ""));
        let index = i as u32 + 1;
        (
            index,
            Label {
                index,
                name: name.into(),
                color: color.into(),
            },
        )
    })
    .collect()
}

/// A storage pool as configured (the storage work fills in the drivers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    /// Pool name.
    pub name: String,
    /// Attributes as in qubes.xml, `name` and `driver` included, in written order.
    pub attrs: Vec<(String, String)>,
}

impl Pool {
    /// An attribute value.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A qube's volume configuration entry (`<volume-config><volume .../>`), attributes in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeConfig {
    /// Attributes as written (`name`, `pool`, `vid`, ...).
    pub attrs: Vec<(String, String)>,
}

/// A `<devices class="...">` element kept verbatim until the device work models it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceClassXml {
    /// Device class (`pci`, `block`, ...).
    pub class: String,
    /// `<device>` entries: attributes and `<option>` children.
    pub devices: Vec<DeviceXml>,
}

/// One persisted device assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceXml {
    /// Attributes of `<device>` in written order.
    pub attrs: Vec<(String, String)>,
    /// `<option name="..">value</option>` children.
    pub options: Vec<(String, String)>,
    /// The frontend listings name (transient, not written to `qubes.xml`).
    pub listed_frontend: ListedFrontend,
}

/// The `frontend_domain` device listings give an assignment. The reference lists the owner for
/// assignments read from `qubes.xml`, but keeps one made since it started as the caller sent
/// it: no frontend when the Assign payload named none, the named qube when it named one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListedFrontend {
    /// `frontend_domain` is left out.
    Hidden,
    /// The qube that has the assignment.
    Owner,
    /// The qube the Assign payload named.
    Named(String),
}

impl ListedFrontend {
    /// The name listings give, for an assignment of `owner`.
    pub fn name<'a>(&'a self, owner: &'a str) -> Option<&'a str> {
        match self {
            ListedFrontend::Hidden => None,
            ListedFrontend::Owner => Some(owner),
            ListedFrontend::Named(n) => Some(n),
        }
    }
}

/// One qube.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    /// Class.
    pub class: Class,
    /// Name (also in `props` for all but dom0).
    pub name: String,
    /// qid (also in `props` for all but dom0).
    pub qid: u32,
    /// Explicitly set properties, as strings.
    pub props: BTreeMap<String, String>,
    /// Features in insertion order.
    pub features: Vec<(String, String)>,
    /// Tags (always listed sorted).
    pub tags: BTreeSet<String>,
    /// Device assignments, as loaded.
    pub devices: Vec<DeviceClassXml>,
    /// Volume configuration, as created or loaded.
    pub volumes: Vec<VolumeConfig>,
    /// Current power state.
    pub power: PowerState,
    /// Hypervisor id while running (not persisted).
    pub xid: i64,
    /// Start time, seconds since the epoch, while running (not persisted).
    pub start_time: Option<String>,
}

impl Domain {
    /// A qube with no properties set besides the given ones.
    pub fn new(class: Class, name: &str, qid: u32) -> Domain {
        Domain {
            class,
            name: name.to_string(),
            qid,
            props: BTreeMap::new(),
            features: Vec::new(),
            tags: BTreeSet::new(),
            devices: Vec::new(),
            volumes: Vec::new(),
            power: if matches!(class, Class::AdminVM | Class::RemoteVM) {
                PowerState::Running
            } else {
                PowerState::Halted
            },
            xid: -1,
            start_time: None,
        }
    }

    /// A feature's value.
    pub fn feature(&self, name: &str) -> Option<&str> {
        self.features
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sets a feature, keeping its place if it exists; returns the old value.
    pub fn set_feature(&mut self, name: &str, value: &str) -> Option<String> {
        if let Some(slot) = self.features.iter_mut().find(|(k, _)| k == name) {
            return Some(std::mem::replace(&mut slot.1, value.to_string()));
        }
        self.features.push((name.to_string(), value.to_string()));
        None
    }

    /// Removes a feature; returns its value.
    pub fn remove_feature(&mut self, name: &str) -> Option<String> {
        let i = self.features.iter().position(|(k, _)| k == name)?;
        Some(self.features.remove(i).1)
    }

    /// The qube's uuid (dom0's is all zeros).
    pub fn uuid(&self) -> &str {
        self.props
            .get("uuid")
            .map(String::as_str)
            .unwrap_or("00000000-0000-0000-0000-000000000000")
    }

    /// Whether the hypervisor runs it (in any state but halted).
    pub fn is_active(&self) -> bool {
        !matches!(self.power, PowerState::Halted | PowerState::NA)
    }

    /// Label name.
    pub fn label(&self) -> &str {
        self.props.get("label").map(String::as_str).unwrap_or("")
    }
}

/// Facts about the host that some defaults use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostInfo {
    /// Host memory in MiB (global `maxmem`).
    pub memory_mib: u64,
    /// Host CPUs (global `no_cpus`).
    pub cpus: u64,
    /// dom0's `maxmem`.
    pub dom0_maxmem_mib: u64,
    /// Whether memory balancing can work (only under Xen): else qubes' `maxmem` defaults to 0.
    pub memory_balancing: bool,
    /// Directory of installed kernels (`vm-kernels`).
    pub kernels_dir: std::path::PathBuf,
    /// The directory the default file pool lives in.
    pub base_dir: String,
}

impl HostInfo {
    /// Reads the host's memory and CPU count from the running system.
    pub fn detect(base_dir: &str, memory_balancing: bool) -> HostInfo {
        let memory_mib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<u64>().ok())
            })
            .map(|kib| kib / 1024)
            .unwrap_or(4096);
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get() as u64)
            .unwrap_or(1);
        HostInfo {
            memory_mib,
            cpus,
            dom0_maxmem_mib: 4096,
            memory_balancing,
            kernels_dir: std::path::Path::new(base_dir).join("vm-kernels"),
            base_dir: base_dir.to_string(),
        }
    }

    /// Takes the host's memory and processors from the hypervisor (what `maxmem`,
    /// `no_cpus` and qubes' default `maxmem` are computed from). Memory counts whole MiB,
    /// as the reference's libvirt binding gives it.
    pub fn set_node(&mut self, memory_kib: u64, cpus: u64) {
        self.memory_mib = memory_kib >> 10;
        self.cpus = cpus;
    }
}

/// The whole persistent state of the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// Labels by index.
    pub labels: BTreeMap<u32, Label>,
    /// Pools in insertion order.
    pub pools: Vec<Pool>,
    /// Explicitly set global properties.
    pub global: BTreeMap<String, String>,
    /// Qubes by name.
    pub domains: BTreeMap<Arc<str>, Arc<Domain>>,
    /// Host facts (not persisted).
    pub host: HostInfo,
    /// Device classes of qubes that calls looked at, not yet in the qubes' `devices`.
    pub touched: DeviceTouches,
}

/// The device classes calls looked at, per qube, waiting to become (empty) `<devices>`
/// elements of qubes.xml.
///
/// The reference makes a qube's collection of a device class the first time anything looks
/// at it (its per-class dict creates entries on access: default `virt_mode`, `maxmem` and
/// `kernelopts`, the device calls), and saves every collection it has, empty or not, in
/// that order. Reads look at a snapshot they cannot change, so they note what they looked
/// at here (shared by every snapshot of one daemon) and the next write adds it to the
/// state ([`State::apply_device_touches`]). Comparing states ignores it.
#[derive(Clone, Default)]
pub struct DeviceTouches(Arc<std::sync::Mutex<Vec<(String, String)>>>);

/// Most pending notes kept (each names an existing qube and class; a write drains them).
const MAX_TOUCHES: usize = 65_536;

impl PartialEq for DeviceTouches {
    fn eq(&self, _: &DeviceTouches) -> bool {
        true
    }
}

impl Eq for DeviceTouches {}

impl std::fmt::Debug for DeviceTouches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceTouches")
    }
}

impl DeviceTouches {
    fn pending(&self) -> std::sync::MutexGuard<'_, Vec<(String, String)>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    /// A fresh system: dom0, the default labels and pools, as `qubes-create` makes it;
    /// `pool_driver` is the driver of the default `varlibqubes` pool.
    pub fn new_system(host: HostInfo, pool_driver: &str) -> State {
        let base = host.base_dir.clone();
        let mut dom0 = Domain::new(Class::AdminVM, "dom0", 0);
        dom0.props.insert("label".into(), "black".into());
        let mut st = State {
            labels: default_labels(),
            pools: vec![
                Pool {
                    name: "varlibqubes".into(),
                    attrs: vec![
                        ("name".into(), "varlibqubes".into()),
                        ("dir_path".into(), base.clone()),
                        ("driver".into(), pool_driver.into()),
                        ("revisions_to_keep".into(), "1".into()),
                        ("ephemeral_volatile".into(), "False".into()),
                    ],
                },
                Pool {
                    name: "linux-kernel".into(),
                    attrs: vec![
                        ("name".into(), "linux-kernel".into()),
                        (
                            "dir_path".into(),
                            host.kernels_dir.to_string_lossy().into_owned(),
                        ),
                        ("driver".into(), "linux-kernel".into()),
                    ],
                },
            ],
            global: BTreeMap::new(),
            domains: BTreeMap::new(),
            host,
            touched: DeviceTouches::default(),
        };
        st.global
            .insert("default_pool_kernel".into(), "linux-kernel".into());
        st.domains.insert("dom0".into(), Arc::new(dom0));
        st
    }

    /// A qube by name.
    pub fn domain(&self, name: &str) -> Option<&Domain> {
        self.domains.get(name).map(|d| d.as_ref())
    }

    /// A qube by uuid (lowercase canonical).
    pub fn domain_by_uuid(&self, uuid: &str) -> Option<&Domain> {
        self.domains
            .values()
            .map(|d| d.as_ref())
            .find(|d| d.uuid() == uuid)
    }

    /// Mutable access to a qube (copy on write).
    pub fn domain_mut(&mut self, name: &str) -> Option<&mut Domain> {
        self.domains.get_mut(name).map(Arc::make_mut)
    }

    /// Notes that a call looked at `vm`'s devices of `class` (see [`DeviceTouches`]).
    pub fn touch_devices(&self, vm: &Domain, class: &str) {
        if vm.devices.iter().any(|g| g.class == class) {
            return;
        }
        let mut pending = self.touched.pending();
        if pending.len() < MAX_TOUCHES && !pending.iter().any(|(n, c)| n == &vm.name && c == class)
        {
            pending.push((vm.name.clone(), class.to_string()));
        }
    }

    /// Whether calls looked at device classes not yet in the state.
    pub fn has_device_touches(&self) -> bool {
        !self.touched.pending().is_empty()
    }

    /// Adds the device classes calls looked at to the qubes (empty, after those they have);
    /// true if anything was added.
    pub fn apply_device_touches(&mut self) -> bool {
        let pending = std::mem::take(&mut *self.touched.pending());
        let mut changed = false;
        for (name, class) in pending {
            if let Some(d) = self.domains.get(name.as_str())
                && !d.devices.iter().any(|g| g.class == class)
                && let Some(d) = self.domain_mut(&name)
            {
                d.devices.push(DeviceClassXml {
                    class,
                    devices: Vec::new(),
                });
                changed = true;
            }
        }
        changed
    }

    /// Qubes in the reference's order: dom0 first, then by name (byte order).
    pub fn domains_sorted(&self) -> impl Iterator<Item = &Domain> {
        let dom0 = self.domains.values().filter(|d| d.class == Class::AdminVM);
        let rest = self.domains.values().filter(|d| d.class != Class::AdminVM);
        dom0.chain(rest).map(|d| d.as_ref())
    }

    /// Lowest unused qid in 1..=9999.
    pub fn next_qid(&self) -> Option<u32> {
        let used: BTreeSet<u32> = self.domains.values().map(|d| d.qid).collect();
        (1..=9999).find(|q| !used.contains(q))
    }

    /// A label by name, index string or `label-<N>`.
    pub fn find_label(&self, key: &str) -> Option<&Label> {
        if let Some(l) = self.labels.values().find(|l| l.name == key) {
            return Some(l);
        }
        let idx = key.strip_prefix("label-").unwrap_or(key);
        if !idx.is_empty() && idx.bytes().all(|b| b.is_ascii_digit()) {
            return idx.parse().ok().and_then(|i: u32| self.labels.get(&i));
        }
        None
    }

    /// A label as `app.get_label` finds it for API arguments: by name, else by index digits.
    pub fn find_label_for_api(&self, key: &str) -> Option<&Label> {
        if let Some(l) = self.labels.values().find(|l| l.name == key) {
            return Some(l);
        }
        if !key.is_empty() && key.bytes().all(|b| b.is_ascii_digit()) {
            return key.parse().ok().and_then(|i: u32| self.labels.get(&i));
        }
        None
    }

    /// A pool by name.
    pub fn pool(&self, name: &str) -> Option<&Pool> {
        self.pools.iter().find(|p| p.name == name)
    }

    /// The default of global `default_pool` (admin-api.md §3.5).
    pub fn default_pool_name(&self) -> Option<String> {
        if self.pool("default").is_some() {
            return Some("default".into());
        }
        self.pools
            .iter()
            .find(|p| {
                matches!(p.attr("driver"), Some("file") | Some("file-reflink"))
                    && p.attr("dir_path") == Some(self.host.base_dir.as_str())
            })
            .map(|p| p.name.clone())
    }

    /// Kernel options for a kernel without PCI devices: the kernel's own file, else the
    /// built-in default.
    pub fn default_kernelopts(&self, kernel: &str) -> String {
        self.kernel_file_or(kernel, "default-kernelopts-nopci.txt", "swiotlb=2048")
    }

    /// Kernel options for a qube with PCI devices: the kernel's own file, else none.
    pub fn default_kernelopts_pci(&self, kernel: &str) -> String {
        self.kernel_file_or(kernel, "default-kernelopts-pci.txt", "")
    }

    fn kernel_file_or(&self, kernel: &str, file: &str, fallback: &str) -> String {
        let path = self.host.kernels_dir.join(kernel).join(file);
        kernel_files::read(&path).unwrap_or_else(|| fallback.into())
    }
}

/// The kernels' default option files, read at most once per [`kernel_files::FRESH`]: a
/// `property.GetAll` of every qube (what a Qube Manager does at start) must not read the
/// disk a thousand times on the daemon's event loop.
mod kernel_files {
    use std::collections::HashMap;
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    /// How long a file's content is used before it is read again (a kernel package
    /// install changes it; nothing else does).
    pub const FRESH: Duration = Duration::from_secs(2);

    /// Files remembered at most (two per installed kernel).
    const MAX: usize = 256;

    type Cache = HashMap<PathBuf, (Instant, Option<String>)>;

    static CACHE: Mutex<Option<Cache>> = Mutex::new(None);

    /// The trimmed content of `path`, or `None` when it cannot be read.
    pub fn read(path: &Path) -> Option<String> {
        let now = Instant::now();
        {
            let cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((at, content)) = cache.as_ref().and_then(|c| c.get(path))
                && now.duration_since(*at) < FRESH
            {
                return content.clone();
            }
        }
        let content = std::fs::read_to_string(path)
            .ok()
            .map(|s| s.trim().to_string());
        let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
        let cache = cache.get_or_insert_with(HashMap::new);
        if cache.len() >= MAX {
            cache.clear();
        }
        cache.insert(path.to_path_buf(), (now, content.clone()));
        content
    }
}
