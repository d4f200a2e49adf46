//! Word count, as a map and a reduce.
//!
//! Map (`wordcount FILE`): counts the words of one shard of a text, lines i, i+N, i+2N, … for
//! task i of N (JOBRUN_INDEX, JOBRUN_COUNT); prints `word: count` lines, most frequent first,
//! and leaves `counts.tsv` and `result.json` (lines, words, distinct words) in
//! JOBRUN_OUTPUT_DIR.
//!
//! Reduce (`wordcount --reduce`): adds up every shard's `counts.tsv` under JOBRUN_INPUTS_DIR,
//! prints the top words of the whole text and leaves `counts.tsv` and `result.json` (total and
//! distinct words, the top ten) in its own JOBRUN_OUTPUT_DIR.
//!
//! No dependencies, so it builds as a static binary with plain rustc.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn fail(message: String) -> ! {
    eprintln!("{message}");
    std::process::exit(2)
}

fn main() {
    let arg = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/data/corpus.txt".into());
    let counts = if arg == "--reduce" {
        reduce()
    } else {
        map(&arg)
    };
    let sorted = most_frequent_first(counts);
    for (word, n) in &sorted {
        println!("{word}: {n}");
    }
}

/// The words of this task's shard of the text.
fn map(path: &str) -> HashMap<String, u64> {
    let index = env_num("JOBRUN_INDEX", 0);
    let count = env_num("JOBRUN_COUNT", 1).max(1);
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| fail(format!("cannot read {path}: {e}")));
    let mut counts: HashMap<String, u64> = HashMap::new();
    let mut lines = 0;
    for line in text.lines().skip(index).step_by(count) {
        lines += 1;
        for word in line
            .split(|c: char| !(c.is_alphanumeric() || c == '\''))
            .map(|w| w.trim_matches('\'').to_lowercase())
            .filter(|w| !w.is_empty())
        {
            *counts.entry(word).or_default() += 1;
        }
    }
    let words: u64 = counts.values().sum();
    eprintln!(
        "shard {index}/{count}: {lines} lines, {words} words, {} distinct",
        counts.len()
    );
    let result = format!(
        "{{\"lines\": {lines}, \"words\": {words}, \"distinct\": {}}}",
        counts.len()
    );
    keep(&counts, &result);
    counts
}

/// Every shard's counts, added up.
fn reduce() -> HashMap<String, u64> {
    let inputs = std::env::var("JOBRUN_INPUTS_DIR")
        .unwrap_or_else(|_| fail("--reduce runs as a jobrun reduce (JOBRUN_INPUTS_DIR)".into()));
    let mut shards: Vec<PathBuf> = std::fs::read_dir(&inputs)
        .unwrap_or_else(|e| fail(format!("cannot list {inputs}: {e}")))
        .flatten()
        .map(|e| e.path().join("counts.tsv"))
        .collect();
    shards.sort();
    let mut counts: HashMap<String, u64> = HashMap::new();
    for shard in &shards {
        let text = std::fs::read_to_string(shard)
            .unwrap_or_else(|e| fail(format!("cannot read {}: {e}", shard.display())));
        for line in text.lines() {
            let (word, n) = line
                .split_once('\t')
                .unwrap_or_else(|| fail(format!("{}: bad line {line:?}", shard.display())));
            *counts.entry(word.to_string()).or_default() += n.parse::<u64>().unwrap_or(0);
        }
    }
    let words: u64 = counts.values().sum();
    let top: Vec<String> = most_frequent_first(counts.clone())
        .into_iter()
        .take(10)
        .map(|(w, n)| format!("[\"{w}\", {n}]"))
        .collect();
    eprintln!(
        "{} shards: {words} words, {} distinct",
        shards.len(),
        counts.len()
    );
    let result = format!(
        "{{\"shards\": {}, \"words\": {words}, \"distinct\": {}, \"top\": [{}]}}",
        shards.len(),
        counts.len(),
        top.join(", ")
    );
    keep(&counts, &result);
    counts
}

fn most_frequent_first(counts: HashMap<String, u64>) -> Vec<(String, u64)> {
    let mut sorted: Vec<(String, u64)> = counts.into_iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    sorted
}

/// `counts.tsv` and `result.json` in JOBRUN_OUTPUT_DIR (when jobrun gave one).
fn keep(counts: &HashMap<String, u64>, result: &str) {
    let Ok(dir) = std::env::var("JOBRUN_OUTPUT_DIR") else {
        return;
    };
    let dir = Path::new(&dir);
    let tsv: String = most_frequent_first(counts.clone())
        .into_iter()
        .map(|(w, n)| format!("{w}\t{n}\n"))
        .collect();
    for (name, body) in [("counts.tsv", tsv.as_str()), ("result.json", result)] {
        std::fs::write(dir.join(name), body)
            .unwrap_or_else(|e| fail(format!("cannot write {name} in {}: {e}", dir.display())));
    }
}
