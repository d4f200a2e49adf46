//! What one delivery asks for: a jobrun task message, or one object of an S3 event (whose
//! configuration is the object), parsed into [`Work`] or a reason to drop it.

use super::Agent;
use crate::wire::TaskMessage;
use chrono::Utc;
use std::collections::BTreeMap;
use std::time::Duration;

/// A delivery, parsed: a jobrun task, or one object of an S3 event.
pub(super) struct Work {
    pub(super) run_id: String,
    /// The index as used in result keys (a number, or a digest of the object for S3 events).
    pub(super) key_index: String,
    pub(super) index: Option<usize>,
    pub(super) attempt: u32,
    pub(super) argv_tail: Option<Vec<String>>,
    pub(super) env: BTreeMap<String, String>,
    pub(super) timeout: Duration,
    pub(super) s3_object: Option<String>,
    pub(super) stage: crate::record::Stage,
}

pub(super) enum Parsed {
    Work(Work),
    Ignore(String),
    Bad(String),
}

impl Agent {
    pub(super) fn parse(&self, body: &str, receives: u32) -> Parsed {
        let value: serde_json::Value = match serde_json::from_str(body) {
            Ok(v) => v,
            Err(e) => return Parsed::Bad(format!("not JSON: {e}")),
        };
        if value.get("jobrun").is_some() {
            let m: TaskMessage = match serde_json::from_value(value) {
                Ok(m) => m,
                Err(e) => return Parsed::Bad(format!("not a jobrun task: {e}")),
            };
            let mut env = m.env.clone();
            env.insert("JOBRUN_RUN_ID".into(), m.run_id.clone());
            env.insert("JOBRUN_JOB".into(), m.job.clone());
            env.insert("JOBRUN_INDEX".into(), m.index.to_string());
            env.insert("JOBRUN_COUNT".into(), m.count.to_string());
            env.insert("JOBRUN_STAGE".into(), m.stage.as_str().into());
            let attempt = m.attempt + receives.saturating_sub(1);
            env.insert("JOBRUN_ATTEMPT".into(), attempt.to_string());
            match (&m.config, &m.config_url) {
                (_, Some(url)) => {
                    env.insert("JOBRUN_CONFIG_URL".into(), url.clone());
                }
                (Some(c), None) => {
                    env.insert("JOBRUN_CONFIG".into(), c.to_string());
                }
                (None, None) => {}
            }
            return Parsed::Work(Work {
                run_id: m.run_id,
                key_index: m.index.to_string(),
                index: Some(m.index),
                attempt,
                argv_tail: m.command,
                env,
                timeout: Duration::from_secs(m.timeout_secs.max(1)),
                s3_object: None,
                stage: m.stage,
            });
        }
        if value.get("Event").and_then(|e| e.as_str()) == Some("s3:TestEvent") {
            return Parsed::Ignore("an S3 test event".into());
        }
        match value["Records"].as_array().and_then(|r| r.first()) {
            Some(record) => self.s3_event(record, receives),
            None => Parsed::Bad("neither a jobrun task nor an S3 event".into()),
        }
    }

    /// One object of an S3 event: a task whose configuration is the object.
    fn s3_event(&self, record: &serde_json::Value, receives: u32) -> Parsed {
        let bucket = record["s3"]["bucket"]["name"].as_str().unwrap_or_default();
        let raw = record["s3"]["object"]["key"].as_str().unwrap_or_default();
        // Event keys are URL-encoded, with '+' for spaces.
        let key = percent_encoding::percent_decode_str(&raw.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned();
        if bucket.is_empty() || key.is_empty() {
            return Parsed::Bad("an S3 event without bucket or key".into());
        }
        let day = Utc::now().format("%Y%m%d");
        let run_id = format!("s3-{day}");
        let object = format!("s3://{bucket}/{key}");
        // One task per upload: a new upload of the same key is a new task, a redelivery of
        // the same event is not.
        let version = record["s3"]["object"]["sequencer"]
            .as_str()
            .or(record["s3"]["object"]["eTag"].as_str())
            .unwrap_or_default();
        let digest = {
            use sha2::Digest;
            format!(
                "{:x}",
                sha2::Sha256::digest(format!("{object}#{version}").as_bytes())
            )[..16]
                .to_string()
        };
        let config = serde_json::json!({"bucket": bucket, "key": key});
        // The job's command template, filled for this object ({config.key}, …).
        // An object key is data: in a shell script it is quoted like any value.
        let argv_tail =
            jobrun_wire::placeholders::fill_command(&self.default_command, 0, 1, &run_id, &config);
        let argv_tail = match argv_tail {
            Ok(argv) => Some(argv),
            Err(e) => return Parsed::Bad(format!("the command does not fit an S3 event: {e}")),
        };
        let mut env = BTreeMap::new();
        env.insert("S3_BUCKET".into(), bucket.to_string());
        env.insert("S3_KEY".into(), key.clone());
        env.insert("JOBRUN_RUN_ID".into(), run_id.clone());
        env.insert("JOBRUN_JOB".into(), self.args.job.clone());
        env.insert("JOBRUN_ATTEMPT".into(), receives.to_string());
        env.insert("JOBRUN_CONFIG".into(), config.to_string());
        Parsed::Work(Work {
            run_id,
            key_index: digest,
            index: None,
            attempt: receives,
            argv_tail,
            env,
            timeout: self.args.timeout,
            s3_object: Some(object),
            stage: crate::record::Stage::Map,
        })
    }
}
