//! When a schedule fires, as the user writes it (5-field cron, a rate, one time) and as
//! EventBridge Scheduler wants it (`cron(m h dom mon dow year)`, `rate(n unit)`,
//! `at(yyyy-mm-ddThh:mm:ss)`), with the next fire time in the schedule's timezone.
//!
//! Scheduler's cron differs from the crontab's: six fields (a year), one of day-of-month and
//! day-of-week must be `?`, days of the week count 1-7 from Sunday (crontab: 0-7, 0 and 7 are
//! Sunday) and take no `/` steps. The crontab form is checked with `croner` and translated;
//! what Scheduler cannot say is refused here, not by AWS.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::str::FromStr;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ExprError {
    #[error("`{0}` is not a 5-field cron expression (minute hour day-of-month month day-of-week)")]
    Fields(String),
    #[error("`{expr}` is not a valid cron expression: {why}")]
    Cron { expr: String, why: String },
    #[error(
        "`{0}` restricts both the day of the month and the day of the week, which EventBridge Scheduler cannot express"
    )]
    BothDays(String),
    #[error("`{0}`: EventBridge Scheduler takes no step (`/`) in the day of the week")]
    WeekdayStep(String),
    #[error("`{0}` is not a rate: write it as `<n> minutes|hours|days` (e.g. `6 hours`)")]
    Rate(String),
    #[error("`{0}` is not a time: write it as yyyy-mm-ddThh:mm:ss (in the schedule's timezone)")]
    At(String),
    #[error("`{0}` is not a timezone name (IANA, e.g. Europe/Berlin or UTC)")]
    Timezone(String),
}

/// When a schedule fires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "value")]
pub enum When {
    /// A crontab expression (5 fields), as the user wrote it.
    Cron(String),
    /// Every `n` `unit`s (`unit`: minute, hour or day).
    Rate { n: u32, unit: String },
    /// Once, at a local time of the schedule's timezone.
    At(NaiveDateTime),
}

impl When {
    /// `--cron`: five fields, checked and translatable.
    pub fn cron(expr: &str) -> Result<When, ExprError> {
        let when = When::Cron(expr.split_whitespace().collect::<Vec<_>>().join(" "));
        when.aws()?;
        Ok(when)
    }

    /// `--rate "6 hours"` (or `rate(6 hours)`).
    pub fn rate(expr: &str) -> Result<When, ExprError> {
        let bad = || ExprError::Rate(expr.to_string());
        let inner = expr
            .trim()
            .strip_prefix("rate(")
            .and_then(|s| s.strip_suffix(')'))
            .unwrap_or(expr.trim());
        let (n, unit) = inner.split_once(' ').ok_or_else(bad)?;
        let n: u32 = n.trim().parse().map_err(|_| bad())?;
        let unit = unit.trim().trim_end_matches('s');
        if n == 0 || !["minute", "hour", "day"].contains(&unit) {
            return Err(bad());
        }
        Ok(When::Rate {
            n,
            unit: unit.to_string(),
        })
    }

    /// `--at 2026-12-01T06:00:00`.
    pub fn at(expr: &str) -> Result<When, ExprError> {
        NaiveDateTime::parse_from_str(expr.trim(), "%Y-%m-%dT%H:%M:%S")
            .or_else(|_| NaiveDateTime::parse_from_str(expr.trim(), "%Y-%m-%dT%H:%M"))
            .map(When::At)
            .map_err(|_| ExprError::At(expr.to_string()))
    }

    /// The expression EventBridge Scheduler takes.
    pub fn aws(&self) -> Result<String, ExprError> {
        match self {
            When::Cron(expr) => Ok(format!("cron({})", aws_cron(expr)?)),
            // Scheduler wants the singular unit for 1 and the plural above it.
            When::Rate { n, unit } => Ok(match n {
                1 => format!("rate(1 {unit})"),
                _ => format!("rate({n} {unit}s)"),
            }),
            When::At(t) => Ok(format!("at({})", t.format("%Y-%m-%dT%H:%M:%S"))),
        }
    }

    /// The next time it fires after `now`: for a rate, counted from `since` (when the schedule
    /// was made, as Scheduler counts); `None` once an `at` has passed.
    pub fn next(&self, tz: Tz, now: DateTime<Utc>, since: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            When::Cron(expr) => {
                let cron = croner::Cron::from_str(expr).ok()?;
                let local = now.with_timezone(&tz);
                let next = cron.find_next_occurrence(&local, false).ok()?;
                Some(next.with_timezone(&Utc))
            }
            When::Rate { n, unit } => {
                let step = i64::from(*n)
                    * match unit.as_str() {
                        "minute" => 60,
                        "hour" => 3_600,
                        _ => 86_400,
                    };
                let passed = (now - since).num_seconds().max(0);
                let k = passed / step + 1;
                Some(since + chrono::Duration::seconds(k * step))
            }
            When::At(t) => {
                let at = tz.from_local_datetime(t).earliest()?.with_timezone(&Utc);
                (at > now).then_some(at)
            }
        }
    }
}

impl std::fmt::Display for When {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            When::Cron(expr) => write!(f, "cron \"{expr}\""),
            When::Rate { n: 1, unit } => write!(f, "every {unit}"),
            When::Rate { n, unit } => write!(f, "every {n} {unit}s"),
            When::At(t) => write!(f, "once at {}", t.format("%Y-%m-%d %H:%M:%S")),
        }
    }
}

/// A timezone Scheduler knows (IANA names).
pub fn timezone(name: &str) -> Result<Tz, ExprError> {
    Tz::from_str(name).map_err(|_| ExprError::Timezone(name.to_string()))
}

/// `m h dom mon dow` → `m h dom mon dow *` with `?` where Scheduler wants it.
fn aws_cron(expr: &str) -> Result<String, ExprError> {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    let [minute, hour, dom, month, dow] = fields[..] else {
        return Err(ExprError::Fields(expr.to_string()));
    };
    croner::Cron::from_str(expr).map_err(|e| ExprError::Cron {
        expr: expr.to_string(),
        why: e.to_string(),
    })?;
    let (dom, dow) = match (dom, dow) {
        (dom, "*" | "?") => (dom.to_string(), "?".to_string()),
        ("*" | "?", dow) => ("?".to_string(), weekdays(expr, dow)?),
        _ => return Err(ExprError::BothDays(expr.to_string())),
    };
    Ok(format!("{minute} {hour} {dom} {month} {dow} *"))
}

/// Crontab weekdays (0-7, Sunday 0 or 7) → Scheduler's (1-7, Sunday 1); names stay.
fn weekdays(expr: &str, dow: &str) -> Result<String, ExprError> {
    if dow.contains('/') {
        return Err(ExprError::WeekdayStep(expr.to_string()));
    }
    let day = |d: &str| -> String {
        match d.parse::<u32>() {
            Ok(n) => ((n % 7) + 1).to_string(),
            Err(_) => d.to_ascii_uppercase(),
        }
    };
    let items: Vec<String> = dow
        .split(',')
        .map(|item| {
            if let Some((d, nth)) = item.split_once('#') {
                return format!("{}#{nth}", day(d));
            }
            match item.split_once('-') {
                // `a-7` ends on Sunday, which is 1 in Scheduler: `a+1-7,1`.
                Some((a, "7")) => format!("{}-7,1", day(a)),
                Some((a, b)) => format!("{}-{}", day(a), day(b)),
                None => day(item),
            }
        })
        .collect();
    Ok(items.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crontab_becomes_schedulers_cron() {
        for (crontab, aws) in [
            ("0 6 * * MON", "cron(0 6 ? * MON *)"),
            ("0 6 * * 1", "cron(0 6 ? * 2 *)"),
            ("0 6 * * 0", "cron(0 6 ? * 1 *)"),
            ("0 6 * * 7", "cron(0 6 ? * 1 *)"),
            ("30 2 1 * *", "cron(30 2 1 * ? *)"),
            ("*/15 * * * *", "cron(*/15 * * * ? *)"),
            ("0 6 * * 1-5", "cron(0 6 ? * 2-6 *)"),
            ("0 6 * * 5-7", "cron(0 6 ? * 6-7,1 *)"),
            ("0 6 * * 1,3", "cron(0 6 ? * 2,4 *)"),
            ("0 6 * * 5#3", "cron(0 6 ? * 6#3 *)"),
            ("0  6 * *   mon", "cron(0 6 ? * MON *)"),
        ] {
            assert_eq!(
                When::cron(crontab).unwrap().aws().unwrap(),
                aws,
                "{crontab}"
            );
        }
    }

    #[test]
    fn what_scheduler_cannot_say_is_refused() {
        assert!(matches!(
            When::cron("0 6 1 * MON"),
            Err(ExprError::BothDays(_))
        ));
        assert!(matches!(
            When::cron("0 6 * * */2"),
            Err(ExprError::WeekdayStep(_))
        ));
        assert!(matches!(When::cron("0 6 * *"), Err(ExprError::Fields(_))));
        assert!(matches!(
            When::cron("61 6 * * *"),
            Err(ExprError::Cron { .. })
        ));
    }

    #[test]
    fn rates_and_times() {
        assert_eq!(
            When::rate("6 hours").unwrap().aws().unwrap(),
            "rate(6 hours)"
        );
        assert_eq!(
            When::rate("1 hours").unwrap().aws().unwrap(),
            "rate(1 hour)"
        );
        assert_eq!(
            When::rate("rate(5 minutes)").unwrap().aws().unwrap(),
            "rate(5 minutes)"
        );
        for bad in ["0 hours", "6 weeks", "hours", "x hours"] {
            assert!(When::rate(bad).is_err(), "{bad}");
        }
        assert_eq!(
            When::at("2026-12-01T06:00").unwrap().aws().unwrap(),
            "at(2026-12-01T06:00:00)"
        );
        assert!(When::at("tomorrow").is_err());
        assert!(timezone("Europe/Berlin").is_ok());
        assert!(timezone("Mars/Olympus").is_err());
    }

    #[test]
    fn next_fire_is_in_the_schedules_timezone() {
        let berlin = timezone("Europe/Berlin").unwrap();
        // Monday 2026-11-30 07:00 UTC is 08:00 in Berlin: 06:00 Berlin has passed this week.
        let now = Utc.with_ymd_and_hms(2026, 11, 30, 7, 0, 0).unwrap();
        let next = When::cron("0 6 * * MON").unwrap().next(berlin, now, now);
        assert_eq!(
            next,
            Some(Utc.with_ymd_and_hms(2026, 12, 7, 5, 0, 0).unwrap())
        );
        let since = Utc.with_ymd_and_hms(2026, 11, 30, 0, 0, 0).unwrap();
        let rate = When::rate("6 hours").unwrap().next(berlin, now, since);
        assert_eq!(
            rate,
            Some(Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap())
        );
        let at = When::at("2026-11-30T06:00:00").unwrap();
        assert_eq!(at.next(berlin, now, since), None, "passed");
    }
}
