//! Servers the push tests talk to, started once per test run on free loopback ports and stopped
//! when the test process ends (each runs under `sh`, which kills it when our end of its stdin
//! closes): moto server for the AWS API, and Debian's docker-registry (plain, and one that
//! demands a password) for the bytes. Their request logs are how tests count uploads.
//! The python ones run on `tests/.venv` (see `python`), never on the system python.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub struct Service {
    pub port: u16,
    pub log: PathBuf,
    _keepalive: Mutex<(ChildStdin, Child)>,
    _dir: tempfile::TempDir,
    /// The server behind a checking proxy, kept running as long as the proxy.
    _behind: Option<Box<Service>>,
    /// A second server behind the proxy (LocalStack for S3 and SQS), kept running with it.
    _beside: Option<Box<Service>>,
    /// The access key its clients sign with: `test`, or for LocalStack 12 digits, which it
    /// takes as the account id (moto's, so ARNs agree across the two).
    pub access_key: &'static str,
}

impl Service {
    /// The proxy's counters (`tests/moto/aws_proxy.py`).
    pub fn proxy_stats(&self) -> serde_json::Value {
        let text = ureq::get(&format!("{}/__proxy/stats", self.url()))
            .call()
            .unwrap()
            .into_string()
            .unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// Queues scripted AWS errors in the proxy: one fault object or a list of them (see
    /// tests/moto/aws_proxy.py, `POST /__proxy/faults`).
    pub fn fault(&self, faults: serde_json::Value) {
        ureq::post(&format!("{}/__proxy/faults", self.url()))
            .send_string(&faults.to_string())
            .unwrap();
    }

    /// How often the proxy answered a scripted fault for `service:operation`.
    pub fn fired(&self, key: &str) -> u64 {
        self.proxy_stats()["faults"][key].as_u64().unwrap_or(0)
    }

    /// moto: checks every request against IAM from now on (`true`), or no more (`false`). The
    /// setting is the server's: only for a moto of the test's own.
    pub fn enforce_iam(&self, on: bool) {
        ureq::post(&format!("{}/moto-api/reset-auth", self.url()))
            .send_string(if on { "0" } else { "inf" })
            .unwrap();
    }

    /// The CA certificate of a [`tls_front`].
    pub fn ca_file(&self) -> PathBuf {
        self._dir.path().join("ca.pem")
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
    /// Blob uploads started in `repo`, as the registry's access log records them.
    pub fn uploads(&self, repo: &str) -> usize {
        self.log_text()
            .matches(&format!("\"POST /v2/{repo}/blobs/uploads/ HTTP/1.1\" 202"))
            .count()
    }
}

/// The python every python service (and anything else a test runs in python) runs on:
/// `tests/.venv`, which `tests/setup` makes with exactly the packages `tests/requirements.txt`
/// pins. Panics, naming the set-up command, when it is missing or was made from another
/// `tests/requirements.txt`.
pub fn python() -> &'static str {
    const ROOT: &str = env!("CARGO_MANIFEST_DIR");
    const PYTHON: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/.venv/bin/python3");
    static CHECKED: OnceLock<()> = OnceLock::new();
    CHECKED.get_or_init(|| {
        let setup =
            "run `tests/setup` (README's test command, `tests/setup && cargo test --locked`, does)";
        assert!(
            std::path::Path::new(PYTHON).exists(),
            "{PYTHON} is missing: the tests run moto and their other python services on the \
             test venv; {setup}"
        );
        let wanted = std::fs::read(format!("{ROOT}/tests/requirements.txt")).unwrap();
        let made_from = std::fs::read(format!("{ROOT}/tests/.venv/jobrun-requirements.txt"));
        assert!(
            made_from.is_ok_and(|m| m == wanted),
            "tests/.venv was not made from the current tests/requirements.txt: {setup}"
        );
    });
    PYTHON
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(
    program: &str,
    args: &[String],
    dir: tempfile::TempDir,
    port: u16,
    ready_path: &str,
) -> Service {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .unwrap();
    assert!(
        found.status.success(),
        "{program} is not installed: the push tests need it (tests/setup installs it; see README, Development)"
    );
    let log = dir.path().join("log");
    let log_file = std::fs::File::create(&log).unwrap();
    let mut child = Command::new("sh")
        .args(["-c", "\"$@\" & c=$!; read _ignored; kill $c", "sh", program])
        .args(args)
        .stdin(Stdio::piped())
        // moto keeps its request recording in a file: in this service's folder, never the repo.
        .current_dir(dir.path())
        .env("MOTO_RECORDER_FILEPATH", dir.path().join("recording"))
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // A path to GET over HTTP, or `log:TEXT` for a server that says TEXT when it listens.
        let ready = match ready_path.strip_prefix("log:") {
            Some(text) => std::fs::read_to_string(&log).is_ok_and(|l| l.contains(text)),
            None => match ureq::get(&format!("http://127.0.0.1:{port}{ready_path}")).call() {
                Ok(r) => r.status() < 500,
                Err(ureq::Error::Status(code, _)) => code == 401,
                Err(_) => false,
            },
        };
        if ready {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{program} did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Service {
        port,
        log,
        _keepalive: Mutex::new((stdin, child)),
        _dir: dir,
        _behind: None,
        _beside: None,
        access_key: "test",
    }
}

fn registry(auth: bool) -> Service {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut config = format!(
        "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
        dir.path().join("data").display()
    );
    if auth {
        let htpasswd = dir.path().join("htpasswd");
        let out = Command::new("htpasswd")
            .args(["-Bbn", "jobrun", "s3cret"])
            .output()
            .expect("htpasswd (apache2-utils) is installed");
        std::fs::write(&htpasswd, out.stdout).unwrap();
        config.push_str(&format!(
            "auth:\n  htpasswd:\n    realm: jobrun-test\n    path: {}\n",
            htpasswd.display()
        ));
    }
    let cfg = dir.path().join("config.yml");
    std::fs::write(&cfg, config).unwrap();
    start(
        "docker-registry",
        &["serve".into(), cfg.display().to_string()],
        dir,
        port,
        "/v2/",
    )
}

pub fn plain_registry() -> &'static Service {
    static S: OnceLock<Service> = OnceLock::new();
    S.get_or_init(|| registry(false))
}

/// A registry of the test's own (one whose images the test expires, say).
pub fn own_registry() -> Service {
    registry(false)
}

/// ECR's lifecycle policy run on a repository of the test world's ECR: the policy as moto holds
/// it (GetLifecyclePolicy), the images in `registry` (tests/moto/ecr_lifecycle.py plays ECR's
/// documented evaluation). Returns the digests it expired.
pub fn expire_ecr(moto: &Service, registry: &Service, repository: &str) -> Vec<String> {
    let got = json_call(
        moto,
        "ecr",
        "AmazonEC2ContainerRegistry_V20150921.GetLifecyclePolicy",
        serde_json::json!({"repositoryName": repository}),
    )
    .unwrap_or_else(|e| panic!("GetLifecyclePolicy {repository}: {e:?}"));
    let policy = registry._dir.path().join("policy.json");
    std::fs::write(&policy, got["lifecyclePolicyText"].as_str().unwrap()).unwrap();
    let out = Command::new(python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/moto/ecr_lifecycle.py"
        ))
        .arg("--storage")
        .arg(registry._dir.path().join("data"))
        .args(["--registry", &registry.url(), "--repository", repository])
        .arg("--policy")
        .arg(&policy)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ecr_lifecycle.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// HTTPS in front of `upstream` (tests/moto/tls_front.py) with a private CA of its own, for
/// the jobrun inside an image: use `https://127.0.0.1:<port>` with AWS_CA_BUNDLE naming
/// [`Service::ca_file`].
pub fn tls_front(upstream: &Service) -> Service {
    tls_front_of(upstream.port)
}

/// [`tls_front`] in front of any HTTP server on loopback (a webhook receiver).
pub fn tls_front_of(upstream_port: u16) -> Service {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let args = [
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/moto/tls_front.py").to_string(),
        "--upstream-port".into(),
        upstream_port.to_string(),
        "--port".into(),
        port.to_string(),
        "--dir".into(),
        dir.path().display().to_string(),
    ];
    start(python(), &args, dir, port, "log:ready")
}

pub fn auth_registry() -> &'static Service {
    static S: OnceLock<Service> = OnceLock::new();
    S.get_or_init(|| registry(true))
}

/// moto server with the test plugin (`tests/moto/jobrun_moto.py`): a scripted fake Fargate that
/// gives tasks exit codes, stop codes, Spot capacity failures and CloudWatch logs, which stock
/// moto does not.
/// moto with the fake-Fargate plugin, behind the proxy that checks every request against AWS's
/// service models (`tests/moto/aws_model.py`): a request AWS would refuse is refused, so every
/// test's calls are held to AWS's rules, not moto's.
fn start_moto() -> Service {
    let moto = start_raw_moto();
    let mut checked = proxy(&moto, vec![]);
    checked._behind = Some(Box::new(moto));
    checked
}

fn start_raw_moto() -> Service {
    start_raw_moto_with(&[])
}

/// moto with the plugin, and these flags for the plugin (`--second-s3 URL`).
fn start_raw_moto_with(flags: &[String]) -> Service {
    let port = free_port();
    let mut args = vec![
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/moto/jobrun_moto.py").to_string(),
        "-H".into(),
        "127.0.0.1".into(),
        "-p".into(),
        port.to_string(),
    ];
    args.extend_from_slice(flags);
    start(
        python(),
        &args,
        tempfile::tempdir().unwrap(),
        port,
        "/moto-api/",
    )
}

/// `tests/moto/aws_proxy.py` in front of a moto server: honours RunTask client tokens as AWS
/// does, injects faults at `fault_rate`, and with `rates` enforces AWS's token buckets.
pub fn aws_proxy(upstream: &Service, fault_rate: f64, seed: u64, rates: bool) -> Service {
    let mut flags = vec![
        "--fault-rate".into(),
        fault_rate.to_string(),
        "--seed".into(),
        seed.to_string(),
    ];
    if rates {
        flags.push("--rates".into());
    }
    proxy(upstream, flags)
}

/// `tests/moto/aws_proxy.py` in front of a moto server, where EventBridge Scheduler refuses a
/// role for `seconds` after it was made (IAM settling, as on AWS).
pub fn settling_proxy(upstream: &Service, seconds: f64) -> Service {
    proxy(upstream, vec!["--role-settle".into(), seconds.to_string()])
}

/// `tests/moto/aws_proxy.py` keeping deleted queue names and schedule groups unusable for
/// `seconds`, as SQS (60 s) and Scheduler (DELETING) do.
pub fn deleted_wait_proxy(upstream: &Service, seconds: f64) -> Service {
    proxy(upstream, vec!["--deleted-wait".into(), seconds.to_string()])
}

/// `tests/moto/aws_proxy.py` failing each entry of an SQS delete or visibility batch the first
/// time its receipt handle comes, as SQS's per-entry `Failed` answers do.
pub fn sqs_entries_fail_once_proxy(upstream: &Service) -> Service {
    proxy(upstream, vec!["--sqs-entries-fail-once".into()])
}

/// `tests/moto/aws_proxy.py` answering GetObject/HeadObject of a missing key 403 AccessDenied,
/// as S3 answers a caller that may list only a prefix of the bucket.
pub fn s3_missing_403_proxy(upstream: &Service) -> Service {
    proxy(upstream, vec!["--s3-missing-403".into()])
}

/// `tests/moto/aws_proxy.py` in front of a moto server whose ECR images are in `registry`:
/// BatchDeleteImage takes tags off (and images out of) the registry as ECR does.
pub fn ecr_proxy(upstream: &Service, registry: &Service) -> Service {
    proxy(
        upstream,
        vec![
            "--ecr-storage".into(),
            registry._dir.path().join("data").display().to_string(),
            "--ecr-registry".into(),
            registry.url(),
        ],
    )
}

/// `tests/moto/aws_proxy.py` in front of a moto server, answering only the faults a test scripts.
pub fn scripted_proxy(upstream: &Service) -> Service {
    proxy(upstream, vec![])
}

/// `tests/moto/aws_proxy.py` for SQS: with `sink`, SendMessageBatch is answered (and tallied)
/// by the proxy; `entry_fault_rate` of the entries come back failed.
pub fn sqs_proxy(upstream: &Service, sink: bool, entry_fault_rate: f64) -> Service {
    let mut flags = vec![
        "--seed".into(),
        "7".into(),
        "--sqs-entry-fault-rate".into(),
        entry_fault_rate.to_string(),
    ];
    if sink {
        flags.push("--sqs-sink".into());
    }
    proxy(upstream, flags)
}

/// The proxy on a free port in front of `upstream`, with these flags.
fn proxy(upstream: &Service, flags: Vec<String>) -> Service {
    proxy_on(free_port(), upstream, flags)
}

/// LocalStack's community core (tests/.venv-localstack) serving S3 and SQS, its queue URLs
/// naming `public` (the proxy in front of it) and 123456789012 (moto's account) as its account.
fn localstack(public: u16) -> Service {
    const PYTHON: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/.venv-localstack/bin/python3"
    );
    assert!(
        std::path::Path::new(PYTHON).exists(),
        "{PYTHON} is missing: run `tests/setup` (it makes the LocalStack venv)"
    );
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let volume = dir.path().join("volume");
    let env = [
        "AWS_ACCESS_KEY_ID=123456789012".to_string(),
        "AWS_SECRET_ACCESS_KEY=test".into(),
        format!("GATEWAY_LISTEN=127.0.0.1:{port}"),
        "SERVICES=s3,sqs".into(),
        "GATEWAY_SERVER=hypercorn".into(),
        "SQS_ENDPOINT_STRATEGY=path".into(),
        format!("LOCALSTACK_HOST=127.0.0.1:{public}"),
        "LOCALSTACK_TELEMETRY=0".into(),
        "DISABLE_EVENTS=1".into(),
        format!("VOLUME_DIR={}", volume.display()),
        format!("FILESYSTEM_ROOT={}", dir.path().join("fs").display()),
    ];
    let mut args: Vec<String> = env.to_vec();
    args.extend([PYTHON.into(), "-m".into(), "localstack.runtime.main".into()]);
    start("env", &args, dir, port, "/_localstack/health")
}

/// moto for every service but S3 and SQS, which LocalStack serves: one checking proxy in front
/// of both, routing by the request's signing name. The tests that run on both emulators take it
/// where others take [`moto`].
fn start_moto_with_localstack() -> Service {
    let port = free_port();
    let localstack = localstack(port);
    // The fake Fargate looks for a held task's receipt in LocalStack's S3.
    let moto = start_raw_moto_with(&["--second-s3".into(), localstack.url()]);
    let flags = vec!["--s3-sqs-upstream".into(), localstack.url()];
    let mut checked = proxy_on(port, &moto, flags);
    checked._behind = Some(Box::new(moto));
    checked._beside = Some(Box::new(localstack));
    checked.access_key = "123456789012";
    checked
}

impl Service {
    /// An `Authorization` header for a raw request to this service (not checked, but its
    /// credential scope names the service and, for LocalStack, the account).
    pub fn auth(&self, signing_name: &str) -> String {
        format!(
            "AWS4-HMAC-SHA256 Credential={}/20260101/us-east-1/{signing_name}/aws4_request, SignedHeaders=host, Signature=0",
            self.access_key
        )
    }
}

/// The shared moto-and-LocalStack (see [`start_moto_with_localstack`]).
pub fn moto_localstack() -> &'static Service {
    static S: OnceLock<Service> = OnceLock::new();
    S.get_or_init(start_moto_with_localstack)
}

/// The proxy on `port` in front of `upstream`, with these flags.
fn proxy_on(port: u16, upstream: &Service, flags: Vec<String>) -> Service {
    let mut args = vec![
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/moto/aws_proxy.py").to_string(),
        "--upstream".into(),
        upstream.url(),
        "--port".into(),
        port.to_string(),
    ];
    args.extend(flags);
    if upstream._behind.is_some() {
        args.push("--no-model-check".into()); // the proxy in front of moto checks already
    }
    // What it checked goes to a file when it stops, for the suite's count (README, Development).
    let stats = std::env::temp_dir().join("jobrun-model-check");
    std::fs::create_dir_all(&stats).unwrap();
    args.extend([
        "--stats-file".into(),
        stats.join(format!("{port}.json")).display().to_string(),
    ]);
    let mut proxy = start(
        python(),
        &args,
        tempfile::tempdir().unwrap(),
        port,
        "/__proxy/stats",
    );
    proxy.access_key = upstream.access_key; // its clients sign as the upstream's do
    proxy
}

/// `tests/moto/fake_ecs_agent.py`: an ECS task's metadata and agent endpoints (task ARN, and
/// scale-in protection requests printed to its log).
pub fn fake_ecs_agent() -> Service {
    let port = free_port();
    let args = [
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/moto/fake_ecs_agent.py").to_string(),
        "--port".into(),
        port.to_string(),
    ];
    start(
        python(),
        &args,
        tempfile::tempdir().unwrap(),
        port,
        "/__ready",
    )
}

/// The moto server the tests share (each test uses names of its own).
pub fn moto() -> &'static Service {
    static S: OnceLock<Service> = OnceLock::new();
    S.get_or_init(start_moto)
}

/// A moto server (with the fake-Fargate plugin) of one's own, for a test that loads it heavily.
pub fn own_moto() -> Service {
    start_moto()
}

/// A moto server of one's own, for a test that counts the calls jobrun makes: moto records
/// every request it serves (`/moto-api/recorder`).
pub fn recording_moto() -> Service {
    let service = start_moto();
    service.restart_recording();
    service
}

impl Service {
    /// Clears moto's request recording and starts a new one.
    pub fn restart_recording(&self) {
        ureq::post(&format!("{}/moto-api/recorder/stop-recording", self.url()))
            .call()
            .unwrap();
        ureq::post(&format!("{}/moto-api/recorder/reset-recording", self.url()))
            .call()
            .unwrap();
        ureq::post(&format!("{}/moto-api/recorder/start-recording", self.url()))
            .call()
            .unwrap();
    }

    /// The AWS operations moto served since the recording started, e.g. `ecs:CreateCluster`,
    /// `iam:GetRole`, `s3:PUT /bucket`.
    pub fn operations(&self) -> Vec<String> {
        use base64::Engine as _;
        let text = ureq::get(&format!(
            "{}/moto-api/recorder/download-recording",
            self.url()
        ))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .filter_map(|l| {
                let r: serde_json::Value = serde_json::from_str(l).ok()?;
                let mut body = r["body"].as_str().unwrap_or_default().to_string();
                if r["body_encoded"] == true {
                    body = String::from_utf8_lossy(
                        &base64::engine::general_purpose::STANDARD
                            .decode(&body)
                            .ok()?,
                    )
                    .into_owned();
                }
                let url = r["url"].as_str().unwrap_or_default();
                let path = url
                    .splitn(4, '/')
                    .nth(3)
                    .map(|p| format!("/{p}"))
                    .unwrap_or_default();
                if path.starts_with("/moto-api") {
                    return None;
                }
                if let Some(target) = r["headers"]["X-Amz-Target"].as_str() {
                    return Some(format!(
                        "json:{}",
                        target.rsplit('.').next().unwrap_or(target)
                    ));
                }
                if let Some(action) = body.split('&').find_map(|kv| kv.strip_prefix("Action=")) {
                    return Some(format!("query:{action}"));
                }
                Some(format!(
                    "rest:{} {path}",
                    r["method"].as_str().unwrap_or_default()
                ))
            })
            .collect()
    }

    /// The operations that change something (not Describe/Get/List/Head, not a REST GET/HEAD).
    pub fn writes(&self) -> Vec<String> {
        self.operations()
            .into_iter()
            .filter(|op| {
                let name = op.split_once(':').map(|(_, n)| n).unwrap_or(op);
                if op.starts_with("rest:") {
                    !(name.starts_with("GET ") || name.starts_with("HEAD "))
                } else {
                    !["Describe", "Get", "List", "Head", "Simulate"]
                        .iter()
                        .any(|p| name.starts_with(p))
                }
            })
            .collect()
    }
}

/// The environment that points the AWS SDK at a moto server.
pub fn moto_env_for(service: &Service) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", service.url()),
        ("AWS_ACCESS_KEY_ID", service.access_key.into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_REGION", "us-east-1".into()),
    ]
}

/// The environment that points the AWS SDK at the shared moto.
pub fn moto_env() -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", moto().url()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_REGION", "us-east-1".into()),
    ]
}

/// A JSON 1.1 call to moto's ECR API, not through jobrun (moto does not check signatures).
pub fn ecr_call(target: &str, body: serde_json::Value) -> Result<serde_json::Value, (u16, String)> {
    json_call(
        moto(),
        "ecr",
        &format!("AmazonEC2ContainerRegistry_V20150921.{target}"),
        body,
    )
}

/// A JSON 1.1 call (ECS, ECR, Logs) to a moto server.
pub fn json_call(
    service: &Service,
    signing_name: &str,
    target: &str,
    body: serde_json::Value,
) -> Result<serde_json::Value, (u16, String)> {
    let r = ureq::post(&service.url())
        .set("X-Amz-Target", target)
        .set("Content-Type", "application/x-amz-json-1.1")
        .set("Authorization", &service.auth(signing_name))
        .send_string(&body.to_string());
    match r {
        Ok(resp) => {
            // Some operations (CreateLogStream) answer with an empty body.
            let text = resp.into_string().unwrap();
            Ok(serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
        }
        Err(ureq::Error::Status(code, resp)) => Err((code, resp.into_string().unwrap_or_default())),
        Err(e) => panic!("moto: {e}"),
    }
}

/// GET from a registry's HTTP API (not through jobrun).
pub fn registry_get(service: &Service, path: &str, accept: &str) -> Result<Vec<u8>, u16> {
    match ureq::get(&format!("{}{path}", service.url()))
        .set("Accept", accept)
        .call()
    {
        Ok(resp) => {
            let mut buf = vec![];
            resp.into_reader().read_to_end(&mut buf).unwrap();
            Ok(buf)
        }
        Err(ureq::Error::Status(code, _)) => Err(code),
        Err(e) => panic!("registry: {e}"),
    }
}

/// A TCP proxy in front of a registry that answers the first `fail` connections with
/// `503 Service Unavailable` and passes every later one through untouched: a registry having a
/// bad moment.
pub struct FlakyProxy {
    pub port: u16,
    failed: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl FlakyProxy {
    pub fn start(upstream: u16, fail: usize) -> FlakyProxy {
        use std::io::Write;
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let failed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = failed.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut client) = conn else { continue };
                if counter.load(Ordering::SeqCst) < fail {
                    counter.fetch_add(1, Ordering::SeqCst);
                    // Read the request head, answer 503, close.
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") && client.read(&mut byte).unwrap_or(0) == 1 {
                        head.push(byte[0]);
                    }
                    let _ = client.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    continue;
                }
                let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (mut c1, mut s1) = (client, server);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c1, &mut s1);
                    let _ = s1.shutdown(std::net::Shutdown::Write);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s2, &mut c2);
                    let _ = c2.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        FlakyProxy { port, failed }
    }

    pub fn failed(&self) -> usize {
        self.failed.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A query-protocol call (IAM, EC2) to a moto server; returns the XML answer.
pub fn query_call(
    service: &Service,
    signing_name: &str,
    params: &[(&str, &str)],
) -> Result<String, (u16, String)> {
    let mut req = ureq::post(&service.url()).set(
        "Authorization",
        &format!("AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/{signing_name}/aws4_request, SignedHeaders=host, Signature=0"),
    );
    req = req.set("Content-Type", "application/x-www-form-urlencoded");
    match req.send_form(params) {
        Ok(r) => Ok(r.into_string().unwrap()),
        Err(ureq::Error::Status(code, r)) => Err((code, r.into_string().unwrap_or_default())),
        Err(e) => panic!("moto: {e}"),
    }
}
