//! The results page: the table of `jobrun results` (sorted and filtered on the server, a page
//! of rows at a time), the scatter plot of every row and, for sweeps over several keys, the
//! small multiples; their data go in the page as JSON for `assets/app.js` to draw.

use super::{enc, human, page, plain, row_table};
use crate::record::RunRecord;
use crate::report::results::Results;
use maud::{Markup, PreEscaped, html};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `?sort=COLUMN&desc=1&q=TEXT&x=&y=&color=&page=N` on the results page.
#[derive(Deserialize, Default)]
pub struct ResultsQuery {
    pub sort: Option<String>,
    #[serde(default)]
    pub desc: Option<String>,
    pub q: Option<String>,
    pub x: Option<String>,
    pub y: Option<String>,
    pub color: Option<String>,
    /// Which page of the table (from 0); the plot always has every row.
    pub page: Option<usize>,
}

/// Rows of the results table per page: a browser lays out 60,000 cells in about two seconds,
/// 3,000 in a tenth of one (bench/ui.sh); sorting is the server's, so the best are on page one.
pub const PAGE_ROWS: usize = 500;

impl ResultsQuery {
    pub fn descending(&self) -> bool {
        self.desc
            .as_deref()
            .is_some_and(|d| d == "1" || d == "true")
    }
}

/// What the results page's plot draws: one point per task that has both values, each axis
/// logarithmic when its values span two decades or more (`lr` from 0.003 to 0.3 would pile up
/// at 0 on a linear one), and the winner, when the run has one, marked.
#[derive(Serialize)]
struct PlotData<'a> {
    x: &'a str,
    y: &'a str,
    color: &'a str,
    points: Vec<Value>,
    x_log: bool,
    y_log: bool,
    /// The winning task's index (`Best`), drawn as its own marked point.
    #[serde(skip_serializing_if = "Option::is_none")]
    best: Option<usize>,
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

fn plot_data<'a>(r: &Results, x: &'a str, y: &'a str, color: &'a str) -> String {
    let mut points: Vec<(f64, Value)> = r
        .rows
        .iter()
        .filter_map(|row| {
            let (px, py) = (row.get(x)?.as_f64()?, row.get(y)?.as_f64()?);
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
    let points: Vec<Value> = points.into_iter().map(|(_, p)| p).collect();
    let along = |axis: &'static str| points.iter().filter_map(move |p| p[axis].as_f64());
    let data = PlotData {
        x,
        y,
        color,
        x_log: spans_decades(along("x")),
        y_log: spans_decades(along("y")),
        best: r.best.as_ref().map(|b| b.index),
        points,
    };
    // Inside <script>: no `</` may end it early.
    serde_json::to_string(&data)
        .unwrap_or_default()
        .replace("</", "<\\/")
}

/// The small multiples under the plot, for sweeps over several keys: the result key against
/// each numeric configuration key, one small scatter each (none for a sweep over one key).
#[derive(Serialize)]
struct Multiples<'a> {
    y: &'a str,
    keys: Vec<&'a str>,
    /// Per key: its axis is logarithmic (see [`spans_decades`]).
    log: Vec<bool>,
    /// Per task with a `y`: its index, `y`, and its value of each key (null: none).
    points: Vec<(Value, f64, Vec<Option<f64>>)>,
}

fn multiples_data(r: &Results, keys: &[&String], y: &str) -> Option<String> {
    if keys.len() < 2 || y.is_empty() {
        return None;
    }
    let points: Vec<(Value, f64, Vec<Option<f64>>)> = r
        .rows
        .iter()
        .filter_map(|row| {
            let vy = row.get(y)?.as_f64()?;
            let xs = keys.iter().map(|k| row.get(*k).and_then(Value::as_f64));
            Some((row.get("index").cloned()?, vy, xs.collect()))
        })
        .collect();
    let log = (0..keys.len())
        .map(|k| {
            spans_decades(
                points
                    .iter()
                    .filter_map(|p: &(Value, f64, Vec<Option<f64>>)| p.2[k]),
            )
        })
        .collect();
    let data = Multiples {
        y,
        keys: keys.iter().map(|k| k.as_str()).collect(),
        log,
        points,
    };
    Some(serde_json::to_string(&data).ok()?.replace("</", "<\\/"))
}

/// What the plots draw by default: the first numeric configuration key across, the first
/// numeric result key up, and every numeric configuration key for the small multiples.
struct Axes {
    x: String,
    y: String,
    swept: Vec<String>,
}

impl Axes {
    fn of(r: &Results, q: &ResultsQuery) -> Axes {
        let numeric = |c: &&String| {
            r.rows
                .iter()
                .any(|row| row.get(*c).is_some_and(Value::is_number))
        };
        let keys = |prefix: &str| -> Vec<String> {
            r.columns
                .iter()
                .filter(|c| c.starts_with(prefix))
                .filter(numeric)
                .cloned()
                .collect()
        };
        let (swept, results) = (keys("config."), keys("result."));
        Axes {
            x: q.x
                .clone()
                .or_else(|| swept.first().cloned())
                .unwrap_or_default(),
            y: q.y
                .clone()
                .or_else(|| results.first().cloned())
                .unwrap_or_default(),
            swept,
        }
    }
}

/// Links that keep the query's filter and axes: by a column (and way), and to a page.
struct Links<'a> {
    base: String,
    q: &'a ResultsQuery,
}

impl Links<'_> {
    fn sorted(&self, sort: &str, desc: bool) -> String {
        let mut s = format!("{}?sort={}", self.base, enc(sort));
        if desc {
            s.push_str("&desc=1");
        }
        let q = self.q;
        for (k, v) in [("q", &q.q), ("x", &q.x), ("y", &q.y), ("color", &q.color)] {
            if let Some(v) = v {
                s.push_str(&format!("&{k}={}", enc(v)));
            }
        }
        s
    }

    fn page(&self, n: usize) -> String {
        let by = self.q.sort.as_deref().unwrap_or("index");
        format!("{}&page={n}", self.sorted(by, self.q.descending()))
    }
}

pub fn results_page(rec: &RunRecord, r: &Results, q: &ResultsQuery) -> Markup {
    let axes = Axes::of(r, q);
    let links = Links {
        base: format!("/runs/{}/results", rec.run_id),
        q,
    };
    let swept: Vec<&String> = axes.swept.iter().collect();
    let multiples = multiples_data(r, &swept, &axes.y);
    let pages = r.rows.len().div_ceil(PAGE_ROWS).max(1);
    let page_no = q.page.unwrap_or(0).min(pages - 1);
    let from = (page_no * PAGE_ROWS).min(r.rows.len());
    let shown = &r.rows[from..(from + PAGE_ROWS).min(r.rows.len())];
    page(
        &format!("results of {}", rec.run_id),
        html! {
            h1 { a href={ "/runs/" (rec.run_id) } { (rec.run_id) } " · results" }
            @if let Some(reduce) = &r.reduce { section #reduce { h2 { "the reduce" } (row_table(&r.columns, std::slice::from_ref(reduce))) } }
            @if let Some(b) = &r.best {
                p #best { b { "Who won: " } (b.to_string().trim_start_matches("best: ")) }
                @if !r.importance.is_empty() {
                    p #importance.meta { (crate::report::importance::Line { metric: &b.metric, all: &r.importance }.to_string()) }
                }
            }
            (choices(r, q, &axes, &links.base))
            @if !axes.x.is_empty() && !axes.y.is_empty() {
                @let color = q.color.clone().unwrap_or_default();
                div.plot { canvas #plot data-run=(rec.run_id) {} }
                script #plot-data type="application/json" { (PreEscaped(plot_data(r, &axes.x, &axes.y, &color))) }
            }
            @if let Some(m) = &multiples {
                h2 { (axes.y) " against each swept key" }
                div #multiples data-run=(rec.run_id) {}
                script #multiples-data type="application/json" { (PreEscaped(m)) }
            }
            p.links { (r.rows.len()) " rows"
                @if pages > 1 { " (" (from + 1) "–" (from + shown.len()) " shown"
                    @if page_no > 0 { " · " a #prev href=(links.page(page_no - 1)) { "← previous" } }
                    @if page_no + 1 < pages { " · " a #next href=(links.page(page_no + 1)) { "next " (PAGE_ROWS) " →" } }
                    ")" }
                " · "
                a href={ "/runs/" (rec.run_id) "/results.csv" } { "CSV" } " · "
                a href={ "/runs/" (rec.run_id) "/results.json" } { "JSON" } }
            (table(r, q, shown, &links, &rec.run_id))
        },
    )
}

/// The axes, the colour and the filter, as a form that keeps the sort.
fn choices(r: &Results, q: &ResultsQuery, axes: &Axes, base: &str) -> Markup {
    let color = q.color.clone().unwrap_or_default();
    html! {
        form.filters method="get" action=(base) {
            label { "x " (key_select("x", &r.columns, &axes.x)) }
            label { "y " (key_select("y", &r.columns, &axes.y)) }
            label { "colour " (key_select("color", &r.columns, &color)) }
            label { "filter " input name="q" value=(q.q.clone().unwrap_or_default()); }
            @if let Some(s) = &q.sort { input type="hidden" name="sort" value=(s); }
            @if q.descending() { input type="hidden" name="desc" value="1"; }
            button { "show" }
        }
    }
}

/// The page's rows, under headers that sort by their column (again: the other way).
fn table(
    r: &Results,
    q: &ResultsQuery,
    shown: &[Map<String, Value>],
    links: &Links<'_>,
    run_id: &str,
) -> Markup {
    let sorted = q.sort.as_deref().and_then(|s| r.column(s));
    html! {
        table #results {
            thead { tr { @for c in &r.columns {
                @let this = sorted.as_deref() == Some(c.as_str());
                th { a href=(links.sorted(c, this && !q.descending())) { (c) @if this { @if q.descending() { " ▼" } @else { " ▲" } } } }
            } } }
            tbody { @for row in shown { (row_cells(&r.columns, row, run_id)) } }
        }
    }
}

fn key_select(name: &str, columns: &[String], chosen: &str) -> Markup {
    html! { select name=(name) { option value="" { "-" } @for c in columns { option value=(c) selected[c == chosen] { (c) } } } }
}

fn row_cells(columns: &[String], row: &Map<String, Value>, run_id: &str) -> Markup {
    html! { tr { @for c in columns {
        @let v = row.get(c).unwrap_or(&Value::Null);
        @if c == "index" { td.n { a href={ "/runs/" (run_id) "/tasks/" (plain(v)) } { (plain(v)) } } }
        @else { td class=[v.is_number().then_some("n")] title=(plain(v)) { (human(v)) } }
    } } }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::TaskRecord;
    use serde_json::json;

    #[test]
    fn a_sweep_over_several_keys_gets_one_small_plot_per_numeric_key() {
        let mut rec = crate::record::tests::record("20260101-000000-a-0001", "a");
        rec.tasks = (0..3)
            .map(|i| TaskRecord::new(i, json!({"lr": i, "batch": 8 * i, "opt": "adam"}), None))
            .collect();
        for (i, t) in rec.tasks.iter_mut().enumerate().take(2) {
            t.set_result(Some(Ok(json!({"loss": i as f64 / 2.0}))));
        }
        let r = Results::of(&rec);
        let html = results_page(&rec, &r, &ResultsQuery::default()).into_string();
        let at = html.find("id=\"multiples-data\"").expect("small multiples");
        let at = at + html[at..].find('>').unwrap() + 1;
        let data: Value =
            serde_json::from_str(&html[at..at + html[at..].find("</script>").unwrap()]).unwrap();
        assert_eq!(
            data["keys"],
            json!(["config.batch", "config.lr"]),
            "numeric keys only"
        );
        assert_eq!(
            data["points"],
            json!([[0, 0.0, [0.0, 0.0]], [1, 0.5, [8.0, 1.0]]]),
            "tasks with a loss"
        );

        rec.tasks
            .iter_mut()
            .for_each(|t| t.config = crate::record::Config::of(&json!({"lr": 1})));
        let one_key =
            results_page(&rec, &Results::of(&rec), &ResultsQuery::default()).into_string();
        assert!(
            !one_key.contains("multiples-data"),
            "one key: the scatter says it all"
        );
    }

    #[test]
    fn the_table_is_paged_and_the_plot_has_every_row() {
        let mut rec = crate::record::tests::record("20260101-000000-a-0001", "a");
        rec.tasks = (0..1200)
            .map(|i| TaskRecord::new(i, json!({"lr": i}), None))
            .collect();
        for t in rec.tasks.iter_mut() {
            t.set_result(Some(Ok(json!({"loss": t.index as f64}))));
        }
        let r = Results::of(&rec);
        let rows = |html: &str| html.matches("/tasks/").count();
        let first = results_page(&rec, &r, &ResultsQuery::default()).into_string();
        assert_eq!(rows(&first), PAGE_ROWS, "one link per row shown");
        assert!(first.contains("1–500 shown"), "{}", &first[..2000]);
        assert!(first.contains("page=1"), "a next page");
        assert!(!first.contains("id=\"prev\""));
        let last = ResultsQuery {
            page: Some(9),
            ..ResultsQuery::default()
        };
        let last = results_page(&rec, &r, &last).into_string();
        assert_eq!(rows(&last), 200, "past the end: the last page");
        assert!(last.contains("1001–1200 shown") && !last.contains("id=\"next\""));
        let at = first.find("id=\"plot-data\"").unwrap();
        let at = at + first[at..].find('>').unwrap() + 1;
        let data: Value =
            serde_json::from_str(&first[at..at + first[at..].find("</script>").unwrap()]).unwrap();
        assert_eq!(data["points"].as_array().unwrap().len(), 1200);
    }

    #[test]
    fn an_axis_is_logarithmic_when_its_positive_values_span_two_decades() {
        assert!(spans_decades([0.003, 0.03, 0.3].into_iter()));
        assert!(!spans_decades([0.1, 0.4].into_iter()));
        assert!(
            !spans_decades([0.0, 0.3, 30.0].into_iter()),
            "no zero on a log axis"
        );
        assert!(!spans_decades([-1.0, 100.0].into_iter()));
        assert!(!spans_decades(std::iter::empty()));
    }
}
