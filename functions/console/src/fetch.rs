//! The HTTPS client the OpenID Connect relying party talks to its issuer with: discovery, keys
//! and the token endpoint. Its connections use the process's one TLS configuration, the SDK
//! clients' too ([`kiro::aws::https`]: Mozilla's roots compiled in, and `SSL_CERT_FILE`'s if
//! set), so it adds no TLS library and no second root store. Plain `http://` is accepted too, for
//! a local issuer on 127.0.0.1.

use std::future::Future;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// The largest answer read from the issuer: a discovery document or a key set is a few KB.
const MAX_ANSWER_BYTES: usize = 256 * 1024;
/// A whole exchange with the issuer, connection included.
const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0} is not a URL the console can call")]
    BadUrl(String),
    #[error("the issuer did not answer within {TIMEOUT:?}")]
    Timeout,
    #[error("calling the issuer failed")]
    Transport(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// An answer: status and body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// What the relying party needs of HTTP; tests answer it from memory.
pub trait Fetch: Send + Sync {
    fn get(&self, url: &str) -> impl Future<Output = Result<Answer, FetchError>> + Send;
    fn post_form(&self, url: &str, form: &[(&str, &str)]) -> impl Future<Output = Result<Answer, FetchError>> + Send;
}

/// [`Fetch`] over hyper.
#[derive(Clone)]
pub struct Https {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl Default for Https {
    fn default() -> Self {
        Self::new()
    }
}

impl Https {
    /// Reads nothing: the roots are the process's, built once.
    pub fn new() -> Self {
        Self { client: Client::builder(TokioExecutor::new()).build(kiro::aws::https::connector()) }
    }

    async fn send(&self, request: hyper::Request<Full<Bytes>>) -> Result<Answer, FetchError> {
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| FetchError::Transport(Box::new(e)))?;
            let status = response.status().as_u16();
            let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(FetchError::Transport)?
                .to_bytes()
                .to_vec();
            Ok(Answer { status, body })
        };
        tokio::time::timeout(TIMEOUT, exchange).await.map_err(|_| FetchError::Timeout)?
    }
}

fn uri(url: &str) -> Result<hyper::Uri, FetchError> {
    url.parse::<hyper::Uri>().map_err(|_| FetchError::BadUrl(url.to_owned()))
}

impl Fetch for Https {
    async fn get(&self, url: &str) -> Result<Answer, FetchError> {
        let request = hyper::Request::get(uri(url)?)
            .header("accept", "application/json")
            .body(Full::new(Bytes::new()))
            .map_err(|_| FetchError::BadUrl(url.to_owned()))?;
        self.send(request).await
    }

    async fn post_form(&self, url: &str, form: &[(&str, &str)]) -> Result<Answer, FetchError> {
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        let request = hyper::Request::post(uri(url)?)
            .header("accept", "application/json")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(body)))
            .map_err(|_| FetchError::BadUrl(url.to_owned()))?;
        self.send(request).await
    }
}
