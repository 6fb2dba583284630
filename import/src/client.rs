//! `jobmesh import` and `jobmesh export` against an office's HTTP API.
//!
//! Import reads the file in one blocking thread (streamed for CSV), checks
//! each row here so the report is complete even for rows never sent, and
//! sends good rows in batches of [`BATCH_ROWS`] to `POST /v1/import/{kind}`,
//! [`IN_FLIGHT`] batches at a time. The node checks every row again and
//! creates each batch in one atomic, durable write; each row carries its
//! external reference, so a run killed halfway and run again creates
//! nothing twice. With `--all-or-nothing` (and with `--dry-run`) every row
//! is first checked by the node without writing; only a clean file is then
//! written.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::columns::ImportKind;
use crate::read::{self, Sheet};
use crate::report;
use crate::rows::{check_raw, Mapping, Problem};
use crate::template::{self, Lang};
use crate::wire::{BatchRequest, BatchResponse, BatchRow};

/// Unix time in milliseconds (today, for the date rules).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Rows per request.
pub const BATCH_ROWS: usize = 500;
/// Requests in flight.
pub const IN_FLIGHT: usize = 4;
/// Batches read ahead of the requests.
const READ_AHEAD: usize = 8;
/// How often plain progress lines are printed (not on a terminal).
const PLAIN_EVERY: Duration = Duration::from_secs(1);

/// Where and how to reach the office's API.
#[derive(Debug, Clone)]
pub struct Api {
    pub base: String,
    pub token: Option<String>,
    pub client: reqwest::Client,
}

impl Api {
    pub fn new(base: &str, token_file: Option<&Path>) -> anyhow::Result<Api> {
        let token = match token_file {
            None => None,
            Some(p) => Some(
                std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read the token file {}", p.display()))?
                    .trim()
                    .to_owned(),
            ),
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Api { base: base.trim_end_matches('/').to_owned(), token, client })
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.client.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    async fn batch(&self, kind: ImportKind, dry_run: bool, rows: Vec<BatchRow>) -> anyhow::Result<BatchResponse> {
        let path = format!("/v1/import/{}?dry_run={dry_run}", kind.as_str());
        // A node being restarted refuses connections for a moment: retry a
        // few times (the rows' references make a retried write harmless).
        let mut wait = Duration::from_millis(200);
        for attempt in 0.. {
            let sent = self.req(reqwest::Method::POST, &path).json(&BatchRequest { rows: rows.clone() }).send().await;
            match sent {
                Ok(resp) if resp.status().is_success() => return Ok(resp.json().await?),
                Ok(resp) if resp.status().is_server_error() && attempt < 5 => {}
                Ok(resp) => {
                    let status = resp.status();
                    let body = resp.text().await.unwrap_or_default();
                    bail!("{path}: {status}: {body}");
                }
                Err(e) if attempt < 5 && (e.is_connect() || e.is_timeout()) => {}
                Err(e) => return Err(e).with_context(|| format!("POST {}{path}", self.base)),
            }
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
        unreachable!("the loop returns")
    }
}

/// What an import did.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub rows: u64,
    pub good: u64,
    pub bad: u64,
    pub created: u64,
    pub existing: u64,
    pub problems: Vec<Problem>,
    pub report: Option<PathBuf>,
    pub wrote: bool,
    pub elapsed: Duration,
}

/// Options of one import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub kind: ImportKind,
    pub file: PathBuf,
    pub dry_run: bool,
    pub all_or_nothing: bool,
    /// Show progress (a bar on a terminal, plain lines otherwise).
    pub progress: bool,
}

struct Progress {
    bar: Option<indicatif::ProgressBar>,
    total: Option<u64>,
    done: u64,
    started: Instant,
    last_line: Instant,
    label: &'static str,
}

impl Progress {
    fn new(show: bool, total: Option<u64>, label: &'static str) -> Progress {
        let bar = (show && std::io::stderr().is_terminal()).then(|| {
            let b = indicatif::ProgressBar::new(total.unwrap_or(0));
            let style =
                indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} rows  {per_sec}  ETA {eta}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                    .progress_chars("=> ");
            b.set_style(style);
            b.set_message(label);
            b
        });
        let now = Instant::now();
        Progress { bar, total: total.filter(|_| show), done: 0, started: now, last_line: now, label }
    }

    fn add(&mut self, n: u64, show: bool) {
        self.done += n;
        if let Some(b) = &self.bar {
            b.set_position(self.done);
        } else if show && self.last_line.elapsed() >= PLAIN_EVERY {
            self.last_line = Instant::now();
            eprintln!("{}", self.line());
        }
    }

    fn line(&self) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = self.done as f64 / secs;
        match self.total {
            Some(t) if t > 0 => {
                let eta = if rate > 0.0 { (t.saturating_sub(self.done)) as f64 / rate } else { 0.0 };
                format!(
                    "{}: {}/{} rows ({:.0}%), {:.0} rows/s, ETA {:.0}s",
                    self.label,
                    self.done,
                    t,
                    self.done as f64 * 100.0 / t as f64,
                    rate,
                    eta
                )
            }
            _ => format!("{}: {} rows, {:.0} rows/s", self.label, self.done, rate),
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// Open the file and map its headers (errors here import nothing).
pub fn open_file(kind: ImportKind, file: &Path) -> anyhow::Result<(Sheet, Mapping)> {
    let sheet = read::open(file)?;
    let mapping = Mapping::new(kind, &sheet.headers).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    Ok((sheet, mapping))
}

/// One pass over the file: check every row, send good rows to the node
/// (written, or checked only when `dry_run`), and gather the outcome.
async fn pass(api: &Api, o: &ImportOptions, dry_run: bool, label: &'static str) -> anyhow::Result<Outcome> {
    let (sheet, mapping) = open_file(o.kind, &o.file)?;
    let started = Instant::now();
    let mut progress = Progress::new(o.progress, sheet.rows_total, label);
    let (tx, rx) = mpsc::channel::<Result<(Vec<BatchRow>, Vec<Problem>, u64), String>>(READ_AHEAD);
    let reader_mapping = mapping.clone();
    let reader = tokio::task::spawn_blocking(move || {
        let mut batch = Vec::with_capacity(BATCH_ROWS);
        let mut problems = Vec::new();
        let mut rows = 0u64;
        for row in sheet {
            let row = match row {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e.to_string()));
                    return;
                }
            };
            match check_raw(&reader_mapping, &row, now_ms()) {
                None => continue,
                Some(Ok(good)) => {
                    let mut cells = reader_mapping.cells(&row).unwrap_or_default();
                    cells.insert(crate::columns::EXTERNAL_REF.into(), good.external_ref);
                    batch.push(BatchRow { line: good.line, cells });
                }
                Some(Err(p)) => problems.extend(p),
            }
            rows += 1;
            if batch.len() >= BATCH_ROWS {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_ROWS));
                if tx.blocking_send(Ok((full, std::mem::take(&mut problems), std::mem::take(&mut rows)))).is_err() {
                    return;
                }
            }
        }
        let _ = tx.blocking_send(Ok((batch, problems, rows)));
    });
    let mut out = Outcome { wrote: !dry_run, ..Outcome::default() };
    let mut sends = tokio_stream_of(rx)
        .map(|item| async move {
            let (batch, problems, rows) = item.map_err(anyhow::Error::msg)?;
            let resp = if batch.is_empty() { None } else { Some(api.batch(o.kind, dry_run, batch).await?) };
            anyhow::Ok((resp, problems, rows))
        })
        .buffer_unordered(IN_FLIGHT);
    while let Some(done) = sends.next().await {
        let (resp, problems, rows) = done?;
        out.rows += rows;
        out.bad += problems.iter().map(|p| p.line).collect::<std::collections::BTreeSet<_>>().len() as u64;
        out.problems.extend(problems);
        if let Some(resp) = resp {
            for r in resp.results {
                if r.problems.is_empty() {
                    out.good += 1;
                    if r.created {
                        out.created += 1;
                    } else if r.id.is_some() {
                        out.existing += 1;
                    }
                } else {
                    out.bad += 1;
                    // The node names columns by API key: give them the
                    // file's headers back.
                    out.problems.extend(r.problems.into_iter().map(|mut p| {
                        p.column = mapping.header_of(&p.field);
                        p
                    }));
                }
            }
        }
        progress.add(rows, o.progress);
    }
    drop(sends);
    reader.await.context("the file reader failed")?;
    progress.finish();
    out.problems.sort_by_key(|p| p.line);
    out.elapsed = started.elapsed();
    Ok(out)
}

fn tokio_stream_of<T: Send + 'static>(mut rx: mpsc::Receiver<T>) -> impl futures::Stream<Item = T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Run an import; writes the CSV report beside the input.
pub async fn import(api: &Api, o: &ImportOptions) -> anyhow::Result<Outcome> {
    let mut out = if o.dry_run || o.all_or_nothing {
        let checked = pass(api, o, true, "checking").await?;
        if o.dry_run || checked.bad > 0 {
            Outcome { wrote: false, ..checked }
        } else {
            pass(api, o, false, "importing").await?
        }
    } else {
        pass(api, o, false, "importing").await?
    };
    out.report = Some(
        report::write_beside(&o.file, &out.problems)
            .with_context(|| format!("cannot write the report {}", report::report_path(&o.file).display()))?,
    );
    Ok(out)
}

/// The text the CLI prints when an import is done.
pub fn summary_text(o: &ImportOptions, out: &Outcome) -> String {
    let mut s = String::new();
    for p in out.problems.iter().take(50) {
        s.push_str(&format!("{p}\n"));
    }
    if out.problems.len() > 50 {
        s.push_str(&format!("… {} more problems in the report\n", out.problems.len() - 50));
    }
    let rate = out.rows as f64 / out.elapsed.as_secs_f64().max(1e-3);
    let verb = if out.wrote {
        format!("created {}, already present {}", out.created, out.existing)
    } else if o.dry_run {
        format!("dry run: would create {}, already present {}", out.good - out.existing, out.existing)
    } else {
        "nothing written (--all-or-nothing and some rows are bad)".to_owned()
    };
    s.push_str(&format!(
        "{}: {} rows, {} good, {} bad; {verb}; {:.0} rows/s",
        o.file.display(),
        out.rows,
        out.good,
        out.bad,
        rate
    ));
    if let Some(r) = &out.report {
        s.push_str(&format!("\nreport: {}", r.display()));
    }
    s
}

/// Write a template file; returns its path.
pub fn write_template(kind: ImportKind, lang: Lang, out: Option<&Path>) -> anyhow::Result<PathBuf> {
    let path = out.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(template::template_name(kind, lang)));
    std::fs::write(&path, template::template_csv(kind, lang))
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// Download `path` (with its query) from the API into `out`.
pub async fn download(api: &Api, path: &str, out: &Path) -> anyhow::Result<u64> {
    use tokio::io::AsyncWriteExt;
    let resp = api.req(reqwest::Method::GET, path).send().await.with_context(|| format!("GET {}{path}", api.base))?;
    if !resp.status().is_success() {
        let status = resp.status();
        bail!("GET {path}: {status}: {}", resp.text().await.unwrap_or_default());
    }
    let mut f = tokio::fs::File::create(out).await.with_context(|| format!("cannot create {}", out.display()))?;
    let mut n = 0u64;
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        n += chunk.len() as u64;
        f.write_all(&chunk).await?;
    }
    f.flush().await?;
    Ok(n)
}
