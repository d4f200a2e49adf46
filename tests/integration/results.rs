//! What a run produced, on the local engine: every task's JOBRUN_OUTPUT_DIR kept under the run,
//! result.json in the record, `jobrun results` as a table / JSON / CSV (read back by Python's
//! csv module), `--sort`/`--top`/`--download`, and the reduce task with the map tasks' outputs
//! as its inputs.

use crate::harness::Test;
use serde_json::{Value, json};
use std::process::Command;

fn configs(t: &Test, lrs: &[f64]) {
    let lines: Vec<String> = lrs
        .iter()
        .map(|lr| json!({ "lr": lr }).to_string())
        .collect();
    t.write("configs.jsonl", &(lines.join("\n") + "\n"));
}

fn results_json(t: &Test, extra: &[&str]) -> Value {
    let mut args = vec!["results", "-o", "json"];
    args.extend(extra);
    let r = t.run(&args);
    assert_eq!(r.status, 0, "results: {}", r.stderr);
    r.json()
}

fn column(rows: &Value, key: &str) -> Vec<Value> {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| r.get(key).cloned().unwrap_or(Value::Null))
        .collect()
}

#[test]
fn outputs_results_and_a_reduce_over_every_map_task() {
    let t = Test::with_task(
        r#"command = ["/task", "write", "model/weights.txt", "m{index}", "write", "result.json", "{{\"loss\": {config.lr}, \"i\": {index}}}", "fail-if", "{index}", "2", "3"]

[reduce]
command = ["/task", "ls-env", "JOBRUN_INPUTS_DIR", "write", "result.json", "{{\"best\": 1, \"of\": {count}}}", "write", "summary.txt", "done"]
when = "always""#,
    );
    t.build();
    configs(&t, &[0.5, 0.1, 0.9, 0.3]);
    let r = t.run(&["submit", "--configs", "configs.jsonl"]);
    assert_eq!(r.status, 1, "task 2 fails: {}", r.stderr);
    let run = t.only_run();

    // Every task's folder is under the run, the failed task's too.
    let outputs = t.state.path().join("runs").join(&run).join("outputs");
    for i in 0..4 {
        let weights = std::fs::read_to_string(outputs.join(format!("{i}/model/weights.txt")));
        assert_eq!(weights.unwrap(), format!("m{i}"));
    }

    // The reduce ran after them (when = "always") and saw exactly the four folders.
    let status = t.status(&run);
    let tasks = status["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 5, "four map tasks and the reduce");
    assert_eq!(tasks[4]["state"], "succeeded", "{status}");
    let reduce_log = t.run(&["logs", "--index", "4"]).stdout;
    let top: Vec<&str> = reduce_log
        .lines()
        .filter_map(|l| l.strip_prefix("ls:"))
        .filter(|p| !p.contains('/'))
        .collect();
    assert_eq!(top, ["0", "1", "2", "3"], "{reduce_log}");
    assert!(
        reduce_log.contains("ls:2/model/weights.txt"),
        "{reduce_log}"
    );

    // The table: flat keys, numbers kept numbers, the failed task's result kept too.
    let table = results_json(&t, &[]);
    assert_eq!(
        column(&table["rows"], "index"),
        [json!(0), json!(1), json!(2), json!(3)]
    );
    assert_eq!(
        column(&table["rows"], "result.loss"),
        [json!(0.5), json!(0.1), json!(0.9), json!(0.3)]
    );
    assert_eq!(column(&table["rows"], "config.lr")[2], json!(0.9));
    assert_eq!(column(&table["rows"], "state")[2], json!("failed"));
    assert_eq!(table["reduce"]["result.best"], 1);
    // The reduce's command is filled as a map task's: {count} is the map tasks', `{{` a brace.
    assert_eq!(table["reduce"]["result.of"], 4);
    let text = t.run(&["results"]).stdout;
    assert!(
        text.lines()
            .next()
            .unwrap()
            .trim_start()
            .starts_with("index  state"),
        "{text}"
    );
    // The reduce is a row of the same table, its result keys as columns.
    let head = text.lines().next().unwrap();
    assert!(
        head.contains("result.best") && head.contains("result.of"),
        "{text}"
    );
    let reduce = text
        .lines()
        .find(|l| l.trim_start().starts_with("reduce"))
        .unwrap();
    assert!(reduce.contains("succeeded"), "{text}");
    let words: Vec<&str> = reduce.split_whitespace().collect();
    assert!(
        words.contains(&"1") && words.contains(&"4"),
        "best=1, of=4: {text}"
    );

    // Ranked by a result key.
    let best = results_json(&t, &["--sort", "loss", "--top", "2"]);
    assert_eq!(column(&best["rows"], "index"), [json!(1), json!(3)]);
    let worst = results_json(&t, &["--sort", "result.loss", "--desc", "--top", "1"]);
    assert_eq!(column(&worst["rows"], "index"), [json!(2)]);
    t.run(&["results", "--sort", "accuracy"])
        .assert_error(2, "has no column `accuracy`");

    // CSV, as Python reads it.
    let csv = t.run(&["results", "-o", "csv", "--sort", "loss"]);
    assert_eq!(csv.status, 0, "{}", csv.stderr);
    let parsed = Command::new("python3")
        .args([
            "-c",
            "import csv, json, sys; print(json.dumps(list(csv.DictReader(sys.stdin))))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(csv.stdout.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    let rows: Value = serde_json::from_slice(&parsed.stdout).unwrap();
    assert_eq!(column(&rows, "index"), ["1", "3", "0", "2"]);
    assert_eq!(column(&rows, "result.loss")[0], "0.1");
    t.run(&["status", "-o", "csv"])
        .assert_error(2, "-o csv is for `jobrun results` only");

    // Download: every folder, then only what changed.
    let out = t.dir.path().join("out");
    let d = t.run(&["results", "--download", out.to_str().unwrap(), "-o", "json"]);
    assert_eq!(d.status, 0, "{}", d.stderr);
    assert!(d.stderr.contains("10 files fetched"), "{}", d.stderr);
    assert_eq!(
        std::fs::read_to_string(out.join("3/model/weights.txt")).unwrap(),
        "m3"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("reduce/summary.txt")).unwrap(),
        "done"
    );
    let again = t.run(&["results", "--download", out.to_str().unwrap()]);
    assert!(
        again
            .stderr
            .contains("0 files fetched (0 bytes), 10 already there"),
        "{}",
        again.stderr
    );
}

#[test]
fn a_result_that_is_too_large_or_not_an_object_is_one_error_on_its_task() {
    let t = Test::with_task(
        r#"command = ["/task", "fill-result", "70000", "fail-if", "{index}", "0", "0", "write", "result.json", "[1, 2]", "fail-if", "{index}", "1", "0", "write", "result.json", "{{\"ok\": true}}"]"#,
    );
    t.build();
    let r = t.run(&["submit", "--configs", "3"]);
    // `fail-if` with code 0 ends the listed task early (successfully): task 0 leaves the large
    // result, task 1 the array, task 2 an object.
    assert_eq!(r.status, 0, "{}", r.stderr);
    let table = results_json(&t, &[]);
    let errors = column(&table["rows"], "result_error");
    assert!(
        errors[0].as_str().unwrap().contains("over the 64 KiB"),
        "{table}"
    );
    assert!(
        errors[1]
            .as_str()
            .unwrap()
            .contains("JSON object, not an array"),
        "{table}"
    );
    assert_eq!(errors[2], Value::Null);
    assert_eq!(
        column(&table["rows"], "result.ok"),
        [Value::Null, Value::Null, json!(true)]
    );
    assert_eq!(
        column(&table["rows"], "state"),
        ["succeeded", "succeeded", "succeeded"]
    );
}

#[test]
fn the_reduce_waits_for_every_map_task_and_retry_brings_it_back() {
    let t = Test::with_task(
        r#"command = ["/task", "write", "n.txt", "{index}", "fail-once-if", "{index}", "1", "3"]

[reduce]
command = ["/task", "ls-env", "JOBRUN_INPUTS_DIR", "env"]"#,
    );
    t.build();
    let r = t.run(&["submit", "--configs", "3"]);
    assert_eq!(r.status, 1, "{}", r.stderr);
    let s = t.status("");
    assert_eq!(s["tasks"][1]["state"], "failed");
    assert_eq!(s["tasks"][3]["state"], "failed");
    let why = s["tasks"][3]["reason"].as_str().unwrap();
    assert!(why.contains("not run: 1 map task did not succeed"), "{why}");

    let retry = t.run(&["retry", "--failed"]);
    assert_eq!(retry.status, 0, "{}", retry.stderr);
    let s = t.status("");
    assert_eq!(s["succeeded"], 4, "{s}");
    let log = t.run(&["logs", "--index", "3"]).stdout;
    assert!(log.contains("ls:1/n.txt"), "{log}");
    assert!(log.contains("JOBRUN_COUNT=3"), "{log}");
    assert!(log.contains("JOBRUN_STAGE=reduce"), "{log}");
    assert!(log.contains("JOBRUN_INPUTS_DIR=/jobrun/inputs"), "{log}");
}

#[test]
fn the_wordcount_reduce_counts_the_whole_corpus() {
    let t = Test::new();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/wordcount");
    for rel in [
        "Dockerfile",
        "jobrun.toml",
        "src/main.rs",
        "data/corpus.txt",
    ] {
        t.write(
            rel,
            &std::fs::read_to_string(format!("{example}/{rel}")).unwrap(),
        );
    }
    // The example's own name, made unique for this test.
    let toml = std::fs::read_to_string(t.dir.path().join("jobrun.toml")).unwrap();
    t.write(
        "jobrun.toml",
        &toml.replace("name = \"wordcount\"", &format!("name = \"{}\"", t.name)),
    );
    t.build();
    let r = t.run(&["submit", "--configs", "5"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let table = results_json(&t, &[]);
    let shards: i64 = column(&table["rows"], "result.words")
        .iter()
        .map(|w| w.as_i64().unwrap())
        .sum();
    let total = table["reduce"]["result.words"].as_i64().unwrap();
    // An independent count: words as the example splits them (the corpus is ASCII).
    let counted = Command::new("python3")
        .args([
            "-c",
            "import re, sys; print(len([w for w in (m.strip(\"'\") for m in re.findall(r\"[A-Za-z0-9']+\", open(sys.argv[1]).read())) if w]))",
        ])
        .arg(t.dir.path().join("data/corpus.txt"))
        .output()
        .unwrap();
    let counted: i64 = String::from_utf8_lossy(&counted.stdout)
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        total, counted,
        "the reduce's total is the corpus's word count"
    );
    assert_eq!(shards, counted, "and the shards add up to it");
    assert_eq!(table["reduce"]["result.shards"], 5);
}

#[test]
fn the_retrain_example_trains_and_its_reduce_picks_the_best() {
    // The example's image is python:3.12-slim, which cannot be pulled here: its two scripts run
    // as jobrun runs them, with the same variables, on this machine's python3.
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/retrain");
    let configs = std::fs::read_to_string(format!("{example}/configs.jsonl")).unwrap();
    assert_eq!(configs.lines().count(), 100);
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("outputs");
    let picks = [0usize, 41, 99];
    let mut losses = vec![];
    for (i, line) in configs
        .lines()
        .enumerate()
        .filter(|(i, _)| picks.contains(i))
    {
        let out = inputs.join(i.to_string());
        std::fs::create_dir_all(&out).unwrap();
        let r = Command::new("python3")
            .arg(format!("{example}/train.py"))
            .env("JOBRUN_CONFIG", line)
            .env("JOBRUN_INDEX", i.to_string())
            .env("JOBRUN_OUTPUT_DIR", &out)
            .output()
            .unwrap();
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        let result: Value =
            serde_json::from_slice(&std::fs::read(out.join("result.json")).unwrap()).unwrap();
        assert!(out.join("model.json").exists());
        losses.push((i, result["loss"].as_f64()));
    }
    let reduced = dir.path().join("reduce");
    std::fs::create_dir_all(&reduced).unwrap();
    let r = Command::new("python3")
        .arg(format!("{example}/reduce.py"))
        .env("JOBRUN_INPUTS_DIR", &inputs)
        .env("JOBRUN_OUTPUT_DIR", &reduced)
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let best: Value =
        serde_json::from_slice(&std::fs::read(reduced.join("result.json")).unwrap()).unwrap();
    let (want, _) = losses
        .iter()
        .filter_map(|(i, l)| l.map(|l| (*i, l)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap();
    assert_eq!(best["best_index"], want, "{best} from {losses:?}");
    assert_eq!(best["trained"], 3);
    assert!(reduced.join("best-model.json").exists());
}

#[test]
fn the_reduce_can_run_in_another_local_image() {
    let t = Test::with_task(r#"command = ["/task", "write", "n.txt", "{index}"]"#);
    t.build();
    // Another image of the engine: here the job's own under another name.
    let reducer = format!("{}-reducer:1", t.name);
    let tagged = Command::new("docker")
        .args(["tag", &format!("{}:latest", t.name), &reducer])
        .status()
        .unwrap();
    assert!(tagged.success());
    let toml = std::fs::read_to_string(t.dir.path().join("jobrun.toml")).unwrap();
    t.write(
        "jobrun.toml",
        &format!("{toml}\n[reduce]\ncommand = [\"/task\", \"ls-env\", \"JOBRUN_INPUTS_DIR\"]\nimage = \"{reducer}\"\n"),
    );
    let r = t.run(&["submit", "--configs", "2"]);
    let _ = Command::new("docker").args(["rmi", &reducer]).output();
    assert_eq!(r.status, 0, "{}", r.stderr);
    let log = t.run(&["logs", "--index", "2"]).stdout;
    assert!(log.contains("ls:1/n.txt"), "{log}");
    let rec: Value = t.record(&t.only_run());
    assert!(
        rec["settings"]["reduce"]["image"]
            .as_str()
            .unwrap()
            .starts_with("sha256:"),
        "the reducer is recorded by id: {}",
        rec["settings"]
    );
}

/// `submit --reuse`: a run of three configurations, then the same three and a new one — only
/// the new one runs; the others get their twins' results and outputs (copied into the new
/// run's folder, so the reduce reads them), cost nothing, and say where they come from.
/// `--dry-run` counts only what will run; a bad `--reuse RUN` is one error and starts nothing;
/// a twin whose outputs were deleted runs again.
#[test]
fn reuse_runs_only_what_did_not_run_before() {
    let t = crate::harness::Test::with_task(
        r#"command = ["/task", "write", "model.txt", "m{config.lr}", "write", "result.json", "{{\"loss\": {config.lr}}}"]"#,
    );
    t.build();
    let configs = |lrs: &[u32]| {
        lrs.iter()
            .map(|lr| format!("{{\"lr\": {lr}}}\n"))
            .collect::<String>()
    };
    t.write("first.jsonl", &configs(&[1, 2, 3]));
    let first = t.run(&["submit", "--configs", "first.jsonl"]);
    assert_eq!(first.status, 0, "{}", first.stderr);
    let first_run = t.only_run();

    t.write("again.jsonl", &configs(&[1, 2, 3, 4]));
    let plan = t.run(&["submit", "--configs", "again.jsonl", "--reuse", "--dry-run"]);
    assert_eq!(plan.status, 0, "{}", plan.stderr);
    assert!(
        plan.stdout
            .contains("plan: 4 tasks (3 reused from earlier runs, 1 to run)"),
        "{}",
        plan.stdout
    );

    // Bad input: one error, exit 2, no run.
    t.run(&[
        "submit",
        "--configs",
        "again.jsonl",
        "--reuse",
        "20990101-000000-nope-0000",
    ])
    .assert_error(2, "--reuse 20990101-000000-nope-0000: no such run");
    let other = crate::harness::Test::with_task(r#"command = ["/task"]"#);
    other.build();
    assert_eq!(other.run(&["submit", "--configs", "1"]).status, 0);
    let other_run = other.only_run();
    let foreign = t
        .command(&["submit", "--configs", "again.jsonl", "--reuse", &other_run])
        .env("JOBRUN_STATE_DIR", other.state.path())
        .output()
        .unwrap();
    assert_eq!(foreign.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&foreign.stderr).contains("it is a run of job"),
        "{}",
        String::from_utf8_lossy(&foreign.stderr)
    );
    assert_eq!(t.run_count(), 1, "nothing was started");

    let again = t.run(&[
        "submit",
        "--configs",
        "again.jsonl",
        "--reuse",
        "-o",
        "json",
    ]);
    assert_eq!(again.status, 0, "{}", again.stderr);
    let s = t.status("");
    assert_eq!(s["reused"], 3, "{s}");
    let run = s["run_id"].as_str().unwrap().to_string();
    for i in 0..3 {
        assert_eq!(s["tasks"][i]["reused_from"], format!("{first_run}#{i}"));
        assert_eq!(s["tasks"][i]["attempts"], 0, "it did not run");
    }
    assert!(s["tasks"][3].get("reused_from").is_none());
    assert_eq!(s["tasks"][3]["attempts"], 1);
    let r = t.run(&["results", &run, "-o", "json"]);
    let table = r.json();
    let losses: Vec<Value> = table["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["result.loss"].clone())
        .collect();
    assert_eq!(losses, [json!(1), json!(2), json!(3), json!(4)]);
    let copied = t
        .state
        .path()
        .join("runs")
        .join(&run)
        .join("outputs/1/model.txt");
    assert_eq!(std::fs::read_to_string(copied).unwrap(), "m2");
    let rec = t.record(&run);
    assert!(
        rec["tasks"][0]["bills"].is_null(),
        "a reused task is not billed"
    );

    // A twin whose outputs are gone: that task runs again.
    std::fs::remove_dir_all(
        t.state
            .path()
            .join("runs")
            .join(&first_run)
            .join("outputs/0"),
    )
    .unwrap();
    let third = t.run(&["submit", "--configs", "first.jsonl", "--reuse", &first_run]);
    assert_eq!(third.status, 0, "{}", third.stderr);
    assert!(
        third.stderr.contains("1 tasks run again"),
        "{}",
        third.stderr
    );
    let s = t.status("");
    assert_eq!(s["reused"], 2, "{s}");
}

#[test]
fn the_summary_status_and_results_say_which_configuration_won() {
    let t = Test::with_task(
        r#"command = ["/task", "write", "result.json", "{{\"loss\": {config.lr}}}"]

[results]
metric = "loss"
goal = "minimize""#,
    );
    t.build();
    configs(&t, &[0.5, 0.1, 0.9, 0.3]);
    let r = t.run(&["submit", "--configs", "configs.jsonl"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let line = "best: #1 lr=0.1 → loss 0.1 (smallest of 4; 2nd: #3 0.3, median 0.4)";
    assert!(
        r.stdout.contains(line),
        "the summary names the winner:\n{}",
        r.stdout
    );
    let run = t.only_run();
    let status = t.status(&run);
    assert_eq!(status["best"]["index"], 1, "{}", status["best"]);
    assert_eq!(status["best"]["value"], 0.1);
    assert_eq!(status["best"]["config"]["lr"], 0.1);
    assert_eq!(status["best"]["second"]["index"], 3);
    let text = t.run(&["status", &run]).stdout;
    assert!(text.contains(line), "{text}");
    let results = t.run(&["results", &run]).stdout;
    assert!(results.contains(&format!("{line}\n")), "{results}");
    // And which key goes with the loss: here lr, all the way.
    assert!(
        results
            .trim_end()
            .ends_with("importance (rank correlation with loss over 4 tasks): lr +1.00"),
        "{results}"
    );
    assert_eq!(
        results_json(&t, &[])["importance"],
        json!([{"key": "lr", "rank_correlation": 1.0, "n": 4}])
    );
    // Another objective at read time: the largest loss "wins".
    let most = results_json(&t, &["--metric", "loss", "--goal", "maximize"]);
    assert_eq!(most["best"]["index"], 2, "{}", most["best"]);
    // A metric no task has names no winner.
    let none = results_json(&t, &["--metric", "accuracy"]);
    assert!(none.get("best").is_none(), "{none}");
}

/// The objective from the command line (`submit --metric --goal`), or, without one, from the
/// reduce's `best_*` key; the end's notification names the winner too.
#[test]
fn the_winner_by_a_flag_or_by_the_reduce_s_best_key_and_in_the_notification() {
    let hook = crate::unattended::Receiver::start(0);
    let t = Test::with_task(&format!(
        r#"command = ["/task", "write", "result.json", "{{{{\"acc\": {{config.lr}}}}}}"]

[reduce]
command = ["/task", "write", "result.json", "{{{{\"best_acc\": 0.9}}}}"]

[notify]
webhook = "{}""#,
        hook.url()
    ));
    t.build();
    configs(&t, &[0.5, 0.9, 0.3]);
    // No [results] metric: the reduce's best_acc names acc, and 0.9 is its largest.
    let r = t.run(&["submit", "--configs", "configs.jsonl"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let line = "best: #1 lr=0.9 → acc 0.9 (largest of 3; 2nd: #0 0.5, median 0.5)";
    assert!(r.stdout.contains(line), "{}", r.stdout);
    let got = hook.got();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].1["best"]["index"], 1, "{}", got[0].1);
    assert!(
        got[0].1["text"].as_str().unwrap().contains(line),
        "{}",
        got[0].1
    );
    // A flag says otherwise: the smallest acc wins, kept in the run's settings.
    let r = t.run(&[
        "submit",
        "--configs",
        "configs.jsonl",
        "--metric",
        "acc",
        "--goal",
        "minimize",
    ]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("best: #2 lr=0.3 → acc 0.3 (smallest of 3;"),
        "{}",
        r.stdout
    );
    let s = t.status("");
    assert_eq!(
        (s["best"]["index"].as_u64(), s["best"]["goal"].as_str()),
        (Some(2), Some("minimize"))
    );
    // --goal alone is refused with the key it is about.
    let bad = t.run(&["submit", "--configs", "configs.jsonl", "--goal", "maximize"]);
    assert_eq!(bad.status, 2, "{}", bad.stderr);
    assert!(
        bad.stderr.contains("results.goal needs results.metric"),
        "{}",
        bad.stderr
    );
}

/// `[results] group = ["seed"]`: repeats of a configuration are one configuration, judged by
/// their mean; `results` shows one row per configuration (mean ± sd, n, its tasks) with the
/// keys in the order the configurations give them, `--tasks` every task, `-o json` both;
/// `--group` says it at read time; a group without a metric, or of a key no configuration
/// has, is refused with what to write instead.
#[test]
fn repeats_grouped_by_seed_are_judged_by_their_mean() {
    let t = Test::with_task(
        r#"command = ["/task", "write", "result.json", "{{\"loss\": {config.lr}{config.seed}}}"]

[results]
metric = "loss"
group = ["seed"]"#,
    );
    t.build();
    // The loss is lr's digits followed by the seed's: 0.11, 0.12, 0.13 for lr 0.1.
    let lines: Vec<String> = [0.1, 0.2]
        .iter()
        .flat_map(|lr| (1..=3).map(move |seed| json!({"width": 64, "lr": lr, "seed": seed})))
        .map(|c| c.to_string())
        .collect();
    t.write("configs.jsonl", &(lines.join("\n") + "\n"));
    let r = t.run(&["submit", "--configs", "configs.jsonl"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let line = "best: #0 width=64 lr=0.1 → loss 0.12 ± 0.01 (mean of 3 over seed; smallest mean \
                of 2 configurations; 2nd: #3 0.22, median 0.17)";
    assert!(r.stdout.contains(line), "{}", r.stdout);
    let run = t.only_run();
    let text = t.run(&["results", &run]).stdout;
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows[0], "2 configurations (seed grouped):", "{text}");
    assert_eq!(
        rows[1].split_whitespace().collect::<Vec<_>>(),
        ["config.width", "config.lr", "n", "result.loss", "tasks"],
        "the configurations' order, not the alphabet's: {text}"
    );
    assert!(rows[2].ends_with("0.12 ± 0.01  #0 #1 #2  ← best"), "{text}");
    assert!(rows[3].ends_with("0.22 ± 0.01  #3 #4 #5"), "{text}");
    assert!(text.contains(&format!("{line}\n")), "{text}");
    assert!(
        text.trim_end()
            .ends_with("importance (rank correlation with loss over 6 tasks): lr +0.88"),
        "the seed is a repeat, not a choice: {text}"
    );
    let each = t.run(&["results", &run, "--tasks"]).stdout;
    assert!(
        each.starts_with("index  state      config.width  config.lr  config.seed  result.loss"),
        "{each}"
    );
    let json = results_json(&t, &[]);
    assert_eq!(
        json["rows"].as_array().unwrap().len(),
        6,
        "every task in JSON"
    );
    assert_eq!(json["groups"]["by"], json!(["seed"]));
    let first = &json["groups"]["rows"][0];
    assert_eq!(
        (first["n"].clone(), first["tasks"].clone()),
        (json!(3), json!([0, 1, 2]))
    );
    assert!(
        (first["result.loss"]["mean"].as_f64().unwrap() - 0.12).abs() < 1e-9,
        "{first}"
    );
    assert_eq!(json["best"]["spread"]["n"], 3, "{}", json["best"]);

    // At read time: without the group, task #0 (0.11) wins alone.
    t.write(
        "jobrun.toml",
        &std::fs::read_to_string(t.dir.path().join("jobrun.toml"))
            .unwrap()
            .replace("group = [\"seed\"]", ""),
    );
    let r = t.run(&["submit", "--configs", "configs.jsonl"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let plain = t.status("")["run_id"].as_str().unwrap().to_string();
    assert_eq!(results_json(&t, &[&plain])["best"]["index"], 0);
    assert!(results_json(&t, &[&plain]).get("groups").is_none());
    let grouped = results_json(&t, &[&plain, "--group", "seed"]);
    assert_eq!(
        grouped["best"]["spread"]["by"],
        json!(["seed"]),
        "{grouped}"
    );
    t.run(&["results", &plain, "--group", "sed"])
        .assert_error(2, "--group sed: the configurations of run");

    t.write(
        "jobrun.toml",
        &std::fs::read_to_string(t.dir.path().join("jobrun.toml"))
            .unwrap()
            .replace("metric = \"loss\"", "group = [\"seed\"]"),
    );
    t.run(&["submit", "--configs", "configs.jsonl"])
        .assert_error(2, "results.group needs results.metric");
}
