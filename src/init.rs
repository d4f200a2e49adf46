//! `jobrun init`: a new job from one of the templates in `job-templates/` (embedded at build time).

use include_dir::{Dir, include_dir};
use std::path::{Path, PathBuf};

static TEMPLATES: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/job-templates");

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("unknown template `{0}`")]
    UnknownTemplate(String),
    #[error("{0} already exists")]
    Exists(PathBuf),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    BadName(String),
}

pub fn template_names() -> Vec<&'static str> {
    let mut names: Vec<&str> = TEMPLATES
        .dirs()
        .filter_map(|d| d.path().file_name()?.to_str())
        .collect();
    names.sort_unstable();
    names
}

/// Derives a job name from a folder name: lowercase, other characters to '-'.
pub fn name_from_dir(dir: &Path) -> String {
    let raw = std::path::absolute(dir)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "job".into());
    let name: String = raw
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let name = name.trim_matches('-').to_string();
    if name.is_empty() { "job".into() } else { name }
}

/// Writes the template into `dir`; refuses to overwrite anything, and writes nothing if any
/// file is already there.
pub fn render(template: &str, dir: &Path, name: &str) -> Result<Vec<PathBuf>, InitError> {
    crate::config::validate_job_name(name).map_err(InitError::BadName)?;
    let t = TEMPLATES
        .get_dir(template)
        .ok_or_else(|| InitError::UnknownTemplate(template.into()))?;
    let mut files = vec![];
    collect(t, &mut files);
    let targets: Vec<(PathBuf, Vec<u8>)> = files
        .iter()
        .map(|f| {
            let rel = f.path().strip_prefix(t.path()).expect("under template");
            let body = String::from_utf8_lossy(f.contents()).replace("{{name}}", name);
            // `.tmpl` keeps a template's Cargo.toml from looking like a package of its own.
            let rel = rel.to_string_lossy();
            (
                dir.join(rel.strip_suffix(".tmpl").unwrap_or(&rel)),
                body.into_bytes(),
            )
        })
        .collect();
    if let Some((p, _)) = targets.iter().find(|(p, _)| p.exists()) {
        return Err(InitError::Exists(p.clone()));
    }
    for (path, body) in &targets {
        let write = |source| InitError::Write {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(path.parent().expect("file has a parent")).map_err(write)?;
        std::fs::write(path, body).map_err(write)?;
        if path.extension().is_some_and(|e| e == "sh") {
            // Scripts keep their executable bit.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
                .map_err(write)?;
        }
    }
    Ok(targets.into_iter().map(|(p, _)| p).collect())
}

fn collect<'a>(dir: &'a Dir<'a>, out: &mut Vec<&'a include_dir::File<'a>>) {
    out.extend(dir.files());
    for d in dir.dirs() {
        collect(d, out);
    }
}
