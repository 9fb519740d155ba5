//! The restore window: a backup written by the `qubes-backup` writer listed, marked and
//! restored, and a damaged one that restores nothing.

use crate::support::*;

pub(crate) const BACKUP_XML: &str = r#"<?xml version='1.0' encoding='UTF-8'?>
<qubes version="3.0">
  <labels>
    <label id="label-1" color="0xcc0000">red</label>
    <label id="label-6" color="0x75507b">purple</label>
  </labels>
  <properties/>
  <domains>
    <domain id="domain-0" class="AdminVM">
      <properties><property name="label">black</property></properties>
      <features><feature name="backup-content"/></features>
    </domain>
    <domain id="domain-21" class="AppVM">
      <properties>
        <property name="qid">21</property>
        <property name="name">mail</property>
        <property name="label">purple</property>
        <property name="template">fedora-41</property>
        <property name="memory">700</property>
      </properties>
      <features>
        <feature name="backup-content">1</feature>
        <feature name="backup-path">vm21/</feature>
        <feature name="backup-size">4194304</feature>
      </features>
      <tags><tag name="mailbox"/></tags>
    </domain>
    <domain id="domain-22" class="AppVM">
      <properties>
        <property name="qid">22</property>
        <property name="name">work</property>
        <property name="label">red</property>
        <property name="template">fedora-41</property>
      </properties>
      <features>
        <feature name="backup-content">1</feature>
        <feature name="backup-path">vm22/</feature>
        <feature name="backup-size">1048576</feature>
      </features>
    </domain>
  </domains>
</qubes>
"#;

/// A backup of `mail` and `work` written by the `qubes-backup` writer; returns it and the
/// image of mail's private volume.
pub(crate) fn write_backup(dir: &Path) -> (PathBuf, Vec<u8>) {
    let mut x = 0x9e3779b97f4a7c15u64;
    let mut mail: Vec<u8> = vec![0; 4 << 20];
    for b in mail[1 << 20..3 << 20].iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let content = BackupContent {
        qubes_xml: BACKUP_XML.as_bytes().to_vec(),
        qubes: vec![
            QubeFiles {
                qid: 21,
                files: vec![BackupFile {
                    name: "private.img".into(),
                    source: FileSource::Bytes(mail.clone()),
                    size: mail.len() as u64,
                }],
            },
            QubeFiles {
                qid: 22,
                files: vec![BackupFile {
                    name: "private.img".into(),
                    source: FileSource::Bytes(vec![7; 1 << 20]),
                    size: 1 << 20,
                }],
            },
        ],
        dom0_home: None,
    };
    let mut opts = WriteOptions::new(PASS);
    opts.kdf = KdfParams {
        log_n: 10,
        r: 8,
        p: 1,
    };
    let path = dir.join("qubes-2026-12-04T101010");
    write::write_backup(&content, Destination::File(path.clone()), &opts).unwrap();
    (path, mail)
}

/// The restore window: a wrong passphrase is an error and creates nothing; the right one
/// lists the backup's qubes with the name already taken marked; the rename option changes
/// that; the restored qube appears in the Qube Manager with its settings and data.
pub(crate) fn restore_lists_marks_and_restores() {
    let f = Fixture::start();
    let (file, mail) = write_backup(f.tmp.path());
    let before = f.qubes();
    let w = f.open("restore", "Restore qubes");
    assert_eq!(page(&w), "source");
    assert_eq!(selected(&w, "restore-location"), "dom0");
    set_text(&w, "restore-file", &file.display().to_string());
    set_text(&w, "restore-passphrase", "not the passphrase");
    click(&w, "next");
    let error: gtk::Label = named(&w, "restore-error");
    assert!(spin_until(20, || error.is_visible()));
    assert_eq!(
        error.text(),
        "The passphrase is wrong, or this is not the backup it was made for."
    );
    assert_eq!(page(&w), "source");
    snapshot(&w, "restore-wrong-passphrase");
    assert_eq!(f.qubes(), before);
    set_text(&w, "restore-passphrase", PASS);
    click(&w, "next");
    assert!(spin_until(20, || page(&w) == "qubes"), "{}", page(&w));
    assert!(!error.is_visible());
    let status = |q: &str| named::<gtk::Label>(&w, &format!("restore-status:{q}")).text();
    assert_eq!(status("mail"), "Will be restored");
    assert_eq!(
        status("work"),
        "A qube with this name exists: left out unless renamed"
    );
    assert!(named::<gtk::Label>(&w, "restore-status:work").has_css_class("warning"));
    named::<gtk::Switch>(&w, "rename-conflicting").set_active(true);
    assert!(spin_until(5, || status("work") == "Will be restored as work-1"));
    named::<gtk::Switch>(&w, "rename-conflicting").set_active(false);
    check(&w, "restore-qube:work").set_active(false);
    assert!(spin_until(5, || status("work") == "Left out"));
    snapshot(&w, "restore-qubes");
    let next: gtk::Button = named(&w, "next");
    assert_eq!(next.label().as_deref(), Some("Restore"));
    click(&w, "next");
    assert!(spin_until(5, || page(&w) == "progress" || page(&w) == "done"));
    assert!(spin_until(60, || page(&w) == "done"), "{}", page(&w));
    let done: adw::StatusPage = named(&w, "done");
    assert_eq!(done.title(), "Restore complete", "{:?}", done.description());
    let result: adw::ActionRow = named(&w, "result:mail");
    assert_eq!(result.subtitle().as_deref(), Some("Restored"));
    assert!(try_named::<adw::ActionRow>(&w, "result:work").is_none());
    let progress: adw::ActionRow = named(&w, "restore-row:mail");
    assert_eq!(progress.subtitle().as_deref(), Some("Data restored"));
    snapshot(&w, "restore-done");
    // The Qube Manager lists it (from the daemon's events), with its settings and data.
    assert!(spin_until(10, || f
        .controller
        .model()
        .row_names()
        .contains(&"mail".to_string())));
    assert_eq!(
        f.call("admin.vm.property.Get", "mail", "memory"),
        "default=False type=int 700"
    );
    assert_eq!(
        f.call("admin.vm.property.Get", "mail", "label"),
        "default=False type=label purple"
    );
    let tags = f.call("admin.vm.tag.List", "mail", "");
    assert!(tags.lines().any(|t| t == "mailbox"), "{tags}");
    assert!(!tags.contains("backup-restore-in-progress"), "{tags}");
    let restored = std::fs::read(f.image("mail", "private")).unwrap();
    assert!(restored == mail, "mail's private volume differs");
    let mut after = before.clone();
    after.push("mail".into());
    after.sort();
    assert_eq!(f.qubes(), after);
}

/// A damaged backup: the restore fails, says so, and leaves no qube behind.
pub(crate) fn damaged_backup_restores_nothing() {
    let f = Fixture::start();
    let (file, _) = write_backup(f.tmp.path());
    let mut bytes = std::fs::read(&file).unwrap();
    // A flipped byte in mail's volume data: the header and qubes.xml are fine.
    let needle = b"vm21/private.img.000.enc";
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap();
    bytes[at + 512 + 4000] ^= 1;
    std::fs::write(&file, &bytes).unwrap();
    let before = f.qubes();
    let w = f.open("restore", "Restore qubes");
    set_text(&w, "restore-file", &file.display().to_string());
    set_text(&w, "restore-passphrase", PASS);
    click(&w, "next");
    assert!(spin_until(20, || page(&w) == "qubes"));
    check(&w, "restore-qube:work").set_active(false);
    click(&w, "next");
    assert!(spin_until(60, || page(&w) == "done"));
    let done: adw::StatusPage = named(&w, "done");
    assert_eq!(done.title(), "Restore failed");
    let text = done.description().unwrap_or_default().to_string();
    assert!(text.contains("MAC mismatch"), "{text}");
    assert!(
        text.contains("the qubes it had created were removed"),
        "{text}"
    );
    assert_eq!(f.qubes(), before);
}
