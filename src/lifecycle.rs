//! Lifecycle operations made of several calls: shutting a network qube down together with the
//! qubes behind it, in the order the daemon accepts, and restarting. Blocking: callers run
//! them on worker threads. After anything goes wrong the qube's power state is read again
//! (`admin.vm.CurrentState`), so the table shows what the daemon holds, not what was hoped for.

use qubes_api::Client;

use crate::loader::{current_state, shutdown_timeout, wait_halted};

/// How a shutdown ended, when not as asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trouble {
    /// The daemon refused or failed a call for `vm`: its message as a sentence.
    Failed {
        /// The qube.
        vm: String,
        /// What the daemon said.
        message: String,
    },
    /// `vm` did not halt within its `shutdown_timeout`.
    TimedOut(String),
}

/// A qube's place in the network: whether it runs and its network qube (`""`: none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetNode {
    /// Name.
    pub name: String,
    /// Whether it is not halted.
    pub running: bool,
    /// Its network qube (`""`: none).
    pub netvm: String,
}

/// The running qubes whose network goes through `vm`, directly or through other qubes, by
/// distance: `[direct users, users of those, ...]`, each level sorted. A network qube is shut
/// down only after every qube behind it (the daemon refuses otherwise), so the levels stop
/// from the last one to the first.
pub fn network_users(nodes: &[NetNode], vm: &str) -> Vec<Vec<String>> {
    let mut levels: Vec<Vec<String>> = Vec::new();
    let mut seen = std::collections::HashSet::from([vm.to_string()]);
    let mut providers = vec![vm.to_string()];
    while !providers.is_empty() {
        let mut level: Vec<String> = nodes
            .iter()
            .filter(|n| n.running && providers.contains(&n.netvm) && !seen.contains(&n.name))
            .map(|n| n.name.clone())
            .collect();
        level.sort();
        seen.extend(level.iter().cloned());
        if level.is_empty() {
            break;
        }
        providers = level.clone();
        levels.push(level);
    }
    levels
}

/// The order to shut down `levels` (from [`network_users`]) and then `vm`: farthest first.
pub fn shutdown_order(levels: &[Vec<String>], vm: &str) -> Vec<String> {
    levels
        .iter()
        .rev()
        .flatten()
        .cloned()
        .chain(std::iter::once(vm.to_string()))
        .collect()
}

/// Shuts down each group of `groups` in turn: every qube of a group is asked, then each is
/// waited for (up to its `shutdown_timeout`) before the next group. `state` hears the daemon's
/// state of a qube that did not go as asked.
pub fn shut_down_groups(
    c: &Client,
    groups: &[Vec<String>],
    state: &dyn Fn(&str, String),
) -> Result<(), Trouble> {
    for group in groups {
        for vm in group {
            if let Err(e) = c.call("admin.vm.Shutdown", vm, "", b"") {
                report_state(c, vm, state);
                return Err(Trouble::Failed {
                    vm: vm.clone(),
                    message: crate::errors::describe(&e),
                });
            }
        }
        for vm in group {
            wait_for_halt(c, vm, state)?;
        }
    }
    Ok(())
}

/// Waits for `vm`, asked to shut down, to halt.
pub fn wait_for_halt(c: &Client, vm: &str, state: &dyn Fn(&str, String)) -> Result<(), Trouble> {
    match wait_halted(c, vm, shutdown_timeout(c, vm)) {
        Ok(true) => Ok(()),
        Ok(false) => {
            report_state(c, vm, state);
            Err(Trouble::TimedOut(vm.to_string()))
        }
        Err(e) => {
            report_state(c, vm, state);
            Err(Trouble::Failed {
                vm: vm.to_string(),
                message: crate::errors::describe(&e),
            })
        }
    }
}

fn report_state(c: &Client, vm: &str, state: &dyn Fn(&str, String)) {
    if let Some(s) = current_state(c, vm) {
        state(vm, s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, running: bool, netvm: &str) -> NetNode {
        NetNode {
            name: name.into(),
            running,
            netvm: netvm.into(),
        }
    }

    #[test]
    fn users_of_a_network_qube_come_by_distance_and_stop_farthest_first() {
        let nodes = [
            node("sys-net", true, ""),
            node("sys-firewall", true, "sys-net"),
            node("sys-whonix", true, "sys-firewall"),
            node("work", true, "sys-firewall"),
            node("anon", true, "sys-whonix"),
            node("vault", false, "sys-firewall"),
            node("sys-usb", true, ""),
            node("direct", true, "sys-net"),
        ];
        let levels = network_users(&nodes, "sys-net");
        assert_eq!(
            levels,
            [
                vec!["direct", "sys-firewall"],
                vec!["sys-whonix", "work"],
                vec!["anon"]
            ]
        );
        assert_eq!(
            shutdown_order(&levels, "sys-net"),
            [
                "anon",
                "sys-whonix",
                "work",
                "direct",
                "sys-firewall",
                "sys-net"
            ]
        );
        assert!(network_users(&nodes, "work").is_empty());
        // A loop (the daemon refuses them, but the rows come from outside) ends.
        let looped = [node("a", true, "b"), node("b", true, "a")];
        assert_eq!(network_users(&looped, "a"), [vec!["b"]]);
    }
}
