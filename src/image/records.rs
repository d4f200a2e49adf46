//! What was built and pushed for a job: `jobs/<job>/images.json` in the state directory.
//! `submit` and `up` on the Fargate target take the digest of the latest push from here, so they
//! run exactly what was pushed, never a mutable tag.

use crate::store::{Store, StoreError, write_json_atomic};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ImageRecord {
    pub image_id: String,
    pub tags: Vec<String>,
    pub platform: String,
    pub size_bytes: i64,
    pub built_at: DateTime<Utc>,
    #[serde(default)]
    pub pushes: Vec<PushRecord>,
    /// Set when the image carries jobrun (every ECS image, unless `[run] outputs = false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<super::AgentLayer>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PushRecord {
    pub registry: String,
    pub repository: String,
    pub digest: String,
    /// `registry/repository@digest`: how the image is referred to from now on.
    pub reference: String,
    pub tags: Vec<String>,
    pub pushed_at: DateTime<Utc>,
    /// How its layers were compressed (records of older jobruns: gzip, all they wrote).
    #[serde(default)]
    pub compression: crate::registry::Compression,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ImageRecords(pub Vec<ImageRecord>);

impl ImageRecords {
    pub fn load(store: &Store, job: &str) -> Result<ImageRecords, StoreError> {
        let p = crate::state::images_path(store, job);
        match std::fs::read(&p) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|source| StoreError::Corrupt { path: p, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ImageRecords::default()),
            Err(source) => Err(StoreError::Io { path: p, source }),
        }
    }

    pub fn save(&self, store: &Store, job: &str) -> Result<(), StoreError> {
        write_json_atomic(&crate::state::images_path(store, job), self)
    }

    /// Records a build; a rebuild of the same image moves it to the front.
    pub fn built(&mut self, record: ImageRecord) {
        let pushes = self
            .0
            .iter()
            .position(|r| r.image_id == record.image_id)
            .map(|i| self.0.remove(i).pushes)
            .unwrap_or_default();
        self.0.insert(0, ImageRecord { pushes, ..record });
        self.0.truncate(50);
    }

    /// The newest push of any image of this job, with the image it pushed.
    pub fn latest_push(&self) -> Option<(&ImageRecord, &PushRecord)> {
        self.0
            .iter()
            .flat_map(|r| r.pushes.iter().map(move |p| (r, p)))
            .max_by_key(|(_, p)| p.pushed_at)
    }

    /// Records a push of `image` (added to the records if they do not know it, e.g. built
    /// with another state directory).
    pub fn pushed(&mut self, image: ImageRecord, push: PushRecord) {
        if !self.0.iter().any(|r| r.image_id == image.image_id) {
            self.0.insert(0, image.clone());
        }
        if let Some(r) = self.0.iter_mut().find(|r| r.image_id == image.image_id) {
            r.pushes.retain(|p| p.reference != push.reference);
            r.pushes.insert(0, push);
        }
    }
}

impl fmt::Display for ImageRecords {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return write!(f, "no images built yet (jobrun build)");
        }
        write!(
            f,
            "{:<14} {:<12} {:>9}  {:<20} PUSHED",
            "IMAGE", "PLATFORM", "SIZE", "BUILT"
        )?;
        for r in &self.0 {
            write!(
                f,
                "\n{:<14} {:<12} {:>7.1}MB  {:<20} ",
                super::short_id(&r.image_id),
                r.platform,
                r.size_bytes as f64 / 1e6,
                r.built_at.format("%Y-%m-%d %H:%M:%S")
            )?;
            match r.pushes.first() {
                None => write!(f, "-")?,
                Some(p) => write!(
                    f,
                    "{} ({}; {})",
                    p.reference,
                    p.compression,
                    p.tags.join(", ")
                )?,
            }
            for p in r.pushes.iter().skip(1) {
                write!(f, "\n{:<60} {} ({})", "", p.reference, p.compression)?;
            }
            match r.agent.as_ref().map(|a| a.agent.as_ref()) {
                Some(Some(info)) => write!(f, "\n{:<14} in-AWS jobrun: {info}", "")?,
                Some(None) => write!(
                    f,
                    "\n{:<14} in-AWS jobrun at {}",
                    "",
                    r.agent.as_ref().map(|a| a.path.as_str()).unwrap_or("")
                )?,
                None => {}
            }
        }
        Ok(())
    }
}
