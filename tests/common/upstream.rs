//! Recording stand-ins for Keystone. Each keeps what it received so a test
//! can assert on the raw bytes (a HEAD response has no body to echo into),
//! and answers with JSON of the request. Written from scratch here, not
//! with fedgate's own decoder, so a framing bug cannot hide itself.
//!
//! Paths starting with `/slow/<ms>` wait that long before answering.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request as the upstream saw it.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// uwsgi: the environ; HTTP: `HTTP_`-less header names as sent, lower-cased.
    pub vars: Vec<(String, String)>,
    /// The raw request head (HTTP) or vars block (uwsgi).
    pub raw: Vec<u8>,
    pub body: Vec<u8>,
    /// When the head was complete but the body not yet read: streaming proof.
    pub head_at: Option<std::time::Instant>,
    pub body_at: Option<std::time::Instant>,
}

impl Seen {
    pub fn get(&self, k: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Default)]
pub struct Record(pub Arc<Mutex<Vec<Seen>>>);

impl Record {
    pub fn all(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }
    pub fn last(&self) -> Seen {
        self.all().pop().expect("upstream received a request")
    }
    pub fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
    /// Heads seen so far (a request may still be sending its body).
    pub fn heads(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

pub struct Upstream {
    pub addr: SocketAddr,
    pub record: Record,
}

fn slow(path: &str) {
    if let Some(ms) = path
        .strip_prefix("/slow/")
        .and_then(|r| r.split(['/', '?']).next())
        .and_then(|n| n.parse::<u64>().ok())
    {
        std::thread::sleep(Duration::from_millis(ms));
    }
}

fn answer_json(seen: &Seen, kind: &str) -> Vec<u8> {
    let vars: BTreeMap<&str, &str> = seen
        .vars
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let json = serde_json::json!({
        "kind": kind,
        "vars": vars,
        "body_len": seen.body.len(),
        "body_sum": seen.body.iter().map(|&b| b as u64).sum::<u64>(),
    })
    .to_string();
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nX-Echo: {kind}\r\n\r\n{json}",
        json.len()
    )
    .into_bytes()
}

/// The uwsgi protocol: `0 len16le 0`, vars, then CONTENT_LENGTH bytes.
pub fn uwsgi_echo() -> Upstream {
    serve(|s, r| {
        let _ = uwsgi_one(s, r);
    })
}

/// A listener on an ephemeral port, one thread per connection running
/// `conn` with the shared record.
fn serve(conn: fn(TcpStream, &Record)) -> Upstream {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let record = Record::default();
    let r = record.clone();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let r = r.clone();
            std::thread::spawn(move || conn(s, &r));
        }
    });
    Upstream { addr, record }
}

fn uwsgi_one(mut s: TcpStream, r: &Record) -> std::io::Result<()> {
    let mut h = [0u8; 4];
    s.read_exact(&mut h)?;
    assert_eq!((h[0], h[3]), (0, 0), "uwsgi modifiers");
    let size = u16::from_le_bytes([h[1], h[2]]) as usize;
    let mut block = vec![0u8; size];
    s.read_exact(&mut block)?;
    let mut vars = Vec::new();
    let mut i = 0;
    let take = |i: &mut usize| {
        let n = u16::from_le_bytes([block[*i], block[*i + 1]]) as usize;
        let v = String::from_utf8_lossy(&block[*i + 2..*i + 2 + n]).into_owned();
        *i += 2 + n;
        v
    };
    while i < size {
        let k = take(&mut i);
        let v = take(&mut i);
        vars.push((k, v));
    }
    let mut seen = Seen {
        vars,
        raw: block.clone(),
        head_at: Some(std::time::Instant::now()),
        ..Default::default()
    };
    let idx = {
        let mut g = r.0.lock().unwrap();
        g.push(seen.clone());
        g.len() - 1
    };
    let len: usize = seen
        .get("CONTENT_LENGTH")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body)?;
    seen.body = body;
    seen.body_at = Some(std::time::Instant::now());
    r.0.lock().unwrap()[idx] = seen.clone();
    slow(seen.get("PATH_INFO").unwrap_or(""));
    s.write_all(&answer_json(&seen, "uwsgi"))?;
    s.shutdown(std::net::Shutdown::Both)
}

/// HTTP/1.1 with keep-alive, Content-Length and chunked request bodies.
pub fn http_echo() -> Upstream {
    serve(|s, r| {
        let mut rd = BufReader::new(s.try_clone().unwrap());
        let mut w = s;
        while let Ok(true) = http_one(&mut rd, &mut w, r) {}
    })
}

fn http_one(rd: &mut BufReader<TcpStream>, w: &mut TcpStream, r: &Record) -> std::io::Result<bool> {
    let mut raw = Vec::new();
    loop {
        let mut line = Vec::new();
        if rd.read_until(b'\n', &mut line)? == 0 {
            return Ok(false);
        }
        raw.extend_from_slice(&line);
        if line == b"\r\n" {
            break;
        }
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let mut lines = text.split("\r\n");
    let start = lines.next().unwrap_or_default().to_string();
    let mut parts = start.split(' ');
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let mut vars = vec![
        ("@method".to_string(), method),
        ("@target".to_string(), target.clone()),
    ];
    for l in lines.filter(|l| !l.is_empty()) {
        if let Some((k, v)) = l.split_once(':') {
            vars.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let mut seen = Seen {
        vars,
        raw,
        head_at: Some(std::time::Instant::now()),
        ..Default::default()
    };
    let idx = {
        let mut g = r.0.lock().unwrap();
        g.push(seen.clone());
        g.len() - 1
    };
    let mut body = Vec::new();
    if seen
        .get("transfer-encoding")
        .is_some_and(|t| t.contains("chunked"))
    {
        loop {
            let mut line = String::new();
            rd.read_line(&mut line)?;
            let n = usize::from_str_radix(line.trim().split(';').next().unwrap(), 16)
                .map_err(std::io::Error::other)?;
            if n == 0 {
                loop {
                    let mut t = String::new();
                    rd.read_line(&mut t)?;
                    if t == "\r\n" || t.is_empty() {
                        break;
                    }
                }
                break;
            }
            let mut chunk = vec![0u8; n + 2];
            rd.read_exact(&mut chunk)?;
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = seen.get("content-length").and_then(|v| v.parse().ok()) {
        body = vec![0u8; n];
        rd.read_exact(&mut body)?;
    }
    seen.body = body;
    seen.body_at = Some(std::time::Instant::now());
    r.0.lock().unwrap()[idx] = seen.clone();
    slow(&target);
    w.write_all(&answer_json(&seen, "http"))?;
    Ok(true)
}
