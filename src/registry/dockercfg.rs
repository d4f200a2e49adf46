//! Registry credentials from the Docker client's configuration: `$DOCKER_CONFIG/config.json`
//! (default `~/.docker/config.json`): `auths` entries, `credHelpers` per registry, or the
//! `credsStore`, run as `docker-credential-<helper> get` the way the docker CLI does.

use super::Credentials;
use base64::Engine as _;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn config_path() -> PathBuf {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(dir) => PathBuf::from(dir).join("config.json"),
        None => {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".docker/config.json")
        }
    }
}

/// Credentials for `host`, if the Docker configuration has any.
pub fn lookup(host: &str) -> Result<Option<Credentials>, String> {
    let path = config_path();
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(_) => return Ok(None),
    };
    let cfg: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not valid JSON: {e}", path.display()))?;
    if let Some(helper) = cfg["credHelpers"][host].as_str() {
        return helper_get(helper, host);
    }
    let entry = cfg["auths"].as_object().and_then(|auths| {
        auths.iter().find_map(|(k, v)| {
            let k = k
                .trim_start_matches("https://")
                .trim_start_matches("http://");
            (k == host || k.split('/').next() == Some(host)).then_some(v)
        })
    });
    if let Some(entry) = entry {
        if let Some(auth) = entry["auth"].as_str() {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(auth)
                .map_err(|e| format!("{}: bad auth for {host}: {e}", path.display()))?;
            let raw = String::from_utf8_lossy(&raw);
            if let Some((u, p)) = raw.split_once(':') {
                return Ok(Some(Credentials {
                    username: u.into(),
                    password: p.into(),
                }));
            }
        }
        if let (Some(u), Some(p)) = (entry["username"].as_str(), entry["password"].as_str()) {
            return Ok(Some(Credentials {
                username: u.into(),
                password: p.into(),
            }));
        }
    }
    if let Some(store) = cfg["credsStore"].as_str() {
        return helper_get(store, host);
    }
    Ok(None)
}

fn helper_get(helper: &str, host: &str) -> Result<Option<Credentials>, String> {
    let program = format!("docker-credential-{helper}");
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(host.as_bytes())
        .map_err(|e| format!("{program}: {e}"))?;
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{program}: {e}"))?;
    if !out.status.success() {
        // The helper has nothing for this registry.
        return Ok(None);
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("{program} answered no JSON: {e}"))?;
    Ok(Some(Credentials {
        username: v["Username"].as_str().unwrap_or_default().into(),
        password: v["Secret"].as_str().unwrap_or_default().into(),
    }))
}
