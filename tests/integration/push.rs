//! `jobrun build --push` / `push` / `images`: bytes go to a real registry (Debian's
//! docker-registry on loopback), ECR API calls to moto. What was pushed is checked through the
//! registry's own HTTP API and moto's API, not through jobrun.

use crate::harness::Test;
use crate::services::{self, Service};
use serde_json::Value;

const MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// What a client that pulls both kinds asks for (a registry answers an OCI manifest only to a
/// client that accepts it).
pub(crate) const EITHER: &str = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json";

/// The manifest at `repo:reference`, read from the registry.
fn pushed_manifest(reg: &Service, repo: &str, reference: &str) -> Value {
    serde_json::from_slice(
        &services::registry_get(reg, &format!("/v2/{repo}/manifests/{reference}"), EITHER).unwrap(),
    )
    .unwrap()
}

/// The architecture in the config of the manifest at `repo:reference`, read from the registry.
fn pushed_architecture(reg: &Service, repo: &str, reference: &str) -> String {
    let manifest = pushed_manifest(reg, repo, reference);
    let config_digest = manifest["config"]["digest"].as_str().unwrap();
    let config: Value = serde_json::from_slice(
        &services::registry_get(reg, &format!("/v2/{repo}/blobs/{config_digest}"), "*/*").unwrap(),
    )
    .unwrap();
    config["architecture"].as_str().unwrap().to_string()
}

/// The media types of a pushed manifest: its own, its config's, and each layer's.
fn media_types(reg: &Service, repo: &str, reference: &str) -> (String, String, Vec<String>) {
    let m = pushed_manifest(reg, repo, reference);
    let s = |v: &Value| v.as_str().unwrap().to_string();
    let layers = m["layers"].as_array().unwrap();
    (
        s(&m["mediaType"]),
        s(&m["config"]["mediaType"]),
        layers.iter().map(|l| s(&l["mediaType"])).collect(),
    )
}

fn with_registry(t: &Test, registry: &str) {
    let toml = std::fs::read_to_string(t.dir.path().join("jobrun.toml")).unwrap();
    t.write(
        "jobrun.toml",
        &toml.replace(
            "[resources]",
            &format!("[image]\nregistry = \"{registry}\"\n\n[resources]"),
        ),
    );
}

#[test]
fn push_to_an_oci_registry_and_again_uploads_nothing() {
    let reg = services::plain_registry();
    let t = Test::with_task(r#"command = ["/task"]"#);
    with_registry(&t, &format!("{}/team", reg.host()));
    let repo = format!("team/{}", t.name);

    let first = t.run(&["build", "--push", "--output", "json"]);
    assert_eq!(first.status, 0, "{}", first.stderr);
    let pushed = first.json();
    let digest = pushed["digest"].as_str().unwrap().to_string();
    assert_eq!(
        pushed["reference"],
        format!("{}/{repo}@{digest}", reg.host())
    );
    assert_eq!(pushed["layers_skipped"], 0);
    assert!(pushed["layers_uploaded"].as_u64().unwrap() >= 1);
    // Another registry than ECR: gzip in a Docker v2 manifest unless the job says otherwise.
    assert_eq!(pushed["compression"], "gzip");
    let (kind, config, layers) = media_types(reg, &repo, &digest);
    assert_eq!(kind, MANIFEST);
    assert_eq!(config, "application/vnd.docker.container.image.v1+json");
    assert!(
        layers
            .iter()
            .all(|l| l == "application/vnd.docker.image.rootfs.diff.tar.gzip"),
        "{layers:?}"
    );
    let uploads = reg.uploads(&repo);
    assert_eq!(
        uploads as u64,
        pushed["layers_uploaded"].as_u64().unwrap() + 1,
        "layers and the config"
    );

    // The registry has it by digest and by the content tag, for the host's architecture.
    let host_arch = if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "amd64"
    };
    assert_eq!(pushed_architecture(reg, &repo, &digest), host_arch);
    let content_tag = pushed["tags"][0].as_str().unwrap();
    assert_eq!(
        content_tag,
        &pushed["image_id"].as_str().unwrap()["sha256:".len().."sha256:".len() + 12]
    );
    assert_eq!(pushed_architecture(reg, &repo, content_tag), host_arch);

    // Pushing the unchanged image again uploads no blob at all.
    let second = t.run(&["push", "--output", "json"]);
    assert_eq!(second.status, 0, "{}", second.stderr);
    assert_eq!(second.json()["layers_uploaded"], 0);
    assert_eq!(second.json()["digest"], digest.as_str());
    assert_eq!(
        reg.uploads(&repo),
        uploads,
        "the registry saw no new upload"
    );
    assert!(
        second.stderr.contains("already exists"),
        "skipped layers are reported: {}",
        second.stderr
    );

    // `images` records what was built and where it went.
    let images = t.run(&["images", "--output", "json"]).json();
    assert_eq!(images[0]["pushes"][0]["digest"], digest.as_str());
    assert_eq!(images[0]["platform"], format!("linux/{host_arch}"));
}

#[test]
fn arm64_image_to_ecr_through_moto() {
    let reg = services::plain_registry();
    let t = Test::ecs_task(&format!(
        "[ecr]\nrepository_prefix = \"ml\"\nkeep_images = 7\nregistry_endpoint = \"{}\"\n",
        reg.host()
    ))
    .envs(services::moto_env());
    let repo = format!("ml/{}", t.name);

    let r = t.run(&["build", "--push", "--output", "json"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let pushed = r.json();
    assert_eq!(
        pushed["platform"], "linux/arm64",
        "the ecs target builds for arm64 by default"
    );
    assert_eq!(pushed["repository_created"], true);
    let digest = pushed["digest"].as_str().unwrap();
    assert_eq!(pushed_architecture(reg, &repo, digest), "arm64");
    // An ECS job's push to ECR: zstd layers in an OCI image manifest.
    assert_eq!(pushed["compression"], "zstd");
    let (kind, config, layers) = media_types(reg, &repo, digest);
    assert_eq!(kind, OCI_MANIFEST);
    assert_eq!(config, "application/vnd.oci.image.config.v1+json");
    assert!(
        layers
            .iter()
            .all(|l| l == "application/vnd.oci.image.layer.v1.tar+zstd"),
        "{layers:?}"
    );
    let images = t.run(&["images"]);
    assert!(
        images.stdout.contains("; zstd;") || images.stdout.contains("(zstd;"),
        "{}",
        images.stdout
    );

    // The repository, as ECR (moto) has it.
    let described = services::ecr_call(
        "DescribeRepositories",
        serde_json::json!({"repositoryNames": [repo]}),
    )
    .unwrap();
    let repository = &described["repositories"][0];
    assert_eq!(repository["imageScanningConfiguration"]["scanOnPush"], true);
    assert_eq!(
        repository["encryptionConfiguration"]["encryptionType"],
        "AES256"
    );
    let policy = services::ecr_call(
        "GetLifecyclePolicy",
        serde_json::json!({"repositoryName": repo}),
    )
    .unwrap();
    let policy: Value =
        serde_json::from_str(policy["lifecyclePolicyText"].as_str().unwrap()).unwrap();
    // Images schedules pinned first (tagged jobrun-keep-), then the newest `keep_images`.
    assert_eq!(
        policy["rules"][0]["selection"]["tagPrefixList"],
        serde_json::json!(["jobrun-keep-"])
    );
    assert_eq!(policy["rules"][1]["selection"]["tagStatus"], "any");
    assert_eq!(policy["rules"][1]["selection"]["countNumber"], 7);

    // The login was decoded and cached, readable by the user only.
    let auth_dir = t.state.path().join("auth");
    let cached: Vec<_> = std::fs::read_dir(&auth_dir).unwrap().flatten().collect();
    assert_eq!(cached.len(), 1);
    let login: Value = serde_json::from_slice(&std::fs::read(cached[0].path()).unwrap()).unwrap();
    assert_eq!(login["username"], "AWS");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        cached[0].metadata().unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Again: the repository is found, not created, and nothing is uploaded.
    let again = t.run(&["push", "--output", "json"]);
    assert_eq!(again.status, 0, "{}", again.stderr);
    assert_eq!(again.json()["repository_created"], false);
    assert_eq!(again.json()["layers_uploaded"], 0);

    // An image whose architecture is not the target's is refused before anything is sent.
    let uploads = reg.uploads(&repo);
    assert_eq!(t.run(&["build", "--platform", "linux/amd64"]).status, 0);
    let refused = t.run(&["push"]);
    refused.assert_error(2, "is linux/amd64 but the job's platform is linux/arm64");
    assert_eq!(reg.uploads(&repo), uploads);
}

#[test]
fn registry_down_or_refusing_credentials() {
    let t = Test::with_task(r#"command = ["/task"]"#);
    with_registry(&t, &format!("127.0.0.1:{}/x", services::free_port()));
    t.run(&["build", "--push"])
        .assert_error(3, "cannot reach registry 127.0.0.1:");

    let reg = services::auth_registry();
    let t = Test::with_task(r#"command = ["/task"]"#);
    with_registry(&t, &reg.host());
    t.run(&["build", "--push"]).assert_error(
        3,
        &format!("registry {} refused the credentials", reg.host()),
    );

    // With the password in the Docker configuration, the same push goes through.
    let docker_config = tempfile::tempdir().unwrap();
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode("jobrun:s3cret");
    std::fs::write(
        docker_config.path().join("config.json"),
        serde_json::json!({"auths": {reg.host(): {"auth": auth}}}).to_string(),
    )
    .unwrap();
    let t = t.env("DOCKER_CONFIG", docker_config.path().to_str().unwrap());
    let ok = t.run(&["push"]);
    assert_eq!(ok.status, 0, "{}", ok.stderr);

    // The same password from a credential helper (`credHelpers`), run as the docker CLI runs
    // it: `docker-credential-<name> get`, the registry on stdin. A helper holding nothing for
    // the registry (its "credentials not found" answer) is no credentials; a broken one is
    // an error naming it.
    let helpers = tempfile::tempdir().unwrap();
    let helper = |name: &str, body: &str| {
        let path = helpers.path().join(format!("docker-credential-{name}"));
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    let host = reg.host();
    helper(
        "knows",
        &format!(
            r#"read h; [ "$1" = get ] && [ "$h" = "{host}" ] && echo '{{"ServerURL":"{host}","Username":"jobrun","Secret":"s3cret"}}' || exit 1"#
        ),
    );
    // Each reads the request first, as real helpers do (one that exits before reading makes
    // the write of the host name fail with EPIPE now and then).
    helper(
        "empty",
        "read h; echo 'credentials not found in native keychain'; exit 1",
    );
    helper(
        "broken",
        "read h; echo 'the keychain is locked' >&2; exit 1",
    );
    let path = format!(
        "{}:{}",
        helpers.path().display(),
        std::env::var("PATH").unwrap()
    );
    let t = t.env("PATH", &path);
    let with_helper = |name: &str| {
        std::fs::write(
            docker_config.path().join("config.json"),
            serde_json::json!({"credHelpers": {host.clone(): name}}).to_string(),
        )
        .unwrap();
        t.run(&["push"])
    };
    let ok = with_helper("knows");
    assert_eq!(ok.status, 0, "{}", ok.stderr);
    with_helper("empty").assert_error(3, "refused the credentials");
    let broken = with_helper("broken");
    assert_ne!(broken.status, 0);
    assert!(
        broken.stderr.contains("docker-credential-broken")
            && broken.stderr.contains("the keychain is locked"),
        "{}",
        broken.stderr
    );
}

#[test]
fn nowhere_to_push_and_no_aws_region() {
    let t = Test::with_task(r#"command = ["/task"]"#);
    t.build();
    t.run(&["push"]).assert_error(2, "nowhere to push");

    let t = Test::ecs_task("");
    let r = t.run(&["build", "--push"]);
    r.assert_error(2, "no AWS region is set");
    let t = t.env("AWS_REGION", "us-east-1");
    t.run(&["push"])
        .assert_error(2, "no AWS credentials were found");
}

#[test]
fn transient_registry_failures_are_retried() {
    let reg = services::plain_registry();
    let proxy = services::FlakyProxy::start(reg.port, 2);
    let t = Test::with_task(r#"command = ["/task"]"#);
    with_registry(&t, &format!("127.0.0.1:{}/flaky", proxy.port));
    let r = t.run(&["build", "--push", "--output", "json"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert_eq!(proxy.failed(), 2, "the registry answered 503 twice");
    let digest = r.json()["digest"].as_str().unwrap().to_string();
    let host_arch = if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "amd64"
    };
    assert_eq!(
        pushed_architecture(reg, &format!("flaky/{}", t.name), &digest),
        host_arch
    );
}

#[test]
fn git_commit_tags_with_dirty_mark() {
    let reg = services::plain_registry();
    let t = Test::with_task(r#"command = ["/task"]"#);
    with_registry(&t, &reg.host());
    let git = |args: &[&str]| {
        let o = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
            .args(args)
            .current_dir(t.dir.path())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-qm", "job"]);
    let sha = git(&["rev-parse", "--short", "HEAD"]);
    let r = t.run(&["build", "--push", "--output", "json"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let tags = r.json()["tags"].clone();
    assert_eq!(tags[1], format!("git-{sha}"), "{tags}");
    assert!(
        services::registry_get(reg, &format!("/v2/{}/manifests/git-{sha}", t.name), EITHER).is_ok()
    );

    t.write("notes.txt", "uncommitted");
    let r = t.run(&["push", "--output", "json"]);
    assert_eq!(r.json()["tags"][1], format!("git-{sha}-dirty"));
}

#[test]
fn existing_ecr_repository_is_left_alone_unless_asked() {
    let reg = services::plain_registry();
    let t = Test::ecs_task(&format!(
        "[ecr]\nkeep_images = 3\nregistry_endpoint = \"{}\"\n",
        reg.host()
    ))
    .envs(services::moto_env());
    let repo = format!("jobrun/{}", t.name);
    services::ecr_call(
        "CreateRepository",
        serde_json::json!({"repositoryName": repo, "imageScanningConfiguration": {"scanOnPush": false}}),
    )
    .unwrap();
    let r = t.run(&["build", "--push", "--output", "json"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert_eq!(r.json()["repository_created"], false);
    let no_policy = services::ecr_call(
        "GetLifecyclePolicy",
        serde_json::json!({"repositoryName": repo}),
    );
    assert!(
        no_policy
            .unwrap_err()
            .1
            .contains("LifecyclePolicyNotFoundException"),
        "left as it was"
    );

    let r = t.run(&["push", "--update-repository"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let described = services::ecr_call(
        "DescribeRepositories",
        serde_json::json!({"repositoryNames": [repo]}),
    )
    .unwrap();
    assert_eq!(
        described["repositories"][0]["imageScanningConfiguration"]["scanOnPush"],
        true
    );
    let policy = services::ecr_call(
        "GetLifecyclePolicy",
        serde_json::json!({"repositoryName": repo}),
    )
    .unwrap();
    assert!(
        policy["lifecyclePolicyText"]
            .as_str()
            .unwrap()
            .contains("\"countNumber\":3")
    );
}

#[test]
fn aws_profile_from_the_shared_config_files() {
    let reg = services::plain_registry();
    let dir = crate::harness::aws_files("[profile ml]\nregion = us-east-1\n");
    let t = Test::ecs_task(&format!("[ecr]\nregistry_endpoint = \"{}\"\n", reg.host()))
        .env("AWS_ENDPOINT_URL", &services::moto().url())
        .env(
            "AWS_CONFIG_FILE",
            dir.path().join("config").to_str().unwrap(),
        )
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            dir.path().join("credentials").to_str().unwrap(),
        );
    t.run(&["build", "--push"])
        .assert_error(2, "no AWS region is set");
    let r = t.run(&["push", "--profile", "ml", "--output", "json"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert_eq!(r.json()["platform"], "linux/arm64");
}

/// containerd's client on the engine's own containerd (the runtime Fargate uses), in a
/// namespace of the test's own, removed afterwards.
struct Containerd {
    namespace: String,
}

impl Containerd {
    fn new(name: &str) -> Containerd {
        Containerd {
            namespace: format!("jobrun-test-{name}"),
        }
    }

    fn ctr(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new("ctr")
            .args(["--address", "/run/docker/containerd/containerd.sock"])
            .args(["-n", &self.namespace])
            .args(args)
            .output()
            .expect("ctr runs (containerd's client, beside the engine)")
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.ctr(&["containers", "rm", "jobrun-pulled"]);
        let listed = self.ctr(&["images", "list", "-q"]);
        for image in String::from_utf8_lossy(&listed.stdout).lines() {
            let _ = self.ctr(&["images", "rm", "--sync", image]);
        }
        let _ = std::process::Command::new("ctr")
            .args(["--address", "/run/docker/containerd/containerd.sock"])
            .args(["namespaces", "rm", &self.namespace])
            .output();
    }
}

#[test]
fn zstd_layers_go_in_an_oci_manifest_that_containerd_pulls_and_runs() {
    let reg = services::plain_registry();
    let t = Test::with_task(r#"command = ["/task"]"#);
    with_registry(&t, &format!("{}/z", reg.host()));
    let toml = std::fs::read_to_string(t.dir.path().join("jobrun.toml")).unwrap();
    t.write(
        "jobrun.toml",
        &toml.replace("[image]\n", "[image]\ncompression = \"zstd\"\n"),
    );
    let repo = format!("z/{}", t.name);
    let r = t.run(&["build", "--push", "--output", "json"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let pushed = r.json();
    assert_eq!(pushed["compression"], "zstd");
    let digest = pushed["digest"].as_str().unwrap().to_string();
    let (kind, _, layers) = media_types(reg, &repo, &digest);
    assert_eq!(kind, OCI_MANIFEST);
    assert!(layers.iter().all(|l| l.ends_with("tar+zstd")), "{layers:?}");

    // Pulled and unpacked by containerd, it runs the task.
    let c = Containerd::new(&t.name);
    let reference = format!("{}/{repo}@{digest}", reg.host());
    let pull = c.ctr(&["images", "pull", "--plain-http", &reference]);
    assert!(
        pull.status.success(),
        "{}",
        String::from_utf8_lossy(&pull.stderr)
    );
    let run = c.ctr(&[
        "run",
        "--rm",
        &reference,
        "jobrun-pulled",
        "/task",
        "out",
        "from zstd",
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&run.stdout).trim(), "from zstd");

    // Pushed again, nothing is uploaded; asked for gzip instead, it is another manifest.
    let again = t.run(&["push", "--output", "json"]);
    assert_eq!(again.status, 0, "{}", again.stderr);
    assert_eq!(again.json()["layers_uploaded"], 0);
    assert_eq!(again.json()["digest"], digest.as_str());
    let toml = std::fs::read_to_string(t.dir.path().join("jobrun.toml")).unwrap();
    t.write("jobrun.toml", &toml.replace("\"zstd\"", "\"gzip\""));
    let gzip = t.run(&["push", "--output", "json"]);
    assert_eq!(gzip.status, 0, "{}", gzip.stderr);
    assert_eq!(gzip.json()["compression"], "gzip");
    assert_ne!(gzip.json()["digest"], digest.as_str());
}
