//! This jobrun, packed to start in any Linux image of its architecture: when it is linked
//! dynamically (as `cargo install` builds it on a glibc host), the dynamic loader and every
//! shared object the running process has loaded (read from `/proc/self/maps`) go into the
//! image beside it, and it is started through that loader with `--library-path`, so it needs
//! no C library of the image's own (`FROM scratch`, busybox and Alpine images have none it
//! could use). Hosts with glibc older than 2.34 keep host lookups in modules loaded only on the
//! first lookup (`libnss_files`, `libnss_dns`, `libresolv`), which the map does not show yet:
//! those are packed too when they sit beside the C library. A static jobrun is packed alone.

use std::path::{Path, PathBuf};

/// Where jobrun and its libraries go in an image.
pub const HOME: &str = "/opt/jobrun";

/// The files of this jobrun and how to start it.
#[derive(Debug)]
pub struct Packed {
    pub binary: PathBuf,
    /// Shared objects, the loader first; empty for a static jobrun.
    pub libraries: Vec<PathBuf>,
}

impl Packed {
    /// This process's executable and, from its memory map, the libraries it runs with.
    pub fn this(binary: PathBuf) -> Packed {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
        let mut libraries = shared_objects(&maps);
        let lookups = lookup_modules(&libraries);
        libraries.extend(lookups);
        Packed { binary, libraries }
    }

    /// The argv that starts it in the image.
    pub fn entry(&self) -> Vec<String> {
        let jobrun = format!("{HOME}/jobrun");
        match self.libraries.first().and_then(|l| l.file_name()) {
            Some(loader) => vec![
                format!("{HOME}/lib/{}", loader.to_string_lossy()),
                "--library-path".into(),
                format!("{HOME}/lib"),
                jobrun,
            ],
            None => vec![jobrun],
        }
    }

    /// The files that go into the image: (path in the image, file on this machine).
    pub fn files(&self) -> Vec<(String, PathBuf)> {
        let mut out = vec![(format!("{HOME}/jobrun"), self.binary.clone())];
        for lib in &self.libraries {
            let name = lib.file_name().unwrap_or_default().to_string_lossy();
            out.push((format!("{HOME}/lib/{name}"), lib.clone()));
        }
        out
    }
}

/// The shared objects of a process's memory map, the dynamic loader first; none for a static
/// process.
pub fn shared_objects(maps: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = vec![];
    for path in maps.lines().filter_map(|l| l.split_whitespace().nth(5)) {
        let name = Path::new(path)
            .file_name()
            .unwrap_or_default()
            .to_string_lossy();
        let shared = name.ends_with(".so") || name.contains(".so.");
        if shared && path.starts_with('/') && !found.iter().any(|p| p == Path::new(path)) {
            found.push(PathBuf::from(path));
        }
    }
    let is_loader = |p: &PathBuf| {
        let n = p.file_name().unwrap_or_default().to_string_lossy();
        n.starts_with("ld-linux") || n.starts_with("ld-musl") || n.starts_with("ld64.so")
    };
    match found.iter().position(is_loader) {
        Some(i) => {
            let loader = found.remove(i);
            found.insert(0, loader);
            found
        }
        // Shared objects without a loader would not start: treat the binary as static.
        None => vec![],
    }
}

/// glibc's host-lookup modules beside its C library that are not loaded yet (glibc < 2.34
/// loads them on the first lookup; from 2.34 on they are part of libc and absent).
fn lookup_modules(libraries: &[PathBuf]) -> Vec<PathBuf> {
    let Some(dir) = libraries
        .iter()
        .find(|p| p.file_name().is_some_and(|n| n == "libc.so.6"))
        .and_then(|p| p.parent())
    else {
        return vec![];
    };
    ["libnss_files.so.2", "libnss_dns.so.2", "libresolv.so.2"]
        .iter()
        .map(|n| dir.join(n))
        .filter(|p| p.is_file() && !libraries.contains(p))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loader_comes_first_and_each_object_once() {
        let maps = "\
55d0 r--p 0 08:01 1 /usr/local/bin/jobrun
7f00 r--p 0 08:01 2 /usr/lib/x86_64-linux-gnu/libc.so.6
7f01 r-xp 0 08:01 2 /usr/lib/x86_64-linux-gnu/libc.so.6
7f02 r--p 0 08:01 3 /usr/lib/x86_64-linux-gnu/libgcc_s.so.1
7f03 r--p 0 08:01 4 /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
7f04 rw-p 0 00:00 0 [heap]
7f05 r--p 0 08:01 5 /usr/lib/locale/C.utf8/LC_CTYPE
";
        let found = shared_objects(maps);
        let names: Vec<_> = found.iter().map(|p| p.file_name().unwrap()).collect();
        assert_eq!(
            names,
            ["ld-linux-x86-64.so.2", "libc.so.6", "libgcc_s.so.1"]
        );
        let packed = Packed {
            binary: "/usr/local/bin/jobrun".into(),
            libraries: found,
        };
        assert_eq!(
            packed.entry(),
            [
                "/opt/jobrun/lib/ld-linux-x86-64.so.2",
                "--library-path",
                "/opt/jobrun/lib",
                "/opt/jobrun/jobrun"
            ]
        );
        assert!(
            shared_objects("55d0 r--p 0 08:01 1 /jobrun\n").is_empty(),
            "static"
        );
        let alone = Packed {
            binary: "/jobrun".into(),
            libraries: vec![],
        };
        assert_eq!(alone.entry(), ["/opt/jobrun/jobrun"]);
        assert_eq!(alone.files().len(), 1);
    }

    #[test]
    fn lookup_modules_beside_an_old_glibc_are_packed_and_none_are_invented() {
        let dir = tempfile::tempdir().unwrap();
        for n in ["libc.so.6", "libnss_dns.so.2", "libnss_files.so.2"] {
            std::fs::write(dir.path().join(n), b"x").unwrap();
        }
        let libc = dir.path().join("libc.so.6");
        let found = lookup_modules(&[dir.path().join("ld-linux-x86-64.so.2"), libc.clone()]);
        let names: Vec<_> = found.iter().map(|p| p.file_name().unwrap()).collect();
        assert_eq!(names, ["libnss_files.so.2", "libnss_dns.so.2"]);
        // Already loaded (listed): not twice.
        let files = dir.path().join("libnss_files.so.2");
        assert_eq!(lookup_modules(&[libc, files]).len(), 1);
        assert!(lookup_modules(&[]).is_empty());
    }
}
