//! How a JSON object becomes table columns: `config.lr`, `result.eval.loss` — one rule for
//! `results`, the winner's words and the importance of configuration keys.

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
