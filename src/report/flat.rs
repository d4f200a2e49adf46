//! How a JSON object becomes table columns: `config.lr`, `result.eval.loss` — one rule for
//! `results`, the winner's words and the importance of configuration keys; and how a dotted key
//! finds its value (`eval.loss`).

use serde_json::{Map, Value};

/// `prefix.a.b` for every leaf of an object; arrays and scalars are leaves.
pub fn flatten(prefix: &str, v: &Value, out: &mut Map<String, Value>) {
    match v {
        Value::Object(o) if !o.is_empty() => {
            for (k, v) in o {
                flatten(&format!("{prefix}.{k}"), v, out);
            }
        }
        Value::Object(_) => {}
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

/// The value under `key` (dots walk into nested objects).
pub fn value_at<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    let mut v = value;
    for part in key.split('.') {
        v = v.get(part)?;
    }
    Some(v)
}

/// The value under `metric` of a result, when a finite number.
pub fn value_of(result: &Value, metric: &str) -> Option<f64> {
    value_at(result, metric)?.as_f64().filter(|x| x.is_finite())
}
