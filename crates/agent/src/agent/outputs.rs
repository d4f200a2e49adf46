//! A task's folders inside its container, for the jobrun that runs it there (queue agent or
//! direct-mode `jobrun task`): an empty `JOBRUN_OUTPUT_DIR` per attempt, for the reduce every
//! map task's outputs downloaded into `JOBRUN_INPUTS_DIR` (files read-only), and after the
//! command the output folder uploaded to the run's prefix with a receipt of what went up.
//! `JOBRUN_CHECKPOINT_DIR` is the task's across attempts: kept under the run's
//! `checkpoints/<index>/` while and after the job runs, restored before a later attempt.

use crate::outputs::{self, ResultRead, s3};
use crate::record::Stage;
use crate::wire::{CheckpointNote, Receipt, checkpoint_prefix, inputs_prefix, output_prefix};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where one attempt's outputs go in the job's bucket.
pub struct Target<'a> {
    pub s3: &'a aws_sdk_s3::Client,
    pub bucket: &'a str,
    pub job: &'a str,
    pub run_id: String,
    /// The task's index as its folder is named (a number; a digest for S3-event tasks).
    pub index: String,
    pub stage: Stage,
}

/// The folders of one attempt.
pub struct Folders {
    pub output: PathBuf,
    pub inputs: Option<PathBuf>,
    pub checkpoint: PathBuf,
}

impl Folders {
    /// `JOBRUN_OUTPUT_DIR` (and `JOBRUN_INPUTS_DIR`) for the command.
    pub fn env(&self, env: &mut BTreeMap<String, String>) {
        env.insert(
            "JOBRUN_OUTPUT_DIR".into(),
            self.output.to_string_lossy().into(),
        );
        if let Some(inputs) = &self.inputs {
            env.insert("JOBRUN_INPUTS_DIR".into(), inputs.to_string_lossy().into());
        }
        env.insert(
            "JOBRUN_CHECKPOINT_DIR".into(),
            self.checkpoint.to_string_lossy().into(),
        );
    }
}

impl Target<'_> {
    /// Empty folders for a new attempt; the reduce's inputs fetched first.
    pub async fn prepare(&self) -> Result<Folders, String> {
        let base = std::env::temp_dir().join("jobrun");
        let output = base.join("output");
        outputs::fresh_dir(&output).map_err(|e| format!("{}: {e}", output.display()))?;
        let checkpoint = base.join("checkpoint");
        outputs::fresh_dir(&checkpoint).map_err(|e| format!("{}: {e}", checkpoint.display()))?;
        if self.stage == Stage::Map {
            return Ok(Folders {
                output,
                inputs: None,
                checkpoint,
            });
        }
        let inputs = base.join("inputs");
        outputs::fresh_dir(&inputs).map_err(|e| format!("{}: {e}", inputs.display()))?;
        let prefix = inputs_prefix(self.job, &self.run_id);
        s3::download_prefix(self.s3, self.bucket, &prefix, &inputs)
            .await
            .map_err(|e| format!("cannot download the map tasks' outputs: {e}"))?;
        read_only(&inputs).map_err(|e| format!("{}: {e}", inputs.display()))?;
        Ok(Folders {
            output,
            inputs: Some(inputs),
            checkpoint,
        })
    }

    fn checkpoint_prefix(&self) -> String {
        checkpoint_prefix(self.job, &self.run_id, &self.index)
    }

    /// A later attempt's checkpoint folder: what the attempts before it kept (the number of
    /// files; none kept, or the first attempt: 0).
    pub async fn restore_checkpoint(&self, folders: &Folders, attempt: u32) -> Result<u64, String> {
        if attempt <= 1 {
            return Ok(0);
        }
        let prefix = self.checkpoint_prefix();
        s3::download_prefix(self.s3, self.bucket, &prefix, &folders.checkpoint)
            .await
            .map(|moved| moved.files)
            .map_err(|e| format!("cannot restore the checkpoint: {e}"))
    }

    /// Keeps the checkpoint folder's regular files under the task's checkpoint prefix (links
    /// and special files are not read, as for outputs); the number kept.
    pub async fn keep_checkpoint(&self, folders: &Folders) -> Result<u64, String> {
        let prefix = self.checkpoint_prefix();
        s3::upload_dir(self.s3, self.bucket, &folders.checkpoint, &prefix)
            .await
            .map(|moved| moved.files)
            .map_err(|e| format!("cannot keep the checkpoint: {e}"))
    }

    /// What the receipt says of the checkpoint folder.
    pub fn checkpoint_note(
        restored: Result<u64, String>,
        kept: Result<u64, String>,
    ) -> Option<CheckpointNote> {
        let error = [restored.as_ref().err(), kept.as_ref().err()]
            .into_iter()
            .flatten()
            .next()
            .cloned();
        let note = CheckpointNote {
            restored: restored.unwrap_or(0),
            kept: kept.unwrap_or(0),
            error,
        };
        (note != CheckpointNote::default()).then_some(note)
    }

    /// Uploads the output folder; the receipt says what went up, the result, and why an
    /// upload failed.
    pub async fn upload(&self, folders: &Folders) -> Receipt {
        let mut receipt = Receipt::default();
        let mut refused = None;
        match outputs::read_result(&folders.output) {
            Some(ResultRead::Kept(Ok(v))) => receipt.result = Some(v),
            Some(ResultRead::Kept(Err(e))) => receipt.result_error = Some(e),
            // A link or special file in result.json's place fails the attempt, as a failed
            // upload does (the other files still go up).
            Some(ResultRead::Refused(why)) => refused = Some(why),
            None => {}
        }
        let prefix = output_prefix(self.job, &self.run_id, &self.index, self.stage);
        match s3::upload_dir(self.s3, self.bucket, &folders.output, &prefix).await {
            Ok(moved) => {
                receipt.files = moved.files;
                receipt.bytes = moved.bytes;
                receipt.skipped = moved.skipped;
            }
            Err(e) => receipt.upload_error = Some(e.to_string()),
        }
        receipt.upload_error = receipt.upload_error.or(refused);
        receipt
    }
}

/// The inputs' files made read-only (their folders stay writable, so the next attempt can
/// clear them as any user).
fn read_only(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    // Files this jobrun downloaded itself (no link among them, see `download_prefix`).
    for (rel, _) in outputs::files_under(dir).map_err(std::io::Error::other)? {
        let path = dir.join(rel);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444))?;
    }
    Ok(())
}
