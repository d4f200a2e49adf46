//! What a submit fired from cron (or by a person twice) settles before it makes a run: its
//! idempotency key (`--key`: a submit with the same key made a run already, so this one follows
//! that run and makes nothing) and the overlap policy (another run of the job is active: allow,
//! skip — start nothing, exit 0 — or replace — cancel it, then start). For ECS jobs both look in
//! the job's bucket, so they hold across machines; the key is claimed there with one
//! conditional write.

use super::common::{open_store, run_of};
use super::drive::{already_finished, go_on, spawn_background};
use super::request::SubmitRequest;
use crate::aws::Aws;
use crate::claim::{self, Claimed, KeyClaim, Skipped};
use crate::config::{Job, NotifyEvent, Overlap};
use crate::dispatch::Dispatcher;
use crate::error::{Exit, Result};
use crate::record::RunRecord;
use crate::report::NotStarted;
use crate::store::Store;
use crate::ui::Ui;
use chrono::Utc;
use std::time::Duration;

/// Where a job's runs and claims are seen from every machine: its bucket (ECS jobs).
pub struct Shared<'a> {
    pub aws: &'a Aws,
    pub bucket: &'a str,
}

/// A submit's key and overlap policy (flag, else `[schedule] overlap`, else skip with a key
/// and allow without).
pub struct Gate<'a> {
    pub job: &'a Job,
    pub key: Option<String>,
    pub overlap: Overlap,
    pub detach: bool,
    pub shared: Option<Shared<'a>>,
    /// The key as this submit claimed it, to give back if its run cannot be made.
    claimed: std::sync::Mutex<Option<KeyClaim>>,
}

/// Whether the submit goes on to make its run.
pub enum Pass {
    Go,
    Done(Exit),
}

/// The runs of the job another submit of it must not overlap with: unfinished ones, here and
/// (ECS) among the newest in the bucket.
const NEWEST_REMOTE: usize = 20;

impl<'a> Gate<'a> {
    pub fn of(req: &'a SubmitRequest) -> Result<Gate<'a>> {
        let job = &req.job;
        if let Some(key) = &req.key {
            claim::check_key(key)?;
        }
        let overlap = req.overlap.or(job.overlap).unwrap_or(match req.key {
            Some(_) => Overlap::Skip,
            None => Overlap::Allow,
        });
        Ok(Gate {
            job,
            key: req.key.clone(),
            overlap,
            detach: req.detach,
            shared: None,
            claimed: Default::default(),
        })
    }

    /// Before the run is made: the key's run if it has one, then the overlap policy.
    pub async fn before(&self, store: &Store, ui: &Ui) -> Result<Pass> {
        if let Some(key) = &self.key
            && let Some(taken) = self.claimed(store, key).await?
        {
            return self.follow(taken, ui).await.map(Pass::Done);
        }
        if self.overlap == Overlap::Allow {
            return Ok(Pass::Go);
        }
        let active = self.active(store).await?;
        let Some(first) = active.first() else {
            return Ok(Pass::Go);
        };
        match self.overlap {
            Overlap::Skip => self.skip(store, &first.run_id, ui).await.map(Pass::Done),
            _ => {
                // A run of this very key is followed, not replaced: a second fire of the same
                // slot racing the first must not cancel the run the first just made.
                for rec in active
                    .iter()
                    .filter(|r| r.key.is_none() || r.key != self.key)
                {
                    self.cancel(store, rec, ui).await?;
                }
                Ok(Pass::Go)
            }
        }
    }

    /// Claims the key for the run about to be made: `Go` when this submit holds it, else
    /// (another submit won the race) the run that one made is followed.
    pub async fn claim(&self, store: &Store, run_id: &str, ui: &Ui) -> Result<Pass> {
        let Some(key) = &self.key else {
            return Ok(Pass::Go);
        };
        let claim = KeyClaim {
            key: key.clone(),
            run_id: run_id.to_string(),
            claimed_at: Utc::now(),
        };
        let claimed = match &self.shared {
            Some(s) => claim::claim_in_bucket(s.aws, s.bucket, &self.job.name, &claim).await?,
            None => claim::claim_here(store, &self.job.name, &claim)?,
        };
        match claimed {
            Claimed::Ours => {
                *self.claimed.lock().expect("not poisoned") = Some(claim);
                Ok(Pass::Go)
            }
            Claimed::Taken(taken) => self.follow(taken, ui).await.map(Pass::Done),
        }
    }

    /// The run this submit claimed its key for could not be made: the key is given back, so
    /// the next fire makes the run instead of following one that does not exist.
    pub async fn release(&self, store: &Store) {
        let Some(claim) = self.claimed.lock().expect("not poisoned").take() else {
            return;
        };
        let shared = self.shared.as_ref().map(|s| (s.aws, s.bucket));
        if let Err(e) = claim::release(store, shared, &self.job.name, &claim).await {
            tracing::warn!("cannot give key {} back: {e}", claim.key);
        }
    }

    async fn claimed(&self, store: &Store, key: &str) -> Result<Option<KeyClaim>> {
        Ok(match &self.shared {
            Some(s) => claim::claimed_in_bucket(s.aws, s.bucket, &self.job.name, key).await?,
            None => claim::claimed_here(store, &self.job.name, key),
        })
    }

    /// The job's unfinished runs, newest first.
    async fn active(&self, store: &Store) -> Result<Vec<RunRecord>> {
        // The index says which runs are unfinished; only those records are read.
        let mut active: Vec<RunRecord> = store
            .summaries()?
            .runs
            .iter()
            .filter(|s| s.job == self.job.name && !s.finished)
            .filter_map(|s| store.load(&s.run_id).ok())
            .collect();
        if let Some(s) = &self.shared {
            let remote =
                crate::dispatch::remote::recent(s.aws, s.bucket, &self.job.name, NEWEST_REMOTE);
            for rec in remote.await? {
                let known = active.iter().any(|r| r.run_id == rec.run_id);
                let finished_here = store.load(&rec.run_id).is_ok_and(|r| r.is_finished());
                if !rec.is_finished() && !known && !finished_here {
                    active.push(rec);
                }
            }
        }
        // A detached ECS run whose tasks all started has nobody watching it: its record is
        // brought up to date before it counts as active.
        let mut current = vec![];
        for rec in active {
            match self.up_to_date(store, rec).await {
                Some(rec) if rec.is_finished() => {}
                Some(rec) => current.push(rec),
                None => {}
            }
        }
        current.sort_by(|a, b| b.run_id.cmp(&a.run_id));
        Ok(current)
    }

    /// An ECS run as it stands now (one reconcile step); a local run as recorded (its driver
    /// keeps it current). When the step fails the record is taken as it is.
    async fn up_to_date(&self, store: &Store, rec: RunRecord) -> Option<RunRecord> {
        if rec.place == crate::record::Place::Local {
            return Some(rec);
        }
        let stepped = async {
            let here = self.by_id(store, &rec.run_id).await?;
            let mut dispatcher = Dispatcher::for_run(&here).await?;
            Ok::<_, crate::error::Failure>(
                crate::watch::step(store, &mut dispatcher, &here.run_id).await?,
            )
        };
        match stepped.await {
            Ok(now) => Some(now),
            Err(e) => {
                tracing::warn!("cannot bring run {} up to date: {e}", rec.run_id);
                Some(rec)
            }
        }
    }

    /// The key made a run already: say so, and follow it (or return at once with --detach).
    async fn follow(&self, taken: KeyClaim, ui: &Ui) -> Result<Exit> {
        let reason = format!(
            "key {} made run {} at {}: nothing new was started",
            taken.key,
            taken.run_id,
            taken.claimed_at.format("%Y-%m-%d %H:%M:%S UTC")
        );
        if self.detach {
            ui.emit(&self.not_started(&taken.run_id, reason));
            return Ok(Exit::Ok);
        }
        ui.note(&reason);
        let store = open_store()?;
        let rec = self.find(&store, &taken.run_id).await?;
        if rec.is_finished() {
            return Ok(already_finished(&rec, ui));
        }
        go_on(&store, rec, false, ui).await
    }

    /// The key's run, here or in the job's bucket; the submit that claimed the key may still
    /// be writing it, so it is looked for a little while.
    async fn find(&self, store: &Store, run_id: &str) -> Result<RunRecord> {
        let mut pause = Duration::from_millis(200);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            match self.by_id(store, run_id).await {
                Ok(rec) => return Ok(rec),
                Err(e) if std::time::Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(pause).await,
            }
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    }

    /// overlap = skip: nothing is made; the skipped submission is logged for `jobrun runs` (for
    /// ECS jobs also in the bucket, for `schedule list`) and told, with `[notify] on` naming
    /// "skipped".
    async fn skip(&self, store: &Store, active: &str, ui: &Ui) -> Result<Exit> {
        let reason = format!(
            "skipped: run {active} of job {} is still active (overlap = skip)",
            self.job.name
        );
        let skipped = Skipped {
            at: Utc::now(),
            job: self.job.name.clone(),
            key: self.key.clone(),
            active_run: active.to_string(),
            reason: reason.clone(),
        };
        claim::log_skipped(store, &skipped)?;
        if let Some(s) = &self.shared {
            claim::log_skipped_in_bucket(s.aws, s.bucket, &skipped).await?;
        }
        if let Some(spec) = self
            .job
            .notify
            .as_ref()
            .filter(|s| s.wants(NotifyEvent::Skipped))
        {
            let key = self.key.as_deref();
            let message = crate::notify::Message::skipped(&self.job.name, key, active, &reason);
            crate::notify::send(spec, &message).await;
        }
        ui.emit(&self.not_started(active, reason));
        Ok(Exit::Ok)
    }

    /// overlap = replace: the active run is cancelled, and a background driver stops its tasks
    /// (a detached ECS run whose tasks all started has no driver of its own).
    async fn cancel(&self, store: &Store, rec: &RunRecord, ui: &Ui) -> Result<()> {
        let rec = self.by_id(store, &rec.run_id).await?;
        let mut dispatcher = Dispatcher::for_run(&rec).await?;
        if super::runs::request_cancel(store, &mut dispatcher, &rec.run_id)
            .await?
            .is_none()
        {
            spawn_background(store, &rec.run_id)?;
        }
        ui.note(&format!(
            "cancelling run {} (overlap = replace)",
            rec.run_id
        ));
        Ok(())
    }

    /// A run by its id, from here or the job's bucket (which makes this machine's copy).
    async fn by_id(&self, store: &Store, run_id: &str) -> Result<RunRecord> {
        run_of(store, self.job, run_id).await
    }

    fn not_started(&self, run_id: &str, reason: String) -> NotStarted {
        NotStarted {
            started: false,
            job: self.job.name.clone(),
            key: self.key.clone(),
            run_id: run_id.to_string(),
            reason,
        }
    }
}
