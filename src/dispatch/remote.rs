//! What the two AWS dispatchers (ECS direct and queue) share: AWS access for a run, the S3 copy
//! of its record (`s3://<bucket>/jobs/<job>/runs/<run>/run.json`) that lets `watch`, `status` and
//! `logs` re-attach from any machine, configurations too large to travel with a task, and the
//! "more to send at once" flag the watch loop asks about.

use super::lease::{Lease, Take};
use crate::aws::{self, Aws, AwsError, put_json};
use crate::record::{EcsRun, RunRecord};
use crate::wire::{config_key, record_key};

/// What this process does with a run in a step (see [`RemoteRun::acting`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acting {
    /// Moves it forward.
    Act,
    /// Moves it forward, from the record in the bucket (newly taken over).
    Reload,
    /// Only reads the record in the bucket: another process drives the run.
    Follow,
}

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error("cannot write the task's log: {0}")]
    Output(std::io::Error),
    #[error("run {0} already exists in the job's bucket")]
    RemoteExists(String),
}

/// AWS access for a run on ECS: its region, and `--profile`, else the profile it was submitted
/// with (see [`aws::Access`]).
pub async fn aws_for(run: &EcsRun) -> Result<Aws, AwsError> {
    aws::Access::in_region(run.profile.as_deref(), &run.site.region)
        .load()
        .await
}

/// One run on AWS as both dispatchers hold it.
pub struct RemoteRun {
    pub aws: Aws,
    pub run: EcsRun,
    job: String,
    run_id: String,
    s3: aws_sdk_s3::Client,
    /// The run's lease, when the run is driven in AWS and this process is a driver there.
    lease: Option<Lease>,
    /// The S3 copy may be behind the local one (an earlier write failed, or none was made yet
    /// by this process).
    pending: bool,
    /// The last reconcile left queued tasks it could start (or send) now.
    pub more: bool,
    /// Someone asked the run's driver in AWS to cancel it (`cancel.json` under the run).
    pub cancel_asked: bool,
    /// The ETag of the bucket's record as this process last read it (see `fetch_record`).
    seen_etag: Option<String>,
    /// When this driver last looked for `cancel.json`.
    cancel_looked: Option<std::time::Instant>,
}

impl RemoteRun {
    pub async fn connect(rec: &RunRecord, run: &EcsRun) -> Result<RemoteRun, AwsError> {
        Ok(Self::new(rec, aws_for(run).await?, run.clone()))
    }

    pub fn new(rec: &RunRecord, aws: Aws, run: EcsRun) -> RemoteRun {
        let s3 = aws.s3();
        let lease = match (&run.driver, super::driver_here()) {
            (Some(_), Some(holder)) => Some(Lease::new(
                s3.clone(),
                &run.site.bucket,
                &rec.job,
                &rec.run_id,
                holder,
            )),
            _ => None,
        };
        RemoteRun {
            s3,
            aws,
            run,
            job: rec.job.clone(),
            run_id: rec.run_id.clone(),
            lease,
            pending: true,
            more: false,
            cancel_asked: false,
            seen_etag: None,
            cancel_looked: None,
        }
    }

    /// Whether this process acts on the run now: always for a run driven by the machine that
    /// submitted it; for one driven in AWS only a driver there holding the run's lease acts,
    /// and everyone else follows the record in the bucket.
    pub async fn acting(&mut self) -> Result<Acting, AwsError> {
        if self.run.driver.is_none() {
            return Ok(Acting::Act);
        }
        let Some(lease) = self.lease.as_mut() else {
            return Ok(Acting::Follow);
        };
        let acting = match lease.take().await? {
            Take::Ours { fresh: false } => Acting::Act,
            Take::Ours { fresh: true } => {
                // Another driver may have moved the run since this one last held it.
                self.pending = false;
                Acting::Reload
            }
            Take::Theirs(held) => {
                tracing::debug!(holder = held.holder, "the run's lease is another driver's");
                Acting::Follow
            }
        };
        // A cancel asked from elsewhere is looked for every few seconds, not at every step.
        let due = self
            .cancel_looked
            .is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(5));
        if acting != Acting::Follow && !self.cancel_asked && due {
            let key = self.cancel_key();
            self.cancel_asked = aws::object_exists(&self.s3, &self.run.site.bucket, &key).await?;
            self.cancel_looked = Some(std::time::Instant::now());
        }
        Ok(acting)
    }

    fn cancel_key(&self) -> String {
        format!(
            "{}cancel.json",
            crate::wire::run_prefix(&self.job, &self.run_id)
        )
    }

    /// A run driven in AWS by another process: asks its driver to cancel it (the record is the
    /// driver's to write). `false`: this process writes the record itself.
    pub async fn ask_cancel(&self) -> Result<bool, AwsError> {
        if self.run.driver.is_none() || self.lease.is_some() {
            return Ok(false);
        }
        let body = serde_json::json!({"asked_at": chrono::Utc::now()}).to_string();
        put_json(
            &self.s3,
            &self.run.site.bucket,
            &self.cancel_key(),
            body.into_bytes(),
        )
        .await?;
        Ok(true)
    }

    /// Lets go of the run's lease, if this process holds it (the run ended).
    pub async fn let_go(&mut self) -> Result<(), AwsError> {
        match self.lease.as_mut() {
            Some(lease) => lease.release().await,
            None => Ok(()),
        }
    }

    /// The run's record as the bucket holds it, when it changed since this process last read
    /// it (a follower polls: a HeadObject of an unchanged record is all it costs, not the
    /// download of a record that may be tens of megabytes).
    pub async fn fetch_record(&mut self) -> Result<Option<RunRecord>, AwsError> {
        let key = record_key(&self.job, &self.run_id);
        let bucket = &self.run.site.bucket;
        // HeadObject answers the ETag GetObject would (S3 API Reference, HeadObject); a key it
        // cannot see is 404, or 403 for a role without s3:ListBucket — either way the record is
        // read as before, by GetObject (`get_object` tells absent from refused).
        let head = self.s3.head_object().bucket(bucket).key(&key).send().await;
        let etag = head.ok().and_then(|h| h.e_tag().map(str::to_string));
        if etag.is_some() && etag == self.seen_etag {
            return Ok(None);
        }
        let rec = aws::get_json(&self.s3, bucket, &key).await?;
        self.seen_etag = etag;
        Ok(rec)
    }

    /// Resolves at once while there is more to start; never otherwise (the caller polls).
    pub async fn changed(&self) {
        if self.more {
            return;
        }
        std::future::pending::<()>().await
    }

    /// Stores a task's configuration under the run's prefix (for one too large to travel with
    /// the task) and returns its `s3://` URL, which the task gets as `JOBRUN_CONFIG_URL`.
    pub async fn store_config(
        &self,
        rec: &RunRecord,
        index: usize,
        config: &str,
    ) -> Result<String, AwsError> {
        let bucket = &self.run.site.bucket;
        let key = config_key(&rec.job, &rec.run_id, index);
        put_json(&self.s3, bucket, &key, config.as_bytes().to_vec()).await?;
        Ok(format!("s3://{bucket}/{key}"))
    }

    /// Writes the record when it changed, or when the copy there may be behind.
    pub async fn mirror(&mut self, rec: &RunRecord, changed: bool) -> Result<(), AwsError> {
        if !changed && !self.pending {
            return Ok(());
        }
        self.pending = true;
        let body = serde_json::to_vec(rec).expect("records serialise");
        put_json(
            &self.s3,
            &self.run.site.bucket,
            &record_key(&rec.job, &rec.run_id),
            body,
        )
        .await?;
        self.pending = false;
        Ok(())
    }

    /// Claims `name` under the run's prefix with one conditional write: `false` when it was
    /// claimed already (by this or another machine).
    pub async fn claim_once(
        &self,
        rec: &RunRecord,
        name: &str,
        body: Vec<u8>,
    ) -> Result<bool, AwsError> {
        let key = format!("{}{name}", crate::wire::run_prefix(&rec.job, &rec.run_id));
        let bucket = &self.run.site.bucket;
        if aws::put_json_once(&self.s3, bucket, &key, body.clone()).await? {
            return Ok(true);
        }
        // Our own write, whose answer was lost and whose retry met it, is still ours.
        let there: Option<serde_json::Value> = aws::get_json(&self.s3, bucket, &key).await?;
        Ok(there.is_some_and(|v| {
            serde_json::from_slice::<serde_json::Value>(&body).is_ok_and(|b| b == v)
        }))
    }

    /// What the jobrun in a direct-mode task wrote about an attempt's outputs, if anything.
    pub async fn receipt(
        &self,
        job: &str,
        run_id: &str,
        index: usize,
        attempt: u32,
    ) -> Result<Option<crate::wire::Receipt>, AwsError> {
        let key = crate::wire::receipt_key(job, run_id, index, attempt);
        aws::get_json(&self.s3, &self.run.site.bucket, &key).await
    }

    /// The first copy of a new run: refused if a run of that id is already there.
    pub async fn create(&self, rec: &RunRecord) -> Result<(), RemoteError> {
        let body = serde_json::to_vec(rec).expect("records serialise");
        let key = record_key(&rec.job, &rec.run_id);
        match aws::put_json_once(&self.s3, &self.run.site.bucket, &key, body).await? {
            true => Ok(()),
            false => Err(RemoteError::RemoteExists(rec.run_id.clone())),
        }
    }
}

/// Starts the job's driver in AWS for a run driven there: its service's desired count set to
/// 1 (ECS keeps one task running and replaces it when it stops; the driver sets it back to 0
/// when no run is left). UpdateService: https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_UpdateService.html
pub async fn wake_driver(aws: &Aws, rec: &RunRecord, run: &EcsRun) -> Result<(), AwsError> {
    let Some(service) = &run.driver else {
        return Ok(());
    };
    // Marked first: a driver that scales itself to 0 looks once more after, and finds it.
    let key = format!("{}{}", crate::layout::driving_prefix(&rec.job), rec.run_id);
    put_json(&aws.s3(), &run.site.bucket, &key, b"{}".to_vec()).await?;
    set_driver_count(aws, &run.site.cluster, service, 1).await
}

/// The runs the job's driver in AWS has yet to finish (see `layout::driving_prefix`).
pub async fn driving(aws: &Aws, bucket: &str, job: &str) -> Result<Vec<String>, AwsError> {
    let listed = aws::list_objects(&aws.s3(), bucket, &crate::layout::driving_prefix(job)).await;
    Ok(aws::found(listed, &["NoSuchBucket"])?
        .unwrap_or_default()
        .into_iter()
        .map(|o| o.rel)
        .filter(|id| crate::record::is_run_id(id))
        .collect())
}

/// The run needs its driver no more.
pub async fn done_driving(
    aws: &Aws,
    bucket: &str,
    job: &str,
    run_id: &str,
) -> Result<(), AwsError> {
    let key = format!("{}{run_id}", crate::layout::driving_prefix(job));
    aws::delete_objects(&aws.s3(), bucket, &[key]).await
}

/// Sets the driver service's desired count (1: a run needs it; 0: none does).
pub async fn set_driver_count(
    aws: &Aws,
    cluster: &str,
    service: &str,
    count: i32,
) -> Result<(), AwsError> {
    let ecs = aws.ecs();
    aws::retrying(|| async {
        ecs.update_service()
            .cluster(cluster)
            .service(service)
            .desired_count(count)
            .send()
            .await
            .map_err(aws::op("UpdateService"))
    })
    .await?;
    Ok(())
}

/// The folders under `jobs/<job>/runs/` of the job's bucket whose names start with `start`
/// (run ids, and the S3 trigger's `s3-<day>`), every page; `None` when there is no bucket.
async fn run_folders(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    job: &str,
    start: &str,
) -> Result<Option<Vec<String>>, AwsError> {
    let runs = crate::layout::runs_prefix(job);
    let listed = aws::list_folders(s3, bucket, &runs, start).await;
    aws::found(listed, &["NoSuchBucket"])
}

/// Finds a run in the job's bucket (an exact id, or a unique start of one) and returns its
/// record: how `watch`, `status`, `logs` re-attach on a machine that never saw the run.
pub async fn fetch(
    aws: &Aws,
    bucket: &str,
    job: &str,
    wanted: &str,
) -> Result<Option<RunRecord>, AwsError> {
    let s3 = aws.s3();
    let Some(ids) = run_folders(&s3, bucket, job, wanted).await? else {
        return Ok(None);
    };
    let id = match ids.iter().find(|id| *id == wanted) {
        Some(id) => id.clone(),
        None if ids.len() == 1 => ids[0].clone(),
        None => return Ok(None),
    };
    aws::get_json(&s3, bucket, &record_key(job, &id)).await
}

/// The ids of a job's runs in its bucket (none when there is no bucket): what the web view
/// fetches the records of when this machine lacks them.
pub async fn run_ids(aws: &Aws, bucket: &str, job: &str) -> Result<Vec<String>, AwsError> {
    let mut ids = run_folders(&aws.s3(), bucket, job, "")
        .await?
        .unwrap_or_default();
    // Runs only: trigger folders (`s3-<day>`) sort after run ids and hold no record.
    ids.retain(|id| id.starts_with(|c: char| c.is_ascii_digit()));
    Ok(ids)
}

/// The newest runs of a job in its bucket, newest first (run ids sort by their start time),
/// their records read: how a submit on any machine sees the job's active runs.
pub async fn recent(
    aws: &Aws,
    bucket: &str,
    job: &str,
    newest: usize,
) -> Result<Vec<RunRecord>, AwsError> {
    let s3 = aws.s3();
    let mut ids = run_folders(&s3, bucket, job, "").await?.unwrap_or_default();
    // Runs only: trigger folders (`s3-<day>`) sort after run ids and hold no record.
    ids.retain(|id| id.starts_with(|c: char| c.is_ascii_digit()));
    ids.sort();
    let mut records = vec![];
    for id in ids.iter().rev().take(newest) {
        if let Some(rec) = aws::get_json(&s3, bucket, &record_key(job, id)).await? {
            records.push(rec);
        }
    }
    Ok(records)
}

/// Where to read a task's log: a CloudWatch stream, optionally within a time window (epoch
/// milliseconds, end exclusive).
pub struct LogStream<'a> {
    pub group: &'a str,
    pub stream: &'a str,
    pub window: (Option<i64>, Option<i64>),
}

/// Writes a stream's events from `token` on, page after page until the forward token stops
/// moving (GetLogEvents returns at most 1 MB or 10,000 events per page, and may return empty
/// pages with a new token before the end). Returns the token to go on from, or `None` when
/// the stream does not exist.
pub async fn write_log(
    logs: &aws_sdk_cloudwatchlogs::Client,
    at: &LogStream<'_>,
    mut token: Option<String>,
    out: &mut (dyn std::io::Write + Send),
) -> Result<Option<Option<String>>, RemoteError> {
    loop {
        let page = logs
            .get_log_events()
            .log_group_name(at.group)
            .log_stream_name(at.stream)
            .start_from_head(true)
            .set_start_time(at.window.0)
            .set_end_time(at.window.1)
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(aws::op("GetLogEvents"));
        let Some(page) = aws::found(page, &["ResourceNotFoundException"])? else {
            return Ok(None);
        };
        for e in page.events() {
            writeln!(out, "{}", e.message().unwrap_or_default().trim_end())
                .map_err(RemoteError::Output)?;
        }
        out.flush().map_err(RemoteError::Output)?;
        let next = page.next_forward_token().map(str::to_string);
        if next.is_none() || next == token {
            return Ok(Some(token));
        }
        token = next;
    }
}
