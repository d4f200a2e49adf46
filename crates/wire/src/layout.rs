//! The job's bucket layout, in one place. Everything jobrun keeps in the job's bucket — the
//! command line, the scheduled dispatcher and the jobrun inside a task alike — sits under
//! `jobs/<job>/`, and the IAM policies that let them (the task role, the dispatcher's role,
//! `iam-policy --for run`) grant exactly [`policy_pattern`]; a key built anywhere else could
//! drift out of what the policies allow, which moto never refuses and AWS does (AccessDenied).
//!
//! ```text
//! jobs/<job>/runs/<run>/…                  a run: its record, configs, receipts, results,
//!                                          outputs, cancel marker (the keys inside are `wire`'s)
//! jobs/<job>/keys/<key>.json               a `submit --key` claim
//! jobs/<job>/schedules/<name>/v000001.json a schedule's versions
//! jobs/<job>/skipped/<time>.json           a submission a schedule's overlap rule skipped
//! jobs/<job>/driving/<run>                 a run the job's driver in AWS has yet to finish
//! ```

/// The top folder of every job's objects (an S3 trigger must not watch it: its records would
/// start tasks).
pub const ROOT: &str = "jobs/";

/// The job's folder.
pub fn job_prefix(job: &str) -> String {
    format!("{ROOT}{job}/")
}

/// What the policies grant the job's roles and its user: every key under the job's folder, as
/// an IAM resource pattern (and `s3:prefix` condition) after the bucket.
pub fn policy_pattern(job: &str) -> String {
    format!("{}*", job_prefix(job))
}

/// The runs the job's driver in AWS has yet to finish: one empty object each, made before the
/// driver is started and deleted by it when the run ends.
pub fn driving_prefix(job: &str) -> String {
    format!("{}driving/", job_prefix(job))
}

/// The folder of the job's runs, one folder per run id.
pub fn runs_prefix(job: &str) -> String {
    format!("{}runs/", job_prefix(job))
}

/// A run's folder (what goes in it: `wire`).
pub fn run_prefix(job: &str, run_id: &str) -> String {
    format!("{}{run_id}/", runs_prefix(job))
}

/// A `submit --key` claim of the job (which run the key made).
pub fn key_claim_key(job: &str, key: &str) -> String {
    format!("{}keys/{key}.json", job_prefix(job))
}

/// The folder of a schedule's versions.
pub fn schedule_prefix(job: &str, name: &str) -> String {
    format!("{}schedules/{name}/", job_prefix(job))
}

/// The folder of the submissions a schedule's overlap rule skipped.
pub fn skipped_prefix(job: &str) -> String {
    format!("{}skipped/", job_prefix(job))
}

/// Whether an S3 prefix (a trigger's) and the layout's [`ROOT`] overlap: one is a prefix of the
/// other.
pub fn overlaps(prefix: &str) -> bool {
    ROOT.starts_with(prefix) || prefix.starts_with(ROOT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_folder_is_inside_the_jobs_own_and_only_its_own() {
        let folders = [
            runs_prefix("wc"),
            run_prefix("wc", "r1"),
            key_claim_key("wc", "monday"),
            schedule_prefix("wc", "weekly"),
            skipped_prefix("wc"),
        ];
        for f in &folders {
            assert!(f.starts_with("jobs/wc/"), "{f}");
            assert!(!f.starts_with(&job_prefix("w")), "{f}: not another job's");
        }
        assert_eq!(run_prefix("wc", "r1"), "jobs/wc/runs/r1/");
        assert_eq!(key_claim_key("wc", "k"), "jobs/wc/keys/k.json");
        assert_eq!(schedule_prefix("wc", "weekly"), "jobs/wc/schedules/weekly/");
        assert_eq!(policy_pattern("wc"), "jobs/wc/*");
        // A trigger on the bucket's root, on jobs/ or under it would see jobrun's own writes.
        for p in ["", "j", "jobs/", "jobs/wc/runs/"] {
            assert!(overlaps(p), "{p:?}");
        }
        for p in ["data/", "jobsdata/", "inputs/jobs/"] {
            assert!(!overlaps(p), "{p:?}");
        }
    }
}
