//! The release recipe and what the README and the Justfile say of it agree: the same file
//! names, targets and profile; the agent image the workflow pushes is the one `jobrun build`
//! of that version looks for; the wheel carries the binary. (The workflow itself runs on a
//! tag; what this machine can run of it — the wheel — is in the closing notes' commands.)

use std::path::Path;

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel))
        .unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn the_release_workflow_the_justfile_and_the_readme_agree() {
    let workflow = read(".github/workflows/release.yml");
    let just = read("Justfile");
    let readme = read("README.md");
    let pyproject = read("pyproject.toml");
    for (file, target) in [
        ("jobrun-linux-amd64", "x86_64-unknown-linux-musl"),
        ("jobrun-linux-arm64", "aarch64-unknown-linux-musl"),
    ] {
        for (name, text) in [
            ("workflow", &workflow),
            ("Justfile", &just),
            ("README", &readme),
        ] {
            assert!(text.contains(file), "{name} names {file}");
        }
        assert!(
            workflow.contains(target) && just.contains(target),
            "{target}"
        );
    }
    let build = "build --profile agent --locked --target";
    assert!(
        workflow.contains(&format!("cross {build}")) && just.contains(&format!("cross {build}"))
    );
    for file in ["jobrun-macos-amd64", "jobrun-macos-arm64", "SHA256SUMS"] {
        assert!(workflow.contains(file), "the workflow makes {file}");
        assert!(readme.contains(file), "the README names {file}");
    }
    // The image `jobrun build` of a version pulls is the one the workflow pushes for it.
    assert!(
        workflow.contains("ref=public.ecr.aws/jobrun/agent:${{ needs.version.outputs.version }}")
    );
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        readme.contains("public.ecr.aws/jobrun/agent:<this version>"),
        "{version}"
    );
    assert!(workflow.contains("test \"v$version\" = \"$GITHUB_REF_NAME\""));
    // The wheel is the binary, built by maturin, the same way by hand and on a tag.
    assert!(
        pyproject.contains("bindings = \"bin\"")
            && pyproject.contains("build-backend = \"maturin\"")
    );
    assert!(
        workflow.contains("PyO3/maturin-action")
            && just.contains("maturin build --release --locked")
    );
    assert!(
        readme.contains("pip install jobrun"),
        "the README says how to install the wheel"
    );
    assert!(
        readme.contains("published when the first `v*` tag is pushed"),
        "the README says plainly what is not published yet"
    );
}
