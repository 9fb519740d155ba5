use super::*;

const FAST: KdfParams = KdfParams {
    log_n: 10,
    r: 8,
    p: 1,
};

fn limits() -> KdfLimits {
    KdfLimits::default()
}

#[test]
fn scryptenc_reads_ours_and_we_read_scryptenc() {
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let ours = seal_bytes(&data, b"pass", FAST).unwrap();
    assert_eq!(ours.len(), data.len() + 128);
    assert_eq!(scryptenc::decrypt(&ours, b"pass").unwrap(), data);
    let params = scryptenc::scrypt::Params::new(10, 8, 2, 64).unwrap();
    let theirs = scryptenc::encrypt_with_params(&data, b"pass", params);
    assert_eq!(open_bytes(&theirs, b"pass", limits()).unwrap(), data);
}

#[test]
fn streamed_equals_whole() {
    let data = vec![0x5au8; 70_001];
    let key = SealKey::with_salt(b"k", FAST, [3; 32]).unwrap();
    let mut a = key.clone().seal();
    let mut whole = data.clone();
    a.seal(&mut whole);
    let tag_a = a.finish();
    let mut b = key.seal();
    let mut pieces = data.clone();
    for part in pieces.chunks_mut(4097) {
        b.seal(part);
    }
    assert_eq!(whole, pieces);
    assert_eq!(tag_a, b.finish());
}

#[test]
fn wrong_passphrase_damage_and_limits() {
    let c = seal_bytes(b"hello", b"right", FAST).unwrap();
    assert_eq!(
        open_bytes(&c, b"wrong", limits()).unwrap_err().message(),
        "wrong passphrase"
    );
    for i in 0..c.len() {
        let mut bad = c.clone();
        bad[i] ^= 0x10;
        assert!(open_bytes(&bad, b"right", limits()).is_err(), "byte {i}");
    }
    assert!(open_bytes(&c[..c.len() - 1], b"right", limits()).is_err());
    let tight = KdfLimits {
        max_memory: 1 << 19,
        max_work: 1 << 40,
    };
    assert!(
        open_bytes(&c, b"right", tight)
            .unwrap_err()
            .message()
            .contains("memory")
    );
    // A header claiming N = 2^63 is refused before anything is allocated.
    let mut huge = c.clone();
    huge[7] = 63;
    let sum = Sha256::digest(&huge[..48]);
    huge[48..64].copy_from_slice(&sum[..16]);
    assert!(open_bytes(&huge, b"right", limits()).is_err());
}

/// The Debian `scrypt` tool decrypts what we write and we decrypt what it writes.
#[test]
fn scrypt_tool_interop() {
    if std::process::Command::new("scrypt")
        .arg("--version")
        .output()
        .is_err()
    {
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"SKIPPED scrypt_tool_interop: the scrypt tool is not installed\n",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i ^ (i >> 8)) as u8).collect();
    let pass = dir.path().join("pass");
    std::fs::write(&pass, b"backup-id!vm3/private.img.000!secret").unwrap();
    let enc = dir.path().join("ours.enc");
    std::fs::write(
        &enc,
        seal_bytes(&data, b"backup-id!vm3/private.img.000!secret", FAST).unwrap(),
    )
    .unwrap();
    let out = std::process::Command::new("scrypt")
        .args(["dec", "-f", "--passphrase"])
        .arg(format!("file:{}", pass.display()))
        .arg(&enc)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, data);
    let plain = dir.path().join("plain");
    std::fs::write(&plain, &data).unwrap();
    let theirs = dir.path().join("theirs.enc");
    let st = std::process::Command::new("scrypt")
        .args(["enc", "--logN", "12", "-r", "8", "-p", "1", "--passphrase"])
        .arg(format!("file:{}", pass.display()))
        .arg(&plain)
        .arg(&theirs)
        .status()
        .unwrap();
    assert!(st.success());
    let bytes = std::fs::read(&theirs).unwrap();
    assert_eq!(
        open_bytes(&bytes, b"backup-id!vm3/private.img.000!secret", limits()).unwrap(),
        data
    );
}
