//! The CLI's HTTPS clients other than AWS's (registries, webhooks) trust exactly what the AWS
//! clients trust: the roots of `jobrun_aws::tls` (Mozilla's built in, the machine's, and
//! `AWS_CA_BUNDLE`), so a user behind a private CA reaches their registry and webhook too.

use jobrun_aws::tls::roots;

/// A builder of jobrun's other HTTPS clients that trusts exactly what the AWS clients trust,
/// not reqwest's own list.
pub fn http_client() -> reqwest::ClientBuilder {
    let mut builder = reqwest::Client::builder().tls_built_in_root_certs(false);
    for der in roots() {
        if let Ok(cert) = reqwest::Certificate::from_der(der) {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
}
