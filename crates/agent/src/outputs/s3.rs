//! Output folders in the job's bucket: the jobrun inside an ECS task uploads its
//! `JOBRUN_OUTPUT_DIR` when the command ends (files in parallel, multipart above 64 MiB, and
//! what an earlier attempt left that this one did not write is removed), and the reduce and
//! `results --download` fetch folders back (only files missing or changed locally).

use super::files;
use crate::aws::{self, AwsError, retrying};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use futures_util::{StreamExt, TryStreamExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Files above this go up in parts of this size.
const PART: u64 = 64 * 1024 * 1024;
/// Files moved at once.
const PARALLEL: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Output(#[from] files::FileError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TransferError + '_ {
    move |source| TransferError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What one transfer moved.
#[derive(Debug, Default, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Moved {
    pub files: u64,
    pub bytes: u64,
    /// Files already there and unchanged (downloads).
    pub unchanged: u64,
    /// Links and special files left out (a task's output folder keeps regular files only).
    pub skipped: u64,
}

impl Moved {
    /// One file of `bytes` moved.
    fn file(bytes: u64) -> Moved {
        Moved {
            files: 1,
            bytes,
            unchanged: 0,
            skipped: 0,
        }
    }
}

impl std::ops::Add for Moved {
    type Output = Moved;

    fn add(mut self, other: Moved) -> Moved {
        self.files += other.files;
        self.bytes += other.bytes;
        self.unchanged += other.unchanged;
        self.skipped += other.skipped;
        self
    }
}

/// Uploads every regular file under `dir` to `prefix`, then removes objects under `prefix`
/// that are not among them (an earlier attempt's). Links and special files are not uploaded
/// (counted in `skipped`); each file is sent from the handle that was checked, at the size it
/// had then.
pub async fn upload_dir(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    dir: &Path,
    prefix: &str,
) -> Result<Moved, TransferError> {
    let listing = files::list(dir).map_err(checked)?;
    let moved = futures_util::stream::iter(listing.files.iter())
        .map(|f| async move {
            let key = format!("{prefix}{}", f.rel);
            match files::open(dir, &f.rel) {
                Ok(checked) => {
                    let size = checked.size;
                    upload_file(
                        s3,
                        bucket,
                        Source {
                            dir,
                            rel: &f.rel,
                            checked,
                        },
                        &key,
                    )
                    .await?;
                    Ok::<_, TransferError>(Moved::file(size))
                }
                // Gone, or swapped for a link, since it was listed: not a file to keep.
                Err(e) if e.is_not_found() => Ok(Moved::default()),
                Err(files::FileError::NotRegular { .. }) => Ok(Moved {
                    skipped: 1,
                    ..Moved::default()
                }),
                Err(e) => Err(checked(e)),
            }
        })
        .buffer_unordered(PARALLEL)
        .try_fold(Moved::default(), |a, b| async move { Ok(a + b) })
        .await?;
    let moved = Moved {
        skipped: moved.skipped + listing.skipped.len() as u64,
        ..moved
    };
    let kept: std::collections::HashSet<&str> =
        listing.files.iter().map(|f| f.rel.as_str()).collect();
    let stale: Vec<String> = aws::list_objects(s3, bucket, prefix)
        .await?
        .into_iter()
        .filter(|o| !kept.contains(o.rel.as_str()))
        .map(|o| format!("{prefix}{}", o.rel))
        .collect();
    aws::delete_objects(s3, bucket, &stale).await?;
    Ok(moved)
}

fn checked(e: files::FileError) -> TransferError {
    TransferError::Output(e)
}

/// A file being uploaded: where it is, and the file that was checked there.
struct Source<'a> {
    dir: &'a Path,
    rel: &'a str,
    checked: files::OutputFile,
}

impl Source<'_> {
    /// `length` bytes from `offset`, read from the checked file (opened again for a retry or
    /// another part, and only if it is still the same file).
    async fn body(&self, offset: u64, length: u64) -> Result<ByteStream, AwsError> {
        let transport = |message: String| AwsError::Transport {
            operation: "PutObject",
            message: format!("{}: {message}", self.rel),
        };
        let file = files::reopen(self.dir, self.rel, &self.checked)
            .map_err(|e| transport(e.to_string()))?;
        ByteStream::read_from()
            .file(tokio::fs::File::from_std(file))
            .offset(offset)
            .length(aws_sdk_s3::primitives::Length::Exact(length))
            .build()
            .await
            .map_err(|e| transport(e.to_string()))
    }
}

async fn upload_file(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    source: Source<'_>,
    key: &str,
) -> Result<(), TransferError> {
    let size = source.checked.size;
    if size > PART {
        return upload_parts(s3, bucket, &source, key, size).await;
    }
    retrying(|| async {
        let body = source.body(0, size).await?;
        s3.put_object()
            .bucket(bucket)
            .key(key)
            .body(body)
            .send()
            .await
            .map_err(aws::op("PutObject"))
    })
    .await?;
    Ok(())
}

/// A multipart upload; aborted when a part cannot be sent, so no parts linger (and cost).
async fn upload_parts(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    source: &Source<'_>,
    key: &str,
    size: u64,
) -> Result<(), TransferError> {
    let created = retrying(|| async {
        s3.create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(aws::op("CreateMultipartUpload"))
    })
    .await?;
    let upload_id = created.upload_id().unwrap_or_default().to_string();
    let sent = send_parts(s3, bucket, source, key, size, &upload_id).await;
    let parts = match sent {
        Ok(parts) => parts,
        Err(e) => {
            let _ = s3
                .abort_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(&upload_id)
                .send()
                .await;
            return Err(e);
        }
    };
    retrying(|| async {
        s3.complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts.clone()))
                    .build(),
            )
            .send()
            .await
            .map_err(aws::op("CompleteMultipartUpload"))
    })
    .await?;
    Ok(())
}

async fn send_parts(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    source: &Source<'_>,
    key: &str,
    size: u64,
    upload_id: &str,
) -> Result<Vec<CompletedPart>, TransferError> {
    let count = size.div_ceil(PART);
    futures_util::stream::iter(0..count)
        .map(|n| async move {
            let offset = n * PART;
            let length = PART.min(size - offset);
            let etag = retrying(|| async {
                let body = source.body(offset, length).await?;
                s3.upload_part()
                    .bucket(bucket)
                    .key(key)
                    .upload_id(upload_id)
                    .part_number(n as i32 + 1)
                    .body(body)
                    .send()
                    .await
                    .map_err(aws::op("UploadPart"))
            })
            .await?
            .e_tag()
            .map(str::to_string);
            Ok::<_, TransferError>(
                CompletedPart::builder()
                    .part_number(n as i32 + 1)
                    .set_e_tag(etag)
                    .build(),
            )
        })
        .buffered(4)
        .try_collect()
        .await
}

/// Copies every object under `from` to the same names under `to`, within the bucket and on
/// S3's side (CopyObject; the source is `bucket/key` URL-encoded, up to 5 GB per object:
/// https://docs.aws.amazon.com/AmazonS3/latest/API/API_CopyObject.html).
pub async fn copy_prefix(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    from: &str,
    to: &str,
) -> Result<Moved, TransferError> {
    const SINGLE_COPY_MAX: u64 = 5 * 1024 * 1024 * 1024;
    let objects = aws::list_objects(s3, bucket, from).await?;
    futures_util::stream::iter(objects)
        .map(|o| async move {
            if o.size > SINGLE_COPY_MAX {
                return Err(TransferError::Aws(AwsError::Transport {
                    operation: "CopyObject",
                    message: format!("{from}{} is over 5 GB (one CopyObject's limit)", o.rel),
                }));
            }
            let source = format!("{bucket}/{from}{}", o.rel);
            let source = percent_encoding::utf8_percent_encode(&source, COPY_SOURCE).to_string();
            let key = format!("{to}{}", o.rel);
            retrying(|| async {
                s3.copy_object()
                    .bucket(bucket)
                    .key(&key)
                    .copy_source(&source)
                    .send()
                    .await
                    .map_err(aws::op("CopyObject"))
            })
            .await?;
            Ok::<_, TransferError>(Moved::file(o.size))
        })
        .buffer_unordered(PARALLEL)
        .try_fold(Moved::default(), |a, b| async move { Ok(a + b) })
        .await
}

/// What CopyObject's source leaves as it is: the URL-safe characters and the `/` between the
/// bucket and the key's parts.
const COPY_SOURCE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// An object's body, to be read as it arrives (S3 GetObject; a key that is not there is
/// NoSuchKey, or AccessDenied without s3:ListBucket:
/// https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html).
pub async fn open(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<impl tokio::io::AsyncRead + Send + Unpin + use<>, AwsError> {
    let got = aws::get_object(s3, bucket, key)
        .await?
        .ok_or_else(|| AwsError::Transport {
            operation: "GetObject",
            message: format!("s3://{bucket}/{key} is gone"),
        })?;
    Ok(got.body.into_async_read())
}

/// Downloads every object under `prefix` into `dir`, except files already there with the same
/// size and written no earlier than the object.
pub async fn download_prefix(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    dir: &Path,
) -> Result<Moved, TransferError> {
    let (objects, unsafe_names): (Vec<_>, Vec<_>) = aws::list_objects(s3, bucket, prefix)
        .await?
        .into_iter()
        .partition(|o| files::is_plain_path(&o.rel));
    if objects.len() > files::MAX_FILES {
        return Err(files::FileError::TooMany.into());
    }
    // A key is data: one whose rest is not a plain relative path (`..`, an empty part, a
    // leading `/`) is never written, wherever it would land.
    let skipped = Moved {
        skipped: unsafe_names.len() as u64,
        ..Moved::default()
    };
    let moved = futures_util::stream::iter(objects)
        .map(|o| async move {
            let path = dir.join(&o.rel);
            if unchanged(&path, o.size, o.modified) {
                return Ok(Moved {
                    unchanged: 1,
                    ..Moved::default()
                });
            }
            let key = format!("{prefix}{}", o.rel);
            download_file(s3, bucket, &key, &path).await?;
            Ok::<_, TransferError>(Moved::file(o.size))
        })
        .buffer_unordered(PARALLEL)
        .try_fold(Moved::default(), |a, b| async move { Ok(a + b) })
        .await?;
    Ok(moved + skipped)
}

/// A local file that needs no fetching: same size, and not older than its source.
pub fn unchanged(path: &Path, size: u64, source_modified: Option<SystemTime>) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    let newer = match (meta.modified().ok(), source_modified) {
        (Some(local), Some(remote)) => local >= remote,
        _ => false,
    };
    meta.len() == size && newer
}

async fn download_file(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    path: &Path,
) -> Result<(), TransferError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let got = aws::get_object(s3, bucket, key)
        .await?
        .ok_or_else(|| TransferError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(format!("{key} went away while it was fetched")),
        })?;
    let part = path.with_extension("jobrun-part");
    let mut file = tokio::fs::File::create(&part).await.map_err(io(&part))?;
    let mut body = got.body.into_async_read();
    tokio::io::copy(&mut body, &mut file)
        .await
        .map_err(io(&part))?;
    file.sync_all().await.map_err(io(&part))?;
    std::fs::rename(&part, path).map_err(io(path))
}
