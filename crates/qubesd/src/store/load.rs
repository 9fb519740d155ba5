//! Reading a `qubes.xml` written by the reference daemon or by us.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::model::{
    Class, DeviceClassXml, DeviceXml, Domain, HostInfo, Label, Pool, State, VolumeConfig,
    default_labels,
};
use crate::props;
use crate::xml::{Node, parse_tree};

/// Parses a `qubes.xml` written by the reference daemon or by us.
pub fn parse(text: &[u8], host: HostInfo) -> Result<State, String> {
    let root = parse_tree(text)?;
    if root.name != "qubes" {
        return Err(format!("root element is <{}>, not <qubes>", root.name));
    }
    let mut labels: BTreeMap<u32, Label> = BTreeMap::new();
    if let Some(ls) = root.child("labels") {
        for l in ls.children("label") {
            let id = l.attr("id").ok_or("label without id")?;
            let index: u32 = id
                .strip_prefix("label-")
                .and_then(|i| i.parse().ok())
                .ok_or_else(|| format!("bad label id {id:?}"))?;
            let mut color = l.attr("color").ok_or("label without color")?.to_string();
            // The reference migrates the old gray.
            if color == "0x555753" {
                color = "0x555555".into();
            }
            labels.insert(
                index,
                Label {
                    index,
                    name: l.text.clone(),
                    color,
                },
            );
        }
    }
    if labels.is_empty() {
        labels = default_labels();
    }
    let mut refs: Vec<PendingRef> = Vec::new();
    let mut st = State {
        labels,
        pools: Vec::new(),
        global: BTreeMap::new(),
        domains: BTreeMap::new(),
        host,
        touched: crate::model::DeviceTouches::default(),
    };
    if let Some(ps) = root.child("pools") {
        for p in ps.children("pool") {
            let name = p.attr("name").ok_or("pool without name")?.to_string();
            if st.pool(&name).is_some() {
                return Err(format!("duplicate pool {name:?}"));
            }
            st.pools.push(Pool {
                name,
                attrs: p.attrs.clone(),
            });
        }
    }
    if let Some(ps) = root.child("properties") {
        for p in ps.children("property") {
            let name = p.attr("name").ok_or("property without name")?;
            let def = props::global_prop(name)
                .ok_or_else(|| format!("unknown global property {name:?}"))?;
            if let Some(r) = p.attr("ref") {
                refs.push((None, def.name.to_string(), r.to_string()));
            }
            let value = p.attr("ref").unwrap_or(&p.text);
            st.global
                .insert(def.name.to_string(), normalize_loaded(def.ty, value, &st));
        }
    }
    if let Some(ds) = root.child("domains") {
        for dn in ds.children("domain") {
            let d = parse_domain(dn, &st, &mut refs)?;
            if st.domains.contains_key(d.name.as_str()) {
                return Err(format!("duplicate qube name {:?}", d.name));
            }
            if st.domains.values().any(|o| o.qid == d.qid) {
                return Err(format!("duplicate qid {}", d.qid));
            }
            st.domains.insert(d.name.as_str().into(), Arc::new(d));
        }
    }
    // dom0 is always there.
    if !st.domains.values().any(|d| d.class == Class::AdminVM) {
        let mut dom0 = Domain::new(Class::AdminVM, "dom0", 0);
        dom0.props.insert("label".into(), "black".into());
        st.domains.insert("dom0".into(), Arc::new(dom0));
    }
    resolve_refs(&mut st, refs);
    migrate_references(&mut st);
    Ok(st)
}

/// Loaded label references are stored by name; qube references by name (`ref="domain-N"` too).
fn normalize_loaded(ty: props::PType, value: &str, st: &State) -> String {
    match ty {
        props::PType::Label => st
            .find_label(value)
            .map(|l| l.name.clone())
            .unwrap_or_else(|| value.to_string()),
        _ => value.to_string(),
    }
}

/// A `ref="domain-<qid>"` attribute seen while loading: holder (None = global), property, ref.
type PendingRef = (Option<String>, String, String);

/// Replaces `ref="domain-<qid>"` values, which older files use, by the qube's name.
fn resolve_refs(st: &mut State, refs: Vec<PendingRef>) {
    for (holder, prop, r) in refs {
        let Some(qid) = r
            .strip_prefix("domain-")
            .and_then(|q| q.parse::<u32>().ok())
        else {
            continue;
        };
        let Some(name) = st
            .domains
            .values()
            .find(|d| d.qid == qid)
            .map(|d| d.name.clone())
        else {
            continue;
        };
        match holder {
            None => {
                st.global.insert(prop, name);
            }
            Some(h) => {
                if let Some(d) = st.domain_mut(&h) {
                    d.props.insert(prop, name);
                }
            }
        }
    }
}

fn parse_domain(dn: &Node, st: &State, refs: &mut Vec<PendingRef>) -> Result<Domain, String> {
    let class_name = dn.attr("class").ok_or("domain without class")?;
    let class =
        Class::from_name(class_name).ok_or_else(|| format!("unknown qube class {class_name:?}"))?;
    let mut explicit: BTreeMap<String, String> = BTreeMap::new();
    let mut pending: Vec<(String, String)> = Vec::new();
    if let Some(ps) = dn.child("properties") {
        for p in ps.children("property") {
            let name = p.attr("name").ok_or("property without name")?;
            let name = if name == "dispvm_allowed" && class == Class::AppVM {
                "template_for_dispvms"
            } else {
                name
            };
            let Some(def) = props::vm_prop(class, name) else {
                // The reference ignores properties that no longer exist.
                continue;
            };
            if let Some(r) = p.attr("ref") {
                pending.push((def.name.to_string(), r.to_string()));
            }
            let value = p.attr("ref").unwrap_or(&p.text);
            explicit.insert(def.name.to_string(), normalize_loaded(def.ty, value, st));
        }
    }
    let (name, qid) = if class == Class::AdminVM {
        explicit.remove("name");
        explicit.remove("qid");
        explicit.remove("uuid");
        ("dom0".to_string(), 0)
    } else {
        let name = explicit.get("name").cloned().ok_or("qube without a name")?;
        crate::names::validate_name(&name).map_err(|e| format!("qube {name:?}: {e}"))?;
        let qid = explicit
            .get("qid")
            .and_then(|q| q.trim().parse::<u32>().ok())
            .filter(|q| *q <= 10000)
            .ok_or_else(|| format!("qube {name:?} has no valid qid"))?;
        (name, qid)
    };
    refs.extend(
        pending
            .into_iter()
            .map(|(prop, r)| (Some(name.clone()), prop, r)),
    );
    let mut d = Domain::new(class, &name, qid);
    d.props = explicit;
    if let Some(fs) = dn.child("features") {
        for f in fs.children("feature") {
            let fname = f.attr("name").ok_or("feature without name")?;
            d.set_feature(fname, &f.text);
        }
    }
    if let Some(ts) = dn.child("tags") {
        for t in ts.children("tag") {
            d.tags
                .insert(t.attr("name").ok_or("tag without name")?.to_string());
        }
    }
    for dc in dn.children("devices") {
        let class = dc.attr("class").ok_or("devices without class")?.to_string();
        let devices = dc
            .children("device")
            .map(|dev| DeviceXml {
                attrs: dev.attrs.clone(),
                options: dev
                    .children("option")
                    .map(|o| (o.attr("name").unwrap_or("").to_string(), o.text.clone()))
                    .collect(),
                listed_frontend: crate::model::ListedFrontend::Owner,
            })
            .collect();
        d.devices.push(DeviceClassXml { class, devices });
    }
    if let Some(vc) = dn.child("volume-config") {
        for v in vc.children("volume") {
            d.volumes.push(VolumeConfig {
                attrs: v.attrs.clone(),
            });
        }
    }
    Ok(d)
}

/// Clears references that point nowhere, as the reference's load-time fixups do, so that a
/// hand-edited file cannot leave dangling qube references behind.
fn migrate_references(st: &mut State) {
    let names: std::collections::BTreeSet<String> =
        st.domains.keys().map(|k| k.to_string()).collect();
    for key in ["default_dispvm", "management_dispvm"] {
        if let Some(v) = st.global.get(key)
            && !v.is_empty()
            && !names.contains(v)
        {
            st.global.remove(key);
        }
    }
}
