//! Disk space, as the reference's disk-space widget watches it: storage pools (their data and,
//! where the driver has it, their metadata) and the volumes of running qubes (private storage,
//! and system storage where it is the qube's own) over [`WARN`] percent full; [`URGENT`] and
//! more is urgent. Read with `admin.pool.*` and `admin.vm.volume.Info` on a worker thread, when
//! qubes start or stop, pools come or go, and every few minutes.

use qubes_api::Client;

use crate::i18n::tr;

/// Percent full from which the tray warns.
pub const WARN: u8 = 90;
/// Percent full from which the warning is urgent.
pub const URGENT: u8 = 95;

/// What is running out of space.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DiskItem {
    /// A storage pool's data.
    Pool(String),
    /// A storage pool's metadata (thin LVM).
    Metadata(String),
    /// A volume of a running qube.
    Volume {
        /// The qube.
        vm: String,
        /// The volume (`private`, `root`).
        volume: String,
    },
}

/// Something over [`WARN`] percent full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskWarning {
    /// What.
    pub item: DiskItem,
    /// How full, in percent.
    pub percent: u8,
}

impl DiskWarning {
    /// Whether it is urgent.
    pub fn urgent(&self) -> bool {
        self.percent >= URGENT
    }

    /// What it says: "Pool varlibqubes is 93 % full".
    pub fn text(&self) -> String {
        let (what, name) = match &self.item {
            DiskItem::Pool(p) => (tr("Pool %1 is %2 % full"), p.clone()),
            DiskItem::Metadata(p) => (tr("The metadata of pool %1 is %2 % full"), p.clone()),
            DiskItem::Volume { vm, volume } if volume == "private" => {
                (tr("The private storage of %1 is %2 % full"), vm.clone())
            }
            DiskItem::Volume { vm, .. } => {
                (tr("The system storage of %1 is %2 % full"), vm.clone())
            }
        };
        what.replacen("%1", &name, 1)
            .replacen("%2", &self.percent.to_string(), 1)
    }

    /// The key of its notification (one per item, replaced as it changes).
    pub fn key(&self) -> String {
        match &self.item {
            DiskItem::Pool(p) => format!("disk:pool:{p}"),
            DiskItem::Metadata(p) => format!("disk:metadata:{p}"),
            DiskItem::Volume { vm, volume } => format!("disk:{vm}:{volume}"),
        }
    }

    /// The qube it is about, if any.
    pub fn qube(&self) -> Option<&str> {
        match &self.item {
            DiskItem::Volume { vm, .. } => Some(vm),
            _ => None,
        }
    }
}

/// How full `usage` of `size` is, in percent, when that is [`WARN`] or more (figures from the
/// daemon: a size of 0 or a usage over the size are taken as they are, capped at 100).
pub fn over(usage: u64, size: u64) -> Option<u8> {
    if size == 0 {
        return None;
    }
    let percent = (u128::from(usage) * 100 / u128::from(size)).min(100) as u8;
    (percent >= WARN).then_some(percent)
}

/// `key=value` lines as the storage calls answer them.
fn field(info: &str, key: &str) -> Option<u64> {
    info.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.trim().parse().ok())
}

/// Reads pools and running qubes' volumes and returns what is over [`WARN`] percent, pools
/// first. Blocking; what cannot be read is left out.
pub fn check(client: &Client) -> Vec<DiskWarning> {
    let mut out = Vec::new();
    for pool in client
        .call("admin.pool.List", "dom0", "", b"")
        .unwrap_or_default()
        .lines()
    {
        let Ok(info) = client.call("admin.pool.Info", "dom0", pool, b"") else {
            continue;
        };
        // A pool inside another (a directory on the same file system) is that one's.
        if info.lines().any(|l| l.starts_with("included_in=")) {
            continue;
        }
        if let (Some(size), Some(usage)) = (field(&info, "size"), field(&info, "usage"))
            && let Some(percent) = over(usage, size)
        {
            out.push(DiskWarning {
                item: DiskItem::Pool(pool.to_string()),
                percent,
            });
        }
        if let Ok(details) = client.call("admin.pool.UsageDetails", "dom0", pool, b"")
            && let (Some(size), Some(usage)) = (
                field(&details, "metadata_size"),
                field(&details, "metadata_usage"),
            )
            && let Some(percent) = over(usage, size)
        {
            out.push(DiskWarning {
                item: DiskItem::Metadata(pool.to_string()),
                percent,
            });
        }
    }
    let running = client
        .vm_list()
        .unwrap_or_default()
        .into_iter()
        .filter(|q| q.state == "Running" && q.class != "AdminVM");
    for q in running {
        for volume in ["private", "root"] {
            let Ok(info) = client.call("admin.vm.volume.Info", &q.name, volume, b"") else {
                continue;
            };
            // A snapshot of the template's root is the template's to watch.
            if info
                .lines()
                .any(|l| l == "snap_on_start=True" || l == "rw=False")
            {
                continue;
            }
            if let (Some(size), Some(usage)) = (field(&info, "size"), field(&info, "usage"))
                && let Some(percent) = over(usage, size)
            {
                out.push(DiskWarning {
                    item: DiskItem::Volume {
                        vm: q.name.clone(),
                        volume: volume.to_string(),
                    },
                    percent,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_and_words() {
        assert_eq!(over(89, 100), None);
        assert_eq!(over(90, 100), Some(90));
        assert_eq!(over(200, 100), Some(100));
        assert_eq!(over(5, 0), None);
        assert_eq!(over(u64::MAX, u64::MAX), Some(100));
        let w = DiskWarning {
            item: DiskItem::Volume {
                vm: "work".into(),
                volume: "private".into(),
            },
            percent: 96,
        };
        assert!(w.urgent());
        assert_eq!(w.text(), "The private storage of work is 96 % full");
        assert_eq!(w.key(), "disk:work:private");
        assert_eq!(w.qube(), Some("work"));
        let p = DiskWarning {
            item: DiskItem::Pool("varlibqubes".into()),
            percent: 91,
        };
        assert!(!p.urgent());
        assert_eq!(p.text(), "Pool varlibqubes is 91 % full");
        assert_eq!(field("size=10\nusage=7\n", "usage"), Some(7));
        assert_eq!(field("usage_x=1\n", "usage"), None);
    }
}
