use super::*;
use std::io::Write;
use std::process::Command;

/// Writes the member for `path` as the writer does, into `out`.
fn member(name: &str, path: &std::path::Path, out: &mut Vec<u8>) {
    let f = File::open(path).unwrap();
    let len = source_len(&f).unwrap();
    let map = scan(&f, len, &|| false).unwrap();
    out.extend_from_slice(&sparse_header(name, &map, 1_700_000_000, 0o644));
    for &(off, l) in &map.extents {
        let mut b = vec![0u8; l as usize];
        f.read_exact_at(&mut b, off).unwrap();
        out.extend_from_slice(&b);
    }
    out.resize(out.len() + padding(map.data_len()), 0);
}

fn have_gnu_tar() -> bool {
    let ok = Command::new("tar")
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("GNU tar"));
    if !ok {
        let _ = writeln!(std::io::stderr(), "SKIPPED: GNU tar is not installed");
    }
    ok
}

#[test]
fn holes_are_found_without_reading() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("img");
    let f = File::create(&p).unwrap();
    f.set_len(64 << 20).unwrap();
    f.write_all_at(b"start", 0).unwrap();
    f.write_all_at(&[7u8; 10000], 20 << 20).unwrap();
    // Written zeros are data for SEEK_DATA; only the zero scan drops them.
    f.write_all_at(&[0u8; 8192], 40 << 20).unwrap();
    drop(f);
    let f = File::open(&p).unwrap();
    let map = scan(&f, 64 << 20, &|| false).unwrap();
    assert_eq!(map.len, 64 << 20);
    assert!(map.data_len() < 1 << 20, "{map:?}");
    assert_eq!(map.extents[0].0, 0);
    assert!(
        map.extents
            .iter()
            .any(|&(o, l)| o <= 20 << 20 && o + l >= (20 << 20) + 10000)
    );
    let zeros = scan_zeros(&f, 64 << 20, &|| false).unwrap();
    assert_eq!(
        zeros.extents,
        vec![(0, 4096), (20 << 20, 12288)],
        "4 KiB granularity"
    );
}

#[test]
fn map_stays_bounded() {
    let mut map = SparseMap {
        extents: Vec::new(),
        len: 1 << 40,
    };
    for i in 0..(MAX_EXTENTS as u64 * 4) {
        map.push(i * 16384, 4096);
    }
    assert!(map.extents.len() <= MAX_EXTENTS);
    // Everything that was data still is.
    let mut covered = 0;
    for i in 0..(MAX_EXTENTS as u64 * 4) {
        let off = i * 16384;
        let i = map.extents.partition_point(|&(o, _)| o <= off);
        if i > 0 && off + 4096 <= map.extents[i - 1].0 + map.extents[i - 1].1 {
            covered += 1;
        }
    }
    assert_eq!(covered, MAX_EXTENTS * 4);
}

#[test]
fn pax_records_count_their_own_length() {
    let mut v = Vec::new();
    pax_record(&mut v, "GNU.sparse.major", "1");
    assert_eq!(v, b"22 GNU.sparse.major=1\n");
    let mut v = Vec::new();
    pax_record(&mut v, "path", &"x".repeat(90));
    assert_eq!(v.len(), 99);
    assert!(v.starts_with(b"99 path="));
    // One more byte and the length needs a third digit, which itself counts.
    let mut v = Vec::new();
    pax_record(&mut v, "path", &"x".repeat(91));
    assert_eq!(v.len(), 101);
    assert!(v.starts_with(b"101 path="));
}

/// GNU tar extracts our sparse members (holes kept) and plain members, long names too.
#[test]
fn gnu_tar_reads_our_members() {
    if !have_gnu_tar() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.img");
    let f = File::create(&src).unwrap();
    f.set_len(10 << 20).unwrap();
    f.write_all_at(&[1u8; 5000], 3 << 20).unwrap();
    f.write_all_at(b"tail", (8 << 20) - 4).unwrap();
    drop(f);
    let mut stream = Vec::new();
    member("vm12/private.img", &src, &mut stream);
    let long = format!("vm12/{}.txt", "n".repeat(150));
    let body = b"firewall rules\n";
    stream.extend_from_slice(&plain_header(&long, body.len() as u64, 0, 0o644));
    stream.extend_from_slice(body);
    stream.resize(stream.len() + padding(body.len() as u64), 0);
    stream.extend_from_slice(&END_OF_ARCHIVE);
    let tarfile = dir.path().join("inner.tar");
    std::fs::write(&tarfile, &stream).unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let st = Command::new("tar")
        .arg("-xf")
        .arg(&tarfile)
        .arg("-C")
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(
        std::fs::read(out.join("vm12/private.img")).unwrap(),
        std::fs::read(&src).unwrap()
    );
    assert_eq!(std::fs::read(out.join(&long)).unwrap(), body);
    let listing = Command::new("tar")
        .args(["-tvvf"])
        .arg(&tarfile)
        .arg("vm12/private.img")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&listing.stdout);
    assert!(text.contains(" 10485760 "), "{text}");
}
