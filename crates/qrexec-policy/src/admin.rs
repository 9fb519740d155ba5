//! The Policy Admin API (`policy.*` qrexec services, qrexec-policy.md §5,
//! policy-tools-contract.md §1.2): list, read, replace and remove policy files with tokens
//! against concurrent changes, validating the whole resulting policy before saving.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::loader::Overlay;
use crate::parser::{ErrorKind, FileSystem, Parser, PolicyError, Source};
use crate::token::py_repr;

/// A failed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminError {
    /// A request error: exit 1, stderr `<class> <message>`.
    Request(&'static str, String),
    /// Anything else: exit 2 (the cause is logged).
    Internal(String),
}

fn protocol(msg: impl Into<String>) -> AdminError {
    AdminError::Request("PolicyAdminProtocolException", msg.into())
}

fn internal(msg: impl Into<String>) -> AdminError {
    AdminError::Internal(msg.into())
}

/// The nine methods.
const METHODS: [&str; 9] = [
    "policy.List",
    "policy.Get",
    "policy.Replace",
    "policy.Remove",
    "policy.include.List",
    "policy.include.Get",
    "policy.include.Replace",
    "policy.include.Remove",
    "policy.GetFiles",
];

/// `sha256:<hex>` of some bytes.
pub fn token_of(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut s = String::from("sha256:");
    for b in digest {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Handles one request against the policy directory `dir` (already locked by the caller).
pub fn handle(dir: &Path, service_full_name: &str, payload: &[u8]) -> Result<Vec<u8>, AdminError> {
    let (method, arg) = service_full_name
        .split_once('+')
        .unwrap_or((service_full_name, ""));
    if !arg
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.' | '_'))
    {
        return Err(protocol(format!(
            "Invalid argument: \"{arg}\"\nValid characters are letters, numbers, dot, plus, hyphen and underline"
        )));
    }
    if !METHODS.contains(&method) {
        return Err(protocol(format!("unrecognized method: {method}")));
    }
    if method.ends_with(".List") && !arg.is_empty() {
        return Err(protocol("Unexpected argument"));
    }
    if (method.ends_with(".List") || method.ends_with(".Get") || method == "policy.GetFiles")
        && !payload.is_empty()
    {
        return Err(protocol("Unexpected payload"));
    }
    // The directory is opened (and locked) first: missing, it is an internal error.
    if !dir.is_dir() {
        return Err(internal(format!("not a directory: {}", dir.display())));
    }
    let include = method.starts_with("policy.include.");
    let (base, suffix) = if include {
        (dir.join("include"), "")
    } else {
        (dir.to_path_buf(), ".policy")
    };
    match method.rsplit('.').next().unwrap_or("") {
        "List" => list(&base, suffix),
        "Get" => {
            let path = name_to_path(&base, arg, suffix)?;
            let bytes = read_existing(&path)?;
            let mut out = token_of(&bytes).into_bytes();
            out.push(b'\n');
            out.extend_from_slice(&bytes);
            Ok(out)
        }
        "Replace" => {
            let path = name_to_path(&base, arg, suffix)?;
            let nl = payload
                .iter()
                .position(|&b| b == b'\n')
                .ok_or_else(|| protocol("Payload needs to include first line with token"))?;
            check_token(&path, &payload[..nl])?;
            let content = std::str::from_utf8(&payload[nl + 1..])
                .map_err(|_| internal("new content is not UTF-8"))?;
            validate(dir, &path, Some(content))?;
            write_file(&path, content.as_bytes())?;
            Ok(Vec::new())
        }
        "Remove" => {
            let path = name_to_path(&base, arg, suffix)?;
            check_token(&path, payload)?;
            if !path.is_file() {
                return Err(not_found(&path));
            }
            validate(dir, &path, None)?;
            std::fs::remove_file(&path).map_err(|e| internal(e.to_string()))?;
            Ok(Vec::new())
        }
        _ => get_files(dir, arg),
    }
}

fn not_found(path: &Path) -> AdminError {
    AdminError::Request(
        "PolicyAdminFileNotFoundException",
        format!("Not found: {}", path.display()),
    )
}

fn read_existing(path: &Path) -> Result<Vec<u8>, AdminError> {
    if !path.is_file() {
        return Err(not_found(path));
    }
    std::fs::read(path).map_err(|e| internal(e.to_string()))
}

/// The regular files of `base` (symlinks followed) whose names end in `suffix`, without it;
/// names must be ASCII, as the reference encodes its answer.
fn list(base: &Path, suffix: &str) -> Result<Vec<u8>, AdminError> {
    let mut names = Vec::new();
    for e in std::fs::read_dir(base)
        .map_err(|e| internal(e.to_string()))?
        .flatten()
    {
        if !e.path().is_file() {
            continue;
        }
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(suffix) {
            if !stem.is_ascii() {
                return Err(internal(format!("file name is not ASCII: {name}")));
            }
            names.push(stem.to_string());
        }
    }
    names.sort();
    Ok(names
        .into_iter()
        .flat_map(|n| (n + "\n").into_bytes())
        .collect())
}

/// Maps a name to its file: `base/<name><suffix>` resolved as the reference resolves it,
/// refused unless it lies directly in `base` as given (so a symlinked include directory, or
/// a link out of the directory, is refused).
fn name_to_path(base: &Path, arg: &str, suffix: &str) -> Result<PathBuf, AdminError> {
    if arg.is_empty()
        || !arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(AdminError::Request(
            "PolicyAdminInvalidFileNameException",
            format!(
                "Invalid policy file name: {arg}\nNames must contain only alphanumeric characters, underscore and hyphen."
            ),
        ));
    }
    let resolved = crate::pathres::resolve(&base.join(format!("{arg}{suffix}")))
        .map_err(|l| internal(format!("symlink loop: {}", l.0.display())))?;
    if resolved.parent() != Some(base) {
        return Err(AdminError::Request(
            "PolicyAdminInvalidFilePathException",
            format!("Expecting a path inside {}", base.display()),
        ));
    }
    Ok(resolved)
}

fn check_token(path: &Path, token: &[u8]) -> Result<(), AdminError> {
    let token_err = |m: &str| AdminError::Request("PolicyAdminTokenException", m.to_string());
    match token {
        b"any" => Ok(()),
        b"new" => {
            if path.exists() {
                Err(token_err("File exists but token is 'new'"))
            } else {
                Ok(())
            }
        }
        t if t.starts_with(b"sha256:") => {
            if !path.exists() {
                return Err(token_err("File doesn't exist, but token isn't 'new'"));
            }
            let current = std::fs::read(path).map_err(|e| internal(e.to_string()))?;
            if token_of(&current).as_bytes() != t {
                return Err(token_err("Token mismatch"));
            }
            Ok(())
        }
        _ => Err(protocol("Unrecognized token")),
    }
}

/// Writes `DIR/!<name>` (mode 0664), synced, and renames it over the target. As the
/// reference, a failed rename leaves the temporary file.
fn write_file(path: &Path, content: &[u8]) -> Result<(), AdminError> {
    let dir = path
        .parent()
        .ok_or_else(|| internal("no parent directory"))?;
    let name = path.file_name().ok_or_else(|| internal("no file name"))?;
    let tmp = dir.join(format!("!{}", name.to_string_lossy()));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(content)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o664))?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(internal(e.to_string()));
    }
    std::fs::rename(&tmp, path).map_err(|e| internal(e.to_string()))?;
    // The rename is durable once the directory is synced.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Parses the whole policy of `dir` as it would be after the change, as the reference's
/// ValidateParser does: the other top-level files first, then the changed one; includes of the
/// changed file read its new content, includes of a removed one fail.
fn validate(dir: &Path, changed: &Path, content: Option<&str>) -> Result<(), AdminError> {
    let overlay = Overlay::for_validation(FileSystem::default(), changed, content);
    let as_admin_error = |e: PolicyError| match e.kind {
        ErrorKind::Syntax => AdminError::Request(
            "PolicyAdminSyntaxException",
            format!("Policy change validation failed: {e}"),
        ),
        _ => internal(e.to_string()),
    };
    let files = overlay.list_dir(dir).map_err(|e| internal(e.msg))?;
    let mut parser = Parser::new(&overlay, dir);
    for f in files {
        let name = f.to_string_lossy().into_owned();
        let text = overlay
            .read_file(&f)
            .map_err(|e| as_admin_error(PolicyError::new(e.kind, e.msg)))?;
        parser.load_text(&text, &name, 0).map_err(as_admin_error)?;
        parser.rules.clear();
    }
    Ok(())
}

fn get_files(dir: &Path, service: &str) -> Result<Vec<u8>, AdminError> {
    if service.is_empty() {
        return Err(protocol("Service cannot be empty."));
    }
    if service.contains('+') {
        return Err(protocol(format!(
            "Service {} contains invalid characters: ('+',)",
            py_repr(service)
        )));
    }
    let rules = crate::parser::load_policy_dirs(&FileSystem::default(), &[dir.to_path_buf()])
        .map_err(|e| internal(e.to_string()))?;
    let mut out: Vec<String> = Vec::new();
    for r in rules {
        if r.service.as_deref().is_some_and(|s| s != service) {
            continue;
        }
        let p = Path::new(&r.file);
        let shown = if p.starts_with(dir) {
            p.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        } else {
            r.file.clone()
        };
        if !out.contains(&shown) {
            out.push(shown);
        }
    }
    Ok(out
        .into_iter()
        .flat_map(|n| (n + "\n").into_bytes())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("include")).unwrap();
        d
    }

    fn req_err(r: Result<Vec<u8>, AdminError>) -> String {
        match r {
            Err(AdminError::Request(class, msg)) => format!("{class} {msg}"),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn list_get_replace_remove() {
        let t = setup();
        let dir = std::fs::canonicalize(t.path()).unwrap();
        std::fs::write(dir.join("file1.policy"), "").unwrap();
        std::fs::write(dir.join("file2.policy"), "").unwrap();
        std::fs::write(dir.join("file3"), "").unwrap();
        assert_eq!(handle(&dir, "policy.List", b"").unwrap(), b"file1\nfile2\n");
        assert_eq!(handle(&dir, "policy.include.List", b"").unwrap(), b"");
        std::fs::write(dir.join("file1.policy"), "policy text").unwrap();
        let got = handle(&dir, "policy.Get+file1", b"").unwrap();
        let token = token_of(b"policy text");
        assert_eq!(got, format!("{token}\npolicy text").into_bytes());
        assert_eq!(
            req_err(handle(&dir, "policy.Replace+file1", b"new\nx")),
            "PolicyAdminTokenException File exists but token is 'new'"
        );
        assert_eq!(
            req_err(handle(&dir, "policy.Replace+file1", b"new")),
            "PolicyAdminProtocolException Payload needs to include first line with token"
        );
        assert_eq!(
            req_err(handle(&dir, "policy.Replace+file1", b"oops\n")),
            "PolicyAdminProtocolException Unrecognized token"
        );
        assert_eq!(
            req_err(handle(&dir, "policy.Replace+file1", b"sha256:aaaa\n")),
            "PolicyAdminTokenException Token mismatch"
        );
        let ok = format!("{token}\ntest.service * @anyvm dom0 deny\n");
        assert_eq!(
            handle(&dir, "policy.Replace+file1", ok.as_bytes()).unwrap(),
            b""
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("file1.policy")).unwrap(),
            "test.service * @anyvm dom0 deny\n"
        );
        let mode = std::fs::metadata(dir.join("file1.policy"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o664);
        assert_eq!(
            handle(&dir, "policy.GetFiles+test.service", b"").unwrap(),
            b"file1\n"
        );
        assert_eq!(
            req_err(handle(&dir, "policy.GetFiles", b"")),
            "PolicyAdminProtocolException Service cannot be empty."
        );
        std::fs::write(dir.join("file2.policy"), "").unwrap();
        let empty = token_of(b"");
        assert_eq!(
            req_err(handle(&dir, "policy.Remove+file2", b"any\n")),
            "PolicyAdminProtocolException Unrecognized token"
        );
        assert_eq!(
            handle(&dir, "policy.Remove+file2", empty.as_bytes()).unwrap(),
            b""
        );
        assert!(!dir.join("file2.policy").exists());
        assert!(
            std::fs::read_dir(&dir).unwrap().all(|e| !e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('!'))
        );
    }

    #[test]
    fn validation_and_names() {
        let t = setup();
        let dir = std::fs::canonicalize(t.path()).unwrap();
        let e = req_err(handle(&dir, "policy.Replace+file1", b"any\nxxx"));
        assert_eq!(
            e,
            format!(
                "PolicyAdminSyntaxException Policy change validation failed: {}/file1.policy:1: wrong number of fields",
                dir.display()
            )
        );
        let e = req_err(handle(
            &dir,
            "policy.Replace+file1",
            b"any\n!include include/inc",
        ));
        assert!(e.contains("not a file:"), "{e}");
        assert!(
            !dir.join("file1.policy").exists(),
            "nothing written on failure"
        );
        std::fs::write(dir.join("include/inc"), "").unwrap();
        std::fs::write(dir.join("file1.policy"), "!include include/inc\n").unwrap();
        let e = req_err(handle(&dir, "policy.include.Remove+inc", b"any"));
        assert!(
            e.starts_with("PolicyAdminSyntaxException Policy change validation failed:")
                && e.contains("including a file that will be removed"),
            "{e}"
        );
        assert!(dir.join("include/inc").exists());
        // An include file is validated in the context that includes it.
        let e = req_err(handle(
            &dir,
            "policy.include.Replace+inc",
            b"any\nbroken line",
        ));
        assert!(e.contains("wrong number of fields"), "{e}");
        assert_eq!(
            handle(
                &dir,
                "policy.include.Replace+inc",
                b"any\nsvc * @anyvm @anyvm deny\n"
            )
            .unwrap(),
            b""
        );
        for bad in [
            "policy.Get+.hidden_evil_policy",
            "policy.include.Get+..",
            "policy.include.Get",
        ] {
            assert!(
                req_err(handle(&dir, bad, b""))
                    .starts_with("PolicyAdminInvalidFileNameException Invalid policy file name:"),
                "{bad}"
            );
        }
        assert_eq!(
            req_err(handle(&dir, "policy.Get+a b", b"")),
            "PolicyAdminProtocolException Invalid argument: \"a b\"\nValid characters are letters, numbers, dot, plus, hyphen and underline"
        );
        assert_eq!(
            req_err(handle(&dir, "policy.List+x", b"")),
            "PolicyAdminProtocolException Unexpected argument"
        );
        assert_eq!(
            req_err(handle(&dir, "policy.List", b"p")),
            "PolicyAdminProtocolException Unexpected payload"
        );
        assert_eq!(
            req_err(handle(&dir, "policy.NonExistent", b"")),
            "PolicyAdminProtocolException unrecognized method: policy.NonExistent"
        );
        assert!(matches!(
            handle(&dir, "policy.Replace+x", b"any\n\xff"),
            Err(AdminError::Internal(_))
        ));
        assert_eq!(
            req_err(handle(&dir, "policy.Get+nope", b"")),
            format!(
                "PolicyAdminFileNotFoundException Not found: {}/nope.policy",
                dir.display()
            )
        );
        // A symlink that points out of the directory is refused.
        std::os::unix::fs::symlink("/etc/passwd", dir.join("evil.policy")).unwrap();
        assert_eq!(
            req_err(handle(&dir, "policy.Get+evil", b"")),
            format!(
                "PolicyAdminInvalidFilePathException Expecting a path inside {}",
                dir.display()
            )
        );
    }
}
