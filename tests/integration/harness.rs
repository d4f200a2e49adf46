//! A small builder around the `jobrun` executable: a job folder and a state folder per test,
//! the test job's image, and helpers that read what jobrun left behind through Docker itself.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const JOBRUN: &str = env!("CARGO_BIN_EXE_jobrun");

/// The static test binary, compiled once per test run with plain rustc.
pub fn task_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("jobrun-test-task");
        let src = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/task.rs");
        let status = Command::new("rustc")
            .args([
                "--edition",
                "2021",
                "-O",
                "-C",
                "target-feature=+crt-static",
                "-o",
            ])
            .arg(&out)
            .arg(src)
            .status()
            .expect("rustc runs");
        assert!(status.success(), "compiling the test task failed");
        out
    })
}

pub struct Run {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from(o: Output) -> Run {
        Run {
            status: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON document ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
    /// Asserts the error contract: exactly one `error:` line with a hint, and the exit code.
    pub fn assert_error(&self, code: i32, contains: &str) {
        assert_eq!(
            self.status, code,
            "exit code\nstdout:{}\nstderr:{}",
            self.stdout, self.stderr
        );
        let errors: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| l.starts_with("error:"))
            .collect();
        assert_eq!(errors.len(), 1, "one error line, got:\n{}", self.stderr);
        assert!(
            errors[0].contains(contains),
            "error line `{}` should contain `{contains}`",
            errors[0]
        );
        assert!(
            self.stderr.contains("  hint: "),
            "a hint follows the error:\n{}",
            self.stderr
        );
    }
}

pub struct Test {
    pub name: String,
    pub dir: tempfile::TempDir,
    pub state: tempfile::TempDir,
    env: Vec<(String, String)>,
    /// The jobrun this test runs (default: the one cargo built).
    bin: PathBuf,
}

/// This jobrun without its symbol table (the debug build is about 1 GB; stripped, under a
/// tenth of it), once per test run: what tests put into images as "this jobrun" (and the slim
/// `jobrun-agent`, stripped, beside it).
pub fn stripped_jobrun() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let strip = |from: &Path, to: &Path| {
            let st = Command::new("strip").arg("-o").arg(to).arg(from).status();
            assert!(st.unwrap().success(), "strip {}", from.display());
        };
        let out = dir.join("jobrun-stripped");
        strip(Path::new(JOBRUN), &out);
        // The slim agent beside it, as `cargo test` builds it beside the debug jobrun (the
        // workspace's default members): job images get it, the dispatcher's this jobrun.
        let agent = Path::new(JOBRUN).with_file_name("jobrun-agent");
        assert!(
            agent.is_file(),
            "{} is not built: run `cargo test` in the workspace",
            agent.display()
        );
        strip(&agent, &dir.join("jobrun-agent"));
        out
    })
}

/// A stand-in for a static arm64 jobrun, which cannot be compiled here: this jobrun's bytes
/// (so it carries jobrun's mark, the wire format it speaks) with the ELF header's machine set
/// to aarch64 (e_machine, offset 18) and its program interpreter entry made PT_NULL. Never
/// executed: moto starts no containers, and tests play arm64 tasks with the host's jobrun.
pub fn arm64_placeholder() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let mut b = std::fs::read(stripped_jobrun()).unwrap();
        b[18..20].copy_from_slice(&183u16.to_le_bytes());
        let at = |o: usize, n: usize| u64::from_le_bytes(b[o..o + n].try_into().unwrap_or([0; 8]));
        let phoff = at(32, 8) as usize;
        let size = u16::from_le_bytes([b[54], b[55]]) as usize;
        let count = u16::from_le_bytes([b[56], b[57]]) as usize;
        for i in 0..count {
            let p = phoff + i * size;
            if u32::from_le_bytes(b[p..p + 4].try_into().unwrap()) == 3 {
                b[p..p + 4].copy_from_slice(&0u32.to_le_bytes());
            }
        }
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("jobrun-arm64-placeholder");
        std::fs::write(&out, b).unwrap();
        out
    })
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl Test {
    /// An empty job folder with a unique job name.
    pub fn new() -> Test {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        Test {
            name: format!("jrt-{}-{n}", std::process::id()),
            dir: tempfile::tempdir().unwrap(),
            state: tempfile::tempdir().unwrap(),
            env: vec![
                ("JOBRUN_POLL_INTERVAL".into(), "200ms".into()),
                // Never ask the EC2 metadata service (a non-loopback address) for credentials,
                // and never read the developer's own AWS or Docker configuration.
                ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
                ("AWS_CONFIG_FILE".into(), "/nonexistent/aws-config".into()),
                (
                    "AWS_SHARED_CREDENTIALS_FILE".into(),
                    "/nonexistent/aws-credentials".into(),
                ),
                ("DOCKER_CONFIG".into(), "/nonexistent/docker-config".into()),
                // Never pull jobrun's published agent image (a public registry): tests name
                // their agent, or build amd64 images with this jobrun itself.
                ("JOBRUN_AGENT_IMAGE".into(), "".into()),
                // ECS runs are driven by the test's own jobrun (the step the driver in AWS
                // takes too); tests/integration/driver.rs unsets it and plays the driver's
                // service on the local engine.
                ("JOBRUN_DRIVER".into(), "here".into()),
            ],
            bin: PathBuf::from(JOBRUN),
        }
    }

    /// A job folder for the test task: Dockerfile, task binary and a jobrun.toml whose `[run]`
    /// section ends with `run_extra`.
    pub fn with_task(run_extra: &str) -> Test {
        let t = Test::new();
        std::fs::copy(task_binary(), t.dir.path().join("task")).unwrap();
        t.write("Dockerfile", "FROM scratch\nCOPY task /task\n");
        t.write(
            "jobrun.toml",
            &format!(
                "[job]\nname = \"{}\"\n\n[resources]\ncpu = 0.25\nmemory = \"512MB\"\n\n[run]\n{run_extra}\n",
                t.name
            ),
        );
        t
    }

    /// The test task as a Fargate job (`target = "ecs"`), with `extra` added to its jobrun.toml.
    ///
    /// Unless `extra` has an `[image]` section, the image gets [`arm64_placeholder`] as its
    /// jobrun (`[image] agent`), as every ECS image gets one.
    pub fn ecs_task(extra: &str) -> Test {
        let t = Test::with_task(r#"command = ["/task"]"#);
        let toml = std::fs::read_to_string(t.dir.path().join("jobrun.toml")).unwrap();
        let agent = match extra.contains("[image]") {
            true => String::new(),
            false => format!(
                "\n[image]\nagent = {{ arm64 = \"{}\" }}\n",
                arm64_placeholder().display()
            ),
        };
        t.write(
            "jobrun.toml",
            &format!(
                "{}\n{extra}{agent}",
                toml.replace("[job]\n", "[job]\ntarget = \"ecs\"\n")
            ),
        );
        t
    }

    pub fn envs(mut self, vars: Vec<(&str, String)>) -> Self {
        for (k, v) in vars {
            self = self.env(k, &v);
        }
        self
    }

    pub fn write(&self, rel: &str, body: &str) -> &Self {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
        self
    }

    /// Drops a variable set with [`Test::env`].
    pub fn unset(mut self, k: &str) -> Self {
        self.env.retain(|(key, _)| key != k);
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    /// Runs `bin` as jobrun (e.g. [`stripped_jobrun`], so the image gets a smaller "this
    /// jobrun").
    pub fn jobrun(mut self, bin: &Path) -> Self {
        self.bin = bin.to_path_buf();
        self
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.args(args)
            .current_dir(self.dir.path())
            .env("JOBRUN_STATE_DIR", self.state.path())
            .env_remove("JOBRUN_FILE")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_REGION")
            .env_remove("AWS_DEFAULT_REGION")
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("JOBRUN_OUTPUT")
            .stdin(Stdio::null());
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().unwrap())
    }

    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    pub fn build(&self) {
        let r = self.run(&["build"]);
        assert_eq!(r.status, 0, "build failed:\n{}\n{}", r.stdout, r.stderr);
    }

    /// `submit --detach` of these configurations (one JSON line each); returns the run id.
    pub fn submit_detached(&self, configs: &[Value]) -> String {
        let lines: Vec<String> = configs.iter().map(Value::to_string).collect();
        self.write("configs.jsonl", &(lines.join("\n") + "\n"));
        let r = self.run(&[
            "submit",
            "--configs",
            "configs.jsonl",
            "--detach",
            "-o",
            "json",
        ]);
        assert_eq!(r.status, 0, "submit: {}\n{}", r.stdout, r.stderr);
        r.json()["run_id"].as_str().unwrap().to_string()
    }

    /// `jobrun status RUN --output json`; an empty RUN means the job's latest run.
    pub fn status(&self, run: &str) -> Value {
        let r = if run.is_empty() {
            self.run(&["status", "--output", "json"])
        } else {
            self.run(&["status", run, "--output", "json"])
        };
        assert_eq!(r.status, 0, "status failed: {}", r.stderr);
        r.json()
    }

    /// A run's record as jobrun keeps it in this test's state folder.
    pub fn record(&self, run: &str) -> Value {
        let path = self.state.path().join("runs").join(run).join("run.json");
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    /// The run id of the only run in this test's state folder.
    pub fn only_run(&self) -> String {
        let runs: Vec<_> = std::fs::read_dir(self.state.path().join("runs"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().into_string().unwrap())
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(runs.len(), 1, "expected one run, found {runs:?}");
        runs[0].clone()
    }

    pub fn run_count(&self) -> usize {
        std::fs::read_dir(self.state.path().join("runs"))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Polls the run's status until `pred` holds (bounded).
    pub fn wait_for(&self, run: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self
                .state
                .path()
                .join("runs")
                .join(run)
                .join("run.json")
                .is_file()
            {
                let s = self.status(run);
                if pred(&s) {
                    return s;
                }
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until a detached run's background driver (`jobrun watch RUN --background`) is
    /// gone: what it does after the end — the image's keep tag let go, the record saved once
    /// more — is done, so a test that records AWS writes next sees only its own.
    pub fn wait_for_driver_exit(&self, run: &str) {
        let driving = || {
            std::fs::read_dir("/proc")
                .into_iter()
                .flatten()
                .flatten()
                .any(|p| {
                    std::fs::read(p.path().join("cmdline")).is_ok_and(|c| {
                        let c = String::from_utf8_lossy(&c);
                        c.contains(run) && c.contains("--background")
                    })
                })
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while driving() {
            assert!(Instant::now() < deadline, "the driver of {run} never ended");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for the one run of this test to have a running task; returns its id.
    pub fn wait_for_running_task(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.run_count() == 1 {
                let run = self.only_run();
                if self.status(&run)["running"].as_u64().unwrap_or(0) > 0 {
                    return run;
                }
            }
            assert!(Instant::now() < deadline, "no task started");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Containers of this job that Docker still has, whatever their state.
    pub fn containers(&self) -> Vec<String> {
        docker_lines(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=jobrun.job={}", self.name),
        ])
    }

    /// Distinct image ids tagged with this job's name.
    pub fn images(&self) -> Vec<String> {
        let mut ids = docker_lines(&["images", "-q", &self.name]);
        ids.sort();
        ids.dedup();
        ids
    }
}

impl Drop for Test {
    fn drop(&mut self) {
        for c in self.containers() {
            let _ = Command::new("docker").args(["rm", "-f", &c]).output();
        }
        let tags = docker_lines(&["images", "--format", "{{.Repository}}:{{.Tag}}", &self.name]);
        if !tags.is_empty() {
            // --no-prune: the untagged parent layers are build cache that another test's build,
            // running at the same time, may be standing on.
            let _ = Command::new("docker")
                .args(["rmi", "-f", "--no-prune"])
                .args(&tags)
                .output();
        }
        self.remove_labelled_layers();
    }
}

impl Test {
    /// Removes the untagged images this test's builds left: every one that carries its job's
    /// label (an image inherits the labels of the image it is built from), the agent step's copy
    /// of jobrun (~95 MB) among them. Kept, a full suite left ~8 GB in the engine and CI's disk
    /// ran out. They are this test's alone: job names are unique per test, and the shared build
    /// cache below them (the task binary's layer, the dispatcher's steps) carries no job label.
    /// Children go before their parents, so a few rounds; --no-prune leaves those parents.
    fn remove_labelled_layers(&self) {
        let label = format!("label=jobrun.job={}", self.name);
        for _ in 0..4 {
            let ids = docker_lines(&["images", "-aq", "--filter", &label]);
            if ids.is_empty() {
                return;
            }
            let _ = Command::new("docker")
                .args(["rmi", "-f", "--no-prune"])
                .args(&ids)
                .output();
        }
    }
}

pub fn docker_lines(args: &[&str]) -> Vec<String> {
    let o = Command::new("docker")
        .args(args)
        .output()
        .expect("docker CLI runs");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// Indexes of the tasks in a status document that are in `state`.
pub fn indexes(status: &Value, state: &str) -> Vec<u64> {
    status["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["state"] == state)
        .map(|t| t["index"].as_u64().unwrap())
        .collect()
}

/// AWS's shared files for a test: `config` as given, and `credentials` with keys for the
/// profile `ml` only. Returns their folder (AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE).
pub fn aws_files(config: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config"), config).unwrap();
    std::fs::write(
        dir.path().join("credentials"),
        "[ml]\naws_access_key_id = test\naws_secret_access_key = test\n",
    )
    .unwrap();
    dir
}
