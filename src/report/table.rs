//! The text tables of `jobrun results`: a value as a cell (four significant digits for
//! people; CSV and JSON keep every digit), and the table itself, numeric columns
//! right-aligned, the winner's row marked.

use serde_json::Value;
use std::fmt;

/// A value as a cell: strings bare, everything else as JSON, missing empty.
pub fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// A cell of the text tables: one line whatever the value holds (a newline or a terminal
/// escape in a task's result is shown as `\n`, `\u{1b}`).
pub fn text_cell(v: Option<&Value>) -> String {
    match v {
        // For people: four significant digits (`-o json` and `-o csv` keep every digit).
        Some(Value::Number(n)) if n.is_f64() => crate::report::short(n.as_f64().unwrap_or(0.0)),
        _ => crate::ui::printable(&cell(v), "").into_owned(),
    }
}

/// A text table: the header, then each row, numeric columns right-aligned, a marked row
/// ending in `← best`.
pub fn write_table(
    f: &mut fmt::Formatter<'_>,
    keys: &[String],
    cells: &[Vec<String>],
    numeric: &[bool],
    marks: &[bool],
) -> fmt::Result {
    let columns: Vec<String> = keys
        .iter()
        .map(|c| crate::ui::printable(c, "").into_owned())
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .chain([c.chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |f: &mut fmt::Formatter<'_>, values: &[String], mark: &str| {
        let padded: Vec<String> = values
            .iter()
            .zip(widths.iter().zip(numeric))
            .map(|(v, (w, right))| match right {
                true => format!("{v:>w$}"),
                false => format!("{v:<w$}"),
            })
            .collect();
        writeln!(f, "{}{mark}", padded.join("  ").trim_end())
    };
    line(f, &columns, "")?;
    for (r, marked) in cells.iter().zip(marks) {
        line(f, r, if *marked { "  ← best" } else { "" })?;
    }
    Ok(())
}
