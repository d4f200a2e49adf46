//! GPUs on ECS through Managed Instances, against moto with the plugin playing them
//! (tests/moto/jobrun_moto.py): `up` makes the roles, instance profile and two capacity
//! providers, `submit` prices the run on an instance type and its tasks ask the job's
//! providers (direct and queue mode), `down` leaves nothing. What ECS and IAM hold is read
//! from moto itself.

use crate::ecs::{ecs, tasks_listed};
use crate::harness::Test;
use crate::services::{self, Service};
use serde_json::{Value, json};

const GPU_JOB: &str =
    "gpu = 1\ngpu_type = \"t4\"\ncpu = 2\nmemory = \"8GB\"\ninstance_idle = \"2m\"\n";

/// The test job's `[resources]` (0.25 vCPU, 512 MB) replaced by `resources`.
fn with_resources(t: &Test, resources: &str) {
    let toml = std::fs::read_to_string(t.dir.path().join("jobrun.toml")).unwrap();
    let old = "[resources]\ncpu = 0.25\nmemory = \"512MB\"\n";
    assert!(toml.contains(old), "{toml}");
    t.write(
        "jobrun.toml",
        &toml.replace(old, &format!("[resources]\n{resources}")),
    );
}

/// An ECS job of the test task with `resources`, built and pushed against `moto`.
fn gpu_job(moto: &Service, resources: &str) -> Test {
    let reg = services::plain_registry();
    let t = Test::ecs_task(&format!("[ecr]\nregistry_endpoint = \"{}\"\n", reg.host()))
        .envs(services::moto_env_for(moto));
    with_resources(&t, resources);
    let b = t.run(&["build", "--push"]);
    assert_eq!(b.status, 0, "build --push: {}", b.stderr);
    t
}

fn changes(report: &Value, resource: &str) -> Vec<String> {
    report["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["resource"] == resource)
        .map(|c| c["action"].as_str().unwrap().to_string())
        .collect()
}

fn providers(moto: &Service, cluster: &str, names: &[String]) -> Vec<Value> {
    let out = ecs(
        moto,
        "DescribeCapacityProviders",
        json!({"capacityProviders": names, "cluster": cluster}),
    );
    out["capacityProviders"].as_array().unwrap().clone()
}

/// Sets an EC2 vCPU quota as Service Quotas would once an increase is granted.
fn set_quota(moto: &Service, code: &str, vcpu: f64) {
    crate::quotas::set_service_quota(moto, "ec2", code, vcpu);
}

fn iam(moto: &Service, params: &[(&str, &str)]) -> Result<String, (u16, String)> {
    let mut all = vec![("Version", "2010-05-08")];
    all.extend_from_slice(params);
    services::query_call(moto, "iam", &all)
}

/// `up` on a job with `gpu = 1`: the plan names the Managed Instances side, `up` makes it as
/// AWS documents it, a second `up` changes nothing.
fn up_gpu_job(t: &Test) -> Value {
    let plan = t.run(&["up", "--dry-run"]);
    assert_eq!(plan.status, 0, "{}", plan.stderr);
    for line in [
        "infrastructure role",
        "instance role",
        "instance profile",
        "Managed Instances, Spot, 1 t4 GPU, idle instances retired after 2m",
        "Managed Instances, on-demand",
    ] {
        assert!(plan.stdout.contains(line), "{line}: {}", plan.stdout);
    }
    let up = t.run(&["up", "-o", "json"]);
    assert_eq!(up.status, 0, "{}", up.stderr);
    let up = up.json();
    assert_eq!(changes(&up, "capacity provider"), ["create", "create"]);
    let again = t.run(&["up", "-o", "json"]);
    assert_eq!(again.status, 0, "{}", again.stderr);
    let again = again.json();
    for c in again["changes"].as_array().unwrap() {
        assert!(
            c["action"] == "unchanged" || c["action"] == "use",
            "a converged account: {c}"
        );
    }
    up
}

#[test]
fn a_gpu_job_runs_on_managed_instances_and_down_removes_them() {
    // A moto of its own: the EC2 quotas are the account's.
    let own = services::own_moto();
    let moto = &own;
    let t = gpu_job(moto, GPU_JOB);
    let job = t.name.clone();
    let up = up_gpu_job(&t);
    let o = &up["outputs"];
    let cluster = o["cluster"].as_str().unwrap().to_string();
    let (spot, on_demand) = (
        format!("jobrun-{job}-spot"),
        format!("jobrun-{job}-on-demand"),
    );
    assert_eq!(
        o["instances"],
        json!({"spot": spot, "on_demand": on_demand})
    );

    // The providers as ECS holds them: instance requirements from [resources], x86_64 (GPU
    // instances are), Spot and on-demand, the job's network, the idle delay.
    let found = providers(moto, &cluster, &[spot.clone(), on_demand.clone()]);
    assert_eq!(found.len(), 2, "{found:?}");
    for p in &found {
        let mi = &p["managedInstancesProvider"];
        let lt = &mi["instanceLaunchTemplate"];
        let r = &lt["instanceRequirements"];
        assert_eq!(r["acceleratorCount"]["min"], 1, "{p}");
        assert_eq!(r["acceleratorNames"], json!(["t4"]));
        assert_eq!(r["acceleratorTypes"], json!(["gpu"]));
        assert_eq!(
            (r["vCpuCount"]["min"].clone(), r["memoryMiB"]["min"].clone()),
            (json!(2), json!(8192))
        );
        assert_eq!(r["cpuManufacturers"], json!(["intel", "amd"]));
        assert_eq!(mi["infrastructureOptimization"]["scaleInAfter"], 120);
        let option = if p["name"] == spot {
            "SPOT"
        } else {
            "ON_DEMAND"
        };
        assert_eq!(lt["capacityOptionType"], option);
        assert_eq!(
            lt["networkConfiguration"]["subnets"]
                .as_array()
                .unwrap()
                .len(),
            6
        );
        assert!(
            mi["infrastructureRoleArn"]
                .as_str()
                .unwrap()
                .ends_with(&format!("role/jobrun-{job}-instances"))
        );
        assert!(
            lt["ec2InstanceProfileArn"]
                .as_str()
                .unwrap()
                .ends_with(&format!("instance-profile/ecsInstanceRole-{job}"))
        );
    }
    let td = ecs(
        moto,
        "DescribeTaskDefinition",
        json!({"taskDefinition": o["task_definition"]}),
    );
    let td = &td["taskDefinition"];
    assert_eq!(td["requiresCompatibilities"], json!(["MANAGED_INSTANCES"]));
    assert_eq!(td["runtimePlatform"]["cpuArchitecture"], "X86_64");
    assert_eq!(
        td["containerDefinitions"][0]["resourceRequirements"],
        json!([{"type": "GPU", "value": "1"}])
    );
    let profile = iam(
        moto,
        &[
            ("Action", "GetInstanceProfile"),
            ("InstanceProfileName", &format!("ecsInstanceRole-{job}")),
        ],
    )
    .unwrap();
    assert!(
        profile.contains(&format!("<RoleName>ecsInstanceRole-{job}</RoleName>")),
        "{profile}"
    );
    let attached = iam(
        moto,
        &[
            ("Action", "ListAttachedRolePolicies"),
            ("RoleName", &format!("jobrun-{job}-instances")),
        ],
    )
    .unwrap();
    assert!(
        attached.contains("AmazonECSInfrastructureRolePolicyForManagedInstances"),
        "{attached}"
    );

    // Priced on an instance type before anything starts; the account's G and VT quotas are
    // 0 (as on many accounts): said up front, and a submit is refused, nothing made.
    let dry = t.run(&["submit", "--configs", "4", "--dry-run"]);
    assert_eq!(dry.status, 0, "{}", dry.stderr);
    for words in [
        "g4dn.xlarge",
        "ECS Managed Instances Spot (on-demand when Spot has none)",
        "1 task per instance",
        "at most 0 tasks of 4 vCPU at once under the account's EC2 G and VT instance vCPU quotas",
        "length: never ends",
    ] {
        assert!(dry.stdout.contains(words), "{words}: {}", dry.stdout);
    }
    let refused = t.run(&["submit", "--configs", "4"]);
    refused.assert_error(2, "no task can start");
    assert!(
        refused
            .stderr
            .contains("hint: ask AWS to raise quota L-3819A6DF"),
        "{}",
        refused.stderr
    );
    assert_eq!(t.run_count(), 0, "no run was made");
    set_quota(moto, "L-3819A6DF", 8.0);
    set_quota(moto, "L-DB2E81BA", 4.0);
    let dry = t.run(&["submit", "--configs", "4", "--dry-run"]);
    for words in [
        "at most 3 tasks of 4 vCPU at once",
        "for instances idling until ECS retires them",
    ] {
        assert!(dry.stdout.contains(words), "{words}: {}", dry.stdout);
    }

    // The run: every task on the job's Spot provider, launch type MANAGED_INSTANCES.
    let r = t.run(&["submit", "--configs", "4", "-o", "json"]);
    assert_eq!(r.status, 0, "{}\n{}", r.stdout, r.stderr);
    let run = t.only_run();
    assert_eq!(t.status(&run)["succeeded"], 4);
    let tasks = tasks_listed(moto, &cluster, ("startedBy", &run));
    assert_eq!(tasks.len(), 4);
    for task in &tasks {
        assert_eq!(task["capacityProviderName"], spot.as_str(), "{task}");
        assert_eq!(task["launchType"], "MANAGED_INSTANCES");
    }
    let rec = t.record(&run);
    assert_eq!(rec["settings"]["prices"]["instance"]["kind"], "g4dn.xlarge");
    let cost = t.run(&["status", &run]);
    assert!(cost.stdout.contains("g4dn.xlarge"), "{}", cost.stdout);

    // down: providers, profile, both roles; the cluster after its providers.
    let down = t.run(&["down", "--yes", "-o", "json"]);
    assert_eq!(down.status, 0, "{}", down.stderr);
    let down = down.json();
    assert_eq!(changes(&down, "capacity provider"), ["delete", "delete"]);
    for r in [
        "instance profile",
        "infrastructure role",
        "instance role",
        "ecs cluster",
    ] {
        assert_eq!(changes(&down, r), ["delete"], "{r}");
    }
    let left = providers(moto, &cluster, &[spot, on_demand]);
    assert!(left.iter().all(|p| p["status"] != "ACTIVE"), "{left:?}");
    assert!(
        iam(
            moto,
            &[
                ("Action", "GetInstanceProfile"),
                ("InstanceProfileName", &format!("ecsInstanceRole-{job}"))
            ]
        )
        .is_err()
    );
    assert!(
        iam(
            moto,
            &[
                ("Action", "GetRole"),
                ("RoleName", &format!("ecsInstanceRole-{job}"))
            ]
        )
        .is_err()
    );
}

#[test]
fn a_gpu_job_in_queue_mode_has_its_workers_on_the_jobs_provider() {
    use crate::queue::{Agent, COMMAND, queue_folder, watch_json};
    let moto = services::moto();
    let t = queue_folder(moto, COMMAND, "");
    with_resources(&t, GPU_JOB);
    let toml = std::fs::read_to_string(t.dir.path().join("jobrun.toml")).unwrap();
    let on_demand = toml.replace("[ecs]\n", "[ecs]\ncapacity = \"on-demand\"\n");
    t.write("jobrun.toml", &on_demand);
    let b = t.run(&["build", "--push"]);
    assert_eq!(b.status, 0, "build --push: {}", b.stderr);
    set_quota(moto, "L-DB2E81BA", 8.0);
    let job = t.name.clone();
    let up = up_gpu_job(&t);
    let o = &up["outputs"];
    let cluster = o["cluster"].as_str().unwrap();
    let service = ecs(
        moto,
        "DescribeServices",
        json!({"cluster": cluster, "services": [o["queue"]["service"]]}),
    );
    let strategy = &service["services"][0]["capacityProviderStrategy"];
    let on_demand = format!("jobrun-{job}-on-demand");
    assert_eq!(
        strategy[0]["capacityProvider"],
        on_demand.as_str(),
        "{service}"
    );
    let agent_td = ecs(
        moto,
        "DescribeTaskDefinition",
        json!({"taskDefinition": o["queue"]["agent_task_definition"]}),
    );
    let agent_td = &agent_td["taskDefinition"];
    assert_eq!(
        agent_td["requiresCompatibilities"],
        json!(["MANAGED_INSTANCES"])
    );
    let gpu = &agent_td["containerDefinitions"][0]["resourceRequirements"];
    assert_eq!(gpu, &json!([{"type": "GPU", "value": "1"}]));

    // The run, end to end: a worker (the agent, as the service would start it) drains it.
    let configs: Vec<Value> = (0..3)
        .map(|i| json!({"sleep": 0.1, "exit": 0, "n": i}))
        .collect();
    let run = t.submit_detached(&configs);
    let (code, log) = Agent::start(&t, &[]).wait();
    assert_eq!(code, 0, "{log}");
    let (code, status) = watch_json(&t, &run);
    assert_eq!((code, &status["succeeded"]), (0, &json!(3)), "{status}");

    let down = t.run(&["down", "--yes", "-o", "json"]);
    assert_eq!(down.status, 0, "{}", down.stderr);
    assert_eq!(
        changes(&down.json(), "capacity provider"),
        ["delete", "delete"]
    );
    let left = providers(moto, cluster, &[on_demand]);
    assert!(left.iter().all(|p| p["status"] != "ACTIVE"), "{left:?}");
}

/// A job whose tasks fit no instance jobrun has prices for: one error before anything is made.
#[test]
fn a_gpu_no_priced_instance_holds_is_one_error() {
    let moto = services::moto();
    let t = gpu_job(moto, "gpu = 8\ngpu_type = \"l4\"\n");
    let up = t.run(&["up"]);
    assert_eq!(up.status, 0, "{}", up.stderr);
    let r = t.run(&["submit", "--configs", "1"]);
    r.assert_error(2, "no instance type jobrun has prices for fits a task");
    assert!(r.stderr.contains("hint: "), "{}", r.stderr);
    assert_eq!(t.run_count(), 0, "no run was made");
    let down = t.run(&["down", "--yes"]);
    assert_eq!(down.status, 0, "{}", down.stderr);
}
