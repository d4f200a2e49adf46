//! Who drives a run driven in AWS, so that two drivers never both act: a lease object under
//! the run's prefix (`driver.json`), taken and renewed with S3's conditional writes. A driver
//! takes a lease that is absent (`If-None-Match: *`), its own, or past its `until` (`If-Match`
//! with the ETag it read); a write that loses the race is answered 412 PreconditionFailed and
//! the driver only follows. S3 rules: "How to prevent object overwrites with conditional
//! writes", https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html —
//! If-None-Match fails with 412 when the key exists, If-Match with 412 when the ETag differs
//! and 404 NoSuchKey when there is no object, a concurrent conditional write with 409
//! ConditionalRequestConflict (retried). Codes are matched, never messages.
//!
//! A driver renews its lease at every step; one that dies stops renewing, and the next driver
//! takes over once `until` has passed ([`ttl`]: 60 s, or `JOBRUN_DRIVER_LEASE`).

use crate::aws::{self, AwsError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The lease object as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Held {
    /// Who holds it: the driver's ECS task ARN (or host:pid outside ECS).
    pub holder: String,
    /// Since when this holder holds it.
    pub since: DateTime<Utc>,
    /// Last renewed.
    pub seen: DateTime<Utc>,
    /// Taken over by another driver after this.
    pub until: DateTime<Utc>,
    /// Let go of: the run ended under this holder.
    #[serde(default)]
    pub released: bool,
}

impl Held {
    /// Nobody drives the run under this lease now.
    pub fn lapsed(&self, now: DateTime<Utc>) -> bool {
        self.released || self.until <= now
    }
}

/// How long a lease lasts without a renewal: `JOBRUN_DRIVER_LEASE` (a duration) or 60 s.
pub fn ttl() -> Duration {
    std::env::var("JOBRUN_DRIVER_LEASE")
        .ok()
        .and_then(|v| humantime::parse_duration(&v).ok())
        .unwrap_or(Duration::from_secs(60))
}

pub fn key(job: &str, run_id: &str) -> String {
    format!("{}driver.json", crate::wire::run_prefix(job, run_id))
}

/// The run's lease as it stands (none: no driver ever took it).
pub async fn read(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    job: &str,
    run_id: &str,
) -> Result<Option<Held>, AwsError> {
    Ok(read_tagged(s3, bucket, &key(job, run_id))
        .await?
        .map(|(h, _)| h))
}

async fn read_tagged(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<Option<(Held, String)>, AwsError> {
    let Some(got) = aws::get_object(s3, bucket, key).await? else {
        return Ok(None);
    };
    let etag = got.e_tag().unwrap_or_default().to_string();
    // The object is anyone's with write access to the bucket: read at most 64 KiB of it (a
    // lease is a few hundred bytes), and one that cannot be read is taken over like a lapsed one.
    let body = aws::read_body(got, 64 << 10).await?.unwrap_or_default();
    let held = serde_json::from_slice(&body).unwrap_or(Held {
        holder: String::new(),
        since: DateTime::<Utc>::MIN_UTC,
        seen: DateTime::<Utc>::MIN_UTC,
        until: DateTime::<Utc>::MIN_UTC,
        released: true,
    });
    Ok(Some((held, etag)))
}

/// One driver's hold on one run's lease.
pub struct Lease {
    s3: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    holder: String,
    /// The ETag of our last write: the lease is ours while nobody else wrote since.
    etag: Option<String>,
    since: Option<DateTime<Utc>>,
    /// The `until` of our last write.
    until: Option<DateTime<Utc>>,
}

/// What an attempt to take or renew the lease found.
#[derive(Debug, PartialEq)]
pub enum Take {
    /// Ours, newly taken (`fresh`: what this process holds of the run may be behind) or renewed.
    Ours { fresh: bool },
    /// Another driver's, still in time.
    Theirs(Held),
}

impl Lease {
    pub fn new(
        s3: aws_sdk_s3::Client,
        bucket: &str,
        job: &str,
        run_id: &str,
        holder: &str,
    ) -> Lease {
        Lease {
            s3,
            bucket: bucket.to_string(),
            key: key(job, run_id),
            holder: holder.to_string(),
            etag: None,
            since: None,
            until: None,
        }
    }

    /// Takes the lease, or renews it when it is ours. A lease this driver holds with more than
    /// half its time left is kept without asking S3: nobody may take it before `until`.
    pub async fn take(&mut self) -> Result<Take, AwsError> {
        let now = Utc::now();
        let half = chrono::Duration::from_std(ttl() / 2).unwrap_or_default();
        if self.etag.is_some() && self.until.is_some_and(|u| u - now > half) {
            return Ok(Take::Ours { fresh: false });
        }
        let found = read_tagged(&self.s3, &self.bucket, &self.key).await?;
        let condition = match &found {
            None => Condition::Absent,
            Some((held, etag)) if Some(etag) == self.etag.as_ref() && !held.released => {
                Condition::Is(etag.clone())
            }
            Some((held, etag)) if held.lapsed(now) => Condition::Is(etag.clone()),
            Some((held, _)) => {
                self.etag = None;
                return Ok(Take::Theirs(held.clone()));
            }
        };
        let fresh = self.etag.is_none()
            || !matches!(&condition, Condition::Is(e) if Some(e) == self.etag.as_ref());
        let since = match fresh {
            true => now,
            false => self.since.unwrap_or(now),
        };
        let body = Held {
            holder: self.holder.clone(),
            since,
            seen: now,
            until: now + chrono::Duration::from_std(ttl()).unwrap_or_default(),
            released: false,
        };
        match self.write(&body, condition).await? {
            Some(etag) => {
                self.etag = Some(etag);
                self.since = Some(since);
                self.until = Some(body.until);
                Ok(Take::Ours { fresh })
            }
            None => {
                self.etag = None;
                let now_held = read_tagged(&self.s3, &self.bucket, &self.key).await?;
                Ok(Take::Theirs(now_held.map(|(h, _)| h).unwrap_or(body)))
            }
        }
    }

    /// Lets go of the lease (the run ended): the next driver finds it released.
    pub async fn release(&mut self) -> Result<(), AwsError> {
        let Some(etag) = self.etag.take() else {
            return Ok(());
        };
        let now = Utc::now();
        let body = Held {
            holder: self.holder.clone(),
            since: self.since.unwrap_or(now),
            seen: now,
            until: now,
            released: true,
        };
        self.write(&body, Condition::Is(etag)).await?;
        Ok(())
    }

    /// One conditional write; `None` when its condition failed (another driver wrote first).
    async fn write(&self, body: &Held, condition: Condition) -> Result<Option<String>, AwsError> {
        let bytes = serde_json::to_vec(body).expect("leases serialise");
        let put = || async {
            let put = self
                .s3
                .put_object()
                .bucket(&self.bucket)
                .key(&self.key)
                .content_type("application/json")
                .body(bytes.clone().into());
            let put = match &condition {
                Condition::Absent => put.if_none_match("*"),
                Condition::Is(etag) => put.if_match(etag),
            };
            put.send().await.map_err(aws::op("PutObject"))
        };
        // 409 ConditionalRequestConflict: a concurrent conditional write; S3 says retry.
        use backon::Retryable;
        let sent = put
            .retry(aws::backoff())
            .when(|e| e.is_transient() || e.code() == Some("ConditionalRequestConflict"))
            .await;
        match sent {
            Ok(out) => Ok(Some(out.e_tag().unwrap_or_default().to_string())),
            Err(e) if matches!(e.code(), Some("PreconditionFailed" | "NoSuchKey")) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

enum Condition {
    Absent,
    Is(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_lapses_when_released_or_past_its_time() {
        let now = Utc::now();
        let held = Held {
            holder: "a".into(),
            since: now,
            seen: now,
            until: now + chrono::Duration::seconds(10),
            released: false,
        };
        assert!(!held.lapsed(now));
        assert!(held.lapsed(now + chrono::Duration::seconds(10)));
        assert!(
            Held {
                released: true,
                ..held
            }
            .lapsed(now)
        );
    }
}
