//! What the web view hands out as a file, made safe for where it lands: a results CSV is opened
//! in a spreadsheet, which runs a cell that starts like a formula (`=HYPERLINK(…)`, `@SUM(…)`,
//! `-2+3`: OWASP's CSV injection), so such a cell gets a leading `'` — numbers stay numbers; a
//! download's name is a task's file name, any bytes but `/` and NUL, which a header cannot
//! carry as is (a newline, an escape), so it goes as RFC 6266's `filename*=UTF-8''…`
//! (RFC 5987 percent-encoding) with a plain-ASCII `filename` for old clients; and a link to a
//! task's file is percent-encoded segment by segment (a file named `%2e%2e` is not `..`, nor
//! is `a\b` the path `a/b`, in a browser).

use crate::report::results::Results;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;
use std::borrow::Cow;

/// What is left as is in a path segment and in RFC 5987's value: RFC 3986's unreserved
/// characters (all of them RFC 5987 `attr-char`s too).
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The results as CSV for a spreadsheet: `Results::csv`'s table, every text cell that a
/// spreadsheet would take for a formula neutralised.
pub fn spreadsheet_csv(r: &Results) -> Result<Vec<u8>, csv::Error> {
    r.csv_with(|c| neutralised(c).into_owned(), cell)
}

/// A value as a cell (as `Results::csv` writes it), neutralised unless it is a number.
fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(n @ Value::Number(_)) => n.to_string(),
        Some(Value::String(s)) => neutralised(s).into_owned(),
        Some(other) => neutralised(&other.to_string()).into_owned(),
    }
}

/// OWASP's rule for CSV injection: a cell that starts with `=`, `+`, `-`, `@`, a tab or a
/// carriage return gets a `'` before it (the spreadsheet then shows it as text) — unless the
/// whole cell is a number (`-0.5`, `+1e-3`: data, and a configuration from a CSV file has its
/// numbers as strings).
pub fn neutralised(text: &str) -> Cow<'_, str> {
    let risky = text.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let number = text.parse::<f64>().is_ok_and(f64::is_finite);
    match risky && !number {
        true => Cow::Owned(format!("'{text}")),
        false => Cow::Borrowed(text),
    }
}

/// `Content-Disposition` for a download named `name`: RFC 6266 with the name percent-encoded
/// as UTF-8 (RFC 5987), and a fallback of its printable ASCII (others as `_`) for clients that
/// read only `filename`. Always a valid header value, whatever the name holds.
pub fn attachment(name: &str) -> String {
    let fallback: String = name
        .chars()
        .map(|c| match c {
            ' '..='~' if !matches!(c, '"' | '\\' | '%' | '/') => c,
            _ => '_',
        })
        .collect();
    format!(
        "attachment; filename=\"{fallback}\"; filename*=UTF-8''{}",
        utf8_percent_encode(name, UNRESERVED)
    )
}

/// A relative path (`/`-separated, as a task's output listing has it) as a URL path: each
/// segment percent-encoded, so it reaches the server as it was named.
pub fn path_link(rel: &str) -> String {
    rel.split('/')
        .map(|seg| utf8_percent_encode(seg, UNRESERVED).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_cell_that_a_spreadsheet_would_run_is_text_and_a_number_stays_a_number() {
        for risky in [
            "=HYPERLINK(\"http://x\")",
            "+cmd",
            "-2+3",
            "@SUM(A1)",
            "\tx",
            "\r=1",
            "-",
            "-inf",
        ] {
            assert_eq!(neutralised(risky), format!("'{risky}"), "{risky:?}");
        }
        for data in ["-0.5", "+1e-3", "-12", "adam", "a=b", "", "0.1"] {
            assert_eq!(neutralised(data), data, "{data:?}");
        }

        let mut rec = crate::record::tests::record("20260101-000000-a-0001", "a");
        rec.tasks = ["=1+1", "-0.5"]
            .iter()
            .enumerate()
            .map(|(i, opt)| {
                crate::record::TaskRecord::new(i, json!({"opt": opt, "lr": -0.5}), None)
            })
            .collect();
        rec.tasks[0].set_result(Some(Ok(json!({"note": "@me", "loss": -1.25}))));
        let csv = String::from_utf8(spreadsheet_csv(&Results::of(&rec)).unwrap()).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0], "index,state,config.opt,config.lr,result.note,result.loss,duration_s",
            "the keys in the order the configurations and results give them"
        );
        assert_eq!(lines[1], "0,queued,'=1+1,-0.5,'@me,-1.25,", "{csv}");
        assert_eq!(lines[2], "1,queued,-0.5,-0.5,,,", "{csv}");
    }

    #[test]
    fn any_name_makes_a_valid_header_and_comes_back_whole() {
        for name in [
            "w.txt",
            "a\nb.txt",
            "\u{1b}[31mred",
            "naïve \"q\".csv",
            "%2e%2e",
            "a\\b",
        ] {
            let value = attachment(name);
            let header = axum::http::HeaderValue::from_str(&value)
                .unwrap_or_else(|e| panic!("{name:?}: {value}: {e}"));
            let encoded = value.split("filename*=UTF-8''").nth(1).unwrap();
            let back = percent_encoding::percent_decode_str(encoded)
                .decode_utf8()
                .unwrap();
            assert_eq!(back, name, "{header:?}");
        }
        assert_eq!(
            attachment("a\nb \"c\".txt"),
            "attachment; filename=\"a_b _c_.txt\"; filename*=UTF-8''a%0Ab%20%22c%22.txt"
        );
    }

    #[test]
    fn a_link_keeps_each_segment_as_named() {
        assert_eq!(path_link("model/w.txt"), "model/w.txt");
        assert_eq!(path_link("%2e%2e"), "%252e%252e");
        assert_eq!(path_link("a\\b"), "a%5Cb");
        assert_eq!(path_link("d/a\nb?c#d"), "d/a%0Ab%3Fc%23d");
        assert_eq!(path_link("..."), "...");
    }
}
