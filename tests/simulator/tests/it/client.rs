//! A tiny HTTP/1.1 client over raw TCP, so tests see resets, timeouts and raw bytes as they are.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use yiwang_simulator::{SimConfig, Simulator};

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("reply body is JSON")
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body decoded as GB18030 (panics on undecodable bytes).
    pub fn gb18030(&self) -> String {
        let (text, _, bad) = encoding_rs::GB18030.decode(&self.body);
        assert!(!bad, "reply is not valid GB18030");
        text.into_owned()
    }
}

pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Reply> {
    let stream = TcpStream::connect(addr).await?;
    send_over(stream, addr, method, path, headers, body).await
}

/// One request on `stream` (plain TCP, or TLS wrapping it), then read until the server
/// closes.
pub async fn send_over<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Reply> {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    parse(&raw)
}

fn parse(raw: &[u8]) -> io::Result<Reply> {
    let bad = |why: &str| io::Error::new(io::ErrorKind::InvalidData, why.to_owned());
    if raw.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed without a reply",
        ));
    }
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| bad("head not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if let Some(len) = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        body.truncate(len);
    }
    Ok(Reply {
        status,
        headers,
        body,
    })
}

pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    send(addr, "GET", path, &[], b"")
        .await
        .expect("GET answered")
}

pub async fn post_json(addr: SocketAddr, path: &str, token: Option<&str>, body: &Value) -> Reply {
    try_post_json(addr, path, token, body)
        .await
        .expect("POST answered")
}

pub async fn try_post_json(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
    body: &Value,
) -> io::Result<Reply> {
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(token) = token {
        headers.push(("X-Auth-Token", token));
    }
    send(addr, "POST", path, &headers, body.to_string().as_bytes()).await
}

pub async fn login(addr: SocketAddr) -> String {
    let reply = post_json(
        addr,
        "/api/auth/login",
        None,
        &serde_json::json!({"username": "yiwang", "password": "s3cret-pass"}),
    )
    .await
    .json();
    assert_eq!(reply["code"], "0000", "{reply}");
    reply["data"]["token"]
        .as_str()
        .expect("token is a string")
        .to_owned()
}

/// POST a SOAP envelope, encoded to GB18030.
pub async fn soap(addr: SocketAddr, action: &str, xml: &str) -> Reply {
    try_soap(addr, action, xml).await.expect("SOAP answered")
}

pub async fn try_soap(addr: SocketAddr, action: &str, xml: &str) -> io::Result<Reply> {
    let (bytes, _, _) = encoding_rs::GB18030.encode(xml);
    soap_bytes(addr, action, &bytes).await
}

pub async fn soap_bytes(addr: SocketAddr, action: &str, body: &[u8]) -> io::Result<Reply> {
    let action = format!("\"{action}\"");
    send(
        addr,
        "POST",
        "/services/CaseService",
        &[
            ("Content-Type", "text/xml; charset=GB18030"),
            ("SOAPAction", &action),
        ],
        body,
    )
    .await
}

/// Text of the first `<tag>…</tag>` in `xml`.
pub fn between<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&close)? + start;
    Some(&xml[start..end])
}

pub async fn start(cfg: SimConfig) -> Simulator {
    Simulator::start(cfg, "127.0.0.1:0".parse().expect("loopback address"))
        .await
        .expect("simulator starts")
}

/// Poll `check` every 10 ms until it holds; false after `limit`.
pub async fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    check()
}
