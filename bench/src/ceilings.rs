//! Case 1, the ceilings: what the two resources underneath replication do
//! on their own, with the same 300-byte postings, measured in the same
//! invocation as everything they bound.
//!
//! - QUIC: one stream over a connection configured exactly as a link
//!   (`transport::server_config` / `client_config`: mutual TLS, the link's
//!   windows), records length-prefixed and written in 256 KiB buffers (what
//!   a link's writer coalesces), read into a buffer on the other side.
//! - QUIC one-way latency: 8-byte ping-pong on such a connection, half the
//!   round trip.
//! - sled: `apply_batch` of 512 postings in the project's key layout
//!   (record under `rp/{id}`, journal entry under `j{seq}`, last sequence,
//!   a checkpoint), then a flush, per batch. No reads, no merge.
//! - sled write + flush latency of one small batch: the floor of one
//!   durable hop.

use std::time::Instant;

use anyhow::{bail, Context};
use jobmesh_protocol::kv::{Kv, WriteBatch};
use jobmesh_protocol::store::{self, checkpoint_key, journal_key, record_key, JournalEntry, StoredRecord, META_SEQ};
use jobmesh_protocol::Kind;

use super::fixture::{node, posting_record, Pki, Scratch};
use super::report::{p50_p99, Ceiling, Row, Unit, J};
use super::Bench;
use jobmesh_node::state::now_ms;
use jobmesh_node::storage::SledKv;
use jobmesh_node::tls::SERVER_NAME;

/// Bytes of one write on the QUIC stream (a link's writer coalesces up to
/// this much).
const WRITE_BUFFER: usize = 256 * 1024;
/// Records per sled batch.
const SLED_BATCH: usize = 512;

/// The ceilings later cases compare against (medians).
#[derive(Debug, Clone, Default)]
pub struct Ceilings {
    pub quinn_rec_per_s: Option<f64>,
    pub sled_rec_per_s: Option<f64>,
    /// One-way QUIC latency, p50 and p99, µs.
    pub quic_oneway_us: Option<(f64, f64)>,
    /// One small durable write, p50 and p99, µs.
    pub sled_write_flush_us: Option<(f64, f64)>,
}

impl Ceilings {
    pub fn sled(&self) -> Option<Ceiling> {
        self.sled_rec_per_s.map(|v| Ceiling { label: "sled batch 512 + flush".into(), value: v })
    }
}

pub fn run(b: &mut Bench) -> anyhow::Result<()> {
    let dir = Scratch::new(b.scratch.path(), "ceilings")?;
    let pki = Pki::new(&dir.path().join("pki"))?;
    let server_id = node("gz");
    let client_id = node("gz/c0");
    let server_tls = pki.node_tls(&server_id)?;
    let client_tls = pki.node_tls(&client_id)?;
    let server_cfg = jobmesh_node::transport::server_config(&server_tls)?;
    let client_cfg = jobmesh_node::transport::client_config(&client_tls, &server_id)?;
    let record = store::encode(&posting_record(&node("gz/c0/k0"), 123_456, &node("gz/c0/k0"), now_ms()));
    let plan = b.plan.clone();

    // QUIC stream throughput.
    let mut values = Vec::new();
    for run in 0..=plan.runs {
        let n = if run == 0 { plan.quinn_records / 4 } else { plan.quinn_records };
        let secs = b.rt.block_on(quic_stream(server_cfg.clone(), client_cfg.clone(), &record, n))?;
        let rate = n as f64 / secs;
        b.progress(&format!("1 quic stream run {run}: {n} records in {secs:.2} s = {rate:.0}/s"));
        if run > 0 {
            b.report.json("ceiling_quic_stream", run, &[("records", J::U(n as u64)), ("rec_per_s", J::F(rate))]);
            values.push(rate);
        }
    }
    let row = Row::new("1 ceilings", format!("QUIC stream, {}-byte records", record.len()), Unit::PerSec, values)
        .target(">= 1,600,000", 1_600_000.0);
    b.ceilings.quinn_rec_per_s = Some(row.median());
    b.report.row(row);

    // QUIC one-way latency.
    let (mut p50s, mut p99s) = (Vec::new(), Vec::new());
    for run in 0..=plan.runs {
        let mut rtts = b.rt.block_on(quic_ping(server_cfg.clone(), client_cfg.clone(), plan.latency_samples))?;
        for r in &mut rtts {
            *r /= 2.0;
        }
        let (p50, p99) = p50_p99(&mut rtts);
        if run > 0 {
            b.report.json(
                "ceiling_quic_oneway",
                run,
                &[("samples", J::U(rtts.len() as u64)), ("p50_us", J::F(p50)), ("p99_us", J::F(p99))],
            );
            p50s.push(p50);
            p99s.push(p99);
        }
    }
    let (p50, p99) = (super::report::median(&p50s), super::report::median(&p99s));
    b.ceilings.quic_oneway_us = Some((p50, p99));
    b.report.row(Row::new("1 ceilings", "QUIC one-way latency p50 (RTT/2)", Unit::Micros, p50s));
    b.report.row(Row::new("1 ceilings", "QUIC one-way latency p99 (RTT/2)", Unit::Micros, p99s));

    // sled batches.
    let mut values = Vec::new();
    let mut flushes = Vec::new();
    for run in 0..=plan.runs {
        let n = if run == 0 { plan.sled_records / 4 } else { plan.sled_records };
        let store_dir = Scratch::new(dir.path(), &format!("sled-{run}"))?;
        let (secs, flush_secs) = sled_batches(store_dir.path(), n)?;
        let rate = n as f64 / secs;
        b.progress(&format!(
            "1 sled run {run}: {n} records in {secs:.2} s = {rate:.0}/s ({:.0}% of it in flush)",
            100.0 * flush_secs / secs
        ));
        if run > 0 {
            b.report.json("ceiling_sled_batch512", run, &[("records", J::U(n as u64)), ("rec_per_s", J::F(rate))]);
            values.push(rate);
            flushes.push(flush_secs / (n / SLED_BATCH).max(1) as f64 * 1e6);
        }
    }
    let row =
        Row::new("1 ceilings", "sled apply_batch 512 + flush", Unit::PerSec, values).target(">= 120,000", 120_000.0);
    b.ceilings.sled_rec_per_s = Some(row.median());
    b.report.row(row);
    b.report.row(Row::new("1 ceilings", "sled flush after a 512-record batch", Unit::Micros, flushes));

    // One small durable write.
    let (mut p50s, mut p99s) = (Vec::new(), Vec::new());
    let store_dir = Scratch::new(dir.path(), "sled-latency")?;
    let kv = SledKv::open(store_dir.path())?;
    let mut seq = 0u64;
    for run in 0..=plan.runs {
        let mut samples = Vec::with_capacity(plan.latency_samples);
        for _ in 0..plan.latency_samples {
            seq += 1;
            let batch = postings_batch(seq, 1, seq);
            let mut kv2 = kv.clone();
            let t = Instant::now();
            kv2.write(batch)?;
            kv.flush_blocking()?;
            samples.push(t.elapsed().as_secs_f64() * 1e6);
        }
        let (p50, p99) = p50_p99(&mut samples);
        if run > 0 {
            b.report.json(
                "ceiling_sled_write_flush",
                run,
                &[("samples", J::U(samples.len() as u64)), ("p50_us", J::F(p50)), ("p99_us", J::F(p99))],
            );
            p50s.push(p50);
            p99s.push(p99);
        }
    }
    b.ceilings.sled_write_flush_us = Some((super::report::median(&p50s), super::report::median(&p99s)));
    b.report.row(Row::new("1 ceilings", "sled 1-record write + flush p50", Unit::Micros, p50s));
    b.report.row(Row::new("1 ceilings", "sled 1-record write + flush p99", Unit::Micros, p99s));
    Ok(())
}

/// One batch of `n` postings starting at sequence `first_seq`, in the
/// project's key layout, as a replication apply writes it (records and
/// journal entries; the last sequence; the sender's checkpoint).
fn postings_batch(first_seq: u64, n: usize, through: u64) -> WriteBatch {
    let origin = node("gz/c0/k0");
    let now = now_ms();
    let mut b = WriteBatch::default();
    for i in 0..n as u64 {
        let seq = first_seq + i;
        let rec = posting_record(&origin, seq, &origin, now);
        let key = record_key(Kind::Posting, rec.id.as_str());
        b.put(journal_key(seq), store::encode(&JournalEntry { key: key.clone(), route: rec.route() }));
        b.put(key, store::encode(&StoredRecord { seq, record: rec }));
    }
    b.put(META_SEQ.to_vec(), (first_seq + n as u64 - 1).to_be_bytes().to_vec());
    b.put(checkpoint_key(&origin), through.to_be_bytes().to_vec());
    b
}

/// Records per second of [`sled_batches`] on a fresh store under `parent`:
/// the sled ceiling measured again right before a run that it bounds.
pub fn sled_probe(parent: &std::path::Path, n: usize) -> anyhow::Result<f64> {
    let dir = Scratch::new(parent, "sled-probe")?;
    let (secs, _) = sled_batches(dir.path(), n)?;
    Ok(n as f64 / secs)
}

/// `n` records in batches of 512, each applied then flushed; (total
/// seconds, seconds in flush).
fn sled_batches(dir: &std::path::Path, n: usize) -> anyhow::Result<(f64, f64)> {
    let mut kv = SledKv::open(dir)?;
    let batches: Vec<WriteBatch> = (0..n.div_ceil(SLED_BATCH))
        .map(|i| postings_batch(1 + (i * SLED_BATCH) as u64, SLED_BATCH, i as u64))
        .collect();
    let mut in_flush = 0.0;
    let t = Instant::now();
    for batch in batches {
        kv.write(batch)?;
        let f = Instant::now();
        kv.flush_blocking()?;
        in_flush += f.elapsed().as_secs_f64();
    }
    Ok((t.elapsed().as_secs_f64(), in_flush))
}

async fn connect(
    server_cfg: quinn::ServerConfig,
    client_cfg: quinn::ClientConfig,
) -> anyhow::Result<(quinn::Endpoint, quinn::Endpoint, quinn::Connection, quinn::Connection)> {
    let server = quinn::Endpoint::server(server_cfg, "127.0.0.1:0".parse()?)?;
    let mut client = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
    client.set_default_client_config(client_cfg);
    let addr = server.local_addr()?;
    let accept = {
        let server = server.clone();
        tokio::spawn(async move {
            let incoming = server.accept().await.context("server endpoint closed")?;
            anyhow::Ok(incoming.await?)
        })
    };
    let conn = client.connect(addr, SERVER_NAME)?.await.context("QUIC handshake")?;
    let server_conn = accept.await??;
    Ok((server, client, conn, server_conn))
}

/// Seconds to move `n` records over one stream.
async fn quic_stream(
    server_cfg: quinn::ServerConfig,
    client_cfg: quinn::ClientConfig,
    record: &[u8],
    n: usize,
) -> anyhow::Result<f64> {
    let (server, client, conn, server_conn) = connect(server_cfg, client_cfg).await?;
    let framed = {
        let mut f = (record.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(record);
        f
    };
    let per_buffer = WRITE_BUFFER / framed.len();
    let total = (framed.len() * n) as u64;
    let receiver = tokio::spawn(async move {
        let (_send, mut recv) = server_conn.accept_bi().await?;
        let mut buf = vec![0u8; WRITE_BUFFER];
        let mut got = 0u64;
        while let Some(k) = recv.read(&mut buf).await? {
            got += k as u64;
        }
        anyhow::Ok((got, Instant::now()))
    });
    let (mut send, _recv) = conn.open_bi().await?;
    let full = framed.repeat(per_buffer);
    let t0 = Instant::now();
    let mut left = n;
    while left > 0 {
        let k = left.min(per_buffer);
        send.write_all(&full[..k * framed.len()]).await?;
        left -= k;
    }
    send.finish()?;
    let (got, t1) = receiver.await??;
    if got != total {
        bail!("the receiver got {got} bytes of {total}");
    }
    conn.close(0u32.into(), b"done");
    client.wait_idle().await;
    server.close(0u32.into(), b"done");
    Ok(t1.duration_since(t0).as_secs_f64())
}

/// `samples` round trips of 8 bytes, µs each (after 50 unrecorded ones).
async fn quic_ping(
    server_cfg: quinn::ServerConfig,
    client_cfg: quinn::ClientConfig,
    samples: usize,
) -> anyhow::Result<Vec<f64>> {
    let (server, client, conn, server_conn) = connect(server_cfg, client_cfg).await?;
    let echo = tokio::spawn(async move {
        let (mut send, mut recv) = server_conn.accept_bi().await?;
        let mut buf = [0u8; 8];
        loop {
            match recv.read_exact(&mut buf).await {
                Ok(()) => send.write_all(&buf).await?,
                Err(quinn::ReadExactError::FinishedEarly(_)) => break,
                Err(e) => return Err(e.into()),
            }
        }
        anyhow::Ok(())
    });
    let (mut send, mut recv) = conn.open_bi().await?;
    let mut out = Vec::with_capacity(samples);
    let mut buf = [0u8; 8];
    for i in 0..samples + 50 {
        let t = Instant::now();
        send.write_all(&(i as u64).to_be_bytes()).await?;
        recv.read_exact(&mut buf).await?;
        if i >= 50 {
            out.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    send.finish()?;
    echo.await??;
    conn.close(0u32.into(), b"done");
    client.wait_idle().await;
    server.close(0u32.into(), b"done");
    Ok(out)
}
