//! Counts the words of one shard of a text: lines i, i+N, i+2N, … for task i of N.
//! Reads JOBRUN_INDEX and JOBRUN_COUNT (set by jobrun); prints `word: count` lines, most
//! frequent first. No dependencies, so it builds as a static binary with plain rustc.

use std::collections::HashMap;

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let path = std::env::args().nth(1).unwrap_or_else(|| "/data/corpus.txt".into());
    let index = env_num("JOBRUN_INDEX", 0);
    let count = env_num("JOBRUN_COUNT", 1).max(1);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("cannot read {path}: {e}");
            std::process::exit(2);
        }
    };
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
    let mut sorted: Vec<(String, u64)> = counts.into_iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let words: u64 = sorted.iter().map(|(_, n)| n).sum();
    eprintln!("shard {index}/{count}: {lines} lines, {words} words, {} distinct", sorted.len());
    for (word, n) in sorted {
        println!("{word}: {n}");
    }
}
