//! A configuration fills a command as a value, never as code. An argv command (`command =
//! ["/job", "--lr", "{config.lr}"]`) needs nothing: each placeholder lands inside one argument
//! and no shell reads it. A shell script — `command = "…"`, run as `/bin/sh -c "…"`, or any
//! argv that runs `sh`/`bash`/… with `-c SCRIPT` — is code, so every value that goes into it
//! is shell-quoted (by `shlex`) for where it lands: outside quotes, inside `'…'` or `"…"`
//! (the quotes are closed around the quoted value and opened again), or inside `$(…)`. Where
//! no quoting can keep a value literal, or where this reading of the script could be wrong —
//! inside backquotes, inside `${…}`, after a here-document's `<<`, bash's `$'…'` or a `case`
//! (whose `)` this reading does not tell from a closing one) — the placeholder is refused,
//! with a hint to read the value from the environment (`JOBRUN_CONFIG`) instead: a wrong
//! guess about quotes would turn the value into code, so there is no guessing.

/// The shells whose `-c` argument is a script.
const SHELLS: &[&str] = &["sh", "bash", "dash", "ash", "zsh", "ksh", "mksh", "busybox"];

/// The position of the script in `argv`, when `argv` runs a shell with `-c` (`sh -c S`,
/// `bash -lc S`, `busybox sh -c S`).
pub fn script_position(argv: &[String]) -> Option<usize> {
    let name = argv.first()?.rsplit('/').next()?;
    if !SHELLS.contains(&name) {
        return None;
    }
    let mut i = 1;
    if name == "busybox" {
        if argv.get(1).map(String::as_str) != Some("sh")
            && argv.get(1).map(String::as_str) != Some("ash")
        {
            return None;
        }
        i = 2;
    }
    while let Some(arg) = argv.get(i) {
        let is_flags = arg.len() > 1 && arg.starts_with('-') && !arg.starts_with("--");
        if !is_flags {
            return None;
        }
        if arg[1..].contains('c') {
            return (i + 1 < argv.len()).then_some(i + 1);
        }
        i += 1;
    }
    None
}

/// Where a point of a shell script is, as far as quoting goes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Ctx {
    Plain,
    Single,
    Double,
    /// `$(…)` (and plain parentheses within it).
    Subst,
    Paren,
    Backquote,
    /// `${…}`.
    Brace,
    /// From a `#` that starts a word to the end of the line.
    Comment,
}

/// Reads a script's literal text piece by piece and says how a value at its current point
/// is to be quoted.
#[derive(Debug)]
pub struct Script {
    stack: Vec<Ctx>,
    escaped: bool,
    /// Why a value can no longer be placed with certainty (a here-document, `$'…'`, `case`).
    unsure: Option<&'static str>,
    /// The last character fed (none after an escaped one), for `$(`, `${`, `<<` and words.
    prev: Option<char>,
    /// The word being read outside quotes, for `case`.
    word: String,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            stack: vec![Ctx::Plain],
            escaped: false,
            unsure: None,
            prev: None,
            word: String::new(),
        }
    }
}

impl Script {
    fn top(&self) -> Ctx {
        *self.stack.last().expect("the stack keeps Plain")
    }

    fn pop(&mut self) {
        if self.stack.len() > 1 {
            self.stack.pop();
        }
    }

    /// Takes in literal script text.
    pub fn feed(&mut self, text: &str) {
        for c in text.chars() {
            let escaped = self.escaped;
            self.step(c);
            self.prev = (!escaped).then_some(c);
        }
    }

    /// Whether `c` starts a word (a `#` there starts a comment).
    fn at_word_start(&self) -> bool {
        self.prev
            .is_none_or(|p| p.is_whitespace() || ";&|()<>".contains(p))
    }

    fn step(&mut self, c: char) {
        let top = self.top();
        if self.escaped {
            self.escaped = false;
            return;
        }
        if matches!(top, Ctx::Plain | Ctx::Subst | Ctx::Paren) {
            if c.is_ascii_alphanumeric() || c == '_' {
                self.word.push(c);
            } else {
                if self.word == "case" {
                    self.unsure.get_or_insert("`case`");
                }
                self.word.clear();
            }
        }
        match (top, c) {
            (Ctx::Comment, '\n') => self.pop(),
            (Ctx::Comment, _) => {}
            (Ctx::Single, '\'') => self.pop(),
            (Ctx::Single, _) => {}
            (_, '\\') => self.escaped = true,
            (Ctx::Double, '"') => self.pop(),
            (Ctx::Backquote, '`') => self.pop(),
            (_, '`') => self.stack.push(Ctx::Backquote),
            (_, '(') if self.prev == Some('$') => self.stack.push(Ctx::Subst),
            (_, '{') if self.prev == Some('$') => self.stack.push(Ctx::Brace),
            (Ctx::Double, _) => {}
            (_, '\'') if self.prev == Some('$') => {
                self.unsure.get_or_insert("`$'…'`");
                self.stack.push(Ctx::Single);
            }
            (Ctx::Plain | Ctx::Subst | Ctx::Paren, '#') if self.at_word_start() => {
                self.stack.push(Ctx::Comment)
            }
            (Ctx::Brace, '}') => self.pop(),
            (_, '\'') => self.stack.push(Ctx::Single),
            (_, '"') => self.stack.push(Ctx::Double),
            (Ctx::Subst | Ctx::Paren, '(') => self.stack.push(Ctx::Paren),
            (Ctx::Subst | Ctx::Paren, ')') => self.pop(),
            (_, '<') if self.prev == Some('<') => {
                self.unsure.get_or_insert("a here-document's `<<`");
            }
            _ => {}
        }
    }

    /// `value` as script text that the shell reads back as exactly `value`, at this point.
    pub fn quote(&self, value: &str) -> Result<String, String> {
        let hint = "read the value from the environment instead (JOBRUN_CONFIG holds the configuration as JSON)";
        if let Some(what) = self.unsure {
            return Err(format!(
                "a placeholder after {what} in a shell command cannot be quoted with certainty; {hint}"
            ));
        }
        if self.word == "case" {
            return Err(format!(
                "a placeholder after `case` in a shell command cannot be quoted with certainty; {hint}"
            ));
        }
        let quoted = shlex::try_quote(value)
            .map_err(|_| "a value with a NUL byte cannot go into a command".to_string())?;
        match self.top() {
            Ctx::Plain | Ctx::Subst | Ctx::Paren => Ok(quoted.into_owned()),
            Ctx::Double => Ok(format!("\"{quoted}\"")),
            Ctx::Single => Ok(format!("'{quoted}'")),
            Ctx::Backquote => Err(format!(
                "a placeholder inside backquotes in a shell command cannot be quoted (use $(…) instead, or {hint})"
            )),
            Ctx::Brace => Err(format!(
                "a placeholder inside ${{…}} in a shell command cannot be quoted; {hint}"
            )),
            // Nothing in a comment runs.
            Ctx::Comment => Ok(quoted.into_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn shells_with_dash_c_have_a_script() {
        assert_eq!(script_position(&argv(&["/bin/sh", "-c", "x"])), Some(2));
        assert_eq!(script_position(&argv(&["bash", "-lc", "x"])), Some(2));
        assert_eq!(
            script_position(&argv(&["bash", "-e", "-c", "x", "arg0"])),
            Some(3)
        );
        assert_eq!(
            script_position(&argv(&["busybox", "sh", "-c", "x"])),
            Some(3)
        );
        assert_eq!(script_position(&argv(&["/job", "-c", "x"])), None);
        assert_eq!(script_position(&argv(&["sh", "script.sh", "-c"])), None);
        assert_eq!(script_position(&argv(&["sh", "-c"])), None);
    }

    /// Fills `template` (with `@` standing for the value) as jobrun does.
    fn fill(template: &str, value: &str) -> Result<String, String> {
        let mut s = Script::default();
        let (a, b) = template.split_once('@').unwrap();
        s.feed(a);
        let q = s.quote(value)?;
        Ok(format!("{a}{q}{b}"))
    }

    #[test]
    fn values_stay_values_in_every_quoting_context() {
        let evil = [
            "$(touch /tmp/jobrun-pwned)",
            "; rm -rf / #",
            "a'b\"c`d`$e\\f",
            "x\ny",
            "",
            "' \" $(id) '",
        ];
        let templates = [
            "printf %s @",
            "printf %s \"pre @ post\"",
            "printf %s 'pre @ post'",
            "printf %s \"$(printf %s @)\"",
            "x=$(printf %s @); printf %s \"$x\"",
            "printf %s @ # it's a comment\n",
            "true # it's a comment\nprintf %s @",
            "printf %s \"a\\\"b\" @",
        ];
        for t in templates {
            for v in evil {
                let script = fill(t, v).unwrap();
                let out = std::process::Command::new("/bin/sh")
                    .args(["-c", &script])
                    .output()
                    .unwrap();
                let (pre, post) = t.split_once('@').unwrap();
                // What the shell prints is the template's own text around the value, exactly.
                let want_pre = if pre.contains("\"pre") || pre.contains("'pre") {
                    "pre "
                } else {
                    ""
                };
                let want_post = if post.contains("post") { " post" } else { "" };
                let got = String::from_utf8(out.stdout).unwrap();
                let got = got.strip_prefix("a\"b").unwrap_or(&got);
                assert_eq!(
                    got,
                    format!("{want_pre}{v}{want_post}"),
                    "template {t:?}, value {v:?}, script {script:?}"
                );
            }
        }
        assert!(!std::path::Path::new("/tmp/jobrun-pwned").exists());
    }

    #[test]
    fn where_no_quoting_holds_the_placeholder_is_refused() {
        assert!(
            fill("echo `echo @`", "x")
                .unwrap_err()
                .contains("backquotes")
        );
        assert!(fill("echo ${X:-@}", "x").unwrap_err().contains("${…}"));
        assert!(fill("cat <<EOF\n@\nEOF", "x").unwrap_err().contains("<<"));
        assert!(fill("echo $'it\\'s' @", "x").unwrap_err().contains("$'"));
        assert!(
            fill("echo \"$(case a in a) echo @;; esac)\"", "x")
                .unwrap_err()
                .contains("case")
        );
        assert!(fill("echo @", "a\0b").unwrap_err().contains("NUL"));
        // Closed contexts are left behind.
        assert_eq!(
            fill("echo $(date) `date` ${X} @", "a b").unwrap(),
            "echo $(date) `date` ${X} 'a b'"
        );
    }
}
