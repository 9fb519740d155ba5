//! The scrypt container format of Tarsnap's `scrypt` tool (admin-api.md §9.3), streamed.
//!
//! ```text
//! "scrypt" 0x00 logN r(u32 BE) p(u32 BE) salt(32) sha256(prev 48)[..16] hmac(prev 64)  = 96 bytes
//! AES-256-CTR ciphertext (nonce 0)
//! HMAC-SHA256(everything before)                                                         = 32 bytes
//! ```
//! Keys: scrypt(passphrase, salt, N, r, p, 64) = AES key ‖ HMAC key.
//!
//! The `scryptenc` crate implements the same format but wants the whole plaintext in memory;
//! a backup chunk is 100 MiB and several are in flight, so this streams on the same RustCrypto
//! primitives (`scrypt`, `aes`, `ctr`, `hmac`, `sha2`). The tests check it against
//! `scryptenc` and against the `scrypt` tool.

use aes::cipher::{KeyIvInit, StreamCipher};
use hmac::{Mac, digest::FixedOutput};
use sha2::{Digest, Sha256};

use crate::error::{BackupError, Result};

type Aes256Ctr = ctr::Ctr128BE<aes::Aes256>;
type HmacSha256 = hmac::Hmac<Sha256>;

/// Size of the container header.
pub const HEADER_LEN: usize = 96;
/// Size of the trailing MAC.
pub const MAC_LEN: usize = 32;
/// Bytes a container adds to its plaintext.
pub const OVERHEAD: u64 = (HEADER_LEN + MAC_LEN) as u64;

/// scrypt cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// log2 of N.
    pub log_n: u8,
    /// Block size.
    pub r: u32,
    /// Parallelism (computed one after the other: costs time, not memory).
    pub p: u32,
}

impl KdfParams {
    /// What this crate writes unless told otherwise: N = 2^16, r = 8, p = 1: 64 MiB and about
    /// 0.25 s here. The `scrypt` tool itself tunes for 5 s and up to half the RAM (N = 2^20,
    /// 1 GiB, 3.6 s here): every 100 MiB chunk needs its own key, so that would dominate a
    /// backup's time and put its memory far above the 100 MB this crate stays under. An
    /// attacker goes for the cheapest container, so every container uses the same cost.
    pub const DEFAULT: KdfParams = KdfParams {
        log_n: 16,
        r: 8,
        p: 1,
    };

    /// Memory the key derivation needs (128 · r · N bytes).
    pub fn memory(&self) -> u128 {
        128u128 * self.r as u128 * (1u128 << self.log_n.min(127))
    }

    /// Work of the key derivation, in units of N·r·p.
    pub fn work(&self) -> u128 {
        (1u128 << self.log_n.min(127)) * self.r as u128 * self.p as u128
    }
}

/// What a reader accepts from an untrusted container header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfLimits {
    /// Largest key-derivation memory (bytes).
    pub max_memory: u64,
    /// Largest N·r·p.
    pub max_work: u64,
}

impl Default for KdfLimits {
    /// Half the machine's memory (the `scrypt` tool's own limit) and 16 times the work the
    /// tool's 5-second tuning picks on a fast machine.
    fn default() -> Self {
        // SAFETY: sysconf has no preconditions.
        let pages = unsafe { libc::sysconf(libc::_SC_PHYS_PAGES) };
        // SAFETY: as above.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        let total = (pages.max(0) as u64).saturating_mul(page.max(0) as u64);
        KdfLimits {
            max_memory: (total / 2).max(64 << 20),
            max_work: 1 << 28,
        }
    }
}

/// The two keys derived from a passphrase and a salt.
#[derive(Clone)]
pub struct Keys {
    aes: [u8; 32],
    hmac: [u8; 32],
}

impl Keys {
    /// Runs scrypt. Parameters must be valid (checked by the callers). One derivation runs
    /// at a time in the process: each takes [`KdfParams::memory`], so this bounds memory
    /// whatever runs at once (a backup's header and chunk keys, two backups, a restore).
    pub fn derive(passphrase: &[u8], salt: &[u8; 32], params: KdfParams) -> Result<Keys> {
        static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let p = scrypt::Params::new(params.log_n, params.r, params.p, 64)
            .map_err(|_| BackupError::qubes("invalid scrypt parameters"))?;
        let mut dk = [0u8; 64];
        scrypt::scrypt(passphrase, salt, &p, &mut dk)
            .map_err(|_| BackupError::qubes("invalid scrypt parameters"))?;
        let mut keys = Keys {
            aes: [0; 32],
            hmac: [0; 32],
        };
        keys.aes.copy_from_slice(&dk[..32]);
        keys.hmac.copy_from_slice(&dk[32..]);
        Ok(keys)
    }

    fn mac(&self) -> HmacSha256 {
        <HmacSha256 as Mac>::new_from_slice(&self.hmac).expect("HMAC takes any key length")
    }

    fn cipher(&self) -> Aes256Ctr {
        Aes256Ctr::new(&self.aes.into(), &[0u8; 16].into())
    }
}

/// A key derived ahead of time for one container (salt and parameters included), so the
/// expensive derivation can run on another thread than the encryption.
#[derive(Clone)]
pub struct SealKey {
    keys: Keys,
    header: [u8; HEADER_LEN],
}

impl SealKey {
    /// Derives the keys for `passphrase` with a fresh random salt.
    pub fn new(passphrase: &[u8], params: KdfParams) -> Result<SealKey> {
        let mut salt = [0u8; 32];
        rand::Rng::fill(&mut rand::rngs::OsRng, &mut salt);
        Self::with_salt(passphrase, params, salt)
    }

    /// Derives the keys with the given salt (tests).
    pub fn with_salt(passphrase: &[u8], params: KdfParams, salt: [u8; 32]) -> Result<SealKey> {
        let keys = Keys::derive(passphrase, &salt, params)?;
        let mut header = [0u8; HEADER_LEN];
        header[..6].copy_from_slice(b"scrypt");
        header[6] = 0;
        header[7] = params.log_n;
        header[8..12].copy_from_slice(&params.r.to_be_bytes());
        header[12..16].copy_from_slice(&params.p.to_be_bytes());
        header[16..48].copy_from_slice(&salt);
        let sum = Sha256::digest(&header[..48]);
        header[48..64].copy_from_slice(&sum[..16]);
        let mut mac = keys.mac();
        mac.update(&header[..64]);
        header[64..96].copy_from_slice(&mac.finalize_fixed());
        Ok(SealKey { keys, header })
    }

    /// Starts a container.
    pub fn seal(self) -> Sealer {
        let mut mac = self.keys.mac();
        mac.update(&self.header);
        Sealer {
            cipher: self.keys.cipher(),
            mac,
            header: self.header,
        }
    }
}

/// Encrypts one container as a stream: [`Sealer::header`], then every [`Sealer::seal`]ed
/// buffer, then [`Sealer::finish`]'s MAC.
pub struct Sealer {
    cipher: Aes256Ctr,
    mac: HmacSha256,
    header: [u8; HEADER_LEN],
}

impl Sealer {
    /// The 96 header bytes.
    pub fn header(&self) -> &[u8; HEADER_LEN] {
        &self.header
    }

    /// Encrypts `buf` in place (the next plaintext bytes).
    pub fn seal(&mut self, buf: &mut [u8]) {
        self.cipher.apply_keystream(buf);
        self.mac.update(buf);
    }

    /// The final MAC.
    pub fn finish(self) -> [u8; MAC_LEN] {
        self.mac.finalize_fixed().into()
    }
}

/// A parsed, not yet authenticated container header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Cost parameters.
    pub params: KdfParams,
    /// Salt.
    pub salt: [u8; 32],
    raw: [u8; HEADER_LEN],
}

impl Header {
    /// Checks the magic, the version, the checksum and the parameters' sanity.
    pub fn parse(untrusted: &[u8; HEADER_LEN]) -> Result<Header> {
        let bad = |what: &str| BackupError::qubes(format!("not an scrypt container: {what}"));
        if &untrusted[..6] != b"scrypt" || untrusted[6] != 0 {
            return Err(bad("wrong magic or version"));
        }
        let sum = Sha256::digest(&untrusted[..48]);
        if sum[..16] != untrusted[48..64] {
            return Err(bad("header checksum mismatch"));
        }
        let params = KdfParams {
            log_n: untrusted[7],
            r: u32::from_be_bytes(untrusted[8..12].try_into().expect("4 bytes")),
            p: u32::from_be_bytes(untrusted[12..16].try_into().expect("4 bytes")),
        };
        if params.log_n == 0 || params.log_n >= 64 || params.r == 0 || params.p == 0 {
            return Err(bad("invalid parameters"));
        }
        let mut salt = [0u8; 32];
        salt.copy_from_slice(&untrusted[16..48]);
        Ok(Header {
            params,
            salt,
            raw: *untrusted,
        })
    }

    /// Derives the keys for `passphrase` within `limits` and checks the header's MAC, which
    /// tells a wrong passphrase from a damaged file.
    pub fn open(&self, passphrase: &[u8], limits: KdfLimits) -> Result<Keys> {
        if self.params.memory() > limits.max_memory as u128 {
            return Err(BackupError::qubes(format!(
                "decrypting needs {} MiB of memory for the key, more than the limit of {} MiB",
                self.params.memory() >> 20,
                limits.max_memory >> 20
            )));
        }
        if self.params.work() > limits.max_work as u128 {
            return Err(BackupError::qubes(
                "decrypting needs more key derivation work than the limit",
            ));
        }
        let keys = Keys::derive(passphrase, &self.salt, self.params)?;
        let mut mac = keys.mac();
        mac.update(&self.raw[..64]);
        mac.verify_slice(&self.raw[64..96])
            .map_err(|_| BackupError::qubes("wrong passphrase"))?;
        Ok(keys)
    }
}

/// Authenticates a container's ciphertext, streamed.
pub struct Verifier {
    mac: HmacSha256,
}

impl Verifier {
    /// Starts with the header already authenticated by [`Header::open`].
    pub fn new(header: &Header, keys: &Keys) -> Verifier {
        let mut mac = keys.mac();
        mac.update(&header.raw);
        Verifier { mac }
    }

    /// The next ciphertext bytes.
    pub fn update(&mut self, ciphertext: &[u8]) {
        self.mac.update(ciphertext);
    }

    /// Whether `tag` is the MAC of everything given.
    pub fn verify(self, tag: &[u8]) -> bool {
        self.mac.verify_slice(tag).is_ok()
    }
}

/// Decrypts a container's ciphertext, streamed (only after [`Verifier`] said it is genuine).
pub struct Decryptor {
    cipher: Aes256Ctr,
}

impl Decryptor {
    /// Starts at the first ciphertext byte.
    pub fn new(keys: &Keys) -> Decryptor {
        Decryptor {
            cipher: keys.cipher(),
        }
    }

    /// Decrypts the next bytes in place.
    pub fn decrypt(&mut self, buf: &mut [u8]) {
        self.cipher.apply_keystream(buf);
    }
}

/// Encrypts a small plaintext in memory (the backup header's `.hmac`).
pub fn seal_bytes(plaintext: &[u8], passphrase: &[u8], params: KdfParams) -> Result<Vec<u8>> {
    let mut sealer = SealKey::new(passphrase, params)?.seal();
    let mut out = Vec::with_capacity(plaintext.len() + OVERHEAD as usize);
    out.extend_from_slice(sealer.header());
    let mut body = plaintext.to_vec();
    sealer.seal(&mut body);
    out.extend_from_slice(&body);
    out.extend_from_slice(&sealer.finish());
    Ok(out)
}

/// Authenticates and decrypts a small container held in memory.
pub fn open_bytes(untrusted: &[u8], passphrase: &[u8], limits: KdfLimits) -> Result<Vec<u8>> {
    if untrusted.len() < OVERHEAD as usize {
        return Err(BackupError::qubes("not an scrypt container: too short"));
    }
    let header = Header::parse(untrusted[..HEADER_LEN].try_into().expect("96 bytes"))?;
    let keys = header.open(passphrase, limits)?;
    let (body, tag) = untrusted[HEADER_LEN..].split_at(untrusted.len() - OVERHEAD as usize);
    let mut v = Verifier::new(&header, &keys);
    v.update(body);
    if !v.verify(tag) {
        return Err(BackupError::qubes("damaged data (MAC mismatch)"));
    }
    let mut out = body.to_vec();
    Decryptor::new(&keys).decrypt(&mut out);
    Ok(out)
}

#[cfg(test)]
mod tests;
