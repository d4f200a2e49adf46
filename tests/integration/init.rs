//! `jobrun init`: every template renders into a job whose settings are valid.

use crate::harness::Test;

#[test]
fn every_template_renders_a_valid_job() {
    for template in ["shell", "python", "go", "rust"] {
        let t = Test::new();
        let dir = t.dir.path().join(format!("my-{template}-job"));
        let r = t.run(&["init", "--template", template, dir.to_str().unwrap()]);
        assert_eq!(r.status, 0, "{template}: {}", r.stderr);
        assert!(
            dir.join("Dockerfile").is_file(),
            "{template} has a Dockerfile"
        );
        let toml = std::fs::read_to_string(dir.join("jobrun.toml")).unwrap();
        assert!(
            toml.contains(&format!("name = \"my-{template}-job\"")),
            "{toml}"
        );
        let c = t.run(&[
            "--file",
            dir.join("jobrun.toml").to_str().unwrap(),
            "config",
            "--output",
            "json",
        ]);
        assert_eq!(c.status, 0, "{template}: {}", c.stderr);
        assert!(c.json()["run"]["command"].is_array() || c.json()["run"]["command"].is_null());

        // Never overwrites: a second init fails and changes nothing.
        std::fs::write(dir.join("jobrun.toml"), "mine").unwrap();
        t.run(&["init", "--template", template, dir.to_str().unwrap()])
            .assert_error(2, "already exists");
        assert_eq!(
            std::fs::read_to_string(dir.join("jobrun.toml")).unwrap(),
            "mine"
        );
    }
    let t = Test::new();
    t.run(&["init", "--template", "cobol", "x"])
        .assert_error(2, "unknown template `cobol`");
    assert!(!t.dir.path().join("x").exists());
}

#[test]
fn completions_into_a_closed_pipe_end_quietly() {
    use std::io::Read;
    let t = Test::new();
    // `jobrun completions bash | head -1`: the reader goes away after the first bytes.
    let mut child = t.spawn(&["completions", "bash"]);
    let mut first = [0u8; 16];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

/// What a newcomer meets first: `--help` lists what they run (the in-AWS commands stay out of
/// it), `-o` says where csv works, a task with no log says so, and `status` outside a job
/// folder says which job's run it shows.
#[test]
fn help_logs_and_status_tell_a_newcomer_what_they_see() {
    let t = Test::new();
    let help = t.run(&["--help"]).stdout;
    let commands: Vec<&str> = help
        .lines()
        .filter_map(|l| l.strip_prefix("  ")?.split_whitespace().next())
        .collect();
    for hidden in ["agent", "task", "dispatch", "drive", "agent-image"] {
        assert!(!commands.contains(&hidden), "{hidden} in --help:\n{help}");
    }
    assert!(commands.contains(&"submit"), "{help}");
    assert!(help.contains("or csv (`jobrun"), "{help}");
    let submit = t.run(&["submit", "--help"]).stdout;
    assert!(
        submit.contains("{config.KEY}")
            && submit.contains("concurrency 1000 tasks at once, max_attempts 3"),
        "{submit}"
    );

    let t = Test::with_task(r#"command = ["/task", "sleep", "30"]"#);
    t.build();
    let run = t.submit_detached(&[serde_json::json!({"a": 1})]);
    let logs = t.run(&["logs", &run, "--index", "0"]);
    assert_eq!(logs.status, 0, "{}", logs.stderr);
    if logs.stdout.is_empty() {
        assert!(
            logs.stderr
                .contains(&format!("task 0 of run {run} has no log yet")),
            "{}",
            logs.stderr
        );
    }
    let c = t.run(&["cancel", &run]);
    assert_eq!(c.status, 0, "{}", c.stderr);
    // From another folder, with no jobrun.toml: the note names the job.
    let elsewhere = tempfile::tempdir().unwrap();
    let mut status = t.command(&["status"]);
    status.current_dir(elsewhere.path());
    let out = status.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "no jobrun.toml here: run {run} is the latest of any job (job {})",
            t.name
        )),
        "{stderr}"
    );
}

/// A command the image does not have is named as such, not in runc's words.
#[test]
fn a_command_missing_from_the_image_is_named_as_the_job_s_setting() {
    let t = Test::with_task(r#"command = ["/wordcount-typo"]"#);
    t.build();
    let r = t.run(&["submit", "--configs", "1"]);
    assert_eq!(r.status, 1, "{}\n{}", r.stdout, r.stderr);
    let said = format!("{}{}", r.stdout, r.stderr);
    assert!(
        said.contains("run.command: /wordcount-typo is not in the image"),
        "{said}"
    );
    assert!(!said.contains("runc create failed"), "{said}");
}
