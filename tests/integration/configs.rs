//! What "N configurations" means: counts, files in each format, --matrix, placeholders and the
//! JOBRUN_* environment of every task.

use crate::harness::Test;

fn env_of(t: &Test, index: usize) -> String {
    t.run(&["logs", "--index", &index.to_string()]).stdout
}

#[test]
fn count_gives_index_configs_and_the_task_environment() {
    let t = Test::with_task(
        r#"command = ["/task", "out", "arg={index}/{count}", "env"]
env = { USER_GREETING = "hi" }"#,
    );
    t.build();
    let r = t.run(&["submit", "--configs", "3"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let run = t.only_run();
    let log = env_of(&t, 2);
    assert!(log.contains("arg=2/3"), "{log}");
    assert!(log.contains(&format!("JOBRUN_RUN_ID={run}")), "{log}");
    assert!(log.contains("JOBRUN_INDEX=2\n"));
    assert!(log.contains("JOBRUN_COUNT=3\n"));
    assert!(log.contains("JOBRUN_CONFIG={\"index\":2}\n"));
    assert!(log.contains("JOBRUN_ATTEMPT=1\n"));
    assert!(log.contains("USER_GREETING=hi\n"));
}

#[test]
fn config_files_in_each_format_and_matrix() {
    let t = Test::with_task(
        r#"command = ["/task", "out", "model={config.model} lr={config.lr}"]
concurrency = 4"#,
    );
    t.build();
    t.write(
        "c.jsonl",
        "{\"model\":\"a\",\"lr\":0.1}\n\n{\"model\":\"b\",\"lr\":0.2}\n",
    );
    t.write("c.json", "[{\"model\":\"c\",\"lr\":1}]");
    t.write("c.csv", "model,lr\nd,0.5\ne,0.6\nf,0.7\n");
    let cases: [(&[&str], Vec<&str>); 4] = [
        (
            &["--configs", "c.jsonl"],
            vec!["model=a lr=0.1", "model=b lr=0.2"],
        ),
        (&["--configs", "c.json"], vec!["model=c lr=1"]),
        (
            &["--configs", "c.csv"],
            vec!["model=d lr=0.5", "model=e lr=0.6", "model=f lr=0.7"],
        ),
        (
            &["--matrix", "model=x,y", "--matrix", "lr=1,2"],
            vec![
                "model=x lr=1",
                "model=x lr=2",
                "model=y lr=1",
                "model=y lr=2",
            ],
        ),
    ];
    for (args, expected) in cases {
        let mut argv = vec!["submit"];
        argv.extend_from_slice(args);
        let r = t.run(&argv);
        assert_eq!(r.status, 0, "{args:?}: {}", r.stderr);
        let s = t.status("");
        assert_eq!(s["total"], expected.len(), "{args:?}");
        for (i, want) in expected.iter().enumerate() {
            assert_eq!(env_of(&t, i).trim(), *want, "{args:?} task {i}");
        }
    }
}

#[test]
fn bad_configs_are_reported_before_anything_starts() {
    let t = Test::with_task(r#"command = ["/task", "out", "{config.model}"]"#);
    t.write("bad.jsonl", "{\"model\":\"a\"}\n{\"model\": oops}\n");
    t.run(&["submit", "--configs", "bad.jsonl"])
        .assert_error(2, "bad.jsonl:2: not valid JSON");
    t.run(&["submit", "--configs", "missing.jsonl"])
        .assert_error(2, "cannot read configs file");
    t.write("unreadable.jsonl", "{}\n");
    std::fs::set_permissions(
        t.dir.path().join("unreadable.jsonl"),
        std::os::unix::fs::PermissionsExt::from_mode(0o000),
    )
    .unwrap();
    if std::fs::read(t.dir.path().join("unreadable.jsonl")).is_err() {
        // (root can read anything; the check only bites for other users)
        t.run(&["submit", "--configs", "unreadable.jsonl"])
            .assert_error(2, "cannot read configs file");
    }
    t.run(&["submit", "--configs", "2"])
        .assert_error(2, "task 0: placeholder `{config.model}`");
    t.run(&["submit", "--matrix", "novalues"])
        .assert_error(2, "--matrix `novalues`");
    t.run(&["submit"]).assert_error(2, "nothing to run");
    assert_eq!(t.run_count(), 0, "no run was recorded");
    assert!(t.containers().is_empty());
}
