//! The volume configuration a new qube records in `qubes.xml` (admin-api.md §3.3, §6.2).
//! [`crate::storage`] turns these entries into real volumes.

use qubes_api::QubesError;

use crate::model::{Class, Domain, State, VolumeConfig};
use crate::props;
use crate::pycompat::bool_word as b;

const GIB: u64 = 1024 * 1024 * 1024;

/// The volume id a pool's driver gives a qube's volume.
fn vid(st: &State, pool: &str, d: &Domain, vol: &str) -> String {
    let driver = st
        .pool(pool)
        .and_then(|p| p.attr("driver"))
        .unwrap_or("file");
    match driver {
        "lvm_thin" => {
            let vg = st
                .pool(pool)
                .and_then(|p| p.attr("volume_group"))
                .unwrap_or("qubes_dom0");
            format!("{vg}/vm-{}-{vol}", d.name)
        }
        _ => format!("{}/{}/{vol}", d.class.dir_prefix(), d.name),
    }
}

/// Volume entries for a new qube of `d.class`, honouring `pool=` / `pool:<vol>=`.
pub fn default_volume_config(
    st: &State,
    d: &Domain,
    pool: Option<&str>,
    pools: &[(String, String)],
) -> Result<Vec<VolumeConfig>, QubesError> {
    let pool_for = |vol: &str| -> Option<String> {
        if let Some((_, p)) = pools.iter().find(|(v, _)| v == vol) {
            return Some(p.clone());
        }
        if vol != "kernel"
            && let Some(p) = pool
        {
            return Some(p.to_string());
        }
        props::global_get(st, &format!("default_pool_{vol}")).filter(|p| !p.is_empty())
    };
    let revisions = |p: &str| {
        st.pool(p)
            .and_then(|p| p.attr("revisions_to_keep"))
            .unwrap_or("1")
            .to_string()
    };
    let attr =
        |v: &VolumeConfig, k: &str| v.attrs.iter().find(|(a, _)| a == k).map(|(_, x)| x.clone());
    // A snapshot volume's origin: the template's volume of that name, or further up the
    // chain where that one is a snapshot itself (TemplateVM -> AppVM -> DispVM).
    let origin = |name: &str| -> Option<VolumeConfig> {
        let mut tpl = props::vm_ref(st, d, "template");
        for _ in 0..16 {
            let t = tpl?;
            let v = t
                .volumes
                .iter()
                .find(|v| v.attrs.iter().any(|(k, val)| k == "name" && val == name))?;
            if attr(v, "source").is_some() && t.class.has_template() {
                tpl = props::vm_ref(st, t, "template");
                continue;
            }
            return Some(v.clone());
        }
        None
    };
    let mut out = Vec::new();
    let (root_snap, private_snap) = match d.class {
        Class::AppVM => (true, false),
        Class::DispVM => (true, true),
        _ => (false, false),
    };
    for vol in ["root", "private", "volatile", "kernel"] {
        let snap = (vol == "root" && root_snap) || (vol == "private" && private_snap);
        if snap && let Some((_, p)) = pools.iter().find(|(v, _)| v == vol) {
            return Err(QubesError::qubes(format!(
                "Snapshot volume {vol} must be in the same pool as its origin ({vol} volume of template),cannot move to pool {p} "
            )));
        }
        let source = if snap { origin(vol) } else { None };
        // A snapshot lives in its origin's pool, whatever pool= says.
        let Some(p) = source
            .as_ref()
            .and_then(|s| attr(s, "pool"))
            .or_else(|| pool_for(vol))
        else {
            continue;
        };
        let mut attrs: Vec<(String, String)> =
            vec![("name".into(), vol.into()), ("pool".into(), p.clone())];
        let save = matches!(vol, "root" | "private") && !snap;
        if vol == "kernel" {
            let kernel = props::vm_get(st, d, "kernel").unwrap_or_default();
            attrs.push(("vid".into(), kernel));
            attrs.push(("revisions_to_keep".into(), "0".into()));
        } else {
            attrs.push(("vid".into(), vid(st, &p, d, vol)));
            attrs.push((
                "revisions_to_keep".into(),
                if save { revisions(&p) } else { "0".into() },
            ));
        }
        attrs.push(("rw".into(), b(vol != "kernel").into()));
        attrs.push(("save_on_stop".into(), b(save).into()));
        attrs.push(("snap_on_start".into(), b(snap).into()));
        let size = match vol {
            "root" => source
                .as_ref()
                .and_then(|s| attr(s, "size"))
                .or(Some((10 * GIB).to_string())),
            "private" => source
                .as_ref()
                .and_then(|s| attr(s, "size"))
                .or(Some((2 * GIB).to_string())),
            "volatile" => Some(
                if d.class == Class::DispVM {
                    12 * GIB
                } else {
                    10 * GIB
                }
                .to_string(),
            ),
            _ => None,
        };
        if let Some(s) = size {
            attrs.push(("size".into(), s));
        }
        if let Some(v) = source.as_ref().and_then(|src| attr(src, "vid")) {
            attrs.push(("source".into(), v));
        }
        out.push(VolumeConfig { attrs });
    }
    Ok(out)
}
