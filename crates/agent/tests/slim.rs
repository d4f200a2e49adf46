//! The slim agent stays slim and speaks as the CLI expects: its dependency graph has none of
//! what `deny.toml` bans and one HTTP/TLS stack; its binary carries the agent's mark, reads a
//! task definition's flags, and refuses bad input with one `error:` and one `hint:` line.

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_jobrun-agent");

/// Every package `cargo tree` lists for `args` (names only, deduplicated).
fn tree(args: &[&str]) -> Vec<String> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
    let out = Command::new(env!("CARGO"))
        .args(["tree", "--locked", "--manifest-path"])
        .arg(&manifest)
        .args(args)
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The names of the packages in the normal (non-dev, non-build) graph of `scope` (`-p NAME`
/// or `--workspace`).
fn packages(scope: &[&str]) -> Vec<String> {
    let mut args = scope.to_vec();
    args.extend(["-e", "normal", "--prefix", "none", "--format", "{p}"]);
    tree(&args)
        .iter()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

fn banned() -> Vec<String> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deny.toml")).unwrap();
    let deny: toml::Value = toml::from_str(&text).unwrap();
    deny["bans"]["deny"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_agent_depends_on_nothing_deny_toml_bans() {
    let banned = banned();
    assert!(banned.len() > 20 && banned.contains(&"bollard".to_string()));
    let names = packages(&["-p", "jobrun-agent"]);
    let has = |name: &str| names.iter().any(|n| n == name);
    assert!(has("aws-sdk-s3") && has("aws-sdk-sqs"), "{names:?}");
    let found: Vec<&String> = names.iter().filter(|n| banned.contains(n)).collect();
    assert!(
        found.is_empty(),
        "the agent depends on banned crates: {found:?}"
    );
    // The CLI, by contrast, has them: the ban list is about real crates of this workspace.
    let cli = packages(&["-p", "jobrun"]);
    assert!(
        cli.iter().any(|n| n == "bollard"),
        "the CLI has no bollard?"
    );
}

#[test]
fn one_http_and_tls_stack_in_the_whole_workspace() {
    // `cargo tree -d`: the crates built in two versions. The SDK's aws-runtime still names
    // http 0.2's types (and so http-body 0.4), but no client or TLS crate is there twice.
    let dups = tree(&[
        "--workspace",
        "-d",
        "-e",
        "normal",
        "--depth",
        "0",
        "--prefix",
        "none",
    ]);
    for name in [
        "hyper",
        "h2",
        "rustls",
        "tokio-rustls",
        "hyper-rustls",
        "hyper-util",
        "ring",
    ] {
        let twice = dups
            .iter()
            .any(|l| l.split_whitespace().next() == Some(name));
        assert!(!twice, "{name} is built twice:\n{}", dups.join("\n"));
    }
}

#[test]
fn one_crypto_provider_in_the_whole_workspace() {
    // ring: the SDK's HTTPS client (`rustls-ring`), reqwest's (`rustls-tls-manual-roots`) and
    // aws-config's SSO all use it; aws-lc (the SDK's default, a C library built with cmake)
    // and OpenSSL are not built at all.
    let names = packages(&["--workspace"]);
    let has = |name: &str| names.iter().any(|n| n == name);
    assert!(has("ring"), "no ring in the workspace?");
    for other in [
        "aws-lc-rs",
        "aws-lc-sys",
        "openssl",
        "openssl-sys",
        "native-tls",
    ] {
        assert!(!has(other), "{other} is built beside ring");
    }
}

#[test]
fn the_binary_carries_the_agent_s_mark_and_its_version() {
    let bytes = std::fs::read(BIN).unwrap();
    let mark = jobrun_wire::wire::MARK_AGENT.as_bytes();
    assert!(
        bytes.windows(mark.len()).any(|w| w == mark),
        "no agent mark in {BIN}"
    );
    let full = jobrun_wire::wire::MARK.as_bytes();
    assert!(
        !bytes.windows(full.len()).any(|w| w == full),
        "the full jobrun's mark in the agent"
    );
    let out = Command::new(BIN).arg("--version").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text.trim(),
        format!("jobrun-agent {} (wire format 1)", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn bad_input_is_one_error_line_and_a_hint_with_exit_2() {
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8(out.stderr).unwrap())
    };
    for (args, says) in [
        (&["agent"][..], "--queue-url or JOBRUN_QUEUE_URL is not set"),
        (
            &["task", "--index", "x", "--", "true"][..],
            "--bucket or JOBRUN_BUCKET is not set (the job's bucket, where the run's outputs go)",
        ),
        (&["dispatch"][..], "`dispatch` is not a command"),
        (&["agent", "--queue-url"][..], "missing argument"),
    ] {
        let (code, err) = run(args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 2, "{args:?}: {err}");
        assert!(
            lines[0].starts_with("error: ") && lines[0].contains(says),
            "{args:?}: {err}"
        );
        assert!(lines[1].starts_with("hint: "), "{args:?}: {err}");
    }
}
