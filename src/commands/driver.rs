//! `jobrun drive`: the job's driver in AWS, so a run goes on when the machine that submitted it
//! sleeps. It runs in the dispatcher's image (the schedules' task definition, whose default
//! command this is) as the one task of the job's driver service: `submit` marks the run under
//! `jobs/<job>/driving/` and sets the service's desired count to 1; the driver moves every
//! marked run forward — the same `watch` step a terminal takes, retries, timeouts, the reduce
//! and the end's notice included — under the run's lease (`dispatch::lease`), so a second
//! driver (ECS replacing this one, or a schedule's dispatcher) only follows. When no run is
//! left it sets the desired count back to 0, looks once more, and ends. Killed, it is started
//! again by ECS; the next driver takes each run over when its lease lapses.

use super::common::{open_store, poll_interval};
use crate::cli::DriveArgs;
use crate::dispatch::Dispatcher;
use crate::dispatch::remote::{done_driving, driving, set_driver_count};
use crate::error::{Exit, Result};
use crate::store::Store;
use crate::ui::Ui;
use crate::watch::Follow;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How often the driver lists the runs it is to drive (`JOBRUN_DRIVER_RESCAN`, else 20 s).
fn rescan_every() -> Duration {
    std::env::var("JOBRUN_DRIVER_RESCAN")
        .ok()
        .and_then(|v| humantime::parse_duration(&v).ok())
        .unwrap_or(Duration::from_secs(20))
}

/// One run this driver follows.
struct Driven {
    dispatcher: Dispatcher,
    follow: Follow,
}

pub async fn drive(args: DriveArgs, ui: &Ui) -> Result<Exit> {
    let holder = jobrun_agent::agent::whoami_task().await;
    crate::dispatch::be_driver(holder.clone());
    ui.note(&format!("drive: job {} as {holder}", args.job));
    let aws = crate::aws::Access::default().load().await?;
    let store = open_store()?;
    let mut stopping = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| crate::error::Failure::env(format!("cannot wait for SIGTERM: {e}")))?;
    let mut runs: BTreeMap<String, Driven> = BTreeMap::new();
    let mut scanned: Option<Instant> = None;
    loop {
        if scanned.is_none_or(|t| t.elapsed() >= rescan_every()) {
            take_up(&aws, &args, &store, &mut runs, ui).await?;
            scanned = Some(Instant::now());
        }
        if runs.is_empty() {
            // Nothing to drive: the service goes to 0, then one more look — a submit marks its
            // run before it sets the count to 1, so a run marked meanwhile is seen here.
            set_driver_count(&aws, &args.cluster, &args.service, 0).await?;
            take_up(&aws, &args, &store, &mut runs, ui).await?;
            if runs.is_empty() {
                ui.note("drive: no run is left to drive");
                return Ok(Exit::Ok);
            }
            set_driver_count(&aws, &args.cluster, &args.service, 1).await?;
        }
        step_all(&aws, &args, &store, &mut runs, ui).await;
        tokio::select! {
            _ = tokio::time::sleep(poll_interval()) => {}
            _ = stopping.recv() => {
                hand_over(&mut runs, ui).await;
                return Ok(Exit::Ok);
            }
        }
    }
}

/// ECS stops a task with SIGTERM (then SIGKILL after the stop timeout): the driver lets go of
/// its runs' leases, so the next driver takes them over at once instead of when they lapse.
async fn hand_over(runs: &mut BTreeMap<String, Driven>, ui: &Ui) {
    for (id, driven) in runs.iter_mut() {
        if let Err(e) = driven.dispatcher.let_go().await {
            ui.note(&format!("drive: run {id}: cannot let go of its lease: {e}"));
        }
    }
    ui.note("drive: stopped; the runs are left to the next driver");
}

/// Adds the marked runs this driver does not follow yet; forgets marks of runs not found.
async fn take_up(
    aws: &crate::aws::Aws,
    args: &DriveArgs,
    store: &Store,
    runs: &mut BTreeMap<String, Driven>,
    ui: &Ui,
) -> Result<()> {
    for id in driving(aws, &args.bucket, &args.job).await? {
        if runs.contains_key(&id) {
            continue;
        }
        let fetched = crate::dispatch::remote::fetch(aws, &args.bucket, &args.job, &id).await?;
        let Some(rec) = fetched.filter(|r| r.run_id == id) else {
            ui.note(&format!(
                "drive: run {id} has no record; its mark is dropped"
            ));
            done_driving(aws, &args.bucket, &args.job, &id).await?;
            continue;
        };
        if !store.exists(&id) {
            store.create(&rec)?;
        }
        let dispatcher = Dispatcher::for_run(&rec).await?;
        ui.note(&format!("drive: run {id} ({})", rec.state()));
        runs.insert(
            id,
            Driven {
                dispatcher,
                follow: Follow::default(),
            },
        );
    }
    Ok(())
}

/// One step of each run; a run that ended (under this driver or another) is let go.
async fn step_all(
    aws: &crate::aws::Aws,
    args: &DriveArgs,
    store: &Store,
    runs: &mut BTreeMap<String, Driven>,
    ui: &Ui,
) {
    let mut ended = vec![];
    for (id, driven) in runs.iter_mut() {
        match driven.follow.step(store, &mut driven.dispatcher, id).await {
            Ok(rec) if rec.is_finished() => {
                ui.note(&format!("drive: run {id} ended ({})", rec.state()));
                ended.push(id.clone());
            }
            Ok(_) => {}
            // A step that failed (AWS unreachable, throttled past its retries) is taken again
            // at the next poll: the reconcile is idempotent.
            Err(e) => ui.note(&format!("drive: run {id}: {e}")),
        }
    }
    for id in ended {
        runs.remove(&id);
        if let Err(e) = done_driving(aws, &args.bucket, &args.job, &id).await {
            ui.note(&format!("drive: run {id}: cannot drop its mark: {e}"));
        }
    }
}
