//! Durations as jobrun.toml, the command line and a task's environment write them ("90s",
//! "30m", "1h"), one parser for all three, bounded: a timeout or interval is never zero and
//! never over 30 days.

use std::time::Duration;

/// The longest timeout or interval jobrun takes.
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("`{s}` is not a duration ({e}); examples: \"90s\", \"30m\", \"1h\""))
        .and_then(|d| {
            if d.is_zero() {
                Err("a duration must be more than zero".into())
            } else if d > MAX_DURATION {
                Err(format!("`{s}` is longer than the 30 days jobrun allows"))
            } else {
                Ok(d)
            }
        })
}
