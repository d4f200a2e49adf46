//! Placeholders: a task's command with `{index}`, `{count}`, `{run_id}`, `{config}` and
//! `{config.KEY}` filled from its configuration, as data. Dispatch fills commands to check them
//! before anything starts, and the jobrun in a task fills a queue message's command the same
//! way; both take this one filler (`shell` says how a value stays a value inside a script).

mod shell;

use serde_json::Value;

/// A command with its placeholders filled: each argument on its own, and a shell's `-c`
/// script (`command = "…"` runs as `/bin/sh -c "…"`) with every value shell-quoted.
pub fn fill_command(
    argv: &[String],
    index: usize,
    count: usize,
    run_id: &str,
    config: &Value,
) -> Result<Vec<String>, String> {
    let script = shell::script_position(argv);
    argv.iter()
        .enumerate()
        .map(|(i, arg)| {
            let mut quoting = (Some(i) == script).then(shell::Script::default);
            fill_in(arg, index, count, run_id, config, quoting.as_mut())
        })
        .collect()
}

/// Fills `{index}`, `{count}`, `{run_id}`, `{config}` and `{config.KEY[.KEY]}`; `{{`/`}}` are
/// literal braces (one argument, no shell: the commands use [`fill_command`]).
#[cfg(test)]
fn fill(
    template: &str,
    index: usize,
    count: usize,
    run_id: &str,
    config: &Value,
) -> Result<String, String> {
    fill_in(template, index, count, run_id, config, None)
}

fn fill_in(
    template: &str,
    index: usize,
    count: usize,
    run_id: &str,
    config: &Value,
    mut script: Option<&mut shell::Script>,
) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let literal = |out: &mut String, text: &str, script: &mut Option<&mut shell::Script>| {
        out.push_str(text);
        if let Some(s) = script.as_deref_mut() {
            s.feed(text);
        }
    };
    let mut rest = template;
    while let Some(pos) = rest.find(['{', '}']) {
        literal(&mut out, &rest[..pos], &mut script);
        let tail = &rest[pos..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            literal(&mut out, &tail[..1], &mut script);
            rest = &tail[2..];
            continue;
        }
        if tail.starts_with('}') {
            return Err(format!(
                "unmatched `}}` in `{template}` (write `}}}}` for a literal brace)"
            ));
        }
        let end = tail.find('}').ok_or_else(|| {
            format!("unclosed `{{` in `{template}` (write `{{{{` for a literal brace)")
        })?;
        let key = &tail[1..end];
        let value = placeholder(key, index, count, run_id, config)?;
        match script.as_deref_mut() {
            Some(s) => out.push_str(&s.quote(&value).map_err(|e| format!("`{{{key}}}`: {e}"))?),
            None if value.contains('\0') => {
                return Err(format!(
                    "`{{{key}}}`: a value with a NUL byte cannot go into a command"
                ));
            }
            None => out.push_str(&value),
        }
        rest = &tail[end + 1..];
    }
    literal(&mut out, rest, &mut script);
    Ok(out)
}

/// The value of one placeholder.
fn placeholder(
    key: &str,
    index: usize,
    count: usize,
    run_id: &str,
    config: &Value,
) -> Result<String, String> {
    Ok(match key {
        "index" => index.to_string(),
        "count" => count.to_string(),
        "run_id" => run_id.to_string(),
        "config" => config.to_string(),
        _ => {
            let path = key.strip_prefix("config.").ok_or_else(|| {
                format!("unknown placeholder `{{{key}}}`; use {{index}}, {{count}}, {{run_id}}, {{config}} or {{config.KEY}}")
            })?;
            let mut v = config;
            for part in path.split('.') {
                v = v.get(part).ok_or_else(|| {
                    format!("placeholder `{{{key}}}`: config {config} has no key `{path}`")
                })?;
            }
            match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn placeholders() {
        let cfg = json!({"lr": 0.1, "name": "big", "nested": {"k": "v"}});
        assert_eq!(
            fill(
                "--lr={config.lr} --n {config.name} {config.nested.k} #{index}/{count}",
                3,
                10,
                "r1",
                &cfg
            )
            .unwrap(),
            "--lr=0.1 --n big v #3/10"
        );
        assert_eq!(fill("{{literal}}", 0, 1, "r", &cfg).unwrap(), "{literal}");
        assert!(
            fill("{config.missing}", 0, 1, "r", &cfg)
                .unwrap_err()
                .contains("no key `missing`")
        );
        assert!(fill("{nope}", 0, 1, "r", &cfg).is_err());
        assert!(fill("{index", 0, 1, "r", &cfg).is_err());
    }
}
