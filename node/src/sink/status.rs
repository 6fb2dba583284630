//! What the sink reports: its checkpoint, the node's journal head, lag in
//! entries and in seconds, and its last error. Shared between the sink's
//! tasks and the API (`/v1/status`, `/metrics`, the page).
//!
//! Lag in seconds: a sampler records when each new journal head was first
//! seen; the lag is the age of the oldest sample the checkpoint has not
//! passed, so it says how long the oldest unmirrored entry has waited (at
//! the sampler's resolution, [`SAMPLE_EVERY`]). Entries already in the
//! journal when the node started count from the start.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;
use utoipa::ToSchema;

/// How often the sampler reads the journal head.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// Most head samples kept; beyond it every other one is dropped, so the
/// oldest (which sets the lag) is always kept.
const MAX_SAMPLES: usize = 8_192;

/// The sink's live state.
#[derive(Debug)]
pub struct SinkStatus {
    /// `user@host:port/dbname`.
    pub target: String,
    pub schema: String,
    head: AtomicU64,
    checkpoint: AtomicU64,
    connected: AtomicBool,
    rows: AtomicU64,
    commits: AtomicU64,
    errors: AtomicU64,
    last_commit_ms: AtomicU64,
    error: Mutex<Option<String>>,
    /// (journal head, Unix ms when first seen), heads increasing.
    samples: Mutex<VecDeque<(u64, u64)>>,
}

/// The sink as `/v1/status` shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SinkView {
    /// `postgres`.
    #[schema(value_type = String)]
    pub kind: &'static str,
    pub target: String,
    pub schema: String,
    pub connected: bool,
    /// Last journal sequence committed to PostgreSQL with its rows.
    pub checkpoint: u64,
    /// This node's last journal sequence.
    pub head: u64,
    /// `head − checkpoint`: journal sequence numbers not yet mirrored.
    pub lag_entries: u64,
    /// How long the oldest unmirrored entry has waited, in seconds.
    pub lag_s: f64,
    /// Records written (rows of the record tables) since the node started.
    pub records_written: u64,
    pub commits: u64,
    pub errors: u64,
    /// Time of the last commit (ISO-8601 UTC), `null` if none yet.
    pub last_commit: Option<String>,
    /// The last error, cleared by the next commit.
    pub error: Option<String>,
}

impl SinkStatus {
    pub fn new(target: String, schema: String, checkpoint: u64, head: u64, now_ms: u64) -> SinkStatus {
        SinkStatus {
            target,
            schema,
            head: AtomicU64::new(head),
            checkpoint: AtomicU64::new(checkpoint),
            connected: AtomicBool::new(false),
            rows: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            last_commit_ms: AtomicU64::new(0),
            error: Mutex::new(None),
            samples: Mutex::new(VecDeque::from([(head, now_ms)])),
        }
    }

    /// The sampler saw the journal's head at `now_ms`.
    pub fn observe_head(&self, head: u64, now_ms: u64) {
        self.head.store(head, Ordering::Relaxed);
        let mut s = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        if s.back().is_some_and(|&(h, _)| h >= head) {
            return;
        }
        if s.len() >= MAX_SAMPLES {
            let kept: VecDeque<_> = s.iter().copied().enumerate().filter(|(i, _)| i % 2 == 0).map(|(_, x)| x).collect();
            *s = kept;
        }
        s.push_back((head, now_ms));
    }

    pub fn connected(&self, checkpoint: u64) {
        self.connected.store(true, Ordering::Relaxed);
        self.checkpoint.store(checkpoint, Ordering::Relaxed);
    }

    pub fn failed(&self, error: String) {
        self.connected.store(false, Ordering::Relaxed);
        self.errors.fetch_add(1, Ordering::Relaxed);
        *self.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(error);
    }

    pub fn committed(&self, through: u64, records: u64, now_ms: u64) {
        self.checkpoint.store(through, Ordering::Relaxed);
        self.rows.fetch_add(records, Ordering::Relaxed);
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.last_commit_ms.store(now_ms, Ordering::Relaxed);
        *self.error.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let mut s = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        // Keep the newest sample at or below the checkpoint out: only
        // samples past it can set the lag.
        while s.front().is_some_and(|&(h, _)| h <= through) {
            s.pop_front();
        }
    }

    /// The view at `now_ms`.
    pub fn view(&self, now_ms: u64) -> SinkView {
        let checkpoint = self.checkpoint.load(Ordering::Relaxed);
        // The sampler's head may trail a commit by one sample.
        let head = self.head.load(Ordering::Relaxed).max(checkpoint);
        let lag_s = if checkpoint >= head {
            0.0
        } else {
            let s = self.samples.lock().unwrap_or_else(|p| p.into_inner());
            s.iter()
                .find(|&&(h, _)| h > checkpoint)
                .map(|&(_, t)| now_ms.saturating_sub(t) as f64 / 1000.0)
                .unwrap_or(0.0)
        };
        let last = self.last_commit_ms.load(Ordering::Relaxed);
        SinkView {
            kind: "postgres",
            target: self.target.clone(),
            schema: self.schema.clone(),
            connected: self.connected.load(Ordering::Relaxed),
            checkpoint,
            head,
            lag_entries: head.saturating_sub(checkpoint),
            lag_s,
            records_written: self.rows.load(Ordering::Relaxed),
            commits: self.commits.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            last_commit: (last > 0).then(|| crate::api::views::iso_time(last)),
            error: self.error.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        }
    }

    /// Prometheus text lines (OpenMetrics), inserted before `# EOF`.
    pub fn metrics_text(&self, now_ms: u64) -> String {
        let v = self.view(now_ms);
        let labels = format!("schema=\"{}\"", v.schema);
        format!(
            "# HELP jobmesh_sink_lag_entries Journal sequence numbers not yet mirrored to PostgreSQL.\n\
             # TYPE jobmesh_sink_lag_entries gauge\njobmesh_sink_lag_entries{{{labels}}} {}\n\
             # HELP jobmesh_sink_lag_seconds How long the oldest unmirrored journal entry has waited.\n\
             # TYPE jobmesh_sink_lag_seconds gauge\njobmesh_sink_lag_seconds{{{labels}}} {:.3}\n\
             # HELP jobmesh_sink_checkpoint Last journal sequence committed to PostgreSQL.\n\
             # TYPE jobmesh_sink_checkpoint gauge\njobmesh_sink_checkpoint{{{labels}}} {}\n\
             # HELP jobmesh_sink_connected 1 while the sink holds a working PostgreSQL connection.\n\
             # TYPE jobmesh_sink_connected gauge\njobmesh_sink_connected{{{labels}}} {}\n\
             # HELP jobmesh_sink_records Records written to PostgreSQL.\n\
             # TYPE jobmesh_sink_records counter\njobmesh_sink_records_total{{{labels}}} {}\n\
             # HELP jobmesh_sink_errors Failed PostgreSQL attempts (connects and batches).\n\
             # TYPE jobmesh_sink_errors counter\njobmesh_sink_errors_total{{{labels}}} {}\n",
            v.lag_entries,
            v.lag_s,
            v.checkpoint,
            u8::from(v.connected),
            v.records_written,
            v.errors,
        )
    }
}

/// Insert the sink's lines into an OpenMetrics body, before its `# EOF`.
pub fn append_metrics(body: String, sink: Option<&SinkStatus>, now_ms: u64) -> String {
    let Some(sink) = sink else { return body };
    let extra = sink.metrics_text(now_ms);
    match body.rfind("# EOF") {
        Some(i) => format!("{}{extra}{}", &body[..i], &body[i..]),
        None => body + &extra,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_the_age_of_the_oldest_unmirrored_head() {
        let s = SinkStatus::new("u@h:1/d".into(), "jobmesh".into(), 0, 0, 1_000);
        assert_eq!(s.view(5_000).lag_s, 0.0);
        s.observe_head(10, 2_000);
        s.observe_head(20, 3_000);
        assert_eq!(s.view(5_000).lag_entries, 20);
        assert_eq!(s.view(5_000).lag_s, 3.0);
        s.committed(10, 10, 5_000);
        assert_eq!(s.view(6_000).lag_s, 3.0, "entries 11..=20 were first seen at 3 s");
        s.committed(20, 10, 6_000);
        let v = s.view(7_000);
        assert_eq!((v.lag_entries, v.lag_s, v.records_written), (0, 0.0, 20));
    }

    #[test]
    fn metrics_go_before_eof() {
        let s = SinkStatus::new("u@h:1/d".into(), "jobmesh".into(), 0, 5, 1_000);
        let body = append_metrics("a 1\n# EOF\n".into(), Some(&s), 2_000);
        assert!(body.ends_with("# EOF\n"), "{body}");
        assert!(body.contains("jobmesh_sink_lag_entries{schema=\"jobmesh\"} 5\n"), "{body}");
    }
}
