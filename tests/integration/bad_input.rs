//! Each bad input: one clear error line with a hint, the documented exit code, nothing created.

use crate::harness::Test;

fn assert_nothing_created(t: &Test) {
    assert_eq!(t.run_count(), 0, "no run recorded");
    assert!(t.containers().is_empty(), "no container");
    assert!(t.images().is_empty(), "no image");
}

#[test]
fn config_errors_exit_2_and_name_key_file_and_line() {
    let t = Test::with_task(r#"command = ["/task"]"#);
    let good = std::fs::read_to_string(t.dir.path().join("jobrun.toml")).unwrap();

    t.write("jobrun.toml", "[job]\nname = \"x\n");
    t.run(&["build"]).assert_error(2, "jobrun.toml:2");

    t.write("jobrun.toml", &format!("{good}concurency = 3\n"));
    let r = t.run(&["submit", "--configs", "2"]);
    r.assert_error(2, "run.concurency: unknown field `concurency`");
    assert!(r.stderr.contains("jobrun.toml:"), "names the file");

    t.write("jobrun.toml", &format!("{good}max_attempts = \"two\"\n"));
    t.run(&["build"])
        .assert_error(2, "run.max_attempts: invalid type");

    t.write(
        "jobrun.toml",
        &good.replace(
            "[resources]",
            "[image]\ncompression = \"lz4\"\n\n[resources]",
        ),
    );
    t.run(&["build"]).assert_error(
        2,
        "image.compression: unknown variant `lz4`, expected `gzip` or `zstd`",
    );

    t.write(
        "jobrun.toml",
        &good.replace(
            "memory = \"512MB\"",
            "memory = \"512MB\"\nmax_memory = \"1536MB\"",
        ),
    );
    t.run(&["build"]).assert_error(
        2,
        "resources.max_memory = 1536MB is not a Fargate memory size",
    );
    t.write(
        "jobrun.toml",
        &good.replace(
            "memory = \"512MB\"",
            "memory = \"1GB\"\nmax_memory = \"512MB\"",
        ),
    );
    t.run(&["build"])
        .assert_error(2, "resources.max_memory = 512MB is less than memory = 1GB");

    t.write(
        "jobrun.toml",
        &good.replace("memory = \"512MB\"", "memory = \"4GB\""),
    );
    t.run(&["build"])
        .assert_error(2, "memory = 4GB is not valid with cpu = 0.25");
    t.write("jobrun.toml", &good);
    t.run(&[
        "submit",
        "--configs",
        "1",
        "--cpu",
        "16",
        "--memory",
        "36GB",
    ])
    .assert_error(2, "32GB to 120GB in 8GB steps");

    let empty = Test::new();
    empty.run(&["build"]).assert_error(2, "no jobrun.toml in");
    assert_nothing_created(&t);
}

#[test]
fn missing_dockerfile_and_unbuilt_image() {
    let t = Test::with_task(r#"command = ["/task"]"#);
    std::fs::remove_file(t.dir.path().join("Dockerfile")).unwrap();
    t.run(&["build"]).assert_error(2, "Dockerfile not found");
    t.run(&["submit", "--configs", "1"])
        .assert_error(2, "has not been built");
    assert_nothing_created(&t);
}

#[test]
fn unreachable_engine_is_an_environment_error() {
    let t =
        Test::with_task(r#"command = ["/task"]"#).env("DOCKER_HOST", "unix:///nonexistent.sock");
    t.run(&["build"])
        .assert_error(3, "cannot reach the Docker engine");
    let r = t.run(&["submit", "--configs", "3"]);
    r.assert_error(
        3,
        "cannot reach the Docker engine at unix:///nonexistent.sock",
    );
    assert!(
        r.stderr.contains("DOCKER_HOST"),
        "the hint names DOCKER_HOST"
    );
    assert_nothing_created(&t);
}

#[test]
fn settings_layer_env_below_file_below_flags() {
    let t = Test::with_task("command = [\"/task\"]\nconcurrency = 3")
        .env("JOBRUN_CONCURRENCY", "7")
        .env("JOBRUN_MAX_ATTEMPTS", "4");
    let c = t.run(&["config", "--output", "json"]).json();
    assert_eq!(c["run"]["concurrency"], 3, "the file beats the environment");
    assert_eq!(
        c["run"]["max_attempts"], 4,
        "the environment fills what the file leaves out"
    );
    let c = t
        .run(&["config", "--output", "json", "--concurrency", "9"])
        .json();
    assert_eq!(c["run"]["concurrency"], 9, "flags beat the file");
    let bad = t.run(&["config", "--timeout", "soon"]);
    assert_eq!(bad.status, 2);

    // As text: TOML in jobrun.toml's own layout, paths normalised.
    let text = t.run(&["config"]).stdout;
    let parsed: toml::Table = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(parsed["job"]["name"].as_str(), Some(t.name.as_str()));
    assert_eq!(parsed["run"]["concurrency"].as_integer(), Some(3));
    let dockerfile = parsed["image"]["dockerfile"].as_str().unwrap();
    assert!(
        dockerfile.ends_with("/Dockerfile") && !dockerfile.contains("/./"),
        "{dockerfile}"
    );
    // …and it is a jobrun.toml: saved elsewhere, it loads to the same settings.
    let copy = tempfile::tempdir().unwrap();
    std::fs::write(copy.path().join("jobrun.toml"), &text).unwrap();
    let mut again = t.command(&["config"]);
    again.current_dir(copy.path());
    let again = again.output().unwrap();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let body = |t: &str| t.lines().skip(1).collect::<Vec<_>>().join("\n");
    assert_eq!(body(&String::from_utf8_lossy(&again.stdout)), body(&text));

    // The manual page, from the same definition as --help.
    let man = t.run(&["man"]);
    assert_eq!(man.status, 0);
    assert!(
        man.stdout.starts_with(".ie") && man.stdout.contains(".TH jobrun 1"),
        "{}",
        &man.stdout[..200.min(man.stdout.len())]
    );
}

#[test]
fn a_bad_reduce_is_one_clear_error_before_anything_starts() {
    let t = Test::with_task(r#"command = ["/task"]"#);
    let good = std::fs::read_to_string(t.dir.path().join("jobrun.toml")).unwrap();
    t.write("jobrun.toml", &format!("{good}\n[reduce]\ncommand = []\n"));
    t.run(&["build"]).assert_error(2, "reduce.command is empty");
    t.write(
        "jobrun.toml",
        &format!("{good}\n[reduce]\nwhen = \"sometimes\"\ncommand = [\"/task\"]\n"),
    );
    t.run(&["build"]).assert_error(2, "reduce.when");
    t.write(
        "jobrun.toml",
        &format!("{good}\n[reduce]\ncommand = [\"/task\"]\nimage = \"reducer:1\"\n")
            .replace("[job]\n", "[job]\ntarget = \"ecs\"\n"),
    );
    t.run(&["build"])
        .assert_error(2, "reduce.image works on the local target only");
    // A reduce image the engine does not have: refused at submit, no run made.
    t.write(
        "jobrun.toml",
        &format!("{good}\n[reduce]\ncommand = [\"/task\"]\nimage = \"jobrun-no-such-reducer:1\"\n"),
    );
    t.build();
    t.run(&["submit", "--configs", "2"])
        .assert_error(2, "reduce.image jobrun-no-such-reducer:1 is not an image");
    assert_eq!(t.run_count(), 0, "no run recorded");
    assert!(t.containers().is_empty(), "no container");
}

/// A run state is one of the words jobrun uses (issue "one spelling per concept"): a misspelt
/// `--state` is an error naming them, not an empty listing.
#[test]
fn a_misspelt_run_state_is_refused_with_the_states_there_are() {
    let t = Test::new();
    let r = t.run(&["runs", "--state", "runnin"]);
    assert_eq!(r.status, 2, "{}", r.stderr);
    assert!(
        r.stderr.starts_with("error: invalid value 'runnin'"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("running, cancelling, succeeded, failed, cancelled, skipped, unreadable"),
        "{}",
        r.stderr
    );
    let ok = t.run(&["runs", "--state", "running", "-o", "json"]);
    assert_eq!(ok.status, 0, "{}", ok.stderr);
}

/// A jobrun.toml that does not load, and a job's `aws.json` that cannot be read, are their
/// errors: `runs` and `status` never fall back to every job's runs, and `submit` never says
/// "run `jobrun up`" for an AWS side that exists.
#[test]
fn a_broken_job_file_or_aws_state_is_its_error_not_another_meaning() {
    let t = Test::with_task(r#"command = ["/task"]"#);
    t.write("jobrun.toml", "[job]\nname = \"x\n");
    t.run(&["runs"]).assert_error(2, "jobrun.toml:2");
    t.run(&["status"]).assert_error(2, "jobrun.toml:2");
    assert_eq!(t.run(&["runs", "--all"]).status, 0, "--all needs no job");

    let ecs = Test::ecs_task("");
    let aws = ecs.state.path().join("jobs").join(&ecs.name);
    std::fs::create_dir_all(&aws).unwrap();
    std::fs::write(aws.join("aws.json"), "{ not json").unwrap();
    let r = ecs
        .envs(crate::services::moto_env())
        .run(&["submit", "--configs", "1", "--dry-run"]);
    r.assert_error(3, "aws.json");
    assert!(!r.stderr.contains("jobrun up"), "{}", r.stderr);
}

/// `[resources] gpu = 1` on an engine without a GPU runtime (this machine's): one error before
/// anything is made, naming what the engine has and how to give it GPUs; on ECS, one error
/// until jobrun makes Managed Instances. `jobrun config` shows the GPU and loads back.
#[test]
fn a_gpu_job_without_gpus_is_one_error_before_anything_starts() {
    let t = Test::with_task("command = [\"/task\"]");
    let toml = std::fs::read_to_string(t.dir.path().join("jobrun.toml")).unwrap();
    t.write(
        "jobrun.toml",
        &toml.replace("[resources]\n", "[resources]\ngpu = 1\ngpu_type = \"l4\"\n"),
    );
    t.build();
    let r = t.run(&["submit", "--configs", "2"]);
    r.assert_error(
        3,
        "[resources] gpu = 1: the local Docker engine has no GPU runtime",
    );
    assert!(
        r.stderr.contains("nvidia-ctk runtime configure"),
        "{}",
        r.stderr
    );
    assert_eq!(t.run_count(), 0, "no run recorded");
    let shown = t.run(&["config"]);
    assert_eq!(shown.status, 0, "{}", shown.stderr);
    assert!(
        shown.stdout.contains("gpu = 1") && shown.stdout.contains("gpu_type = \"l4\""),
        "{}",
        shown.stdout
    );
    t.write("jobrun.toml", &shown.stdout);
    assert_eq!(
        t.run(&["config"]).stdout,
        shown.stdout,
        "jobrun config loads back"
    );
    // On ECS the same job runs on Managed Instances, and `config` says so.
    let ecs = t.run(&["config", "--target", "ecs"]);
    assert!(
        ecs.stdout
            .contains("# its tasks run on ECS Managed Instances"),
        "{}",
        ecs.stdout
    );
    assert!(
        !shown.stdout.contains("Managed Instances"),
        "{}",
        shown.stdout
    );
}
