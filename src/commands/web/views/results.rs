//! The results page: the table of `jobrun results` (sorted and filtered on the server, a page
//! of rows at a time), the scatter plot of every row and, for sweeps over several keys, the
//! small multiples; their data go in the page as JSON for `assets/app.js` to draw.

use super::plots::{self, Scale};
use super::{enc, human, page, plain, row_table};
use crate::record::RunRecord;
use crate::report::results::Results;
use maud::{Markup, PreEscaped, html};
use serde::Deserialize;
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
    /// The scatter's x axis: `auto` (logarithmic over two decades, categories for few values
    /// or text), `linear`, `log` or `category`.
    pub xscale: Option<Scale>,
    /// Judge the run by this result key instead (`&goal=maximize` when larger wins).
    pub metric: Option<String>,
    pub goal: Option<crate::record::schema::Goal>,
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

/// What the plots draw by default: the first swept configuration key across, the run's
/// metric (else the first numeric result key) up, and every swept key for the small multiples
/// and the parallel coordinates.
struct Axes {
    x: String,
    y: String,
    swept: Vec<String>,
    metric: String,
}

impl Axes {
    fn of(r: &Results, q: &ResultsQuery) -> Axes {
        let numeric = |c: &&String| {
            r.rows
                .iter()
                .any(|row| row.get(*c).is_some_and(Value::is_number))
        };
        let first_result = r
            .columns
            .iter()
            .filter(|c| c.starts_with("result."))
            .find(numeric)
            .cloned();
        let metric = r
            .best
            .as_ref()
            .map(|b| format!("result.{}", b.metric))
            .or(first_result)
            .unwrap_or_default();
        let swept = plots::swept(r);
        Axes {
            x: q.x
                .clone()
                .or_else(|| swept.first().cloned())
                .unwrap_or_default(),
            y: q.y.clone().unwrap_or_else(|| metric.clone()),
            swept,
            metric,
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
        let xscale = q.xscale.map(|s| format!("{s:?}").to_lowercase());
        for (k, v) in [
            ("q", &q.q),
            ("x", &q.x),
            ("y", &q.y),
            ("color", &q.color),
            ("xscale", &xscale),
        ] {
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
    let multiples = plots::multiples(r, &axes.swept, &axes.y);
    let parallel = plots::parallel(r, &axes.swept, &axes.metric);
    let color = q.color.clone().unwrap_or_default();
    let scatter = plots::scatter(r, &axes.x, &axes.y, &color, q.xscale.unwrap_or_default());
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
            @if let Some(g) = &r.groups { (groups(g, r.best.as_ref().map(|b| b.index), &rec.run_id)) }
            @if let Some(data) = &scatter {
                div.plot { canvas #plot data-run=(rec.run_id) {} }
                script #plot-data type="application/json" { (PreEscaped(data)) }
            }
            @if let Some(p) = &parallel {
                h2 { "every swept key and " (axes.metric) }
                p.meta { "One line per task; drag along an axis to keep only the tasks in that range (the table below follows), click an axis to clear it." }
                div #parallel data-run=(rec.run_id) { canvas {} p #brushed.meta {} }
                script #parallel-data type="application/json" { (PreEscaped(p)) }
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
            label { "x axis " select name="xscale" {
                @for (v, name) in [("auto", "auto"), ("linear", "linear"), ("log", "logarithmic"), ("category", "categories")] {
                    option value=(v) selected[q.xscale.map(|s| format!("{s:?}").to_lowercase()).as_deref() == Some(v)] { (name) }
                }
            } }
            label { "winner by " (key_select("metric", &results_of(r), &q.metric.clone().unwrap_or_default())) }
            label { select name="goal" {
                @for (v, name) in [("minimize", "smallest"), ("maximize", "largest")] {
                    option value=(v) selected[q.goal.map(|g| format!("{g:?}").to_lowercase()).as_deref() == Some(v)] { (name) }
                }
            } }
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
            tbody { @for row in shown { (row_cells(&r.columns, row, run_id, r.best.as_ref().map(|b| b.index))) } }
        }
    }
}

/// The result columns, for the "winner by" choice.
fn results_of(r: &Results) -> Vec<String> {
    r.columns
        .iter()
        .filter(|c| c.starts_with("result."))
        .cloned()
        .collect()
}

fn key_select(name: &str, columns: &[String], chosen: &str) -> Markup {
    html! { select name=(name) { option value="" { "-" } @for c in columns { option value=(c) selected[c == chosen] { (c) } } } }
}

fn row_cells(
    columns: &[String],
    row: &Map<String, Value>,
    run_id: &str,
    best: Option<usize>,
) -> Markup {
    let is_best =
        best.is_some() && row.get("index").and_then(Value::as_u64) == best.map(|b| b as u64);
    html! { tr class=[is_best.then_some("best")] data-i=[row.get("index").map(plain)] { @for c in columns {
        @let v = row.get(c).unwrap_or(&Value::Null);
        @if c == "index" { td.n { a href={ "/runs/" (run_id) "/tasks/" (plain(v)) } { (plain(v)) } } }
        @else { td class=[v.is_number().then_some("n")] title=(plain(v)) { (human(v)) } }
    } } }
}

/// With `[results] group`: one row per configuration, mean ± sd of each result, n, its tasks.
fn groups(g: &crate::report::grouped::Table, best: Option<usize>, run_id: &str) -> Markup {
    let holds = |row: &Map<String, Value>| {
        best.is_some_and(|b| crate::report::grouped::Table::holds(row, b))
    };
    html! {
        section #groups {
            h2 { (g.rows.len()) " configurations (" (g.by.join(", ")) " grouped: mean ± sd)" }
            table {
                thead { tr { @for c in &g.columns { th { (c) } } } }
                tbody { @for row in g.rows.iter().take(PAGE_ROWS) {
                    tr class=[holds(row).then_some("best")] { @for c in &g.columns {
                        @let v = row.get(c).unwrap_or(&Value::Null);
                        @match v {
                            Value::Object(s) => td.n { (human(&s["mean"])) @if s["n"].as_u64() != Some(1) { " ± " (human(&s["sd"])) } },
                            Value::Array(tasks) => td { @for t in tasks.iter().take(20) { a href={ "/runs/" (run_id) "/tasks/" (plain(t)) } { "#" (plain(t)) } " " } },
                            other => td class=[other.is_number().then_some("n")] { (human(other)) },
                        }
                    } }
                } }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::TaskRecord;
    use serde_json::json;

    #[test]
    fn a_sweep_over_several_keys_gets_one_small_plot_per_swept_key() {
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
            json!(["config.lr", "config.batch"]),
            "the swept keys, in the configurations' order"
        );
        // Three values each: categories, a task at its value's place among them.
        assert_eq!(
            data["axes"][1],
            json!({"kind": "category", "names": ["0", "8", "16"]})
        );
        assert_eq!(
            data["points"],
            json!([[0, 0.0, [0.0, 0.0]], [1, 0.5, [1.0, 1.0]]]),
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
}
