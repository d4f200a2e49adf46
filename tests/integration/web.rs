//! `jobrun ui` against real local runs: the token, Host and Origin rules, the JSON and pages a
//! person reads (runs, a run's grid and failures, a task's configuration, log and outputs,
//! results sorted and as CSV, a compare, a trend), cancel and retry through it (no driver left
//! a zombie, no retry of a run still going), the security headers, the cut-off of half-sent
//! requests, output files with awkward names — and in headless Chromium (DevTools protocol):
//! one cell per task, one plot point per task with a value (and per swept key in the small
//! multiples) under the pages' CSP, and a run page that turns `cancelled` without a reload.

use crate::harness::Test;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The sweep: `loss` is the configuration's own, task 2 fails its first attempt (before it
/// writes a result), every task writes an output file and sleeps `sleep` seconds.
fn sweep() -> Test {
    let t = Test::with_task(
        r#"command = ["/task", "out", "training lr={config.lr}", "fail-once-if", "{index}", "2", "3", "write", "model/w.txt", "m{index}", "write", "result.json", "{{\"loss\": {config.loss}}}", "sleep", "{config.sleep}"]
max_attempts = 1"#,
    );
    t.build();
    t
}

fn configs(sleep: u32) -> Vec<Value> {
    [(0.1, 0.5), (0.2, 0.25), (0.3, 0.75), (0.4, 0.125)]
        .iter()
        .map(|(lr, loss)| json!({"lr": lr, "loss": loss, "sleep": sleep}))
        .collect()
}

/// A finished run of the sweep (task 2 failed).
fn finished_run(t: &Test) -> String {
    let run = t.submit_detached(&configs(0));
    t.wait_for(&run, "the run's end", |s| s["finished_at"].is_string());
    run
}

/// `jobrun ui --port 0`, and the URL it printed.
struct Ui {
    child: Child,
    port: u16,
    token: String,
}

impl Ui {
    fn start(t: &Test) -> Ui {
        Ui::start_over(t, t.state.path())
    }

    /// Started over another state folder (another machine's: what it knows, it reads from
    /// the job's bucket).
    fn start_over(t: &Test, state: &std::path::Path) -> Ui {
        Ui::start_with(t, state, &[])
    }

    /// Started with more flags.
    fn start_with(t: &Test, state: &std::path::Path, flags: &[&str]) -> Ui {
        let mut args = vec!["ui", "--port", "0"];
        args.extend(flags);
        let mut child = t
            .command(&args)
            .env("JOBRUN_STATE_DIR", state)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("jobrun ui: ")
            .unwrap_or_else(|| panic!("{line}"));
        let rest = url.strip_prefix("http://127.0.0.1:").unwrap();
        let (port, token) = rest.split_once("/?token=").unwrap();
        Ui {
            child,
            port: port.parse().unwrap(),
            token: token.to_string(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn cookie(&self) -> String {
        format!("jobrun_ui_{}={}", self.port, self.token)
    }

    /// One HTTP/1.1 request with exactly these headers (no client adds its own).
    fn raw(&self, method: &str, path: &str, headers: &[(&str, String)], body: &str) -> Reply {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        s.write_all(req.as_bytes()).unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        Reply {
            status,
            head: head.to_string(),
            body: unchunk(head, body),
        }
    }

    /// A GET as the browser that opened the URL makes it.
    fn get(&self, path: &str) -> Reply {
        let host = ("Host", format!("127.0.0.1:{}", self.port));
        let reply = self.raw("GET", path, &[host, ("Cookie", self.cookie())], "");
        assert_eq!(reply.status, 200, "GET {path}: {}", reply.body);
        reply
    }

    fn post(&self, path: &str, csrf: &str) -> Reply {
        let headers = [
            ("Host", format!("127.0.0.1:{}", self.port)),
            ("Cookie", self.cookie()),
            ("Origin", format!("http://127.0.0.1:{}", self.port)),
            ("Content-Type", "application/x-www-form-urlencoded".into()),
        ];
        self.raw("POST", path, &headers, &format!("csrf={csrf}"))
    }

    /// Waits (bounded) until `jobrun ui` has no child that ended unwaited for.
    fn assert_no_zombies(&self, after: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let zombies = zombies_of(self.child.id());
            if zombies.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "jobrun ui keeps zombie children {zombies:?} after {after}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Ui {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Reply {
    status: u16,
    head: String,
    body: String,
}

fn unchunk(head: &str, body: &str) -> String {
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return body.to_string();
    }
    let (mut out, mut rest) = (String::new(), body);
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        if n == 0 {
            break;
        }
        out.push_str(&after[..n]);
        rest = &after[n + 2..];
    }
    out
}

/// The CSRF token a page's forms carry.
fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a form") + 19;
    page[at..at + page[at..].find('"').unwrap()].to_string()
}

#[test]
fn the_ui_shows_a_sweep_and_acts_through_the_commands_code_paths() {
    let t = sweep();
    let older = finished_run(&t);
    let run = finished_run(&t);
    let ui = Ui::start(&t);
    let host = ("Host", format!("127.0.0.1:{}", ui.port));

    // The door: no token, a rebound name, another site; then the printed URL sets the cookie.
    assert_eq!(
        ui.raw("GET", "/", std::slice::from_ref(&host), "").status,
        401
    );
    let rebound = [
        ("Host", format!("evil.example:{}", ui.port)),
        ("Cookie", ui.cookie()),
    ];
    assert_eq!(ui.raw("GET", "/", &rebound, "").status, 403);
    let other_site = [
        host.clone(),
        ("Cookie", ui.cookie()),
        ("Origin", "http://evil.example".into()),
    ];
    assert_eq!(ui.raw("GET", "/api/runs", &other_site, "").status, 403);
    let opened = ui.raw(
        "GET",
        &format!("/?token={}", ui.token),
        std::slice::from_ref(&host),
        "",
    );
    assert_eq!(opened.status, 303, "{}", opened.head);
    assert!(
        opened
            .head
            .contains(&format!("set-cookie: {}", ui.cookie())),
        "{}",
        opened.head
    );

    // Runs: both, newest first, as `runs -o json` says them.
    let runs: Value = serde_json::from_str(&ui.get("/api/runs").body).unwrap();
    let ids: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [run.as_str(), older.as_str()]);
    let listed = ui.get("/?state=failed").body;
    assert!(listed.contains(&run) && listed.contains(&older));
    assert!(!ui.get("/?state=succeeded").body.contains(&run));

    // A run: one cell per task, the failure grouped with its index, the status JSON.
    let page = ui.get(&format!("/runs/{run}")).body;
    assert_eq!(
        page.matches("<i class=\"t ").count(),
        4 + 5,
        "four cells and the legend"
    );
    assert!(page.contains("<b>1</b> × exit code 3"), "{page}");
    // The failure's last log line (the task writes one line to stdout, then one to stderr: the
    // engine's log may interleave the two streams either way).
    assert!(
        [
            "#2: task 2 fails its first attempt on purpose</pre>",
            "#2: training lr=0.3</pre>"
        ]
        .iter()
        .any(|clue| page.contains(&format!("<pre class=\"clue\">{clue}"))),
        "the failure's last log line: {page}"
    );
    let status: Value = serde_json::from_str(&ui.get(&format!("/api/runs/{run}")).body).unwrap();
    assert_eq!(
        (status["total"].clone(), status["failed"].clone()),
        (json!(4), json!(1))
    );
    assert_eq!(status["state"], t.status(&run)["state"]);
    let live: Value = serde_json::from_str(&ui.get(&format!("/api/runs/{run}/live")).body).unwrap();
    assert_eq!(live["cells"], "ssfs");

    // A task: configuration, log, outputs (downloadable, and nothing outside its folder).
    let task = ui.get(&format!("/runs/{run}/tasks/3")).body;
    assert!(
        task.contains("&quot;loss&quot;: 0.125") || task.contains("\"loss\": 0.125"),
        "{task}"
    );
    assert!(task.contains("training lr=0.4"), "the log: {task}");
    let weights = ui.get(&format!("/runs/{run}/tasks/3/outputs/model/w.txt"));
    assert_eq!(weights.body, "m3");
    let outside = ui.raw(
        "GET",
        &format!("/runs/{run}/tasks/3/outputs/../0/model/w.txt"),
        &[host.clone(), ("Cookie", ui.cookie())],
        "",
    );
    assert_eq!(outside.status, 404);

    // Results: sorted by loss (the smallest first, the failed task's missing value last), as CSV.
    let sorted = ui.get(&format!("/runs/{run}/results?sort=loss")).body;
    let order: Vec<usize> = (0..4)
        .map(|i| sorted.find(&format!("/runs/{run}/tasks/{i}\"")).unwrap())
        .collect();
    let mut by_position: Vec<usize> = (0..4).collect();
    by_position.sort_by_key(|i| order[*i]);
    assert_eq!(by_position, [3, 1, 0, 2], "rows by loss");
    assert!(
        sorted.contains("id=\"plot-data\""),
        "a plot of result.loss against config.lr"
    );
    let csv = ui.get(&format!("/runs/{run}/results.csv?sort=loss")).body;
    let first = csv.lines().nth(1).unwrap();
    assert!(first.starts_with("3,succeeded,"), "{csv}");
    // No objective of its own: no winner, until a page (`?metric=`) or the ui
    // (`ui --metric --goal`) names one.
    let judged = |ui: &Ui, query: &str| -> Value {
        let body = ui.get(&format!("/runs/{run}/results.json{query}")).body;
        serde_json::from_str::<Value>(&body).unwrap()["best"]["index"].clone()
    };
    assert_eq!(judged(&ui, ""), Value::Null);
    assert_eq!(judged(&ui, "?metric=loss"), 3, "the smallest loss");
    let largest = Ui::start_with(
        &t,
        t.state.path(),
        &["--metric", "loss", "--goal", "maximize"],
    );
    assert_eq!(
        judged(&largest, ""),
        0,
        "the largest loss of the tasks that succeeded"
    );
    assert_eq!(
        judged(&largest, "?metric=loss&goal=minimize"),
        3,
        "the page wins"
    );
    drop(largest);

    // Compare (with the run before, per configuration) and the trend of the job.
    let compared = ui.get(&format!("/runs/{run}/compare?key=result.loss")).body;
    assert!(compared.contains(&older), "{compared}");
    assert!(
        compared.contains("lr=0.4, loss=0.125, sleep=0"),
        "{compared}"
    );
    let trend = ui
        .get(&format!("/jobs/{}/trend?key=result.loss", t.name))
        .body;
    assert_eq!(
        trend.matches("<td>smallest of 3 tasks</td>").count(),
        2,
        "{trend}"
    );

    // Retry through it: the CSRF token is needed, then the failed task runs again and succeeds.
    assert_eq!(ui.post(&format!("/runs/{run}/retry"), "nope").status, 403);
    let no_origin = [
        host.clone(),
        ("Cookie", ui.cookie()),
        ("Content-Type", "application/x-www-form-urlencoded".into()),
    ];
    let csrf = csrf_of(&page);
    assert_eq!(
        ui.raw(
            "POST",
            &format!("/runs/{run}/retry"),
            &no_origin,
            &format!("csrf={csrf}")
        )
        .status,
        403
    );
    assert_eq!(ui.post(&format!("/runs/{run}/retry"), &csrf).status, 303);
    let again = t.wait_for(&run, "the retry's end", |s| s["state"] == "succeeded");
    assert_eq!(again["tasks"][2]["attempts"], 2);
    // The driver the retry started has ended, and the UI waited for it.
    t.wait_for_driver_exit(&run);
    ui.assert_no_zombies("a retry");

    // A run still going is not retried: 409, and why.
    let long = t.submit_detached(&configs(60)[..1]);
    t.wait_for(&long, "a running task", |s| s["running"] == 1);
    let early = ui.post(&format!("/runs/{long}/retry"), &csrf);
    assert_eq!(early.status, 409, "{}", early.body);
    assert!(early.body.contains("still running"), "{}", early.body);

    // Cancel through it: a run of long tasks ends cancelled, and no driver is left a zombie.
    assert_eq!(ui.post(&format!("/runs/{long}/cancel"), &csrf).status, 303);
    t.wait_for(&long, "the cancel", |s| s["state"] == "cancelled");
    t.wait_for_driver_exit(&long);
    ui.assert_no_zombies("a cancel");
}

/// The children of process `pid` that have ended and that it has not waited for.
fn zombies_of(pid: u32) -> Vec<u32> {
    let dirs = std::fs::read_dir("/proc").into_iter().flatten().flatten();
    dirs.filter_map(|d| {
        let child: u32 = d.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(d.path().join("stat")).ok()?;
        // `PID (COMM) STATE PPID …`; COMM may hold spaces and parentheses.
        let mut after = stat[stat.rfind(')')? + 1..].split_whitespace();
        let (state, ppid) = (after.next()?, after.next()?.parse::<u32>().ok()?);
        (ppid == pid && state == "Z").then_some(child)
    })
    .collect()
}

#[test]
fn every_answer_carries_the_security_headers_and_half_sent_requests_are_cut_off() {
    let t = Test::with_task(r#"command = ["/task"]"#);
    let ui = Ui::start(&t);
    let host = ("Host", format!("127.0.0.1:{}", ui.port));
    // Both stalled clients at once: each is cut off within the UI's 10 seconds (and a bound).
    let port = ui.port;
    let head = std::thread::spawn(move || half_sent(port, "GET /api/runs HT".into()));
    let form = format!(
        "POST /runs/x/cancel HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: {}\r\n\
         Origin: http://127.0.0.1:{port}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: 100\r\n\r\ncsrf=",
        ui.cookie()
    );
    let body = std::thread::spawn(move || half_sent(port, form));

    let page = ui.get("/");
    let asset = ui.get("/assets/chart.js");
    let refused = ui.raw("GET", "/", std::slice::from_ref(&host), "");
    assert_eq!(refused.status, 401);
    let missing = ui.raw("GET", "/nope", &[host, ("Cookie", ui.cookie())], "");
    assert_eq!(missing.status, 404);
    for (what, reply) in [
        ("a page", page),
        ("an asset", asset),
        ("a refusal", refused),
        ("a 404", missing),
    ] {
        let head = reply.head.to_ascii_lowercase();
        for wanted in [
            "content-security-policy: default-src 'self'; object-src 'none'",
            "frame-ancestors 'none'",
            "x-frame-options: deny",
            "x-content-type-options: nosniff",
        ] {
            assert!(head.contains(wanted), "{what} lacks {wanted}: {head}");
        }
        assert!(!head.contains("unsafe-"), "{what}: {head}");
    }

    let (answer, took) = head.join().unwrap();
    assert!(
        took < Duration::from_secs(20),
        "a half-sent head was held {took:?}"
    );
    assert!(!answer.starts_with("HTTP/1.1 2"), "{answer}");
    let (answer, took) = body.join().unwrap();
    assert!(
        took < Duration::from_secs(20),
        "a half-sent body was held {took:?}"
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

/// Sends `request` (a part of one) and stops: what the server answers until it closes the
/// connection, and when it closed it. A server that still holds it after 30 s fails the test.
fn half_sent(port: u16, request: String) -> (String, Duration) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let start = Instant::now();
    let mut got = vec![];
    match s.read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the server held {request:?} for {:?}: {e}", start.elapsed()),
    }
    (String::from_utf8_lossy(&got).into_owned(), start.elapsed())
}

/// Output files named as no header or URL takes them as they are: each downloads by the link
/// its task page gives, under its own name; the page shows the names' control characters and
/// each file's size; and the results CSV keeps a spreadsheet from running a cell.
#[test]
fn files_with_awkward_names_download_by_their_links() {
    let t = Test::with_task(
        r#"command = ["/task", "write", "a\nb.txt", "newline", "write", "%2e%2e", "dots", "write", "d/e\u001bf", "escape", "write", "a\\b", "backslash", "fill", "big.bin", "3000", "write", "result.json", "{{\"loss\": -0.5}}"]"#,
    );
    t.build();
    let run = t.submit_detached(&[json!({"opt": "=1+1", "lr": -0.5})]);
    t.wait_for(&run, "the run's end", |s| s["state"] == "succeeded");
    let ui = Ui::start(&t);

    let page = ui.get(&format!("/runs/{run}/tasks/0")).body;
    let base = format!("/runs/{run}/tasks/0/outputs/");
    for (link, shown, body) in [
        ("a%0Ab.txt", "a\\nb.txt", "newline"),
        ("%252e%252e", "%2e%2e", "dots"),
        ("d/e%1Bf", "d/e\\x1bf", "escape"),
        ("a%5Cb", "a\\b", "backslash"),
    ] {
        let anchor = format!("href=\"{base}{link}\">{shown}</a>");
        assert!(page.contains(&anchor), "{anchor} in {page}");
        let got = ui.get(&format!("{base}{link}"));
        assert_eq!(got.body, body, "{link}");
        let name = link.rsplit('/').next().unwrap();
        assert!(
            got.head.contains(&format!("filename*=UTF-8''{name}")),
            "{link}: {}",
            got.head
        );
    }
    assert!(page.contains("3000 bytes (2.93 KiB)"), "{page}");

    let csv = ui.get(&format!("/runs/{run}/results.csv")).body;
    let row = csv.lines().nth(1).unwrap();
    assert!(row.starts_with("0,succeeded,'=1+1,-0.5,-0.5,"), "{csv}");
}

/// Headless Chromium, driven over the DevTools protocol.
struct Browser {
    child: Child,
    ws: tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>,
    id: u64,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn open(url: &str) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(url)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chromium runs (tests/setup installs it)");
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let mut port = None;
        for line in stderr.lines() {
            let line = line.unwrap();
            if let Some(rest) = line.strip_prefix("DevTools listening on ws://127.0.0.1:") {
                port = Some(rest.split('/').next().unwrap().parse::<u16>().unwrap());
                break;
            }
        }
        let port = port.expect("chromium says where DevTools listens");
        let page = wait(|| {
            let text = ureq::get(&format!("http://127.0.0.1:{port}/json/list"))
                .call()
                .ok()?
                .into_string()
                .ok()?;
            let list: Value = serde_json::from_str(&text).ok()?;
            list.as_array()?
                .iter()
                .find(|t| t["type"] == "page")
                .map(|t| t["webSocketDebuggerUrl"].as_str().unwrap().to_string())
        });
        let (ws, _) = tungstenite::connect(page).unwrap();
        Browser {
            child,
            ws,
            id: 0,
            _profile: profile,
        }
    }

    /// The value of a JavaScript expression in the page.
    fn eval(&mut self, expression: &str) -> Value {
        self.id += 1;
        let call = json!({"id": self.id, "method": "Runtime.evaluate", "params": {"expression": expression, "returnByValue": true}});
        self.ws
            .send(tungstenite::Message::Text(call.to_string().into()))
            .unwrap();
        loop {
            let msg = self.ws.read().unwrap();
            let Ok(v) = serde_json::from_str::<Value>(msg.to_text().unwrap_or("")) else {
                continue;
            };
            if v["id"] == self.id {
                return v["result"]["result"]["value"].clone();
            }
        }
    }

    fn navigate(&mut self, url: &str) {
        self.eval(&format!("location.href = {}", json!(url)));
    }

    /// Waits until the page has loaded whole (its stylesheet too: before that an `<i>` is
    /// inline and its computed width "auto") and the expression is true in it.
    fn until(&mut self, what: &str, expression: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let loaded = format!("document.readyState === 'complete' && ({expression})");
        while self.eval(&loaded) != json!(true) {
            assert!(Instant::now() < deadline, "the page never showed {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait<T>(mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn in_a_browser_the_grid_the_plot_and_a_cancel_show_as_a_person_sees_them() {
    let t = sweep();
    let run = finished_run(&t);
    let ui = Ui::start(&t);
    let mut b = Browser::open(&ui.url(&format!("/runs/{run}?token={}", ui.token)));
    b.until(
        "the run page",
        "document.querySelectorAll('#grid i.t').length === 4",
    );
    assert_eq!(
        b.eval("[...document.querySelectorAll('#grid i.t')].map(c => c.className).join(' ')"),
        "t s t s t f t s"
    );
    // A small run's grid is a block of large cells.
    assert_eq!(
        b.eval("getComputedStyle(document.querySelector('#grid i.t')).width"),
        "24px"
    );

    // The plot: one point per task with a loss (the failed one has none), drawn under the
    // page's Content-Security-Policy, which refuses a string evaluated as script.
    b.navigate(&ui.url(&format!("/runs/{run}/results")));
    b.until(
        "the plot",
        "document.getElementById('plot')?.dataset.points === '3'",
    );
    assert_eq!(
        b.eval("(() => { const s = document.createElement('script'); s.textContent = 'window.__inline = true'; document.body.appendChild(s); return window.__inline === true; })()"),
        json!(false),
        "the page's CSP refuses an inline script"
    );
    b.eval("setTimeout('window.__evaluated = true', 0); setTimeout(() => { window.__timers = true; }, 0)");
    b.until("the two timers", "window.__timers === true");
    assert_eq!(
        b.eval("window.__evaluated === true"),
        json!(false),
        "the page's CSP refuses a string as script"
    );
    // The small multiples are drawn once scrolled to.
    b.eval("document.getElementById('multiples').scrollIntoView()");
    b.until(
        "the small multiples",
        "document.querySelectorAll('#multiples canvas').length === 2",
    );
    assert_eq!(
        b.eval("[...document.querySelectorAll('#multiples canvas')].map(c => c.dataset.key + '=' + c.dataset.points).join(' ')"),
        "config.lr=3 config.loss=3",
        "one small plot per swept key (sleep is 0 for all), in the configurations' order, a point per task with a loss"
    );
    // The parallel coordinates: a line per task with a loss; keeping lr's lower half keeps
    // tasks 0 and 1, in the plot and in the table (task 2 failed: it has no line).
    b.until(
        "the parallel coordinates",
        "document.querySelector('#parallel canvas')?.dataset.lines === '3'",
    );
    b.eval("window.jobrunBrush(0, 0, 0.4)");
    assert_eq!(
        b.eval("[document.querySelector('#parallel canvas').dataset.kept, [...document.querySelectorAll('#results tbody tr')].filter(r => getComputedStyle(r).display !== 'none').map(r => r.dataset.i).join(' ')].join(' / ')"),
        "2 / 0 1"
    );
    b.eval("window.jobrunBrush(0, null)");
    assert_eq!(
        b.eval("document.querySelectorAll('#results tbody tr.out').length"),
        json!(0),
        "let go, every row is back"
    );
    b.navigate(&ui.url(&format!("/runs/{run}/results?sort=loss")));
    b.until(
        "the sorted table",
        "document.querySelector('#results tbody tr td a')?.textContent === '3'",
    );
    // The trend of the job: one point per run with a loss.
    b.navigate(&ui.url(&format!("/jobs/{}/trend?key=result.loss", t.name)));
    b.until(
        "the trend",
        "document.getElementById('trend')?.dataset.points === '1'",
    );
    b.navigate(&ui.url(&format!("/runs/{run}/results?sort=loss")));
    b.until(
        "the sorted table again",
        "document.querySelector('#results tbody tr td a')?.textContent === '3'",
    );
    // Whatever order the table is in, every point is inside the plot's scales.
    assert_eq!(
        b.eval("(() => { const c = Chart.getChart('plot'); return c.data.datasets[0].data.every(p => p.x >= c.scales.x.min && p.x <= c.scales.x.max && p.y >= c.scales.y.min && p.y <= c.scales.y.max); })()"),
        json!(true)
    );

    // A sweep whose lr spans three decades, judged by loss: its axis is logarithmic and the
    // winner is marked on the plot.
    let wide: Vec<Value> = [(0.001, 0.5), (0.01, 0.25), (0.1, 0.75), (1.0, 0.125)]
        .iter()
        .map(|(lr, loss)| json!({"lr": lr, "loss": loss, "sleep": 0}))
        .collect();
    let lines: Vec<String> = wide.iter().map(Value::to_string).collect();
    t.write("wide.jsonl", &(lines.join("\n") + "\n"));
    let r = t.run(&[
        "submit",
        "--configs",
        "wide.jsonl",
        "--metric",
        "loss",
        "--detach",
        "-o",
        "json",
    ]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let wide_run = r.json()["run_id"].as_str().unwrap().to_string();
    t.wait_for(&wide_run, "the wide run's end", |s| {
        s["finished_at"].is_string()
    });
    b.navigate(&ui.url(&format!(
        "/runs/{wide_run}/results?x=config.lr&y=result.loss"
    )));
    b.until(
        "the wide plot",
        &format!(
            "location.pathname.includes({}) && document.getElementById('plot')?.dataset.xScale !== undefined",
            json!(wide_run)
        ),
    );
    assert_eq!(
        b.eval("['xScale', 'yScale', 'best'].map(k => document.getElementById('plot').dataset[k]).join(' ')"),
        "logarithmic linear 3",
        "lr on a log axis, loss on a linear one, task 3 (loss 0.125) marked"
    );
    // Coloured by a key with few values: each value in the legend, in order.
    b.navigate(&ui.url(&format!(
        "/runs/{wide_run}/results?x=config.lr&y=result.loss&color=config.lr"
    )));
    b.until(
        "the legend",
        "location.search.includes('color') && document.querySelector('p.legend:not(#grid *)')?.textContent.includes('config.lr')",
    );
    assert_eq!(
        b.eval("[...document.querySelectorAll('p.legend')].map(p => p.textContent).find(t => t.startsWith('config.lr'))"),
        "config.lr: ● 0.001 ● 0.01 ● 1 "
    );
    let importance = b.eval("document.getElementById('importance')?.textContent");
    // The configurations carry the loss they make (config.loss), and lr falls as it rises
    // over the three that succeeded; sleep is the same for all, so it is left out.
    assert_eq!(
        importance, "importance (rank correlation with loss over 3 tasks): loss +1.00, lr −1.00",
        "{importance}"
    );
    // The trend opens on the objective with a chart, no query needed, its axis from zero and
    // the change said in %.
    b.navigate(&ui.url(&format!("/jobs/{}/trend", t.name)));
    b.until(
        "the trend on its own",
        "!location.search && document.getElementById('trend')?.dataset.points === '2'",
    );
    assert_eq!(
        b.eval("[document.getElementById('trend').dataset.key, document.getElementById('trend').dataset.yMin].join(' ')"),
        "result.loss 0"
    );
    let change = b.eval("document.getElementById('trend-change')?.textContent");
    assert_eq!(
        change, "result.loss: 0.125 → 0.125 (+0.0 %) over 2 runs",
        "{change}"
    );

    // A run cancelled elsewhere turns cancelled on its open page, without a reload.
    let long = t.submit_detached(&configs(60)[..1]);
    t.wait_for(&long, "a running task", |s| s["running"] == 1);
    b.navigate(&ui.url(&format!("/runs/{long}")));
    b.until(
        "the running run",
        "document.querySelector('#run-state .state')?.dataset.state === 'running'",
    );
    b.eval("window.__same_page = true");
    let r = t.run(&["cancel", &long]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    b.until(
        "the cancel",
        "document.querySelector('#run-state .state').dataset.state === 'cancelled'",
    );
    assert_eq!(
        b.eval("window.__same_page === true"),
        json!(true),
        "no reload"
    );
    assert_eq!(
        b.eval("document.querySelector('#grid i.t').className"),
        "t c"
    );

    // Repeats grouped by seed (and by the loss they carry): each lr is one configuration,
    // drawn as its mean ± sd over categories of lr; the failed task 2 takes no part.
    let toml = std::fs::read_to_string(t.dir.path().join("jobrun.toml")).unwrap();
    t.write(
        "jobrun.toml",
        &format!("{toml}\n[results]\nmetric = \"loss\"\ngroup = [\"seed\", \"loss\"]\n"),
    );
    let repeats: Vec<Value> = [
        (0.1, 1, 0.5),
        (0.1, 2, 0.7),
        (0.2, 1, 0.2),
        (0.2, 2, 0.4),
        (0.4, 1, 0.9),
        (0.4, 2, 0.9),
    ]
    .iter()
    .map(|(lr, seed, loss)| json!({"lr": lr, "seed": seed, "loss": loss, "sleep": 0}))
    .collect();
    let grouped = t.submit_detached(&repeats);
    t.wait_for(&grouped, "the grouped run's end", |s| {
        s["finished_at"].is_string()
    });
    b.navigate(&ui.url(&format!("/runs/{grouped}/results?x=config.lr")));
    b.until(
        "the grouped plot",
        &format!(
            "location.pathname.includes({}) && document.getElementById('plot')?.dataset.errorBars !== undefined",
            json!(grouped)
        ),
    );
    assert_eq!(
        b.eval("['xScale', 'means', 'errorBars', 'best'].map(k => document.getElementById('plot').dataset[k]).join(' ')"),
        "category 3 1 3",
        "lr as categories, a mean per lr, one with a spread (lr 0.1: 0.6 ± 0.14), the best mean's first task"
    );
    assert_eq!(
        b.eval("[...document.querySelectorAll('#groups tbody tr')].map(r => r.className + ':' + r.cells[3].textContent).join(' ')"),
        "best:0.4 :0.6 ± 0.1414 :0.9 ± 0"
    );
}

/// An ECS run (moto, the loopback registry; the test plays its containers with the in-image
/// `jobrun task`), seen by a `jobrun ui` on another machine: started in the job folder over an
/// empty state folder, it finds the run in the job's bucket, follows it to its end, and shows
/// its results and its outputs from S3, downloadable.
#[test]
fn an_ecs_run_is_read_from_the_bucket_with_its_outputs() {
    let moto = crate::services::moto();
    let t = crate::outputs_ecs::direct_job(
        moto,
        r#"["TASK", "write", "model/w.txt", "m{index}", "write", "result.json", "{{\"loss\": {config.lr}}}"]"#,
        "",
    );
    let hold = json!({"hold_until_receipt": true});
    let configs = [0.5, 0.1].map(|lr| json!({"lr": lr, "fake": hold}));
    let run = t.submit_detached(&configs);
    let elsewhere = tempfile::tempdir().unwrap();
    let ui = Ui::start_over(&t, elsewhere.path());
    let listed = wait(|| {
        let runs: Value = serde_json::from_str(&ui.get("/api/runs").body).ok()?;
        let first = runs.as_array()?.first()?.clone();
        (first["run_id"] == run.as_str()).then_some(first)
    });
    assert_eq!(listed["target"], "ecs", "{listed}");

    crate::outputs_ecs::play_tasks(&t, moto, &run, 2, crate::outputs_ecs::Play::Host);
    wait(|| {
        let status: Value = serde_json::from_str(&ui.get(&format!("/api/runs/{run}")).body).ok()?;
        (status["state"] == "succeeded").then_some(())
    });
    let sorted = ui.get(&format!("/runs/{run}/results?sort=loss")).body;
    let (first, second) = (
        sorted.find(&format!("/runs/{run}/tasks/1\"")).unwrap(),
        sorted.find(&format!("/runs/{run}/tasks/0\"")).unwrap(),
    );
    assert!(first < second, "task 1 (loss 0.1) first");

    let task = ui.get(&format!("/runs/{run}/tasks/1")).body;
    assert!(
        task.contains(&format!("/runs/{run}/tasks/1/outputs/model/w.txt")),
        "{task}"
    );
    assert!(
        task.contains("outputs/1/"),
        "the S3 folder is named: {task}"
    );
    assert!(
        task.contains("id=\"timelines\""),
        "each attempt's phases: {task}"
    );
    let weights = ui.get(&format!("/runs/{run}/tasks/1/outputs/model/w.txt"));
    assert_eq!(weights.body, "m1");
    assert!(
        weights
            .head
            .to_ascii_lowercase()
            .contains("attachment; filename=\"w.txt\""),
        "{}",
        weights.head
    );
    let host = ("Host", format!("127.0.0.1:{}", ui.port));
    let missing = ui.raw(
        "GET",
        &format!("/runs/{run}/tasks/1/outputs/model/nope.txt"),
        &[host, ("Cookie", ui.cookie())],
        "",
    );
    assert_eq!(missing.status, 404);
}
