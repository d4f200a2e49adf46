//! The jobrun inside AWS starts in every kind of image: `jobrun build` puts it into a job's
//! image as `FROM scratch`, busybox, musl (Alpine-like) and glibc (Debian-like) bases, and a
//! direct-mode task (`jobrun task --`) and a queue worker (`jobrun agent`) of each, started
//! as ECS starts them (the task definition's entrypoint and environment, RunTask's
//! overrides) against moto, keep their outputs and results. On this x86_64 machine the
//! jobrun is the slim `jobrun-agent` beside this one, packed with this one's loader and
//! libraries (a debug build is linked dynamically); an agent image (a multi-architecture OCI index in the loopback registry)
//! gives each architecture its own entry, by digest. Bad agents are refused at build.

use crate::harness::{Test, arm64_placeholder, docker_lines, stripped_jobrun, task_binary};
use crate::outputs_ecs::{Play, play_tasks};
use crate::queue::outputs;
use crate::services::{self, Service};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

#[derive(Clone, Copy, Debug)]
enum Base {
    Scratch,
    Busybox,
    Musl,
    Glibc,
}

/// Debian's busybox as an image (`sh`, `echo`, `cat`, `ls`), made once per test run.
pub fn busybox_image() -> &'static str {
    Base::Busybox.image()
}

fn sh(script: &str) {
    let out = Command::new("sh").arg("-c").arg(script).output().unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `tar -C root -c . | docker import - tag`.
fn import(root: &Path, tag: &str) {
    sh(&format!(
        "tar -C {} -c . | docker import - {tag} >/dev/null",
        root.display()
    ));
}

/// tests/fixtures/hello.c compiled with `cc` (gcc, or musl-gcc), dynamically.
fn hello(cc: &str) -> std::path::PathBuf {
    let out = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("hello-{cc}"));
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/hello.c");
    sh(&format!("{cc} -O2 -o {} {src}", out.display()));
    out
}

impl Base {
    /// The base image (made once per test run, without a pull) and what its Dockerfile copies.
    fn image(self) -> &'static str {
        static BUSYBOX: OnceLock<()> = OnceLock::new();
        static MUSL: OnceLock<()> = OnceLock::new();
        match self {
            Base::Scratch => "scratch",
            Base::Glibc => crate::queue::glibc_base(),
            Base::Busybox => {
                BUSYBOX.get_or_init(|| {
                    // Debian's busybox-static (tests/setup installs it): one static binary.
                    let root = tempfile::tempdir().unwrap();
                    let r = root.path().display();
                    sh(&format!(
                        "mkdir -p {r}/bin {r}/tmp && cp \"$(command -v busybox)\" {r}/bin/busybox && for a in sh echo cat ls; do ln -s busybox {r}/bin/$a; done"
                    ));
                    import(root.path(), "jobrun-test-busybox:1");
                });
                "jobrun-test-busybox:1"
            }
            Base::Musl => {
                MUSL.get_or_init(|| {
                    // Debian's musl: its loader (which is its C library) where Alpine has it.
                    let root = tempfile::tempdir().unwrap();
                    let r = root.path().display();
                    sh(&format!(
                        "mkdir -p {r}/lib {r}/tmp && cp \"$(readlink -f /lib/ld-musl-x86_64.so.1)\" {r}/lib/ld-musl-x86_64.so.1"
                    ));
                    import(root.path(), "jobrun-test-musl:1");
                });
                "jobrun-test-musl:1"
            }
        }
    }

    fn name(self) -> &'static str {
        match self {
            Base::Scratch => "scratch",
            Base::Busybox => "busybox",
            Base::Musl => "musl",
            Base::Glibc => "glibc",
        }
    }

    /// The job's Dockerfile and command: each writes `{"base": NAME}` as its result with what
    /// the base has (the static test task, busybox's shell, a C program of its C library).
    fn job(self, t: &Test) -> (String, String) {
        let from = format!("FROM {}\n", self.image());
        let name = self.name();
        match self {
            Base::Scratch => (
                from + "COPY task /task\n",
                // `{{` and `}}`: literal braces in a command (single ones are placeholders).
                format!(r#"["/task", "write", "result.json", "{{{{\"base\": \"{name}\"}}}}"]"#),
            ),
            Base::Busybox => (
                from,
                format!(
                    r#"["/bin/sh", "-c", "echo '{{{{\"base\": \"{name}\"}}}}' > $JOBRUN_OUTPUT_DIR/result.json"]"#
                ),
            ),
            Base::Musl | Base::Glibc => {
                let cc = if matches!(self, Base::Musl) {
                    "musl-gcc"
                } else {
                    "gcc"
                };
                std::fs::copy(hello(cc), t.dir.path().join("hello")).unwrap();
                (
                    from + "COPY hello /hello\n",
                    format!(r#"["/hello", "{name}"]"#),
                )
            }
        }
    }
}

/// An amd64 ECS job on `base`, whose image gets the slim agent beside this jobrun (both
/// stripped; packed).
fn job_on(moto: &Service, base: Base) -> Test {
    let reg = services::plain_registry();
    let t = Test::ecs_task(&format!(
        "[ecr]\nregistry_endpoint = \"{}\"\n\n[image]\nplatform = \"linux/amd64\"\n",
        reg.host()
    ))
    .envs(services::moto_env_for(moto))
    .jobrun(stripped_jobrun());
    let (dockerfile, command) = base.job(&t);
    t.write("Dockerfile", &dockerfile);
    let toml = std::fs::read_to_string(t.dir.path().join("jobrun.toml")).unwrap();
    t.write(
        "jobrun.toml",
        &toml.replace(r#"command = ["/task"]"#, &format!("command = {command}")),
    );
    t
}

fn ok(t: &Test, args: &[&str]) -> crate::harness::Run {
    let r = t.run(args);
    assert_eq!(r.status, 0, "{args:?}: {}\n{}", r.stdout, r.stderr);
    r
}

fn result_base(t: &Test, run: &str) -> Value {
    let table = ok(t, &["results", run, "-o", "json"]).json();
    table["rows"][0]["result.base"].clone()
}

/// A direct task and a queue worker of a job on `base`, each in a container of its image.
fn runs_on(base: Base) {
    if std::env::consts::ARCH != "x86_64" {
        return;
    }
    let moto = services::moto();
    let t = job_on(moto, base);
    ok(&t, &["build", "--push"]);
    ok(&t, &["up"]);
    let image = format!("{}:latest", t.name);
    if !matches!(base, Base::Glibc) {
        // No C library the debug jobrun links: the binary alone does not start here (what
        // `build` used to put in), only through the loader packed beside it.
        let alone = docker_lines(&[
            "run",
            "--rm",
            "--entrypoint",
            "/opt/jobrun/jobrun",
            &image,
            "--version",
        ]);
        assert!(alone.is_empty(), "{alone:?}");
    }

    // Direct mode: `jobrun task --` as the task definition starts it.
    let hold = json!({"hold_until_receipt": true});
    let run = t.submit_detached(&[json!({"fake": hold})]);
    play_tasks(&t, moto, &run, 1, Play::Container(&image));
    let s = t.wait_for(&run, "the direct run to succeed", |s| {
        s["state"] == "succeeded"
    });
    assert_eq!(s["succeeded"], 1, "{s}");
    assert_eq!(result_base(&t, &run), base.name(), "{base:?}");
    let rec = t.record(&run);
    let agent = &rec["ecs"]["agent"];
    assert_eq!(
        agent["source"],
        "the jobrun-agent beside this jobrun, packed with its loader and libraries",
        "{agent}"
    );

    // Queue mode: the same image, a worker started as the agent task definition says.
    let toml = std::fs::read_to_string(t.dir.path().join("jobrun.toml")).unwrap();
    t.write(
        "jobrun.toml",
        &toml.replace("[image]\n", "[ecs]\nmode = \"queue\"\n\n[image]\n"),
    );
    ok(&t, &["up"]);
    let o = outputs(&t);
    let run = t.submit_detached(&[json!({})]);
    let td = o["queue"]["agent_task_definition"].as_str().unwrap();
    let (entry, env) = crate::ecs::container_of(moto, td);
    // The worker speaks HTTPS, as to AWS: TLS must start in this image, which has no CA file
    // of jobrun's (the test world's CA comes in as a private CA would, by AWS_CA_BUNDLE).
    let https = services::tls_front(moto);
    let mut c = Command::new("docker");
    c.args(["run", "--rm", "--network", "host"]);
    c.args(["-v", &format!("{}:/ca.pem:ro", https.ca_file().display())]);
    let pairs = services::moto_env_for(moto)
        .into_iter()
        .filter(|(k, _)| *k != "AWS_ENDPOINT_URL")
        .map(|(k, v)| (k.to_string(), v));
    let env = env.into_iter().filter(|(k, _)| k != "JOBRUN_IDLE_EXIT");
    let more = [
        ("JOBRUN_IDLE_EXIT".to_string(), "2s".to_string()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
        (
            "AWS_ENDPOINT_URL".into(),
            format!("https://{}", https.host()),
        ),
        ("AWS_CA_BUNDLE".into(), "/ca.pem".into()),
    ];
    for (k, v) in pairs.chain(env).chain(more) {
        c.args(["-e", &format!("{k}={v}")]);
    }
    c.args(["--entrypoint", &entry[0], &image])
        .args(&entry[1..]);
    // Without the CA (an empty AWS_CA_BUNDLE) it cannot reach SQS: it fails, never "nothing
    // to do".
    let mut untrusting = Command::new("docker");
    untrusting.args(c.get_args().map(|a| match a == "AWS_CA_BUNDLE=/ca.pem" {
        true => std::ffi::OsStr::new("AWS_CA_BUNDLE="),
        false => a,
    }));
    let refused = untrusting.output().unwrap();
    assert!(
        !refused.status.success(),
        "{base:?}: a worker that never reached SQS exited 0: {}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let worker = c.output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&worker.stdout),
        String::from_utf8_lossy(&worker.stderr)
    );
    assert!(worker.status.success(), "{base:?} worker: {said}");
    let s = t.wait_for(&run, "the queue run to succeed", |s| {
        s["state"] == "succeeded"
    });
    assert_eq!(s["succeeded"], 1, "{s}\n{said}");
    assert_eq!(result_base(&t, &run), base.name(), "{base:?}: {said}");
}

#[test]
fn in_a_from_scratch_image_the_jobrun_in_the_task_keeps_outputs() {
    runs_on(Base::Scratch);
}

#[test]
fn in_a_busybox_image_the_jobrun_in_the_task_keeps_outputs() {
    runs_on(Base::Busybox);
}

#[test]
fn in_a_musl_image_the_jobrun_in_the_task_keeps_outputs() {
    runs_on(Base::Musl);
}

#[test]
fn in_a_glibc_image_the_jobrun_in_the_task_keeps_outputs() {
    runs_on(Base::Glibc);
}

/// The jobrun a build put into the image, from `images -o json`.
fn built_agent(t: &Test) -> Value {
    ok(t, &["images", "-o", "json"]).json()[0]["agent"]["agent"].clone()
}

#[test]
fn build_takes_each_architecture_s_entry_of_the_agent_image_by_digest() {
    if std::env::consts::ARCH != "x86_64" {
        return;
    }
    let moto = services::moto();
    let reg = services::plain_registry();
    let reference = format!("{}/jobrun-agent:{}", reg.host(), env!("CARGO_PKG_VERSION"));
    let publisher = Test::new().jobrun(stripped_jobrun());
    let placeholder = arm64_placeholder().display().to_string();
    let p = ok(
        &publisher,
        &[
            "agent-image",
            &reference,
            "--amd64",
            "self",
            "--arm64",
            &placeholder,
            "-o",
            "json",
        ],
    )
    .json();
    let digest_of = |arch: &str| -> String {
        let m = p["manifests"].as_array().unwrap();
        let e = m.iter().find(|e| e[0] == arch).unwrap();
        e[1].as_str().unwrap().to_string()
    };
    // The registry holds an OCI index with both platforms.
    let repo_ref = reference
        .split_once('/')
        .unwrap()
        .1
        .replace(':', "/manifests/");
    let index = ureq::get(&format!("http://{}/v2/{repo_ref}", reg.host()))
        .set("Accept", "application/vnd.oci.image.index.v1+json")
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let index: Value = serde_json::from_str(&index).unwrap();
    let platforms: Vec<_> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(platforms, ["amd64", "arm64"], "{index}");

    // An arm64 job takes the arm64 entry (the placeholder's bytes), by its digest.
    let arm = Test::ecs_task(&format!(
        "[ecr]\nregistry_endpoint = \"{}\"\n\n[image]\nagent = \"{reference}\"\n",
        reg.host()
    ))
    .envs(services::moto_env_for(moto));
    ok(&arm, &["build"]);
    let a = built_agent(&arm);
    assert_eq!(a["arch"], "arm64", "{a}");
    assert_eq!(a["source"]["kind"], "image", "{a}");
    assert_eq!(a["source"]["digest"], digest_of("arm64"), "{a}");
    let bytes = std::fs::read(arm64_placeholder()).unwrap();
    assert_eq!(a["sha256"], sha256(&bytes), "the placeholder's bytes");
    let shown = ok(&arm, &["images"]).stdout;
    assert!(
        shown.contains("agent image") && shown.contains(&digest_of("arm64")),
        "{shown}"
    );

    // An amd64 job takes the amd64 entry, which runs: a task in a FROM-scratch image.
    let t = job_on(moto, Base::Scratch);
    let toml = std::fs::read_to_string(t.dir.path().join("jobrun.toml")).unwrap();
    t.write(
        "jobrun.toml",
        &toml.replace("[image]\n", &format!("[image]\nagent = \"{reference}\"\n")),
    );
    ok(&t, &["build", "--push"]);
    let a = built_agent(&t);
    assert_eq!(a["source"]["digest"], digest_of("amd64"), "{a}");
    ok(&t, &["up"]);
    let run = t.submit_detached(&[json!({"fake": {"hold_until_receipt": true}})]);
    play_tasks(
        &t,
        moto,
        &run,
        1,
        Play::Container(&format!("{}:latest", t.name)),
    );
    t.wait_for(&run, "the run to succeed", |s| s["state"] == "succeeded");
    assert_eq!(result_base(&t, &run), "scratch");
    let used = &t.record(&run)["ecs"]["agent"];
    assert!(
        used["source"]
            .as_str()
            .unwrap()
            .contains(&digest_of("amd64")),
        "{used}"
    );
    // The pull is cached by version and architecture: the next build asks no registry.
    let cached = t
        .state
        .path()
        .join("agents")
        .join(format!("{}-amd64", env!("CARGO_PKG_VERSION")));
    assert!(cached.join("agent.json").is_file() && cached.join("files.tar").is_file());
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{:x}", sha2::Sha256::digest(bytes))
}

#[test]
fn an_ecs_image_without_a_jobrun_for_its_architecture_is_refused_at_build() {
    let reg = services::plain_registry();
    let extra = format!(
        "[ecr]\nregistry_endpoint = \"{}\"\n\n[image]\nplatform = \"linux/arm64\"\n",
        reg.host()
    );
    // No agent image (the harness empties JOBRUN_AGENT_IMAGE), and this jobrun is amd64.
    let t = Test::ecs_task(&extra).envs(services::moto_env());
    if std::env::consts::ARCH == "x86_64" {
        let r = t.run(&["build"]);
        r.assert_error(2, "no jobrun for linux/arm64");
        assert!(r.stderr.contains("[image] agent"), "{}", r.stderr);
        assert!(
            !t.state
                .path()
                .join("jobs")
                .join(&t.name)
                .join("images.json")
                .exists(),
            "nothing recorded"
        );
        let tags = docker_lines(&["images", "-q", &t.name]);
        assert!(tags.is_empty(), "nothing built: {tags:?}");
        // Said explicitly: no outputs, no jobrun, a build.
        let toml = std::fs::read_to_string(t.dir.path().join("jobrun.toml")).unwrap();
        t.write(
            "jobrun.toml",
            &toml.replace(
                r#"command = ["/task"]"#,
                "command = [\"/task\"]\noutputs = false",
            ),
        );
        ok(&t, &["build"]);
    }

    // A macOS binary, a binary of the other architecture, a program that is not jobrun.
    let macho = t.dir.path().join("jobrun-macos");
    std::fs::write(&macho, [0xcf, 0xfa, 0xed, 0xfe, 0x0c, 0, 0, 1, 0, 0, 0, 0]).unwrap();
    for (file, says) in [
        (macho.display().to_string(), "macOS (Mach-O)"),
        (
            stripped_jobrun().display().to_string(),
            "the image is arm64",
        ),
        (task_binary().display().to_string(), "the image is arm64"),
    ] {
        let bad = Test::ecs_task(&format!("{extra}agent = {{ arm64 = \"{file}\" }}\n"))
            .envs(services::moto_env());
        bad.run(&["build"]).assert_error(2, says);
    }
    // The placeholder stands for arm64 only; an amd64 job of it is refused.
    let amd = Test::ecs_task(&format!(
        "[ecr]\nregistry_endpoint = \"{}\"\n\n[image]\nplatform = \"linux/amd64\"\nagent = {{ amd64 = \"{}\" }}\n",
        reg.host(),
        arm64_placeholder().display()
    ));
    amd.run(&["build"])
        .assert_error(2, "a Linux arm64 binary, the image is amd64");
    // The old key says where it went.
    let old = Test::ecs_task("[queue]\nagent_binaries = { arm64 = \"x\" }\n");
    old.run(&["build"]).assert_error(2, "[image] agent");
}
