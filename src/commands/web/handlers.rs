//! What each URL of the web view reads (or, for the two POSTs, does), handed to `views.rs` to
//! draw. The JSON under `/api/` is what the pages' scripts poll and what scripts may read: the
//! reports `status`, `runs` and `results` print with `-o json`.

use super::export;
use super::views::{self, Compare, Filters, ResultsQuery, Trend, TrendPoint};
use super::{App, on_own_thread};
use crate::error::Failure;
use crate::record::{RunRecord, RunState};
use crate::report::results::Results;
use crate::report::{RunLine, RunList, RunStatus};
use axum::extract::{Form, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use std::sync::Arc;

type Shared = State<Arc<App>>;

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(runs))
        .route("/runs/{id}", get(run))
        .route("/runs/{id}/tasks/{index}", get(task))
        .route("/runs/{id}/tasks/{index}/outputs/{*path}", get(output))
        .route("/runs/{id}/results", get(results))
        .route("/runs/{id}/results.csv", get(results_csv))
        .route("/runs/{id}/results.json", get(results_json))
        .route("/runs/{id}/compare", get(compare))
        .route("/jobs/{job}/trend", get(trend))
        .route("/runs/{id}/cancel", post(cancel))
        .route("/runs/{id}/retry", post(retry))
        .route("/api/runs", get(api_runs))
        .route("/api/runs/{id}", get(api_run))
        .route("/api/runs/{id}/live", get(api_live))
        .route("/api/runs/{id}/tasks/{index}/log", get(api_log))
        .route("/assets/{name}", get(asset))
        .with_state(app)
}

/// A page that could not be made: its status and one line of why (a [`Failure`]'s message and
/// hint, as the command line would print them).
pub struct PageError(StatusCode, String);

impl From<Failure> for PageError {
    fn from(f: Failure) -> Self {
        let status = match f.exit {
            crate::error::Exit::Usage => StatusCode::NOT_FOUND,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        PageError(status, f.to_string())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        (
            self.0,
            Html(views::error_page(self.0, &self.1).into_string()),
        )
            .into_response()
    }
}

type Page = Result<Response, PageError>;

fn html(markup: maud::Markup) -> Response {
    Html(markup.into_string()).into_response()
}

fn failure<E: Into<Failure>>(e: E) -> PageError {
    PageError::from(e.into())
}

/// Every run (of the jobs `--job` named) that the query asks for, and every job they are of.
fn listed(app: &App, f: &Filters) -> Result<(Vec<RunLine>, Vec<String>), PageError> {
    let mut lines =
        super::super::runs::run_lines(&app.store, app.only.as_deref()).map_err(failure)?;
    let mut jobs: Vec<String> = lines.iter().map(|l| l.job.clone()).collect();
    jobs.sort();
    jobs.dedup();
    let since = f.since.as_deref().filter(|s| !s.is_empty());
    let since = match since {
        Some(s) => Some(super::super::runs::since(s).map_err(failure)?),
        None => None,
    };
    lines.retain(|l| {
        f.job.as_deref().is_none_or(|j| j.is_empty() || l.job == j)
            && f.state.is_none_or(|s| l.state == s)
            && since.is_none_or(|t| l.created_at >= t)
    });
    Ok((lines, jobs))
}

async fn runs(State(app): Shared, Query(f): Query<Filters>) -> Page {
    let (lines, jobs) = listed(&app, &f)?;
    Ok(html(views::runs_page(&lines, &jobs, &f)))
}

async fn api_runs(State(app): Shared, Query(f): Query<Filters>) -> Page {
    Ok(Json(RunList(listed(&app, &f)?.0)).into_response())
}

async fn record(app: &Arc<App>, id: &str) -> Result<Arc<RunRecord>, PageError> {
    app.record(id).await.map_err(PageError::from)
}

async fn run(State(app): Shared, Path(id): Path<String>) -> Page {
    let rec = record(&app, &id).await?;
    let status = status_of(&rec).await;
    let others = same_job_runs(&app, &rec)?;
    let clues = failure_clues(&rec, &status).await;
    Ok(html(views::run_page(
        &rec,
        &status,
        &others,
        &app.guard.csrf,
        &clues,
    )))
}

/// Per kind of failure, its first task's last log line (where an error usually says itself),
/// for the run page: at most 5 logs read, each line at most 200 characters.
async fn failure_clues(rec: &Arc<RunRecord>, status: &RunStatus) -> Vec<(usize, String)> {
    let mut clues = vec![];
    for (_, indexes) in crate::report::overview::failure_groups(&status.tasks)
        .iter()
        .take(5)
    {
        let Some(&first) = indexes.first() else {
            continue;
        };
        let log = log_text(rec.clone(), first).await;
        if log.starts_with("(the log cannot be read") {
            continue;
        }
        if let Some(line) = views::last_line(&log) {
            clues.push((first, line));
        }
    }
    clues
}

/// The other runs of the run's job, newest first (what it can be compared with).
fn same_job_runs(app: &App, rec: &RunRecord) -> Result<Vec<RunLine>, PageError> {
    let mut lines = super::super::runs::run_lines(&app.store, Some(std::slice::from_ref(&rec.job)))
        .map_err(failure)?;
    lines.retain(|l| l.run_id != rec.run_id && l.run_id != "-" && l.state != RunState::Unreadable);
    Ok(lines)
}

async fn api_run(State(app): Shared, Path(id): Path<String>) -> Page {
    let rec = record(&app, &id).await?;
    Ok(Json(status_of(&rec).await).into_response())
}

/// The run's status as `status` gives it, its driver in AWS included (left out when the
/// bucket cannot be asked: the page still shows the rest).
async fn status_of(rec: &RunRecord) -> RunStatus {
    let mut status = RunStatus::of(rec);
    match super::super::runs::driver_seen(rec).await {
        Ok(driver) => status.driver = driver,
        Err(e) => tracing::debug!("the run's driver: {e}"),
    }
    status
}

/// What a run page's script redraws: the state, the counts, the cost and one letter per task.
async fn api_live(State(app): Shared, Path(id): Path<String>) -> Page {
    let rec = record(&app, &id).await?;
    Ok(Json(views::Live::of(&rec)).into_response())
}

async fn task(State(app): Shared, Path((id, index)): Path<(String, usize)>) -> Page {
    let rec = record(&app, &id).await?;
    let t = task_of(&rec, index)?;
    let outputs = outputs_of(&app, &rec, index).await.map_err(|e| e.1);
    let log = log_text(rec.clone(), index).await;
    Ok(html(views::task_page(&rec, t, &outputs, &log)))
}

fn task_of(rec: &RunRecord, index: usize) -> Result<&crate::record::TaskRecord, PageError> {
    rec.tasks.get(index).ok_or_else(|| {
        PageError(
            StatusCode::NOT_FOUND,
            format!("run {} has no task {index}", rec.run_id),
        )
    })
}

async fn api_log(State(app): Shared, Path((id, index)): Path<(String, usize)>) -> Page {
    let rec = record(&app, &id).await?;
    let state = task_of(&rec, index)?.state;
    let text = log_text(rec, index).await;
    Ok(([("x-task-state", state.as_str())], text).into_response())
}

/// The task's log as it stands (the local file or the engine's; CloudWatch on ECS), its last
/// 256 KiB; what went wrong reading it, in its place.
async fn log_text(rec: Arc<RunRecord>, index: usize) -> String {
    const TAIL: usize = 256 * 1024;
    let read = on_own_thread(move |rt| {
        let mut buf: Vec<u8> = vec![];
        rt.block_on(async {
            let d = crate::dispatch::Dispatcher::for_run(&rec).await?;
            d.logs(&rec, index, false, &mut buf).await
        })
        .map(|()| buf)
    });
    match read.await {
        Ok(Ok(buf)) => {
            let start = buf.len().saturating_sub(TAIL);
            String::from_utf8_lossy(&buf[start..]).into_owned()
        }
        Ok(Err(e)) => format!("(the log cannot be read: {e})"),
        Err(e) => format!("(the log cannot be read: {})", e.message),
    }
}

/// The files a task left in its output folder, paths relative to it, with their sizes: the
/// local folder, or on ECS the task's prefix in the job's bucket (S3 ListObjectsV2, which
/// lists keys in UTF-8 binary order:
/// https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html).
async fn outputs_of(
    app: &App,
    rec: &RunRecord,
    index: usize,
) -> Result<Vec<(String, u64)>, PageError> {
    let t = task_of(rec, index)?;
    let Some(run) = rec.place.ecs() else {
        let dir = crate::outputs::local_dir(&app.store.run_dir(&rec.run_id), t);
        return Ok(crate::outputs::files_under(&dir).unwrap_or_default());
    };
    let s3 = crate::dispatch::remote::aws_for(run)
        .await
        .map_err(failure)?
        .s3();
    let prefix = crate::wire::output_prefix(&rec.job, &rec.run_id, index, t.stage);
    let listed = crate::aws::list_objects(&s3, &run.site.bucket, &prefix)
        .await
        .map_err(failure)?;
    Ok(listed.into_iter().map(|o| (o.rel, o.size)).collect())
}

/// One output file, streamed (a model may be gigabytes): from the local folder, or from the
/// bucket (S3 GetObject).
async fn output(
    State(app): Shared,
    Path((id, index, path)): Path<(String, usize, String)>,
) -> Page {
    let rec = record(&app, &id).await?;
    let t = task_of(&rec, index)?;
    // Only a file the listing shows: no `..`, no link out of the folder.
    if !outputs_of(&app, &rec, index)
        .await?
        .iter()
        .any(|(p, _)| *p == path)
    {
        return Err(PageError(
            StatusCode::NOT_FOUND,
            format!(
                "task {index} of run {id} has no output {}",
                views::visible(&path)
            ),
        ));
    }
    let body = match rec.place.ecs() {
        None => {
            // Opened under the folder without following links, and streamed from that
            // handle at the size it had (a task may swap the file for a link meanwhile).
            let dir = crate::outputs::local_dir(&app.store.run_dir(&rec.run_id), t);
            let f = crate::outputs::files::open(&dir, &path)
                .map_err(|e| PageError(StatusCode::NOT_FOUND, format!("cannot read {e}")))?;
            let read = tokio::io::AsyncReadExt::take(tokio::fs::File::from_std(f.file), f.size);
            axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(read))
        }
        Some(run) => {
            let s3 = crate::dispatch::remote::aws_for(run)
                .await
                .map_err(failure)?
                .s3();
            let key = crate::wire::output_prefix(&rec.job, &rec.run_id, index, t.stage) + &path;
            let read = crate::outputs::s3::open(&s3, &run.site.bucket, &key)
                .await
                .map_err(failure)?;
            axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(read))
        }
    };
    let name = path.rsplit('/').next().unwrap_or("output");
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_DISPOSITION, export::attachment(name)),
        ],
        body,
    )
        .into_response())
}

/// The run's results as the page asks: judged by `?metric=` (else by the run's objective,
/// else by `ui --metric`), sorted and filtered.
fn table(app: &App, rec: &RunRecord, q: &ResultsQuery) -> Results {
    let group = || rec.settings.objective.as_ref().map(|o| o.group.clone());
    let asked =
        q.metric
            .as_deref()
            .filter(|m| !m.is_empty())
            .map(|m| crate::record::schema::Objective {
                group: group().unwrap_or_default(),
                ..crate::record::schema::Objective::named(m, q.goal)
            });
    let fallback = || match rec.settings.objective {
        Some(_) => None,
        None => app.objective.clone(),
    };
    let mut r = Results::by(rec, asked.or_else(fallback).as_ref());
    if let Some(col) = q.sort.as_deref().and_then(|s| r.column(s)) {
        r.sort(&col, q.descending());
    }
    if let Some(text) = q.q.as_deref().filter(|t| !t.is_empty()) {
        let text = text.to_lowercase();
        r.rows.retain(|row| {
            row.values()
                .any(|v| views::plain(v).to_lowercase().contains(&text))
        });
    }
    r
}

async fn results(
    State(app): Shared,
    Path(id): Path<String>,
    Query(q): Query<ResultsQuery>,
) -> Page {
    let rec = record(&app, &id).await?;
    Ok(html(views::results_page(&rec, &table(&app, &rec, &q), &q)))
}

async fn results_csv(
    State(app): Shared,
    Path(id): Path<String>,
    Query(q): Query<ResultsQuery>,
) -> Page {
    let rec = record(&app, &id).await?;
    let csv = export::spreadsheet_csv(&table(&app, &rec, &q)).map_err(|e| {
        PageError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot write CSV: {e}"),
        )
    })?;
    let name = export::attachment(&format!("{}-results.csv", rec.run_id));
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, name),
        ],
        csv,
    )
        .into_response())
}

async fn results_json(
    State(app): Shared,
    Path(id): Path<String>,
    Query(q): Query<ResultsQuery>,
) -> Page {
    let rec = record(&app, &id).await?;
    Ok(Json(table(&app, &rec, &q)).into_response())
}

#[derive(Deserialize)]
struct CompareQuery {
    with: Option<String>,
    key: Option<String>,
}

/// Two runs of a job side by side, per configuration.
async fn compare(
    State(app): Shared,
    Path(id): Path<String>,
    Query(q): Query<CompareQuery>,
) -> Page {
    let rec = record(&app, &id).await?;
    let others = same_job_runs(&app, &rec)?;
    let other_id = match q.with.filter(|w| !w.is_empty()) {
        Some(w) => w,
        None => match others
            .iter()
            .find(|l| l.created_at < rec.created_at)
            .or(others.first())
        {
            Some(l) => l.run_id.clone(),
            None => {
                return Err(PageError(
                    StatusCode::NOT_FOUND,
                    format!("job {} has no other run to compare run {id} with", rec.job),
                ));
            }
        },
    };
    let this = Results::of(&rec);
    let other_rec = record(&app, &other_id).await?;
    if other_rec.job != rec.job {
        return Err(PageError(
            StatusCode::BAD_REQUEST,
            format!(
                "run {other_id} is of job {}, not {}",
                other_rec.job, rec.job
            ),
        ));
    }
    let other = Results::of(&other_rec);
    let objective = crate::report::best::objective_of(&rec);
    let compared = Compare::of(&this, &other, q.key.as_deref(), objective.as_ref());
    Ok(html(views::compare_page(
        &rec,
        &other_rec.run_id,
        &others,
        &compared,
    )))
}

#[derive(Deserialize)]
struct TrendQuery {
    key: Option<String>,
    /// Only runs whose key starts with `<schedule>.` (a schedule's fires).
    schedule: Option<String>,
}

/// How many runs a trend reads (one record at a time), the newest.
const TREND_RUNS: usize = 104;

/// A result key across a job's finished runs: the reduce's value when it has the key, else
/// the best (smallest) of the map tasks'.
async fn trend(State(app): Shared, Path(job): Path<String>, Query(q): Query<TrendQuery>) -> Page {
    let mut lines = super::super::runs::run_lines(&app.store, Some(std::slice::from_ref(&job)))
        .map_err(failure)?;
    lines.retain(|l| {
        l.run_id != "-" && l.state != RunState::Unreadable && l.state != RunState::Running
    });
    if let Some(s) = q.schedule.as_deref().filter(|s| !s.is_empty()) {
        let prefix = format!("{s}.");
        lines.retain(|l| l.key.as_deref().is_some_and(|k| k.starts_with(&prefix)));
    }
    lines.truncate(TREND_RUNS);
    lines.reverse();
    let mut keys = std::collections::BTreeSet::new();
    let mut read = vec![];
    for l in &lines {
        let rec = match app.store.load(&l.run_id) {
            Ok(rec) => rec,
            Err(e) => {
                read.push((l, Err(e.to_string())));
                continue;
            }
        };
        let r = Results::of(&rec);
        keys.extend(
            r.columns
                .iter()
                .filter(|c| c.starts_with("result."))
                .cloned(),
        );
        if let Some(reduce) = &r.reduce {
            keys.extend(reduce.keys().filter(|c| c.starts_with("result.")).cloned());
        }
        read.push((l, Ok((rec, r))));
    }
    // Without ?key, what the sweep is for: the newest run's objective, else the first
    // number its reduce (or its tasks) give.
    let key = q.key.filter(|k| !k.is_empty()).or_else(|| {
        read.iter().rev().find_map(|(_, got)| {
            got.as_ref()
                .ok()
                .and_then(|(rec, r)| TrendPoint::default_key(rec, r))
        })
    });
    let points = read
        .iter()
        .map(|(l, got)| match got {
            Ok((rec, r)) => TrendPoint::of(l, rec, r, key.as_deref()),
            Err(e) => TrendPoint::unreadable(l, e.clone()),
        })
        .collect();
    let trend = Trend {
        job,
        key: key.unwrap_or_default(),
        schedule: q.schedule.unwrap_or_default(),
        keys: keys.into_iter().collect(),
        points,
    };
    Ok(html(views::trend_page(&trend)))
}

#[derive(Deserialize)]
struct Action {
    csrf: String,
}

/// `cancel`, as the command does it (the request in the record and where the dispatcher
/// looks), then a background driver stops the tasks.
async fn cancel(State(app): Shared, Path(id): Path<String>, Form(a): Form<Action>) -> Page {
    check_csrf(&app, &a)?;
    let rec = record(&app, &id).await?;
    let run_id = rec.run_id.clone();
    let (app2, id2) = (app.clone(), run_id.clone());
    on_own_thread(move |rt| {
        let done = rt.block_on(async {
            let mut dispatcher = crate::dispatch::Dispatcher::for_run(&rec).await?;
            super::super::runs::request_cancel(&app2.store, &mut dispatcher, &id2).await
        })?;
        match done {
            Some(_) => Ok(()),
            None => super::super::drive::spawn_background(&app2.store, &id2),
        }
    })
    .await?
    .map_err(PageError::from)?;
    Ok(Redirect::to(&format!("/runs/{run_id}")).into_response())
}

/// `retry --failed --detach`, as the command does it. A run still going cannot be retried:
/// 409 and why (the run is there; it is the wrong time).
async fn retry(State(app): Shared, Path(id): Path<String>, Form(a): Form<Action>) -> Page {
    check_csrf(&app, &a)?;
    let rec = record(&app, &id).await?;
    let run_id = rec.run_id.clone();
    let app2 = app.clone();
    let done = on_own_thread(move |rt| {
        let quiet = crate::ui::Ui::quiet();
        let rec = (*rec).clone();
        rt.block_on(async {
            match super::super::runs::requeue_run(&app2.store, rec, &quiet).await? {
                Some((rec, _)) => super::super::drive::go_on(&app2.store, rec, true, &quiet)
                    .await
                    .map(|_| ()),
                None => Ok(()),
            }
        })
    })
    .await?;
    if let Err(f) = done {
        return Err(match still_going(&app, &run_id, &f) {
            true => PageError(StatusCode::CONFLICT, f.to_string()),
            false => PageError::from(f),
        });
    }
    Ok(Redirect::to(&format!("/runs/{run_id}")).into_response())
}

/// Whether a retry was refused because the run has not ended: a usage error, and the record
/// (just brought up to date by the retry's own look) says it is unfinished.
fn still_going(app: &App, run_id: &str, f: &Failure) -> bool {
    f.exit == crate::error::Exit::Usage
        && app.store.load(run_id).is_ok_and(|rec| !rec.is_finished())
}

fn check_csrf(app: &App, a: &Action) -> Result<(), PageError> {
    match app.guard.csrf_ok(&a.csrf) {
        true => Ok(()),
        false => Err(PageError(
            StatusCode::FORBIDDEN,
            "the form's CSRF token is not this server's: reload the page".into(),
        )),
    }
}

/// The scripts, styles and the vendored Chart.js, from the binary.
async fn asset(Path(name): Path<String>) -> Page {
    let (kind, body): (&str, &'static [u8]) = match name.as_str() {
        "app.js" => ("text/javascript", include_bytes!("assets/app.js")),
        "style.css" => ("text/css", include_bytes!("assets/style.css")),
        "chart.js" => (
            "text/javascript",
            include_bytes!("assets/chart-3.9.1.min.js"),
        ),
        _ => return Err(PageError(StatusCode::NOT_FOUND, format!("no asset {name}"))),
    };
    Ok((
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        body,
    )
        .into_response())
}
