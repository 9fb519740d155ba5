//! Sending the edits of a settings dialog: all or nothing, in an order that keeps a refusal
//! cheap, putting back what was saved when the daemon refuses a later change.

use std::collections::BTreeMap;

use qubes_api::{CallError, Client};

use super::Target;
use super::load::Loaded;
use crate::errors::describe;
use crate::i18n::tr;

/// A change to send: property, value (`None` = reset to default). Properties named
/// `volume:<name>` are volume sizes in MiB, `feature:<name>` features (`None` = remove).
pub type Change = (String, Option<String>);

/// One call of an Apply: the change, and the change that puts back what was there before
/// (`None`: it cannot be undone — storage only grows).
pub type Step = (Change, Option<Change>);

/// The calls an Apply makes, in the order that keeps a refusal cheap: device assignments and
/// choices (which the daemon checks against other qubes) first, then flags, numbers and text,
/// features, firewall rules and notes; storage, which cannot shrink back, last.
pub fn plan(loaded: &Loaded, changes: Vec<Change>, notes: Option<String>) -> Vec<Step> {
    let rank = |key: &str| -> u8 {
        if key.starts_with("pci:") {
            0
        } else if key.starts_with("feature:") {
            4
        } else if key == "firewall" {
            5
        } else if key == "notes" {
            6
        } else if key.starts_with("volume:") {
            7
        } else {
            match loaded.props.get(key).map(|p| p.ty.as_str()) {
                Some("bool") => 2,
                Some("int" | "str") => 3,
                _ => 1,
            }
        }
    };
    let mut steps: Vec<Step> = changes
        .into_iter()
        .chain(notes.map(|n| ("notes".to_string(), Some(n))))
        .map(|c| {
            let undo = undo_of(loaded, &c);
            (c, undo)
        })
        .collect();
    steps.sort_by_key(|((key, _), _)| rank(key));
    steps
}

/// The change that puts back what `loaded` shows, once `change` is made.
fn undo_of(loaded: &Loaded, (key, value): &Change) -> Option<Change> {
    let back = |v: Option<String>| Some((key.clone(), v));
    if key == "notes" {
        back(Some(loaded.notes.clone()))
    } else if key == "firewall" {
        back(loaded.firewall.as_ref().map(|r| r.join("\n")))
    } else if let Some(port) = key.strip_prefix("pci:") {
        let devices = loaded.devices.as_ref()?;
        back(Some(crate::devices_editor::undo_change(
            devices,
            port,
            value.as_deref().unwrap_or(""),
        )))
    } else if key.starts_with("volume:") {
        None
    } else if let Some(f) = key.strip_prefix("feature:") {
        back(
            loaded
                .features
                .iter()
                .find(|(name, _)| name == f)
                .map(|(_, v)| v.clone()),
        )
    } else {
        let old = loaded.props.get(key)?;
        back((!old.is_default).then(|| old.value.clone()))
    }
}

/// Makes the calls of `steps` in order. All or nothing: at the first refusal the calls made
/// so far are undone, last first, and nothing more is sent. Returns the errors by property
/// (empty: everything was applied).
pub fn apply(client: &Client, target: &Target, steps: &[Step]) -> BTreeMap<String, String> {
    let mut errors = BTreeMap::new();
    for (i, ((key, value), _)) in steps.iter().enumerate() {
        let Err(e) = send(client, target, key, value) else {
            continue;
        };
        errors.insert(key.clone(), e);
        for ((done, _), undo) in steps[..i].iter().rev() {
            let result = match undo {
                Some((k, v)) => send(client, target, k, v),
                None => Err(tr("Storage cannot be made smaller than it is.")),
            };
            if let Err(e) = result {
                errors.insert(
                    done.clone(),
                    tr("Saved, and could not be put back: %s").replacen("%s", &e, 1),
                );
            }
        }
        break;
    }
    errors
}

/// Sends one change.
fn send(
    client: &Client,
    target: &Target,
    prop: &str,
    value: &Option<String>,
) -> Result<(), String> {
    let dest = target.dest();
    if prop == "notes" {
        client
            .call(
                "admin.vm.notes.Set",
                dest,
                "",
                value.as_deref().unwrap_or("").as_bytes(),
            )
            .map(|_| ())
            .map_err(|e| describe(&e))
    } else if prop == "firewall" {
        let mut payload = value.clone().unwrap_or_default();
        payload.push('\n');
        client
            .call("admin.vm.firewall.Set", dest, "", payload.as_bytes())
            .map(|_| ())
            .map_err(|e| match e {
                // The reference answers a malformed rule with no message at all.
                CallError::Empty => tr("The rules were refused: check their syntax."),
                e => describe(&e),
            })
    } else if let Some(port) = prop.strip_prefix("pci:") {
        crate::devices_editor::apply_change(client, dest, port, value.as_deref().unwrap_or(""))
            .map_err(|e| describe(&e))
    } else if let Some(vol) = prop.strip_prefix("volume:") {
        resize(client, dest, vol, value.as_deref().unwrap_or(""))
    } else if let Some(f) = prop.strip_prefix("feature:") {
        match value {
            None => client.call("admin.vm.feature.Remove", dest, f, b""),
            Some(v) => client.call("admin.vm.feature.Set", dest, f, v.as_bytes()),
        }
        .map(|_| ())
        .map_err(|e| describe(&e))
    } else {
        match value {
            None => client.call(&format!("{}.Reset", target.prefix()), dest, prop, b""),
            Some(v) => client.call(
                &format!("{}.Set", target.prefix()),
                dest,
                prop,
                v.as_bytes(),
            ),
        }
        .map(|_| ())
        .map_err(|e| describe(&e))
    }
}

/// Grows a volume to `mib` MiB. Shrinking is refused here, as `qvm-volume` does: the
/// daemon would cut the image and the data past the new end.
fn resize(client: &Client, vm: &str, vol: &str, mib: &str) -> Result<(), String> {
    let new: u64 = mib
        .trim()
        .parse()
        .map_err(|_| tr("The size must be a whole number of MiB."))?;
    let current = client
        .call("admin.vm.volume.Info", vm, vol, b"")
        .ok()
        .and_then(|i| {
            i.lines()
                .find_map(|l| l.strip_prefix("size=").and_then(|v| v.parse::<u64>().ok()))
        })
        .unwrap_or(0);
    let bytes = new.saturating_mul(1 << 20);
    if bytes < current {
        return Err(tr("Storage cannot be made smaller than it is."));
    }
    client
        .call(
            "admin.vm.volume.Resize",
            vm,
            vol,
            bytes.to_string().as_bytes(),
        )
        .map(|_| ())
        .map_err(|e| describe(&e))
}
