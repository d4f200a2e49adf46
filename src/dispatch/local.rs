//! The local dispatcher: each task is one container on the local Docker engine.
//!
//! Containers are named `jobrun-<run>-<index>-<attempt>` and labelled with run, job, index and
//! attempt, so starting the same attempt twice is impossible (the name is taken) and any process
//! can find a run's containers again. A finished container's exit code, times and output are
//! saved to the run record and its log file before the container is removed.

use crate::dispatch::{DispatchError, FailKind, fail_attempt, stop_due, timed_out};
use crate::engine::{Engine, EngineError, LABEL_ATTEMPT, LABEL_INDEX, LABEL_JOB, LABEL_RUN};
use crate::outputs::{self, CONTAINER_INPUTS, CONTAINER_OUTPUT, ResultRead};
use crate::record::{RunRecord, RunSettings, Stage, StopRequest, TaskRecord, TaskState};
use crate::store::Store;
use bollard::models::{
    ContainerCreateBody, ContainerSummaryStateEnum, HostConfig, Mount, MountType,
};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

pub struct LocalDispatcher {
    engine: Engine,
    waiting: HashSet<String>,
    tx: mpsc::UnboundedSender<()>,
    rx: mpsc::UnboundedReceiver<()>,
}

struct Seen {
    name: String,
    index: usize,
    attempt: u32,
    state: ContainerSummaryStateEnum,
    created: Option<i64>,
}

pub fn container_name(run_id: &str, index: usize, attempt: u32) -> String {
    format!("jobrun-{run_id}-{index}-{attempt}")
}

fn parse_time(s: Option<&str>) -> Option<DateTime<Utc>> {
    let t = DateTime::parse_from_rfc3339(s?).ok()?.with_timezone(&Utc);
    (t.timestamp() > 0).then_some(t)
}

/// Takes over a container the record does not know as running (a jobrun died before it wrote
/// the record).
fn adopt(task: &mut TaskRecord, c: &Seen, now: DateTime<Utc>) {
    if c.attempt > task.attempts || task.state != TaskState::Running {
        let since = c.created.and_then(|s| DateTime::from_timestamp(s, 0));
        task.start(c.attempt, c.name.clone(), since.unwrap_or(now));
    }
}

/// The engine's refusal to create or start a container (bad command, missing image, invalid
/// limits) fails the attempt; anything else (engine unreachable) is an error of jobrun's own.
fn refused(e: &EngineError) -> Option<String> {
    match e {
        EngineError::CreateContainer { source, .. }
        | EngineError::StartContainer { source, .. } => match source {
            bollard::errors::Error::DockerResponseServerError { message, .. } => {
                Some(format!("could not start: {}", message.trim()))
            }
            _ => None,
        },
        _ => None,
    }
}

impl LocalDispatcher {
    pub async fn connect() -> Result<LocalDispatcher, DispatchError> {
        Ok(Self::new(Engine::connect().await?))
    }

    pub fn new(engine: Engine) -> LocalDispatcher {
        let (tx, rx) = mpsc::unbounded_channel();
        LocalDispatcher {
            engine,
            waiting: HashSet::new(),
            tx,
            rx,
        }
    }

    pub async fn changed(&mut self) {
        if self.rx.recv().await.is_some() {
            while self.rx.try_recv().is_ok() {}
        }
    }

    fn watch_container(&mut self, name: &str) {
        if self.waiting.insert(name.to_string()) {
            let wait = self.engine.wait_container(name);
            let tx = self.tx.clone();
            tokio::spawn(async move {
                wait.await;
                let _ = tx.send(());
            });
        }
    }

    async fn list(&self, run_id: &str) -> Result<Vec<Seen>, DispatchError> {
        let containers = self.engine.list_by_label(LABEL_RUN, run_id).await?;
        Ok(containers
            .into_iter()
            .filter_map(|c| {
                let labels = c.labels.as_ref()?;
                Some(Seen {
                    name: c
                        .names
                        .as_ref()?
                        .first()?
                        .trim_start_matches('/')
                        .to_string(),
                    index: labels.get(LABEL_INDEX)?.parse().ok()?,
                    attempt: labels.get(LABEL_ATTEMPT)?.parse().ok()?,
                    state: c.state.unwrap_or(ContainerSummaryStateEnum::EMPTY),
                    created: c.created,
                })
            })
            .collect())
    }

    /// See [`Dispatcher::reconcile`](super::Dispatcher::reconcile). Returns the containers to remove
    /// once the record is saved.
    pub async fn reconcile(
        &mut self,
        rec: &mut RunRecord,
        store: &Store,
    ) -> Result<Vec<String>, DispatchError> {
        let now = Utc::now();
        let seen = self.list(&rec.run_id).await?;
        let Sorted {
            live,
            finished,
            mut discard,
        } = self.sort_seen(rec, seen, now).await?;
        // Record the outcome of finished containers first, so freed slots can be refilled
        // before the slower log copy and removal.
        let collect = self.collect_finished(rec, finished, store, now).await?;
        // Tasks the record thinks are running but whose container is gone (removed by hand).
        lost_containers(rec, &live, &collect, now);
        if rec.cancel_requested {
            super::cancel_queued(rec);
        } else {
            let run_dir = store.run_dir(&rec.run_id);
            self.start_queued(rec, live.len(), &run_dir, &mut discard)
                .await?;
        }
        let mut release = discard;
        for (name, log_path) in collect {
            self.save_logs(&name, &log_path).await?;
            release.push(name);
        }
        Ok(release)
    }

    /// Adopts, starts, stops or sets aside each container of the run, by its state.
    async fn sort_seen(
        &mut self,
        rec: &mut RunRecord,
        seen: Vec<Seen>,
        now: DateTime<Utc>,
    ) -> Result<Sorted, DispatchError> {
        use ContainerSummaryStateEnum as S;
        let mut live: HashSet<usize> = HashSet::new();
        let mut finished = vec![];
        // Containers that never ran: removed with the record saved, no logs to keep.
        let mut discard = vec![];
        for c in seen {
            let Some(task) = rec.tasks.get_mut(c.index) else {
                self.engine.remove_container(&c.name).await?;
                continue;
            };
            let current = !task.state.is_terminal() && c.attempt >= task.attempts;
            match c.state {
                // Created but never started: a jobrun died between create and start.
                S::CREATED if current && !rec.cancel_requested => {
                    adopt(task, &c, now);
                    match self.engine.start_container(&c.name).await {
                        Ok(()) => {
                            live.insert(c.index);
                            self.watch_container(&c.name);
                        }
                        Err(e) => {
                            let reason = refused(&e).ok_or(e)?;
                            task.finished_at = Some(now);
                            let kind = FailKind::Other;
                            fail_attempt(task, c.attempt, reason, kind, &rec.settings, false);
                            discard.push(c.name.clone());
                        }
                    }
                }
                S::CREATED => {
                    if current {
                        task.cancel("cancelled before it started", now);
                    }
                    discard.push(c.name.clone());
                }
                S::RUNNING | S::PAUSED | S::RESTARTING if current => {
                    adopt(task, &c, now);
                    live.insert(c.index);
                    if let Some(stop) = stop_due(task, &rec.settings, rec.cancel_requested, now) {
                        task.stop_request.get_or_insert(stop);
                        self.engine.kill_container(&c.name).await?;
                    }
                    self.watch_container(&c.name);
                }
                S::RUNNING | S::PAUSED | S::RESTARTING => {
                    // A container of an attempt the record has moved past: stop it and let the
                    // next pass collect it.
                    self.engine.kill_container(&c.name).await?;
                    self.watch_container(&c.name);
                }
                _ => finished.push(c),
            }
        }

        Ok(Sorted {
            live,
            finished,
            discard,
        })
    }

    /// Writes the outcome of each finished container into its task; returns the containers
    /// whose logs are to be copied (and then removed).
    async fn collect_finished(
        &mut self,
        rec: &mut RunRecord,
        finished: Vec<Seen>,
        store: &Store,
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, PathBuf)>, DispatchError> {
        let mut collect = vec![];
        for c in finished {
            let inspect = self.engine.inspect_container(&c.name).await?;
            let created = parse_time(inspect.created.as_deref());
            let state = inspect.state.unwrap_or_default();
            let task = &mut rec.tasks[c.index];
            let log_path = store.log_path(&rec.run_id, c.index, c.attempt);
            if !task.state.is_terminal() && c.attempt >= task.attempts {
                let code = state.exit_code.unwrap_or(-1);
                task.attempts = c.attempt;
                task.exit_code = Some(code);
                task.started_at = parse_time(state.started_at.as_deref()).or(task.started_at);
                task.finished_at = parse_time(state.finished_at.as_deref()).or(Some(now));
                task.bill_span(c.attempt, task.started_at, task.finished_at, false);
                task.log = Some(log_path.to_string_lossy().into_owned());
                task.handle = None;
                let run_dir = store.run_dir(&rec.run_id);
                let read = outputs::read_result(&outputs::local_dir(&run_dir, task));
                let (kept, refused) = read.map_or((None, None), ResultRead::split);
                task.set_result(kept);
                let stop = task.stop_request.take();
                let (outcome, reason, kind) =
                    outcome_of(stop, code, refused, &state, &rec.settings);
                // Locally: the container's creation, start and end, and how it ended.
                let seen = crate::record::Timeline {
                    created_at: created,
                    started_at: task.started_at,
                    stopped_at: task.finished_at,
                    exit_code: Some(code),
                    reason: reason.clone(),
                    ..Default::default()
                };
                task.saw(c.attempt, &seen);
                match outcome {
                    TaskState::Failed => {
                        let reason = reason.unwrap_or_else(|| "failed".into());
                        let cancelling = rec.cancel_requested;
                        fail_attempt(task, c.attempt, reason, kind, &rec.settings, cancelling);
                    }
                    TaskState::Cancelled => {
                        let at = task.finished_at.unwrap_or(now);
                        task.cancel(reason.unwrap_or_else(|| "cancelled".into()), at);
                    }
                    _ => task.succeed(task.finished_at.unwrap_or(now)),
                }
            }
            collect.push((c.name, log_path));
        }

        Ok(collect)
    }

    /// Removes containers whose outcome and logs are saved in the record.
    pub async fn release(&mut self, names: Vec<String>) -> Result<(), DispatchError> {
        for name in names {
            self.engine.remove_container(&name).await?;
            self.waiting.remove(&name);
        }
        Ok(())
    }

    /// Starts queued tasks into free slots. Containers the engine created but would not start
    /// go to `discard`.
    async fn start_queued(
        &mut self,
        rec: &mut RunRecord,
        running: usize,
        run_dir: &Path,
        discard: &mut Vec<String>,
    ) -> Result<(), DispatchError> {
        let slots = rec.settings.concurrency.saturating_sub(running);
        let picks: Vec<usize> = rec.startable().take(slots).map(|t| t.index).collect();
        if picks.is_empty() {
            return Ok(());
        }
        let mut bodies = Vec::with_capacity(picks.len());
        for &i in &picks {
            bodies.push(container_body(rec, i, run_dir)?);
        }
        let host_cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1) as f64;
        let starts = picks.iter().zip(bodies).map(|(&i, mut body)| {
            let attempt = rec.tasks[i].attempts + 1;
            let name = container_name(&rec.run_id, i, attempt);
            // The task's size: the run's, or bigger after an out-of-memory kill.
            let size = super::size_of(&rec.tasks[i], &rec.settings);
            if let Some(host) = body.host_config.as_mut() {
                host.memory = Some(size.memory_mib as i64 * 1024 * 1024);
                // No swap beyond it: the limit is the task's memory, as on Fargate.
                host.memory_swap = host.memory;
                host.nano_cpus = Some((size.cpu.min(host_cpus) * 1e9) as i64);
            }
            let engine = self.engine.clone();
            async move {
                let started = match engine.create_container(&name, body).await {
                    Ok(()) => engine.start_container(&name).await,
                    Err(e) => Err(e),
                };
                (i, attempt, name, started)
            }
        });
        let results = futures_util::future::join_all(starts).await;
        let now = Utc::now();
        let mut first_error = None;
        for (i, attempt, name, started) in results {
            let task = &mut rec.tasks[i];
            match started {
                Ok(()) => {
                    task.start(attempt, name.clone(), now);
                    self.watch_container(&name);
                }
                Err(e) => match refused(&e) {
                    // The engine said no (bad command, invalid limits): this attempt failed.
                    Some(reason) => {
                        task.exit_code = None;
                        task.started_at = Some(now);
                        task.finished_at = Some(now);
                        let cancelling = rec.cancel_requested;
                        let kind = FailKind::Other;
                        fail_attempt(task, attempt, reason, kind, &rec.settings, cancelling);
                        discard.push(name);
                    }
                    None => {
                        first_error.get_or_insert(e);
                    }
                },
            }
        }
        match first_error {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    async fn save_logs(&self, name: &str, path: &std::path::Path) -> Result<(), DispatchError> {
        let log_err = |source| DispatchError::StateFile {
            path: path.to_path_buf(),
            source,
        };
        let mut file = std::fs::File::create(path).map_err(log_err)?;
        let mut logs = Box::pin(self.engine.logs(name, false));
        while let Some(chunk) = logs.next().await {
            file.write_all(&chunk?).map_err(log_err)?;
        }
        file.sync_all().map_err(log_err)
    }

    pub async fn logs(
        &self,
        rec: &RunRecord,
        index: usize,
        follow: bool,
        out: &mut (dyn Write + Send),
    ) -> Result<(), DispatchError> {
        let task = &rec.tasks[index];
        let io_err = |source| DispatchError::Process {
            what: "standard output",
            source,
        };
        if let (TaskState::Running, Some(name)) = (task.state, &task.handle) {
            let mut logs = Box::pin(self.engine.logs(name, follow));
            while let Some(chunk) = logs.next().await {
                out.write_all(&chunk?).map_err(io_err)?;
                out.flush().map_err(io_err)?;
            }
            return Ok(());
        }
        if let Some(path) = &task.log {
            let bytes = std::fs::read(path).map_err(|source| DispatchError::StateFile {
                path: path.into(),
                source,
            })?;
            out.write_all(&bytes).map_err(io_err)?;
        }
        Ok(())
    }
}

/// The container of a queued task's next attempt (without its limits): the job's command and
/// `JOBRUN_*` environment, its labels, and its output folder (emptied for the new attempt)
/// mounted at `JOBRUN_OUTPUT_DIR`; the reduce also gets every map task's folder, read-only.
fn container_body(
    rec: &RunRecord,
    i: usize,
    run_dir: &Path,
) -> Result<ContainerCreateBody, DispatchError> {
    let task = &rec.tasks[i];
    let attempt = task.attempts + 1;
    let folder_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DispatchError::StateFile { path, source }
    };
    let out = outputs::local_dir(run_dir, task);
    outputs::fresh_dir(&out).map_err(folder_err(&out))?;
    let mut mounts = vec![bind(&out, CONTAINER_OUTPUT, false)];
    let mut env: Vec<String> = rec
        .settings
        .env
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    env.extend(
        super::task_env(rec, i, attempt)
            .into_iter()
            .map(|(k, v)| format!("{k}={v}")),
    );
    env.push(format!("JOBRUN_CONFIG={}", task.config));
    env.push(format!("JOBRUN_OUTPUT_DIR={CONTAINER_OUTPUT}"));
    let mut image = rec.image.id.clone();
    if task.stage == Stage::Reduce {
        let inputs = outputs::local_inputs(run_dir);
        for t in rec.tasks.iter().filter(|t| t.stage == Stage::Map) {
            let dir = outputs::local_dir(run_dir, t);
            std::fs::create_dir_all(&dir).map_err(folder_err(&dir))?;
        }
        mounts.push(bind(&inputs, CONTAINER_INPUTS, true));
        env.push(format!("JOBRUN_INPUTS_DIR={CONTAINER_INPUTS}"));
        if let Some(other) = rec.settings.reduce.as_ref().and_then(|r| r.image.clone()) {
            image = other;
        }
    }
    let labels = HashMap::from([
        (LABEL_RUN.to_string(), rec.run_id.clone()),
        (LABEL_JOB.to_string(), rec.job.clone()),
        (LABEL_INDEX.to_string(), i.to_string()),
        (LABEL_ATTEMPT.to_string(), attempt.to_string()),
    ]);
    Ok(ContainerCreateBody {
        image: Some(image),
        cmd: task.command.clone(),
        env: Some(env),
        labels: Some(labels),
        host_config: Some(HostConfig {
            mounts: Some(mounts),
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn bind(source: &Path, target: &str, read_only: bool) -> Mount {
    Mount {
        source: Some(source.to_string_lossy().into_owned()),
        target: Some(target.into()),
        typ: Some(MountType::BIND),
        read_only: Some(read_only),
        ..Default::default()
    }
}

/// The run's containers, sorted by what happens to them next.
struct Sorted {
    live: HashSet<usize>,
    finished: Vec<Seen>,
    discard: Vec<String>,
}

/// A finished attempt's outcome: the stop jobrun asked for, else its exit (a success whose
/// result.json is a link or a special file fails, saying so).
fn outcome_of(
    stop: Option<StopRequest>,
    code: i64,
    refused: Option<String>,
    state: &bollard::models::ContainerState,
    settings: &RunSettings,
) -> (TaskState, Option<String>, FailKind) {
    match stop {
        Some(StopRequest::Timeout) => (
            TaskState::Failed,
            Some(timed_out(settings)),
            FailKind::Other,
        ),
        Some(StopRequest::Cancel) => (
            TaskState::Cancelled,
            Some("cancelled".to_string()),
            FailKind::Other,
        ),
        None if code == 0 => match refused {
            Some(why) => (TaskState::Failed, Some(why), FailKind::Other),
            None => (TaskState::Succeeded, None, FailKind::Other),
        },
        None if state.oom_killed == Some(true) => (
            TaskState::Failed,
            Some(format!("out of memory (exit code {code})")),
            FailKind::OutOfMemory,
        ),
        None => (
            TaskState::Failed,
            Some(format!("exit code {code}")),
            FailKind::Exit(code),
        ),
    }
}

/// Running tasks whose container is gone (removed outside jobrun): interrupted.
fn lost_containers(
    rec: &mut RunRecord,
    live: &HashSet<usize>,
    collect: &[(String, PathBuf)],
    now: DateTime<Utc>,
) {
    let RunRecord {
        tasks,
        settings,
        cancel_requested,
        ..
    } = rec;
    for task in tasks.iter_mut().filter(|t| t.state == TaskState::Running) {
        if !live.contains(&task.index)
            && !collect.iter().any(|(n, _)| Some(n) == task.handle.as_ref())
        {
            let attempt = task.attempts;
            let reason = "its container was removed outside jobrun".to_string();
            let kind = FailKind::Interrupted;
            task.finished_at = Some(now);
            fail_attempt(task, attempt, reason, kind, settings, *cancel_requested);
        }
    }
}
