//! HTTP/1.1 by hand over a TCP socket: a well-behaved client library will not send a 1 MB
//! header or 200 headers, and stops at the first write error, while a hostile client does
//! both and still reads the answer.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How the request body goes out.
pub enum Upload {
    None,
    /// With `Content-Length`.
    Sized(Bytes),
    /// `Transfer-Encoding: chunked`, 1 MB chunks: the size is known only at the end.
    Chunked(Bytes),
}

/// A raw response: status and decoded body.
#[derive(Debug)]
pub struct RawReply {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Sends one request (`head` holds the request line and headers, without the blank line) and
/// reads the response until the server closes the connection. Write errors are ignored: a
/// server may answer and close before a large body is through.
pub async fn exchange(addr: SocketAddr, head: &str, upload: Upload) -> RawReply {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let mut head = format!("{head}\r\nHost: {addr}\r\nConnection: close\r\n");
    match &upload {
        Upload::None => head.push_str("Content-Length: 0\r\n"),
        Upload::Sized(body) => head.push_str(&format!("Content-Length: {}\r\n", body.len())),
        Upload::Chunked(_) => head.push_str("Transfer-Encoding: chunked\r\n"),
    }
    head.push_str("\r\n");
    let send = async move {
        let _ = send_request(&mut writer, head.as_bytes(), upload).await;
        // Dropping the write half would half-close the connection, which hyper takes as
        // the client leaving: keep it until the answer is read.
        writer
    };
    let receive = async move {
        let mut raw = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
                // A reset after the answer (the server closed with our body unread).
                Err(_) if !raw.is_empty() => break,
                Err(err) => panic!("no answer from {addr}: {err}"),
            }
        }
        raw
    };
    let exchange = async { tokio::join!(send, receive) };
    let (_writer, raw) = tokio::time::timeout(Duration::from_secs(60), exchange)
        .await
        .unwrap_or_else(|_| panic!("{addr} did not answer within 60 s"));
    parse(&raw)
}

async fn send_request(
    writer: &mut tokio::net::tcp::OwnedWriteHalf,
    head: &[u8],
    upload: Upload,
) -> std::io::Result<()> {
    writer.write_all(head).await?;
    match upload {
        Upload::None => {}
        Upload::Sized(body) => writer.write_all(&body).await?,
        Upload::Chunked(body) => {
            for chunk in body.chunks(1024 * 1024) {
                writer
                    .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                    .await?;
                writer.write_all(chunk).await?;
                writer.write_all(b"\r\n").await?;
            }
            writer.write_all(b"0\r\n\r\n").await?;
        }
    }
    writer.flush().await
}

fn parse(raw: &[u8]) -> RawReply {
    let text = String::from_utf8_lossy(raw);
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete response head: {text:?}"));
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {head:?}"));
    let body = &raw[end + 4..];
    let body = if head.contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_vec()
    };
    RawReply { status, body }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or(0);
        data = &data[line_end + 2..];
        if size == 0 || data.len() < size {
            break;
        }
        out.extend_from_slice(&data[..size]);
        data = data.get(size + 2..).unwrap_or_default();
    }
    out
}
