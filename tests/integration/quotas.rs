//! The account's Fargate vCPU quotas (tests/moto/jobrun_moto.py plays them: GetServiceQuota,
//! and RunTask beyond them answered with AWS's failure reason). Each test sets them on a moto
//! of its own: a quota is the account's.

use crate::ecs::fargate_job;
use crate::services::{self, Service};
use serde_json::json;
use std::time::Duration;

/// Sets a Fargate vCPU quota as Service Quotas would once an increase is granted.
fn set_quota(moto: &Service, code: &str, vcpu: f64) {
    set_service_quota(moto, "fargate", code, vcpu);
}

/// Sets a quota of `service` (`fargate`, `ec2`) as Service Quotas would once an increase is
/// granted.
pub(crate) fn set_service_quota(moto: &Service, service: &str, code: &str, vcpu: f64) {
    services::json_call(
        moto,
        "servicequotas",
        "ServiceQuotasV20190624.RequestServiceQuotaIncrease",
        json!({"ServiceCode": service, "QuotaCode": code, "DesiredValue": vcpu}),
    )
    .unwrap();
}

const ON_DEMAND: &str = "L-3032A538";
const SPOT: &str = "L-36FBB829";

#[test]
fn a_run_beyond_the_vcpu_quota_is_planned_under_it_and_waits_for_it() {
    let moto = services::own_moto();
    // 0.25 vCPU tasks: 4 fit on Spot, 2 more on on-demand (a Spot job falls back to it).
    set_quota(&moto, SPOT, 1.0);
    set_quota(&moto, ON_DEMAND, 0.5);
    let t = fargate_job(&moto, "");

    // A caller that may not read the quotas (GetServiceQuota's AccessDeniedException, Service
    // Quotas API Reference) plans under AWS's default, said as such.
    moto.fault(
        json!({"service": "servicequotas", "operation": "GetServiceQuota", "times": 2,
                      "status": 400, "code": "AccessDeniedException"}),
    );
    let denied = t.run(&["submit", "--configs", "12", "--dry-run"]);
    assert_eq!(denied.status, 0, "{}", denied.stderr);
    assert!(
        denied
            .stdout
            .contains("Spot quota 4000 vCPU, assumed AWS's default (not read: AccessDeniedException; new accounts often have less)"),
        "{}",
        denied.stdout
    );
    let plan = t.run(&["submit", "--configs", "12", "--dry-run"]);
    assert_eq!(plan.status, 0, "{}", plan.stderr);
    assert!(
        plan.stdout.contains(
            "quota: at most 6 tasks of 0.25 vCPU at once under the account's Fargate vCPU quotas \
             (Spot quota 1 vCPU, the account's; on-demand quota 0.5 vCPU, the account's); raise it \
             here: https://us-east-1.console.aws.amazon.com/servicequotas/home/services/fargate/quotas/L-36FBB829"
        ),
        "{}",
        plan.stdout
    );
    // Two waves of the 1 h timeout (no earlier run to learn from).
    assert!(
        plan.stdout
            .contains("length: about 2h00m (6 at once, each task its timeout)"),
        "{}",
        plan.stdout
    );
    let json = t
        .run(&["submit", "--configs", "12", "--dry-run", "-o", "json"])
        .json();
    assert_eq!(json["quotas"]["tasks"], 6);
    assert_eq!(json["estimate"]["at_once"], 6);

    // A run that cannot end in time is refused before anything is made.
    let refused = t.run(&["submit", "--configs", "12", "--max-duration", "90m"]);
    assert_eq!(refused.status, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains(
            "error: the run would take about 2h (6 at once), more than --max-duration 1h 30m"
        ),
        "{}",
        refused.stderr
    );
    assert!(
        refused
            .stderr
            .contains("hint: raise the account's Fargate vCPU quota")
    );
    assert!(!t.state.path().join("runs").exists() || t.run_count() == 0);

    // Beyond the quota, tasks wait for it: never a failed attempt.
    let gate = t.state.path().join("gate");
    std::fs::write(&gate, "").unwrap();
    let hold = json!({"fake": {"hold_while_file": gate}});
    let run = t.submit_detached(&vec![hold; 8]);
    let s = crate::driver::status_until(&t, &run, Duration::from_secs(120), |s| s["running"] == 6);
    assert_eq!(s["queued"], 2, "{s}");
    assert_eq!(
        s["waiting"],
        json!([{"tasks": 2, "for": "the account's Fargate vCPU quota"}]),
        "{s}"
    );
    let text = t.run(&["status", &run]).stdout;
    assert!(
        text.contains("waiting 2 for the account's Fargate vCPU quota"),
        "{text}"
    );
    std::fs::remove_file(&gate).unwrap();
    let w = t.run(&["watch", &run]);
    assert_eq!(w.status, 0, "{}\n{}", w.stdout, w.stderr);
    let s = t.status(&run);
    assert_eq!(s["succeeded"], 8);
    for task in s["tasks"].as_array().unwrap() {
        assert_eq!(task["attempts"], 1, "{task}");
    }
    // moto's proxy checked every request against AWS's service models.
    let model = &moto.proxy_stats()["model"];
    assert_eq!(model["violations"], json!([]), "{model}");
    let checked = model["operations"].to_string();
    for op in ["servicequotas:GetServiceQuota", "ecs:RunTask"] {
        assert!(checked.contains(op), "{op} not model-checked: {model}");
    }
}
