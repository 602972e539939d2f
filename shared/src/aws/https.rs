//! The process's one TLS configuration, shared by the AWS SDK's clients and the console's OpenID
//! Connect client.
//!
//! **Roots.** Mozilla's root certificates as `webpki-roots` compiles them in, already parsed into
//! trust anchors: building the store copies a table and reads no file. The SDK's default client
//! instead reads the system bundle and every file of `/etc/ssl/certs` at start
//! (rustls-native-certs), then parses them again for each client built: most of the functions'
//! cold start (issue 17, BENCHMARKS.md). AWS endpoints chain to Amazon Trust Services' roots,
//! which are among Mozilla's. A corporate TLS proxy's root is added from the PEM bundle that
//! `SSL_CERT_FILE` names (README, "Configuration").
//!
//! **The SDK's HTTP client.** The SDK takes extra roots only as PEM, decoded and parsed again for
//! every client built, and takes no rustls configuration, so [`sdk_http_client`] gives it one of
//! ours: hyper over [`connector`], behaving as the SDK's default does where the functions depend
//! on it. The connect timeout bounds TCP and the TLS handshake; a refused, reset or timed-out
//! connection is an error the SDK retries, a certificate that does not verify is one it does not;
//! a connection the SDK poisons after a failure is not reused.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use aws_smithy_runtime_api::client::connection::{CaptureSmithyConnection, ConnectionMetadata};
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::ErrorKind;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{
    CaptureConnection, HttpConnector as TcpConnector, HttpInfo, capture_connection,
};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};
use tower_service::Service;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The variable naming a PEM bundle whose certificates are trusted besides the built-in roots.
pub const EXTRA_ROOTS_VAR: &str = "SSL_CERT_FILE";

/// Why the bundle [`EXTRA_ROOTS_VAR`] names was left out.
#[derive(Debug, thiserror::Error)]
pub enum ExtraRootsError {
    #[error("it cannot be read")]
    Read(#[source] std::io::Error),
    #[error("it is not a PEM bundle of certificates")]
    NotPem(#[source] rustls::pki_types::pem::Error),
    #[error("it holds no certificate")]
    Empty,
    #[error("{refused} of its {total} certificates cannot be roots")]
    Refused { refused: usize, total: usize },
}

/// Mozilla's roots, compiled in.
pub fn built_in_roots() -> RootCertStore {
    RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() }
}

/// Adds the certificates of a PEM bundle to `roots`: all of them, or none.
pub fn add_pem_bundle(roots: &mut RootCertStore, pem: &[u8]) -> Result<usize, ExtraRootsError> {
    let certs = CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>().map_err(ExtraRootsError::NotPem)?;
    if certs.is_empty() {
        return Err(ExtraRootsError::Empty);
    }
    let mut with = roots.clone();
    let (added, refused) = with.add_parsable_certificates(certs);
    if refused > 0 {
        return Err(ExtraRootsError::Refused { refused, total: added + refused });
    }
    *roots = with;
    Ok(added)
}

/// The roots of this process: the built-in ones, and those of the bundle [`EXTRA_ROOTS_VAR`]
/// names when it is set. A bundle that cannot be used is logged and left out: the built-in
/// roots still serve AWS, and whatever needed the bundle fails with a certificate error.
fn process_roots() -> RootCertStore {
    let mut roots = built_in_roots();
    let Some(path) = std::env::var_os(EXTRA_ROOTS_VAR).filter(|p| !p.is_empty()) else { return roots };
    let file = path.to_string_lossy().into_owned();
    match std::fs::read(&path).map_err(ExtraRootsError::Read).and_then(|pem| add_pem_bundle(&mut roots, &pem)) {
        Ok(added) => tracing::info!(file, added, "trusting the certificates of {EXTRA_ROOTS_VAR} too"),
        Err(e) => tracing::error!(
            file,
            cause = %crate::error::cause_chain(&e),
            "{EXTRA_ROOTS_VAR} is ignored; only the built-in roots are trusted"
        ),
    }
    roots
}

/// TLS 1.2 and 1.3 over aws-lc (the SDK's provider), HTTP/1.1, trusting `roots`.
pub fn tls_config(roots: RootCertStore) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("aws-lc offers TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// The process's TLS configuration: built once, on first use, and shared by every connection.
static PROCESS_TLS: LazyLock<Arc<ClientConfig>> = LazyLock::new(|| tls_config(process_roots()));

/// A hyper connector over the process's TLS configuration: `https://`, and plain `http://` for
/// an emulator or a local issuer.
pub fn connector() -> HttpsConnector<TcpConnector> {
    connector_with(PROCESS_TLS.clone())
}

fn connector_with(tls: Arc<ClientConfig>) -> HttpsConnector<TcpConnector> {
    let mut tcp = TcpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    HttpsConnector::from((tcp, tls))
}

/// The SDK's HTTP client over the process's TLS configuration, which it builds now (at init,
/// as the SDK's default client loads its roots when a client is built).
pub fn sdk_http_client() -> SharedHttpClient {
    SharedHttpClient::new(SdkHttpClient::new(PROCESS_TLS.clone()))
}

/// One connection pool per connector settings the SDK asks for (the functions' clients share
/// one: the settings come from their one `SdkConfig`).
#[derive(Debug)]
struct SdkHttpClient {
    tls: Arc<ClientConfig>,
    pools: RwLock<HashMap<Timeouts, SharedHttpConnector>>,
}

/// A pool's connect and read timeouts.
type Timeouts = (Option<Duration>, Option<Duration>);

impl SdkHttpClient {
    fn new(tls: Arc<ClientConfig>) -> Self {
        Self { tls, pools: RwLock::default() }
    }
}

impl HttpClient for SdkHttpClient {
    fn http_connector(&self, settings: &HttpConnectorSettings, _: &RuntimeComponents) -> SharedHttpConnector {
        let key = (settings.connect_timeout(), settings.read_timeout());
        if let Some(pool) = self.pools.read().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return pool.clone();
        }
        let mut pools = self.pools.write().unwrap_or_else(|p| p.into_inner());
        pools.entry(key).or_insert_with(|| SharedHttpConnector::new(Pool::new(&self.tls, key.0, key.1))).clone()
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        Some(ConnectorMetadata::new("hyper", Some("1.x".into())))
    }
}

/// A hyper client with the SDK's connect and read timeouts.
#[derive(Debug, Clone)]
struct Pool {
    client: Client<ConnectTimeout, SdkBody>,
    read_timeout: Option<Duration>,
}

impl Pool {
    fn new(tls: &Arc<ClientConfig>, connect_timeout: Option<Duration>, read_timeout: Option<Duration>) -> Self {
        let mut builder = Client::builder(TokioExecutor::new());
        // Without a timer the pool never closes idle connections.
        builder.pool_timer(TokioTimer::new());
        let client = builder.build(ConnectTimeout { inner: connector_with(tls.clone()), limit: connect_timeout });
        Self { client, read_timeout }
    }
}

impl HttpConnector for Pool {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let mut request = match request.try_into_http1x() {
            Ok(request) => request,
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(e.into()))),
        };
        let captured = capture_connection(&mut request);
        if let Some(smithy) = request.extensions().get::<CaptureSmithyConnection>() {
            smithy.set_connection_retriever(move || connection_metadata(&captured));
        }
        let response = self.client.request(request);
        let read_timeout = self.read_timeout;
        HttpConnectorFuture::new(async move {
            let response = match read_timeout {
                Some(limit) => tokio::time::timeout(limit, response)
                    .await
                    .map_err(|_| ConnectorError::timeout(TimedOut("the response", limit).into()))?,
                None => response.await,
            };
            let response = response.map_err(classify)?;
            HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                .map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

/// What the SDK knows of the connection a request used: its addresses, and how to poison it.
fn connection_metadata(captured: &CaptureConnection) -> Option<ConnectionMetadata> {
    let connected = captured.connection_metadata();
    let connected = connected.as_ref()?;
    let mut extras = http::Extensions::new();
    connected.get_extras(&mut extras);
    let info = extras.get::<HttpInfo>();
    let poisoned = captured.clone();
    let mut metadata = ConnectionMetadata::builder().proxied(connected.is_proxied()).poison_fn(move || {
        if let Some(connected) = poisoned.connection_metadata().as_ref() {
            connected.poison();
        }
    });
    metadata.set_local_addr(info.map(HttpInfo::local_addr)).set_remote_addr(info.map(HttpInfo::remote_addr));
    Some(metadata.build())
}

/// A failed exchange as the SDK's retries read it: a timeout, or an I/O failure (refused, reset,
/// closed), is transient; a TLS refusal (a certificate that does not verify) is not, nor is
/// anything unrecognised.
fn classify(error: hyper_util::client::legacy::Error) -> ConnectorError {
    let error: BoxError = error.into();
    match failure_of(error.as_ref()) {
        Failure::Timeout => ConnectorError::timeout(error),
        Failure::User => ConnectorError::user(error),
        Failure::Io => ConnectorError::io(error),
        Failure::Transient => ConnectorError::other(error, Some(ErrorKind::TransientError)),
        Failure::Final => ConnectorError::other(error, None),
    }
}

enum Failure {
    Timeout,
    User,
    Io,
    Transient,
    Final,
}

fn failure_of(error: &(dyn std::error::Error + 'static)) -> Failure {
    let mut io = false;
    for cause in causes(error) {
        if cause.is::<TimedOut>() {
            return Failure::Timeout;
        }
        if cause.is::<rustls::Error>() {
            return Failure::Final;
        }
        if let Some(h) = cause.downcast_ref::<hyper::Error>() {
            if h.is_timeout() {
                return Failure::Timeout;
            }
            if h.is_user() {
                return Failure::User;
            }
            // A response cut short (seen from S3): the SDK's default retries it too.
            if h.is_incomplete_message() {
                return Failure::Transient;
            }
            io |= h.is_closed() || h.is_canceled();
        }
        if let Some(h) = cause.downcast_ref::<hyper_util::client::legacy::Error>() {
            io |= h.is_connect();
        }
        io |= cause.is::<std::io::Error>();
    }
    if io { Failure::Io } else { Failure::Final }
}

/// `error` and its causes; through an `io::Error`, its payload (hyper-rustls wraps the rustls
/// error in one, whose `source` skips it).
fn causes<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(error), |&e| match e.downcast_ref::<std::io::Error>() {
        Some(io) => io.get_ref().map(|inner| inner as &(dyn std::error::Error + 'static)),
        None => e.source(),
    })
}

/// A connection (TCP and TLS handshake) or a response that took longer than the SDK allows.
#[derive(Debug, thiserror::Error)]
#[error("{0} did not come within {1:?}")]
struct TimedOut(&'static str, Duration);

/// The HTTPS connector, each connection (TCP and TLS handshake) bounded by the connect timeout.
#[derive(Debug, Clone)]
struct ConnectTimeout {
    inner: HttpsConnector<TcpConnector>,
    limit: Option<Duration>,
}

type Connection = <HttpsConnector<TcpConnector> as Service<http::Uri>>::Response;

impl Service<http::Uri> for ConnectTimeout {
    type Response = Connection;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Connection, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let limit = self.limit;
        Box::pin(async move {
            match limit {
                Some(limit) => {
                    tokio::time::timeout(limit, connecting).await.map_err(|_| TimedOut("the connection", limit))?
                }
                None => connecting.await,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
    use aws_smithy_runtime_api::client::result::SdkError;
    use aws_smithy_types::retry::RetryConfig;
    use aws_smithy_types::timeout::TimeoutConfig;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// A test CA standing for a corporate TLS proxy's, and a certificate it issued to
    /// `localhost` and 127.0.0.1, with its key. Test-only material, valid until 2126.
    const TEST_CA: &str = "-----BEGIN CERTIFICATE-----
MIIByzCCAXGgAwIBAgIUNkYPheuYDDbO324R1G1X/yDVvr4wCgYIKoZIzj0EAwIw
MjETMBEGA1UECgwKS2lybyB0ZXN0czEbMBkGA1UEAwwSS2lybyB0ZXN0IHByb3h5
IENBMCAXDTI2MTIwMTE1MjE0NVoYDzIxMjYxMTA3MTUyMTQ1WjAyMRMwEQYDVQQK
DApLaXJvIHRlc3RzMRswGQYDVQQDDBJLaXJvIHRlc3QgcHJveHkgQ0EwWTATBgcq
hkjOPQIBBggqhkjOPQMBBwNCAAQ5zcU71ss6Nqjy++pjnHQ/D9EjSw91BnwxecXo
9cwA8iAVEf6fng4y0IZgJ9Ehkn9/a7w/hlouKJ6TRJ2Ev5VWo2MwYTAdBgNVHQ4E
FgQUDqDp0jadNDyrc9GFdlxrmdG3+VgwHwYDVR0jBBgwFoAUDqDp0jadNDyrc9GF
dlxrmdG3+VgwDwYDVR0TAQH/BAUwAwEB/zAOBgNVHQ8BAf8EBAMCAQYwCgYIKoZI
zj0EAwIDSAAwRQIhAL8G6KkTl0o2+rwLYp+J8uTd4Aw/XVFQTFj4ZtSfaJbmAiBD
TRvWvOIz8W5vO7JV670TJLX5wKNROy3F0uxURgtnQA==
-----END CERTIFICATE-----
";
    const TEST_SERVER_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIB3TCCAYOgAwIBAgIUUHxSeDy8wjXr7Tib4nViS8nTkZ0wCgYIKoZIzj0EAwIw
MjETMBEGA1UECgwKS2lybyB0ZXN0czEbMBkGA1UEAwwSS2lybyB0ZXN0IHByb3h5
IENBMCAXDTI2MTIwMTE1MjE0NVoYDzIxMjYxMTA3MTUyMTQ1WjAUMRIwEAYDVQQD
DAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAQ3PliPfnmw1dG3
HVl9Jsb+XnJOH2XqbMH6KNPDbscDN/339B+du0t6PPpFyqU1t4cjn0zhR5/KZUCh
FF3CZa1ko4GSMIGPMBoGA1UdEQQTMBGCCWxvY2FsaG9zdIcEfwAAATAMBgNVHRMB
Af8EAjAAMA4GA1UdDwEB/wQEAwIHgDATBgNVHSUEDDAKBggrBgEFBQcDATAdBgNV
HQ4EFgQUcKFAnTLCR3TFr/VP2yRsVfmsNgIwHwYDVR0jBBgwFoAUDqDp0jadNDyr
c9GFdlxrmdG3+VgwCgYIKoZIzj0EAwIDSAAwRQIhAJoZaDEdynQBbDXW1jN5/uxA
k4g3BFfoSPveyQzJR7WPAiBaQWud/lh/96/CQOFXjVBFrV/2PFrqJMDzRGVNcaKy
0A==
-----END CERTIFICATE-----
";
    const TEST_SERVER_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgveoeuLH1sT1Sp27N
fpW4j1yZnnVqV5fGax7IVZR95ZShRANCAAQ3PliPfnmw1dG3HVl9Jsb+XnJOH2Xq
bMH6KNPDbscDN/339B+du0t6PPpFyqU1t4cjn0zhR5/KZUChFF3CZa1k
-----END PRIVATE KEY-----
";

    fn subjects(roots: &RootCertStore) -> Vec<String> {
        roots.roots.iter().map(|a| String::from_utf8_lossy(a.subject.as_ref()).into_owned()).collect()
    }

    /// The roots AWS endpoints chain to: Amazon Trust Services' four, and the Starfield root
    /// that cross-signs them for older clients.
    #[test]
    fn the_built_in_roots_hold_amazon_trust_services() {
        let roots = built_in_roots();
        assert!(roots.len() > 100, "Mozilla's roots, not a handful: {}", roots.len());
        let subjects = subjects(&roots);
        for name in [
            "Amazon Root CA 1",
            "Amazon Root CA 2",
            "Amazon Root CA 3",
            "Amazon Root CA 4",
            "Starfield Services Root Certificate Authority - G2",
        ] {
            assert!(subjects.iter().any(|s| s.contains(name)), "{name} is a root");
        }
    }

    #[test]
    fn a_pem_bundle_adds_its_certificates_to_the_built_in_roots() {
        let mut roots = built_in_roots();
        let before = roots.len();
        assert_eq!(add_pem_bundle(&mut roots, TEST_CA.as_bytes()).unwrap(), 1);
        assert_eq!(roots.len(), before + 1);
        assert!(subjects(&roots).iter().any(|s| s.contains("Kiro test proxy CA")));
    }

    #[test]
    fn a_bundle_without_certificates_adds_nothing() {
        let mut roots = built_in_roots();
        let before = roots.len();
        assert!(matches!(add_pem_bundle(&mut roots, b"not a certificate\n"), Err(ExtraRootsError::Empty)));
        let broken = TEST_CA.replace("MIIB", "M!IB");
        assert!(add_pem_bundle(&mut roots, broken.as_bytes()).is_err());
        assert_eq!(roots.len(), before);
    }

    /// Counts the connections it accepts and answers each request with an empty `ListTables`
    /// (the first `failing` requests with a 500), over TLS with [`TEST_SERVER_CERT`] if `tls`.
    async fn dynamodb_stub(tls: bool, failing: usize) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let failing = Arc::new(AtomicUsize::new(failing));
        let acceptor = tls.then(|| {
            let certs = CertificateDer::pem_slice_iter(TEST_SERVER_CERT.as_bytes()).collect::<Result<Vec<_>, _>>();
            let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(TEST_SERVER_KEY.as_bytes()).unwrap();
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let config = rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(certs.unwrap(), key)
                .unwrap();
            tokio_rustls::TlsAcceptor::from(Arc::new(config))
        });
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let (acceptor, failing) = (acceptor.clone(), failing.clone());
                tokio::spawn(async move {
                    match acceptor {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(tcp).await {
                                answer(stream, &failing).await;
                            }
                        }
                        None => answer(tcp, &failing).await,
                    }
                });
            }
        });
        let scheme = if tls { "https" } else { "http" };
        (format!("{scheme}://localhost:{port}"), accepted)
    }

    /// Answers each request of a kept-alive connection, until the client closes it.
    async fn answer(mut stream: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin, failing: &AtomicUsize) {
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            // Headers, then the body its Content-Length announces.
            let Ok(n) = stream.read(&mut buf).await else { return };
            if n == 0 {
                return;
            }
            request.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&request).to_ascii_lowercase();
            let Some(end) = text.find("\r\n\r\n") else { continue };
            let length = text
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if request.len() < end + 4 + length {
                continue;
            }
            request.drain(..end + 4 + length);
            let fails = failing.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
            let (status, body) = match fails {
                true => ("500 Internal Server Error", r#"{"__type":"InternalServerError","message":"try again"}"#),
                false => ("200 OK", r#"{"TableNames":[]}"#),
            };
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            if stream.write_all(response.as_bytes()).await.is_err() {
                return;
            }
        }
    }

    /// A DynamoDB client over `http`, as `load_sdk_config` builds them, with at most `attempts`
    /// attempts and a connect timeout of `connect`.
    fn dynamodb(http: SharedHttpClient, endpoint: &str, attempts: u32, connect: Duration) -> aws_sdk_dynamodb::Client {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
            .endpoint_url(endpoint)
            .http_client(http)
            .retry_config(
                RetryConfig::standard().with_max_attempts(attempts).with_initial_backoff(Duration::from_millis(1)),
            )
            .timeout_config(TimeoutConfig::builder().connect_timeout(connect).build())
            .build();
        aws_sdk_dynamodb::Client::from_conf(config)
    }

    fn client_trusting(extra: Option<&str>) -> SharedHttpClient {
        let mut roots = built_in_roots();
        if let Some(pem) = extra {
            add_pem_bundle(&mut roots, pem.as_bytes()).unwrap();
        }
        SharedHttpClient::new(SdkHttpClient::new(tls_config(roots)))
    }

    /// The functions' SDK clients use this client, not the SDK's default (which reads the
    /// system's certificate files when a client is built).
    #[tokio::test]
    async fn the_sdk_configuration_uses_the_process_client() {
        let config = crate::aws::load_sdk_config().await;
        let client = config.http_client().expect("an HTTP client is set");
        assert!(format!("{client:?}").contains("SdkHttpClient"), "{client:?}");
    }

    /// Emulators (moto, `AWS_ENDPOINT_URL=http://…`) are reached over plain HTTP, and the
    /// connection is kept for the next call.
    #[tokio::test]
    async fn the_sdk_reaches_an_emulator_over_plain_http() {
        let (endpoint, accepted) = dynamodb_stub(false, 0).await;
        let client = dynamodb(client_trusting(None), &endpoint, 1, Duration::from_secs(3));
        let out = client.list_tables().send().await.expect("answered over http");
        assert!(out.table_names().is_empty());
        client.list_tables().send().await.expect("answered again");
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "one connection, reused");
    }

    /// After a transient failure the SDK poisons the connection: its retry opens a new one.
    #[tokio::test]
    async fn a_retry_after_a_server_error_takes_a_new_connection() {
        let (endpoint, accepted) = dynamodb_stub(false, 1).await;
        let client = dynamodb(client_trusting(None), &endpoint, 2, Duration::from_secs(3));
        client.list_tables().send().await.expect("the retry is answered");
        assert_eq!(accepted.load(Ordering::SeqCst), 2, "the failed attempt's connection was not reused");
    }

    /// The escape hatch for a TLS-intercepting proxy: its root, added from a bundle, is trusted.
    #[tokio::test]
    async fn the_sdk_trusts_a_root_added_from_a_bundle_over_https() {
        let (endpoint, _) = dynamodb_stub(true, 0).await;
        let client = dynamodb(client_trusting(Some(TEST_CA)), &endpoint, 1, Duration::from_secs(3));
        client.list_tables().send().await.expect("the proxy's certificate verifies");
    }

    /// Without it, the certificate does not verify, and no retry would change that.
    #[tokio::test]
    async fn an_unknown_issuer_is_refused_and_not_retried() {
        let (endpoint, accepted) = dynamodb_stub(true, 0).await;
        let client = dynamodb(client_trusting(None), &endpoint, 3, Duration::from_secs(3));
        let err = client.list_tables().send().await.expect_err("the test CA is not a built-in root");
        let SdkError::DispatchFailure(failure) = &err else { panic!("a dispatch failure: {err:?}") };
        assert!(failure.is_other() && failure.as_other().is_none(), "not retryable: {failure:?}");
        assert!(causes(&err).any(|c| c.is::<rustls::Error>()), "a TLS refusal: {err:?}");
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "one attempt");
    }

    /// A refused connection is transient: retried as the SDK's default client retries it.
    #[tokio::test]
    async fn a_refused_connection_is_an_io_error_the_sdk_retries() {
        let port = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
        let client = dynamodb(client_trusting(None), &format!("http://127.0.0.1:{port}"), 1, Duration::from_secs(3));
        let err = client.list_tables().send().await.expect_err("nothing listens");
        let SdkError::DispatchFailure(failure) = &err else { panic!("a dispatch failure: {err:?}") };
        assert!(failure.is_io(), "{failure:?}");
    }

    /// The connect timeout covers the TLS handshake: a server that accepts and never answers
    /// costs the timeout, not the attempt's.
    #[tokio::test]
    async fn a_handshake_that_never_ends_is_a_connect_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut held: Vec<TcpStream> = Vec::new();
            while let Ok((tcp, _)) = listener.accept().await {
                held.push(tcp);
            }
        });
        let client =
            dynamodb(client_trusting(None), &format!("https://localhost:{port}"), 1, Duration::from_millis(200));
        let sent = tokio::time::timeout(Duration::from_secs(3), client.list_tables().send()).await;
        let err = sent.expect("over within the connect timeout").expect_err("no handshake");
        let SdkError::DispatchFailure(failure) = &err else { panic!("a dispatch failure: {err:?}") };
        assert!(failure.is_timeout(), "{failure:?}");
    }
}
