//! The REST side: one HTTP/1.1 keep-alive connection per worker (as `wrk`, `oha` and the
//! FastAPI comparison use them), a GET with an optional bearer token, and 200 as success.

use anyhow::Context as _;
use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt as _, Empty};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::measure::Call;

/// Where the gateway listens, parsed once from `http://host:port`.
#[derive(Clone)]
pub struct Gateway {
    authority: String,
    host: HeaderValue,
}

impl Gateway {
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let uri: Uri = url.parse().with_context(|| format!("bad gateway URL {url}"))?;
        if uri.scheme_str() != Some("http") {
            anyhow::bail!("gateway URL must be plain http://host:port, got {url}");
        }
        let authority = uri.authority().context("gateway URL needs host:port")?.as_str().to_owned();
        let host = HeaderValue::from_str(&authority).context("gateway host")?;
        Ok(Self { authority, host })
    }

    async fn connect(&self) -> Result<SendRequest<Empty<Bytes>>, String> {
        let stream = TcpStream::connect(&self.authority).await.map_err(|e| format!("connect: {e}"))?;
        stream.set_nodelay(true).map_err(|e| format!("nodelay: {e}"))?;
        let (sender, connection) =
            http1::handshake(TokioIo::new(stream)).await.map_err(|e| format!("handshake: {e}"))?;
        // The connection task ends when the sender is dropped or the server closes.
        tokio::spawn(connection);
        Ok(sender)
    }
}

/// `GET <path>` on the worker's own connection, reconnecting after a failure.
pub struct Get {
    gateway: Gateway,
    path: &'static str,
    authorization: Option<HeaderValue>,
    sender: Option<SendRequest<Empty<Bytes>>>,
}

impl Get {
    pub fn new(gateway: Gateway, path: &'static str, access_token: Option<&str>) -> anyhow::Result<Self> {
        let authorization = access_token
            .map(|token| HeaderValue::from_str(&format!("Bearer {token}")))
            .transpose()
            .context("access token is not a valid header")?;
        Ok(Self { gateway, path, authorization, sender: None })
    }

    /// Sends one GET and reads the whole body; any status but 200 is an error.
    pub async fn get(&mut self) -> Result<Bytes, String> {
        let sender = match &mut self.sender {
            Some(sender) if !sender.is_closed() => sender,
            _ => self.sender.insert(self.gateway.connect().await?),
        };
        let mut request = Request::get(self.path).header(header::HOST, self.gateway.host.clone());
        if let Some(authorization) = &self.authorization {
            request = request.header(header::AUTHORIZATION, authorization.clone());
        }
        let request = request.body(Empty::new()).map_err(|e| format!("request: {e}"))?;
        let result = async {
            sender.ready().await.map_err(|e| format!("connection: {e}"))?;
            let response = sender.send_request(request).await.map_err(|e| format!("send: {e}"))?;
            let status = response.status();
            let body = response.into_body().collect().await.map_err(|e| format!("body: {e}"))?.to_bytes();
            Ok::<_, String>((status, body))
        }
        .await;
        match result {
            Ok((StatusCode::OK, body)) => Ok(body),
            Ok((status, body)) => Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&body))),
            Err(error) => {
                self.sender = None;
                Err(error)
            }
        }
    }
}

impl Call for Get {
    async fn call(&mut self) -> Result<(), String> {
        self.get().await.map(drop)
    }
}
