//! The certificates jobrun trusts for HTTPS to AWS. The jobrun inside an image must start in
//! any image — `FROM scratch` and busybox have no CA file, and a bundle copied from the host
//! that built the image is empty on some hosts — so the roots travel in the binary: Mozilla's
//! (the `webpki-root-certs` crate, the same list browsers and `webpki-roots` use), plus
//! whatever the machine or image has of its own (`rustls-native-certs`: `SSL_CERT_FILE`,
//! `SSL_CERT_DIR`, the system bundle) and `AWS_CA_BUNDLE` (the variable AWS's SDKs and CLI
//! read for a private CA, e.g. a TLS-inspecting proxy). Certificates that are not usable trust
//! anchors are left out here, so a broken file in an image cannot stop a task.

use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use rustls_pki_types::CertificateDer;
use std::sync::OnceLock;

/// Every usable root, read once per process: what every HTTPS client of jobrun trusts (the
/// CLI's registry, webhook and agent-endpoint clients are built on the same list).
pub fn roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut ders: Vec<CertificateDer<'static>> =
            webpki_root_certs::TLS_SERVER_ROOT_CERTS.to_vec();
        ders.extend(rustls_native_certs::load_native_certs().certs);
        if let Some(path) = std::env::var_os("AWS_CA_BUNDLE") {
            ders.extend(pem_file(std::path::Path::new(&path)));
        }
        ders.retain(|d| usable(d));
        ders
    })
}

/// Every root as one PEM text, made once per process.
fn pem_roots() -> &'static str {
    static PEM: OnceLock<String> = OnceLock::new();
    PEM.get_or_init(|| roots().iter().map(|der| to_pem(der)).collect())
}

/// How many roots jobrun trusts here (built in, and the machine's).
pub fn root_count() -> usize {
    pem_roots().matches("-----BEGIN CERTIFICATE-----").count()
}

fn pem_file(path: &std::path::Path) -> Vec<CertificateDer<'static>> {
    use rustls_pki_types::pem::PemObject;
    match CertificateDer::pem_file_iter(path) {
        Ok(certs) => certs.filter_map(Result::ok).collect(),
        Err(e) => {
            tracing::warn!("AWS_CA_BUNDLE {}: {e}", path.display());
            vec![]
        }
    }
}

/// A certificate rustls can take as a root (what the SDK's TLS setup would otherwise refuse
/// with a panic).
fn usable(der: &CertificateDer<'_>) -> bool {
    webpki::anchor_from_trusted_cert(der).is_ok()
}

fn to_pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// The HTTPS client every AWS client of this process uses: rustls with the roots above instead
/// of the machine's alone, on ring — the crypto provider reqwest and aws-config's SSO use too,
/// rather than the SDK's default aws-lc, which would be a second provider and a C library
/// built with cmake (a minute of every cold build).
pub fn aws_http_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    tracing::debug!(roots = root_count(), "trusted CA roots");
    let store = TrustStore::empty()
        .with_native_roots(false)
        .with_pem_certificate(pem_roots().as_bytes());
    let context = TlsContext::builder()
        .with_trust_store(store)
        .build()
        .expect("a trust store of PEM text builds");
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .tls_context(context)
        .build_https()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_roots_are_there_without_any_file() {
        // Mozilla's list has well over 100 roots; every one is a usable anchor.
        let built_in = webpki_root_certs::TLS_SERVER_ROOT_CERTS;
        assert!(built_in.len() > 100, "{}", built_in.len());
        assert!(built_in.iter().all(usable));
        assert!(root_count() >= built_in.len());
    }

    #[test]
    fn pem_round_trips_and_garbage_is_not_a_root() {
        use rustls_pki_types::pem::PemObject;
        let der = &webpki_root_certs::TLS_SERVER_ROOT_CERTS[0];
        let pem = to_pem(der);
        let back = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        assert_eq!(back.as_ref(), der.as_ref());
        assert!(!usable(&CertificateDer::from(vec![0u8; 40])));
    }
}
