//! The local target when the ground moves under it: a jobrun killed while it creates
//! containers, containers that vanish between jobrun's requests (a killed jobrun's create the
//! engine had not finished, a `docker rm -f` or a prune), and a state folder on a full disk.
//! Each task still runs once, or its attempt counts as interrupted, and a run that cannot be
//! recorded starts nothing.

use crate::docker_proxy::{Act, DockerProxy, remove_container};
use crate::harness::{Run, Test, docker_lines};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Every task of the run succeeded on its first attempt, which is the only one the record has
/// (one bill, one timeline, no reason left by a failed or interrupted attempt).
fn each_task_ran_once(t: &Test, run: &str, tasks: usize) {
    let s = t.status(run);
    assert_eq!(s["succeeded"], tasks, "{s}");
    let record = t.record(run);
    for task in record["tasks"].as_array().unwrap() {
        assert_eq!(task["state"], "succeeded", "{task}");
        assert_eq!(task["attempts"], 1, "one attempt: {task}");
        assert!(task["reason"].is_null(), "no failed attempt: {task}");
        assert_eq!(task["bills"].as_array().unwrap().len(), 1, "{task}");
        assert_eq!(task["timelines"].as_array().unwrap().len(), 1, "{task}");
    }
}

/// The engine answers a create with 409 (the name is taken) while the container is not there
/// yet — a killed jobrun's create it is still making, or undoing — so the start that follows
/// gets 404. That attempt did not fail: the container is made again.
#[test]
fn a_container_gone_between_its_create_and_its_start_is_made_again() {
    let proxy = DockerProxy::start();
    let t = Test::with_task(
        r#"command = ["/task", "out", "done {index}"]
concurrency = 2"#,
    )
    .env("DOCKER_HOST", &proxy.host());
    t.build();
    let taken = "Conflict. The container name is already in use by another container.";
    let conflict = proxy.on("POST", "create", "-0-1", 1, Act::Answer(409, taken.into()));
    let r = t.run(&["submit", "--configs", "2"]);
    assert_eq!(r.status, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(proxy.fired(conflict), 1, "the engine played the race");
    let run = t.only_run();
    each_task_ran_once(&t, &run, 2);
    let log = t.run(&["logs", &run, "--index", "0"]);
    assert_eq!(log.stdout.trim(), "done 0");
    assert!(t.containers().is_empty());
}

/// A finished container removed by someone else before jobrun has read both its end and its
/// log (task 0: before its end is read; task 1: between its end and its log; task 2: so on
/// both its attempts) is that attempt's interruption: retried while attempts remain, and the
/// run goes on.
#[test]
fn a_finished_container_removed_before_it_is_collected_is_an_interrupted_attempt() {
    let proxy = DockerProxy::start();
    let t = Test::with_task(
        r#"command = ["/task", "out", "done {index}", "env"]
concurrency = 4
max_attempts = 2"#,
    )
    .env("DOCKER_HOST", &proxy.host());
    t.build();
    let rm: Act = Act::Before(Arc::new(remove_container));
    let removals = [
        proxy.on("GET", "json", "-0-1", 1, rm.clone()),
        proxy.on("GET", "logs", "-1-1", 1, rm.clone()),
        proxy.on("GET", "logs", "-2-1", 1, rm.clone()),
        proxy.on("GET", "logs", "-2-2", 1, rm),
    ];
    let r = t.run(&["submit", "--configs", "4"]);
    assert_eq!(r.status, 1, "one task failed\n{}\n{}", r.stdout, r.stderr);
    assert!(removals.iter().all(|&n| proxy.fired(n) == 1));
    let run = t.only_run();
    let s = t.status(&run);
    let tasks = s["tasks"].as_array().unwrap();
    let states: Vec<(String, u64)> = tasks
        .iter()
        .map(|t| {
            (
                t["state"].as_str().unwrap().into(),
                t["attempts"].as_u64().unwrap(),
            )
        })
        .collect();
    let want = [
        ("succeeded", 2),
        ("succeeded", 2),
        ("failed", 2),
        ("succeeded", 1),
    ];
    assert_eq!(states, want.map(|(s, a)| (s.to_string(), a)), "{s}");
    assert_eq!(
        tasks[2]["reason"],
        "its container was removed outside jobrun"
    );
    // An interrupted attempt has no outcome: no bill, no timeline; the next one has.
    let record = t.record(&run);
    for i in [0, 1] {
        let task = &record["tasks"][i];
        assert_eq!(task["bills"].as_array().unwrap().len(), 1, "{task}");
        assert_eq!(task["bills"][0]["attempt"], 2, "{task}");
        let log = t.run(&["logs", &run, "--index", &i.to_string()]).stdout;
        assert!(log.starts_with(&format!("done {i}\n")), "{log}");
        assert!(log.contains("JOBRUN_ATTEMPT=2\n"), "{log}");
    }
    assert!(t.containers().is_empty());
}

/// The run ids in the test's state folder.
fn runs(t: &Test) -> BTreeSet<String> {
    std::fs::read_dir(t.state.path().join("runs"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default()
}

/// `submit` killed with SIGKILL 30 to 80 ms after it was started, again and again: whatever it
/// got to (the record, its containers' creates, their starts), `watch` then runs each task
/// exactly once — one attempt, none failed.
#[test]
fn sigkill_while_submit_creates_containers_then_watch_runs_each_task_once() {
    let t = Test::with_task(
        r#"command = ["/task", "out", "done {index}"]
concurrency = 6"#,
    );
    t.build();
    let deadline = Instant::now() + Duration::from_secs(150);
    let (mut rounds, mut recorded, mut with_containers) = (0, 0, 0);
    while rounds < 12 && Instant::now() < deadline {
        let before = runs(&t);
        let delay = Duration::from_millis(30 + (rounds * 23) % 51);
        rounds += 1;
        let mut child = t.spawn(&["submit", "--configs", "6"]);
        std::thread::sleep(delay);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let new: Vec<String> = runs(&t).difference(&before).cloned().collect();
        let run = match new.as_slice() {
            [run]
                if t.state
                    .path()
                    .join("runs")
                    .join(run)
                    .join("run.json")
                    .is_file() =>
            {
                run.clone()
            }
            // Killed before the run was recorded: nothing was started either.
            _ => {
                assert!(t.containers().is_empty(), "containers of no run");
                continue;
            }
        };
        recorded += 1;
        if !t.containers().is_empty() {
            with_containers += 1;
        }
        let w = t.run(&["watch", &run]);
        assert_eq!(w.status, 0, "after {delay:?}\n{}\n{}", w.stdout, w.stderr);
        each_task_ran_once(&t, &run, 6);
        assert!(t.containers().is_empty());
    }
    let _ = writeln!(
        std::io::stderr(),
        "{rounds} kills: {recorded} after the run was recorded, {with_containers} of them with containers made"
    );
    assert!(
        recorded > 0,
        "every kill came before the run was recorded ({rounds} tries): the test tested nothing"
    );
}

/// A tmpfs mounted over a folder, which the test fills; unmounted when dropped.
struct SmallDisk {
    at: PathBuf,
}

impl SmallDisk {
    /// Mounts a tmpfs of `size` over `at`; why not, when it cannot be (needs root).
    fn mount(at: &Path, size: &str) -> Result<SmallDisk, String> {
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| e.to_string())?;
        match out.status.success() {
            true => Ok(SmallDisk { at: at.into() }),
            false => Err(String::from_utf8_lossy(&out.stderr).trim().to_string()),
        }
    }

    fn filler(&self) -> PathBuf {
        self.at.join("filler")
    }

    /// Writes until not one byte more fits; true when it is so.
    fn fill(&self) -> bool {
        let mut f = std::fs::File::create(self.filler()).unwrap();
        for size in [1 << 20, 4096, 1] {
            let chunk = vec![0u8; size];
            while f.write_all(&chunk).is_ok() {}
        }
        let probe = self.at.join("probe");
        let full = std::fs::write(&probe, b"x").is_err();
        let _ = std::fs::remove_file(probe);
        full
    }

    fn free(&self) {
        std::fs::remove_file(self.filler()).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.at)
            .status();
    }
}

/// The run's containers as (index, attempt), whatever their state.
fn containers_of(run: &str) -> Vec<(usize, u64)> {
    let format = r#"{{.Label "jobrun.index"}} {{.Label "jobrun.attempt"}}"#;
    let filter = format!("label=jobrun.run={run}");
    docker_lines(&["ps", "-a", "--filter", &filter, "--format", format])
        .iter()
        .map(|l| {
            let (i, a) = l.split_once(' ').unwrap();
            (i.parse().unwrap(), a.parse().unwrap())
        })
        .collect()
}

/// Exit 3 with the error and its hint, and no container of an attempt the saved record does
/// not say is starting (or started): `count` containers, all of the first two tasks.
fn stopped_for_the_full_disk(t: &Test, run: &str, r: &Run) {
    r.assert_error(3, "No space left on device");
    let record = t.record(run);
    let made = containers_of(run);
    for &(i, attempt) in &made {
        let task = &record["tasks"][i];
        assert!(
            task["attempts"].as_u64().unwrap() >= attempt && task["state"] != "queued",
            "container of task {i} attempt {attempt}, but the saved record has {task}"
        );
    }
    let mut tasks: Vec<usize> = made.iter().map(|&(i, _)| i).collect();
    tasks.sort();
    assert_eq!(tasks, [0, 1], "only the first two started: {made:?}");
}

/// With the state folder on a full disk, the next tasks are not started, since the record
/// that would say so cannot be saved: `submit` and then `watch` stop with exit 3 (`error:` and
/// `hint:`), no container runs that the record does not know of, and once there is room again
/// `watch` runs the rest, each task once.
#[test]
fn a_full_state_folder_starts_nothing_the_record_does_not_say_is_starting() {
    let t = Test::with_task(
        r#"command = ["/task", "sleep", "4"]
concurrency = 2"#,
    );
    let disk = match SmallDisk::mount(t.state.path(), "16m") {
        Ok(disk) => disk,
        Err(why) => {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED a_full_state_folder_starts_nothing…: cannot mount a tmpfs ({why})"
            );
            return;
        }
    };
    t.build();
    let submit = t.spawn(&["submit", "--configs", "4"]);
    let run = t.wait_for_running_task();
    // Both first tasks seen running (no longer only starting), so the next save is the one
    // that would start the next two.
    t.wait_for(&run, "the first two tasks running", |s| {
        let running = s["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["state"] == "running" && t["phase"].is_null());
        running.count() == 2
    });
    assert!(disk.fill(), "the state folder's disk is full");
    assert_eq!(
        t.status(&run)["running"],
        2,
        "the first tasks still ran when the disk was full (a slow machine?)"
    );
    let out = submit.wait_with_output().unwrap();
    let r = Run {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    stopped_for_the_full_disk(&t, &run, &r);
    let w = t.run(&["watch", &run]);
    stopped_for_the_full_disk(&t, &run, &w);
    disk.free();
    let w = t.run(&["watch", &run]);
    assert_eq!(w.status, 0, "{}\n{}", w.stdout, w.stderr);
    each_task_ran_once(&t, &run, 4);
    assert!(t.containers().is_empty());
}
