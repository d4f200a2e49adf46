//! ECR: the job's repository (`<prefix>/<job>`), created when missing with scan on push,
//! encryption and a lifecycle policy, and the registry login from `GetAuthorizationToken`,
//! cached until it expires (ECR tokens live 12 hours).

use crate::aws::{Aws, AwsError};
use crate::registry::Credentials;
use crate::store::Store;
use aws_sdk_ecr::types::{
    EncryptionConfiguration, EncryptionType, ImageScanningConfiguration, Tag,
};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum EcrError {
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error("ECR returned no authorization data")]
    NoToken,
    #[error("ECR returned an authorization token that is not `user:password`")]
    BadToken,
}

/// What `ensure_repository` found or made.
pub struct Repository {
    pub uri: String,
    pub created: bool,
    /// An existing repository whose settings were brought in line because the user asked.
    pub updated: bool,
}

/// The tag prefix of the images a schedule pinned: jobrun's lifecycle policy never expires an
/// image that carries one (see [`lifecycle_policy`]).
pub const KEEP_PREFIX: &str = "jobrun-keep-";

/// The lifecycle policy of a repository jobrun creates: images tagged `jobrun-keep-…` stay (up
/// to 9,999 of them); of the rest, the newest `keep` stay. ECR applies rules by priority, and
/// an image that matches the tagging requirements of a rule is never expired by a rule of lower
/// priority; the `any` rule must have the highest `rulePriority` (ECR User Guide, "How lifecycle
/// policies work" and "Lifecycle policy properties",
/// https://docs.aws.amazon.com/AmazonECR/latest/userguide/LifecyclePolicies.html).
pub fn lifecycle_policy(keep: u32) -> String {
    serde_json::json!({
        "rules": [{
            "rulePriority": 1,
            "description": "jobrun: keep the images schedules use",
            "selection": {
                "tagStatus": "tagged",
                "tagPrefixList": [KEEP_PREFIX],
                "countType": "imageCountMoreThan",
                "countNumber": 9999
            },
            "action": { "type": "expire" }
        }, {
            "rulePriority": 2,
            "description": format!("jobrun: keep the last {keep} images"),
            "selection": { "tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": keep },
            "action": { "type": "expire" }
        }]
    })
    .to_string()
}

/// What a repository's lifecycle policy does to the images a schedule pinned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keeping {
    /// jobrun's policy, which keeps them (brought up to date when an older jobrun wrote it).
    Kept,
    /// No lifecycle policy: nothing expires.
    NoPolicy,
    /// A policy of someone else's, which may expire them.
    Foreign,
}

/// Of a policy text: the count its `any` rule keeps when every rule is jobrun's (described
/// "jobrun: …"), as this jobrun and older ones write it.
fn jobruns_keep(text: &str) -> Option<u32> {
    let doc: serde_json::Value = serde_json::from_str(text).ok()?;
    let rules = doc["rules"].as_array()?;
    let all_ours = rules.iter().all(|r| {
        r["description"]
            .as_str()
            .is_some_and(|d| d.starts_with("jobrun:"))
    });
    let any = rules
        .iter()
        .find(|r| r["selection"]["tagStatus"] == "any")?;
    match all_ours {
        true => any["selection"]["countNumber"].as_u64().map(|n| n as u32),
        false => None,
    }
}

/// Makes sure the repository's lifecycle policy keeps `jobrun-keep-` images: jobrun's own
/// policy of an older jobrun (one rule) is replaced by today's with the same count; someone
/// else's is left alone and reported. GetLifecyclePolicy answers
/// LifecyclePolicyNotFoundException when there is none (ECR API Reference, GetLifecyclePolicy:
/// https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_GetLifecyclePolicy.html;
/// moto answers the same code).
pub async fn keep_pinned(aws: &Aws, name: &str) -> Result<Keeping, EcrError> {
    let got = aws
        .ecr()
        .get_lifecycle_policy()
        .repository_name(name)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("GetLifecyclePolicy", e));
    let text = match crate::aws::found(got, &["LifecyclePolicyNotFoundException"])? {
        None => return Ok(Keeping::NoPolicy),
        Some(out) => out.lifecycle_policy_text().unwrap_or_default().to_string(),
    };
    let Some(keep) = jobruns_keep(&text) else {
        return Ok(Keeping::Foreign);
    };
    let same = |a: &str, b: &str| {
        serde_json::from_str::<serde_json::Value>(a).ok()
            == serde_json::from_str::<serde_json::Value>(b).ok()
    };
    if !same(&text, &lifecycle_policy(keep)) {
        put_lifecycle(aws, name, keep).await?;
    }
    Ok(Keeping::Kept)
}

/// Takes `jobrun-keep-` tags off (a schedule removed). BatchDeleteImage by tag removes the tag
/// and deletes the image only with its last tag — a pinned image keeps its content tag — and
/// answers 200 with per-entry `failures`; ImageNotFound means the tag is gone already (ECR API
/// Reference, BatchDeleteImage:
/// https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_BatchDeleteImage.html; moto
/// answers ImageNotFound entries the same way, which `schedule rm` meets in the test world).
pub async fn release(aws: &Aws, name: &str, tags: &[String]) -> Result<(), EcrError> {
    let ids = tags
        .iter()
        .map(|t| {
            aws_sdk_ecr::types::ImageIdentifier::builder()
                .image_tag(t)
                .build()
        })
        .collect::<Vec<_>>();
    let out = aws
        .ecr()
        .batch_delete_image()
        .repository_name(name)
        .set_image_ids(Some(ids))
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("BatchDeleteImage", e))?;
    let failed = out
        .failures()
        .iter()
        .find(|f| f.failure_code() != Some(&aws_sdk_ecr::types::ImageFailureCode::ImageNotFound));
    match failed {
        Some(f) => Err(AwsError::Service {
            operation: "BatchDeleteImage",
            code: f
                .failure_code()
                .map(|c| c.as_str().to_string())
                .unwrap_or_default(),
            message: f.failure_reason().unwrap_or_default().to_string(),
        }
        .into()),
        None => Ok(()),
    }
}

/// Describes the repository; creates it (scan on push, AES-256 encryption, tags, lifecycle
/// policy) when ECR says it does not exist. An existing repository is left as it is.
pub async fn ensure_repository(
    aws: &Aws,
    name: &str,
    job: &str,
    scan_on_push: bool,
    keep_images: u32,
    update_existing: bool,
) -> Result<Repository, EcrError> {
    let ecr = aws.ecr();
    match ecr
        .describe_repositories()
        .repository_names(name)
        .send()
        .await
    {
        Ok(out) => {
            if let Some(repo) = out.repositories().first() {
                if update_existing {
                    // Scanning and the lifecycle policy can change; encryption cannot (ECR).
                    ecr.put_image_scanning_configuration()
                        .repository_name(name)
                        .image_scanning_configuration(
                            ImageScanningConfiguration::builder()
                                .scan_on_push(scan_on_push)
                                .build(),
                        )
                        .send()
                        .await
                        .map_err(|e| AwsError::from_sdk("PutImageScanningConfiguration", e))?;
                    put_lifecycle(aws, name, keep_images).await?;
                }
                return Ok(Repository {
                    uri: repo.repository_uri().unwrap_or_default().into(),
                    created: false,
                    updated: update_existing,
                });
            }
        }
        Err(e) => {
            let e = AwsError::from_sdk("DescribeRepositories", e);
            if e.code() != Some("RepositoryNotFoundException") {
                return Err(e.into());
            }
        }
    }
    let tag = |k: &str, v: &str| {
        Tag::builder()
            .key(k)
            .value(v)
            .build()
            .expect("key and value set")
    };
    let created = ecr
        .create_repository()
        .repository_name(name)
        .image_scanning_configuration(
            ImageScanningConfiguration::builder()
                .scan_on_push(scan_on_push)
                .build(),
        )
        .encryption_configuration(
            EncryptionConfiguration::builder()
                .encryption_type(EncryptionType::Aes256)
                .build()
                .expect("encryption type set"),
        )
        .tags(tag(crate::infra::TAG_MANAGED, "jobrun"))
        .tags(tag(crate::infra::TAG_JOB, job))
        .send()
        .await;
    let uri = match created {
        Ok(out) => out
            .repository()
            .and_then(|r| r.repository_uri())
            .unwrap_or_default()
            .to_string(),
        Err(e) => {
            let e = AwsError::from_sdk("CreateRepository", e);
            // Someone else created it between our describe and create: use it as it is.
            if e.code() == Some("RepositoryAlreadyExistsException") {
                return Box::pin(ensure_repository(
                    aws,
                    name,
                    job,
                    scan_on_push,
                    keep_images,
                    false,
                ))
                .await;
            }
            return Err(e.into());
        }
    };
    put_lifecycle(aws, name, keep_images).await?;
    Ok(Repository {
        uri,
        created: true,
        updated: false,
    })
}

async fn put_lifecycle(aws: &Aws, name: &str, keep_images: u32) -> Result<(), EcrError> {
    aws.ecr()
        .put_lifecycle_policy()
        .repository_name(name)
        .lifecycle_policy_text(lifecycle_policy(keep_images))
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("PutLifecyclePolicy", e))?;
    Ok(())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Login {
    pub username: String,
    pub password: String,
    /// The registry host ECR names, e.g. `123456789012.dkr.ecr.us-east-1.amazonaws.com`.
    pub endpoint: String,
    pub expires_at: DateTime<Utc>,
}

impl Login {
    pub fn credentials(&self) -> Credentials {
        Credentials {
            username: self.username.clone(),
            password: self.password.clone(),
        }
    }
    /// Usable for a push that starts now (with five minutes to spare).
    pub fn fresh(&self, now: DateTime<Utc>) -> bool {
        self.expires_at > now + chrono::Duration::minutes(5)
    }
}

/// One cached login per account, region and endpoint.
fn cache_path(store: &Store, aws: &Aws, account: &str) -> std::path::PathBuf {
    use sha2::Digest;
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    let key = format!("{account}|{}|{endpoint}", aws.region());
    let hash = format!("{:x}", sha2::Sha256::digest(key.as_bytes()));
    store.auth_dir().join(format!("ecr-{}.json", &hash[..16]))
}

/// The registry login: the cached one while it is fresh, else a new `GetAuthorizationToken`.
pub async fn login(aws: &Aws, store: &Store) -> Result<Login, EcrError> {
    let path = cache_path(store, aws, &aws.account().await?);
    let now = Utc::now();
    if let Some(cached) = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Login>(&b).ok())
        .filter(|l| l.fresh(now))
    {
        tracing::debug!(path = %path.display(), "using the cached ECR login");
        return Ok(cached);
    }
    let out = aws
        .ecr()
        .get_authorization_token()
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("GetAuthorizationToken", e))?;
    let data = out.authorization_data().first().ok_or(EcrError::NoToken)?;
    let login = decode_token(
        data.authorization_token().ok_or(EcrError::NoToken)?,
        data.proxy_endpoint().unwrap_or_default(),
        data.expires_at()
            .and_then(|t| DateTime::from_timestamp(t.secs(), 0))
            .unwrap_or(now + chrono::Duration::hours(12)),
    )?;
    save_private(&path, &login);
    Ok(login)
}

pub fn decode_token(
    token: &str,
    endpoint: &str,
    expires_at: DateTime<Utc>,
) -> Result<Login, EcrError> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .map_err(|_| EcrError::BadToken)?;
    let raw = String::from_utf8(raw).map_err(|_| EcrError::BadToken)?;
    let (username, password) = raw.split_once(':').ok_or(EcrError::BadToken)?;
    Ok(Login {
        username: username.into(),
        password: password.into(),
        endpoint: endpoint
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .into(),
        expires_at,
    })
}

/// The cache holds a password: readable by the user only. A failed write only costs a new token.
fn save_private(path: &std::path::Path, login: &Login) {
    use std::os::unix::fs::OpenOptionsExt;
    let Some(dir) = path.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let tmp = path.with_extension("tmp");
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| {
            use std::io::Write;
            f.write_all(&serde_json::to_vec(login).expect("serialisable"))
        });
    if written.is_ok() {
        let _ = std::fs::rename(&tmp, path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_decoding_and_freshness() {
        let token = base64::engine::general_purpose::STANDARD.encode("AWS:secret:with:colons");
        let now = Utc::now();
        let l = decode_token(
            &token,
            "https://1234.dkr.ecr.us-east-1.amazonaws.com",
            now + chrono::Duration::hours(12),
        )
        .unwrap();
        assert_eq!(l.username, "AWS");
        assert_eq!(l.password, "secret:with:colons");
        assert_eq!(l.endpoint, "1234.dkr.ecr.us-east-1.amazonaws.com");
        assert!(l.fresh(now));
        assert!(!l.fresh(now + chrono::Duration::hours(12) - chrono::Duration::minutes(4)));
        assert!(decode_token("not base64!", "", now).is_err());
        assert!(
            decode_token(
                &base64::engine::general_purpose::STANDARD.encode("nocolon"),
                "",
                now
            )
            .is_err()
        );
    }

    #[test]
    fn lifecycle_policy_keeps_pinned_images_then_the_newest_n() {
        let v: serde_json::Value = serde_json::from_str(&lifecycle_policy(7)).unwrap();
        let keep = &v["rules"][0];
        assert_eq!(keep["rulePriority"], 1);
        assert_eq!(keep["selection"]["tagStatus"], "tagged");
        assert_eq!(keep["selection"]["tagPrefixList"][0], KEEP_PREFIX);
        // The `any` rule comes last, as ECR demands.
        assert_eq!(v["rules"][1]["rulePriority"], 2);
        assert_eq!(v["rules"][1]["selection"]["tagStatus"], "any");
        assert_eq!(v["rules"][1]["selection"]["countNumber"], 7);
        assert_eq!(v["rules"][1]["action"]["type"], "expire");
    }

    #[test]
    fn an_older_jobruns_policy_is_recognised_with_its_count_and_a_foreign_one_is_not() {
        let old = r#"{"rules":[{"rulePriority":1,"description":"jobrun: keep the last 5 images","selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":5},"action":{"type":"expire"}}]}"#;
        assert_eq!(jobruns_keep(old), Some(5));
        assert_eq!(jobruns_keep(&lifecycle_policy(9)), Some(9));
        let foreign = old.replace("jobrun: keep", "ours: keep");
        assert_eq!(jobruns_keep(&foreign), None);
        assert_eq!(jobruns_keep("not json"), None);
    }
}
