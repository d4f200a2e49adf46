//! The S3 object calls jobrun makes from both sides of the wire (a run's record copy, receipts,
//! results, outputs), each retried while its error is transient, and every read bounded.

use crate::AwsError;

/// Writes one JSON object, retried while the error is transient.
pub async fn put_json(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    body: Vec<u8>,
) -> Result<(), AwsError> {
    crate::retrying(|| async {
        s3.put_object()
            .bucket(bucket)
            .key(key)
            .content_type("application/json")
            .body(body.clone().into())
            .send()
            .await
            .map_err(crate::op("PutObject"))
    })
    .await?;
    Ok(())
}

/// Whether an object exists, asked in a way a task role may: ListObjectsV2 with the key as
/// prefix. (HeadObject or GetObject of a missing key answers 403, not 404, to a caller without
/// `s3:ListBucket` on the whole bucket, and jobrun's roles may list only their own prefix.) A
/// key is a prefix of every longer key, and sorts first among them, so one key is enough.
pub async fn object_exists(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<bool, AwsError> {
    let out = crate::retrying(|| async {
        s3.list_objects_v2()
            .bucket(bucket)
            .prefix(key)
            .max_keys(1)
            .send()
            .await
            .map_err(crate::op("ListObjectsV2"))
    })
    .await?;
    Ok(out.contents().iter().any(|o| o.key() == Some(key)))
}

/// Writes an object only if there is none of that key yet (`If-None-Match: *`): `false` when
/// one was there. S3 answers a write racing another conditional write of the same key with
/// 409 ConditionalRequestConflict; that one is tried again.
pub async fn put_json_once(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    body: Vec<u8>,
) -> Result<bool, AwsError> {
    use backon::Retryable;
    let put = || async {
        s3.put_object()
            .bucket(bucket)
            .key(key)
            .content_type("application/json")
            .if_none_match("*")
            .body(body.clone().into())
            .send()
            .await
            .map_err(crate::op("PutObject"))
    };
    let sent = put
        .retry(crate::backoff())
        .when(|e| e.is_transient() || e.code() == Some("ConditionalRequestConflict"))
        .await;
    match sent {
        Ok(_) => Ok(true),
        Err(e) if e.code() == Some("PreconditionFailed") => Ok(false),
        Err(e) => Err(e),
    }
}

/// An object, or `None` when there is no such key. S3 answers a missing key with 404
/// NoSuchKey only to a caller with `s3:ListBucket` on the bucket, and with 403 AccessDenied to
/// one without (GetObject API Reference, "Permissions") — which is every role jobrun makes, as
/// they may list only their own prefix. So an AccessDenied is looked up by listing, as
/// [`object_exists`] does: absent is `None`, and a key that is there but may not be read stays
/// the error it is.
pub async fn get_object(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<Option<aws_sdk_s3::operation::get_object::GetObjectOutput>, AwsError> {
    let got = crate::retrying(|| async {
        s3.get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(crate::op("GetObject"))
    })
    .await;
    match got {
        Err(e) if e.code() == Some("AccessDenied") => match object_exists(s3, bucket, key).await {
            Ok(false) => Ok(None),
            _ => Err(e),
        },
        got => crate::found(got, &["NoSuchKey"]),
    }
}

/// One object of a listing: its key with the listed prefix taken off, size and time.
pub struct Listed {
    pub rel: String,
    pub size: u64,
    pub modified: Option<std::time::SystemTime>,
    /// Its ETag: changes when its content does (`--reuse` keys `--from-s3` tasks by it).
    pub etag: Option<String>,
}

/// Deletes `keys` with DeleteObjects, 1,000 a call (its limit). A key S3 reports it could not
/// delete fails the whole with that key's error code (retried first while it is transient);
/// a key that is not there counts as deleted, as S3 says.
pub async fn delete_objects(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    keys: &[String],
) -> Result<(), AwsError> {
    use aws_sdk_s3::types::{Delete, ObjectIdentifier};
    for chunk in keys.chunks(1000) {
        crate::retrying(|| async {
            let objects = chunk
                .iter()
                .map(|k| ObjectIdentifier::builder().key(k).build())
                .collect::<Result<Vec<_>, _>>()
                .expect("a key is all an identifier needs");
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .expect("objects are set");
            let out = s3
                .delete_objects()
                .bucket(bucket)
                .delete(delete)
                .send()
                .await
                .map_err(crate::op("DeleteObjects"))?;
            match out.errors().first() {
                None => Ok(()),
                Some(e) => Err(AwsError::Service {
                    operation: "DeleteObjects",
                    code: e.code().unwrap_or("Unknown").to_string(),
                    message: format!(
                        "{} ({} of {} keys not deleted)",
                        e.key().unwrap_or_default(),
                        out.errors().len(),
                        chunk.len()
                    ),
                }),
            }
        })
        .await?;
    }
    Ok(())
}

/// Every page of a listing under `prefix` (with `/` as the delimiter when `folders`), each call
/// retried while it is transient: the one S3 lister. ListObjectsV2 returns at most 1,000 keys a
/// call and a continuation token while there are more (Amazon S3 API Reference,
/// ListObjectsV2: "IsTruncated", "NextContinuationToken").
async fn list_pages(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    folders: bool,
) -> Result<Vec<aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output>, AwsError> {
    let mut pages = vec![];
    let mut token: Option<String> = None;
    loop {
        let page = crate::retrying(|| async {
            s3.list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .set_delimiter(folders.then(|| "/".to_string()))
                .set_continuation_token(token.clone())
                .send()
                .await
                .map_err(crate::op("ListObjectsV2"))
        })
        .await?;
        token = page.next_continuation_token().map(str::to_string);
        pages.push(page);
        if token.is_none() {
            return Ok(pages);
        }
    }
}

/// Every object under a prefix, all pages.
pub async fn list_objects(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<Listed>, AwsError> {
    let pages = list_pages(s3, bucket, prefix, false).await?;
    Ok(pages
        .iter()
        .flat_map(|page| page.contents())
        .filter_map(|o| {
            Some(Listed {
                rel: o.key()?.strip_prefix(prefix)?.to_string(),
                size: o.size().unwrap_or(0).max(0) as u64,
                modified: o
                    .last_modified()
                    .and_then(|t| std::time::SystemTime::try_from(*t).ok()),
                etag: o.e_tag().map(str::to_string),
            })
        })
        .collect())
}

/// The folders directly under `parent` whose names start with `start` (without `parent` and
/// the trailing `/`), all pages.
pub async fn list_folders(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    parent: &str,
    start: &str,
) -> Result<Vec<String>, AwsError> {
    let pages = list_pages(s3, bucket, &format!("{parent}{start}"), true).await?;
    Ok(pages
        .iter()
        .flat_map(|page| page.common_prefixes())
        .filter_map(|p| p.prefix()?.strip_prefix(parent))
        .map(|p| p.trim_end_matches('/').to_string())
        .collect())
}

/// The most of one JSON object jobrun reads: a run record of 10,000 tasks with their attempts
/// is a few MiB; anything larger in a run's folder was not written by jobrun.
pub const JSON_LIMIT: u64 = 64 * 1024 * 1024;

/// A JSON object from S3 (`None` when there is no such key, or it is not that JSON, or it is
/// over [`JSON_LIMIT`]).
pub async fn get_json<T: serde::de::DeserializeOwned>(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<Option<T>, AwsError> {
    let Some(got) = get_object(s3, bucket, key).await? else {
        return Ok(None);
    };
    let bytes = read_body(got, JSON_LIMIT).await?;
    Ok(bytes.and_then(|b| serde_json::from_slice(&b).ok()))
}

/// A got object's bytes, when there are at most `limit` of them (more: `None`, and no more
/// than `limit + 1` are read).
pub async fn read_body(
    got: aws_sdk_s3::operation::get_object::GetObjectOutput,
    limit: u64,
) -> Result<Option<Vec<u8>>, AwsError> {
    use tokio::io::AsyncReadExt;
    let mut out = vec![];
    got.body
        .into_async_read()
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .await
        .map_err(|e| AwsError::Transport {
            operation: "GetObject",
            message: e.to_string(),
        })?;
    Ok((out.len() as u64 <= limit).then_some(out))
}
