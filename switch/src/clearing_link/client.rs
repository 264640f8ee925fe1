//! [`SettlementSource`] over the network: HTTPS to `clearing api` with the switch node's
//! client certificate (mutual TLS, rustls with the ring provider; GB/T 22239 level 3 protects
//! every link, so there is no plaintext mode), over HTTP/1.1 connections kept alive between
//! calls (hyper): a console page makes several calls, and each new connection costs a TCP and
//! a mutual-TLS handshake (two certificate chains checked, an ECDHE exchange).
//!
//! The pool: at most [`IDLE_CONNECTIONS_MAX`] idle connections, each reused for at most
//! [`IDLE_KEEP`] after its last answer; a connection found closed is dropped. A call that fails
//! on a reused connection before its request went out is sent on a new one; a read (GET) that
//! fails after is sent once more on a new one (the pooled connection may have died while idle:
//! clearing restarted), a window close is not (it may have been done: the operator reads the
//! window and retries with the same `Idempotency-Key`).
//!
//! Bounds: connecting, the handshake and the whole exchange each give up after
//! [`ClearingClientConfig::timeout`]; an answer longer than [`ANSWER_LEN_MAX_BYTES`] is
//! refused.

use super::{SettlementError, SettlementOperator, SettlementSource};
use crate::acquirer::{Pem, TlsError};
use axum::http::{header, Method, Request, StatusCode, Uri};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use schemas::settlement_api::{
    CloseWindow, OpenPositions, StatementFormat, WindowDetail, WindowPage, INSTITUTION_HEADER,
    INSTITUTION_KIND_HEADER, OPERATOR_HEADER,
};
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::ServerName;

/// Longest answer taken (a statement of a busy bank's window), bytes.
pub const ANSWER_LEN_MAX_BYTES: usize = 64 * 1024 * 1024;
/// Idle connections kept for the next calls (clearing takes 64 at once from every node).
pub const IDLE_CONNECTIONS_MAX: usize = 2;
/// How long an idle connection is kept.
pub const IDLE_KEEP: Duration = Duration::from_secs(30);

/// A connection waiting for the next call.
struct Idle {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    since: Instant,
}

/// Where clearing's settlement API is and how to prove this node to it.
#[derive(Debug, Clone)]
pub struct ClearingClientConfig {
    /// `https://host:port` (a path prefix is kept).
    pub url: String,
    /// Give up on connecting, the handshake or the exchange after this long.
    pub timeout: Duration,
}

impl ClearingClientConfig {
    /// At `url`, with a 10-second timeout.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            timeout: Duration::from_secs(10),
        }
    }
}

/// The HTTPS client.
#[derive(Clone)]
pub struct ClearingClient {
    authority: String,
    host: String,
    port: u16,
    prefix: String,
    server_name: ServerName<'static>,
    connector: tokio_rustls::TlsConnector,
    timeout: Duration,
    idle: Arc<std::sync::Mutex<Vec<Idle>>>,
}

impl std::fmt::Debug for ClearingClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClearingClient")
            .field("authority", &self.authority)
            .finish_non_exhaustive()
    }
}

impl ClearingClient {
    /// From PEM files: the CA of clearing's server certificate, this node's client
    /// certificate chain and its key.
    pub fn from_pem_files(
        config: ClearingClientConfig,
        ca: &str,
        cert_chain: &str,
        key: &str,
    ) -> Result<Self, TlsError> {
        Self::build(config, Pem::File(ca), Pem::File(cert_chain), Pem::File(key))
    }

    /// From PEM text in memory (tests).
    pub fn from_pem(
        config: ClearingClientConfig,
        ca_pem: &str,
        cert_chain_pem: &str,
        key_pem: &str,
    ) -> Result<Self, TlsError> {
        Self::build(
            config,
            Pem::Text(ca_pem),
            Pem::Text(cert_chain_pem),
            Pem::Text(key_pem),
        )
    }

    fn build(
        config: ClearingClientConfig,
        ca: Pem<'_>,
        cert_chain: Pem<'_>,
        key: Pem<'_>,
    ) -> Result<Self, TlsError> {
        let bad = |why: &str| TlsError::Config(format!("[clearing_api] url {}: {why}", config.url));
        let uri: Uri = config.url.parse().map_err(|_| bad("not a URL"))?;
        if uri.scheme_str() != Some("https") {
            return Err(bad("https only (mutual TLS; every link is protected)"));
        }
        let host = uri.host().ok_or_else(|| bad("no host"))?.to_owned();
        let port = uri.port_u16().unwrap_or(443);
        let prefix = uri.path().trim_end_matches('/').to_owned();
        let server_name =
            ServerName::try_from(host.trim_matches(|c| c == '[' || c == ']').to_owned())
                .map_err(|e| bad(&e.to_string()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(ca.roots()?)
            .with_client_auth_cert(cert_chain.certificates()?, key.private_key()?)
            .map_err(|e| TlsError::Config(e.to_string()))?;
        Ok(Self {
            authority: format!("{host}:{port}"),
            host,
            port,
            prefix,
            server_name,
            connector: tokio_rustls::TlsConnector::from(Arc::new(tls)),
            timeout: config.timeout,
            idle: Arc::default(),
        })
    }

    fn unavailable(&self, what: impl std::fmt::Display) -> SettlementError {
        tracing::warn!(clearing = %self.authority, error = %what, "settlement API call failed");
        SettlementError::Unavailable(what.to_string())
    }

    /// A new connection: TCP, the mutual-TLS handshake, HTTP/1.1 (its driver task ends when
    /// the connection closes or its sender is dropped).
    async fn connect(
        &self,
    ) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, SettlementError> {
        let tcp = tokio::net::TcpStream::connect((
            self.host.trim_matches(|c| c == '[' || c == ']'),
            self.port,
        ))
        .await
        .map_err(|e| self.unavailable(format!("connect: {e}")))?;
        let tls = self
            .connector
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| self.unavailable(format!("TLS: {e}")))?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| self.unavailable(format!("HTTP: {e}")))?;
        tokio::spawn(connection);
        Ok(sender)
    }

    /// An idle connection still open and fresh enough, if any.
    fn take_idle(&self) -> Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock().ok()?;
        while let Some(c) = idle.pop() {
            if !c.sender.is_closed() && c.since.elapsed() < IDLE_KEEP {
                return Some(c.sender);
            }
        }
        None
    }

    /// Keeps a connection whose answer was read whole for the next call.
    fn put_idle(&self, sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>) {
        if sender.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock() {
            idle.retain(|c| !c.sender.is_closed() && c.since.elapsed() < IDLE_KEEP);
            if idle.len() < IDLE_CONNECTIONS_MAX {
                idle.push(Idle {
                    sender,
                    since: Instant::now(),
                });
            }
        }
    }

    fn request(
        &self,
        who: &SettlementOperator,
        method: &Method,
        path_and_query: &str,
        body: Option<&[u8]>,
    ) -> Result<Request<Full<Bytes>>, SettlementError> {
        let mut request = Request::builder()
            .method(method.clone())
            .uri(format!("{}{path_and_query}", self.prefix))
            .header(header::HOST, &self.authority)
            .header(OPERATOR_HEADER, &who.operator_id)
            .header(INSTITUTION_HEADER, &who.institution)
            .header(INSTITUTION_KIND_HEADER, who.kind.as_sql());
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        request
            .body(Full::new(Bytes::copy_from_slice(body.unwrap_or_default())))
            .map_err(|e| self.unavailable(format!("request: {e}")))
    }

    /// One exchange: (status, body).
    async fn exchange(
        &self,
        who: &SettlementOperator,
        method: Method,
        path_and_query: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes), SettlementError> {
        let exchange = async {
            if let Some(mut sender) = self.take_idle() {
                let request = self.request(who, &method, path_and_query, body.as_deref())?;
                match sender.try_send_request(request).await {
                    Ok(answer) => return self.read(sender, answer).await,
                    // Not sent (the connection was closing): send it on a new one.
                    Err(e) if e.message().is_some() => {}
                    // Sent, maybe received: only a read is sent again.
                    Err(_) if method == Method::GET => {}
                    Err(e) => return Err(self.unavailable(format!("HTTP: {}", e.error()))),
                }
            }
            let mut sender = self.connect().await?;
            let request = self.request(who, &method, path_and_query, body.as_deref())?;
            let answer = sender
                .send_request(request)
                .await
                .map_err(|e| self.unavailable(format!("HTTP: {e}")))?;
            self.read(sender, answer).await
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| self.unavailable("timed out"))?
    }

    /// Reads an answer whole (bounded), then keeps its connection for the next call.
    async fn read(
        &self,
        sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
        answer: hyper::Response<hyper::body::Incoming>,
    ) -> Result<(StatusCode, Bytes), SettlementError> {
        let status = answer.status();
        let body = Limited::new(answer.into_body(), ANSWER_LEN_MAX_BYTES)
            .collect()
            .await
            .map_err(|e| self.unavailable(format!("answer: {e}")))?
            .to_bytes();
        self.put_idle(sender);
        Ok((status, body))
    }

    /// An answer as `T`, or the error its status says.
    async fn call<T: DeserializeOwned>(
        &self,
        who: &SettlementOperator,
        method: Method,
        path_and_query: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, SettlementError> {
        let (status, body) = self.exchange(who, method, path_and_query, body).await?;
        let body = self.success(status, body)?;
        serde_json::from_slice(&body).map_err(|e| self.unavailable(format!("answer: {e}")))
    }

    fn success(&self, status: StatusCode, body: Bytes) -> Result<Bytes, SettlementError> {
        if status.is_success() {
            return Ok(body);
        }
        let detail = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["detail"].as_str().map(str::to_owned))
            .unwrap_or_default();
        Err(match status {
            StatusCode::NOT_FOUND => SettlementError::NotFound,
            StatusCode::FORBIDDEN => SettlementError::Forbidden(detail),
            StatusCode::CONFLICT => SettlementError::Conflict(detail),
            StatusCode::BAD_REQUEST => SettlementError::Invalid(detail),
            other => self.unavailable(format!("status {other}: {detail}")),
        })
    }
}

#[async_trait::async_trait]
impl SettlementSource for ClearingClient {
    async fn windows(
        &self,
        who: &SettlementOperator,
        before: Option<i64>,
        limit: u32,
    ) -> Result<WindowPage, SettlementError> {
        let query = match before {
            Some(b) => format!("/v1/windows?before={b}&limit={limit}"),
            None => format!("/v1/windows?limit={limit}"),
        };
        self.call(who, Method::GET, &query, None).await
    }

    async fn window(
        &self,
        who: &SettlementOperator,
        id: i64,
    ) -> Result<WindowDetail, SettlementError> {
        self.call(who, Method::GET, &format!("/v1/windows/{id}"), None)
            .await
    }

    async fn positions(&self, who: &SettlementOperator) -> Result<OpenPositions, SettlementError> {
        self.call(who, Method::GET, "/v1/positions", None).await
    }

    async fn close_window(
        &self,
        who: &SettlementOperator,
        request: &CloseWindow,
    ) -> Result<WindowDetail, SettlementError> {
        let body = serde_json::to_vec(request).map_err(|e| self.unavailable(e))?;
        self.call(who, Method::POST, "/v1/windows/close", Some(body))
            .await
    }

    async fn statement(
        &self,
        who: &SettlementOperator,
        id: i64,
        institution: &str,
        format: StatementFormat,
    ) -> Result<String, SettlementError> {
        let institution: String = form_urlencoded::byte_serialize(institution.as_bytes()).collect();
        let path = format!(
            "/v1/windows/{id}/reports/{institution}?format={}",
            format.as_str()
        );
        let (status, body) = self.exchange(who, Method::GET, &path, None).await?;
        let body = self.success(status, body)?;
        String::from_utf8(body.to_vec()).map_err(|e| self.unavailable(format!("answer: {e}")))
    }
}
