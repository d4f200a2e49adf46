//! A run's state in a screenful, however many tasks it has: counts, the failed tasks grouped by
//! reason with their indexes as ranges (`#2, #7, #100–#199: exit code 3`), the running and
//! cancelled ones as ranges, and the first few failures in detail. `status --tasks` and
//! `-o json` give every task; the text of `status` and of the end-of-run summary use this.

use super::TaskStatus;
use crate::record::TaskState;
use std::fmt;

/// How many reason groups, ranges per group, and failures in detail are shown.
pub const GROUPS: usize = 10;
pub const RANGES: usize = 40;
pub const DETAILED: usize = 3;

/// Indexes (sorted) as ranges: `#2, #7, #100–#199`; after `cap` ranges, "and N more".
pub fn ranges(indexes: &[usize], cap: usize) -> String {
    let mut spans: Vec<(usize, usize)> = vec![];
    for &i in indexes {
        match spans.last_mut() {
            Some((_, end)) if *end + 1 == i => *end = i,
            _ => spans.push((i, i)),
        }
    }
    let shown: Vec<String> = spans
        .iter()
        .take(cap)
        .map(|&(a, b)| {
            if a == b {
                format!("#{a}")
            } else {
                format!("#{a}–#{b}")
            }
        })
        .collect();
    let mut text = shown.join(", ");
    if spans.len() > cap {
        let rest: usize = spans[cap..].iter().map(|(a, b)| b - a + 1).sum();
        text.push_str(&format!(" and {rest} more"));
    }
    text
}

/// The failed tasks grouped by reason, the largest group first.
pub fn failure_groups(tasks: &[TaskStatus]) -> Vec<(String, Vec<usize>)> {
    let mut groups: Vec<(String, Vec<usize>)> = vec![];
    for t in tasks.iter().filter(|t| t.state == TaskState::Failed) {
        let reason = t.reason.clone().unwrap_or_else(|| "failed".into());
        match groups.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, indexes)) => indexes.push(t.index),
            None => groups.push((reason, vec![t.index])),
        }
    }
    for (_, indexes) in &mut groups {
        indexes.sort_unstable();
    }
    groups.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.1[0].cmp(&b.1[0])));
    groups
}

/// One failed task in detail: its reason once, the exit code when the reason does not say it,
/// the attempt, its log and last lines.
pub fn write_failure(f: &mut fmt::Formatter<'_>, t: &TaskStatus) -> fmt::Result {
    let reason = t.reason.as_deref().unwrap_or("failed");
    let reduce = if t.stage.is_some() {
        " (the reduce)"
    } else {
        ""
    };
    write!(f, "\n  failed #{}{reduce} {reason}", t.index)?;
    match t.exit_code {
        Some(c) if !reason.contains("exit code") => {
            write!(f, " (exit code {c}; attempt {})", t.attempts)?
        }
        _ => write!(f, " (attempt {})", t.attempts)?,
    }
    if let Some(log) = &t.log {
        write!(f, "\n    log: {log}")?;
    }
    for line in &t.log_tail {
        write!(f, "\n    | {line}")?;
    }
    Ok(())
}

/// The failed groups, the running and cancelled tasks, and the first failures in detail.
/// Returns whether anything was left out (then `status --tasks` shows it all).
pub fn write_overview(
    f: &mut fmt::Formatter<'_>,
    tasks: &[TaskStatus],
) -> Result<bool, fmt::Error> {
    let mut cut = false;
    let groups = failure_groups(tasks);
    for (reason, indexes) in groups.iter().take(GROUPS) {
        write!(f, "\n  {}: {reason}", ranges(indexes, RANGES))?;
        cut |= indexes.len() > 1 && ranges(indexes, RANGES).contains(" more");
    }
    if groups.len() > GROUPS {
        let rest: usize = groups[GROUPS..].iter().map(|(_, i)| i.len()).sum();
        write!(
            f,
            "\n  and {rest} more failed tasks with {} other reasons",
            groups.len() - GROUPS
        )?;
        cut = true;
    }
    for (state, label) in [
        (TaskState::Running, "running"),
        (TaskState::Cancelled, "cancelled"),
    ] {
        let indexes: Vec<usize> = tasks
            .iter()
            .filter(|t| t.state == state)
            .map(|t| t.index)
            .collect();
        if !indexes.is_empty() {
            let text = ranges(&indexes, RANGES);
            cut |= text.contains(" more");
            write!(f, "\n  {label}: {text}")?;
        }
    }
    let failed: Vec<&TaskStatus> = tasks
        .iter()
        .filter(|t| t.state == TaskState::Failed)
        .collect();
    for t in failed.iter().take(DETAILED) {
        write_failure(f, t)?;
    }
    Ok(cut || failed.len() > DETAILED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_read_as_ranges() {
        assert_eq!(ranges(&[2, 7, 100, 101, 102], 10), "#2, #7, #100–#102");
        assert_eq!(ranges(&[1, 3, 5, 6], 2), "#1, #3 and 2 more");
        assert_eq!(ranges(&[], 2), "");
    }
}
