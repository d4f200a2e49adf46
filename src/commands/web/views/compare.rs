//! Two runs of a job side by side: per configuration, this run's value of a result key, the
//! other's, the change and the change in % — sorted by it, coloured better or worse when the key
//! is the run's objective.

use super::{human, page, plain};
use crate::record::RunRecord;
use crate::report::RunLine;
use crate::report::results::Results;
use maud::{Markup, html};
use serde_json::{Map, Value};

/// Two runs' results per configuration: this run's value, the other's, the change.
pub struct Compare {
    pub key: String,
    pub keys: Vec<String>,
    /// (configuration, this, other), by relative change (the most negative first; rows
    /// without one last).
    pub rows: Vec<(String, Option<Value>, Option<Value>)>,
    /// Which way is better for `key`: the run's objective's goal when `key` is its metric.
    pub goal: Option<crate::record::schema::Goal>,
}

/// This run's value against the other's, in % of the other's.
fn relative(a: &Option<Value>, b: &Option<Value>) -> Option<f64> {
    let (a, b) = (a.as_ref()?.as_f64()?, b.as_ref()?.as_f64()?);
    (b != 0.0).then(|| (a - b) / b.abs() * 100.0)
}

impl Compare {
    pub fn of(
        this: &Results,
        other: &Results,
        key: Option<&str>,
        objective: Option<&crate::record::schema::Objective>,
    ) -> Compare {
        let keys: Vec<String> = this
            .columns
            .iter()
            .filter(|c| c.starts_with("result."))
            .cloned()
            .collect();
        let key = key
            .map(String::from)
            .filter(|k| !k.is_empty())
            .or_else(|| keys.first().cloned())
            .unwrap_or_default();
        let config_of = |row: &Map<String, Value>| {
            let parts: Vec<String> = row
                .iter()
                .filter(|(k, _)| k.starts_with("config."))
                .map(|(k, v)| format!("{}={}", &k[7..], plain(v)))
                .collect();
            parts.join(", ")
        };
        let mut rows: Vec<(String, Option<Value>, Option<Value>)> = this
            .rows
            .iter()
            .map(|r| (config_of(r), r.get(&key).cloned(), None))
            .collect();
        for r in &other.rows {
            let c = config_of(r);
            match rows.iter_mut().find(|(k, _, o)| *k == c && o.is_none()) {
                Some(row) => row.2 = r.get(&key).cloned(),
                None => rows.push((c, None, r.get(&key).cloned())),
            }
        }
        rows.sort_by(|x, y| match (relative(&x.1, &x.2), relative(&y.1, &y.2)) {
            (Some(a), Some(b)) => a.total_cmp(&b),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        });
        let goal = objective
            .filter(|o| key.strip_prefix("result.") == Some(o.metric.as_str()))
            .map(|o| o.goal);
        Compare {
            key,
            keys,
            rows,
            goal,
        }
    }
}

pub fn compare_page(rec: &RunRecord, other: &str, others: &[RunLine], c: &Compare) -> Markup {
    let change = |a: &Option<Value>, b: &Option<Value>| match (
        a.as_ref().and_then(Value::as_f64),
        b.as_ref().and_then(Value::as_f64),
    ) {
        (Some(a), Some(b)) => human(&serde_json::json!(a - b)),
        _ => String::new(),
    };
    let pct = |a: &Option<Value>, b: &Option<Value>| {
        relative(a, b)
            .map(|p| format!("{p:+.1} %").replace('-', "−"))
            .unwrap_or_default()
    };
    // Better or worse for the goal: coloured when the key is the run's objective.
    let class = |a: &Option<Value>, b: &Option<Value>| {
        use crate::record::schema::Goal;
        match (relative(a, b), c.goal) {
            (Some(p), Some(Goal::Minimize)) | (Some(p), Some(Goal::Maximize)) if p == 0.0 => "",
            (Some(p), Some(Goal::Minimize)) if p < 0.0 => "better",
            (Some(_), Some(Goal::Minimize)) => "worse",
            (Some(p), Some(Goal::Maximize)) if p > 0.0 => "better",
            (Some(_), Some(Goal::Maximize)) => "worse",
            _ => "",
        }
    };
    page(
        &format!("{} against {other}", rec.run_id),
        html! {
            h1 { a href={ "/runs/" (rec.run_id) } { (rec.run_id) } " against " a href={ "/runs/" (other) } { (other) } }
            form.filters method="get" action={ "/runs/" (rec.run_id) "/compare" } {
                label { "with " select name="with" { @for l in others { option value=(l.run_id) selected[l.run_id == other] { (l.run_id) " (" (l.state.as_str()) ")" } } } }
                label { "result " select name="key" { @for k in &c.keys { option value=(k) selected[*k == c.key] { (k) } } } }
                button { "compare" }
            }
            table #compare {
                thead { tr { th { "configuration" } th.n { "this run" } th.n { "the other" } th.n { "change" } th.n { "change %" } } }
                tbody { @for (config, a, b) in &c.rows { tr class=(class(a, b)) {
                    td { (config) }
                    td.n { (a.as_ref().map(human).unwrap_or_else(|| "—".into())) }
                    td.n { (b.as_ref().map(human).unwrap_or_else(|| "—".into())) }
                    td.n { (change(a, b)) }
                    td.n.pct { (pct(a, b)) }
                } } }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::TaskRecord;
    use serde_json::json;

    #[test]
    fn compare_is_sorted_by_relative_change_and_coloured_for_the_goal() {
        let now = chrono::Utc::now();
        let run = |losses: &[f64]| {
            let mut rec = crate::record::tests::record("20260101-000000-a-0001", "a");
            rec.tasks = losses
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    let mut t = TaskRecord::new(i, json!({"lr": i}), None);
                    t.start(1, format!("c{i}"), now);
                    t.succeed(now);
                    t.result = Some(json!({"loss": l}));
                    t
                })
                .collect();
            rec
        };
        let (this, other) = (run(&[0.5, 0.1, 0.9]), run(&[0.5, 0.2, 0.6]));
        let objective = crate::record::schema::Objective {
            metric: "loss".into(),
            goal: crate::record::schema::Goal::Minimize,
            group: vec![],
        };
        let c = Compare::of(
            &Results::of(&this),
            &Results::of(&other),
            Some("result.loss"),
            Some(&objective),
        );
        let order: Vec<&str> = c.rows.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(order, ["lr=1", "lr=0", "lr=2"], "−50 %, 0 %, +50 %");
        let html = compare_page(&this, "other", &[], &c).into_string();
        assert!(html.contains("<tr class=\"better\">"), "{html}");
        assert!(html.contains("<tr class=\"worse\">"), "{html}");
        assert!(
            html.contains("−50.0 %") && html.contains("+50.0 %"),
            "{html}"
        );
    }
}
