//! The task's command as a child process: its own process group, output copied to the agent's
//! own (the worker's log) with the last lines kept, and stopped on timeout, cancel or SIGTERM
//! while the heartbeat keeps its message invisible.

use super::work::Work;
use super::{Agent, AgentError};
use crate::wire::Outcome;
use std::collections::VecDeque;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// How one child ended.
pub(super) enum Ended {
    Exit(Option<i64>, Option<String>),
    TimedOut,
    Cancelled,
    /// The agent was told to stop: the message goes back to the queue.
    Terminated,
}

/// How a delivery ended, as its result record says.
pub(super) struct Done {
    pub(super) outcome: Outcome,
    pub(super) exit_code: Option<i64>,
    pub(super) reason: Option<String>,
    /// What went up of the task's output folder.
    pub(super) outputs: Option<crate::wire::Receipt>,
}

impl Done {
    /// How a child's end is reported; `None` when the agent was told to stop (no result: the
    /// message goes back).
    pub(super) fn of(ended: Ended, timeout: Duration) -> Option<Done> {
        Some(match ended {
            Ended::Terminated => return None,
            Ended::Exit(Some(0), _) => Done {
                outcome: Outcome::Succeeded,
                exit_code: Some(0),
                reason: None,
                outputs: None,
            },
            Ended::Cancelled => Done::cancelled(),
            Ended::TimedOut => Done::failed(
                None,
                format!("timed out after {}", humantime::format_duration(timeout)),
            ),
            Ended::Exit(code, why) => Done::failed(
                code,
                why.unwrap_or_else(|| match code {
                    Some(c) => format!("exit code {c}"),
                    None => "killed by a signal".into(),
                }),
            ),
        })
    }

    pub(super) fn cancelled() -> Done {
        Done {
            outcome: Outcome::Cancelled,
            exit_code: None,
            reason: Some("cancelled".into()),
            outputs: None,
        }
    }
    pub(super) fn failed(exit_code: Option<i64>, why: String) -> Done {
        Done {
            outcome: Outcome::Failed,
            exit_code,
            reason: Some(why),
            outputs: None,
        }
    }
}

impl Agent {
    /// Runs the task's command; returns how it ended and its last lines of output.
    pub(super) async fn run_child(
        &self,
        w: &Work,
        (receipt, received): (&str, std::time::Instant),
        term: &mut tokio::signal::unix::Signal,
        int: &mut tokio::signal::unix::Signal,
    ) -> Result<(Ended, Vec<String>), AgentError> {
        let mut argv = self.entrypoint.clone();
        argv.extend(
            w.argv_tail
                .clone()
                .unwrap_or_else(|| self.default_command.clone()),
        );
        if argv.is_empty() {
            return Ok((
                Ended::Exit(None, Some("there is no command to run".into())),
                vec![],
            ));
        }
        let mut cmd = tokio::process::Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .envs(&w.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                return Ok((
                    Ended::Exit(None, Some(format!("cannot start {}: {e}", argv[0]))),
                    vec![],
                ));
            }
        };
        let tail = std::sync::Arc::new(std::sync::Mutex::new(VecDeque::<String>::new()));
        let mut pumps = vec![];
        if let Some(out) = child.stdout.take() {
            pumps.push(tokio::spawn(pump(out, false, tail.clone())));
        }
        if let Some(err) = child.stderr.take() {
            pumps.push(tokio::spawn(pump(err, true, tail.clone())));
        }
        let pid = child.id();
        let deadline = tokio::time::Instant::now() + w.timeout;
        // The visibility is renewed, and the cancel marker looked at, every third of the
        // visibility timeout and at least every 30 s.
        let mut beat = tokio::time::interval((self.visibility / 3).min(Duration::from_secs(30)));
        beat.tick().await;
        let ended = loop {
            tokio::select! {
                status = child.wait() => {
                    let status = status.ok();
                    break Ended::Exit(status.and_then(|s| s.code()).map(i64::from), None);
                }
                _ = beat.tick() => {
                    self.heartbeat(receipt, received).await;
                    if self.cancelled(w).await.unwrap_or(false) {
                        stop_child(pid, &mut child, self.args.grace).await;
                        break Ended::Cancelled;
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    stop_child(pid, &mut child, self.args.grace).await;
                    break Ended::TimedOut;
                }
                _ = term.recv() => {
                    stop_child(pid, &mut child, self.args.grace).await;
                    break Ended::Terminated;
                }
                _ = int.recv() => {
                    stop_child(pid, &mut child, self.args.grace).await;
                    break Ended::Terminated;
                }
            }
        };
        // Whatever the task left running in its process group goes with it, so nothing holds
        // its output open (and the next message does not share the container with it).
        if let Some(pid) = pid {
            // SAFETY: kill(2) with a negative pid signals the child's own process group.
            unsafe {
                libc::kill(-(pid as i32), libc::SIGKILL);
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            for p in pumps {
                let _ = p.await;
            }
        })
        .await;
        let tail: Vec<String> = tail.lock().expect("tail").iter().cloned().collect();
        Ok((ended, tail))
    }
}

/// Copies a child's output to the agent's own (so it lands in the worker's log), keeping the
/// last lines.
async fn pump<R: tokio::io::AsyncRead + Unpin>(
    from: R,
    to_stderr: bool,
    tail: std::sync::Arc<std::sync::Mutex<VecDeque<String>>>,
) {
    let mut lines = BufReader::new(from).lines();
    let mut out = tokio::io::stdout();
    let mut err = tokio::io::stderr();
    while let Ok(Some(line)) = lines.next_line().await {
        let w = if to_stderr {
            err.write_all(format!("{line}\n").as_bytes()).await
        } else {
            out.write_all(format!("{line}\n").as_bytes()).await
        };
        let _ = w;
        let mut t = tail.lock().expect("tail");
        t.push_back(line);
        if t.len() > 20 {
            t.pop_front();
        }
    }
}

/// SIGTERM to the child's process group, SIGKILL after `grace`.
async fn stop_child(pid: Option<u32>, child: &mut tokio::process::Child, grace: Duration) {
    if let Some(pid) = pid {
        // SAFETY: kill(2) with a negative pid signals the child's own process group.
        unsafe {
            libc::kill(-(pid as i32), libc::SIGTERM);
        }
    }
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        if let Some(pid) = pid {
            // SAFETY: as above.
            unsafe {
                libc::kill(-(pid as i32), libc::SIGKILL);
            }
        }
        let _ = child.wait().await;
    }
}
