//! The ECS agent's endpoints a task reaches (task metadata v4 at
//! `ECS_CONTAINER_METADATA_URI_V4`, scale-in protection at `ECS_AGENT_URI`): plain HTTP/1 on
//! the task's link-local address (Amazon ECS Developer Guide, "Task metadata endpoint version
//! 4" and "Protect your Amazon ECS tasks from being terminated by scale-in events"), so the
//! agent needs no TLS client of its own for them: hyper 1, the one HTTP stack the AWS clients
//! already bring. Every answer is bounded.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

/// The most of an answer read: the task metadata of a task is a few KiB.
const LIMIT: usize = 1024 * 1024;

pub struct Endpoint {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Default for Endpoint {
    fn default() -> Self {
        Self::new()
    }
}

impl Endpoint {
    pub fn new() -> Endpoint {
        Endpoint {
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// `GET url`: the answer's text when it is a success.
    pub async fn get(&self, url: &str, timeout: Duration) -> Result<String, String> {
        let request = hyper::Request::get(url)
            .body(Full::default())
            .map_err(|e| format!("{url}: {e}"))?;
        let (status, body) = self.send(request, timeout).await?;
        if !(200..300).contains(&status) {
            return Err(format!("{url}: HTTP {status}"));
        }
        String::from_utf8(body).map_err(|_| format!("{url}: the answer is not text"))
    }

    /// `PUT url` with a JSON body: the answer's status.
    pub async fn put_json(
        &self,
        url: &str,
        body: String,
        timeout: Duration,
    ) -> Result<u16, String> {
        let request = hyper::Request::put(url)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("{url}: {e}"))?;
        Ok(self.send(request, timeout).await?.0)
    }

    async fn send(
        &self,
        request: hyper::Request<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<(u16, Vec<u8>), String> {
        let exchange = async {
            let response = self.client.request(request).await;
            let response = response.map_err(|e| jobrun_aws::error_text(&e))?;
            let status = response.status().as_u16();
            let body = Limited::new(response.into_body(), LIMIT)
                .collect()
                .await
                .map_err(|e| e.to_string())?;
            Ok((status, body.to_bytes().to_vec()))
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| format!("no answer in {}s", timeout.as_secs()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A one-shot HTTP/1 server: answers `reply` and hands back what it was sent.
    async fn serve_once(reply: &'static str) -> (String, tokio::task::JoinHandle<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let got = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let n = conn.read(&mut buf).await.unwrap();
            conn.write_all(reply.as_bytes()).await.unwrap();
            String::from_utf8_lossy(&buf[..n]).to_string()
        });
        (url, got)
    }

    #[tokio::test]
    async fn gets_text_and_puts_json() {
        let (url, got) =
            serve_once("HTTP/1.1 200 OK\r\ncontent-length: 16\r\n\r\n{\"TaskARN\":\"t\"}\n").await;
        let e = Endpoint::new();
        let text = e
            .get(&format!("{url}/task"), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(text.trim(), "{\"TaskARN\":\"t\"}");
        assert!(got.await.unwrap().starts_with("GET /task HTTP/1.1"));

        let (url, got) = serve_once("HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n").await;
        let status = e
            .put_json(&format!("{url}/state"), "{}".into(), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(status, 400);
        let request = got.await.unwrap().to_ascii_lowercase();
        assert!(request.starts_with("put /state http/1.1"), "{request}");
        assert!(
            request.contains("content-type: application/json"),
            "{request}"
        );
    }

    #[tokio::test]
    async fn an_error_or_a_silent_endpoint_is_an_error_not_a_hang() {
        let e = Endpoint::new();
        let (url, _got) = serve_once("HTTP/1.1 500 Oops\r\ncontent-length: 0\r\n\r\n").await;
        assert!(
            e.get(&url, Duration::from_secs(5))
                .await
                .unwrap_err()
                .contains("500")
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let err = e.get(&url, Duration::from_millis(300)).await.unwrap_err();
        assert!(err.contains("no answer"), "{err}");
    }
}
