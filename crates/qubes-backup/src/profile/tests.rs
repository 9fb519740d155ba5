use super::*;

fn q(name: &str, class: &str, qid: u32, tags: &[&str], inc: bool) -> QubeDesc {
    QubeDesc {
        name: name.into(),
        class: class.into(),
        qid,
        tags: tags.iter().map(|t| t.to_string()).collect(),
        include_in_backups: inc,
    }
}

fn system() -> Vec<QubeDesc> {
    vec![
        q("work", "AppVM", 9, &["office"], true),
        q("dom0", "AdminVM", 0, &[], true),
        q("fedora", "TemplateVM", 1, &[], true),
        q("sys-net", "AppVM", 2, &[], false),
        q("vault", "AppVM", 17, &["office", "secret"], true),
        q("backup", "AppVM", 3, &[], false),
    ]
}

fn err(text: &str) -> (String, String) {
    let e = Profile::parse("p", text.as_bytes()).unwrap_err();
    (e.kind().to_string(), e.message())
}

#[test]
fn reference_messages() {
    assert_eq!(
        err("destination_path: /x\ninclude: null\n"),
        (
            "QubesException".into(),
            "Invalid backup profile - missing 'destination_vm'".into()
        )
    );
    assert_eq!(
        err("destination_vm: dom0\ninclude: null\n").1,
        "Invalid backup profile - missing 'destination_path'"
    );
    assert_eq!(
        err("destination_vm: dom0\ndestination_path: /x\n").1,
        "Invalid backup profile - missing 'include'"
    );
    let p = Profile::parse(
        "p",
        b"destination_vm: nosuch\ndestination_path: /x\ninclude: null\n",
    )
    .unwrap();
    let e = p.plan(&system(), false).unwrap_err();
    assert_eq!(
        e.message(),
        "Invalid destination_vm specified in backup profile"
    );
    let p = Profile::parse(
        "p",
        b"destination_vm: dom0\ndestination_path: /x\ninclude: null\n",
    )
    .unwrap();
    assert!(p.plan(&system(), false).is_ok(), "Info needs no passphrase");
    assert_eq!(
        p.plan(&system(), true).unwrap_err().message(),
        "Invalid backup profile - you need to specify passphrase_text or passphrase_vm"
    );
    let p = Profile::parse(
        "p",
        b"destination_vm: dom0\ndestination_path: /x\ninclude: null\npassphrase_vm: gone\n",
    )
    .unwrap();
    assert_eq!(
        p.plan(&system(), true).unwrap_err().message(),
        "Invalid backup profile - invalid passphrase_vm"
    );
    let e = check_profile_id("../etc/x").unwrap_err();
    assert_eq!(
        (e.kind(), e.message().as_str()),
        (
            "ProtocolError",
            "Backup profile ID must not contain forward slash character"
        )
    );
}

#[test]
fn load_from_dir() {
    let dir = tempfile::tempdir().unwrap();
    let e = Profile::load(dir.path(), "daily").unwrap_err();
    assert_eq!(
        (e.kind(), e.message().as_str()),
        (
            "QubesBackupProfileNotFoundError",
            "Backup profile does not exist: daily"
        )
    );
    std::fs::write(
        dir.path().join("daily.conf"),
        "destination_vm: backup\ndestination_path: /mnt/b\ninclude:\n  - work\n  - $tag:office\n\
         exclude: ['@type:TemplateVM']\ncompression: xz\npassphrase_text: secret\nextra_key: 1\n",
    )
    .unwrap();
    let p = Profile::load(dir.path(), "daily").unwrap();
    assert_eq!(
        p.include,
        Some(vec![Pattern("work".into()), Pattern("@tag:office".into())])
    );
    assert_eq!(p.exclude, vec![Pattern("@type:TemplateVM".into())]);
    assert_eq!(
        p.compression,
        Compression {
            compressed: true,
            filter: "xz".into()
        }
    );
    assert_eq!(
        p.passphrase,
        Some(PassphraseSource::Text(Some("secret".into())))
    );
    assert_eq!(p.unknown_keys, vec!["extra_key".to_string()]);
    let plan = p.plan(&system(), true).unwrap();
    assert_eq!(
        plan.target,
        Target::Qube {
            name: "backup".into(),
            path: "/mnt/b".into()
        }
    );
    // A FIFO is refused at once instead of blocking the daemon.
    let fifo = dir.path().join("fifo.conf");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let e = Profile::load(dir.path(), "fifo").unwrap_err();
    assert!(e.message().contains("is not a regular file"), "{e}");
    // A huge file is refused without reading it all.
    let big = dir.path().join("big.conf");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(100 << 30).unwrap();
    let e = Profile::load(dir.path(), "big").unwrap_err();
    assert!(e.message().contains("larger than 1048576 bytes"), "{e}");
    // A dangling link does not exist, as for os.path.exists.
    std::os::unix::fs::symlink("/nonexistent/x", dir.path().join("dangling.conf")).unwrap();
    assert!(matches!(
        Profile::load(dir.path(), "dangling"),
        Err(BackupError::ProfileNotFound(_))
    ));
}

#[test]
fn compression_values() {
    let c = |v: &str| {
        Profile::parse(
            "p",
            format!(
                "destination_vm: dom0\ndestination_path: /x\ninclude: null\ncompression: {v}\n"
            )
            .as_bytes(),
        )
        .map(|p| (p.compression.compressed, p.compression.filter))
    };
    assert_eq!(c("true").unwrap(), (true, "gzip".into()));
    assert_eq!(c("false").unwrap(), (false, "gzip".into()));
    assert_eq!(
        c("no").unwrap(),
        (false, "gzip".into()),
        "YAML 1.1 booleans as PyYAML"
    );
    assert_eq!(c("On").unwrap(), (true, "gzip".into()));
    assert_eq!(c("null").unwrap(), (false, "gzip".into()));
    assert_eq!(c("0").unwrap(), (false, "gzip".into()));
    assert_eq!(c("bzip2").unwrap(), (true, "bzip2".into()));
    assert_eq!(c("''").unwrap(), (false, "".into()));
    assert!(
        c("'gzip -9; rm -rf /'")
            .unwrap_err()
            .message()
            .contains("invalid compression filter")
    );
    assert!(c("[1]").is_err());
}

#[test]
fn hostile_yaml_is_an_error_not_a_crash() {
    for text in [
        "",
        "- a\n- b\n",
        "just text",
        "destination_vm: [\n",
        "destination_vm: dom0\ndestination_path: 5\ninclude: null\n",
        "destination_vm: dom0\ndestination_path: /x\ninclude: work\n",
        "destination_vm: dom0\ndestination_path: /x\ninclude: [1, 2]\n",
        "destination_vm: dom0\ndestination_path: /x\ninclude: null\npassphrase_text: [a]\n",
        "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n\
         c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n\
         e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n\
         g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\nh: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]\n",
        "\u{feff}\u{0}",
    ] {
        let e = Profile::parse("p", text.as_bytes()).unwrap_err();
        assert_eq!(e.kind(), "QubesException", "{text:?}");
        assert!(e.message().starts_with("Invalid backup profile - "), "{e}");
    }
    // Deep flow nesting is refused before the (quadratic) parser sees it.
    let deep = format!(
        "destination_vm: {}{}",
        "[".repeat(500_000),
        "]".repeat(500_000)
    );
    let t = std::time::Instant::now();
    assert!(
        Profile::parse("p", deep.as_bytes())
            .unwrap_err()
            .message()
            .contains("nested too deeply")
    );
    assert!(t.elapsed() < std::time::Duration::from_secs(5));
    let sneaky = format!("destination_vm: it's\n{}", "[".repeat(1000));
    assert!(
        Profile::parse("p", sneaky.as_bytes())
            .unwrap_err()
            .message()
            .contains("nested too deeply")
    );
    assert_eq!(flow_depth(b"a: '[[[' # [[[\nb: [\"]]\\\"[\", {c: d}]"), 2);
    assert!(Profile::parse("p", &[0xff, 0xfe, b':']).is_err());
}

#[test]
fn selection_orders() {
    let qubes = system();
    let names = |s: &[usize]| s.iter().map(|&i| qubes[i].name.clone()).collect::<Vec<_>>();
    // include: null -> include_in_backups, by name; dom0 last.
    let s = select(None, &[], &qubes);
    assert_eq!(names(&s.selected), ["fedora", "vault", "work", "dom0"]);
    assert_eq!(names(&s.not_selected), ["backup", "sys-net"]);
    // A list: the set's order by qid (1, 9, 17 collide mod 8 and probe linearly).
    let inc = [
        Pattern("@tag:office".into()),
        Pattern("fedora".into()),
        Pattern("dom0".into()),
        Pattern("sys-net".into()),
    ];
    let s = select(Some(&inc), &[Pattern("@type:AppVM".into())], &qubes);
    assert_eq!(names(&s.selected), ["fedora", "dom0"]);
    let s = select(Some(&inc), &[], &qubes);
    assert_eq!(
        names(&s.selected),
        ["fedora", "sys-net", "work", "vault", "dom0"]
    );
    assert_eq!(names(&s.not_selected), ["backup"]);
}

#[test]
fn set_order_matches_cpython() {
    // Expected orders printed by CPython 3.11 for objects hashed by these qids.
    assert_eq!(python_set_order(&[1, 9, 17, 2, 3]), [1, 2, 3, 9, 17]);
    assert_eq!(
        python_set_order(&[0, 5, 13, 21, 29, 8, 16, 24]),
        [0, 5, 8, 13, 16, 21, 24, 29]
    );
    assert_eq!(
        python_set_order(&[40, 37, 34, 31, 28, 25, 22, 19, 16, 13, 10, 7, 4, 1]),
        [1, 34, 4, 37, 7, 40, 10, 13, 16, 19, 22, 25, 28, 31]
    );
    assert_eq!(
        python_set_order(&[100, 3, 254, 7, 12, 1, 33, 65, 97]),
        [1, 33, 3, 100, 65, 97, 7, 12, 254]
    );
}
