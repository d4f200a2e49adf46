//! `jobrun ui`: the runs, a run's tasks, its results plotted against its configurations, two
//! runs compared and a result followed across a job's runs, in the browser — what people run
//! a sweep for, which a terminal table does not show. One process, every asset in the binary
//! (the vendored Chart.js under `assets/`), so it works offline.
//!
//! It reads what jobrun keeps: the state folder's run index for lists (never every record),
//! one record for a run's pages, and for an ECS job (`--job DIR`, or the job folder it is
//! started in) the runs in the job's bucket this machine lacks. Reading is not acting: an
//! unfinished ECS run is looked at (`common::current`), never moved on. Its two actions are the
//! commands' own code paths (`runs::request_cancel`, `runs::requeue_run`) followed by the
//! background driver. Who may use it is `guard.rs`'s; the pages are `views.rs`, what they read
//! is `handlers.rs`, what leaves as a file (CSV, downloads' names, links to them) `export.rs`.
//! Every response says what a browser may do with it (no script but its own, never framed);
//! a client that sends half a request is cut off (`READ_TIMEOUT`).

mod export;
mod guard;
mod handlers;
mod views;

use super::common::{current_job, open_store};
use crate::cli::UiArgs;
use crate::config::{Job, TargetKind};
use crate::error::{Exit, Failure, Result};
use crate::record::RunRecord;
use crate::store::{Stamp, Store};
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use guard::{Guard, Verdict};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What every request shares.
pub struct App {
    store: Store,
    guard: Guard,
    /// The jobs `--job` named (or the job folder's): whose bucket is read.
    jobs: Vec<Job>,
    /// With `--job`: only their runs are listed.
    only: Option<Vec<String>>,
    cache: Cache,
    /// `--metric`/`--goal`: the objective of runs that have none of their own.
    objective: Option<crate::record::schema::Objective>,
}

pub async fn ui(file: Option<&Path>, args: UiArgs) -> Result<Exit> {
    let store = open_store()?;
    let mut jobs = vec![];
    for dir in &args.job {
        let path = crate::config::locate(Some(&dir.join("jobrun.toml")))?;
        jobs.push(crate::config::load(
            &path,
            &Default::default(),
            &Default::default(),
        )?);
    }
    let only = (!jobs.is_empty()).then(|| jobs.iter().map(|j| j.name.clone()).collect());
    if jobs.is_empty() {
        jobs.extend(current_job(file)?);
    }
    let listener = tokio::net::TcpListener::bind((args.bind, args.port))
        .await
        .map_err(|e| {
            Failure::env(format!("cannot listen on {}:{}: {e}", args.bind, args.port))
                .hint("pick another --port (0: any free one)")
        })?;
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(args.port);
    let guard = Guard::new(port);
    let host = match args.bind {
        ip if ip.is_unspecified() || ip.is_loopback() => "127.0.0.1".to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    let url = format!("http://{host}:{port}/?token={}", guard.token);
    let app = Arc::new(App {
        store,
        guard,
        jobs,
        only,
        cache: Cache::default(),
        objective: args
            .metric
            .as_deref()
            .map(|m| crate::record::schema::Objective::named(m, args.goal)),
    });
    println!("jobrun ui: {url}");
    eprintln!("(Ctrl-C stops it; the token in the URL is needed once per browser)");
    if args.open {
        open_browser(&url);
    }
    tokio::spawn(sync_buckets(app.clone()));
    let router = handlers::router(app.clone())
        .layer(axum::middleware::from_fn(body_in_time))
        .layer(axum::middleware::from_fn_with_state(app.clone(), guarded))
        .layer(axum::middleware::map_response(secured));
    serve(listener, router).await;
    Ok(Exit::Ok)
}

/// How long a client has to send a request's head, and then its body: a connection that
/// sends half a request and stops (or nothing) is closed, not held for ever.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest body a request may have: the actions' forms are a CSRF token.
const BODY_LIMIT: usize = 64 * 1024;

/// Serves HTTP/1.1 until Ctrl-C, then lets the requests under way end. hyper's own connection
/// builder, not `axum::serve`: it takes a timer, which its header read timeout needs (axum's
/// sets none, so a half-sent request head was waited for without end).
async fn serve(listener: tokio::net::TcpListener, router: axum::Router) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut stop = std::pin::pin!(tokio::signal::ctrl_c());
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, say: wait a little rather than spin.
                    tracing::warn!("jobrun ui cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(READ_TIMEOUT)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("a connection of jobrun ui ended: {e}");
            }
        });
    }
    graceful.shutdown().await;
}

/// What every response carries, a refusal or an asset too: the pages load only their own
/// scripts, styles and data (no inline script, no `eval`: Chart.js needs neither), are never
/// framed (clickjacking an action's button), and a download is never sniffed into a page.
async fn secured(mut response: Response) -> Response {
    const CSP: &str = "default-src 'self'; object-src 'none'; base-uri 'none'; \
                       form-action 'self'; frame-ancestors 'none'";
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_FRAME_OPTIONS,
        header::HeaderValue::from_static("DENY"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    response
}

/// A request's body read in full within [`READ_TIMEOUT`] (and at most [`BODY_LIMIT`]) before
/// a handler sees it: a form sent halfway is answered 408, not waited for.
async fn body_in_time(req: Request, next: Next) -> Response {
    use axum::http::StatusCode;
    let (parts, body) = req.into_parts();
    match tokio::time::timeout(READ_TIMEOUT, axum::body::to_bytes(body, BODY_LIMIT)).await {
        Ok(Ok(bytes)) => next.run(Request::from_parts(parts, bytes.into())).await,
        Ok(Err(e)) => (
            StatusCode::BAD_REQUEST,
            format!("the request's body cannot be read (at most 64 KiB): {e}"),
        )
            .into_response(),
        Err(_) => (
            StatusCode::REQUEST_TIMEOUT,
            "the request's body did not come in time",
        )
            .into_response(),
    }
}

/// Every request passes the guard first.
async fn guarded(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    match app.guard.check(req.method(), req.uri(), req.headers()) {
        Verdict::Pass => next.run(req).await,
        Verdict::SetCookie { location } => {
            let cookie = format!(
                "{}={}; HttpOnly; SameSite=Strict; Path=/",
                app.guard.cookie(),
                app.guard.token
            );
            (
                axum::http::StatusCode::SEE_OTHER,
                [(header::SET_COOKIE, cookie), (header::LOCATION, location)],
            )
                .into_response()
        }
        Verdict::Refuse(status, why) => (status, why).into_response(),
    }
}

impl App {
    /// A run's record as it stands: from the cache while its file is unchanged; an unfinished
    /// ECS run is looked at (what AWS says, nothing done) at most every few seconds; a run this
    /// machine lacks is fetched from the bucket of a job the UI was started for.
    async fn record(self: &Arc<Self>, run_id: &str) -> Result<Arc<RunRecord>> {
        let id = match self.store.resolve(Some(run_id), None) {
            Ok(id) => id,
            Err(crate::store::StoreError::NoSuchRun(_)) => self.fetch(run_id).await?,
            Err(e) => return Err(e.into()),
        };
        let app = self.clone();
        let key = id.clone();
        let rec = tokio::task::spawn_blocking(move || app.cache.load(&app.store, &key))
            .await
            .map_err(|e| Failure::env(format!("reading run {id}: {e}")))??;
        if rec.place == crate::record::Place::Local
            || rec.finished_at.is_some()
            || !self.cache.look_due(&id)
        {
            return Ok(rec);
        }
        let (app, rec) = (self.clone(), (*rec).clone());
        let looked = on_own_thread(move |rt| {
            let looked = rt.block_on(super::common::current(&app.store, rec))?;
            Ok::<_, Failure>(app.cache.put(&app.store, looked))
        });
        looked.await?
    }

    async fn fetch(self: &Arc<Self>, run_id: &str) -> Result<String> {
        let (app, wanted) = (self.clone(), run_id.to_string());
        on_own_thread(move |rt| {
            for job in app.jobs.iter().filter(|j| j.target == TargetKind::Ecs) {
                if let Ok(rec) = rt.block_on(super::common::run_of(&app.store, job, &wanted)) {
                    return Ok(rec.run_id);
                }
            }
            Err(crate::store::StoreError::NoSuchRun(wanted).into())
        })
        .await?
    }
}

/// Runs a command's own async code to its end on a blocking thread of the runtime. axum needs
/// each handler's future to be `Send` for any lifetime, which the compiler cannot prove through
/// the dispatchers' deeper calls (rust-lang/rust#102211); a future made and driven on one
/// thread need not be `Send` at all.
pub(super) async fn on_own_thread<T: Send + 'static>(
    f: impl FnOnce(&tokio::runtime::Handle) -> T + Send + 'static,
) -> Result<T> {
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || f(&handle))
        .await
        .map_err(|e| Failure::env(format!("a request's worker stopped: {e}")))
}

/// Copies into the state folder the runs of the ECS jobs' buckets that it lacks, now and then,
/// so they are listed (the index is the state folder's). A bucket that cannot be read is
/// logged and tried again later.
async fn sync_buckets(app: Arc<App>) {
    loop {
        for job in app.jobs.iter().filter(|j| j.target == TargetKind::Ecs) {
            if let Err(e) = sync_bucket(&app, job).await {
                tracing::warn!(
                    "cannot read the runs of job {} in its bucket: {e}",
                    job.name
                );
            }
        }
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
}

async fn sync_bucket(app: &App, job: &Job) -> Result<()> {
    let aws = super::common::load_aws(job).await?;
    let bucket = super::common::job_bucket(&app.store, job, &aws).await?;
    let ids = crate::dispatch::remote::run_ids(&aws, &bucket, &job.name).await?;
    for id in ids.iter().filter(|id| !app.store.exists(id)) {
        super::common::run_of(&app.store, job, id).await?;
    }
    Ok(())
}

fn open_browser(url: &str) {
    let opener = std::env::var("BROWSER").unwrap_or_else(|_| {
        match cfg!(target_os = "macos") {
            true => "open",
            false => "xdg-open",
        }
        .into()
    });
    if let Err(e) = std::process::Command::new(&opener)
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        eprintln!("cannot start {opener} ({e}); open the URL yourself");
    }
}

/// The last few records read, by their file's stamp: a run page and its live updates read a
/// 10,000-task record once, not once per poll. Two are kept (a compare page shows two runs).
#[derive(Default)]
struct Cache {
    held: Mutex<Vec<(String, Stamp, Arc<RunRecord>)>>,
    looked: Mutex<Vec<(String, Instant)>>,
}

const CACHED: usize = 2;
const LOOK_EVERY: Duration = Duration::from_secs(5);

impl Cache {
    fn load(&self, store: &Store, run_id: &str) -> Result<Arc<RunRecord>> {
        let stamp = store.stamp(run_id)?;
        if let Some((_, _, rec)) = self
            .lock()
            .iter()
            .find(|(id, s, _)| id == run_id && *s == stamp)
        {
            return Ok(rec.clone());
        }
        let (rec, stamp) = store.load_stamped(run_id)?;
        Ok(self.keep(run_id, stamp, rec))
    }

    fn put(&self, store: &Store, rec: RunRecord) -> Arc<RunRecord> {
        let id = rec.run_id.clone();
        let stamp = store.stamp(&id).unwrap_or_default();
        self.keep(&id, stamp, rec)
    }

    fn keep(&self, run_id: &str, stamp: Stamp, rec: RunRecord) -> Arc<RunRecord> {
        let rec = Arc::new(rec);
        let mut held = self.lock();
        held.retain(|(id, _, _)| id != run_id);
        held.insert(0, (run_id.to_string(), stamp, rec.clone()));
        held.truncate(CACHED);
        rec
    }

    /// Whether an unfinished remote run is due for another look (and marks it looked at).
    fn look_due(&self, run_id: &str) -> bool {
        let mut looked = self.looked.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        match looked.iter_mut().find(|(id, _)| id == run_id) {
            Some((_, at)) if now.duration_since(*at) < LOOK_EVERY => false,
            Some((_, at)) => {
                *at = now;
                true
            }
            None => {
                looked.push((run_id.to_string(), now));
                true
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(String, Stamp, Arc<RunRecord>)>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }
}
