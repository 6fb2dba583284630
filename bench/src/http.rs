//! A minimal blocking HTTP/1.1 client for the bench: one keep-alive
//! connection, `TCP_NODELAY`, no pooling and no async runtime, so that what
//! a latency sample measures is the node and the loopback, not the client.
//! It understands what the node's API sends: `Content-Length` bodies and,
//! for completeness, chunked ones.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Longest a request may take before it counts as failed.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response body read (a page of 5,000 postings is ~3 MB).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// One keep-alive connection to one node's API.
pub struct Http {
    addr: SocketAddr,
    conn: Option<BufReader<TcpStream>>,
}

impl Http {
    pub fn new(addr: SocketAddr) -> Http {
        Http { addr, conn: None }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn get(&mut self, path: &str) -> io::Result<(u16, Vec<u8>)> {
        self.request("GET", path, None)
    }

    pub fn post_json(&mut self, path: &str, body: &[u8]) -> io::Result<(u16, Vec<u8>)> {
        self.request("POST", path, Some(body))
    }

    /// Send one request and read its response. A connection the server
    /// closed while idle is reopened once.
    pub fn request(&mut self, method: &str, path: &str, body: Option<&[u8]>) -> io::Result<(u16, Vec<u8>)> {
        let reused = self.conn.is_some();
        match self.try_request(method, path, body) {
            Ok(r) => Ok(r),
            Err(_) if reused => {
                self.conn = None;
                self.try_request(method, path, body)
            }
            Err(e) => {
                self.conn = None;
                Err(e)
            }
        }
    }

    fn try_request(&mut self, method: &str, path: &str, body: Option<&[u8]>) -> io::Result<(u16, Vec<u8>)> {
        if self.conn.is_none() {
            let s = TcpStream::connect_timeout(&self.addr, TIMEOUT)?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(TIMEOUT))?;
            s.set_write_timeout(Some(TIMEOUT))?;
            self.conn = Some(BufReader::with_capacity(64 * 1024, s));
        }
        let Some(conn) = self.conn.as_mut() else { unreachable!("connected above") };
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        if let Some(b) = body {
            head.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", b.len()));
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        if let Some(b) = body {
            out.extend_from_slice(b);
        }
        conn.get_mut().write_all(&out)?;
        let result = read_response(conn);
        if result.as_ref().is_ok_and(|r| r.close) || result.is_err() {
            self.conn = None;
        }
        result.map(|r| (r.status, r.body))
    }
}

struct Response {
    status: u16,
    body: Vec<u8>,
    close: bool,
}

fn bad(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

fn read_line(r: &mut impl BufRead) -> io::Result<String> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed"));
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn read_response(r: &mut BufReader<TcpStream>) -> io::Result<Response> {
    let status_line = read_line(r)?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| bad(format!("bad status line {status_line:?}")))?;
    let mut length = None;
    let mut chunked = false;
    let mut close = false;
    loop {
        let line = read_line(r)?;
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = Some(value.parse::<usize>().map_err(|_| bad("bad content-length"))?),
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            "connection" => close = value.eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    let body = if chunked {
        let mut body = Vec::new();
        loop {
            let size_line = read_line(r)?;
            let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| bad("bad chunk size"))?;
            if body.len() + size > MAX_BODY {
                return Err(bad("response body too large"));
            }
            if size == 0 {
                // Trailers, then the blank line.
                while !read_line(r)?.is_empty() {}
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            r.read_exact(&mut body[start..])?;
            read_line(r)?;
        }
        body
    } else {
        let n = length.unwrap_or(0);
        if n > MAX_BODY {
            return Err(bad("response body too large"));
        }
        let mut body = vec![0; n];
        r.read_exact(&mut body)?;
        body
    };
    Ok(Response { status, body, close })
}
