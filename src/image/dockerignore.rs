//! `.dockerignore` with Docker's own semantics: moby's `ignorefile.ReadAll` for reading the file
//! and `patternmatcher` for matching (Go `filepath.Match` plus `**`, last matching line wins, `!`
//! re-includes, a pattern that matches a parent directory matches everything below it).
//! No maintained crate implements these rules (gitignore's differ: no anchoring, different `**`),
//! so this follows moby's code and is tested against the cases in Docker's documentation.

use regex::Regex;

#[derive(Debug, thiserror::Error)]
#[error(".dockerignore line {line}: {message}")]
pub struct PatternError {
    pub line: usize,
    pub message: String,
}

#[derive(Debug)]
enum Kind {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Regex(Regex),
}

#[derive(Debug)]
struct Pattern {
    exclusion: bool,
    kind: Kind,
}

#[derive(Debug, Default)]
pub struct DockerIgnore {
    patterns: Vec<Pattern>,
}

/// Go's `filepath.Clean` for slash-separated paths.
fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = vec![];
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

impl DockerIgnore {
    /// Parses a `.dockerignore` file's text.
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        let mut patterns = vec![];
        for (i, raw) in text.trim_start_matches('\u{feff}').lines().enumerate() {
            // ignorefile.ReadAll: comments are dropped before trimming.
            if raw.starts_with('#') {
                continue;
            }
            let mut p = raw.trim();
            if p.is_empty() {
                continue;
            }
            let exclusion = p.starts_with('!');
            if exclusion {
                p = p[1..].trim();
                if p.is_empty() {
                    return Err(PatternError {
                        line: i + 1,
                        message: "illegal exclusion pattern: \"!\"".into(),
                    });
                }
            }
            let mut cleaned = clean(p);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
            let kind = compile(&cleaned).map_err(|message| PatternError {
                line: i + 1,
                message,
            })?;
            patterns.push(Pattern { exclusion, kind });
        }
        Ok(DockerIgnore { patterns })
    }

    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }

    /// Whether `path` (relative to the context root, `/`-separated) is excluded from the context:
    /// moby's `MatchesOrParentMatches`.
    pub fn excludes(&self, path: &str) -> bool {
        let parent = match path.rfind('/') {
            Some(i) => &path[..i],
            None => ".",
        };
        let parent_dirs: Vec<&str> = parent.split('/').collect();
        let mut matched = false;
        for pattern in &self.patterns {
            // Only patterns that could change the answer are evaluated.
            if pattern.exclusion != matched {
                continue;
            }
            let mut hit = pattern.matches(path);
            if !hit && parent != "." {
                for i in 0..parent_dirs.len() {
                    if pattern.matches(&parent_dirs[..=i].join("/")) {
                        hit = true;
                        break;
                    }
                }
            }
            if hit {
                matched = !pattern.exclusion;
            }
        }
        matched
    }
}

impl Pattern {
    fn matches(&self, path: &str) -> bool {
        match &self.kind {
            Kind::Exact(p) => path == p,
            Kind::Prefix(p) => path.starts_with(p.as_str()),
            Kind::Suffix(s) => {
                path.ends_with(s.as_str()) || (s.starts_with('/') && path == &s[1..])
            }
            Kind::Regex(r) => r.is_match(path),
        }
    }
}

/// moby `Pattern.compile`: translate to a regular expression, keeping its fast paths, whose
/// answers differ from the regex in a few corners (e.g. `**foo` is a plain suffix match).
fn compile(pattern: &str) -> Result<Kind, String> {
    #[derive(PartialEq, Clone, Copy)]
    enum T {
        Exact,
        Prefix,
        Suffix,
        Regex,
    }
    let mut t = T::Exact;
    let mut re = String::from("^");
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    let mut in_class = false;
    while i < chars.len() {
        let ch = chars[i];
        let first = i == 0;
        i += 1;
        if ch == '*' {
            if chars.get(i) == Some(&'*') {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i >= chars.len() {
                    if t == T::Exact {
                        t = T::Prefix;
                    } else {
                        re.push_str(".*");
                        t = T::Regex;
                    }
                } else {
                    re.push_str("(.*/)?");
                    t = T::Regex;
                }
                if first {
                    t = T::Suffix;
                }
            } else {
                re.push_str("[^/]*");
                t = T::Regex;
            }
        } else if ch == '?' {
            re.push_str("[^/]");
            t = T::Regex;
        } else if matches!(ch, '.' | '+' | '(' | ')' | '|' | '{' | '}' | '$') {
            re.push('\\');
            re.push(ch);
        } else if ch == '\\' {
            // An escaped character is matched literally, as Go's filepath.Match does.
            t = T::Regex;
            re.push('\\');
            if i < chars.len() {
                re.push(chars[i]);
                i += 1;
            }
        } else if ch == '[' || ch == ']' {
            in_class = ch == '[';
            if ch == '[' && chars.get(i) == Some(&'^') {
                re.push_str("[^");
                i += 1;
            } else {
                re.push(ch);
            }
            t = T::Regex;
        } else {
            if in_class && ch == '^' {
                re.push('\\');
            }
            re.push(ch);
        }
    }
    if in_class {
        return Err(format!(
            "syntax error in pattern `{pattern}`: unterminated ["
        ));
    }
    Ok(match t {
        T::Exact => Kind::Exact(pattern.to_string()),
        T::Prefix => Kind::Prefix(pattern[..pattern.len() - 2].to_string()),
        T::Suffix => Kind::Suffix(pattern[2..].to_string()),
        T::Regex => {
            re.push('$');
            Kind::Regex(
                Regex::new(&re).map_err(|e| format!("syntax error in pattern `{pattern}`: {e}"))?,
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(rules: &str, path: &str) -> bool {
        DockerIgnore::parse(rules).unwrap().excludes(path)
    }

    // The examples of https://docs.docker.com/build/concepts/context/#dockerignore-files
    #[test]
    fn docker_documentation_examples() {
        let rules = "# comment\n*/temp*\n*/*/temp*\ntemp?\n";
        assert!(ex(rules, "somedir/temporary.txt"));
        assert!(ex(rules, "somedir/temp"));
        assert!(
            !ex(rules, "temporary.txt"),
            "*/temp* needs one directory level"
        );
        assert!(ex(rules, "somedir/subdir/temporary.txt"));
        assert!(ex(rules, "tempa"));
        assert!(ex(rules, "tempb"));
        assert!(!ex(rules, "temp"), "? needs one character");
        assert!(!ex(rules, "a/b/c/temp.txt"));

        assert!(ex("**/*.go", "main.go"), "**/ matches zero directories");
        assert!(ex("**/*.go", "a/b/c/main.go"));
        assert!(!ex("**/*.go", "main.rs"));

        let md = "*.md\n!README.md\n";
        assert!(ex(md, "CHANGELOG.md"));
        assert!(!ex(md, "README.md"));

        let md2 = "*.md\n!README*.md\nREADME-secret.md\n";
        assert!(ex(md2, "README-secret.md"));
        assert!(!ex(md2, "README-public.md"));
        assert!(ex(md2, "notes.md"));

        let md3 = "*.md\nREADME-secret.md\n!README*.md\n";
        assert!(!ex(md3, "README-secret.md"), "the last matching line wins");
    }

    #[test]
    fn parents_anchoring_and_cleaning() {
        assert!(
            ex("node_modules", "node_modules/a/b.js"),
            "a matched directory takes its contents"
        );
        assert!(
            !ex("node_modules", "src/node_modules/a.js"),
            "patterns are anchored at the root"
        );
        assert!(ex("/target", "target/debug/x"));
        assert!(
            ex("./target/", "target/debug/x"),
            "cleaned like filepath.Clean"
        );
        assert!(ex("a/../b", "b/x"));
        assert!(ex("target/**", "target/x/y"));
        assert!(!ex("target/**", "target2/x"));
        assert!(ex("**", "anything/at/all"));
        assert!(ex("*", "top"));
        assert!(
            ex("*", "dir/below"),
            "* matches the top directory, so everything under it"
        );
        assert!(ex("data/*.csv", "data/a.csv"));
        assert!(!ex("data/*.csv", "data/sub/a.csv"));
        assert!(ex("data/**/*.csv", "data/sub/deep/a.csv"));
        assert!(ex("[a-c].txt", "b.txt"));
        assert!(!ex("[^a-c].txt", "b.txt"));
        assert!(ex("[^a-c].txt", "d.txt"));
        assert!(ex("\\*.txt", "*.txt"));
        assert!(!ex("\\*.txt", "a.txt"));
        assert!(ex("file.(1)", "file.(1)"), "regex characters are literal");
        assert!(ex("  spaced  ", "spaced"), "lines are trimmed");
        assert!(
            !ex(" #notcomment", "x") && ex(" #notcomment", "#notcomment"),
            "only a leading # is a comment"
        );
    }

    #[test]
    fn exceptions_inside_excluded_directories() {
        let rules = "build\n!build/keep.txt\n";
        assert!(ex(rules, "build/drop.txt"));
        assert!(!ex(rules, "build/keep.txt"));
        assert!(DockerIgnore::parse(rules).unwrap().has_exceptions());
        let all_but = "*\n!src\n";
        assert!(!ex(all_but, "src/main.rs"));
        assert!(ex(all_but, "target/x"));
    }

    #[test]
    fn bad_patterns() {
        assert!(
            DockerIgnore::parse("ok\n!\n")
                .unwrap_err()
                .to_string()
                .contains("line 2")
        );
        assert!(DockerIgnore::parse("[abc\n").is_err());
    }
}
