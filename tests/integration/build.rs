//! `jobrun build`: the context honours .dockerignore, tags, pre-build, failing steps.

use crate::harness::Test;

#[test]
fn context_honours_dockerignore_and_image_is_tagged() {
    let t = Test::with_task(r#"command = ["/task", "ls", "/ctx"]"#);
    t.write(
        "Dockerfile",
        "FROM scratch\nCOPY task /task\nCOPY . /ctx/\n",
    );
    for f in [
        "keep.txt",
        "notes.md",
        "README.md",
        "target/debug/big.bin",
        "data/a.csv",
        "data/keep.csv",
        "src/x/tmp1",
        "src/main.rs",
    ] {
        t.write(f, "x");
    }
    t.write(
        ".dockerignore",
        "# build output and docs\ntarget\n*.md\n!README.md\ndata\n!data/keep.csv\n**/tmp?\n",
    );
    let b = t.run(&["build", "--output", "json"]);
    assert_eq!(b.status, 0, "{}", b.stderr);
    let built = b.json();
    let tags: Vec<&str> = built["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(tags.len(), 2);
    assert!(tags.contains(&format!("{}:latest", t.name).as_str()));
    let id_hex = built["image_id"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    assert!(
        tags.contains(&format!("{}:{}", t.name, &id_hex[..12]).as_str()),
        "{tags:?}"
    );
    assert_eq!(t.images().len(), 1, "both tags name one image");

    // The task lists what COPY . put in the image: exactly what the context held.
    let r = t.run(&["submit", "--configs", "1"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let listing = t.run(&["logs", "--index", "0"]).stdout;
    let files: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.strip_prefix("ls:"))
        .collect();
    assert!(files.contains(&"keep.txt"));
    assert!(files.contains(&"README.md"));
    assert!(files.contains(&"data/keep.csv"));
    assert!(files.contains(&"src/main.rs"));
    assert!(
        files.contains(&"Dockerfile"),
        "the Dockerfile is always sent"
    );
    assert!(
        files.contains(&".dockerignore"),
        ".dockerignore is always sent"
    );
    for gone in ["notes.md", "target", "data/a.csv", "src/x/tmp1"] {
        assert!(
            !files.contains(&gone),
            "{gone} should be excluded: {files:?}"
        );
    }
}

#[test]
fn second_build_of_the_same_context_gets_the_same_tag() {
    let t = Test::with_task(r#"command = ["/task"]"#);
    let a = t.run(&["build", "--output", "json"]).json();
    let b = t.run(&["build", "--output", "json"]).json();
    assert_eq!(a["image_id"], b["image_id"]);
    assert_eq!(a["tags"], b["tags"]);
}

#[test]
fn pre_build_runs_first_and_its_failure_stops_the_build() {
    let t = Test::new();
    t.write("Dockerfile", "FROM scratch\nCOPY made.txt /made.txt\n");
    t.write(
        "jobrun.toml",
        &format!(
            "[job]\nname = \"{}\"\n[image]\npre_build = \"echo $JOBRUN_TARGET_ARCH > made.txt\"\n",
            t.name
        ),
    );
    let r = t.run(&["build"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let made = std::fs::read_to_string(t.dir.path().join("made.txt")).unwrap();
    assert!(made.trim() == "amd64" || made.trim() == "arm64");

    t.write(
        "jobrun.toml",
        &format!(
            "[job]\nname = \"{}-b\"\n[image]\npre_build = \"echo compiling; exit 7\"\n",
            t.name
        ),
    );
    let r = t.run(&["build"]);
    r.assert_error(4, "pre-build command `echo compiling; exit 7` failed");
    assert!(r.stderr.contains("compiling"), "its output is shown");
    assert!(crate::harness::docker_lines(&["images", "-q", &format!("{}-b", t.name)]).is_empty());

    // A program the pre-build needs and this machine lacks (the go template without Go).
    t.write(
        "jobrun.toml",
        &format!(
            "[job]\nname = \"{}-c\"\n[image]\npre_build = \"jobrun-no-such-compiler build\"\n",
            t.name
        ),
    );
    let r = t.run(&["build"]);
    r.assert_error(
        4,
        "pre-build command `jobrun-no-such-compiler build` failed",
    );
    assert!(
        r.stderr
            .contains("hint: exit status 127 is the shell's \"command not found\""),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("the go template needs Go"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_failing_dockerfile_step_is_named() {
    let t = Test::with_task(r#"command = ["/task"]"#);
    t.write(
        "Dockerfile",
        "FROM scratch\nCOPY task /task\nCOPY missing-file /x\n",
    );
    let r = t.run(&["build"]);
    r.assert_error(4, "build failed at Step 3/");
    assert!(r.stderr.contains("missing-file"), "{}", r.stderr);
    t.write("Dockerfile", "FROM scratch\nBOGUS instruction\n");
    t.run(&["build"]).assert_error(4, "unknown instruction");
    assert!(t.images().is_empty(), "no image from a failed build");
}

#[test]
fn build_args_and_target_platform() {
    let t = Test::with_task(r#"command = ["/task", "out", "built with args"]"#);
    std::fs::rename(t.dir.path().join("task"), t.dir.path().join("task-binary")).unwrap();
    t.write("Dockerfile", "FROM scratch\nARG SRC\nCOPY ${SRC} /task\n");
    let toml = std::fs::read_to_string(t.dir.path().join("jobrun.toml")).unwrap();
    t.write(
        "jobrun.toml",
        &format!("{toml}\n[image.build_args]\nSRC = \"task-binary\"\n"),
    );
    let b = t.run(&["build", "--output", "json"]);
    assert_eq!(b.status, 0, "{}", b.stderr);
    let r = t.run(&["submit", "--configs", "1"]);
    assert_eq!(r.status, 0, "the build arg picked the file: {}", r.stderr);

    // An arm64 image is built without emulation (FROM scratch + COPY) and says so, even right
    // after an amd64 build of the same files, whose cached layers the classic builder would
    // otherwise hand back. (That builder also commits `ARG` steps for the host's platform, so a
    // foreign-platform Dockerfile keeps to FROM scratch + COPY.)
    t.write("Dockerfile", "FROM scratch\nCOPY task-binary /task\n");
    assert_eq!(t.run(&["build"]).status, 0);
    let arm = t.run(&["build", "--platform", "linux/arm64", "--output", "json"]);
    assert_eq!(arm.status, 0, "{}", arm.stderr);
    assert_eq!(arm.json()["platform"], "linux/arm64");
    let inspected = crate::harness::docker_lines(&[
        "image",
        "inspect",
        "-f",
        "{{.Architecture}}",
        &format!("{}:latest", t.name),
    ]);
    assert_eq!(inspected, ["arm64"]);
    // And back: a host build whose first step the cache holds for arm64 and whose next step
    // needs that parent for the host's platform.
    t.write(
        "Dockerfile",
        "FROM scratch\nCOPY task-binary /task\nCOPY jobrun.toml /jobrun.toml\n",
    );
    let back = t.run(&["build", "--output", "json"]);
    assert_eq!(back.status, 0, "{}", back.stderr);
    let host = if cfg!(target_arch = "aarch64") {
        "linux/arm64"
    } else {
        "linux/amd64"
    };
    assert_eq!(back.json()["platform"], host);
    t.run(&["build", "--platform", "windows/amd64"])
        .assert_error(2, "not of the form linux/ARCH");
}

/// A base image the engine lacks and cannot fetch is told as that, with how to bring it.
#[test]
fn a_base_image_that_cannot_be_fetched_is_named_with_how_to_bring_it() {
    let t = Test::with_task(r#"command = ["/task"]"#);
    // `.invalid` never resolves (RFC 2606): the engine cannot reach this registry anywhere.
    t.write(
        "Dockerfile",
        "FROM registry.invalid/base:1\nCOPY task /task\n",
    );
    let r = t.run(&["build"]);
    r.assert_error(
        4,
        "the base image registry.invalid/base:1 is not in the local engine and its registry cannot be reached",
    );
    assert!(
        r.stderr
            .contains("hint: `docker pull registry.invalid/base:1` on a machine with access"),
        "{}",
        r.stderr
    );
}
