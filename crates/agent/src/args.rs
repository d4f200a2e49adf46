//! The command line of the jobrun inside a task: `agent` (a queue worker) or `task -- COMMAND…`
//! (a direct-mode task). A task definition starts it with few flags and says the rest in its
//! environment (`JOBRUN_*`), so each flag is read from the command line, else its variable,
//! else its default. lexopt, not clap: two commands of a dozen flags do not need clap's
//! weight in every image, and the CLI hands `jobrun agent` / `jobrun task` to this same parser,
//! so the two binaries cannot read a task definition differently.

use crate::agent::AgentArgs;
use crate::agent::direct::TaskArgs;
use jobrun_wire::durations::parse_duration;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::time::Duration;

/// One flag: `--name VALUE` or `--name=VALUE`, else `$env`, else `default`.
struct Flag {
    name: &'static str,
    env: Option<&'static str>,
    default: Option<&'static str>,
    help: &'static str,
}

const fn flag(
    name: &'static str,
    env: Option<&'static str>,
    default: Option<&'static str>,
    help: &'static str,
) -> Flag {
    Flag {
        name,
        env,
        default,
        help,
    }
}

/// Both commands put the image's entrypoint before the command.
const ENTRYPOINT: Flag = flag(
    "entrypoint",
    Some("JOBRUN_ENTRYPOINT"),
    Some("[]"),
    "the image's entrypoint, a JSON array",
);

const AGENT: &[Flag] = &[
    flag(
        "queue-url",
        Some("JOBRUN_QUEUE_URL"),
        None,
        "the queue to take tasks from",
    ),
    flag(
        "bucket",
        Some("JOBRUN_BUCKET"),
        None,
        "the job's bucket, where result records go",
    ),
    flag(
        "job",
        Some("JOBRUN_JOB"),
        None,
        "the job's name (for S3-event tasks)",
    ),
    flag(
        "idle-exit",
        Some("JOBRUN_IDLE_EXIT"),
        Some("15m"),
        "exit after this long without a message",
    ),
    flag(
        "visibility",
        Some("JOBRUN_VISIBILITY"),
        None,
        "how long a taken message stays invisible (default: the queue's)",
    ),
    flag(
        "max-receives",
        Some("JOBRUN_MAX_RECEIVES"),
        None,
        "the queue's maxReceiveCount (default: its redrive policy's)",
    ),
    flag(
        "timeout",
        Some("JOBRUN_TIMEOUT"),
        Some("1h"),
        "timeout of tasks whose message does not say",
    ),
    ENTRYPOINT,
    flag(
        "default-command",
        Some("JOBRUN_DEFAULT_COMMAND"),
        Some("[]"),
        "the command of tasks whose message has none, a JSON array",
    ),
    flag(
        "log-group",
        Some("JOBRUN_LOG_GROUP"),
        None,
        "the CloudWatch log group of the worker's output",
    ),
    flag(
        "grace",
        Some("JOBRUN_GRACE"),
        Some("20s"),
        "how long a stopping child gets between SIGTERM and SIGKILL",
    ),
    flag(
        "max-messages",
        None,
        Some("0"),
        "stop after this many messages (0: no limit)",
    ),
];

const TASK: &[Flag] = &[
    flag(
        "bucket",
        Some("JOBRUN_BUCKET"),
        None,
        "the job's bucket, where the run's outputs go",
    ),
    ENTRYPOINT,
    flag(
        "default-command",
        Some("JOBRUN_DEFAULT_COMMAND"),
        Some("[]"),
        "the command when the task gives none, a JSON array",
    ),
    flag("job", Some("JOBRUN_JOB"), None, "the job's name"),
    flag("run-id", Some("JOBRUN_RUN_ID"), None, "the run"),
    flag("index", Some("JOBRUN_INDEX"), None, "the task's index"),
    flag(
        "attempt",
        Some("JOBRUN_ATTEMPT"),
        None,
        "the attempt's number",
    ),
    flag("stage", Some("JOBRUN_STAGE"), Some("map"), "map or reduce"),
];

/// What the command line asks for.
#[derive(Debug)]
pub enum Invocation {
    Agent(AgentArgs),
    Task(TaskArgs),
    /// `--help`: the text to print.
    Help(String),
    Version,
}

/// A command line that cannot be read: the message, and the hint to print under it.
#[derive(Debug, PartialEq)]
pub struct Usage {
    pub message: String,
    pub hint: String,
}

fn usage(message: impl Into<String>, hint: impl Into<String>) -> Usage {
    Usage {
        message: message.into(),
        hint: hint.into(),
    }
}

/// Reads `args` (without the program's name): the command, then its flags.
pub fn parse(args: Vec<OsString>) -> Result<Invocation, Usage> {
    parse_with(args, |name| std::env::var(name).ok())
}

fn parse_with(
    args: Vec<OsString>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Invocation, Usage> {
    let mut args = args.into_iter();
    let command = args.next().map(|c| c.to_string_lossy().into_owned());
    let rest: Vec<OsString> = args.collect();
    match command.as_deref() {
        Some("agent") => {
            let Some((got, _)) = read(AGENT, rest, false, "agent")? else {
                return Ok(Invocation::Help(help("agent", AGENT)));
            };
            agent_args(&Lookup {
                flags: AGENT,
                got,
                env: &env,
            })
            .map(Invocation::Agent)
        }
        Some("task") => {
            let Some((got, command)) = read(TASK, rest, true, "task")? else {
                return Ok(Invocation::Help(help("task -- COMMAND…", TASK)));
            };
            task_args(
                &Lookup {
                    flags: TASK,
                    got,
                    env: &env,
                },
                command,
            )
            .map(Invocation::Task)
        }
        Some("--version" | "-V") => Ok(Invocation::Version),
        Some("--help" | "-h") | None => Ok(Invocation::Help(format!(
            "the jobrun inside a task\n\nusage: jobrun-agent agent [FLAGS]\n       jobrun-agent task [FLAGS] -- COMMAND…\n\n{}\n{}",
            help("agent", AGENT),
            help("task -- COMMAND…", TASK)
        ))),
        Some(other) => Err(usage(
            format!("`{other}` is not a command of the jobrun inside a task"),
            "its commands are `agent` and `task` (the task definition says which)",
        )),
    }
}

type Got = (BTreeMap<&'static str, String>, Vec<String>);

/// The flags given (and, with `trailing`, the command after them); `None` for `--help`.
fn read(
    flags: &'static [Flag],
    args: Vec<OsString>,
    trailing: bool,
    command: &str,
) -> Result<Option<Got>, Usage> {
    use lexopt::{Arg, ValueExt};
    let bad = |e: lexopt::Error| {
        usage(
            format!("jobrun {command}: {e}"),
            format!("see `jobrun-agent {command} --help`"),
        )
    };
    let mut parser = lexopt::Parser::from_args(args);
    let mut got = BTreeMap::new();
    let mut rest = vec![];
    while let Some(arg) = parser.next().map_err(bad)? {
        match arg {
            Arg::Long("help") | Arg::Short('h') => return Ok(None),
            Arg::Long(name) => {
                let Some(flag) = flags.iter().find(|f| f.name == name) else {
                    return Err(usage(
                        format!("jobrun {command}: there is no flag --{name}"),
                        format!("see `jobrun-agent {command} --help`"),
                    ));
                };
                let value = parser.value().map_err(bad)?;
                got.insert(flag.name, value.string().map_err(bad)?);
            }
            Arg::Value(first) if trailing => {
                rest.push(first.string().map_err(bad)?);
                for raw in parser.raw_args().map_err(bad)? {
                    rest.push(raw.into_string().map_err(|_| {
                        usage(
                            format!("jobrun {command}: the command is not UTF-8"),
                            "a task's command comes from its configuration, which is JSON text",
                        )
                    })?);
                }
            }
            other => return Err(bad(other.unexpected())),
        }
    }
    Ok(Some((got, rest)))
}

/// A flag's value: given, else its variable (an empty one counts as unset), else its default.
struct Lookup<'a, E: Fn(&str) -> Option<String>> {
    flags: &'static [Flag],
    got: BTreeMap<&'static str, String>,
    env: &'a E,
}

impl<E: Fn(&str) -> Option<String>> Lookup<'_, E> {
    fn flag(&self, name: &str) -> &'static Flag {
        self.flags
            .iter()
            .find(|f| f.name == name)
            .expect("a known flag")
    }

    fn optional(&self, name: &str) -> Option<String> {
        let flag = self.flag(name);
        (self.got.get(flag.name).cloned())
            .or_else(|| {
                flag.env
                    .and_then(|v| (self.env)(v))
                    .filter(|v| !v.is_empty())
            })
            .or_else(|| flag.default.map(str::to_string))
    }

    fn required(&self, name: &str) -> Result<String, Usage> {
        self.optional(name).ok_or_else(|| {
            let flag = self.flag(name);
            let env = flag.env.map(|e| format!(" or {e}")).unwrap_or_default();
            usage(
                format!("--{name}{env} is not set ({})", flag.help),
                "the task definition sets it; run the job with `jobrun submit`, not this by hand",
            )
        })
    }

    fn parsed<T>(
        &self,
        name: &str,
        value: String,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, Usage> {
        parse(&value).map_err(|why| {
            usage(
                format!("--{name} `{value}`: {why}"),
                format!("--{name}: {}", self.flag(name).help),
            )
        })
    }

    fn duration(&self, name: &str) -> Result<Option<Duration>, Usage> {
        self.optional(name)
            .map(|v| self.parsed(name, v, parse_duration))
            .transpose()
    }

    fn number<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, Usage> {
        let whole = |s: &str| {
            s.trim()
                .parse::<T>()
                .map_err(|_| "not a whole number".to_string())
        };
        self.optional(name)
            .map(|v| self.parsed(name, v, whole))
            .transpose()
    }

    fn required_number<T: std::str::FromStr>(&self, name: &str) -> Result<T, Usage> {
        self.required(name)?;
        Ok(self.number(name)?.expect("set"))
    }
}

fn agent_args<E: Fn(&str) -> Option<String>>(l: &Lookup<E>) -> Result<AgentArgs, Usage> {
    let defaulted = |d: Option<Duration>| d.expect("a flag with a default");
    Ok(AgentArgs {
        queue_url: l.required("queue-url")?,
        bucket: l.required("bucket")?,
        job: l.required("job")?,
        idle_exit: defaulted(l.duration("idle-exit")?),
        visibility: l.duration("visibility")?,
        max_receives: l.number("max-receives")?,
        timeout: defaulted(l.duration("timeout")?),
        entrypoint: l.required("entrypoint")?,
        default_command: l.required("default-command")?,
        log_group: l.optional("log-group"),
        grace: defaulted(l.duration("grace")?),
        max_messages: l.number("max-messages")?.unwrap_or(0),
    })
}

fn task_args<E: Fn(&str) -> Option<String>>(
    l: &Lookup<E>,
    command: Vec<String>,
) -> Result<TaskArgs, Usage> {
    Ok(TaskArgs {
        bucket: l.required("bucket")?,
        entrypoint: l.required("entrypoint")?,
        default_command: l.required("default-command")?,
        job: l.required("job")?,
        run_id: l.required("run-id")?,
        index: l.required_number("index")?,
        attempt: l.required_number("attempt")?,
        stage: l.required("stage")?,
        command,
    })
}

fn help(command: &str, flags: &[Flag]) -> String {
    let mut out = format!("jobrun {command}\n");
    for f in flags {
        let env = f.env.map(|e| format!(" [{e}]")).unwrap_or_default();
        let default = f
            .default
            .map(|d| format!(" (default {d})"))
            .unwrap_or_default();
        out.push_str(&format!("  --{:<16} {}{env}{default}\n", f.name, f.help));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn flags_win_over_the_environment_and_the_environment_over_defaults() {
        let vars = env(&[
            ("JOBRUN_QUEUE_URL", "http://q"),
            ("JOBRUN_BUCKET", "from-env"),
            ("JOBRUN_JOB", "j"),
            ("JOBRUN_GRACE", "5s"),
            ("JOBRUN_LOG_GROUP", ""),
        ]);
        let args = os(&[
            "agent",
            "--bucket",
            "b",
            "--idle-exit=3s",
            "--max-messages",
            "2",
        ]);
        let Invocation::Agent(a) = parse_with(args, vars).unwrap() else {
            panic!("not the agent")
        };
        assert_eq!((a.queue_url.as_str(), a.bucket.as_str()), ("http://q", "b"));
        assert_eq!(a.idle_exit, Duration::from_secs(3));
        assert_eq!(a.grace, Duration::from_secs(5));
        assert_eq!(a.timeout, Duration::from_secs(3600));
        assert_eq!((a.max_messages, a.visibility, a.log_group), (2, None, None));
        assert_eq!(a.entrypoint, "[]");
    }

    #[test]
    fn a_task_s_command_is_everything_after_the_double_dash_verbatim() {
        let vars = env(&[
            ("JOBRUN_BUCKET", "b"),
            ("JOBRUN_JOB", "j"),
            ("JOBRUN_RUN_ID", "r"),
            ("JOBRUN_INDEX", "7"),
            ("JOBRUN_ATTEMPT", "2"),
        ]);
        let args = os(&["task", "--", "sh", "-c", "echo --bucket x", "--help"]);
        let Invocation::Task(t) = parse_with(args, vars).unwrap() else {
            panic!("not a task")
        };
        assert_eq!(t.command, ["sh", "-c", "echo --bucket x", "--help"]);
        assert_eq!((t.index, t.attempt, t.stage.as_str()), (7, 2, "map"));
        assert_eq!(t.bucket, "b");
        let Invocation::Task(t) = parse_with(
            os(&["task"]),
            env(&[
                ("JOBRUN_BUCKET", "b"),
                ("JOBRUN_JOB", "j"),
                ("JOBRUN_RUN_ID", "r"),
                ("JOBRUN_INDEX", "0"),
                ("JOBRUN_ATTEMPT", "1"),
            ]),
        )
        .unwrap() else {
            panic!("not a task")
        };
        assert!(t.command.is_empty());
    }

    #[test]
    fn bad_input_is_one_message_and_a_hint() {
        let none = env(&[]);
        let e = parse_with(os(&["agent"]), &none).unwrap_err();
        assert!(
            e.message
                .contains("--queue-url or JOBRUN_QUEUE_URL is not set"),
            "{e:?}"
        );
        let vars = env(&[
            ("JOBRUN_QUEUE_URL", "q"),
            ("JOBRUN_BUCKET", "b"),
            ("JOBRUN_JOB", "j"),
        ]);
        let e = parse_with(os(&["agent", "--idle-exit", "soon"]), &vars).unwrap_err();
        assert!(e.message.starts_with("--idle-exit `soon`:"), "{e:?}");
        let e = parse_with(os(&["agent", "--max-messages", "-1"]), &vars).unwrap_err();
        assert!(e.message.contains("not a whole number"), "{e:?}");
        let e = parse_with(os(&["agent", "--nope", "1"]), &vars).unwrap_err();
        assert!(e.message.contains("there is no flag --nope"), "{e:?}");
        let e = parse_with(os(&["dispatch"]), &vars).unwrap_err();
        assert!(e.message.contains("`dispatch` is not a command"), "{e:?}");
        assert!(matches!(
            parse_with(os(&["task", "--help"]), &vars),
            Ok(Invocation::Help(_))
        ));
    }
}
