//! The `qubes.xml` inside a backup, read as the reference client's `core3.py` does: labels,
//! global properties, and per qube its class, properties, features, tags and devices.

use std::collections::BTreeMap;

use quick_xml::Reader;
use quick_xml::events::Event;

use crate::error::{BackupError, Result};

/// A device assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceAssignment {
    /// Bus (`pci`, `usb`, `block`).
    pub bus: String,
    /// Backend qube.
    pub backend: String,
    /// Port id.
    pub port_id: String,
    /// The device's identity (`identity`; `*` = whatever device is at the port).
    pub device_id: String,
    /// Options.
    pub options: BTreeMap<String, String>,
    /// `required`, `auto-attach` or `ask-to-attach`: the `mode` attribute of Qubes 4.3, else
    /// from the older `required` attribute (absent means yes, as in core3).
    pub mode: String,
}

/// One qube of the backup.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BackupQube {
    /// Name (`dom0` for the AdminVM).
    pub name: String,
    /// Class.
    pub class: String,
    /// Label name.
    pub label: String,
    /// Template, when it has one.
    pub template: Option<String>,
    /// Properties other than name, label, template, qid, uuid (`None` = empty element).
    pub properties: BTreeMap<String, Option<String>>,
    /// Features other than the backup ones.
    pub features: BTreeMap<String, String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Devices.
    pub devices: Vec<DeviceAssignment>,
    /// `backup-path` when its data is in the backup.
    pub backup_path: Option<String>,
    /// `backup-size`.
    pub backup_size: u64,
}

impl BackupQube {
    /// Whether its data is in the backup.
    pub fn included(&self) -> bool {
        self.backup_path.is_some()
    }

    /// A property's value, `None` when absent or empty.
    pub fn property(&self, name: &str) -> Option<&str> {
        self.properties.get(name).and_then(|v| v.as_deref())
    }
}

/// The qubes of a backup, in file order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BackupQubes {
    /// Global properties.
    pub globals: BTreeMap<String, String>,
    /// Qubes.
    pub qubes: Vec<BackupQube>,
}

fn bad(what: impl std::fmt::Display) -> BackupError {
    BackupError::qubes(format!("Invalid qubes.xml in the backup: {what}"))
}

fn attr(e: &quick_xml::events::BytesStart<'_>, name: &[u8]) -> Result<Option<String>> {
    for a in e.attributes() {
        let a = a.map_err(bad)?;
        if a.key.as_ref() == name {
            return Ok(Some(a.unescape_value().map_err(bad)?.into_owned()));
        }
    }
    Ok(None)
}

/// Parses the backup's `qubes.xml`.
pub fn parse(untrusted: &[u8]) -> Result<BackupQubes> {
    let mut r = Reader::from_reader(untrusted);
    r.config_mut().trim_text(false);
    let mut path: Vec<Vec<u8>> = Vec::new();
    let mut labels: BTreeMap<String, String> = BTreeMap::new();
    let mut out = BackupQubes::default();
    let mut cur: Option<BackupQube> = None;
    // (element kind, name attribute, text so far)
    let mut text_target: TextTarget = None;
    let mut bus = String::new();
    let mut device: Option<DeviceAssignment> = None;
    let mut buf = Vec::new();
    loop {
        let ev = r.read_event_into(&mut buf).map_err(bad)?;
        match &ev {
            Event::Start(e) | Event::Empty(e) => {
                let empty = matches!(ev, Event::Empty(_));
                let name = e.name().as_ref().to_vec();
                let parent = path.last().cloned().unwrap_or_default();
                match (parent.as_slice(), name.as_slice()) {
                    (b"domains", b"domain") => {
                        cur = Some(BackupQube {
                            class: attr(e, b"class")?.unwrap_or_default(),
                            ..Default::default()
                        });
                    }
                    (b"labels", b"label") => {
                        text_target = Some((
                            b"label".to_vec(),
                            attr(e, b"id")?.unwrap_or_default(),
                            String::new(),
                        ));
                    }
                    (b"properties", b"property") | (b"features", b"feature") => {
                        text_target = Some((
                            name.clone(),
                            attr(e, b"name")?.ok_or_else(|| bad("nameless"))?,
                            String::new(),
                        ));
                    }
                    (b"tags", b"tag") => {
                        if let Some(q) = &mut cur {
                            q.tags
                                .push(attr(e, b"name")?.ok_or_else(|| bad("nameless tag"))?);
                        }
                    }
                    (b"domain", b"devices") => bus = attr(e, b"class")?.unwrap_or_default(),
                    (b"devices", b"device") => {
                        // Before 4.3 only `required` said how; a `mode` wins over it.
                        let required = !matches!(
                            attr(e, b"required")?.as_deref(),
                            Some("no" | "False" | "false" | "0" | "off")
                        );
                        let mode = attr(e, b"mode")?.unwrap_or_else(|| {
                            if required { "required" } else { "auto-attach" }.into()
                        });
                        device = Some(DeviceAssignment {
                            bus: bus.clone(),
                            backend: attr(e, b"backend-domain")?.unwrap_or_default(),
                            port_id: attr(e, b"id")?.unwrap_or_default(),
                            device_id: attr(e, b"identity")?.unwrap_or_else(|| "*".into()),
                            options: BTreeMap::new(),
                            mode,
                        });
                    }
                    (b"device", b"option") => {
                        text_target = Some((
                            name.clone(),
                            attr(e, b"name")?.unwrap_or_default(),
                            String::new(),
                        ));
                    }
                    _ => {}
                }
                path.push(name);
                if path.len() > 64 {
                    return Err(bad("nested too deeply"));
                }
                if empty {
                    end_element(
                        &mut path,
                        &mut text_target,
                        &mut labels,
                        &mut out,
                        &mut cur,
                        &mut device,
                    )?;
                }
            }
            Event::Text(t) => {
                if let Some((_, _, s)) = &mut text_target {
                    s.push_str(&t.unescape().map_err(bad)?);
                }
            }
            Event::CData(t) => {
                if let Some((_, _, s)) = &mut text_target {
                    s.push_str(&String::from_utf8_lossy(t));
                }
            }
            Event::End(_) => {
                end_element(
                    &mut path,
                    &mut text_target,
                    &mut labels,
                    &mut out,
                    &mut cur,
                    &mut device,
                )?;
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok(out)
}

type TextTarget = Option<(Vec<u8>, String, String)>;

fn end_element(
    path: &mut Vec<Vec<u8>>,
    text_target: &mut TextTarget,
    labels: &mut BTreeMap<String, String>,
    out: &mut BackupQubes,
    cur: &mut Option<BackupQube>,
    device: &mut Option<DeviceAssignment>,
) -> Result<()> {
    let name = path.pop().unwrap_or_default();
    let parent = path.last().cloned().unwrap_or_default();
    if let Some((kind, key, text)) = text_target.take_if(|(k, _, _)| *k == name) {
        let value = if text.is_empty() { None } else { Some(text) };
        match (kind.as_slice(), parent.as_slice()) {
            (b"label", _) => {
                let v = value.unwrap_or_default();
                labels.insert(key, v.clone());
                labels.insert(v.clone(), v);
            }
            (b"property", b"properties") if path.len() == 2 && cur.is_none() => {
                out.globals.insert(key, value.unwrap_or_default());
            }
            (b"property", _) => {
                if let Some(q) = cur {
                    q.properties.insert(key, value);
                }
            }
            (b"feature", _) => {
                if let Some(q) = cur {
                    q.features.insert(key, value.unwrap_or_default());
                }
            }
            (b"option", _) => {
                if let Some(d) = device {
                    d.options.insert(key, value.unwrap_or_default());
                }
            }
            _ => {}
        }
    }
    match name.as_slice() {
        b"device" => {
            if let (Some(d), Some(q)) = (device.take(), cur.as_mut()) {
                q.devices.push(d);
            }
        }
        b"domain" => {
            if let Some(mut q) = cur.take() {
                finish(&mut q, labels)?;
                out.qubes.push(q);
            }
        }
        _ => {}
    }
    Ok(())
}

fn finish(q: &mut BackupQube, labels: &BTreeMap<String, String>) -> Result<()> {
    let props = &mut q.properties;
    q.name = if q.class == "AdminVM" {
        props.remove("name");
        "dom0".into()
    } else {
        props
            .remove("name")
            .flatten()
            .ok_or_else(|| bad("a qube without a name"))?
    };
    let label = props.remove("label").flatten().unwrap_or_default();
    q.label = labels.get(&label).cloned().unwrap_or(label);
    q.template = props.remove("template").flatten();
    props.remove("uuid");
    props.remove("qid");
    let content = q.features.remove("backup-content");
    let path = q.features.remove("backup-path");
    let size = q.features.remove("backup-size");
    if content.is_some_and(|c| !c.is_empty() && c != "False" && c != "0") {
        q.backup_path = path;
        q.backup_size = size.and_then(|s| s.parse().ok()).unwrap_or(0);
    }
    Ok(())
}
