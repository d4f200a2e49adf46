//! The baseline for `bench/queue.sh`: a bare parallel loop of SendMessageBatch calls with the
//! AWS SDK for Rust, as a user would write it without jobrun (16 calls in flight, 10 messages
//! each, failed entries sent again). No record, no S3, no bookkeeping.
//!
//! Usage: cargo bench --bench sqs_baseline -- N QUEUE_URL   (prints the seconds it took)

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use futures_util::StreamExt;
use std::time::Instant;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let (n, url): (usize, String) = match args.as_slice() {
        [n, url, ..] => (n.parse().expect("N"), url.clone()),
        _ => {
            eprintln!("usage: sqs_baseline N QUEUE_URL");
            std::process::exit(2);
        }
    };
    let started = Instant::now();
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let body = |i: usize| {
        serde_json::json!({
            "jobrun": 1, "job": "qbench", "run_id": "baseline", "index": i, "count": n,
            "attempt": 1, "command": ["/task", i.to_string()],
            "config": {"n": i, "name": format!("config-{i}")}, "timeout_secs": 3600
        })
        .to_string()
    };
    let batches: Vec<Vec<usize>> = (0..n)
        .collect::<Vec<_>>()
        .chunks(10)
        .map(<[usize]>::to_vec)
        .collect();
    futures_util::stream::iter(batches)
        .map(|batch| {
            let (sqs, url) = (&sqs, &url);
            async move {
                let mut entries: Vec<SendMessageBatchRequestEntry> = batch
                    .iter()
                    .map(|&i| {
                        SendMessageBatchRequestEntry::builder()
                            .id(i.to_string())
                            .message_body(body(i))
                            .build()
                            .expect("id and body")
                    })
                    .collect();
                while !entries.is_empty() {
                    let out = sqs
                        .send_message_batch()
                        .queue_url(url)
                        .set_entries(Some(entries.clone()))
                        .send()
                        .await
                        .expect("SendMessageBatch");
                    let failed: Vec<&str> = out.failed().iter().map(|f| f.id()).collect();
                    entries.retain(|e| failed.contains(&e.id()));
                }
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    println!("{:.3}", started.elapsed().as_secs_f64());
}
