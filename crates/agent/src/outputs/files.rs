//! A task's output folder belongs to the task. It may hold anything — links to the host's
//! files, named pipes, device nodes — and may change while jobrun reads it: locally it is a
//! bind mount the container writes into, in AWS the job's process shares it with the jobrun
//! that uploads it. So every read of it goes through here:
//!
//! - each path component is opened relative to the folder's handle, never following a link
//!   (`openat` with `O_NOFOLLOW`, by `rustix`), so nothing outside the folder is reached;
//! - only folders and regular files are taken; links, pipes, devices and sockets are skipped
//!   (listings say which) or refused (an open says what the name is instead);
//! - a file is read from the handle that was checked, never opened again by its name (a task
//!   that swaps a file for a link while it is read gets the file or nothing);
//! - listings and reads are bounded ([`MAX_FILES`], [`MAX_DEPTH`], the caller's byte limit).

use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags};
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::SystemTime;

/// At most this many entries (files, folders, skipped names) in one output folder.
pub const MAX_FILES: usize = 100_000;
/// At most this many folders deep.
pub const MAX_DEPTH: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{rel}: not a name of a file under the output folder")]
    BadName { rel: String },
    #[error(
        "{rel} is {kind}, not a regular file (an output folder keeps regular files and folders only)"
    )]
    NotRegular { rel: String, kind: &'static str },
    #[error("{rel} changed while it was read (it is no longer the file that was checked)")]
    Changed { rel: String },
    #[error(
        "the output folder holds more than {MAX_FILES} entries or is more than {MAX_DEPTH} folders deep"
    )]
    TooMany,
    #[error("{rel}: {source}")]
    Io { rel: String, source: std::io::Error },
}

impl FileError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, FileError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

fn io_at(rel: &str) -> impl Fn(rustix::io::Errno) -> FileError + '_ {
    move |e| FileError::Io {
        rel: rel.to_string(),
        source: e.into(),
    }
}

/// What a name is, in words, for one that is not a regular file.
fn kind_of(t: FileType) -> &'static str {
    match t {
        FileType::RegularFile => "a regular file",
        FileType::Directory => "a folder",
        FileType::Symlink => "a symbolic link",
        FileType::Fifo => "a named pipe",
        FileType::Socket => "a socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        _ => "of an unknown kind",
    }
}

/// A regular file of an output folder, open for reading, as it was when checked.
#[derive(Debug)]
pub struct OutputFile {
    pub file: std::fs::File,
    pub size: u64,
    pub modified: Option<SystemTime>,
    /// (device, inode): a later open by the same name must find the same file.
    id: (u64, u64),
}

/// One regular file found by [`list`].
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    /// Its path under the folder, `/`-separated.
    pub rel: String,
    pub size: u64,
}

/// What an output folder holds: its regular files, and the names that are not kept.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Listing {
    pub files: Vec<Listed>,
    /// (path, why): links, pipes, devices, sockets, names that are not UTF-8.
    pub skipped: Vec<(String, String)>,
}

/// The output folder itself, opened as a folder (a link in its place is refused: the task
/// may have replaced the folder jobrun made).
fn open_root(dir: &Path) -> Result<OwnedFd, FileError> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rustix::fs::openat(CWD, dir, flags, Mode::empty()).map_err(|e| FileError::Io {
        rel: dir.display().to_string(),
        source: e.into(),
    })
}

/// `rel`'s parts: plain names only (no empty part, `.`, `..` or NUL).
fn parts(rel: &str) -> Result<Vec<&str>, FileError> {
    let parts: Vec<&str> = rel.split('/').collect();
    let bad = |p: &&str| p.is_empty() || *p == "." || *p == ".." || p.contains('\0');
    if parts.iter().any(bad) {
        return Err(FileError::BadName {
            rel: rel.to_string(),
        });
    }
    Ok(parts)
}

/// A `/`-separated relative path of plain names (what an S3 key's rest must be to become a
/// file under a folder).
pub fn is_plain_path(rel: &str) -> bool {
    parts(rel).is_ok()
}

/// Opens the folder `name` under `parent`, refusing a link or anything else in its place.
fn open_subdir(parent: &OwnedFd, name: &str, rel: &str) -> Result<OwnedFd, FileError> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rustix::fs::openat(parent, name, flags, Mode::empty()).map_err(|e| match e {
        rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR => {
            let kind = rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
                .map(|s| kind_of(FileType::from_raw_mode(s.st_mode)))
                .unwrap_or("not a folder");
            FileError::NotRegular {
                rel: rel.to_string(),
                kind,
            }
        }
        e => io_at(rel)(e),
    })
}

/// Opens `rel` (a `/`-separated path) under the output folder `dir`: a regular file, reached
/// without following any link, with its size and time as the open handle sees them.
pub fn open(dir: &Path, rel: &str) -> Result<OutputFile, FileError> {
    let parts = parts(rel)?;
    let (last, folders) = parts.split_last().expect("split gives one part at least");
    let mut at = open_root(dir)?;
    for name in folders {
        at = open_subdir(&at, name, rel)?;
    }
    // Looked at before it is opened: a pipe or a device is never opened at all.
    let seen = rustix::fs::statat(&at, *last, AtFlags::SYMLINK_NOFOLLOW).map_err(io_at(rel))?;
    let kind = FileType::from_raw_mode(seen.st_mode);
    if kind != FileType::RegularFile {
        let kind = kind_of(kind);
        return Err(FileError::NotRegular {
            rel: rel.to_string(),
            kind,
        });
    }
    // Swapped for something else since: O_NOFOLLOW refuses a link, O_NONBLOCK never waits on
    // a pipe, and the handle's own stat must say regular file again.
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(&at, *last, flags | OFlags::NOCTTY, Mode::empty()).map_err(
        |e| match e {
            rustix::io::Errno::LOOP => FileError::NotRegular {
                rel: rel.to_string(),
                kind: "a symbolic link",
            },
            e => io_at(rel)(e),
        },
    )?;
    let stat = rustix::fs::fstat(&fd).map_err(io_at(rel))?;
    let kind = FileType::from_raw_mode(stat.st_mode);
    if kind != FileType::RegularFile {
        return Err(FileError::NotRegular {
            rel: rel.to_string(),
            kind: kind_of(kind),
        });
    }
    let file = std::fs::File::from(fd);
    let modified = file.metadata().and_then(|m| m.modified()).ok();
    Ok(OutputFile {
        file,
        size: stat.st_size as u64,
        modified,
        id: (stat.st_dev as u64, stat.st_ino as u64),
    })
}

/// Opens `rel` again (a retried upload, another part of it): the same file as `checked`, or
/// an error.
pub fn reopen(dir: &Path, rel: &str, checked: &OutputFile) -> Result<std::fs::File, FileError> {
    let again = open(dir, rel)?;
    if again.id != checked.id {
        return Err(FileError::Changed {
            rel: rel.to_string(),
        });
    }
    Ok(again.file)
}

/// At most `limit` bytes of `rel`: `Ok(None)` when there is no such file, `Err(Ok(size))` when
/// it holds more than `limit` bytes (it is not read).
pub fn read_bounded(
    dir: &Path,
    rel: &str,
    limit: usize,
) -> Result<Option<Result<Vec<u8>, u64>>, FileError> {
    let f = match open(dir, rel) {
        Ok(f) => f,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e),
    };
    if f.size > limit as u64 {
        return Ok(Some(Err(f.size)));
    }
    let mut bytes = Vec::with_capacity(f.size as usize);
    // One byte more than the limit tells a file that grew since its stat.
    let read = (&f.file).take(limit as u64 + 1).read_to_end(&mut bytes);
    read.map_err(|source| FileError::Io {
        rel: rel.to_string(),
        source,
    })?;
    if bytes.len() > limit {
        return Ok(Some(Err(bytes.len() as u64)));
    }
    Ok(Some(Ok(bytes)))
}

/// Every regular file under `dir` (sorted by path), and what was skipped. A folder that is
/// not there lists as empty.
pub fn list(dir: &Path) -> Result<Listing, FileError> {
    let root = match open_root(dir) {
        Ok(fd) => fd,
        Err(e) if e.is_not_found() => return Ok(Listing::default()),
        Err(e) => return Err(e),
    };
    let mut out = Listing::default();
    let mut seen = 0usize;
    walk(&root, "", 0, &mut out, &mut seen)?;
    out.files.sort_by(|a, b| a.rel.cmp(&b.rel));
    out.skipped.sort();
    Ok(out)
}

fn walk(
    at: &OwnedFd,
    prefix: &str,
    depth: usize,
    out: &mut Listing,
    seen: &mut usize,
) -> Result<(), FileError> {
    if depth > MAX_DEPTH {
        return Err(FileError::TooMany);
    }
    let dir = rustix::fs::Dir::read_from(at).map_err(io_at(prefix))?;
    for entry in dir {
        let entry = entry.map_err(io_at(prefix))?;
        let raw = entry.file_name().to_bytes();
        if raw == b"." || raw == b".." {
            continue;
        }
        *seen += 1;
        if *seen > MAX_FILES {
            return Err(FileError::TooMany);
        }
        let Ok(name) = std::str::from_utf8(raw) else {
            let shown = String::from_utf8_lossy(raw);
            out.skipped
                .push((format!("{prefix}{shown}"), "its name is not UTF-8".into()));
            continue;
        };
        let rel = format!("{prefix}{name}");
        let stat = match rustix::fs::statat(at, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(s) => s,
            // Removed since it was listed.
            Err(rustix::io::Errno::NOENT) => continue,
            Err(e) => return Err(io_at(&rel)(e)),
        };
        match FileType::from_raw_mode(stat.st_mode) {
            FileType::RegularFile => out.files.push(Listed {
                rel,
                size: stat.st_size as u64,
            }),
            FileType::Directory => match open_subdir(at, name, &rel) {
                Ok(sub) => walk(&sub, &format!("{rel}/"), depth + 1, out, seen)?,
                // Swapped for something else since it was looked at.
                Err(FileError::NotRegular { kind, .. }) => out.skipped.push((rel, kind.into())),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            },
            other => out.skipped.push((rel, kind_of(other).into())),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn fifo(path: &Path) {
        rustix::fs::mknodat(CWD, path, FileType::Fifo, Mode::from_raw_mode(0o644), 0).unwrap();
    }

    #[test]
    fn only_regular_files_are_opened_and_never_through_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "host file").unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("a/b")).unwrap();
        std::fs::write(d.join("a/b/c.txt"), "hi").unwrap();
        symlink(outside.path().join("secret"), d.join("link")).unwrap();
        symlink(outside.path(), d.join("dirlink")).unwrap();
        symlink("/dev/zero", d.join("zero")).unwrap();
        fifo(&d.join("pipe"));

        let f = open(d, "a/b/c.txt").unwrap();
        assert_eq!(f.size, 2);
        let refused = |rel: &str| open(d, rel).unwrap_err().to_string();
        assert!(
            refused("link").contains("is a symbolic link"),
            "{}",
            refused("link")
        );
        assert!(refused("zero").contains("is a symbolic link"));
        // A pipe is refused at once (opening it to read would wait for a writer).
        assert!(
            refused("pipe").contains("is a named pipe"),
            "{}",
            refused("pipe")
        );
        assert!(refused("dirlink/secret").contains("dirlink/secret is a symbolic link"));
        assert!(refused("a").contains("is a folder"));
        for bad in ["../x", "a/../a/b/c.txt", "/etc/passwd", "a//b", "", "."] {
            assert!(
                matches!(open(d, bad), Err(FileError::BadName { .. })),
                "{bad}"
            );
        }
        assert!(open(d, "missing").unwrap_err().is_not_found());

        // The folder itself replaced by a link is refused too.
        let swapped = outside.path().join("out");
        symlink(d, &swapped).unwrap();
        assert!(open(&swapped, "a/b/c.txt").is_err());
        assert!(list(&swapped).is_err());

        let listing = list(d).unwrap();
        let files: Vec<_> = listing
            .files
            .iter()
            .map(|f| (f.rel.as_str(), f.size))
            .collect();
        assert_eq!(files, [("a/b/c.txt", 2)]);
        let skipped: Vec<_> = listing
            .skipped
            .iter()
            .map(|(r, w)| format!("{r}: {w}"))
            .collect();
        assert_eq!(
            skipped,
            [
                "dirlink: a symbolic link",
                "link: a symbolic link",
                "pipe: a named pipe",
                "zero: a symbolic link"
            ]
        );
    }

    #[test]
    fn reads_are_bounded_and_a_reopen_must_find_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert!(read_bounded(d, "r.json", 10).unwrap().is_none());
        std::fs::write(d.join("r.json"), "0123456789abc").unwrap();
        assert_eq!(read_bounded(d, "r.json", 10).unwrap().unwrap(), Err(13));
        assert_eq!(
            read_bounded(d, "r.json", 13).unwrap().unwrap().unwrap(),
            b"0123456789abc"
        );
        let first = open(d, "r.json").unwrap();
        assert!(reopen(d, "r.json", &first).is_ok());
        std::fs::remove_file(d.join("r.json")).unwrap();
        std::fs::write(d.join("r.json"), "other").unwrap();
        // Another inode under the same name (the task wrote it again) is not the checked file.
        assert!(matches!(
            reopen(d, "r.json", &first),
            Err(FileError::Changed { .. })
        ));
        assert!(list(&d.join("nothing-here")).unwrap().files.is_empty());
    }
}
