//! A `docker save` tar made into registry blobs: the config as it is, each layer compressed
//! (gzip or zstd) once into the blob cache, keyed by its uncompressed digest and the
//! compression, and hashed while it is written.

use super::Blob;
use crate::registry::Compression;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Reads a `docker save` tar: the config blob as it is, and each layer compressed into the blob
/// cache (keyed by its uncompressed digest from the config and the compression, so unchanged
/// layers are compressed once and keep their compressed digest across pushes).
pub(super) fn prepare_blobs(
    saved: &Path,
    blob_dir: &Path,
    compression: Compression,
) -> Result<(Blob, Vec<Blob>), String> {
    let err = |e: std::io::Error| e.to_string();
    std::fs::create_dir_all(blob_dir).map_err(err)?;
    let read_entry = |name: &str| -> Result<Vec<u8>, String> {
        let mut archive = tar::Archive::new(std::fs::File::open(saved).map_err(err)?);
        // Seek past the entries' bodies: the layers are most of the file.
        for entry in archive.entries_with_seek().map_err(err)? {
            let mut entry = entry.map_err(err)?;
            if entry.path().map_err(err)?.to_string_lossy() == name {
                let mut buf = vec![];
                entry.read_to_end(&mut buf).map_err(err)?;
                return Ok(buf);
            }
        }
        Err(format!("{name} is missing from the saved image"))
    };
    let manifest: serde_json::Value =
        serde_json::from_slice(&read_entry("manifest.json")?).map_err(|e| e.to_string())?;
    let config_name = manifest[0]["Config"]
        .as_str()
        .ok_or("no Config in manifest.json")?
        .to_string();
    let layer_names: Vec<String> = manifest[0]["Layers"]
        .as_array()
        .ok_or("no Layers in manifest.json")?
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let config_bytes = read_entry(&config_name)?;
    let config_json: serde_json::Value =
        serde_json::from_slice(&config_bytes).map_err(|e| e.to_string())?;
    let diff_ids: Vec<String> = config_json["rootfs"]["diff_ids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if diff_ids.len() != layer_names.len() {
        return Err("the image config and its layers disagree".into());
    }
    let config_digest = crate::registry::sha256_digest(&config_bytes);
    let config_path = blob_dir.join(format!(
        "{}.config.json",
        config_digest.trim_start_matches("sha256:")
    ));
    std::fs::write(&config_path, &config_bytes).map_err(err)?;
    let config = Blob {
        digest: config_digest,
        size: config_bytes.len() as u64,
        path: config_path,
        media_type: compression.config_type(),
    };

    // One pass over the saved image compresses every layer not in the cache yet.
    let cached = |diff_id: &str| -> Option<Blob> {
        let (path, meta) = cache_paths(blob_dir, diff_id, compression);
        let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(meta).ok()?).ok()?;
        let size = std::fs::metadata(&path).ok()?.len();
        (meta["size"].as_u64() == Some(size)).then(|| Blob {
            digest: meta["digest"].as_str().unwrap_or_default().to_string(),
            size,
            path,
            media_type: compression.layer_type(),
        })
    };
    let missing: Vec<usize> = (0..layer_names.len())
        .filter(|&i| cached(&diff_ids[i]).is_none())
        .collect();
    if !missing.is_empty() {
        let mut archive = tar::Archive::new(std::fs::File::open(saved).map_err(err)?);
        for entry in archive.entries().map_err(err)? {
            let entry = entry.map_err(err)?;
            let name = entry.path().map_err(err)?.to_string_lossy().into_owned();
            if let Some(&i) = missing.iter().find(|&&i| layer_names[i] == name) {
                compress_layer(entry, blob_dir, &diff_ids[i], compression)?;
            }
        }
    }
    let layers = diff_ids
        .iter()
        .map(|d| cached(d).ok_or_else(|| format!("layer {d} could not be prepared")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((config, layers))
}

struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Reads until `buf` is full or the input ends; returns how much was read.
fn read_up_to(input: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Where the cache keeps a layer's blob and its digest (the gzip names are the ones older
/// jobruns wrote, so their caches stay good).
fn cache_paths(blob_dir: &Path, diff_id: &str, c: Compression) -> (PathBuf, PathBuf) {
    let key = diff_id.trim_start_matches("sha256:");
    match c {
        Compression::Gzip => (
            blob_dir.join(format!("{key}.tar.gz")),
            blob_dir.join(format!("{key}.json")),
        ),
        Compression::Zstd => (
            blob_dir.join(format!("{key}.tar.zst")),
            blob_dir.join(format!("{key}.zst.json")),
        ),
    }
}

/// zstd's level: its default, the one the measurements in the README are of.
const ZSTD_LEVEL: i32 = 3;

fn compress_layer(
    mut entry: impl Read,
    blob_dir: &Path,
    diff_id: &str,
    compression: Compression,
) -> Result<(), String> {
    let err = |e: std::io::Error| e.to_string();
    let tmp = tempfile::NamedTempFile::new_in(blob_dir.join("tmp")).map_err(err)?;
    let writer = HashingWriter {
        inner: std::io::BufWriter::new(tmp.reopen().map_err(err)?),
        hasher: Sha256::new(),
        count: 0,
    };
    // An engine with the containerd image store saves layers already compressed: one in the
    // wanted compression is sent as it is, another is decompressed first (the diff id is the
    // uncompressed tar's, whatever carries it).
    let mut magic = [0u8; 4];
    let got = read_up_to(&mut entry, &mut magic).map_err(err)?;
    let mut head = std::io::Cursor::new(magic[..got].to_vec()).chain(entry);
    let already = Compression::of_bytes(&magic[..got]);
    let mut writer = if already == Some(compression) {
        let mut writer = writer;
        std::io::copy(&mut head, &mut writer).map_err(err)?;
        writer
    } else {
        let mut plain: Box<dyn Read> = match already {
            Some(Compression::Gzip) => Box::new(flate2::read::GzDecoder::new(head)),
            Some(Compression::Zstd) => Box::new(zstd::Decoder::new(head).map_err(err)?),
            None => Box::new(head),
        };
        encode(&mut plain, writer, compression).map_err(err)?
    };
    writer.flush().map_err(err)?;
    let digest = format!("sha256:{:x}", writer.hasher.finalize());
    let (path, meta) = cache_paths(blob_dir, diff_id, compression);
    tmp.persist(path).map_err(|e| e.error.to_string())?;
    std::fs::write(
        meta,
        serde_json::json!({ "digest": digest, "size": writer.count }).to_string(),
    )
    .map_err(err)
}

/// Compresses `plain` into `out`, the same bytes for the same input every time: gzip with a
/// fixed header (no name, no time); zstd multithreaded, whose output does not depend on the
/// number of workers (checked by a test below).
fn encode<W: Write>(plain: &mut dyn Read, out: W, c: Compression) -> std::io::Result<W> {
    match c {
        Compression::Gzip => {
            let mut gz = flate2::GzBuilder::new().write(out, flate2::Compression::default());
            std::io::copy(plain, &mut gz)?;
            gz.finish()
        }
        Compression::Zstd => {
            let mut z = zstd::Encoder::new(out, ZSTD_LEVEL)?;
            let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
            z.multithread(workers as u32)?;
            std::io::copy(plain, &mut z)?;
            z.finish()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_compress_once_and_deterministically() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
        let plain = vec![42u8; 100_000];
        compress_layer(&plain[..], dir.path(), "sha256:aa", Compression::Gzip).unwrap();
        compress_layer(&plain[..], dir.path(), "sha256:bb", Compression::Gzip).unwrap();
        let a = std::fs::read(dir.path().join("aa.tar.gz")).unwrap();
        let b = std::fs::read(dir.path().join("bb.tar.gz")).unwrap();
        assert_eq!(a, b, "the same layer always compresses to the same blob");
        assert_eq!(&a[..2], &[0x1f, 0x8b]);
        // An already compressed layer is passed through untouched.
        compress_layer(&a[..], dir.path(), "sha256:cc", Compression::Gzip).unwrap();
        assert_eq!(std::fs::read(dir.path().join("cc.tar.gz")).unwrap(), a);
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("cc.json")).unwrap()).unwrap();
        assert_eq!(meta["digest"], crate::registry::sha256_digest(&a));
    }

    /// A tar-like input: 3 MiB, compressible but not trivially (several zstd jobs' worth).
    fn layer() -> Vec<u8> {
        (0..3 * 1024 * 1024u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8 & 0x1f)
            .collect()
    }

    #[test]
    fn zstd_layers_are_kept_beside_gzip_ones_and_decompress_to_the_layer() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
        let plain = layer();
        compress_layer(&plain[..], dir.path(), "sha256:aa", Compression::Zstd).unwrap();
        compress_layer(&plain[..], dir.path(), "sha256:aa", Compression::Gzip).unwrap();
        let z = std::fs::read(dir.path().join("aa.tar.zst")).unwrap();
        let g = std::fs::read(dir.path().join("aa.tar.gz")).unwrap();
        assert_eq!(Compression::of_bytes(&z), Some(Compression::Zstd));
        assert_eq!(Compression::of_bytes(&g), Some(Compression::Gzip));
        assert_eq!(zstd::decode_all(&z[..]).unwrap(), plain);
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("aa.zst.json")).unwrap())
                .unwrap();
        assert_eq!(meta["digest"], crate::registry::sha256_digest(&z));

        // A layer the engine saved gzip-compressed becomes the same zstd blob as the plain one.
        compress_layer(&g[..], dir.path(), "sha256:bb", Compression::Zstd).unwrap();
        assert_eq!(std::fs::read(dir.path().join("bb.tar.zst")).unwrap(), z);
        // And a zstd one asked for as gzip, the same gzip blob.
        compress_layer(&z[..], dir.path(), "sha256:cc", Compression::Gzip).unwrap();
        assert_eq!(std::fs::read(dir.path().join("cc.tar.gz")).unwrap(), g);
    }

    #[test]
    fn zstd_output_does_not_depend_on_the_number_of_workers() {
        let plain = layer();
        let with = |workers: u32| {
            let mut z = zstd::Encoder::new(vec![], ZSTD_LEVEL).unwrap();
            z.multithread(workers).unwrap();
            z.write_all(&plain).unwrap();
            z.finish().unwrap()
        };
        let one = with(1);
        assert_eq!(with(2), one);
        assert_eq!(with(4), one);
    }
}
