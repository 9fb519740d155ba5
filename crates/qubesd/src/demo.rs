//! A realistic demo system, created through the Admin API itself so that it passes every rule a
//! real system does: dom0, two templates, sys-net, sys-firewall, sys-usb, work, personal,
//! vault, untrusted and a disposable template; work, sys-firewall, sys-net and sys-usb run.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use qubes_api::Request;

use crate::api::Socket;
use crate::core::Core;

/// Kernel version installed in the demo's kernel directory.
pub const DEMO_KERNEL: &str = "6.6.48-1.qubes";

/// A libvirt test-driver node with no domains (and an honest host size for the demo).
pub const EMPTY_TEST_NODE: &str = "<node>\n  <cpu>\n    <nodes>1</nodes>\n    <sockets>1</sockets>\n    <cores>4</cores>\n    <threads>2</threads>\n    <mhz>2400</mhz>\n  </cpu>\n  <memory>16777216</memory>\n</node>\n";

/// The demo's libvirt test node: a laptop's PCI devices (what dom0 exposes) and no domains.
pub const DEMO_TEST_NODE: &str = concat!(
    "<node>\n  <cpu>\n    <nodes>1</nodes>\n    <sockets>1</sockets>\n    <cores>4</cores>\n    <threads>2</threads>\n    <mhz>2400</mhz>\n  </cpu>\n  <memory>16777216</memory>\n",
    "  <device>\n    <name>pci_0000_00_00_0</name>\n    <parent>computer</parent>\n    <capability type='pci'>\n      <class>0x060000</class>\n      <domain>0</domain>\n      <bus>0</bus>\n      <slot>0</slot>\n      <function>0</function>\n      <product id='0x4621'>Alder Lake-P Host Bridge/DRAM Registers</product>\n      <vendor id='0x8086'>Intel Corporation</vendor>\n    </capability>\n  </device>\n",
    "  <device>\n    <name>pci_0000_00_02_0</name>\n    <parent>computer</parent>\n    <capability type='pci'>\n      <class>0x030000</class>\n      <domain>0</domain>\n      <bus>0</bus>\n      <slot>2</slot>\n      <function>0</function>\n      <product id='0x46a6'>Alder Lake-P GT2 [Iris Xe Graphics]</product>\n      <vendor id='0x8086'>Intel Corporation</vendor>\n    </capability>\n  </device>\n",
    "  <device>\n    <name>pci_0000_00_06_0</name>\n    <parent>computer</parent>\n    <capability type='pci'>\n      <class>0x060400</class>\n      <domain>0</domain>\n      <bus>0</bus>\n      <slot>6</slot>\n      <function>0</function>\n      <product id='0x464d'>12th Gen Core Processor PCI Express x4 Controller #0</product>\n      <vendor id='0x8086'>Intel Corporation</vendor>\n    </capability>\n  </device>\n",
    "  <device>\n    <name>pci_0000_00_0d_0</name>\n    <parent>computer</parent>\n    <capability type='pci'>\n      <class>0x0c0330</class>\n      <domain>0</domain>\n      <bus>0</bus>\n      <slot>13</slot>\n      <function>0</function>\n      <product id='0x461e'>Alder Lake-P Thunderbolt 4 USB Controller</product>\n      <vendor id='0x8086'>Intel Corporation</vendor>\n    </capability>\n  </device>\n",
    "  <device>\n    <name>pci_0000_00_14_0</name>\n    <parent>computer</parent>\n    <capability type='pci'>\n      <class>0x0c0330</class>\n      <domain>0</domain>\n      <bus>0</bus>\n      <slot>20</slot>\n      <function>0</function>\n      <product id='0x51ed'>Alder Lake PCH USB 3.2 xHCI Host Controller</product>\n      <vendor id='0x8086'>Intel Corporation</vendor>\n    </capability>\n  </device>\n",
    "  <device>\n    <name>pci_0000_00_14_3</name>\n    <parent>computer</parent>\n    <capability type='pci'>\n      <class>0x028000</class>\n      <domain>0</domain>\n      <bus>0</bus>\n      <slot>20</slot>\n      <function>3</function>\n      <product id='0x51f0'>Alder Lake-P PCH CNVi WiFi</product>\n      <vendor id='0x8086'>Intel Corporation</vendor>\n    </capability>\n  </device>\n",
    "  <device>\n    <name>pci_0000_00_1c_0</name>\n    <parent>computer</parent>\n    <capability type='pci'>\n      <class>0x060400</class>\n      <domain>0</domain>\n      <bus>0</bus>\n      <slot>28</slot>\n      <function>0</function>\n      <product id='0x51b8'>Alder Lake-P PCH PCIe Root Port #1</product>\n      <vendor id='0x8086'>Intel Corporation</vendor>\n    </capability>\n  </device>\n",
    "  <device>\n    <name>pci_0000_00_1f_3</name>\n    <parent>computer</parent>\n    <capability type='pci'>\n      <class>0x040380</class>\n      <domain>0</domain>\n      <bus>0</bus>\n      <slot>31</slot>\n      <function>3</function>\n      <product id='0x51c8'>Alder Lake PCH-P High Definition Audio Controller</product>\n      <vendor id='0x8086'>Intel Corporation</vendor>\n    </capability>\n  </device>\n",
    "  <device>\n    <name>pci_0000_02_00_0</name>\n    <parent>pci_0000_00_1c_0</parent>\n    <capability type='pci'>\n      <class>0x020000</class>\n      <domain>0</domain>\n      <bus>2</bus>\n      <slot>0</slot>\n      <function>0</function>\n      <product id='0x8168'>RTL8111/8168/8411 PCI Express Gigabit Ethernet Controller</product>\n      <vendor id='0x10ec'>Realtek Semiconductor Co., Ltd.</vendor>\n    </capability>\n  </device>\n",
    "  <device>\n    <name>pci_0000_03_00_0</name>\n    <parent>pci_0000_00_06_0</parent>\n    <capability type='pci'>\n      <class>0x010802</class>\n      <domain>0</domain>\n      <bus>3</bus>\n      <slot>0</slot>\n      <function>0</function>\n      <product id='0xa80a'>NVMe SSD Controller PM9A1/PM9A3/980PRO</product>\n      <vendor id='0x144d'>Samsung Electronics Co Ltd</vendor>\n    </capability>\n  </device>\n",
    "</node>\n"
);

/// Creates what a Qubes dom0 has on disk before qubesd starts (an installed kernel).
pub fn prepare_dir(dir: &Path) -> std::io::Result<()> {
    let k = dir.join("vm-kernels").join(DEMO_KERNEL);
    std::fs::create_dir_all(&k)?;
    std::fs::write(k.join("vmlinuz"), b"")?;
    std::fs::write(k.join("initramfs"), b"")?;
    // A small sparse modules image, so the kernel volume has a size.
    std::fs::File::create(k.join("modules.img"))?.set_len(32 << 20)?;
    Ok(())
}

/// The calls that build the demo system, as (method, destination, argument, payload).
const SEED: &[(&str, &str, &str, &str)] = &[
    ("admin.property.Set", "dom0", "default_kernel", DEMO_KERNEL),
    (
        "admin.vm.Create.TemplateVM",
        "dom0",
        "",
        "name=fedora-41 label=black",
    ),
    (
        "admin.vm.Create.TemplateVM",
        "dom0",
        "",
        "name=debian-12-xfce label=black",
    ),
    ("admin.vm.feature.Set", "fedora-41", "os", "Linux"),
    ("admin.vm.feature.Set", "debian-12-xfce", "os", "Linux"),
    (
        "admin.property.Set",
        "dom0",
        "default_template",
        "fedora-41",
    ),
    (
        "admin.vm.Create.AppVM",
        "dom0",
        "fedora-41",
        "name=sys-net label=red",
    ),
    (
        "admin.vm.property.Set",
        "sys-net",
        "provides_network",
        "True",
    ),
    ("admin.vm.property.Set", "sys-net", "netvm", ""),
    ("admin.vm.property.Set", "sys-net", "memory", "425"),
    (
        "admin.vm.device.pci.Assign",
        "sys-net",
        "dom0+00_14.3",
        "mode='required'",
    ),
    (
        "admin.vm.device.pci.Assign",
        "sys-net",
        "dom0+00_1c.0-00_00.0",
        "mode='required' _no-strict-reset='True'",
    ),
    ("admin.vm.property.Set", "sys-net", "autostart", "True"),
    (
        "admin.vm.Create.AppVM",
        "dom0",
        "fedora-41",
        "name=sys-firewall label=green",
    ),
    (
        "admin.vm.property.Set",
        "sys-firewall",
        "provides_network",
        "True",
    ),
    ("admin.vm.property.Set", "sys-firewall", "netvm", "sys-net"),
    ("admin.vm.property.Set", "sys-firewall", "autostart", "True"),
    (
        "admin.vm.Create.AppVM",
        "dom0",
        "fedora-41",
        "name=sys-usb label=red",
    ),
    ("admin.vm.property.Set", "sys-usb", "netvm", ""),
    (
        "admin.vm.device.pci.Assign",
        "sys-usb",
        "dom0+00_14.0",
        "mode='required'",
    ),
    (
        "admin.vm.device.pci.Assign",
        "sys-usb",
        "dom0+00_0d.0",
        "mode='required'",
    ),
    (
        "admin.property.Set",
        "dom0",
        "default_netvm",
        "sys-firewall",
    ),
    ("admin.property.Set", "dom0", "clockvm", "sys-net"),
    ("admin.property.Set", "dom0", "updatevm", "sys-firewall"),
    (
        "admin.vm.Create.AppVM",
        "dom0",
        "fedora-41",
        "name=default-dvm label=red",
    ),
    (
        "admin.vm.property.Set",
        "default-dvm",
        "template_for_dispvms",
        "True",
    ),
    (
        "admin.vm.feature.Set",
        "default-dvm",
        "appmenus-dispvm",
        "1",
    ),
    (
        "admin.property.Set",
        "dom0",
        "default_dispvm",
        "default-dvm",
    ),
    (
        "admin.property.Set",
        "dom0",
        "management_dispvm",
        "default-dvm",
    ),
    (
        "admin.vm.Create.AppVM",
        "dom0",
        "fedora-41",
        "name=work label=blue",
    ),
    ("admin.vm.property.Set", "work", "memory", "800"),
    ("admin.vm.feature.Set", "work", "service.cups", "1"),
    (
        "admin.vm.Create.AppVM",
        "dom0",
        "debian-12-xfce",
        "name=personal label=yellow",
    ),
    (
        "admin.vm.Create.AppVM",
        "dom0",
        "fedora-41",
        "name=vault label=black",
    ),
    ("admin.vm.property.Set", "vault", "netvm", ""),
    (
        "admin.vm.property.Set",
        "vault",
        "include_in_backups",
        "True",
    ),
    (
        "admin.vm.Create.AppVM",
        "dom0",
        "debian-12-xfce",
        "name=untrusted label=red",
    ),
    (
        "admin.vm.property.Set",
        "untrusted",
        "default_dispvm",
        "default-dvm",
    ),
    ("admin.vm.tag.Set", "work", "work", ""),
    ("admin.vm.tag.Set", "personal", "personal", ""),
    // Some qubes run: work brings up sys-firewall and sys-net with it.
    ("admin.vm.Start", "work", "", ""),
    ("admin.vm.Start", "sys-usb", "", ""),
];

/// Puts some data into the demo's images, so that disk usage shows what a used system has:
/// a few MiB in each template's root and each qube's private volume.
fn fill_images(core: &Core) {
    let st = core.snapshot();
    use std::os::unix::fs::FileExt;
    let block: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8 + 1).collect();
    for d in st.domains.values() {
        for v in crate::storage::volumes(&st, d) {
            if !v.save_on_stop {
                continue;
            }
            let mib: u64 = match v.name.as_str() {
                "root" => 12,
                "private" => 1 + d.name.len() as u64 % 4,
                _ => continue,
            };
            let Ok(path) = crate::storage::vol_driver(&v).and_then(|drv| drv.export(&v)) else {
                continue;
            };
            if let Ok(f) = std::fs::OpenOptions::new().write(true).open(&path) {
                for i in 0..mib * 16 {
                    let _ = f.write_all_at(&block, i * block.len() as u64);
                }
            }
        }
    }
}

/// Builds the demo system in `core` (an empty, freshly created store).
pub fn seed(core: &Core) {
    let mut filled = false;
    for (method, dest, arg, payload) in SEED {
        if *method == "admin.vm.Start" && !filled {
            fill_images(core);
            filled = true;
        }
        let raw = Request::encode(method, arg, "dom0", dest, payload.as_bytes());
        let req = Request::parse(&raw).expect("seed requests are well formed");
        if let Err(e) = crate::dispatch::call(core, Socket::Admin, &req) {
            tracing::warn!("demo seed {method}+{arg} on {dest}: {e}");
        }
    }
}

/// CPU time for the domains of libvirt's test driver (the demo's and the tests'), whose
/// domains all report the wall clock as their CPU time: every running qube then used 100 %
/// of its virtual CPUs in the statistics, a paused one too. Each running qube gets CPU time at
/// a plausible rate of its own instead (service qubes `sys-*` 0.2-2 %, other qubes 2-17 % of a
/// virtual CPU, swelling and ebbing over half a minute or so); a paused qube gets none. Only
/// the statistics sampler uses it, and only on the test driver: what qubesd reports on Xen or
/// KVM does not change.
#[derive(Debug, Default)]
pub struct TestDriverCpu {
    start: Option<Instant>,
    /// Per domain: when last seen and its CPU time then, in nanoseconds.
    clocks: HashMap<String, (Instant, u64)>,
}

impl TestDriverCpu {
    /// Replaces the CPU time of each domain of `list` with its plausible one, now.
    pub fn adjust(&mut self, list: &mut [(String, crate::hypervisor::DomainStatus)]) {
        self.adjust_at(list, Instant::now());
    }

    /// As [`TestDriverCpu::adjust`], at the time `now`.
    pub fn adjust_at(
        &mut self,
        list: &mut [(String, crate::hypervisor::DomainStatus)],
        now: Instant,
    ) {
        let start = *self.start.get_or_insert(now);
        let mut seen = HashMap::with_capacity(list.len());
        for (name, status) in list.iter_mut() {
            let (last, mut cpu_ns) = self.clocks.get(name).copied().unwrap_or((now, 0));
            if status.state == crate::model::PowerState::Running {
                let elapsed = now.saturating_duration_since(last).as_nanos() as f64;
                let at = now.saturating_duration_since(start).as_secs_f64();
                let share = load(name, at) * f64::from(status.vcpus.max(1));
                cpu_ns = cpu_ns.saturating_add((elapsed * share) as u64);
            }
            status.cputime_ns = cpu_ns;
            seen.insert(name.clone(), (now, cpu_ns));
        }
        self.clocks = seen;
    }
}

/// The share of one virtual CPU a demo qube uses `at` seconds after the first sample.
fn load(name: &str, at: f64) -> f64 {
    // FNV-1a: a steady number per name, the same in every run.
    let h = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let level = if name.starts_with("sys-") {
        0.003 + (h % 13) as f64 / 1000.0
    } else {
        0.03 + (h % 101) as f64 / 1000.0
    };
    let period = 20.0 + (h % 41) as f64;
    let phase = (h % 628) as f64 / 100.0;
    level * (1.0 + 0.3 * (std::f64::consts::TAU * at / period + phase).sin())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The sampler's default interval.
    const ROUND: Duration = Duration::from_secs(3);
    use crate::hypervisor::DomainStatus;
    use crate::model::PowerState;

    fn running(state: PowerState, vcpus: u32) -> DomainStatus {
        DomainStatus {
            state,
            mem_kib: 400 << 10,
            maxmem_kib: 4000 << 10,
            cputime_ns: 0,
            vcpus,
            id: 1,
        }
    }

    /// The percent of its virtual CPUs each domain used between two samples, as the
    /// statistics round computes it.
    fn usage(
        a: &[(String, DomainStatus)],
        b: &[(String, DomainStatus)],
        wall: Duration,
    ) -> Vec<u64> {
        a.iter()
            .zip(b)
            .map(|((_, x), (_, y))| {
                (y.cputime_ns - x.cputime_ns) / 1_000_000 * 100
                    / wall.as_millis() as u64
                    / u64::from(y.vcpus)
            })
            .collect()
    }

    #[test]
    fn demo_qubes_use_plausible_cpu_of_their_own_and_none_while_paused() {
        let mut cpu = TestDriverCpu::default();
        let t0 = Instant::now();
        let list = |paused: bool| {
            vec![
                ("sys-net".to_string(), running(PowerState::Running, 2)),
                ("sys-firewall".to_string(), running(PowerState::Running, 2)),
                ("work".to_string(), running(PowerState::Running, 2)),
                ("personal".to_string(), running(PowerState::Running, 4)),
                (
                    "vault".to_string(),
                    running(
                        if paused {
                            PowerState::Paused
                        } else {
                            PowerState::Running
                        },
                        2,
                    ),
                ),
            ]
        };
        let mut samples = Vec::new();
        for i in 0..20 {
            let mut l = list(i >= 10);
            cpu.adjust_at(&mut l, t0 + ROUND * i);
            samples.push(l);
        }
        let rounds: Vec<Vec<u64>> = samples
            .windows(2)
            .map(|w| usage(&w[0], &w[1], ROUND))
            .collect();
        for r in &rounds {
            // Service qubes stay low, the user's qubes clearly above; never beyond 100 %.
            assert!(r[0] <= 1 && r[1] <= 1, "{r:?}");
            assert!(
                (2..=17).contains(&r[2]) && (2..=17).contains(&r[3]),
                "{r:?}"
            );
        }
        // The same qube varies over time; two user qubes differ.
        let work: std::collections::BTreeSet<u64> = rounds.iter().map(|r| r[2]).collect();
        assert!(work.len() > 1, "{work:?}");
        assert!(rounds.iter().any(|r| r[2] != r[3]));
        // vault uses CPU while it runs and none once paused.
        assert!(rounds[..9].iter().all(|r| r[4] > 0), "{rounds:?}");
        assert!(rounds[10..].iter().all(|r| r[4] == 0), "{rounds:?}");
    }
}
