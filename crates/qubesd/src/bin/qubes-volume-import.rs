//! The `admin.vm.volume.Import` / `admin.vm.volume.ImportWithSize` qrexec service program
//! (admin-api.md §7.5). Installed as `/etc/qubes-rpc/admin.vm.volume.Import`, with
//! `admin.vm.volume.ImportWithSize` a symlink to it; which call it serves comes from the name
//! it runs under (or `--with-size`).
//!
//! qubesd never sees the data: `internal.vm.volume.ImportBegin` answers where to write it,
//! this program copies exactly that many bytes from standard input (skipping zero blocks, so
//! images stay sparse), syncs them, and `internal.vm.volume.ImportEnd` commits or drops the
//! import. The caller gets ImportEnd's answer, or ImportBegin's if that refused.

use std::fs::OpenOptions;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use qubes_api::{Request, client};

const BLOCK: usize = 1 << 20;
const SPARSE: usize = 64 << 10;

struct Args {
    with_size: bool,
    socket: PathBuf,
    volume: String,
    caller: String,
    target: String,
}

fn usage(msg: &str) -> ! {
    eprintln!("qubes-volume-import: {msg}");
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut argv = std::env::args();
    let argv0 = argv.next().unwrap_or_default();
    let base = argv0.rsplit('/').next().unwrap_or("").to_string();
    let mut with_size = match base.as_str() {
        "admin.vm.volume.ImportWithSize" => Some(true),
        "admin.vm.volume.Import" => Some(false),
        _ => None,
    };
    let mut socket = std::env::var_os("QUBESD_INTERNAL_SOCKET")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/run/qubesd.internal.sock"));
    let mut volume = std::env::var("QREXEC_SERVICE_ARGUMENT").ok();
    let mut rest = argv.collect::<Vec<_>>().into_iter();
    while let Some(a) = rest.next() {
        match a.as_str() {
            "--with-size" => with_size = Some(true),
            "--without-size" => with_size = Some(false),
            "--socket" => {
                socket = rest
                    .next()
                    .map(PathBuf::from)
                    .unwrap_or_else(|| usage("--socket needs a path"))
            }
            "-h" | "--help" => {
                println!(
                    "usage: admin.vm.volume.Import[WithSize] [--socket PATH] VOLUME\n\
                     environment: QREXEC_REMOTE_DOMAIN (caller), QREXEC_REQUESTED_TARGET (qube)"
                );
                std::process::exit(0);
            }
            _ => volume = Some(a),
        }
    }
    let Some(with_size) = with_size else {
        usage(&format!(
            "invoked as {base:?}: run as admin.vm.volume.Import or admin.vm.volume.ImportWithSize, or pass --with-size / --without-size"
        ))
    };
    let env = |k: &str| std::env::var(k).unwrap_or_else(|_| usage(&format!("{k} is not set")));
    Args {
        with_size,
        socket,
        volume: volume.unwrap_or_else(|| usage("no volume argument")),
        caller: env("QREXEC_REMOTE_DOMAIN"),
        target: env("QREXEC_REQUESTED_TARGET"),
    }
}

/// Reads the size line of ImportWithSize: at most 21 bytes including the newline.
fn read_size_line(input: &mut impl BufRead) -> Result<Vec<u8>, String> {
    let mut line = Vec::with_capacity(21);
    input
        .take(21)
        .read_until(b'\n', &mut line)
        .map_err(|e| format!("reading the size: {e}"))?;
    if line.pop() != Some(b'\n') {
        return Err("the size line is missing or longer than 20 characters".into());
    }
    if !line.iter().all(|b| b.is_ascii_graphic()) {
        return Err("the size line is not printable ASCII".into());
    }
    Ok(line)
}

/// Copies exactly `size` bytes of `input` to `path`, leaving holes for zero blocks.
fn copy_exact(input: &mut impl Read, path: &str, size: u64) -> Result<(), String> {
    let mut out = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|_| "error copying data".to_string())?;
    let mut buf = vec![0u8; BLOCK];
    let mut copied: u64 = 0;
    while copied < size {
        let want = (size - copied).min(BLOCK as u64) as usize;
        // Fill a whole block (like dd iflag=fullblock) so zero detection sees full blocks.
        let mut got = 0;
        while got < want {
            match input.read(&mut buf[got..want]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err("error copying data".into()),
            }
        }
        if got == 0 {
            break;
        }
        // Holes at the granularity of dd's conv=sparse with bs=128K (here 64 KiB).
        for (i, chunk) in buf[..got].chunks(SPARSE).enumerate() {
            if !chunk.iter().all(|b| *b == 0) {
                out.write_all_at(chunk, copied + (i * SPARSE) as u64)
                    .map_err(|_| "error copying data".to_string())?;
            }
        }
        copied += got as u64;
        if got < want {
            break;
        }
    }
    // The target may be longer (a resized file) or a block device: never truncate it.
    out.seek(SeekFrom::Start(copied))
        .and_then(|_| out.sync_data())
        .map_err(|_| "error copying data".to_string())?;
    if copied != size {
        return Err(format!(
            "not enough data (copied {copied} bytes, expected {size} bytes)"
        ));
    }
    let mut extra = [0u8; 1];
    loop {
        match input.read(&mut extra) {
            Ok(0) => return Ok(()),
            Ok(_) => return Err(format!("too much data (expected {size} bytes)")),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err("error copying data".into()),
        }
    }
}

fn call(a: &Args, method: &str, payload: &[u8]) -> Result<Vec<u8>, String> {
    let req = Request::encode(method, &a.volume, &a.caller, &a.target, payload);
    client::call_raw(&a.socket, &req).map_err(|e| format!("{}: {e}", a.socket.display()))
}

fn main() -> std::process::ExitCode {
    let a = parse_args();
    let mut input = BufReader::with_capacity(BLOCK, io::stdin().lock());
    let size_payload = if a.with_size {
        match read_size_line(&mut input) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("qubes-volume-import: {e}");
                return std::process::ExitCode::from(1);
            }
        }
    } else {
        Vec::new()
    };
    let mut out = io::stdout().lock();
    let begin = match call(&a, "internal.vm.volume.ImportBegin", &size_payload) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("qubes-volume-import: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    let Some(answer) = begin.strip_prefix(b"0\0") else {
        // Refused (or a generic failure: nothing): the caller gets qubesd's answer as is.
        let _ = out.write_all(&begin);
        return std::process::ExitCode::from(1);
    };
    let answer = String::from_utf8_lossy(answer);
    let Some((size, path)) = answer
        .split_once(' ')
        .and_then(|(s, p)| Some((s.parse::<u64>().ok()?, p.to_string())))
    else {
        eprintln!("qubes-volume-import: unexpected ImportBegin answer");
        return std::process::ExitCode::from(1);
    };
    let status = match copy_exact(&mut input, &path, size) {
        Ok(()) => b"ok".to_vec(),
        Err(e) => format!("fail\n{e}").into_bytes(),
    };
    match call(&a, "internal.vm.volume.ImportEnd", &status) {
        Ok(end) => {
            let _ = out.write_all(&end);
            if end.starts_with(b"0\0") {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("qubes-volume-import: {e}");
            std::process::ExitCode::from(1)
        }
    }
}
