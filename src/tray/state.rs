//! What the tray knows about the qubes: the same [`QubeInfo`] rows and event mapping as the
//! Qube Manager's table ([`crate::model::change_for`]), kept in a plain map, plus the
//! notifications events deserve.

use std::collections::{BTreeMap, HashMap};

use qubes_api::Event;

use crate::i18n::tr;
use crate::loader::Refetch;
use crate::model::{Change, QubeInfo};

/// Properties the tray shows or decides by; a change of another property is not read again.
pub const TRAY_PROPS: [&str; 5] = ["label", "template", "netvm", "auto_cleanup", "is_preload"];

/// Every qube the daemon lets us see, by name.
#[derive(Debug, Default)]
pub struct Domains {
    /// Qubes by name.
    pub qubes: BTreeMap<String, QubeInfo>,
    /// Label name to colour (`0xRRGGBB`).
    pub colours: HashMap<String, String>,
    /// Whether the first load has finished.
    pub loaded: bool,
    /// Why the daemon cannot be reached, while it cannot (the tray retries every second).
    pub unreachable: Option<String>,
    /// What is running out of disk space, as last checked.
    pub disk: Vec<super::disk::DiskWarning>,
}

impl Domains {
    /// Replaces everything with a fresh load, keeping the last statistics of running qubes.
    pub fn replace(&mut self, colours: Vec<(String, String)>, qubes: Vec<QubeInfo>) {
        let old = std::mem::take(&mut self.qubes);
        self.colours = colours.into_iter().collect();
        for mut q in qubes {
            if q.state != "Halted" {
                q.stats = old.get(&q.name).and_then(|o| o.stats);
            }
            self.qubes.insert(q.name.clone(), q);
        }
        self.loaded = true;
        self.unreachable = None;
    }

    /// Applies a change; returns what must be read from the daemon for it.
    pub fn apply(&mut self, change: Change) -> Option<Refetch> {
        match change {
            Change::None | Change::Volumes(_) => None,
            Change::Tag { vm, tag, added } => {
                if let Some(q) = self.qubes.get_mut(&vm) {
                    q.set_tag(&tag, added);
                }
                None
            }
            Change::Reload => Some(Refetch::All),
            Change::Added(vm) => Some(Refetch::Qube(vm)),
            Change::Removed(vm) => {
                self.qubes.remove(&vm);
                None
            }
            Change::State { vm, state } => {
                if let Some(q) = self.qubes.get_mut(&vm) {
                    if matches!(state.as_str(), "Halted" | "Transient") {
                        q.stats = None;
                    }
                    q.state = state;
                }
                None
            }
            Change::Stats { vm, stats } => {
                if let Some(q) = self.qubes.get_mut(&vm) {
                    q.stats = Some(stats);
                }
                None
            }
            Change::RefetchProperty { vm, prop } => (self.qubes.contains_key(&vm)
                && TRAY_PROPS.contains(&prop.as_str()))
            .then_some(Refetch::Property(vm, prop)),
            Change::RefetchFeature { vm, feature } => self
                .qubes
                .contains_key(&vm)
                .then_some(Refetch::Feature(vm, feature)),
            Change::RefetchState(vm) => self.qubes.contains_key(&vm).then_some(Refetch::State(vm)),
        }
    }

    /// Qubes that are not halted, dom0 and other admin qubes first, then by name.
    pub fn running(&self) -> impl Iterator<Item = &QubeInfo> {
        let up = |q: &&QubeInfo| !matches!(q.state.as_str(), "Halted" | "NA");
        let admin = self.qubes.values().filter(|q| q.class == "AdminVM");
        let others = self
            .qubes
            .values()
            .filter(|q| !matches!(q.class.as_str(), "AdminVM" | "RemoteVM"));
        admin.filter(up).chain(others.filter(up))
    }

    /// Running qubes, the memory they use in KiB, and how busy their virtual CPUs are
    /// together, in percent: each qube's figure is of its own CPUs, so the total weighs each by
    /// its number of CPUs (a sum of percentages of different things meant nothing: 202 %).
    pub fn totals(&self) -> (usize, u64, u32) {
        let (mut n, mut mem, mut busy, mut cpus) = (0, 0, 0u64, 0u64);
        for q in self.running() {
            n += 1;
            if let Some(s) = q.stats {
                mem += s.mem_kib;
                busy += u64::from(s.cpu) * u64::from(s.vcpus);
                cpus += u64::from(s.vcpus);
            }
        }
        let cpu = busy.checked_div(cpus).unwrap_or(0);
        (n, mem, cpu.min(100) as u32)
    }

    /// Whether every running qube besides dom0 (and preloaded disposables, which wait paused
    /// by design) is paused, with at least one paused: then the user must be told (the
    /// reference's "all paused" guard).
    pub fn all_paused(&self) -> bool {
        let mut any = false;
        for q in self.running() {
            if q.class == "AdminVM" || q.flag("is_preload") {
                continue;
            }
            if q.state != "Paused" {
                return false;
            }
            any = true;
        }
        any
    }

    /// Whether a qube is internal (hidden from users: no notifications, a short menu).
    pub fn internal(&self, vm: &str) -> bool {
        self.qubes.get(vm).is_some_and(|q| {
            q.features.get("internal").is_some_and(|v| !v.is_empty()) || q.flag("is_preload")
        })
    }
}

/// A desktop notification about one qube.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The qube (notifications about one qube replace each other).
    pub vm: String,
    /// Body text.
    pub body: String,
    /// Shown with critical urgency (failures).
    pub urgent: bool,
}

/// The notification an event deserves, if any (power changes of qubes the user sees).
pub fn notice_for(ev: &Event, domains: &Domains) -> Option<Notice> {
    let vm = ev.subject.as_str();
    if vm.is_empty() || domains.internal(vm) || !domains.qubes.contains_key(vm) {
        return None;
    }
    let reason = || ev.get("reason").unwrap_or_default().to_string();
    let (text, urgent, detail) = match ev.name.as_str() {
        // Translators: %s is a qube's name.
        "domain-pre-start" => (tr("%s is starting."), false, None),
        // Translators: %s is a qube's name.
        "domain-start" => (tr("%s has started."), false, None),
        // Translators: %s is a qube's name; the reason follows on the next line.
        "domain-start-failed" => (tr("%s failed to start."), true, Some(reason())),
        // Translators: %s is a qube's name.
        "domain-pre-shutdown" => (tr("%s is shutting down."), false, None),
        // Translators: %s is a qube's name.
        "domain-shutdown" => (tr("%s has shut down."), false, None),
        // Translators: %s is a qube's name; the reason follows on the next line.
        "domain-shutdown-failed" => (tr("%s failed to shut down."), true, Some(reason())),
        _ => return None,
    };
    let mut body = text.replacen("%s", vm, 1);
    if let Some(d) = detail.filter(|d| !d.is_empty()) {
        body.push('\n');
        body.push_str(&d);
    }
    Some(Notice {
        vm: vm.to_string(),
        body,
        urgent,
    })
}

/// A qube row for tests: `props` as plain values.
#[cfg(test)]
pub(crate) fn test_qube(name: &str, class: &str, state: &str, props: &[(&str, &str)]) -> QubeInfo {
    let entry = qubes_api::VmEntry {
        name: name.into(),
        class: class.into(),
        state: state.into(),
        uuid: String::new(),
    };
    let props = props
        .iter()
        .map(|(k, v)| {
            let value = qubes_api::PropValue {
                is_default: false,
                ty: "str".into(),
                value: v.to_string(),
            };
            (k.to_string(), value)
        })
        .collect();
    QubeInfo::new(&entry, props)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qube(name: &str, class: &str, state: &str) -> QubeInfo {
        test_qube(name, class, state, &[("label", "red")])
    }

    fn domains() -> Domains {
        let mut d = Domains::default();
        d.replace(
            vec![("red".into(), "0xcc0000".into())],
            vec![
                qube("work", "AppVM", "Running"),
                qube("dom0", "AdminVM", "Running"),
                qube("vault", "AppVM", "Halted"),
                qube("sys-net", "AppVM", "Paused"),
            ],
        );
        d
    }

    #[test]
    fn running_lists_admin_first_and_skips_halted() {
        let d = domains();
        let names: Vec<_> = d.running().map(|q| q.name.as_str()).collect();
        assert_eq!(names, ["dom0", "sys-net", "work"]);
    }

    #[test]
    fn changes_update_state_and_stats_and_ask_for_refetches() {
        let mut d = domains();
        let stats = |vm: &str, cpu, mem_kib, vcpus| Change::Stats {
            vm: vm.into(),
            stats: crate::model::Stats {
                cpu,
                mem_kib,
                vcpus,
            },
        };
        assert_eq!(d.apply(stats("work", 10, 409_600, 2)), None);
        assert_eq!(d.apply(stats("dom0", 4, 1_048_576, 8)), None);
        // Of the 10 virtual CPUs together: (10 × 2 + 4 × 8) / 10 = 5 %.
        assert_eq!(d.totals(), (3, 1_458_176, 5));
        let state = |vm: &str, s: &str| Change::State {
            vm: vm.into(),
            state: s.into(),
        };
        d.apply(state("work", "Halted"));
        assert_eq!(d.qubes["work"].stats, None);
        assert_eq!(d.totals().0, 2);
        let prop = |p: &str| Change::RefetchProperty {
            vm: "vault".into(),
            prop: p.into(),
        };
        assert_eq!(
            d.apply(prop("label")),
            Some(Refetch::Property("vault".into(), "label".into()))
        );
        assert_eq!(d.apply(prop("memory")), None);
        assert_eq!(
            d.apply(Change::Added("new".into())),
            Some(Refetch::Qube("new".into()))
        );
        d.apply(Change::Removed("vault".into()));
        assert!(!d.qubes.contains_key("vault"));
        assert_eq!(d.apply(Change::Reload), Some(Refetch::All));
    }

    #[test]
    fn all_paused_needs_every_running_user_qube_paused() {
        let mut d = domains();
        assert!(!d.all_paused());
        d.apply(Change::State {
            vm: "work".into(),
            state: "Paused".into(),
        });
        assert!(d.all_paused());
        d.apply(Change::State {
            vm: "sys-net".into(),
            state: "Halted".into(),
        });
        assert!(d.all_paused());
        d.apply(Change::State {
            vm: "work".into(),
            state: "Halted".into(),
        });
        assert!(!d.all_paused(), "nothing paused is nothing to warn about");
    }

    #[test]
    fn notices_name_the_qube_and_the_reason() {
        let mut d = domains();
        let n = notice_for(&Event::new("work", "domain-start"), &d).unwrap();
        assert_eq!(n.body, "work has started.");
        assert!(!n.urgent);
        let ev = Event::new("vault", "domain-start-failed").kw("reason", "Not enough memory");
        let n = notice_for(&ev, &d).unwrap();
        assert_eq!(n.body, "vault failed to start.\nNot enough memory");
        assert!(n.urgent);
        assert_eq!(notice_for(&Event::new("work", "domain-paused"), &d), None);
        assert_eq!(notice_for(&Event::new("gone", "domain-start"), &d), None);
        d.qubes
            .get_mut("work")
            .unwrap()
            .features
            .insert("internal".into(), "1".into());
        assert_eq!(notice_for(&Event::new("work", "domain-start"), &d), None);
    }
}
