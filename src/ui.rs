//! Terminal-aware output: bars and spinners on a TTY, plain lines without one (cron, CI), JSON
//! for scripts. Results go to stdout; progress and notes go to stderr.

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::fmt::Display;
use std::io::IsTerminal;
use std::time::Duration;

/// Standard output that ends the process quietly (exit 0) when the reader has gone, as `grep`
/// and `rg` do: `jobrun status | head` is not an error.
pub struct Stdout;

impl std::io::Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        quiet_on_broken_pipe(std::io::stdout().lock().write(buf))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        quiet_on_broken_pipe(std::io::stdout().lock().flush())
    }
}

fn quiet_on_broken_pipe<T>(r: std::io::Result<T>) -> std::io::Result<T> {
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        other => other,
    }
}

/// One line on stdout ([`Stdout`]: a closed pipe ends the process quietly), with control
/// characters shown, not obeyed ([`printable`]).
pub fn out(text: impl Display) {
    use std::io::Write;
    let _ = writeln!(Stdout, "{}", printable(&text.to_string(), "\n\t"));
}

/// `text` with every control character but those in `keep` written as an escape (`\u{1b}`):
/// what a task wrote (a result's values, its log's last lines, a file name) reaches the
/// terminal as text, never as a command to it (an `ESC[2J` that clears the screen, a title
/// change). C1 controls and DEL count too.
pub fn printable<'a>(text: &'a str, keep: &str) -> std::borrow::Cow<'a, str> {
    let shown = |c: char| !c.is_control() || keep.contains(c);
    if text.chars().all(shown) {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            c if shown(c) => out.push(c),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    out.into()
}

/// One JSON line on stdout, written as it is serialised (a 10,000-task status is never also
/// held as one string).
pub fn out_json(value: &impl Serialize) {
    use std::io::Write;
    let mut w = std::io::BufWriter::with_capacity(1 << 16, Stdout);
    // Writing fails only as `out` can (ignored likewise); serialising jobrun's reports never does.
    if let Err(e) = serde_json::to_writer(&mut w, value) {
        assert!(e.is_io(), "serialisable output: {e}");
    }
    let _ = w.write_all(b"\n");
    let _ = w.flush();
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum OutputFormat {
    /// Human text (bars on a terminal, plain lines otherwise)
    #[default]
    Text,
    /// JSON (JSON lines for progress)
    Json,
    /// CSV (`jobrun results` only)
    Csv,
}

#[derive(Debug, Clone, Copy)]
pub struct Ui {
    pub format: OutputFormat,
    /// Draw bars and spinners (stderr is a terminal and text output was asked for).
    pub tty: bool,
    /// Print nothing but errors (background drivers).
    pub quiet: bool,
}

impl Ui {
    pub fn new(format: OutputFormat) -> Ui {
        let term_ok = std::env::var("TERM").map(|t| t != "dumb").unwrap_or(true);
        Ui {
            format,
            tty: format == OutputFormat::Text && std::io::stderr().is_terminal() && term_ok,
            quiet: false,
        }
    }

    pub fn quiet() -> Ui {
        Ui {
            format: OutputFormat::Text,
            tty: false,
            quiet: true,
        }
    }

    pub fn json(&self) -> bool {
        self.format == OutputFormat::Json
    }

    /// A result: text or one JSON document on stdout.
    pub fn emit<T: Display + Serialize>(&self, value: &T) {
        if self.quiet {
            return;
        }
        match self.format {
            OutputFormat::Text | OutputFormat::Csv => out(value),
            OutputFormat::Json => out_json(value),
        }
    }

    /// A progress note on stderr (never in JSON mode's stdout).
    pub fn note(&self, text: &str) {
        if !self.quiet {
            eprintln!("{}", printable(text, "\n\t"));
        }
    }

    pub fn spinner(&self, message: String) -> Spinner {
        if self.quiet {
            return Spinner {
                bar: None,
                quiet: true,
            };
        }
        if !self.tty {
            eprintln!("{message}");
            return Spinner {
                bar: None,
                quiet: false,
            };
        }
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix:.bold} {wide_msg}").expect("template"),
        );
        bar.set_prefix(message);
        bar.enable_steady_tick(Duration::from_millis(100));
        Spinner {
            bar: Some(bar),
            quiet: false,
        }
    }
}

/// A spinner with the latest line beside it on a TTY; each line printed as it comes otherwise.
pub struct Spinner {
    bar: Option<ProgressBar>,
    quiet: bool,
}

impl Spinner {
    /// One line of a tool's output (Docker's build steps): its colour and cursor codes are
    /// dropped — a bar has its own, and a log or a pipe wants none — and any other control
    /// character shown, not obeyed.
    pub fn line(&self, text: &str) {
        let plain = strip_ansi_escapes::strip_str(text);
        let text = &*printable(&plain, "\t");
        match &self.bar {
            Some(bar) => {
                if text.starts_with("Step ") {
                    bar.println(text);
                }
                bar.set_message(text.to_string());
            }
            None if !self.quiet => eprintln!("{text}"),
            None => {}
        }
    }
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn control_characters_are_shown_not_obeyed() {
        assert_eq!(printable("loss 0.5", ""), "loss 0.5");
        assert_eq!(printable("\u{1b}[2Jgone", "\n"), "\\u{1b}[2Jgone");
        assert_eq!(printable("a\nb\tc\r", ""), "a\\nb\\tc\\r");
        assert_eq!(printable("a\nb\tc", "\n\t"), "a\nb\tc");
        // C1's CSI and DEL are controls too.
        assert_eq!(printable("\u{9b}2J\u{7f}", "\n"), "\\u{9b}2J\\u{7f}");
    }

    #[test]
    fn a_tool_s_colour_codes_are_dropped_from_its_lines() {
        let plain =
            strip_ansi_escapes::strip_str("\u{1b}[31merror\u{1b}[0m: \u{1b}[1mbad\u{1b}[0m");
        assert_eq!(plain, "error: bad");
        assert_eq!(printable(&plain, "\t"), "error: bad");
    }
}
