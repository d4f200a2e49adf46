//! Schema 1, pinned: `testdata/run-schema-1.json` is a run record as jobrun wrote it when the
//! schema was fixed (an ECS queue run with a reduce, retries, notifications, prices, bills and
//! results: every part of the record). Other machines read records from the job's bucket, so a
//! field renamed in the record or its settings (`schema.rs`) must fail here, not there.
//! `JOBRUN_BLESS=1 cargo test record::golden` writes the file again, for a new schema only.

use super::schema::{CapacityKind, NotifyEvent, NotifySpec, Prices, RetryExitCodes};
use super::*;

const GOLDEN: &str = "src/record/testdata/run-schema-1.json";

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_796_000_000 + secs, 0).unwrap()
}

/// The record's ECS place, built through today's types.
fn schema_1_ecs() -> EcsRun {
    EcsRun {
        site: EcsSite {
            region: "us-east-1".into(),
            bucket: "jobrun-wc-123456789012-us-east-1".into(),
            ..Default::default()
        },
        profile: Some("work".into()),
        started_by: "20261202-120000-wc-ab12".into(),
        capacity: Capacity {
            kind: CapacityKind::Spot,
            on_demand_base: 1,
            spot_fallback: true,
        },
        rates: tests::rates(),
        driver: None,
        keep: Some(ImageHold {
            tag: "jobrun-keep-run-20261202-120000-wc-ab12".into(),
            held: true,
        }),
    }
}

/// The record of the file, built through today's types.
fn schema_1_record() -> RunRecord {
    let mut rec = tests::record("20261202-120000-wc-ab12", "wc");
    let ecs = schema_1_ecs();
    let queue = QueueRun {
        queue_url: "https://sqs.us-east-1.amazonaws.com/123456789012/jobrun-wc".into(),
        dlq_url: "https://sqs.us-east-1.amazonaws.com/123456789012/jobrun-wc-dlq".into(),
        service: "jobrun-wc-workers".into(),
        max_receive_count: 3,
        send_concurrency: 16,
        max_workers: 8,
        stats: None,
        first_worker_at: Some(at(30)),
        all_workers_at: Some(at(90)),
        worker_timelines: Default::default(),
    };
    rec.place = Place::Queue(ecs, queue);
    rec.image.platform = "linux/arm64".into();
    rec.created_at = at(0);
    rec.finished_at = Some(at(4000));
    rec.key = Some("monday".into());
    let s = &mut rec.settings;
    s.timeout_secs = 3600;
    s.max_attempts = 3;
    s.concurrency = 100;
    s.env = [("MODE".to_string(), "full".to_string())].into();
    s.retry_exit_codes = RetryExitCodes::Codes(vec![137, 143]);
    s.notify = Some(NotifySpec {
        webhook: Some("https://hooks.example.com/jobrun".into()),
        sns_topic: None,
        on: vec![NotifyEvent::Failure, NotifyEvent::Success],
        profile: None,
    });
    s.reduce = Some(ReduceSettings {
        when: ReduceWhen::AllSucceeded,
        image: None,
    });
    // As the price table said when the schema was fixed (a literal, so that a new table
    // does not look like a schema change).
    s.prices = Some(Prices {
        vcpu_hour: 0.03238,
        gb_hour: 0.00356,
        storage_gb_hour: 0.000111,
        public_ipv4_hour: 0.005,
        spot_discount: (0.5, 0.7),
        source: "us-east-1 of 2026-11-01, arm64".into(),
        instance: None,
    });
    s.dispatched = true;
    rec.notifications = vec![Delivery {
        event: "success".into(),
        to: "webhook".into(),
        at: at(4001),
        delivered: true,
        error: None,
    }];
    let mut won = TaskRecord::new(0, serde_json::json!({"lr": 0.1}), None);
    won.start(
        1,
        "arn:aws:ecs:us-east-1:123456789012:task/jobrun-wc/a".into(),
        at(60),
    );
    won.retry_attempt(1, "exit code 137", at(600));
    won.start(
        2,
        "arn:aws:ecs:us-east-1:123456789012:task/jobrun-wc/b".into(),
        at(620),
    );
    won.bill_span(1, Some(at(60)), Some(at(600)), true);
    won.bill_span(2, Some(at(620)), Some(at(2000)), true);
    won.exit_code = Some(0);
    won.set_result(Some(Ok(serde_json::json!({"loss": 0.25}))));
    won.succeed(at(2000));
    let mut reduce = TaskRecord::reduce(1, Some(vec!["python".into(), "pick.py".into()]));
    reduce.start(
        1,
        "arn:aws:ecs:us-east-1:123456789012:task/jobrun-wc/c".into(),
        at(2100),
    );
    reduce.exit_code = Some(0);
    reduce.succeed(at(4000));
    rec.tasks = vec![won, reduce];
    rec
}

#[test]
fn a_schema_1_record_reads_back_unchanged() {
    let built = schema_1_record();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(GOLDEN);
    if std::env::var_os("JOBRUN_BLESS").is_some() {
        let text = serde_json::to_string_pretty(&built).unwrap();
        std::fs::write(&path, text + "\n").unwrap();
    }
    let text = std::fs::read_to_string(&path).unwrap();
    let read: RunRecord = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{GOLDEN} no longer reads as a run record: {e}"));
    assert_eq!(read.schema, 1);
    assert_eq!(read, built, "{GOLDEN} reads as another record than it was");
    // Written again, it is the same JSON: no field renamed, dropped or added.
    let again = serde_json::to_value(&read).unwrap();
    let file: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        again, file,
        "the record's JSON changed: schema 1 is what {GOLDEN} says"
    );
}
