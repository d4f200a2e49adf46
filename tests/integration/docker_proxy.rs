//! A Docker socket in front of the engine's, to play the races jobrun must survive at the very
//! request they happen at. Every request goes through as it is, unless a rule matches it first
//! (its method, what it does, and the container it names): the rule then acts before passing
//! it on (removes the container, say) or answers in the engine's place. Answers come back byte
//! for byte; a client that goes away closes its engine connection, as it would have.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::{Arc, Mutex};

const ENGINE: &str = "/var/run/docker.sock";

/// What a rule does with the request it matches.
#[derive(Clone)]
pub enum Act {
    /// Runs with the container's name, then the request goes on to the engine.
    Before(Arc<dyn Fn(&str) + Send + Sync>),
    /// Answers in the engine's place: this HTTP status and `{"message": …}`.
    Answer(u16, String),
}

struct Rule {
    method: &'static str,
    /// The request's last path part (`create`, `start`, `json`, `logs`, …).
    what: &'static str,
    /// How the container's name ends (`-0-1`: task 0's first attempt).
    name_ends: &'static str,
    left: usize,
    fired: usize,
    act: Act,
}

pub struct DockerProxy {
    dir: tempfile::TempDir,
    rules: Arc<Mutex<Vec<Rule>>>,
}

impl DockerProxy {
    pub fn start() -> DockerProxy {
        let dir = tempfile::tempdir().unwrap();
        let listener = UnixListener::bind(dir.path().join("docker.sock")).unwrap();
        let rules: Arc<Mutex<Vec<Rule>>> = Arc::default();
        let shared = rules.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let rules = shared.clone();
                std::thread::spawn(move || {
                    let _ = serve(client, &rules);
                });
            }
        });
        DockerProxy { dir, rules }
    }

    /// The value of DOCKER_HOST that goes through this proxy.
    pub fn host(&self) -> String {
        format!("unix://{}", self.dir.path().join("docker.sock").display())
    }

    /// Adds a rule for the next `times` requests `method …/<what>` on a container whose name
    /// ends with `name_ends`; returns its number for [`DockerProxy::fired`].
    pub fn on(
        &self,
        method: &'static str,
        what: &'static str,
        name_ends: &'static str,
        times: usize,
        act: Act,
    ) -> usize {
        let mut rules = self.rules.lock().unwrap();
        rules.push(Rule {
            method,
            what,
            name_ends,
            left: times,
            fired: 0,
            act,
        });
        rules.len() - 1
    }

    /// How many requests rule `n` acted on.
    pub fn fired(&self, n: usize) -> usize {
        self.rules.lock().unwrap()[n].fired
    }
}

/// `docker rm -f` on the engine itself, as someone else would.
pub fn remove_container(name: &str) {
    let out = std::process::Command::new("docker")
        .args(["rm", "-f", name])
        .output()
        .unwrap();
    assert!(out.status.success(), "docker rm -f {name}: {out:?}");
}

/// The container a request path names, and what the request does with it:
/// `/v1.41/containers/create?name=N` → (N, "create"), `/v1.41/containers/N/logs?…` → (N, "logs").
fn container_of(target: &str) -> Option<(String, String)> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let rest = &path[path.find("/containers/")? + "/containers/".len()..];
    if rest == "create" {
        let name = query.split('&').find_map(|p| p.strip_prefix("name="))?;
        return Some((name.to_string(), "create".into()));
    }
    let (name, what) = rest.split_once('/')?;
    Some((name.to_string(), what.to_string()))
}

/// The act of the first rule with uses left that matches, counted as fired.
fn matching(rules: &Mutex<Vec<Rule>>, method: &str, target: &str) -> Option<(Act, String)> {
    let (name, what) = container_of(target)?;
    let mut rules = rules.lock().unwrap();
    let rule = rules.iter_mut().find(|r| {
        r.left > 0 && r.method == method && r.what == what && name.ends_with(r.name_ends)
    })?;
    rule.left -= 1;
    rule.fired += 1;
    Some((rule.act.clone(), name))
}

/// One client connection: its requests one by one (HTTP/1.1, no pipelining), each passed on
/// or answered; the engine's answers are copied back by a second thread.
fn serve(client: UnixStream, rules: &Mutex<Vec<Rule>>) -> std::io::Result<()> {
    let mut engine = UnixStream::connect(ENGINE)?;
    let (mut from_engine, mut to_client) = (engine.try_clone()?, client.try_clone()?);
    let back = std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_engine, &mut to_client);
        let _ = to_client.shutdown(std::net::Shutdown::Write);
    });
    let mut answer = client.try_clone()?;
    let mut reader = BufReader::new(client);
    loop {
        let mut head = Vec::new();
        loop {
            let mut line = Vec::new();
            if reader.read_until(b'\n', &mut line)? == 0 {
                let _ = engine.shutdown(std::net::Shutdown::Both);
                let _ = back.join();
                return Ok(());
            }
            head.extend_from_slice(&line);
            if line == b"\r\n" {
                break;
            }
        }
        let text = String::from_utf8_lossy(&head).into_owned();
        let mut words = text.split_whitespace();
        let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        let header = |name: &str| {
            text.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_string())
            })
        };
        let chunked = header("transfer-encoding").is_some_and(|v| v.contains("chunked"));
        let length: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        match matching(rules, method, target) {
            Some((Act::Answer(status, message), _)) => {
                let json = serde_json::json!({ "message": message }).to_string();
                write!(
                    answer,
                    "HTTP/1.1 {status} Faked\r\nApi-Version: 1.41\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}",
                    json.len()
                )?;
                continue;
            }
            Some((Act::Before(act), name)) => act(&name),
            None => {}
        }
        engine.write_all(&head)?;
        engine.write_all(&body)?;
        if chunked {
            // A streamed body (an image build): the rest of the connection as it is.
            std::io::copy(&mut reader, &mut engine)?;
        }
    }
}

#[test]
fn container_of_reads_the_name_and_what_is_done() {
    let n = "jobrun-20260101-000000-j-1-7f3a-0-1";
    assert_eq!(
        container_of(&format!("/v1.41/containers/create?name={n}")),
        Some((n.into(), "create".into()))
    );
    assert_eq!(
        container_of(&format!("/v1.41/containers/{n}/logs?stdout=true")),
        Some((n.into(), "logs".into()))
    );
    assert_eq!(container_of("/v1.41/containers/json?all=true"), None);
    assert_eq!(container_of("/v1.41/version"), None);
}
