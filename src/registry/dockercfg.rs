//! Registry credentials from the Docker client's configuration: `$DOCKER_CONFIG/config.json`
//! (default `~/.docker/config.json`): `auths` entries, `credHelpers` per registry, or the
//! `credsStore`, as the docker CLI reads them. The `docker_credential` crate reads the file and
//! runs the helpers (`docker-credential-<helper> get`); this module says what its answers mean
//! for a push: no configuration, or none for the registry, is "no credentials", not an error.

use super::Credentials;
use docker_credential::{CredentialRetrievalError as Why, DockerCredential};
use std::path::PathBuf;

/// The helpers' own answer for a registry they hold nothing for (docker-credential-helpers'
/// `errCredentialsNotFound`, which every helper prints and exits 1 with).
const NOT_FOUND: &str = "credentials not found";

fn config_path() -> Option<PathBuf> {
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))?;
    Some(dir.join("config.json"))
}

/// Credentials for `host`, if the Docker configuration has any.
pub fn lookup(host: &str) -> Result<Option<Credentials>, String> {
    let Some(path) = config_path().filter(|p| p.is_file()) else {
        return Ok(None);
    };
    let file = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    from_config(std::io::BufReader::new(file), host)
        .map_err(|why| format!("{}: {why}", path.display()))
}

/// Credentials for `host` from a Docker configuration's text.
fn from_config(config: impl std::io::Read, host: &str) -> Result<Option<Credentials>, String> {
    match docker_credential::get_credential_from_reader(config, host) {
        Ok(DockerCredential::UsernamePassword(username, password)) => {
            Ok(Some(Credentials { username, password }))
        }
        Ok(DockerCredential::IdentityToken(_)) => Err(format!(
            "the credentials for {host} are an identity token, which jobrun cannot use; `docker login {host}` with a user name and password"
        )),
        Err(Why::NoCredentialConfigured) => Ok(None),
        Err(Why::HelperFailure { stdout, .. }) if stdout.contains(NOT_FOUND) => Ok(None),
        Err(Why::HelperFailure { helper, stderr, .. }) => {
            Err(format!("{helper} failed for {host}: {}", stderr.trim()))
        }
        Err(Why::ConfigReadError) => Err("not a Docker configuration (invalid JSON)".into()),
        Err(why) => Err(format!("no credentials for {host}: {why}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(config: serde_json::Value, host: &str) -> Result<Option<Credentials>, String> {
        from_config(config.to_string().as_bytes(), host)
    }

    #[test]
    fn auths_give_the_user_and_password_of_their_registry_only() {
        use base64::Engine as _;
        let auth = base64::engine::general_purpose::STANDARD.encode("jobrun:s3:cret");
        let config = serde_json::json!({"auths": {
            "https://registry.example:5000": {"auth": auth},
            "other.example": {"username": "u", "password": "p"},
        }});
        let got = read(config.clone(), "registry.example:5000")
            .unwrap()
            .unwrap();
        assert_eq!(
            (got.username.as_str(), got.password.as_str()),
            ("jobrun", "s3:cret")
        );
        let got = read(config.clone(), "other.example").unwrap().unwrap();
        assert_eq!((got.username.as_str(), got.password.as_str()), ("u", "p"));
        assert!(read(config, "third.example").unwrap().is_none());
    }

    #[test]
    fn a_broken_configuration_and_an_identity_token_are_errors_that_say_so() {
        let e = from_config("{not json".as_bytes(), "r.example").unwrap_err();
        assert!(e.contains("invalid JSON"), "{e}");
        let token = serde_json::json!({"auths": {"r.example": {"identitytoken": "t"}}});
        let e = read(token, "r.example").unwrap_err();
        assert!(e.contains("identity token"), "{e}");
    }
}
