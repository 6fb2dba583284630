//! A small Chrome DevTools Protocol client for browser tests: launches a real
//! headless Chromium and speaks CDP JSON to it over a WebSocket of its own
//! (RFC 6455, client side, just what CDP needs: text frames, fragments,
//! ping/pong, close), so no browser-automation crate and no download.
//!
//! - [`find_chromium`]: `$JOBMESH_CHROMIUM`, else `chromium` or
//!   `chromium-browser` on `PATH`.
//! - [`Browser::launch`]: a fresh profile in a temp folder, DevTools on a
//!   port Chromium picks (`--remote-debugging-port=0`, read from its stderr).
//! - [`Browser::open`]: a new window on a URL, attached as a flat session; a
//!   [`Page`] evaluates JavaScript, types, clicks, and takes screenshots.
//! - [`Browser::close`]: `Browser.close`, then, if it does not exit, a kill
//!   by pid. Dropping a `Browser` kills it too.
//!
//! Uncaught exceptions and `console.error` calls of every page are kept
//! ([`Page::errors`]) so that tests can require a clean page.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long Chromium gets to print its DevTools address.
pub const LAUNCH_LIMIT: Duration = Duration::from_secs(30);
/// How long one CDP command may take.
pub const CALL_LIMIT: Duration = Duration::from_secs(20);
/// Largest WebSocket message accepted (a full-page PNG in base64 fits).
pub const MAX_MESSAGE: usize = 64 * 1024 * 1024;
/// Lines of Chromium's stderr kept for failure messages.
const STDERR_TAIL: usize = 60;
/// Errors kept per page.
const MAX_PAGE_ERRORS: usize = 100;

/// The flags every test browser runs with.
pub const FLAGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1600",
    "--remote-debugging-port=0",
];

/// The Chromium binary to use, if any: `$JOBMESH_CHROMIUM` (must exist),
/// else `chromium` or `chromium-browser` found on `PATH`.
pub fn find_chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("JOBMESH_CHROMIUM") {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "JOBMESH_CHROMIUM={} is not a file", p.display());
        return Some(p);
    }
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser"] {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// The Chromium to test with, or `None` after printing
/// "skipped: chromium not installed". Under CI (`$CI` set) a missing
/// Chromium is a failure, not a skip.
pub fn chromium_or_skip(test: &str) -> Option<PathBuf> {
    match find_chromium() {
        Some(p) => Some(p),
        None if std::env::var_os("CI").is_some() => panic!(
            "{test}: chromium is not installed, and CI is set: install it (Debian: `apt-get install -y chromium`), \
             or point JOBMESH_CHROMIUM at a Chromium binary"
        ),
        None => {
            println!("{test}: skipped: chromium not installed");
            None
        }
    }
}

/// `target/screenshots/<name>` (the folder is created; `target/` is
/// git-ignored and is where CI collects artifacts from).
pub fn artifact_path(name: &str) -> PathBuf {
    let dir = crate::bin::workspace_root().join("target").join("screenshots");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    dir.join(name)
}

/* ── WebSocket (client side of RFC 6455, enough for CDP) ─────────────── */

struct Ws {
    stream: TcpStream,
    buf: Vec<u8>,
    mask_seed: u32,
}

impl Ws {
    /// Connect to `ws://host:port/path` and do the opening handshake.
    async fn connect(url: &str) -> Result<Ws, String> {
        let rest = url.strip_prefix("ws://").ok_or_else(|| format!("not a ws:// URL: {url}"))?;
        let (hostport, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let stream = TcpStream::connect(hostport).await.map_err(|e| format!("connect {hostport}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| format!("set_nodelay: {e}"))?;
        let seed =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(7);
        let mut ws = Ws { stream, buf: Vec::new(), mask_seed: seed | 1 };
        let key = base64_encode(&ws.next_bytes16());
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        ws.stream.write_all(req.as_bytes()).await.map_err(|e| format!("send handshake: {e}"))?;
        let end = loop {
            if let Some(i) = ws.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if ws.buf.len() > 64 * 1024 {
                return Err("handshake answer too long".into());
            }
            ws.fill().await?;
        };
        let head = String::from_utf8_lossy(&ws.buf[..end]).into_owned();
        ws.buf.drain(..end);
        let status = head.lines().next().unwrap_or("");
        if !status.contains(" 101") {
            return Err(format!("WebSocket handshake refused: {head}"));
        }
        Ok(ws)
    }

    fn next_u32(&mut self) -> u32 {
        // xorshift32: masking keys need not be secret here (loopback, tests).
        let mut x = self.mask_seed;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.mask_seed = x;
        x
    }

    fn next_bytes16(&mut self) -> [u8; 16] {
        let mut out = [0u8; 16];
        for c in out.chunks_mut(4) {
            c.copy_from_slice(&self.next_u32().to_be_bytes());
        }
        out
    }

    async fn fill(&mut self) -> Result<(), String> {
        // Read straight into the buffer's spare room: a stack array here
        // would live in every future that awaits a CDP answer.
        let len = self.buf.len();
        self.buf.resize(len + 64 * 1024, 0);
        let got = self.stream.read(&mut self.buf[len..]).await;
        let n = match got {
            Ok(n) => n,
            Err(e) => {
                self.buf.truncate(len);
                return Err(format!("WebSocket read: {e}"));
            }
        };
        self.buf.truncate(len + n);
        if n == 0 {
            return Err("WebSocket closed by the browser".into());
        }
        Ok(())
    }

    async fn need(&mut self, n: usize) -> Result<(), String> {
        while self.buf.len() < n {
            self.fill().await?;
        }
        Ok(())
    }

    /// Send one masked frame.
    async fn send_frame(&mut self, opcode: u8, payload: &[u8]) -> Result<(), String> {
        let mut f = Vec::with_capacity(payload.len() + 14);
        f.push(0x80 | opcode);
        let len = payload.len();
        if len < 126 {
            f.push(0x80 | len as u8);
        } else if len <= 0xffff {
            f.push(0x80 | 126);
            f.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            f.push(0x80 | 127);
            f.extend_from_slice(&(len as u64).to_be_bytes());
        }
        let mask = self.next_u32().to_be_bytes();
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.write_all(&f).await.map_err(|e| format!("WebSocket write: {e}"))
    }

    async fn send_text(&mut self, text: &str) -> Result<(), String> {
        self.send_frame(0x1, text.as_bytes()).await
    }

    /// The next whole text message (answers pings, joins fragments).
    async fn recv_text(&mut self) -> Result<String, String> {
        let mut message: Vec<u8> = Vec::new();
        loop {
            self.need(2).await?;
            let (b0, b1) = (self.buf[0], self.buf[1]);
            let fin = b0 & 0x80 != 0;
            let opcode = b0 & 0x0f;
            let masked = b1 & 0x80 != 0;
            let (len, mut at) = match b1 & 0x7f {
                126 => {
                    self.need(4).await?;
                    (u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize, 4)
                }
                127 => {
                    self.need(10).await?;
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&self.buf[2..10]);
                    (usize::try_from(u64::from_be_bytes(b)).unwrap_or(usize::MAX), 10)
                }
                n => (n as usize, 2),
            };
            if len > MAX_MESSAGE || message.len() + len > MAX_MESSAGE {
                return Err(format!("WebSocket message over {MAX_MESSAGE} bytes"));
            }
            let mask = if masked {
                self.need(at + 4).await?;
                let m = [self.buf[at], self.buf[at + 1], self.buf[at + 2], self.buf[at + 3]];
                at += 4;
                Some(m)
            } else {
                None
            };
            self.need(at + len).await?;
            let mut payload: Vec<u8> = self.buf[at..at + len].to_vec();
            self.buf.drain(..at + len);
            if let Some(m) = mask {
                for (i, b) in payload.iter_mut().enumerate() {
                    *b ^= m[i % 4];
                }
            }
            match opcode {
                0x0..=0x2 => {
                    message.extend_from_slice(&payload);
                    if fin {
                        return String::from_utf8(message).map_err(|e| format!("WebSocket text is not UTF-8: {e}"));
                    }
                }
                0x8 => {
                    let _ = self.send_frame(0x8, &payload).await;
                    return Err(format!("WebSocket closed by the browser ({})", String::from_utf8_lossy(&payload)));
                }
                0x9 => self.send_frame(0xA, &payload).await?,
                0xA => {}
                other => return Err(format!("WebSocket: unexpected opcode {other:#x}")),
            }
        }
    }
}

/* ── CDP connection ───────────────────────────────────────────────────── */

/// Errors one page reported by itself.
type ErrorLog = Arc<Mutex<HashMap<String, Vec<String>>>>;

struct Conn {
    ws: Ws,
    next_id: u64,
    errors: ErrorLog,
}

impl Conn {
    /// Send a command (to the browser, or to a page's session) and wait for
    /// its answer; events read meanwhile are noted (errors) or dropped.
    async fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let fut = async {
            self.ws.send_text(&msg.to_string()).await?;
            loop {
                let text = self.ws.recv_text().await?;
                let v: Value = serde_json::from_str(&text).map_err(|e| format!("CDP message is not JSON: {e}"))?;
                if v["id"].as_u64() == Some(id) {
                    if let Some(err) = v.get("error") {
                        return Err(format!("CDP {method} failed: {err}"));
                    }
                    return Ok(v["result"].clone());
                }
                if v.get("method").is_some() {
                    note_event(&self.errors, &v);
                }
            }
        };
        match tokio::time::timeout(CALL_LIMIT, fut).await {
            Ok(r) => r,
            Err(_) => Err(format!("CDP {method}: no answer within {CALL_LIMIT:?}")),
        }
    }
}

/// Keep uncaught exceptions and `console.error` calls, by session.
fn note_event(errors: &ErrorLog, v: &Value) {
    let Some(session) = v["sessionId"].as_str() else { return };
    let text = match v["method"].as_str() {
        Some("Runtime.exceptionThrown") => {
            let d = &v["params"]["exceptionDetails"];
            let desc = d["exception"]["description"].as_str().or_else(|| d["text"].as_str()).unwrap_or("?");
            format!("uncaught exception: {desc} (at {}:{})", d["url"].as_str().unwrap_or(""), d["lineNumber"])
        }
        Some("Runtime.consoleAPICalled") if v["params"]["type"] == "error" => {
            let args: Vec<String> = v["params"]["args"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|x| {
                            x["value"]
                                .as_str()
                                .map(str::to_string)
                                .or_else(|| x["description"].as_str().map(str::to_string))
                                .unwrap_or_else(|| x["value"].to_string())
                        })
                        .collect()
                })
                .unwrap_or_default();
            format!("console.error: {}", args.join(" "))
        }
        _ => return,
    };
    let mut g = errors.lock().unwrap_or_else(|p| p.into_inner());
    let list = g.entry(session.to_string()).or_default();
    if list.len() < MAX_PAGE_ERRORS {
        list.push(text);
    }
}

/* ── Browser ──────────────────────────────────────────────────────────── */

/// A running headless Chromium.
pub struct Browser {
    child: Option<Child>,
    conn: Arc<tokio::sync::Mutex<Conn>>,
    errors: ErrorLog,
    stderr: Arc<Mutex<VecDeque<String>>>,
    profile: Option<tempfile::TempDir>,
    pub devtools_url: String,
}

/// A browser tab (its own window), attached as a flat CDP session.
pub struct Page {
    conn: Arc<tokio::sync::Mutex<Conn>>,
    errors: ErrorLog,
    pub session: String,
    pub target: String,
}

impl Browser {
    /// Start `bin` with [`FLAGS`] and a fresh `--user-data-dir`, and connect
    /// to its DevTools WebSocket.
    pub async fn launch(bin: &Path) -> Result<Browser, String> {
        let profile = tempfile::Builder::new()
            .prefix("jobmesh-chromium-")
            .tempdir()
            .map_err(|e| format!("tempdir for the Chromium profile: {e}"))?;
        let mut child = Command::new(bin)
            .args(FLAGS)
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", bin.display()))?;
        let stderr = child.stderr.take().ok_or("no stderr pipe")?;
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        {
            // Drain stderr for the browser's whole life (a full pipe would
            // block it), keeping the last lines and passing on the address.
            let tail = tail.clone();
            std::thread::spawn(move || {
                let mut tx = Some(tx);
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if let Some(url) = line.strip_prefix("DevTools listening on ").map(str::trim) {
                        if let Some(tx) = tx.take() {
                            let _ = tx.send(url.to_string());
                        }
                    }
                    let mut g = tail.lock().unwrap_or_else(|p| p.into_inner());
                    if g.len() >= STDERR_TAIL {
                        g.pop_front();
                    }
                    g.push_back(line);
                }
            });
        }
        let waited = tokio::task::spawn_blocking(move || rx.recv_timeout(LAUNCH_LIMIT))
            .await
            .map_err(|e| format!("waiting for Chromium: {e}"))?;
        let url = match waited {
            Ok(u) => u,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                let lines = tail.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect::<Vec<_>>();
                return Err(format!(
                    "Chromium printed no \"DevTools listening on ws://…\" within {LAUNCH_LIMIT:?} (exit: {status}); \
                     stderr:\n{}",
                    lines.join("\n")
                ));
            }
        };
        let ws = match Ws::connect(&url).await {
            Ok(ws) => ws,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("DevTools WebSocket {url}: {e}"));
            }
        };
        let errors: ErrorLog = Arc::default();
        let conn = Conn { ws, next_id: 0, errors: errors.clone() };
        Ok(Browser {
            child: Some(child),
            conn: Arc::new(tokio::sync::Mutex::new(conn)),
            errors,
            stderr: tail,
            profile: Some(profile),
            devtools_url: url,
        })
    }

    /// The browser process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The last lines Chromium wrote to stderr.
    pub fn stderr_tail(&self) -> String {
        self.stderr.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// A browser-level command.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, String> {
        self.conn.lock().await.call(None, method, params).await
    }

    /// Open `url` in a new window (so that every page is visible, as on an
    /// office's screen) and attach to it.
    pub async fn open(&self, url: &str) -> Result<Page, String> {
        let t = self.call("Target.createTarget", json!({"url": "about:blank", "newWindow": true})).await?;
        let target = t["targetId"].as_str().ok_or_else(|| format!("createTarget: no targetId in {t}"))?.to_string();
        let a = self.call("Target.attachToTarget", json!({"targetId": target, "flatten": true})).await?;
        let session =
            a["sessionId"].as_str().ok_or_else(|| format!("attachToTarget: no sessionId in {a}"))?.to_string();
        let page = Page { conn: self.conn.clone(), errors: self.errors.clone(), session, target };
        page.call("Runtime.enable", json!({})).await?;
        page.call("Page.enable", json!({})).await?;
        page.navigate(url).await?;
        Ok(page)
    }

    /// `Browser.close`, then wait (bounded) for the process to exit; kill it
    /// by pid if it does not. Removes the profile folder.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.call("Browser.close", json!({}))).await;
        if let Some(mut child) = self.child.take() {
            let start = Instant::now();
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if start.elapsed() < Duration::from_secs(5) => {
                        tokio::time::sleep(Duration::from_millis(50)).await
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
        if let Some(p) = self.profile.take() {
            let _ = p.close();
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Page {
    /// A command in this page's session.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, String> {
        self.conn.lock().await.call(Some(&self.session), method, params).await
    }

    /// Go to `url` (the caller waits for what it needs on the page).
    pub async fn navigate(&self, url: &str) -> Result<(), String> {
        let r = self.call("Page.navigate", json!({"url": url})).await?;
        match r.get("errorText").and_then(Value::as_str) {
            Some(e) if !e.is_empty() => Err(format!("navigate to {url}: {e}")),
            _ => Ok(()),
        }
    }

    /// Evaluate a JavaScript expression (promises are awaited) and return
    /// its value as JSON (`null` for `undefined`). A thrown exception is an
    /// `Err` with its description.
    pub async fn eval(&self, expression: &str) -> Result<Value, String> {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true, "userGesture": true}),
            )
            .await?;
        if let Some(d) = r.get("exceptionDetails") {
            let desc = d["exception"]["description"].as_str().or_else(|| d["text"].as_str()).unwrap_or("?");
            return Err(format!("JavaScript threw: {desc}\nin: {expression}"));
        }
        Ok(r["result"].get("value").cloned().unwrap_or(Value::Null))
    }

    /// Poll `expression` until it is truthy, at most `limit`; returns the
    /// value. On timeout the error names `what` and the last value or error.
    pub async fn wait_for(&self, what: &str, expression: &str, limit: Duration) -> Result<Value, String> {
        let start = Instant::now();
        loop {
            let last = match self.eval(expression).await {
                Ok(v) if truthy(&v) => return Ok(v),
                Ok(v) => format!("value {v}"),
                Err(e) => e,
            };
            if start.elapsed() >= limit {
                return Err(format!("not within {limit:?}: {what}\nlast: {last}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Centre of the first element matching `selector`, scrolled into view.
    async fn centre(&self, selector: &str) -> Result<(f64, f64), String> {
        let sel = json!(selector).to_string();
        let v = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({sel}); if (!e) return null; \
                 e.scrollIntoView({{block: 'center', inline: 'center'}}); const r = e.getBoundingClientRect(); \
                 return [r.x + r.width / 2, r.y + r.height / 2, r.width, r.height]; }})()"
            ))
            .await?;
        let a = v.as_array().ok_or_else(|| format!("no element matches {selector}"))?;
        let n = |i: usize| a.get(i).and_then(Value::as_f64).unwrap_or(0.0);
        if n(2) <= 0.0 || n(3) <= 0.0 {
            return Err(format!("{selector} is not displayed (size {}x{})", n(2), n(3)));
        }
        Ok((n(0), n(1)))
    }

    /// A real mouse click (press and release) in the middle of the element.
    pub async fn click(&self, selector: &str) -> Result<(), String> {
        let (x, y) = self.centre(selector).await?;
        self.call("Input.dispatchMouseEvent", json!({"type": "mouseMoved", "x": x, "y": y})).await?;
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "buttons": 1, "clickCount": 1}),
            )
            .await?;
        }
        Ok(())
    }

    /// Empty an input, focus it and type `text` as keyboard input would.
    pub async fn type_into(&self, selector: &str, text: &str) -> Result<(), String> {
        let sel = json!(selector).to_string();
        let ok = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({sel}); if (!e) return false; \
                 e.scrollIntoView({{block: 'center'}}); e.focus(); e.value = ''; \
                 e.dispatchEvent(new Event('input', {{bubbles: true}})); return document.activeElement === e; }})()"
            ))
            .await?;
        if ok != Value::Bool(true) {
            return Err(format!("cannot focus {selector}"));
        }
        if !text.is_empty() {
            self.call("Input.insertText", json!({"text": text})).await?;
        }
        Ok(())
    }

    /// Set a `<select>` or a date input the way a picker does: value, then
    /// `input` and `change` events.
    pub async fn pick(&self, selector: &str, value: &str) -> Result<(), String> {
        let (sel, val) = (json!(selector).to_string(), json!(value).to_string());
        let got = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({sel}); if (!e) return null; e.value = {val}; \
                 e.dispatchEvent(new Event('input', {{bubbles: true}})); \
                 e.dispatchEvent(new Event('change', {{bubbles: true}})); return e.value; }})()"
            ))
            .await?;
        if got.as_str() != Some(value) {
            return Err(format!("{selector} did not take the value {value:?} (has {got})"));
        }
        Ok(())
    }

    /// A PNG of the visible window, written to `path`.
    pub async fn screenshot(&self, path: &Path) -> Result<(), String> {
        let r = self.call("Page.captureScreenshot", json!({"format": "png"})).await?;
        let data = r["data"].as_str().ok_or("captureScreenshot: no data")?;
        let png = base64_decode(data)?;
        std::fs::write(path, png).map_err(|e| format!("write {}: {e}", path.display()))
    }

    /// Uncaught exceptions and `console.error` calls seen on this page.
    pub fn errors(&self) -> Vec<String> {
        self.errors.lock().unwrap_or_else(|p| p.into_inner()).get(&self.session).cloned().unwrap_or_default()
    }
}

/// JavaScript truthiness of a JSON value.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/* ── base64 (standard alphabet, padded) ───────────────────────────────── */

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n =
            (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_decode(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in s.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' | b'\n' | b'\r' => continue,
            other => return Err(format!("base64: unexpected byte {other:#x}")),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip() {
        for data in [&b""[..], b"f", b"fo", b"foo", b"foob", b"fooba", b"foobar", &[0, 255, 128, 7, 9]] {
            assert_eq!(base64_decode(&base64_encode(data)).unwrap(), data);
        }
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
    }

    #[test]
    fn truthiness() {
        assert!(!truthy(&Value::Null));
        assert!(!truthy(&json!(0)));
        assert!(!truthy(&json!("")));
        assert!(truthy(&json!("x")));
        assert!(truthy(&json!([])));
    }
}
