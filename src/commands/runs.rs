//! Commands on a run that exists: `watch`, `status`, `logs`, `cancel`, `retry` and `runs`. Each
//! finds the run (locally, or in the job's bucket) and talks to its dispatcher.

use super::common::{current, current_job, open_store, poll_interval, resolve};
use super::drive::{already_finished, attach, exit_of, go_on};
use crate::cli::{LogsArgs, RetryArgs, RunArg, RunsArgs, StatusArgs, WatchArgs};
use crate::dispatch::Dispatcher;
use crate::error::{Exit, Failure, Result};
use crate::record::{RunRecord, Stage, TaskState};
use crate::report::{RunLine, RunList, RunStatus};
use crate::store::Store;
use crate::ui::Ui;
use crate::watch::{self, Ended, WatchOptions};
use std::path::Path;

pub async fn watch(file: Option<&Path>, args: WatchArgs, ui: &Ui) -> Result<Exit> {
    let store = open_store()?;
    let rec = resolve(&store, file, &args.run).await?;
    if rec.is_finished() && rec.finished_at.is_some() && !args.background {
        clean_up(&store, &rec).await;
        watch::print_summary(ui, &rec);
        return Ok(exit_of(&rec));
    }
    let mut dispatcher = Dispatcher::for_run(&rec).await?;
    // The watch keeps its own copy of the record: a second one of a big run is not held.
    let run_id = rec.run_id.clone();
    drop(rec);
    if args.background {
        let opts = unattended();
        watch::watch(&store, &mut dispatcher, &run_id, &Ui::quiet(), &opts).await?;
        return Ok(Exit::Ok);
    }
    attach(&store, &mut dispatcher, &run_id, ui).await
}

fn unattended() -> WatchOptions {
    WatchOptions {
        poll: poll_interval(),
        detach_on_ctrl_c: false,
    }
}

/// One more pass over a finished run removes anything a crash left between saving the outcome
/// and the cleanup; the summary does not depend on it.
async fn clean_up(store: &Store, rec: &RunRecord) {
    let step = async {
        let mut dispatcher = Dispatcher::for_run(rec).await?;
        watch::step(store, &mut dispatcher, &rec.run_id).await
    };
    if let Err(e) = step.await {
        tracing::warn!("cleaning up after run {}: {e}", rec.run_id);
    }
}

pub async fn status(file: Option<&Path>, args: &StatusArgs, ui: &Ui) -> Result<Exit> {
    let store = open_store()?;
    let rec = current(&store, resolve(&store, file, &args.run).await?).await?;
    if let Some(note) = super::common::waiting_note(&rec) {
        ui.note(&note);
    }
    let mut status = RunStatus::of(&rec);
    status.driver = driver_seen(&rec).await?;
    status.every_task = args.tasks;
    ui.emit(&status);
    Ok(Exit::Ok)
}

/// A run driven in AWS: its driver, as the run's lease says.
pub(super) async fn driver_seen(
    rec: &RunRecord,
) -> Result<Option<crate::report::driver::DriverSeen>> {
    let Some((run, service)) = rec
        .place
        .ecs()
        .and_then(|r| Some((r, r.driver.as_deref()?)))
    else {
        return Ok(None);
    };
    let aws = crate::dispatch::remote::aws_for(run).await?;
    let held =
        crate::dispatch::lease::read(&aws.s3(), &run.site.bucket, &rec.job, &rec.run_id).await?;
    Ok(Some(crate::report::driver::DriverSeen::of(
        service,
        held,
        &rec.run_id,
        !rec.is_finished(),
        chrono::Utc::now(),
    )))
}

pub async fn cancel(file: Option<&Path>, args: RunArg, ui: &Ui) -> Result<Exit> {
    let store = open_store()?;
    let rec = resolve(&store, file, &args).await?;
    let mut dispatcher = Dispatcher::for_run(&rec).await?;
    let run_id = rec.run_id.clone();
    drop(rec);
    if let Some(done) = request_cancel(&store, &mut dispatcher, &run_id).await? {
        already_finished(&done, ui);
        return Ok(Exit::Ok);
    }
    ui.note(&format!("cancelling run {run_id}"));
    let (quiet, opts) = (Ui::quiet(), unattended());
    let ended = watch::watch(&store, &mut dispatcher, &run_id, &quiet, &opts).await?;
    if let Ended::Finished(rec) = ended {
        watch::print_summary(ui, &rec);
    }
    Ok(Exit::Ok)
}

fn unreadable_line(u: crate::store::Unreadable) -> RunLine {
    RunLine {
        run_id: u.run_id,
        job: u.job.unwrap_or_default(),
        target: String::new(),
        state: crate::record::RunState::Unreadable,
        total: 0,
        succeeded: 0,
        failed: 0,
        created_at: u.created_at.unwrap_or_default(),
        key: None,
        reason: Some(u.error),
        cost: None,
    }
}

fn skipped_line(s: crate::claim::Skipped) -> RunLine {
    RunLine {
        run_id: "-".into(),
        job: s.job,
        target: String::new(),
        state: crate::record::RunState::Skipped,
        total: 0,
        succeeded: 0,
        failed: 0,
        created_at: s.at,
        key: s.key,
        reason: Some(s.reason),
        cost: None,
    }
}

/// Marks the run cancelled, in the record and where its dispatcher looks (the job's bucket for
/// ECS runs); whoever drives it stops its tasks. A run already finished is given back instead.
pub async fn request_cancel(
    store: &Store,
    dispatcher: &mut Dispatcher,
    run_id: &str,
) -> Result<Option<RunRecord>> {
    let _lock = store.lock(run_id)?;
    let mut rec = store.load(run_id)?;
    if rec.is_finished() {
        return Ok(Some(rec));
    }
    if dispatcher.ask_cancel().await? {
        return Ok(None);
    }
    rec.cancel_requested = true;
    store.save(&rec)?;
    dispatcher.saved(&rec, true).await?;
    Ok(None)
}

/// `retry RUN --failed`: the failed tasks are queued again as new attempts of the same run.
pub async fn retry(file: Option<&Path>, args: RetryArgs, ui: &Ui) -> Result<Exit> {
    let store = open_store()?;
    let rec = resolve(&store, file, &args.run).await?;
    let run_id = rec.run_id.clone();
    let Some((rec, n)) = requeue_run(&store, rec, ui).await? else {
        ui.note(&format!("run {run_id} has no failed tasks"));
        return Ok(Exit::Ok);
    };
    ui.note(&format!("run {}: retrying {n} failed tasks", rec.run_id));
    go_on(&store, rec, args.detach, ui).await
}

/// Queues a finished run's failed tasks again, in the record and where its dispatcher looks
/// (on ECS its image is held again); gives back the record and how many, or none when no task
/// failed. `retry` and the web view's retry both come here.
pub async fn requeue_run(
    store: &Store,
    rec: RunRecord,
    ui: &Ui,
) -> Result<Option<(RunRecord, usize)>> {
    let mut dispatcher = Dispatcher::for_run(&rec).await?;
    // One copy of a big record at a time: the step below reads it again.
    let run_id = &rec.run_id.clone();
    drop(rec);
    // Bring the record up to date first, so "failed" means failed now.
    if !watch::step(store, &mut dispatcher, run_id)
        .await?
        .is_finished()
    {
        return Err(Failure::usage(format!("run {run_id} is still running"))
            .hint("wait for it (`jobrun watch`) or cancel it, then retry its failed tasks"));
    }
    let _lock = store.lock(run_id)?;
    let mut rec = store.load(run_id)?;
    let n = requeue_failed(&mut rec);
    if n == 0 {
        return Ok(None);
    }
    // Its image is pulled again: kept again while the run lasts.
    if let Some(run) = rec.place.ecs() {
        let aws = crate::dispatch::remote::aws_for(run).await?;
        super::common::hold_image(&mut rec, &aws, store, ui).await;
    }
    store.save(&rec)?;
    dispatcher.saved(&rec, true).await?;
    Ok(Some((rec, n)))
}

/// Queues every failed task again as its next attempt; returns how many.
fn requeue_failed(rec: &mut RunRecord) -> usize {
    let mut n = 0;
    for t in rec
        .tasks
        .iter_mut()
        .filter(|t| t.state == TaskState::Failed)
    {
        t.requeue(format!("retry of attempt {}", t.attempts));
        n += 1;
    }
    if n > 0 {
        rec.finished_at = None;
        rec.cancel_requested = false;
        // The reduce reads every map task's outputs: when some run again, so does it.
        if let Some(reduce) = rec.tasks.last_mut().filter(|t| t.stage == Stage::Reduce)
            && reduce.state != TaskState::Queued
        {
            reduce.requeue("after the retried map tasks");
            n += 1;
        }
    }
    n
}

pub fn list(file: Option<&Path>, args: RunsArgs, ui: &Ui) -> Result<Exit> {
    let store = open_store()?;
    let job = match args.all {
        true => None,
        false => current_job(file)?.map(|j| j.name),
    };
    let since = match &args.since {
        Some(s) => Some(since(s)?),
        None => None,
    };
    let mut lines = run_lines(&store, job.as_ref().map(std::slice::from_ref))?;
    lines.retain(|l| {
        args.state.as_ref().is_none_or(|s| *s == l.state) && since.is_none_or(|t| l.created_at >= t)
    });
    lines.truncate(args.limit);
    ui.emit(&RunList(lines));
    Ok(Exit::Ok)
}

/// Every run of these jobs (none: of every job), newest first: each readable run by its
/// summary in the index (not its whole record), each run whose record cannot be read with the
/// file and the error, and each submission that started nothing (overlap = skip) with why.
/// `runs` and the web view's list both come here.
pub fn run_lines(store: &Store, jobs: Option<&[String]>) -> Result<Vec<RunLine>> {
    let of_jobs = |job: &str| jobs.is_none_or(|js| js.iter().any(|j| j == job));
    let listing = store.summaries()?;
    let mut seen: Vec<String> = jobs.map(<[String]>::to_vec).unwrap_or_default();
    let mut lines: Vec<RunLine> = vec![];
    for s in listing.runs.into_iter().filter(|r| of_jobs(&r.job)) {
        seen.push(s.job.clone());
        lines.push(RunLine {
            run_id: s.run_id,
            job: s.job,
            target: s.target,
            state: s.state,
            total: s.total,
            succeeded: s.succeeded,
            failed: s.failed,
            created_at: s.created_at,
            key: s.key,
            reason: None,
            cost: s.cost,
        });
    }
    lines.extend(
        listing
            .unreadable
            .into_iter()
            .filter(|u| jobs.is_none() || u.job.as_deref().is_some_and(of_jobs))
            .map(unreadable_line),
    );
    seen.sort();
    seen.dedup();
    let skipped = seen.iter().flat_map(|j| crate::claim::skipped(store, j));
    lines.extend(skipped.map(skipped_line));
    lines.sort_by(|a, b| (b.created_at, &b.run_id).cmp(&(a.created_at, &a.run_id)));
    Ok(lines)
}

/// `--since`: a duration back from now (`7d`, `12h`) or a date (`2026-11-30`, RFC 3339).
pub fn since(text: &str) -> Result<chrono::DateTime<chrono::Utc>> {
    if let Ok(d) = humantime::parse_duration(text) {
        return Ok(chrono::Utc::now() - chrono::Duration::from_std(d).unwrap_or_default());
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.to_utc());
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc())
        .map_err(|_| {
            Failure::usage(format!("--since `{text}` is neither a duration nor a date"))
                .hint("e.g. --since 7d, --since 12h or --since 2026-11-30")
        })
}

/// A writer that counts what went through it.
struct Counted<'a> {
    inner: &'a mut (dyn std::io::Write + Send),
    bytes: usize,
}

impl<'a> Counted<'a> {
    fn new(inner: &'a mut (dyn std::io::Write + Send)) -> Counted<'a> {
        Counted { inner, bytes: 0 }
    }
}

impl std::io::Write for Counted<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// How long `logs --follow` waits, in all, for a running local task's container to be there
/// (or to say something): it is made seconds after its record is saved, so this only ends a
/// wait whose submitter is gone or whose task stays silent after its container ended.
const WAIT_FOR_CONTAINER: std::time::Duration = std::time::Duration::from_secs(30);

/// One task's log, the record it was read with returned. Following a local task that is
/// running but whose container is not there yet (its record is saved before the container is
/// made) waits for it: the record is read again, after a pause that grows to a second, until
/// the log flows, the task has ended (then its saved log is the answer) or the pauses add up
/// to [`WAIT_FOR_CONTAINER`].
async fn task_log(
    store: &Store,
    dispatcher: &Dispatcher,
    mut rec: RunRecord,
    i: usize,
    follow: bool,
    out: &mut Counted<'_>,
) -> Result<RunRecord> {
    let mut pause = std::time::Duration::from_millis(100);
    let mut waited = std::time::Duration::ZERO;
    loop {
        dispatcher.logs(&rec, i, follow, out).await?;
        let waiting = follow
            && out.bytes == 0
            && rec.tasks[i].state == TaskState::Running
            && matches!(rec.place, crate::record::Place::Local);
        if !waiting || waited >= WAIT_FOR_CONTAINER {
            return Ok(rec);
        }
        tokio::time::sleep(pause).await;
        waited += pause;
        pause = (pause * 2).min(std::time::Duration::from_secs(1));
        rec = store.load(&rec.run_id)?;
    }
}

pub async fn logs(file: Option<&Path>, args: LogsArgs) -> Result<Exit> {
    use std::io::Write;
    let store = open_store()?;
    let rec = resolve(&store, file, &args.run).await?;
    if let Some(i) = args.index.filter(|i| *i >= rec.tasks.len()) {
        return Err(
            Failure::usage(format!("run {} has no task {i}", rec.run_id))
                .hint(format!("indexes go from 0 to {}", rec.tasks.len() - 1)),
        );
    }
    if args.follow && matches!(rec.place, crate::record::Place::Queue(..)) {
        return Err(Failure::usage(format!(
            "run {} is a queue run: its tasks' logs are read as they stand, not followed",
            rec.run_id
        ))
        .hint("leave out --follow, and run `jobrun logs` again to see more"));
    }
    let dispatcher = Dispatcher::for_run(&rec).await?;
    let mut stdout = crate::ui::Stdout;
    if let Some(i) = args.index {
        let mut written = Counted::new(&mut stdout);
        let rec = task_log(&store, &dispatcher, rec, i, args.follow, &mut written).await?;
        if written.bytes == 0 {
            // Exit 0 with nothing is not an answer: say why there is nothing.
            crate::ui::Ui::new(crate::ui::OutputFormat::Text).note(&format!(
                "task {i} of run {} has no log yet ({})",
                rec.run_id,
                rec.tasks[i].state.as_str()
            ));
        }
        return Ok(Exit::Ok);
    }
    for t in &rec.tasks {
        let mut buf = Vec::new();
        dispatcher.logs(&rec, t.index, false, &mut buf).await?;
        for line in String::from_utf8_lossy(&buf).lines() {
            let _ = writeln!(stdout, "[{}] {line}", t.index);
        }
    }
    Ok(Exit::Ok)
}
