//! Watching a run: the loop that moves it forward (through its dispatcher's `reconcile`) and shows
//! it — indicatif bars on a terminal, one plain line per state change without one, JSON lines
//! with `--output json` — ending in a summary. `submit` attaches to it; `watch` re-attaches,
//! from any terminal and after any crash, because everything it needs is in the record and the
//! dispatcher. The poll interval is a parameter, never a fixed sleep.

use crate::dispatch::remote::Acting;
use crate::dispatch::{DispatchError, Dispatcher};
use crate::record::{RunRecord, TaskState};
use crate::report::{RunStatus, Summary, secs};
use crate::store::{Stamp, Store};
use crate::ui::Ui;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::time::Duration;

pub const DEFAULT_POLL: Duration = Duration::from_millis(500);

/// How a watch ended.
pub enum Ended {
    Finished(Box<RunRecord>),
    /// Ctrl-C: the run goes on without this process.
    Detached,
}

pub struct WatchOptions {
    pub poll: Duration,
    pub detach_on_ctrl_c: bool,
}

/// One locked read-reconcile-write of the record, for a caller that steps once.
pub async fn step(
    store: &Store,
    dispatcher: &mut Dispatcher,
    run_id: &str,
) -> Result<RunRecord, DispatchError> {
    let mut follow = Follow::default();
    follow.step(store, dispatcher, run_id).await?;
    Ok(follow.into_record().expect("a step holds its record"))
}

/// One locked read-observe-write of the record: the run as AWS says it stands, with nothing
/// done to it (see [`Dispatcher::observe`]); for the reading commands.
pub async fn look(
    store: &Store,
    dispatcher: &mut Dispatcher,
    run_id: &str,
) -> Result<RunRecord, DispatchError> {
    let _lock = store.lock(run_id)?;
    let mut rec = store.load(run_id)?;
    let before = digest(&rec);
    dispatcher.observe(&mut rec).await?;
    rec.settle();
    if digest(&rec) != before {
        store.save(&rec)?;
    }
    Ok(rec)
}

/// A run followed step after step by this process. It holds the record as it last read or wrote
/// it, with the [`Stamp`] of that file: a step whose file has the same stamp (nobody else saved
/// since) goes on from it instead of parsing the file again, and whether a step changed the
/// record is told by a digest of it, not by a copy. A 10,000-task record is tens of megabytes in
/// memory; watching it keeps one.
#[derive(Default)]
pub struct Follow {
    held: Option<Held>,
}

struct Held {
    rec: RunRecord,
    stamp: Stamp,
    digest: u64,
}

impl Follow {
    /// One locked read-reconcile-write of the record; the record as it stands after it.
    pub async fn step(
        &mut self,
        store: &Store,
        dispatcher: &mut Dispatcher,
        run_id: &str,
    ) -> Result<&RunRecord, DispatchError> {
        match dispatcher.acting().await? {
            Acting::Follow => return self.follow(store, dispatcher, run_id).await,
            Acting::Reload => self.reload(store, dispatcher, run_id).await?,
            Acting::Act => {}
        }
        let t0 = std::time::Instant::now();
        let _lock = store.lock(run_id)?;
        // Anything that fails below leaves nothing held: the next step reads the file again.
        let mut held = self.take_held(store, run_id)?;
        if dispatcher.cancel_asked() {
            held.rec.cancel_requested = true;
        }
        let t1 = t0.elapsed();
        // What reconcile changed is saved even when it stopped half way (e.g. a start failed).
        // What it saved itself, before it started tasks, is not written again unless it
        // changed since.
        let Held {
            rec, digest: saved, ..
        } = &mut held;
        let mut save_first = |rec: &RunRecord| {
            store.save(rec)?;
            *saved = digest(rec);
            Ok(())
        };
        let result = dispatcher.reconcile(rec, store, &mut save_first).await;
        let t2 = t0.elapsed();
        held.rec.settle();
        let now = digest(&held.rec);
        let changed = now != held.digest;
        if changed {
            store.save(&held.rec)?;
            held.digest = now;
        }
        let t3 = t0.elapsed();
        dispatcher.saved(&held.rec, changed).await?;
        if held.rec.is_finished() && notify_end(store, dispatcher, &mut held.rec).await {
            held.digest = digest(&held.rec);
        }
        if held.rec.is_finished() && let_go_of_image(store, dispatcher, &mut held.rec).await {
            held.digest = digest(&held.rec);
        }
        if held.rec.is_finished()
            && let Err(e) = dispatcher.let_go().await
        {
            tracing::warn!("cannot let go of the run's lease: {e}");
        }
        // Still under the lock: the file as this step left it.
        held.stamp = store.stamp(run_id)?;
        tracing::debug!(
            load = ?t1,
            reconcile = ?(t2 - t1),
            save = ?(t3 - t2),
            remote = ?(t0.elapsed() - t3),
            "step"
        );
        dispatcher.release(result?).await?;
        Ok(&self.held.insert(held).rec)
    }

    /// The record as this process holds it when nobody saved the file since (same stamp), else
    /// read again; the caller holds the run's lock.
    fn take_held(&mut self, store: &Store, run_id: &str) -> Result<Held, DispatchError> {
        let stamp = store.stamp(run_id)?;
        Ok(match self.held.take() {
            Some(h) if h.stamp == stamp && h.rec.run_id == run_id => h,
            _ => {
                let (rec, stamp) = store.load_stamped(run_id)?;
                let digest = digest(&rec);
                Held { rec, stamp, digest }
            }
        })
    }

    /// A step of a run another process drives (in AWS): the record in the bucket, kept here
    /// when it changed; nothing is done to the run.
    async fn follow(
        &mut self,
        store: &Store,
        dispatcher: &mut Dispatcher,
        run_id: &str,
    ) -> Result<&RunRecord, DispatchError> {
        let fetched = dispatcher.fetch_record().await?;
        let _lock = store.lock(run_id)?;
        let mut held = self.take_held(store, run_id)?;
        if let Some(rec) = fetched.filter(|r| r.run_id == run_id) {
            let now = digest(&rec);
            if now != held.digest {
                store.save(&rec)?;
                held = Held {
                    rec,
                    stamp: store.stamp(run_id)?,
                    digest: now,
                };
            }
        }
        Ok(&self.held.insert(held).rec)
    }

    /// Takes up the run from its record in the bucket (this driver just took it over).
    async fn reload(
        &mut self,
        store: &Store,
        dispatcher: &mut Dispatcher,
        run_id: &str,
    ) -> Result<(), DispatchError> {
        self.held = None;
        if let Some(rec) = dispatcher
            .fetch_record()
            .await?
            .filter(|r| r.run_id == run_id)
        {
            let _lock = store.lock(run_id)?;
            store.save(&rec)?;
        }
        Ok(())
    }

    /// The record as the last step left it.
    pub fn into_record(self) -> Option<RunRecord> {
        self.held.map(|h| h.rec)
    }
}

/// A digest of the record as it would be saved, computed without writing it out anywhere.
fn digest(rec: &RunRecord) -> u64 {
    struct Hashing(std::hash::DefaultHasher);
    impl std::io::Write for Hashing {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            std::hash::Hasher::write(&mut self.0, buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut h = Hashing(Default::default());
    serde_json::to_writer(&mut h, rec).expect("records serialise");
    std::hash::Hasher::finish(&h.0)
}

/// The run's end, told once: the first watcher to claim it (here or, for ECS runs, on any
/// machine) sends `[notify]`'s message, and what came of it is kept in the record. Nothing here
/// fails the step or changes the run's outcome. True when the record changed and was saved.
async fn notify_end(store: &Store, dispatcher: &mut Dispatcher, rec: &mut RunRecord) -> bool {
    let Some(spec) = rec.settings.notify.clone() else {
        return false;
    };
    let event = crate::notify::end_event(rec);
    if !spec.wants(event) {
        return false;
    }
    // One claim per end: a run retried after it ended may end (and be told) again.
    let end = rec
        .finished_at
        .map(|t| t.timestamp_millis())
        .unwrap_or_default();
    let name = format!("notified-{}-{end}", event.as_str());
    match dispatcher.claim_once(store, rec, &name).await {
        Ok(true) => {}
        Ok(false) => return false,
        Err(e) => {
            tracing::warn!("cannot claim the notification of run {}: {e}", rec.run_id);
            return false;
        }
    }
    let message = crate::notify::Message::of(rec, event);
    let deliveries = crate::notify::send(&spec, &message).await;
    rec.notifications.extend(deliveries);
    save_after_end(store, dispatcher, rec).await
}

/// Saves what an end step changed (and copies it to the bucket); true when it was saved. Kept
/// in memory when it cannot be: the next step sees the record differ from what was saved.
async fn save_after_end(store: &Store, dispatcher: &mut Dispatcher, rec: &RunRecord) -> bool {
    if let Err(e) = store.save(rec) {
        tracing::warn!("cannot save run {}: {e}", rec.run_id);
        return false;
    }
    if let Err(e) = dispatcher.saved(rec, true).await {
        tracing::warn!("cannot copy run {}: {e}", rec.run_id);
    }
    true
}

/// A finished ECS run's image, let go: its keep tag comes off (`image::keep`), and the
/// repository's lifecycle policy may expire it like any other image. Not being able to is a
/// warning: the tag stays, and the image with it. True when the record changed and was saved.
async fn let_go_of_image(store: &Store, dispatcher: &mut Dispatcher, rec: &mut RunRecord) -> bool {
    let Some(run) = rec.place.ecs() else {
        return false;
    };
    let Some(tag) = run.keep.as_ref().filter(|k| k.held).map(|k| k.tag.clone()) else {
        return false;
    };
    let unheld = async {
        let aws = crate::dispatch::remote::aws_for(run).await?;
        crate::image::keep::unhold(&aws, &rec.image.reference, &tag).await
    };
    if let Err(e) = unheld.await {
        tracing::warn!(
            "cannot take tag {tag} off the image of run {}: {e}",
            rec.run_id
        );
        return false;
    }
    if let Some(keep) = rec.place.ecs_mut().and_then(|run| run.keep.as_mut()) {
        keep.held = false;
    }
    save_after_end(store, dispatcher, rec).await
}

pub async fn watch(
    store: &Store,
    dispatcher: &mut Dispatcher,
    run_id: &str,
    ui: &Ui,
    opts: &WatchOptions,
) -> Result<Ended, DispatchError> {
    let mut view = View::new(ui);
    // Listen for Ctrl-C before the first step starts anything, so an early Ctrl-C still detaches.
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|source| DispatchError::Process {
        what: "a Ctrl-C handler",
        source,
    })?;
    let mut follow = Follow::default();
    loop {
        let rec = follow.step(store, dispatcher, run_id).await?;
        view.update(rec);
        if rec.is_finished() {
            view.finish();
            let rec = follow.into_record().expect("a step holds its record");
            return Ok(Ended::Finished(Box::new(rec)));
        }
        let poll = opts.poll.max(dispatcher.poll_floor(rec));
        tokio::select! {
            _ = dispatcher.changed() => {}
            _ = tokio::time::sleep(poll) => {}
            _ = interrupt.recv(), if opts.detach_on_ctrl_c => {
                view.finish();
                return Ok(Ended::Detached);
            }
        }
    }
}

/// Prints the summary of a finished run.
pub fn print_summary(ui: &Ui, rec: &RunRecord) {
    let status = RunStatus::of(rec).with_failure_tails(5);
    if ui.json() {
        /// The summary as the last JSON line of a watch: the status with `"event": "summary"`.
        #[derive(serde::Serialize)]
        struct Event<'a> {
            event: &'static str,
            #[serde(flatten)]
            status: &'a RunStatus,
        }
        if !ui.quiet {
            crate::ui::out_json(&Event {
                event: "summary",
                status: &status,
            });
        }
    } else {
        ui.emit(&Summary(status));
    }
}

enum Mode {
    Quiet,
    Plain,
    Json,
    Bars(Bars),
}

struct Bars {
    multi: MultiProgress,
    overall: ProgressBar,
    counts: ProgressBar,
    running: ProgressBar,
}

struct View {
    mode: Mode,
    last: HashMap<usize, (TaskState, u32)>,
}

impl View {
    fn new(ui: &Ui) -> View {
        let mode = if ui.quiet {
            Mode::Quiet
        } else if ui.json() {
            Mode::Json
        } else if ui.tty {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(8));
            let overall = multi.add(ProgressBar::new(0));
            overall.set_style(
                ProgressStyle::with_template("{prefix:.bold} [{elapsed_precise}] {bar:40.cyan/blue} {pos}/{len} done · ETA {eta}")
                    .expect("template")
                    .progress_chars("=> "),
            );
            let line = ProgressStyle::with_template("  {wide_msg}").expect("template");
            let counts = multi.add(ProgressBar::new(0));
            counts.set_style(line.clone());
            let running = multi.add(ProgressBar::new(0));
            running.set_style(line);
            overall.enable_steady_tick(Duration::from_millis(250));
            Mode::Bars(Bars {
                multi,
                overall,
                counts,
                running,
            })
        } else {
            Mode::Plain
        };
        View {
            mode,
            last: HashMap::new(),
        }
    }

    fn update(&mut self, rec: &RunRecord) {
        let first = self.last.is_empty();
        let mut changes = vec![];
        for t in &rec.tasks {
            let now = (t.state, t.attempts);
            if self.last.insert(t.index, now) != Some(now) {
                changes.push(t);
            }
        }
        match &self.mode {
            Mode::Quiet => {}
            Mode::Plain if first => {
                // Where the run stands when we attach; after that, one line per change.
                crate::ui::out(format_args!(
                    "{} {}",
                    rec.run_id,
                    RunStatus::of(rec).counts_line()
                ));
                for t in changes
                    .iter()
                    .filter(|t| !matches!(t.state, TaskState::Queued | TaskState::Succeeded))
                {
                    crate::ui::out(format_args!("{} {}", rec.run_id, describe(rec, t)));
                }
            }
            Mode::Plain => {
                for t in changes {
                    crate::ui::out(format_args!("{} {}", rec.run_id, describe(rec, t)));
                }
            }
            Mode::Json => {
                for t in changes {
                    let v = serde_json::json!({
                        "event": "task",
                        "run_id": rec.run_id,
                        "time": chrono::Utc::now(),
                        "index": t.index,
                        "state": t.state,
                        "attempt": t.attempts,
                        "exit_code": t.exit_code,
                        "reason": t.reason,
                    });
                    crate::ui::out(v);
                }
            }
            Mode::Bars(b) => {
                for t in changes.iter().filter(|t| t.state == TaskState::Failed) {
                    // A reason may carry a task's words (a file name): shown, not obeyed
                    // (the other modes print through `ui::out`, which escapes too).
                    let line = describe(rec, t);
                    b.multi
                        .suspend(|| eprintln!("{}", crate::ui::printable(&line, "")));
                }
                let s = RunStatus::of(rec);
                b.overall.set_prefix(rec.run_id.clone());
                b.overall.set_length(s.total as u64);
                b.overall
                    .set_position((s.succeeded + s.failed + s.cancelled) as u64);
                b.counts.set_message(s.counts_line());
                let now = chrono::Utc::now();
                let mut running: Vec<String> = rec
                    .tasks
                    .iter()
                    .filter(|t| t.state == TaskState::Running)
                    .map(|t| {
                        let age = t
                            .started_at
                            .map_or(0.0, |s| crate::record::secs_between(s, now));
                        format!("#{} {}", t.index, secs(age))
                    })
                    .collect();
                if running.len() > 12 {
                    let more = running.len() - 12;
                    running.truncate(12);
                    running.push(format!("+{more} more"));
                }
                b.running
                    .set_message(format!("running: {}", running.join(", ")));
            }
        }
    }

    fn finish(&self) {
        if let Mode::Bars(b) = &self.mode {
            b.overall.finish_and_clear();
            b.counts.finish_and_clear();
            b.running.finish_and_clear();
            let _ = b.multi.clear();
        }
    }
}

fn describe(rec: &RunRecord, t: &crate::record::TaskRecord) -> String {
    let max = rec.settings.max_attempts;
    let mut s = format!("{} {}", t.label(), t.state.as_str());
    match t.state {
        TaskState::Running => s.push_str(&format!(" (attempt {}/{max})", t.attempts)),
        TaskState::Succeeded => {
            if let (Some(a), Some(b)) = (t.started_at, t.finished_at) {
                s.push_str(&format!(" in {}", secs(crate::record::secs_between(a, b))));
            }
        }
        _ => {
            if let Some(r) = &t.reason {
                s.push_str(&format!(": {r}"));
            }
        }
    }
    s
}
