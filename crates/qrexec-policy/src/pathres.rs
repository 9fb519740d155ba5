//! Path resolution as the reference does it: Python's `Path.resolve()` (non-strict), which
//! follows every symlink it can and keeps the rest of a path whose component is missing as
//! written. Include paths, compat files and the Admin API's file names all go through it, so a
//! symlinked include directory or file is seen exactly where the reference sees it.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Component, Path, PathBuf};

/// Longest chain of symlinks followed (the kernel's limit is 40 per lookup).
const MAX_LINKS: usize = 256;

/// A symlink loop: the reference raises `RuntimeError` (a crash) there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymlinkLoop(pub PathBuf);

/// `Path(p).resolve()` of Python 3.11 for an absolute or relative path (relative to the
/// working directory).
pub fn resolve(p: &Path) -> Result<PathBuf, SymlinkLoop> {
    let start = if p.is_absolute() {
        PathBuf::new()
    } else {
        std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"))
    };
    let mut seen: HashMap<PathBuf, Option<PathBuf>> = HashMap::new();
    let mut links = 0;
    let (path, ok) = join_real(start, p, &mut seen, &mut links);
    let path = if path.as_os_str().is_empty() {
        PathBuf::from("/")
    } else {
        path
    };
    // Non-strict resolution does not fail on a loop itself; Python then stats the result and
    // raises for ELOOP.
    if !ok || std::fs::metadata(&path).is_err_and(|e| e.raw_os_error() == Some(libc::ELOOP)) {
        return Err(SymlinkLoop(path));
    }
    Ok(path)
}

/// `posixpath._joinrealpath`: resolves `rest` onto the already resolved `path`.
fn join_real(
    mut path: PathBuf,
    rest: &Path,
    seen: &mut HashMap<PathBuf, Option<PathBuf>>,
    links: &mut usize,
) -> (PathBuf, bool) {
    let mut comps = rest.components().peekable();
    while let Some(c) = comps.next() {
        let name: &OsStr = match c {
            Component::RootDir => {
                path = PathBuf::from("/");
                continue;
            }
            Component::CurDir | Component::Prefix(_) => continue,
            Component::ParentDir => {
                if path.as_os_str().is_empty() {
                    path = PathBuf::from("..");
                } else if path.file_name().is_none() && path.ends_with("..") {
                    path.push("..");
                } else {
                    path.pop();
                }
                continue;
            }
            Component::Normal(n) => n,
        };
        let newpath = path.join(name);
        let is_link = std::fs::symlink_metadata(&newpath).is_ok_and(|m| m.file_type().is_symlink());
        if !is_link {
            path = newpath;
            continue;
        }
        if let Some(known) = seen.get(&newpath) {
            match known {
                Some(p) => {
                    path = p.clone();
                    continue;
                }
                // Seen but not resolved: a loop.
                None => return (join_rest(newpath, comps), false),
            }
        }
        *links += 1;
        let Ok(target) = std::fs::read_link(&newpath) else {
            path = newpath;
            continue;
        };
        if *links > MAX_LINKS {
            return (join_rest(newpath, comps), false);
        }
        seen.insert(newpath.clone(), None);
        let (resolved, ok) = join_real(path, &target, seen, links);
        if !ok {
            return (join_rest(resolved, comps), false);
        }
        seen.insert(newpath, Some(resolved.clone()));
        path = resolved;
    }
    (path, true)
}

fn join_rest<'a>(mut p: PathBuf, rest: impl Iterator<Item = Component<'a>>) -> PathBuf {
    for c in rest {
        p.push(c.as_os_str());
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn follows_links_and_keeps_missing_parts() {
        let t = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(t.path()).unwrap();
        std::fs::create_dir(root.join("real")).unwrap();
        symlink("real", root.join("link")).unwrap();
        symlink("../nowhere/x", root.join("real/dangling")).unwrap();
        symlink("loop2", root.join("loop1")).unwrap();
        symlink("loop1", root.join("loop2")).unwrap();
        assert_eq!(resolve(&root.join("link/a")).unwrap(), root.join("real/a"));
        assert_eq!(
            resolve(&root.join("link/dangling")).unwrap(),
            root.join("nowhere/x")
        );
        assert_eq!(
            resolve(&root.join("missing/../real/./b")).unwrap(),
            root.join("real/b")
        );
        assert!(resolve(&root.join("loop1")).is_err());
        assert!(resolve(&root.join("loop1/x")).is_err());
    }
}
