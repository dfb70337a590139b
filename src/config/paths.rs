//! Where the proxy's files are when the config does not say, and how the
//! admin commands find the admin socket from a config that may be broken.
//!
//! The default admin socket lives in a runtime directory of the proxy's
//! own, never directly in a shared directory such as `/tmp`, where another
//! user could plant a socket or a symlink under a predictable name.

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The admin socket's file name in the proxy's runtime directory.
const SOCKET_NAME: &str = "switchyard.sock";

/// The admin socket when `[proxy] admin_socket` is absent:
/// `$XDG_RUNTIME_DIR/switchyard/switchyard.sock` when XDG_RUNTIME_DIR is
/// set, else `/run/switchyard/switchyard.sock` for root, else
/// `${TMPDIR:-/tmp}/switchyard-$UID/switchyard.sock`.
pub fn default_admin_socket() -> PathBuf {
    default_runtime_dir().join(SOCKET_NAME)
}

/// The directory [`default_admin_socket`] is in.
pub fn default_runtime_dir() -> PathBuf {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(xdg) = var("XDG_RUNTIME_DIR") {
        return PathBuf::from(xdg).join("switchyard");
    }
    match effective_uid() {
        Some(0) => PathBuf::from("/run/switchyard"),
        uid => {
            let tmp = var("TMPDIR").map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
            let who = uid.map_or_else(
                || std::env::var("USER").unwrap_or_else(|_| "unknown".to_owned()),
                |u| u.to_string(),
            );
            tmp.join(format!("switchyard-{who}"))
        }
    }
}

/// This process's effective user id: the owner of `/proc/self`.
fn effective_uid() -> Option<u32> {
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

/// Creates the proxy's runtime directory (mode 0700) when `socket` is in
/// it, and refuses one that someone else owns or may write to: whoever can
/// write there can put their own socket in the proxy's place. A socket
/// elsewhere is the operator's choice and left alone.
pub fn prepare_socket_dir(socket: &Path) -> io::Result<()> {
    let dir = default_runtime_dir();
    if socket.parent() != Some(dir.as_path()) {
        return Ok(());
    }
    private_dir(&dir)
}

/// `dir`, created with mode 0700 if missing; refused if it is not a
/// directory of this user's that only this user may write to.
fn private_dir(dir: &Path) -> io::Result<()> {
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = std::fs::symlink_metadata(dir)?;
    let refuse = |why: &str| {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} {why}; remove it, or set proxy.admin_socket to a path in a directory only \
                 the proxy's user can write to",
                dir.display()
            ),
        ))
    };
    if !meta.is_dir() {
        return refuse("is not a directory");
    }
    if effective_uid().is_some_and(|uid| uid != meta.uid()) {
        return refuse("belongs to another user");
    }
    if meta.permissions().mode() & 0o022 != 0 {
        return refuse("may be written to by other users");
    }
    Ok(())
}

/// `path` as the proxy uses it: a relative path is taken from the
/// directory the config file is in, not from wherever the proxy or the
/// CLI happens to be started.
pub fn beside_config(config: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_owned();
    }
    let dir = config.parent().unwrap_or(Path::new(""));
    let joined = dir.join(path);
    std::path::absolute(&joined).unwrap_or(joined)
}

/// Why the admin socket could not be found from a config file.
#[derive(Debug, thiserror::Error)]
pub enum SocketLookupError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error(
        "config file {path} is not valid TOML ({reason}) and has no readable \
         `admin_socket = \"...\"` line in its [proxy] table"
    )]
    Unreadable { path: PathBuf, reason: String },
    #[error("config file {path}: proxy.admin_socket must be a string (a path)")]
    NotAPath { path: PathBuf },
}

/// The admin socket named by the config file at `path`, reading nothing
/// else from it: the file may be half edited while the proxy runs on the
/// config it was started with, and that must never stop a rollback flip.
/// The file is read as loose TOML; when it is not TOML at all, its
/// `[proxy]` table is scanned line by line for `admin_socket`. An absent
/// key is the default socket.
pub fn admin_socket_of(path: &Path) -> Result<PathBuf, SocketLookupError> {
    let text = std::fs::read_to_string(path).map_err(|source| SocketLookupError::Read {
        path: path.to_owned(),
        source,
    })?;
    let socket = match text.parse::<toml::Table>() {
        Ok(table) => match table.get("proxy").and_then(|p| p.get("admin_socket")) {
            None => return Ok(default_admin_socket()),
            Some(toml::Value::String(s)) => PathBuf::from(s),
            Some(_) => {
                return Err(SocketLookupError::NotAPath {
                    path: path.to_owned(),
                })
            }
        },
        Err(e) => scan_for_socket(&text).ok_or_else(|| SocketLookupError::Unreadable {
            path: path.to_owned(),
            reason: e.message().trim_end().to_owned(),
        })?,
    };
    Ok(beside_config(path, &socket))
}

/// The `admin_socket = "..."` line of the `[proxy]` table, for text that
/// is not TOML as a whole.
fn scan_for_socket(text: &str) -> Option<PathBuf> {
    let mut in_proxy = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_proxy = line.split('#').next().map(str::trim) == Some("[proxy]");
            continue;
        }
        if !in_proxy {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if key.trim() != "admin_socket" {
            continue;
        }
        // The value alone is TOML even when the file is not.
        let one: toml::Table = format!("v = {}", value.trim()).parse().ok()?;
        return one.get("v")?.as_str().map(PathBuf::from);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_file(name: &str, text: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("switchyard-paths-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("proxy.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn the_socket_of_a_config_that_fails_validation_is_still_found() {
        let path = config_file(
            "invalid",
            "[proxy]\nlisten = \"nonsense\"\nadmin_socket = \"/run/sy/a.sock\"\n",
        );
        assert_eq!(
            admin_socket_of(&path).unwrap(),
            PathBuf::from("/run/sy/a.sock")
        );
    }

    #[test]
    fn the_socket_of_a_config_that_is_not_toml_is_scanned_for() {
        let path = config_file(
            "broken",
            "[clusters.old]\nadmin_socket = \"/wrong.sock\"\n[proxy]\nlisten = \"127.0.0.1:9092\n\
             admin_socket = '/run/sy/b.sock'  # the one\n[proxy.tls]\ncert = \"x\"\n",
        );
        assert_eq!(
            admin_socket_of(&path).unwrap(),
            PathBuf::from("/run/sy/b.sock")
        );
        let path = config_file("hopeless", "[proxy\nadmin_socket = \"/x.sock\"\n");
        let e = admin_socket_of(&path).unwrap_err().to_string();
        assert!(e.contains("is not valid TOML"), "{e}");
    }

    #[test]
    fn an_absent_socket_is_the_default_and_a_relative_one_is_beside_the_config() {
        let path = config_file("absent", "[proxy]\nlisten = \"127.0.0.1:9092\"\n");
        assert_eq!(admin_socket_of(&path).unwrap(), default_admin_socket());
        let path = config_file("relative", "[proxy]\nadmin_socket = \"run/a.sock\"\n");
        assert_eq!(
            admin_socket_of(&path).unwrap(),
            path.parent().unwrap().join("run/a.sock")
        );
    }

    #[test]
    fn the_default_socket_is_in_a_directory_of_its_own() {
        let socket = default_admin_socket();
        assert_eq!(socket.file_name().unwrap(), "switchyard.sock");
        let dir = socket.parent().unwrap().file_name().unwrap();
        assert!(dir.to_string_lossy().starts_with("switchyard"), "{dir:?}");
    }

    #[test]
    fn a_runtime_directory_is_made_private_and_one_others_may_write_to_is_refused() {
        let base = std::env::temp_dir().join(format!("switchyard-rundir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let dir = base.join("switchyard");
        private_dir(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        private_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = private_dir(&dir).unwrap_err().to_string();
        assert!(e.contains("may be written to by other users"), "{e}");
        std::fs::remove_dir_all(&base).unwrap();
    }
}
