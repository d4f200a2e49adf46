//! What the results page's plots draw, decided here and handed to `assets/app.js` as JSON: the
//! kind of each axis (linear, logarithmic when its values span two decades, categorical when a
//! key is not a number or has few values), the scatter with its winner and, with `[results]
//! group`, each configuration's mean ± sd; the small multiples; the parallel coordinates.

use super::{human, script_json};
use crate::report::results::Results;
use serde::Serialize;
use serde_json::Value;

/// A key with this many distinct values or fewer is drawn as categories (`seed` 1, 2, 3 are
/// three repeats, not a continuum), unless its values span two decades (`lr`: logarithmic).
const FEW: usize = 8;

/// How an axis places a value.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Axis {
    Linear { lo: f64, hi: f64 },
    Logarithmic { lo: f64, hi: f64 },
    Category { names: Vec<String> },
}

/// `?xscale=` on the results page: the automatic choice, or the one a user switched to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scale {
    #[default]
    Auto,
    Linear,
    Log,
    Category,
}

/// Values for a logarithmic axis: all positive, the largest at least 100 × the smallest.
pub(super) fn spans_decades(values: impl Iterator<Item = f64>) -> bool {
    let (mut lo, mut hi, mut any) = (f64::INFINITY, 0.0f64, false);
    for v in values {
        if v <= 0.0 || !v.is_finite() {
            return false;
        }
        (lo, hi, any) = (lo.min(v), hi.max(v), true);
    }
    any && hi / lo >= 100.0
}

impl Axis {
    /// The axis for these values (nulls left out); `few`: whether few distinct numbers make
    /// categories (configuration keys: yes; results: no). None when there is no value.
    pub fn of<'a>(
        values: impl Iterator<Item = &'a Value>,
        few: bool,
        scale: Scale,
    ) -> Option<Axis> {
        let values: Vec<&Value> = values.filter(|v| !v.is_null()).collect();
        let numbers: Vec<f64> = values.iter().filter_map(|v| v.as_f64()).collect();
        let all_numbers = numbers.len() == values.len() && !values.is_empty();
        let mut names: Vec<String> = values.iter().map(|v| human(v)).collect();
        let distinct = |names: &mut Vec<String>| {
            names.sort();
            names.dedup();
            names.len()
        };
        let (lo, hi) = numbers
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
                (l.min(*v), h.max(*v))
            });
        let log = spans_decades(numbers.iter().copied());
        let kind = match scale {
            _ if values.is_empty() => return None,
            Scale::Category => Scale::Category,
            _ if !all_numbers => Scale::Category,
            Scale::Log if lo > 0.0 => Scale::Log,
            Scale::Linear | Scale::Log => Scale::Linear,
            Scale::Auto if log => Scale::Log,
            Scale::Auto if few && distinct(&mut names.clone()) <= FEW => Scale::Category,
            Scale::Auto => Scale::Linear,
        };
        Some(match kind {
            Scale::Log => Axis::Logarithmic { lo, hi },
            Scale::Category => {
                distinct(&mut names);
                // Numbers in numeric order (2 before 10), text in text order.
                if all_numbers {
                    names.sort_by(|a, b| {
                        let n = |s: &str| s.parse::<f64>().unwrap_or(f64::NAN);
                        n(a).total_cmp(&n(b))
                    });
                }
                Axis::Category { names }
            }
            _ => Axis::Linear { lo, hi },
        })
    }

    /// Where a value sits along the axis, as the plot's coordinate (a category's index).
    pub fn coordinate(&self, v: &Value) -> Option<f64> {
        match self {
            Axis::Category { names } => {
                let name = human(v);
                names.iter().position(|n| *n == name).map(|p| p as f64)
            }
            Axis::Logarithmic { .. } => v.as_f64().filter(|x| *x > 0.0),
            Axis::Linear { .. } => v.as_f64(),
        }
    }

    /// Where a value sits from 0 (the axis' start) to 1 (its end).
    pub fn fraction(&self, v: &Value) -> Option<f64> {
        let at = self.coordinate(v)?;
        let span = |lo: f64, hi: f64, x: f64| match hi > lo {
            true => (x - lo) / (hi - lo),
            false => 0.5,
        };
        Some(match self {
            Axis::Category { names } => span(0.0, names.len() as f64 - 1.0, at),
            Axis::Logarithmic { lo, hi } => span(lo.ln(), hi.ln(), at.ln()),
            Axis::Linear { lo, hi } => span(*lo, *hi, at),
        })
    }
}

/// What the results page's scatter draws: one point per task that has both values, the winner
/// marked, and with a group each configuration's mean ± sd.
#[derive(Serialize)]
struct Scatter<'a> {
    x: &'a str,
    y: &'a str,
    color: &'a str,
    x_axis: Axis,
    y_axis: Axis,
    points: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    best: Option<usize>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    means: Vec<Value>,
}

fn column<'a>(r: &'a Results, key: &'a str) -> impl Iterator<Item = &'a Value> {
    r.rows.iter().filter_map(move |row| row.get(key))
}

pub fn scatter(r: &Results, x: &str, y: &str, color: &str, xscale: Scale) -> Option<String> {
    let x_axis = Axis::of(column(r, x), x.starts_with("config."), xscale)?;
    let y_axis = Axis::of(column(r, y), false, Scale::Auto)?;
    let y_axis = match y_axis {
        Axis::Category { .. } => return None,
        a => a,
    };
    let mut points: Vec<(f64, Value)> = r
        .rows
        .iter()
        .filter_map(|row| {
            let (px, py) = (
                x_axis.coordinate(row.get(x)?)?,
                y_axis.coordinate(row.get(y)?)?,
            );
            let label: Vec<String> = row
                .iter()
                .filter(|(k, _)| k.starts_with("config.") || k.starts_with("result."))
                .map(|(k, v)| format!("{k}={}", human(v)))
                .collect();
            let point = serde_json::json!({
                "x": px, "y": py, "i": row.get("index"),
                "c": row.get(color).cloned().unwrap_or(Value::Null),
                "label": label.join(", "),
            });
            Some((px, point))
        })
        .collect();
    // Chart.js takes data it need not parse as sorted along x (its scale is then the first
    // and the last point's), so the points go in x order, whatever order the table is in.
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    let data = Scatter {
        x,
        y,
        color,
        means: means(r, x, y, &x_axis),
        x_axis,
        y_axis,
        best: r.best.as_ref().map(|b| b.index),
        points: points.into_iter().map(|(_, p)| p).collect(),
    };
    Some(script_json(&data))
}

/// With a group: each configuration's mean of `y` ± its sd at its `x` (none when `x` is a
/// grouped key or a result), in x order.
fn means(r: &Results, x: &str, y: &str, axis: &Axis) -> Vec<Value> {
    let Some(g) = &r.groups else {
        return vec![];
    };
    let mut out: Vec<(f64, Value)> = g
        .rows
        .iter()
        .filter_map(|row| {
            let at = axis.coordinate(row.get(x)?)?;
            let s = row.get(y)?;
            let first = row.get("tasks")?.get(0)?;
            let point = serde_json::json!({"x": at, "y": s["mean"], "sd": s["sd"], "n": s["n"], "i": first});
            Some((at, point))
        })
        .collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out.into_iter().map(|(_, p)| p).collect()
}

/// The small multiples under the plot, for sweeps over several keys: the result key against
/// each swept configuration key, one small scatter each (none for a sweep over one key).
#[derive(Serialize)]
struct Multiples<'a> {
    y: &'a str,
    keys: Vec<&'a str>,
    axes: Vec<Axis>,
    /// Per task with a `y`: its index, `y`, and its coordinate along each key (null: none).
    points: Vec<(Value, f64, Vec<Option<f64>>)>,
}

pub fn multiples(r: &Results, keys: &[String], y: &str) -> Option<String> {
    if keys.len() < 2 || y.is_empty() {
        return None;
    }
    let axes: Vec<Axis> = keys
        .iter()
        .map(|k| Axis::of(column(r, k), true, Scale::Auto))
        .collect::<Option<_>>()?;
    let points = r
        .rows
        .iter()
        .filter_map(|row| {
            let vy = row.get(y)?.as_f64()?;
            let xs = keys
                .iter()
                .zip(&axes)
                .map(|(k, a)| a.coordinate(row.get(k)?));
            Some((row.get("index").cloned()?, vy, xs.collect()))
        })
        .collect();
    let data = Multiples {
        y,
        keys: keys.iter().map(String::as_str).collect(),
        axes,
        points,
    };
    Some(script_json(&data))
}

/// The parallel coordinates: one vertical axis per swept key and the metric last, one line per
/// task that has every value, each value as a fraction of its axis (0 at the bottom).
#[derive(Serialize)]
struct Parallel<'a> {
    keys: Vec<&'a str>,
    axes: Vec<Axis>,
    /// Per line: the task's index and its fraction along each axis.
    lines: Vec<(Value, Vec<f64>)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    best: Option<usize>,
    /// Drawn smaller is better: the metric's axis is flipped so the best is on top.
    minimize: bool,
}

pub fn parallel(r: &Results, swept: &[String], metric: &str) -> Option<String> {
    if swept.len() < 2 || metric.is_empty() {
        return None;
    }
    let keys: Vec<String> = swept.iter().cloned().chain([metric.to_string()]).collect();
    let axes: Vec<Axis> = keys
        .iter()
        .map(|k| Axis::of(column(r, k), k.starts_with("config."), Scale::Auto))
        .collect::<Option<_>>()?;
    let lines = r
        .rows
        .iter()
        .filter_map(|row| {
            let at: Option<Vec<f64>> = keys
                .iter()
                .zip(&axes)
                .map(|(k, a)| a.fraction(row.get(k)?))
                .collect();
            Some((row.get("index").cloned()?, at?))
        })
        .collect();
    let minimize = r
        .best
        .as_ref()
        .is_some_and(|b| b.goal == crate::record::schema::Goal::Minimize);
    let data = Parallel {
        keys: keys.iter().map(String::as_str).collect(),
        axes,
        lines,
        best: r.best.as_ref().map(|b| b.index),
        minimize,
    };
    Some(script_json(&data))
}

/// The configuration keys a run swept: those with more than one value among its tasks (every
/// key when none has: a run of one configuration).
pub fn swept(r: &Results) -> Vec<String> {
    let config: Vec<&String> = r
        .columns
        .iter()
        .filter(|c| c.starts_with("config."))
        .collect();
    let varies = |c: &&&String| {
        let mut seen: Option<&Value> = None;
        column(r, c).any(|v| match seen {
            None => {
                seen = Some(v);
                false
            }
            Some(first) => first != v,
        })
    };
    let swept: Vec<String> = config
        .iter()
        .filter(varies)
        .map(|c| c.to_string())
        .collect();
    match swept.is_empty() {
        true => config.into_iter().cloned().collect(),
        false => swept,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn axis(values: &[Value], few: bool) -> Axis {
        Axis::of(values.iter(), few, Scale::Auto).unwrap()
    }

    #[test]
    fn an_axis_is_logarithmic_over_two_decades_categorical_for_few_values_or_text() {
        assert!(spans_decades([0.003, 0.03, 0.3].into_iter()));
        assert!(!spans_decades([0.1, 0.4].into_iter()));
        assert!(
            !spans_decades([0.0, 0.3, 30.0].into_iter()),
            "no zero on a log axis"
        );
        assert!(!spans_decades([-1.0, 100.0].into_iter()));
        assert!(!spans_decades(std::iter::empty()));

        let lr = [
            json!(0.003),
            json!(0.01),
            json!(0.03),
            json!(0.1),
            json!(0.3),
        ];
        assert_eq!(axis(&lr, true), Axis::Logarithmic { lo: 0.003, hi: 0.3 });
        let seeds = [json!(10), json!(2), json!(1), json!(2)];
        assert_eq!(
            axis(&seeds, true),
            Axis::Category {
                names: vec!["1".into(), "2".into(), "10".into()]
            },
            "numbers in numeric order"
        );
        assert_eq!(
            axis(&seeds, false),
            Axis::Linear { lo: 1.0, hi: 10.0 },
            "a result"
        );
        let opt = [json!("sgd"), json!("adam"), Value::Null];
        let cat = axis(&opt, false);
        assert_eq!(cat.coordinate(&json!("sgd")), Some(1.0));
        assert_eq!(cat.fraction(&json!("adam")), Some(0.0));
        let many: Vec<Value> = (0..20).map(|i| json!(i)).collect();
        assert_eq!(axis(&many, true), Axis::Linear { lo: 0.0, hi: 19.0 });
        let switched = Axis::of(lr.iter(), true, Scale::Linear).unwrap();
        assert_eq!(
            switched,
            Axis::Linear { lo: 0.003, hi: 0.3 },
            "the switch wins"
        );
        assert!(Axis::of([Value::Null].iter(), true, Scale::Auto).is_none());
        let log = axis(&lr, true);
        assert_eq!(
            log.fraction(&json!(0.03)).map(|f| (f * 100.0).round()),
            Some(50.0)
        );
    }
}
