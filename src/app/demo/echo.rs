//! An upstream that answers every uwsgi request with the JSON of the
//! environ it received. It shows a newcomer exactly what Keystone would
//! see, and serves the integration tests as a stand-in for Keystone.

use std::collections::BTreeMap;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::upstream::uwsgi::frame;

/// Serves until the listener fails; each connection is one request.
pub async fn serve_uwsgi_echo(listener: TcpListener) {
    loop {
        let Ok((sock, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            if let Err(e) = answer(sock).await {
                tracing::debug!(error = %e, "echo upstream: bad request");
            }
        });
    }
}

async fn answer(mut sock: TcpStream) -> std::io::Result<()> {
    let mut head = [0u8; 4];
    sock.read_exact(&mut head).await?;
    let size = u16::from_le_bytes([head[1], head[2]]) as usize;
    let mut packet = head.to_vec();
    packet.resize(4 + size, 0);
    sock.read_exact(&mut packet[4..]).await?;
    let (env, _) = frame::decode(&packet).map_err(std::io::Error::other)?;
    let map: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| {
            (
                String::from_utf8_lossy(k).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            )
        })
        .collect();
    let len: usize = map
        .get("CONTENT_LENGTH")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len.min(16 << 20)];
    sock.read_exact(&mut body).await?;
    let json =
        serde_json::json!({ "environ": map, "body": String::from_utf8_lossy(&body) }).to_string();
    let resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nX-Echo: uwsgi\r\n\r\n{json}",
        json.len()
    );
    sock.write_all(resp.as_bytes()).await?;
    sock.shutdown().await
}
