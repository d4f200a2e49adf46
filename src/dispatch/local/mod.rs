//! The local dispatcher: each task is one container on the local Docker engine.
//!
//! Containers are named `jobrun-<run>-<index>-<attempt>` and labelled with run, job, index and
//! attempt, so starting the same attempt twice is impossible (the name is taken) and any process
//! can find a run's containers again. The record that says which attempt of a task is starting
//! is saved before its container is created, so nothing starts that the record does not know of
//! (a state folder that cannot be written, a full disk: nothing starts at all); the attempt stays
//! "starting" until its container is seen, so a jobrun stopped in between makes that same
//! container again instead of counting an attempt. A finished container's end (exit code, times)
//! and output are both read, into its log file and then the run record, before the container is
//! removed; a container that vanished first (removed by hand, a prune) was that attempt's
//! interruption, retried while attempts remain. What each container uses (its peak memory, its
//! CPU time) is read from the engine's stats while it runs and kept with its attempt's bill.

mod outcome;
mod watching;

use crate::dispatch::{DispatchError, FailKind, SaveFirst, fail_attempt, stop_due};
use crate::engine::{Engine, EngineError, LABEL_ATTEMPT, LABEL_INDEX, LABEL_JOB, LABEL_RUN};
use crate::outputs::{self, CONTAINER_CHECKPOINT, CONTAINER_INPUTS, CONTAINER_OUTPUT};
use crate::record::{RunRecord, Stage, TaskRecord, TaskState};
use crate::store::Store;
use crate::usage::Measured;
use bollard::models::{
    ContainerCreateBody, ContainerSummaryStateEnum, HostConfig, Mount, MountType,
};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use outcome::{interrupted, lost_containers, record_outcome};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use watching::{checkpoint_dir, has_checkpoint};

pub struct LocalDispatcher {
    engine: Engine,
    waiting: HashSet<String>,
    /// What each watched container used so far, from the engine's stats.
    measured: Arc<Mutex<HashMap<String, Measured>>>,
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

/// The phase of a running task whose record says its attempt is starting: saved before its
/// container is created, so the container may not exist (yet); cleared when it is seen.
const STARTING: &str = "starting";

fn is_starting(task: &TaskRecord) -> bool {
    task.state == TaskState::Running && task.phase.as_deref() == Some(STARTING)
}

/// How many times one pass makes again a container that vanished between its create and its
/// start.
const REMAKES: u64 = 4;

/// Takes over the container of a task's current attempt: one the record does not know as
/// running (a jobrun died before it wrote the record), or knows only as starting (its start
/// time is then the container's).
fn adopt(task: &mut TaskRecord, c: &Seen, now: DateTime<Utc>) {
    if c.attempt > task.attempts || task.state != TaskState::Running || is_starting(task) {
        let since = c.created.and_then(|s| DateTime::from_timestamp(s, 0));
        task.start(c.attempt, c.name.clone(), since.unwrap_or(now));
    }
    // Its container is there: the attempt has started.
    task.phase = None;
}

/// The engine's refusal to create or start a container (bad command, missing image, invalid
/// limits) fails the attempt; anything else (engine unreachable) is an error of jobrun's own.
fn refused(e: &EngineError) -> Option<String> {
    match e {
        EngineError::CreateContainer { source, .. }
        | EngineError::StartContainer { source, .. } => match source {
            bollard::errors::Error::DockerResponseServerError { message, .. } => {
                Some(match missing_command(message) {
                    Some(path) => format!(
                        "run.command: {path} is not in the image (check the command's path, or the Dockerfile's COPY)"
                    ),
                    None => format!("could not start: {}", message.trim()),
                })
            }
            _ => None,
        },
        _ => None,
    }
}

/// The program a start failed to find in the image. The engine answers 400 with runc's own
/// words and no code: `exec: "/wordcount-typo": stat /wordcount-typo: no such file or
/// directory`, or `exec: "trian.py": executable file not found in $PATH`.
fn missing_command(message: &str) -> Option<String> {
    let rest = &message[message.find("exec: \"")? + "exec: \"".len()..];
    let (path, after) = rest.split_once('"')?;
    (after.contains("no such file or directory") || after.contains("executable file not found"))
        .then(|| crate::ui::printable(path, "").into_owned())
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
            measured: Default::default(),
            tx,
            rx,
        }
    }

    pub async fn changed(&mut self) {
        if self.rx.recv().await.is_some() {
            while self.rx.try_recv().is_ok() {}
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
    /// once the record is saved; `save_first` saves the tasks about to start before they do.
    pub async fn reconcile(
        &mut self,
        rec: &mut RunRecord,
        store: &Store,
        save_first: &mut SaveFirst<'_>,
    ) -> Result<Vec<String>, DispatchError> {
        let now = Utc::now();
        let seen = self.list(&rec.run_id).await?;
        let Sorted {
            live,
            finished,
            mut discard,
        } = self.sort_seen(rec, seen, now).await?;
        let mut release = self.collect_finished(rec, finished, store, now).await?;
        // Tasks the record thinks are running but whose container is gone (removed by hand).
        lost_containers(rec, &live, now);
        if rec.cancel_requested {
            super::cancel_queued(rec);
        } else {
            let run_dir = store.run_dir(&rec.run_id);
            self.start_tasks(rec, &live, &run_dir, &mut discard, save_first)
                .await?;
        }
        release.append(&mut discard);
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
                    match self.engine.start_container(&c.name).await {
                        Ok(()) => {
                            adopt(task, &c, now);
                            live.insert(c.index);
                            self.watch_container(&c.name);
                        }
                        // Gone since it was listed (a killed jobrun's create the engine undid):
                        // the task's attempt is made again below, as if it had never been.
                        Err(e) if e.container_gone() => {}
                        Err(e) => {
                            let reason = refused(&e).ok_or(e)?;
                            adopt(task, &c, now);
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

    /// Reads each finished container — its end, then its log into the run's logs folder — and
    /// only then writes the outcome into its task, so an outcome never lacks its log; one that
    /// vanished before both were read was that attempt's interruption. Returns the containers
    /// read, to remove once the record is saved.
    async fn collect_finished(
        &mut self,
        rec: &mut RunRecord,
        finished: Vec<Seen>,
        store: &Store,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, DispatchError> {
        let this = &*self;
        let reads = finished.iter().map(|c| {
            let log_path = store.log_path(&rec.run_id, c.index, c.attempt);
            async move {
                let inspect = this.engine.inspect_container(&c.name).await?;
                this.save_logs(&c.name, &log_path).await?;
                Ok::<_, DispatchError>((inspect, log_path))
            }
        });
        let reads = futures_util::future::join_all(reads).await;
        let mut collected = vec![];
        let mut first_error = None;
        for (c, read) in finished.into_iter().zip(reads) {
            let task = &rec.tasks[c.index];
            let current = !task.state.is_terminal() && c.attempt >= task.attempts;
            match read {
                Ok((inspect, log_path)) => {
                    if current {
                        record_outcome(rec, &c, inspect, &log_path, store, now);
                        let used = self.measured.lock().expect("not poisoned").remove(&c.name);
                        rec.tasks[c.index].measured(c.attempt, used);
                    }
                    collected.push(c.name);
                }
                Err(DispatchError::Engine(e)) if e.container_gone() => {
                    if current {
                        interrupted(rec, c.index, c.attempt, now);
                    }
                    self.waiting.remove(&c.name);
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(collected),
        }
    }

    /// Removes containers whose outcome and logs are saved in the record.
    pub async fn release(&mut self, names: Vec<String>) -> Result<(), DispatchError> {
        for name in names {
            self.engine.remove_container(&name).await?;
            self.waiting.remove(&name);
        }
        Ok(())
    }

    /// Starts tasks into the free slots: those the record says are starting whose container is
    /// not there, then queued ones. Which attempt of which task is starting is saved
    /// (`save_first`) before any container is created; when it cannot be, nothing starts.
    /// Containers the engine created but would not start go to `discard`.
    async fn start_tasks(
        &mut self,
        rec: &mut RunRecord,
        live: &HashSet<usize>,
        run_dir: &Path,
        discard: &mut Vec<String>,
        save_first: &mut SaveFirst<'_>,
    ) -> Result<(), DispatchError> {
        let starting = mark_starting(rec, live, save_first)?;
        if starting.is_empty() {
            return Ok(());
        }
        let mut bodies = Vec::with_capacity(starting.len());
        for &i in &starting {
            bodies.push(container_body(rec, i, run_dir)?);
            let attempt = rec.tasks[i].attempts;
            if attempt > 1 && has_checkpoint(run_dir, i) {
                rec.tasks[i].resumed_from_checkpoint(attempt, 1);
            }
        }
        let host_cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1) as f64;
        let starts = starting.iter().zip(bodies).map(|(&i, mut body)| {
            let attempt = rec.tasks[i].attempts;
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
                let started = create_and_start(&engine, &name, body).await;
                (i, attempt, name, started)
            }
        });
        let results = futures_util::future::join_all(starts).await;
        let now = Utc::now();
        let mut first_error = None;
        for (i, attempt, name, started) in results {
            let task = &mut rec.tasks[i];
            match started {
                Ok(true) => self.watch_container(&name),
                // Still not there: the task stays starting, and the next pass makes it again.
                Ok(false) => {}
                Err(e) => match refused(&e) {
                    // The engine said no (bad command, invalid limits): this attempt failed.
                    Some(reason) => {
                        task.exit_code = None;
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

    /// Copies a container's log to `path`, through a temporary file beside it: a log saved
    /// before is never cut short by a copy that fails (its container removed half way).
    async fn save_logs(&self, name: &str, path: &Path) -> Result<(), DispatchError> {
        let log_err = |source| DispatchError::StateFile {
            path: path.to_path_buf(),
            source,
        };
        let dir = path.parent().expect("a log is in the run's logs folder");
        let mut file = tempfile::NamedTempFile::new_in(dir).map_err(log_err)?;
        let mut logs = Box::pin(self.engine.logs(name, false));
        while let Some(chunk) = logs.next().await {
            file.write_all(&chunk?).map_err(log_err)?;
        }
        file.as_file().sync_all().map_err(log_err)?;
        file.persist(path).map_err(|e| log_err(e.error))?;
        Ok(())
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
                let chunk = match chunk {
                    Ok(chunk) => chunk,
                    // Its container is not there yet (the start is under way: the record is
                    // saved first) or any more: there is no live log to show.
                    Err(e) if e.container_gone() => break,
                    Err(e) => return Err(e.into()),
                };
                out.write_all(&chunk).map_err(io_err)?;
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

/// The container of a starting task's attempt (without its limits): the job's command and
/// `JOBRUN_*` environment, its labels, and its output folder (emptied for the new attempt)
/// mounted at `JOBRUN_OUTPUT_DIR`; the reduce also gets every map task's folder, read-only.
fn container_body(
    rec: &RunRecord,
    i: usize,
    run_dir: &Path,
) -> Result<ContainerCreateBody, DispatchError> {
    let task = &rec.tasks[i];
    let attempt = task.attempts;
    let folder_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DispatchError::StateFile { path, source }
    };
    let out = outputs::local_dir(run_dir, task);
    outputs::fresh_dir(&out).map_err(folder_err(&out))?;
    let checkpoint = checkpoint_dir(run_dir, i);
    std::fs::create_dir_all(&checkpoint).map_err(folder_err(&checkpoint))?;
    let mut mounts = vec![
        bind(&out, CONTAINER_OUTPUT, false),
        bind(&checkpoint, CONTAINER_CHECKPOINT, false),
    ];
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
    env.push(format!("JOBRUN_CHECKPOINT_DIR={CONTAINER_CHECKPOINT}"));
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
            device_requests: crate::engine::gpu_request(rec.settings.gpu),
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

/// The tasks to start in this pass, each as starting its attempt: first those the record says
/// are starting whose container is not there, then queued ones into the free slots. The
/// queued ones are saved as starting (`save_first`) before anything else is done; when that
/// fails they are put back as they were, and nothing starts.
fn mark_starting(
    rec: &mut RunRecord,
    live: &HashSet<usize>,
    save_first: &mut SaveFirst<'_>,
) -> Result<Vec<usize>, DispatchError> {
    // Saved as starting, but no container: the jobrun that saved it stopped before its create
    // got through (or the engine undid it). The same attempt is made again under the same
    // name, which keeps it to one container: if the first create got through after all, this
    // create finds the name taken and starts that container; if it has run already, the
    // listing found it and it is adopted or collected, not made again. The attempt count
    // moves only with an outcome, so the task is neither lost nor run twice (unless someone
    // removes its container before it is seen).
    let again: Vec<usize> = rec
        .tasks
        .iter()
        .filter(|t| is_starting(t) && !live.contains(&t.index))
        .map(|t| t.index)
        .collect();
    let now = Utc::now();
    for &i in &again {
        rec.tasks[i].started_at = Some(now);
    }
    let slots = rec
        .settings
        .concurrency
        .saturating_sub(live.len() + again.len());
    let picks: Vec<usize> = rec.startable().take(slots).map(|t| t.index).collect();
    if picks.is_empty() {
        return Ok(again);
    }
    let queued: Vec<TaskRecord> = picks.iter().map(|&i| rec.tasks[i].clone()).collect();
    for &i in &picks {
        let name = container_name(&rec.run_id, i, rec.tasks[i].attempts + 1);
        let task = &mut rec.tasks[i];
        task.start(task.attempts + 1, name, now);
        task.phase = Some(STARTING.into());
    }
    if let Err(e) = save_first(rec) {
        for task in queued {
            let i = task.index;
            rec.tasks[i] = task;
        }
        return Err(e.into());
    }
    Ok(again.into_iter().chain(picks).collect())
}

/// Creates and starts one attempt's container; false when it is still not there after a few
/// tries. The create takes a name already taken as this attempt's container, made by a jobrun
/// killed in its create, which the engine may still be making or undoing: the start then finds
/// no container (404) or one being removed (409), and it is made again after a moment.
async fn create_and_start(
    engine: &Engine,
    name: &str,
    body: ContainerCreateBody,
) -> Result<bool, EngineError> {
    for remake in 0..REMAKES {
        if remake > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(100 * remake)).await;
        }
        engine.create_container(name, body.clone()).await?;
        match engine.start_container(name).await {
            Ok(()) => return Ok(true),
            Err(e) if e.container_gone() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::tests::record;

    /// `[resources] gpu = 2`: the container asks the engine for two GPUs as `--gpus 2` does;
    /// without it, for none.
    #[test]
    fn a_gpu_job_s_container_asks_for_its_gpus() {
        let dir = tempfile::tempdir().unwrap();
        let mut rec = record("r", "j");
        rec.tasks = vec![TaskRecord::new(0, serde_json::json!({}), None)];
        rec.tasks[0].start(
            1,
            container_name("r", 0, 1),
            DateTime::from_timestamp(1, 0).unwrap(),
        );
        let none = container_body(&rec, 0, dir.path()).unwrap();
        assert_eq!(none.host_config.unwrap().device_requests, None);
        rec.settings.gpu = 2;
        let body = container_body(&rec, 0, dir.path()).unwrap();
        let asked = body.host_config.unwrap().device_requests.unwrap();
        assert_eq!(asked.len(), 1);
        assert_eq!(asked[0].count, Some(2));
        assert_eq!(asked[0].capabilities, Some(vec![vec!["gpu".to_string()]]));
    }

    /// A running task without a container: one only starting waits to be made again (or is
    /// cancelled with its run), one that had started lost it (an interrupted attempt, retried);
    /// once its container is seen, a starting task has started when the container was made.
    #[test]
    fn a_task_without_a_container_was_interrupted_only_if_it_had_started() {
        let t0 = DateTime::from_timestamp(1_000, 0).unwrap();
        let now = DateTime::from_timestamp(2_000, 0).unwrap();
        let mut rec = record("r", "j");
        rec.settings.max_attempts = 2;
        rec.tasks = (0..3)
            .map(|i| TaskRecord::new(i, serde_json::json!({"index": i}), None))
            .collect();
        for task in &mut rec.tasks {
            task.start(1, container_name("r", task.index, 1), t0);
        }
        rec.tasks[0].phase = Some(STARTING.into());
        lost_containers(&mut rec, &HashSet::from([2]), now);
        let [starting, lost, live] = &rec.tasks[..] else {
            panic!("three tasks")
        };
        assert!(
            is_starting(starting) && starting.attempts == 1,
            "{starting:?}"
        );
        assert_eq!((lost.state, lost.attempts), (TaskState::Queued, 1));
        assert_eq!(
            lost.reason.as_deref(),
            Some("attempt 1 its container was removed outside jobrun; retrying")
        );
        assert_eq!(live.state, TaskState::Running);

        let seen = Seen {
            name: container_name("r", 0, 1),
            index: 0,
            attempt: 1,
            state: ContainerSummaryStateEnum::RUNNING,
            created: Some(1_500),
        };
        let mut adopted = rec.clone();
        adopt(&mut adopted.tasks[0], &seen, now);
        let task = &adopted.tasks[0];
        assert_eq!(
            (task.state, task.attempts, task.phase.as_deref()),
            (TaskState::Running, 1, None)
        );
        assert_eq!(task.started_at, DateTime::from_timestamp(1_500, 0));

        rec.cancel_requested = true;
        lost_containers(&mut rec, &HashSet::from([2]), now);
        let task = &rec.tasks[0];
        assert_eq!(task.state, TaskState::Cancelled);
        assert_eq!(task.reason.as_deref(), Some("cancelled before it started"));
    }

    #[test]
    fn a_command_missing_from_the_image_is_named() {
        let runc = "failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: exec: \"/wordcount-typo\": stat /wordcount-typo: no such file or directory: unknown";
        assert_eq!(missing_command(runc).as_deref(), Some("/wordcount-typo"));
        let path = "exec: \"trian.py\": executable file not found in $PATH: unknown";
        assert_eq!(missing_command(path).as_deref(), Some("trian.py"));
        assert_eq!(missing_command("invalid memory limit"), None);
        assert_eq!(missing_command("exec: \"/x\": permission denied"), None);
    }
}
