use super::*;
use crate::qubesxml::parse;

const XML: &str = r#"<qubes><labels><label id="label-1">red</label><label id="label-8">black</label></labels>
<properties><property name="default_netvm">sys-firewall</property></properties><domains>
<domain class="AppVM"><properties><property name="name">work</property><property name="label">label-1</property><property name="template">fedora</property><property name="netvm">sys-firewall</property></properties>
<features><feature name="backup-content">1</feature><feature name="backup-path">vm2/</feature><feature name="backup-size">10</feature></features>
<devices class="pci"><device backend-domain="dom0" id="00_1f.6" required="no"><option name="no-strict-reset">True</option></device></devices>
<devices class="block"><device backend-domain="sys-usb" id="sda" identity="0x0781:0x5581:AA01:u080650" mode="ask-to-attach" required="yes"/></devices>
<tags><tag name="t1"/></tags></domain>
<domain class="TemplateVM"><properties><property name="name">fedora</property><property name="label">black</property></properties>
<features><feature name="backup-content">1</feature><feature name="backup-path">vm1/</feature></features></domain>
<domain class="AppVM"><properties><property name="name">lost</property><property name="label">red</property><property name="template">gone</property></properties>
<features><feature name="backup-content">1</feature><feature name="backup-path">vm3/</feature></features></domain>
<domain class="AppVM"><properties><property name="name">skipped</property><property name="label">red</property></properties>
<features><feature name="backup-content"/></features></domain>
</domains></qubes>"#;

#[test]
fn reads_qubes_xml_like_core3() {
    let b = parse(XML.as_bytes()).unwrap();
    assert_eq!(b.globals["default_netvm"], "sys-firewall");
    let work = &b.qubes[0];
    assert_eq!((work.name.as_str(), work.label.as_str()), ("work", "red"));
    assert_eq!(work.template.as_deref(), Some("fedora"));
    assert_eq!(work.backup_path.as_deref(), Some("vm2/"));
    assert_eq!(work.backup_size, 10);
    assert_eq!(work.tags, ["t1"]);
    assert_eq!(work.devices[0].port_id, "00_1f.6");
    assert_eq!(work.devices[0].mode, "auto-attach");
    assert_eq!(work.devices[0].device_id, "*");
    assert_eq!(work.devices[0].options["no-strict-reset"], "True");
    // Qubes 4.3 writes the mode and the identity.
    let sda = &work.devices[1];
    assert_eq!(
        (sda.bus.as_str(), sda.backend.as_str(), sda.port_id.as_str()),
        ("block", "sys-usb", "sda")
    );
    assert_eq!(sda.device_id, "0x0781:0x5581:AA01:u080650");
    assert_eq!(sda.mode, "ask-to-attach");
    assert!(sda.options.is_empty());
    assert!(!b.qubes[3].included());
    assert!(
        parse(b"<qubes><domains><domain class='AppVM'><properties/></domain></domains></qubes>")
            .is_err()
    );
    assert!(
        parse(b"<qubes><unclosed>").is_err()
            || parse(b"<qubes><unclosed>").unwrap().qubes.is_empty()
    );
}

#[test]
fn plan_orders_and_checks() {
    let b = parse(XML.as_bytes()).unwrap();
    let host = HostState {
        qubes: vec![
            ("dom0".into(), "AdminVM".into()),
            ("work".into(), "AppVM".into()),
            ("sys-firewall".into(), "AppVM".into()),
        ],
        default_template: Some("debian".into()),
    };
    let p = Plan::new(&b, &host, &RestoreOptions::default());
    let names: Vec<&str> = p.entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        ["fedora", "work", "lost"],
        "templates first, not included left out"
    );
    assert_eq!(p.entries[1].problems, [Problem::AlreadyExists]);
    assert_eq!(p.entries[2].problems, [Problem::MissingTemplate]);
    let opts = RestoreOptions {
        rename_conflicting: true,
        ignore_missing: true,
        ..Default::default()
    };
    let p = Plan::new(&b, &host, &opts);
    assert!(p.entries.iter().all(PlanEntry::good));
    assert_eq!(p.entries[1].restore_as, "work-1");
    assert_eq!(p.entries[1].template.as_deref(), Some("fedora"));
    assert_eq!(p.entries[2].template.as_deref(), Some("debian"));
    let s = p.summary(&b);
    assert!(
        s.contains("   work |      AppVM |   fedora | sys-firewall |   red | <-- Will be renamed to 'work-1'\n"),
        "{s}"
    );
    assert!(s.contains("<-- Template change to 'debian'"), "{s}");
    let opts = RestoreOptions {
        exclude: vec!["lost".into()],
        verify_only: true,
        ..Default::default()
    };
    let p = Plan::new(&b, &host, &opts);
    assert_eq!(p.entries[2].problems, [Problem::Excluded]);
    assert!(p.entries[1].good(), "verifying does not care about names");
}
