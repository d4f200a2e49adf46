//! The web view's pages, as maud templates (checked when jobrun is compiled; every value is
//! escaped). They are readable without scripts — tables sort and filter by their links and
//! forms; `assets/app.js` adds what needs them: live updates, the plots, clicking a task.
//! Nothing here shows a run's settings (`[notify]`'s webhook, `[env]`), only what it did.

use crate::cost::RecordCost as _;
use crate::record::{Phase, RunRecord, RunState, TaskRecord, TaskState};
use crate::report::{RunLine, RunStatus, overview, secs};
use axum::http::StatusCode;
use maud::{DOCTYPE, Markup, html};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

mod compare;
mod plots;
mod results;
mod trend;
pub use compare::{Compare, compare_page};
pub use results::{ResultsQuery, results_page};
pub use trend::{Trend, TrendPoint, trend_page};

/// The runs page's filters (`?job=&state=&since=`).
#[derive(Deserialize, Default)]
pub struct Filters {
    pub job: Option<String>,
    pub state: Option<RunState>,
    pub since: Option<String>,
}

/// A task whose state a live page draws as one letter.
pub fn letter(state: TaskState) -> char {
    match state {
        TaskState::Queued => 'q',
        TaskState::Running => 'r',
        TaskState::Succeeded => 's',
        TaskState::Failed => 'f',
        TaskState::Cancelled => 'c',
    }
}

pub(super) fn page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · jobrun" }
                link rel="stylesheet" href="/assets/style.css";
            }
            body {
                header { a.home href="/" { "jobrun" } span.where { (title) } }
                main { (body) }
                script src="/assets/chart.js" {}
                script src="/assets/app.js" {}
            }
        }
    }
}

pub fn error_page(status: StatusCode, message: &str) -> Markup {
    page(
        status.canonical_reason().unwrap_or("error"),
        html! { p.error { (message) } p { a href="/" { "all runs" } } },
    )
}

fn state_badge(state: RunState) -> Markup {
    html! { span class={ "state st-" (state.as_str()) } data-state=(state.as_str()) { (state.as_str()) } }
}

fn cost_text(cost: Option<&crate::cost::RunCost>) -> String {
    match cost {
        Some(c) if c.basis == crate::cost::Basis::Fargate => c.usd.to_string(),
        Some(c) => format!("({})", c.usd),
        None => "-".into(),
    }
}

pub fn runs_page(lines: &[RunLine], jobs: &[String], f: &Filters) -> Markup {
    let states = [
        RunState::Running,
        RunState::Cancelling,
        RunState::Succeeded,
        RunState::Failed,
        RunState::Cancelled,
        RunState::Skipped,
        RunState::Unreadable,
    ];
    page(
        "runs",
        html! {
            form.filters method="get" action="/" {
                label { "job " select name="job" {
                    option value="" { "any" }
                    @for j in jobs { option value=(j) selected[f.job.as_deref() == Some(j)] { (j) } }
                } }
                label { "state " select name="state" {
                    option value="" { "any" }
                    @for s in states { option value=(s.as_str()) selected[f.state == Some(s)] { (s.as_str()) } }
                } }
                label { "since " input name="since" placeholder="7d, 2026-11-30" value=(f.since.clone().unwrap_or_default()); }
                button { "show" }
            }
            @if lines.is_empty() { p { "no runs" } }
            @else {
                table #runs {
                    thead { tr { th { "run" } th { "job" } th { "state" } th.n { "tasks" } th.n { "ok" } th.n { "failed" } th.n { "cost" } th { "key" } th { "created" } th { "trend" } } }
                    tbody {
                        @for l in lines {
                            tr data-state=(l.state.as_str()) {
                                td { @if l.run_id == "-" || l.state == RunState::Unreadable { (l.run_id) } @else { a href={ "/runs/" (l.run_id) } { (l.run_id) } } }
                                td { (l.job) }
                                td { (state_badge(l.state)) @if let Some(r) = &l.reason { " " span.reason { (r) } } }
                                td.n { (l.total) } td.n { (l.succeeded) } td.n { (l.failed) }
                                td.n { (cost_text(l.cost.as_ref())) }
                                td { (l.key.clone().unwrap_or_default()) }
                                td { (l.created_at.format("%Y-%m-%d %H:%M")) }
                                td { @if !l.job.is_empty() { a href={ "/jobs/" (l.job) "/trend" } { "trend" } } }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// What a run page's script polls: the run's state, its counts line, cost, and one letter per
/// task (`q r s f c`) in index order — 10,000 tasks are 10 KB.
#[derive(Serialize)]
pub struct Live {
    pub state: RunState,
    pub counts: String,
    pub cost: String,
    pub eta: String,
    pub cells: String,
}

impl Live {
    pub fn of(rec: &RunRecord) -> Live {
        let status = RunStatus::of(rec);
        Live {
            state: status.state,
            counts: status.counts_line(),
            cost: cost_text(status.cost.as_ref()),
            eta: eta(&status),
            cells: rec.tasks.iter().map(|t| letter(t.state)).collect(),
        }
    }
}

/// When the run should end, at the pace of its tasks so far: the time per ended task times the
/// tasks left (none before the first ends, or once it has ended).
fn eta(s: &RunStatus) -> String {
    let ended = s.succeeded + s.failed + s.cancelled;
    if s.finished_at.is_some() {
        return format!("took {}", secs(s.duration_secs));
    }
    if ended == 0 {
        return "no task has ended yet".into();
    }
    let left = (s.total - ended) as f64;
    format!("about {} left", secs(s.duration_secs / ended as f64 * left))
}

/// The grid sized to the run: up to 100 tasks a square block of large cells (10 across), up to
/// 2,500 medium ones, more small cells 1,200 px wide (10,000 tasks: 75 rows). Classes, not
/// inline styles: the page's CSP allows only its own stylesheet.
fn grid_size(tasks: usize) -> &'static str {
    match tasks {
        0..=100 => "g-s",
        101..=2500 => "g-m",
        _ => "g-l",
    }
}

/// A log's last line that says something (colour codes dropped, other control characters
/// shown escaped, at most 200 characters).
pub fn last_line(log: &str) -> Option<String> {
    let line = log.lines().rev().map(str::trim).find(|l| !l.is_empty())?;
    let line: String = strip_ansi_escapes::strip_str(line)
        .chars()
        .take(200)
        .collect();
    Some(crate::ui::printable(&line, "").into_owned())
}

/// A run's page; `clues` is the last log line of the first task of each kind of failure.
pub fn run_page(
    rec: &RunRecord,
    s: &RunStatus,
    others: &[RunLine],
    csrf: &str,
    clues: &[(usize, String)],
) -> Markup {
    let live = Live::of(rec);
    let failures = overview::failure_groups(&s.tasks);
    let finished = rec.finished_at.is_some();
    page(
        &rec.run_id,
        html! {
            section #run data-run=(rec.run_id) data-finished=(finished) {
                h1 { (rec.run_id) " " span #run-state { (state_badge(s.state)) } }
                p.meta { "job " b { (rec.job) } " · " (s.target) " · image " code { (s.image) }
                    @if let Some(k) = &s.key { " · key " code { (k) } } }
                p #counts { (live.counts) }
                p { "cost " span #cost { (live.cost) } " · " span #eta { (live.eta) }
                    @if let Some(w) = &s.workers { " · first worker after " (w.first_running_secs.map(secs).unwrap_or_else(|| "-".into())) } }
                @if let Some(b) = &s.best {
                    div #winner { b { "Who won: " } (b.to_string().trim_start_matches("best: ")) " · "
                        a href={ "/runs/" (rec.run_id) "/results" } { "see it among the others" } }
                }
                @if let Some(d) = &s.driver { p #driver.meta { (d.to_string()) } }
                @if !s.waiting.is_empty() { p #waiting.meta { "waiting: " (crate::report::Waiting::line(&s.waiting)) } }
                @if let Some(line) = crate::report::phases::line(&s.phases) { p #phases.meta { "time per attempt: " (line) } }
                @if let Some(u) = &s.used { p #used.meta { "used: " (u.to_string()) } }
                @if let Some(c) = &s.checkpoints { p #checkpoints.meta { "checkpoints: " (c.to_string()) } }
                @if let Some(e) = &s.estimate { p #estimate.meta { "estimate: " (e.to_string()) } }
                @if let Some(line) = s.workers.as_ref().and_then(|w| crate::report::phases::line(&w.phases)) { p #worker-phases.meta { "workers' start: " (line) } }
                nav.links {
                    a href={ "/runs/" (rec.run_id) "/results" } { "results" }
                    @if others.iter().any(|l| l.created_at < rec.created_at) { a href={ "/runs/" (rec.run_id) "/compare" } { "compare with the run before" } }
                    a href={ "/jobs/" (rec.job) "/trend" } { "trend of " (rec.job) }
                    a href={ "/api/runs/" (rec.run_id) } { "JSON" }
                }
                div.actions {
                    @if !finished {
                        form method="post" action={ "/runs/" (rec.run_id) "/cancel" } {
                            input type="hidden" name="csrf" value=(csrf);
                            button #cancel { "cancel the run" }
                        }
                    }
                    @if finished && s.failed > 0 {
                        form method="post" action={ "/runs/" (rec.run_id) "/retry" } {
                            input type="hidden" name="csrf" value=(csrf);
                            button #retry { "retry its " (s.failed) " failed tasks" }
                        }
                    }
                }
            }
            section {
                h2 { "tasks" }
                p.legend { @for (c, name) in [('q', "queued"), ('r', "running"), ('s', "succeeded"), ('f', "failed"), ('c', "cancelled")] { i class={ "t " (c) } {} " " (name) " " } }
                // One cell per task, in index order; its state is its class (the script
                // redraws it), clicking it opens the task.
                div #grid class=(grid_size(rec.tasks.len())) data-run=(rec.run_id) {
                    @for (i, c) in live.cells.chars().enumerate() { i class={ "t " (c) } title=(i) {} }
                }
            }
            @if !failures.is_empty() {
                section #failures {
                    h2 { "failures" }
                    @for (reason, indexes) in &failures {
                        p { b { (indexes.len()) } " × " (reason) ": "
                            @for i in indexes.iter().take(50) { a href={ "/runs/" (rec.run_id) "/tasks/" (i) } { (i) } " " }
                            @if indexes.len() > 50 { "… " (overview::ranges(indexes, 20)) } }
                        @if let Some((i, line)) = clues.iter().find(|(i, _)| Some(i) == indexes.first()) {
                            pre.clue { "#" (i) ": " (line) }
                        }
                    }
                }
            }
        },
    )
}

/// A task's page; `outputs` is its output files, or why they cannot be listed.
pub fn task_page(
    rec: &RunRecord,
    t: &TaskRecord,
    outputs: &Result<Vec<(String, u64)>, String>,
    log: &str,
) -> Markup {
    let status = RunStatus::of(rec);
    let cost = rec.task_cost(t);
    let running = !t.state.is_terminal();
    page(
        &format!("{} #{}", rec.run_id, t.index),
        html! {
            h1 { a href={ "/runs/" (rec.run_id) } { (rec.run_id) } " · " (t.label()) " " span class={ "state st-" (t.state.as_str()) } { (t.state.as_str()) } }
            table.facts {
                tr { th { "attempts" } td { (t.attempts) @if t.retried_from > 0 { " (retried after " (t.retried_from) ")" } } }
                tr { th { "exit code" } td { (t.exit_code.map(|c| c.to_string()).unwrap_or_else(|| "-".into())) } }
                tr { th { "reason" } td { (t.reason.clone().unwrap_or_else(|| "-".into())) } }
                tr { th { "started" } td { (t.started_at.map(|a| a.to_rfc3339()).unwrap_or_else(|| "-".into())) } }
                tr { th { "finished" } td { (t.finished_at.map(|a| a.to_rfc3339()).unwrap_or_else(|| "-".into())) } }
                @if let (Some(a), Some(b)) = (t.started_at, t.finished_at) { tr { th { "took" } td { (secs(crate::record::secs_between(a, b))) } } }
                @if let Some(p) = &t.phase { tr { th { "where (ECS)" } td { (p) } } }
                @if let Some(c) = &cost { tr { th { "cost" } td { (c.usd) } } }
            }
            @if !t.bills.is_empty() {
                h2 { "attempts as billed" }
                table #bills { thead { tr { th { "attempt" } th.n { "seconds" } th { "capacity" } th.n { "memory peak" } th.n { "vCPU used" } th { "checkpoint" } } }
                    tbody { @for b in &t.bills { tr { td { (b.attempt) } td.n { (format!("{:.0}", b.secs)) } td { @if b.spot { "Spot" } @else { "on-demand" } }
                        td.n { (b.usage.and_then(|u| u.memory_peak_mib).map(|m| format!("{m:.0} MiB")).unwrap_or_else(|| "-".into())) }
                        td.n { (b.usage.and_then(|u| u.cpu_secs).filter(|_| b.secs > 0.0).map(|c| format!("{:.2}", c / b.secs)).unwrap_or_else(|| "-".into())) }
                        td { @if t.resumed.contains(&b.attempt) { "resumed from it" } } } } } }
            }
            @if !t.timelines.is_empty() {
                h2 { "where the time went" }
                table #timelines { thead { tr { th { "attempt" } @for p in Phase::ALL { th.n { (p.as_str()) } } th.n { "exit" } th { "why it failed" } } }
                    tbody { @for a in &t.timelines { tr { td { (a.attempt) } @for p in Phase::ALL { td.n { (a.secs(p).map(secs).unwrap_or_else(|| "-".into())) } }
                        td.n { (a.exit_code.map(|c| c.to_string()).unwrap_or_else(|| "-".into())) } td.reason { (a.reason.clone().unwrap_or_default()) } } } } }
            }
            h2 { "configuration" }
            pre.json { (pretty(&t.config.value())) }
            @if let Some(r) = &t.result { h2 { "result" } pre.json { (pretty(r)) } }
            @if let Some(e) = &t.result_error { p.error { "result.json: " (e) } }
            h2 { "outputs" }
            @if let Some(run) = rec.place.ecs() {
                p.meta { "in " code { "s3://" (run.site.bucket) "/" (crate::wire::output_prefix(&rec.job, &rec.run_id, t.index, t.stage)) } " (" code { "jobrun results --download" } " fetches every task's)" }
            }
            @match outputs {
                Ok(files) if files.is_empty() => p { "none" },
                Ok(files) => ul #outputs { @for (p, size) in files { li {
                    a href={ "/runs/" (rec.run_id) "/tasks/" (t.index) "/outputs/" (super::export::path_link(p)) } { (visible(p)) }
                    " " span.size { (size_text(*size)) } } } },
                Err(e) => p.error { "the outputs cannot be listed: " (e) },
            }
            h2 { "log" }
            pre #log data-run=(rec.run_id) data-index=(t.index) data-follow=(running) { (log) }
            p.meta { (status.counts_line()) }
        },
    )
}

/// A name as a page shows it: its control characters (a newline, an escape, bidi overrides
/// that would reorder what is read) written out as `\n`, `\x1b`, `\u{202e}`, so a name is
/// seen for what it is; maud escapes the rest for HTML.
pub fn visible(name: &str) -> std::borrow::Cow<'_, str> {
    let hidden = |c: char| {
        c.is_control()
            || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !name.contains(hidden) {
        return name.into();
    }
    let mut out = String::with_capacity(name.len() + 8);
    for c in name.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if hidden(c) && (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if hidden(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.into()
}

/// A file's size: in bytes, and in KiB, MiB, GiB when it has that many.
fn size_text(bytes: u64) -> String {
    match bytes < 1024 {
        true => format!("{bytes} bytes"),
        false => format!("{bytes} bytes ({})", indicatif::HumanBytes(bytes)),
    }
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// A value as text, for filtering and for cells: strings bare, everything else as JSON.
pub fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A number as people read it: integers whole, others to four significant digits (scientific
/// when very large or small); anything else as [`plain`].
pub fn human(v: &Value) -> String {
    match v.as_f64().filter(|_| v.is_f64()) {
        Some(f) => crate::report::short(f),
        None => plain(v),
    }
}

/// JSON for inside a `<script>` element: no `</` may end it early.
pub(super) fn script_json(v: &impl Serialize) -> String {
    serde_json::to_string(v)
        .unwrap_or_default()
        .replace("</", "<\\/")
}

pub(super) fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

pub(super) fn row_table(columns: &[String], rows: &[Map<String, Value>]) -> Markup {
    let keys: Vec<&String> = columns
        .iter()
        .filter(|c| rows.iter().any(|r| r.get(*c).is_some_and(|v| !v.is_null())))
        .collect();
    let keys: Vec<String> = keys
        .into_iter()
        .cloned()
        .chain(
            rows.iter()
                .flat_map(|r| r.keys().filter(|k| !columns.contains(k)).cloned()),
        )
        .collect();
    html! { table { thead { tr { @for c in &keys { th { (c) } } } } tbody { @for r in rows { tr { @for c in &keys { td { (human(r.get(c).unwrap_or(&Value::Null))) } } } } } } }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(human(&json!(0.30000000000000004)), "0.3");
        assert_eq!(human(&json!(1234.5678)), "1235");
        assert_eq!(human(&json!(1.23456789)), "1.235");
        assert_eq!(human(&json!(0.000012345)), "1.234e-5");
        assert_eq!(human(&json!(12)), "12");
        assert_eq!(human(&json!("adam")), "adam");
        assert_eq!(human(&Value::Null), "");
    }

    #[test]
    fn a_name_shows_its_control_characters() {
        assert_eq!(visible("model/w.txt"), "model/w.txt");
        assert_eq!(visible("a\nb"), "a\\nb");
        assert_eq!(visible("\u{1b}[31mred\t"), "\\x1b[31mred\\t");
        assert_eq!(
            visible("x\u{7f}\u{85}\u{202e}txt.exe"),
            "x\\x7f\\u{85}\\u{202e}txt.exe"
        );
        assert_eq!(visible("naïve a\\b"), "naïve a\\b");
        assert_eq!(size_text(12), "12 bytes");
        assert_eq!(size_text(1 << 30), "1073741824 bytes (1.00 GiB)");
    }

    #[test]
    fn a_task_page_links_each_output_by_its_encoded_name() {
        let mut rec = crate::record::tests::record("20260101-000000-a-0001", "a");
        rec.tasks = vec![TaskRecord::new(0, json!({"lr": 1}), None)];
        let files = Ok(vec![
            ("%2e%2e".to_string(), 3),
            ("d/a\nb\u{1b}".to_string(), 1 << 30),
        ]);
        let html = task_page(&rec, &rec.tasks[0], &files, "").into_string();
        let base = "/runs/20260101-000000-a-0001/tasks/0/outputs/";
        assert!(
            html.contains(&format!("href=\"{base}%252e%252e\">%2e%2e</a>")),
            "{html}"
        );
        assert!(
            html.contains(&format!("href=\"{base}d/a%0Ab%1B\">d/a\\nb\\x1b</a>")),
            "{html}"
        );
        assert!(html.contains("1073741824 bytes (1.00 GiB)"), "{html}");
    }

    #[test]
    fn a_run_page_has_one_cell_per_task_and_no_settings() {
        let mut rec = crate::record::tests::record("20260101-000000-a-0001", "a");
        rec.tasks = (0..3)
            .map(|i| TaskRecord::new(i, json!({"lr": i}), None))
            .collect();
        rec.tasks[1].fail("exit code 3", chrono::Utc::now());
        rec.tasks[2].reason = Some(format!(
            "{}: FARGATE_SPOT: You’ve reached the limit",
            crate::dispatch::ecs::WAITING_FOR_QUOTA
        ));
        rec.settings.notify = Some(crate::record::schema::NotifySpec {
            webhook: Some("https://hooks.example.com/secret".into()),
            sns_topic: None,
            on: vec![],
            profile: None,
        });
        let clue = last_line("step 1\nTraceback\nValueError: lr \u{1b}[31mtoo\n\n").unwrap();
        assert_eq!(
            clue, "ValueError: lr too",
            "the last line that says something"
        );
        let html = run_page(&rec, &RunStatus::of(&rec), &[], "tok", &[(1, clue)]).into_string();
        assert!(
            html.contains("<pre class=\"clue\">#1: ValueError: lr too</pre>"),
            "{html}"
        );
        assert_eq!(
            html.matches("<i class=\"t ").count(),
            3 + 5,
            "three cells and the legend"
        );
        assert!(html.contains("<b>1</b> × exit code 3"), "{html}");
        assert!(
            html.contains("waiting: 1 for the account's Fargate vCPU quota"),
            "{html}"
        );
        assert_eq!(Live::of(&rec).cells, "qfq");
        assert!(!html.contains("id=\"winner\""), "no objective, no winner");
        rec.tasks[0].start(1, "c0".into(), chrono::Utc::now());
        rec.tasks[0].succeed(chrono::Utc::now());
        rec.tasks[0].result = Some(serde_json::json!({"loss": 0.5}));
        rec.settings.objective = Some(crate::record::schema::Objective {
            metric: "loss".into(),
            goal: crate::record::schema::Goal::Minimize,
            group: vec![],
        });
        let html = run_page(&rec, &RunStatus::of(&rec), &[], "tok", &[]).into_string();
        assert!(html.contains("id=\"winner\""), "{html}");
        assert!(
            html.contains("→ loss 0.5 (the only task with loss)"),
            "{html}"
        );
        assert!(!html.contains("hooks.example.com"));
    }

    /// The run page says what the tasks used and what checkpoints kept; the task page each
    /// attempt's peak, vCPUs and whether it resumed.
    #[test]
    fn pages_show_what_attempts_used_and_which_resumed() {
        let mut rec = crate::record::tests::record("20260101-000000-a-0001", "a");
        let mut t = TaskRecord::new(0, json!({}), None);
        t.bill(1, 100.0, true);
        t.bill(2, 50.0, false);
        let used = crate::usage::Measured {
            memory_peak_mib: Some(700.0),
            cpu_secs: Some(25.0),
        };
        t.measured(2, Some(used));
        t.resumed_from_checkpoint(2, 3);
        rec.tasks = vec![t];
        let html = run_page(&rec, &RunStatus::of(&rec), &[], "tok", &[]).into_string();
        assert!(html.contains("id=\"used\""), "{html}");
        assert!(html.contains("memory peak 0.7 GB"), "{html}");
        assert!(
            html.contains("1 task resumed from a checkpoint (up to 1m 40s"),
            "{html}"
        );
        let page = task_page(&rec, &rec.tasks[0], &Ok(vec![]), "").into_string();
        assert!(page.contains("<td class=\"n\">700 MiB</td>"), "{page}");
        assert!(page.contains("<td class=\"n\">0.50</td>"), "{page}");
        assert!(page.contains("resumed from it"), "{page}");
    }
}
