//! Who may use the web view. It can cancel and retry runs and shows every run's tasks and
//! logs, so it is guarded the way notebook servers are: a random token per start, printed in
//! the URL (and then kept as a cookie, so links need not carry it); a `Host` that is not
//! `localhost` or an IP address is refused, which defeats DNS rebinding (a hostile page's name
//! made to point at 127.0.0.1 still sends its own name); an `Origin` that is not the server's
//! own is refused, so another site cannot post to it; and every form carries a CSRF token.

use axum::http::{HeaderMap, Method, StatusCode, Uri, header};

/// The secrets of one `jobrun ui` process.
#[derive(Clone)]
pub struct Guard {
    pub token: String,
    pub csrf: String,
    port: u16,
}

/// What the guard says about a request.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    Pass,
    /// The URL carried the right token: set the cookie and go to the URL without it.
    SetCookie {
        location: String,
    },
    Refuse(StatusCode, &'static str),
}

impl Guard {
    pub fn new(port: u16) -> Guard {
        Guard {
            token: random_hex(),
            csrf: random_hex(),
            port,
        }
    }

    /// The cookie's name: per port, since browsers share cookies across a host's ports.
    pub fn cookie(&self) -> String {
        format!("jobrun_ui_{}", self.port)
    }

    pub fn check(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> Verdict {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let Some(host) = host.filter(|h| self.host_allowed(h)) else {
            return Verdict::Refuse(StatusCode::FORBIDDEN, "this Host is not jobrun ui's own");
        };
        let origin = headers.get(header::ORIGIN).and_then(|h| h.to_str().ok());
        if let Some(origin) = origin
            && origin != format!("http://{host}")
        {
            return Verdict::Refuse(
                StatusCode::FORBIDDEN,
                "requests from other sites are refused",
            );
        }
        if *method != Method::GET && *method != Method::HEAD && origin.is_none() {
            return Verdict::Refuse(StatusCode::FORBIDDEN, "an action needs its Origin header");
        }
        if let Some(rest) = self.token_in_query(uri) {
            return match *method == Method::GET {
                true => Verdict::SetCookie { location: rest },
                false => Verdict::Pass,
            };
        }
        if self.cookie_in(headers) || self.bearer_in(headers) {
            return Verdict::Pass;
        }
        Verdict::Refuse(
            StatusCode::UNAUTHORIZED,
            "open the URL `jobrun ui` printed (it carries the token)",
        )
    }

    /// Does a form's CSRF field match?
    pub fn csrf_ok(&self, given: &str) -> bool {
        same(given, &self.csrf)
    }

    /// `localhost` or an IP address, on this server's port.
    fn host_allowed(&self, host: &str) -> bool {
        let Some((name, port)) = host.rsplit_once(':') else {
            return false;
        };
        if port != self.port.to_string() {
            return false;
        }
        let name = name.trim_start_matches('[').trim_end_matches(']');
        name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok()
    }

    /// The URL without its `token` parameter, when that parameter is the token.
    fn token_in_query(&self, uri: &Uri) -> Option<String> {
        let query = uri.query()?;
        let mut found = false;
        let rest: Vec<&str> = query
            .split('&')
            .filter(|pair| match pair.strip_prefix("token=") {
                Some(t) => {
                    found |= same(t, &self.token);
                    false
                }
                None => true,
            })
            .collect();
        found.then(|| match rest.is_empty() {
            true => uri.path().to_string(),
            false => format!("{}?{}", uri.path(), rest.join("&")),
        })
    }

    fn cookie_in(&self, headers: &HeaderMap) -> bool {
        let name = self.cookie();
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|h| h.to_str().ok())
            .flat_map(|h| h.split(';'))
            .filter_map(|c| c.trim().split_once('='))
            .any(|(k, v)| k == name && same(v, &self.token))
    }

    fn bearer_in(&self, headers: &HeaderMap) -> bool {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .is_some_and(|t| same(t, &self.token))
    }
}

/// Compares secrets without stopping at the first difference.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// 24 random bytes from the OS, as hex.
fn random_hex() -> String {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).expect("the OS gives random bytes");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(k.clone(), v.parse().unwrap());
        }
        h
    }

    #[test]
    fn the_token_opens_the_door_and_names_and_other_sites_are_refused() {
        let g = Guard::new(8642);
        assert_ne!(g.token, g.csrf);
        assert_eq!(g.token.len(), 48);
        let get = Method::GET;
        let with_token: Uri = format!("/runs/x?sort=loss&token={}", g.token)
            .parse()
            .unwrap();
        let host = (header::HOST, "127.0.0.1:8642");
        assert_eq!(
            g.check(&get, &with_token, &headers(std::slice::from_ref(&host))),
            Verdict::SetCookie {
                location: "/runs/x?sort=loss".into()
            }
        );
        let plain: Uri = "/".parse().unwrap();
        let refused = |v: Verdict| matches!(v, Verdict::Refuse(..));
        assert!(refused(g.check(
            &get,
            &plain,
            &headers(std::slice::from_ref(&host))
        )));
        let cookie = format!("a=b; {}={}", g.cookie(), g.token);
        let ok = headers(&[host.clone(), (header::COOKIE, &cookie)]);
        assert_eq!(g.check(&get, &plain, &ok), Verdict::Pass);
        let bearer = format!("Bearer {}", g.token);
        let by_header = headers(&[
            (header::HOST, "localhost:8642"),
            (header::AUTHORIZATION, &bearer),
        ]);
        assert_eq!(g.check(&get, &plain, &by_header), Verdict::Pass);
        // A wrong token, another port's cookie, a rebound name, another site.
        // (Its first digit changed: a token that starts with 0 gets a 1.)
        let first = if g.token.starts_with('0') { '1' } else { '0' };
        let wrong = format!("{}={first}{}", g.cookie(), &g.token[1..]);
        assert!(refused(g.check(
            &get,
            &plain,
            &headers(&[host.clone(), (header::COOKIE, &wrong)])
        )));
        let other_port = format!("jobrun_ui_1={}", g.token);
        assert!(refused(g.check(
            &get,
            &plain,
            &headers(&[host.clone(), (header::COOKIE, &other_port)])
        )));
        let rebound = headers(&[
            (header::HOST, "evil.example:8642"),
            (header::COOKIE, &cookie),
        ]);
        assert!(refused(g.check(&get, &plain, &rebound)));
        let elsewhere = headers(&[
            host.clone(),
            (header::COOKIE, &cookie),
            (header::ORIGIN, "http://evil.example"),
        ]);
        assert!(refused(g.check(&get, &plain, &elsewhere)));
        // An action needs its own Origin.
        let post = Method::POST;
        assert!(refused(g.check(&post, &plain, &ok)));
        let own = headers(&[
            host,
            (header::COOKIE, &cookie),
            (header::ORIGIN, "http://127.0.0.1:8642"),
        ]);
        assert_eq!(g.check(&post, &plain, &own), Verdict::Pass);
        assert!(g.csrf_ok(&g.csrf.clone()) && !g.csrf_ok(&g.token));
    }
}
