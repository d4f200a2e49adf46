//! Asks IAM's policy simulator (`iam:SimulatePrincipalPolicy`) whether the caller holds a
//! policy's statements, so `up` can list what is missing before it makes anything. The
//! simulator is asked about the caller's own principal (an assumed role's session is asked as
//! its role), with each statement's condition keys as context.

use crate::aws::Aws;
use serde_json::Value;

/// The caller as IAM's policy simulator names it: a user's ARN as it is, an assumed role's
/// session as its role (without a path, which the session ARN does not carry); `None` for the
/// account's root, which may do everything.
fn principal(identity: &str) -> Option<String> {
    let arn = crate::arn::Arn::parse(identity)?;
    match arn.resource.split('/').collect::<Vec<_>>().as_slice() {
        ["assumed-role", role, _session] => Some(format!(
            "arn:{}:iam::{}:role/{role}",
            arn.partition, arn.account
        )),
        ["root"] | [] => None,
        _ => Some(identity.to_string()),
    }
}

/// The condition keys and values a statement names, as the simulator's context.
fn context(statement: &Value, region: &str) -> Vec<aws_sdk_iam::types::ContextEntry> {
    use aws_sdk_iam::types::{ContextEntry, ContextKeyTypeEnum};
    // The region every call of `up` goes to, which callers' policies often condition on.
    let mut entries = vec![
        ContextEntry::builder()
            .context_key_name("aws:RequestedRegion")
            .context_key_type(ContextKeyTypeEnum::String)
            .context_key_values(region)
            .build(),
    ];
    let Some(ops) = statement["Condition"].as_object() else {
        return entries;
    };
    for (op, keys) in ops {
        for (key, value) in keys.as_object().into_iter().flatten() {
            let first = match value {
                Value::Array(v) => v.first().and_then(Value::as_str),
                v => v.as_str(),
            };
            let Some(v) = first else { continue };
            // `jobs/wc/*` as a StringLike pattern: the simulator is asked about a key under it.
            let v = if op.starts_with("StringLike") {
                v.replace('*', "x")
            } else {
                v.to_string()
            };
            let kind = ContextKeyTypeEnum::String;
            entries.push(
                ContextEntry::builder()
                    .context_key_name(key)
                    .context_key_type(kind)
                    .context_key_values(v)
                    .build(),
            );
        }
    }
    entries
}

/// What of `doc` the caller may not do, by IAM's policy simulator; `None` when the simulator
/// cannot be asked (no `iam:SimulatePrincipalPolicy`, the account's root, an emulator without
/// it): then `up` goes on, and AWS refuses what is missing as it comes.
pub async fn missing(aws: &Aws, identity: &str, doc: &Value) -> Option<Vec<String>> {
    let source = principal(identity)?;
    let iam = aws.iam_once();
    let mut denied = vec![];
    for st in doc["Statement"].as_array()? {
        let actions: Vec<String> = serde_json::from_value(st["Action"].clone()).ok()?;
        let resources: Vec<String> = serde_json::from_value(st["Resource"].clone()).ok()?;
        let resources: Vec<String> = resources.into_iter().filter(|r| r != "*").collect();
        let out = iam
            .simulate_principal_policy()
            .policy_source_arn(&source)
            .set_action_names(Some(actions))
            .set_resource_arns((!resources.is_empty()).then_some(resources))
            .set_context_entries(Some(context(st, &aws.region())))
            .send()
            .await;
        let out = match out {
            Ok(out) => out,
            Err(e) => {
                tracing::debug!(
                    "no policy simulation: {}",
                    crate::aws::AwsError::from_sdk("SimulatePrincipalPolicy", e)
                );
                return None;
            }
        };
        for r in out.evaluation_results() {
            // A decision that hangs on a context key the simulator was not given (MFA, source
            // IP, tags of the request, …) is unknown, not denied: only sure denials count.
            let unsure = !r.missing_context_values().is_empty();
            if !unsure
                && r.eval_decision() != &aws_sdk_iam::types::PolicyEvaluationDecisionType::Allowed
            {
                let on = r
                    .eval_resource_name()
                    .filter(|n| *n != "*")
                    .unwrap_or("any resource");
                denied.push(format!("{} on {on}", r.eval_action_name()));
            }
        }
    }
    denied.sort();
    denied.dedup();
    Some(denied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_simulated_principal_of_a_session_is_its_role() {
        assert_eq!(
            principal("arn:aws-cn:sts::1:assumed-role/ci/build-7").as_deref(),
            Some("arn:aws-cn:iam::1:role/ci")
        );
        assert_eq!(
            principal("arn:aws:iam::1:user/ops/ann").as_deref(),
            Some("arn:aws:iam::1:user/ops/ann")
        );
        assert_eq!(principal("arn:aws:iam::1:root"), None);
    }
}
