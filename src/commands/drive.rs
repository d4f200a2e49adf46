//! Keeping a run moving: in the foreground (`attach`: watch to the end, or detach on Ctrl-C),
//! or without this process (`drive_detached` and the background driver, `jobrun watch RUN
//! --background` in its own process group).

use super::common::poll_interval;
use crate::dispatch::Dispatcher;
use crate::error::{Exit, Failure, Result};
use crate::record::{RunRecord, TaskState};
use crate::report::Submitted;
use crate::store::Store;
use crate::ui::Ui;
use crate::watch::{self, Ended, WatchOptions};

/// The exit code a finished run gives.
pub fn exit_of(rec: &RunRecord) -> Exit {
    if rec.all_succeeded() {
        Exit::Ok
    } else {
        Exit::TasksFailed
    }
}

/// Says so, prints the summary, and gives the run's exit code.
pub fn already_finished(rec: &RunRecord, ui: &Ui) -> Exit {
    ui.note(&format!(
        "run {} is already finished ({})",
        rec.run_id,
        rec.state()
    ));
    watch::print_summary(ui, rec);
    exit_of(rec)
}

/// Watches until the run is finished, or detaches on Ctrl-C and leaves a background driver.
pub async fn attach(
    store: &Store,
    dispatcher: &mut Dispatcher,
    run_id: &str,
    ui: &Ui,
) -> Result<Exit> {
    let opts = WatchOptions {
        poll: poll_interval(),
        detach_on_ctrl_c: true,
    };
    match watch::watch(store, dispatcher, run_id, ui, &opts).await? {
        Ended::Finished(rec) => {
            watch::print_summary(ui, &rec);
            Ok(exit_of(&rec))
        }
        Ended::Detached if crate::dispatch::only_followed(&store.load(run_id)?) => {
            ui.note(&format!(
                "stopped watching; the run goes on in AWS, driven there. Watch again with: jobrun watch {run_id}"
            ));
            Ok(Exit::Detached)
        }
        Ended::Detached => {
            spawn_background(store, run_id)?;
            ui.note(&format!(
                "detached; the run goes on in the background. Re-attach with: jobrun watch {run_id}"
            ));
            Ok(Exit::Detached)
        }
    }
}

/// Leaves a run to go on without this process: on ECS everything that can start now is
/// dispatched first; what must still wait (local: everything; ECS: beyond the concurrency limit,
/// or waiting for capacity) is left to a background driver. Returns the record as left.
pub async fn drive_detached(
    store: &Store,
    dispatcher: &mut Dispatcher,
    run_id: &str,
) -> Result<RunRecord> {
    let rec = if matches!(dispatcher, Dispatcher::Local(_)) {
        store.load(run_id)?
    } else {
        let mut follow = watch::Follow::default();
        loop {
            let now = follow.step(store, dispatcher, run_id).await?;
            if now.is_finished() || !dispatcher.dispatching() {
                break;
            }
        }
        follow.into_record().expect("a step holds its record")
    };
    // Queued work needs a driver; so does every unfinished run on ECS — a retry is started,
    // a timeout enforced and the end told (`[notify]`) only by a driver, never by the reading
    // commands (`status`, `results` look and do nothing).
    let remote = !matches!(dispatcher, Dispatcher::Local(_));
    if crate::dispatch::only_followed(&rec) {
        return Ok(rec);
    }
    if rec.count(TaskState::Queued) > 0 || (remote && !rec.is_finished()) {
        spawn_background(store, run_id)?;
    }
    Ok(rec)
}

/// Drives a run that has queued work: in the foreground, or detached. A run driven in AWS has
/// its driver started (again: `submit --resume`, `retry`), and is watched from here.
pub async fn go_on(store: &Store, rec: RunRecord, detach: bool, ui: &Ui) -> Result<Exit> {
    if let Some(run) = rec
        .place
        .ecs()
        .filter(|_| crate::dispatch::only_followed(&rec))
    {
        let aws = crate::dispatch::remote::aws_for(run).await?;
        crate::dispatch::remote::wake_driver(&aws, &rec, run).await?;
    }
    let mut dispatcher = Dispatcher::for_run(&rec).await?;
    // What follows keeps its own copy of the record: a second one of a big run is not held.
    let run_id = rec.run_id.clone();
    drop(rec);
    if !detach {
        return attach(store, &mut dispatcher, &run_id, ui).await;
    }
    let rec = drive_detached(store, &mut dispatcher, &run_id).await?;
    ui.emit(&Submitted::of(&rec));
    Ok(Exit::Ok)
}

/// Starts `jobrun watch RUN --background` in its own process group, so the run keeps moving
/// (queued tasks start, finished ones are collected) without a terminal. A thread waits for
/// it: a process that outlives its driver (`jobrun ui`) keeps no zombie of it; one that ends
/// first (a command) leaves it to init, as before.
pub fn spawn_background(store: &Store, run_id: &str) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let (exe, first) = this_jobrun()?;
    let log_path = store.driver_log(run_id);
    let cannot_write =
        |e: std::io::Error| Failure::env(format!("cannot write {}: {e}", log_path.display()));
    let log = std::fs::File::options()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(cannot_write)?;
    let log2 = log.try_clone().map_err(cannot_write)?;
    let root = Store::default_root();
    let mut child = std::process::Command::new(exe)
        .args(first)
        .args(["watch", run_id, "--background"])
        .env(
            "JOBRUN_STATE_DIR",
            std::path::absolute(&root).unwrap_or(root),
        )
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(log2)
        .process_group(0)
        .spawn()
        .map_err(|e| Failure::env(format!("cannot start the background driver: {e}")))?;
    let reaper = std::thread::Builder::new()
        .name("reap-driver".into())
        .spawn(move || child.wait());
    if let Err(e) = reaper {
        tracing::debug!("no thread waits for the background driver: {e}");
    }
    Ok(())
}

/// How to start this jobrun again: `JOBRUN_SELF` (the dispatcher's image starts jobrun through
/// its bundled loader, so the executable is the loader), else this executable.
fn this_jobrun() -> Result<(std::path::PathBuf, Vec<String>)> {
    if let Ok(line) = std::env::var("JOBRUN_SELF") {
        let mut words = line.split_whitespace().map(String::from);
        if let Some(exe) = words.next() {
            return Ok((exe.into(), words.collect()));
        }
    }
    let exe = std::env::current_exe()
        .map_err(|e| Failure::env(format!("cannot find the jobrun executable: {e}")))?;
    Ok((exe, vec![]))
}
