//! What the cases are made of: scratch folders, 300-byte postings and other
//! records, the province CA and node configs, and stores filled offline
//! through the engine (local writes, or batches applied as if a child had
//! sent them: the same `on_batch` path replication takes).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use jobmesh_protocol::engine::local::NewPosting;
use jobmesh_protocol::figures::{Breakdown, Daily, Figures, GroupFigures, Holds, Totals};
use jobmesh_protocol::record::{KeyGroup, Posting, PostingStatus, Summary, WorkType, Worker};
use jobmesh_protocol::store;
use jobmesh_protocol::time::local_day;
use jobmesh_protocol::wire::{Batch, Frame, FrameV1, Hello, CAPABILITIES, MAX_BATCH_RECORDS, PROTOCOL_VERSION};
use jobmesh_protocol::{Body, Engine, EngineConfig, Event, Kind, NodeId, Record, RecordId};

use jobmesh_node::pki::Ca;
use jobmesh_node::state::now_ms;
use jobmesh_node::storage::{OpenError, SledKv};
use jobmesh_node::tls::NodeTls;

/// Encoded size of the bench's postings (bincode of the record, as stored
/// and as sent), for an id of typical length.
pub const RECORD_BYTES: usize = 300;

/// A folder removed when dropped.
pub struct Scratch {
    path: PathBuf,
}

impl Scratch {
    /// A new, empty folder `name` under `parent`.
    pub fn new(parent: &Path, name: &str) -> anyhow::Result<Scratch> {
        let path = parent.join(name);
        if path.exists() {
            std::fs::remove_dir_all(&path).with_context(|| format!("cannot clear {}", path.display()))?;
        }
        std::fs::create_dir_all(&path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Scratch { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

pub fn node(id: &str) -> NodeId {
    NodeId::parse(id).unwrap_or_else(|e| unreachable!("bench node ids are valid: {e}"))
}

const CATEGORIES: [&str; 8] =
    ["waiter", "assembler", "sorter", "courier", "domestic service", "elderly care", "technician", "construction"];

fn fields(n: u64) -> (String, String, String, WorkType, u32, String) {
    (
        format!("Assembly line operator, electronics plant, shift {:08}", n),
        format!("Guizhou Precision Electronics Co., Ltd. unit {:04}", n % 10_000),
        CATEGORIES[(n % 8) as usize].to_owned(),
        WorkType::ALL[(n % 4) as usize],
        1 + (n % 5) as u32,
        "3,800-4,600 CNY/month".to_owned(),
    )
}

/// The location text, padded so that a posting encodes to [`RECORD_BYTES`].
fn location() -> &'static str {
    static LOCATION: OnceLock<String> = OnceLock::new();
    LOCATION.get_or_init(|| {
        let base = "Guanshanhu District, Guiyang, Guizhou";
        let origin = node("gz/c0/k0");
        let probe = |loc: &str| {
            let mut r = posting_record_with(&origin, 123_456, &origin, 1_795_910_400_000, loc);
            r.version = 1;
            store::encode(&r).len()
        };
        let short = probe(base);
        let pad = RECORD_BYTES.saturating_sub(short);
        format!("{base}{}", ".".repeat(pad))
    })
}

fn posting_record_with(origin: &NodeId, n: u64, audience: &NodeId, now: u64, location: &str) -> Record {
    let (title, employer, category, work_type, positions, wage) = fields(n);
    Record {
        id: RecordId::numbered(origin, Kind::Posting, n),
        origin: origin.clone(),
        version: 1,
        body: Body::Posting(Posting {
            title,
            employer,
            category,
            work_type,
            positions,
            wage: Some(wage),
            location: Some(location.to_owned()),
            valid_until: Some("2027-06-30".into()),
            status: PostingStatus::Open,
            audience: audience.clone(),
            created_at: now,
            updated_at: now,
        }),
    }
}

/// Posting number `n` of `origin`, as its origin would have stored it.
pub fn posting_record(origin: &NodeId, n: u64, audience: &NodeId, now: u64) -> Record {
    posting_record_with(origin, n, audience, now, location())
}

/// The same posting as the API's writes take it.
pub fn new_posting(n: u64, audience: Option<NodeId>) -> NewPosting {
    let (title, employer, category, work_type, positions, wage) = fields(n);
    NewPosting {
        title,
        employer,
        category,
        work_type,
        positions,
        audience,
        wage: Some(wage),
        location: Some(location().to_owned()),
        valid_until: Some("2027-06-30".into()),
    }
}

/// The same posting as a `POST /v1/postings` body.
pub fn posting_json(n: u64, audience: Option<&NodeId>) -> Vec<u8> {
    let (title, employer, category, work_type, positions, wage) = fields(n);
    let mut v = serde_json::json!({
        "title": title, "employer": employer, "category": category,
        "work_type": work_type.as_str(), "positions": positions,
        "wage": wage, "location": location(), "valid_until": "2027-06-30",
    });
    if let Some(a) = audience {
        v["audience"] = serde_json::Value::from(a.as_str());
    }
    serde_json::to_vec(&v).unwrap_or_default()
}

/// Worker number `n` of `origin`.
pub fn worker_record(origin: &NodeId, n: u64, now: u64) -> Record {
    Record {
        id: RecordId::numbered(origin, Kind::Worker, n),
        origin: origin.clone(),
        version: 1,
        body: Body::Worker(Worker {
            name: format!("Worker {n:08}"),
            key_group: KeyGroup::ALL[(n % 6) as usize],
            phone: Some(format!("138{:08}", n % 100_000_000)),
            skills: vec!["assembly".into(), "forklift".into(), "welding".into()],
            wanted_work_type: Some(WorkType::ALL[(n % 4) as usize]),
            registered_at: now,
        }),
    }
}

/// A summary such as a busy office publishes: every breakdown filled, a
/// month of daily figures.
pub fn summary_record(origin: &NodeId, now: u64, salt: u64) -> Record {
    let mut f = Figures::default();
    let k = (salt % 50) as i64 + 1;
    f.totals = Totals {
        postings_open: 10 * k,
        positions_open: 25 * k,
        positions_filled: 7 * k,
        workers_registered: 40 * k,
        workers_seeking: 30 * k,
        placements: 7 * k,
    };
    for c in CATEGORIES {
        f.by_category.insert(c.to_owned(), Breakdown { postings_open: k, positions_open: 3 * k, placements: k });
    }
    for w in WorkType::ALL {
        f.by_work_type
            .insert(w.as_str().to_owned(), Breakdown { postings_open: 2 * k, positions_open: 6 * k, placements: k });
    }
    for g in KeyGroup::ALL {
        f.by_key_group.insert(
            g.as_str().to_owned(),
            GroupFigures { workers_registered: 6 * k, workers_seeking: 5 * k, placements: k },
        );
    }
    let today = local_day(now);
    for d in 0..30 {
        f.daily.insert(today - d, Daily { postings_published: k, placements: 1 });
    }
    f.holds = Holds { postings: 10 * k, workers: 40 * k, placements: 7 * k, fills: 7 * k };
    Record {
        id: RecordId::summary(origin),
        origin: origin.clone(),
        version: 1,
        body: Body::Summary(Summary { generated_at: now, figures: f }),
    }
}

/// The province CA of one cluster, and the files nodes load.
pub struct Pki {
    dir: PathBuf,
    ca: Ca,
}

impl Pki {
    pub fn new(dir: &Path) -> anyhow::Result<Pki> {
        std::fs::create_dir_all(dir)?;
        let ca = Ca::generate(30)?;
        std::fs::write(dir.join(jobmesh_node::pki::CA_CERT_FILE), ca.cert_pem())?;
        Ok(Pki { dir: dir.to_owned(), ca })
    }

    fn files(&self, id: &NodeId) -> (PathBuf, PathBuf) {
        let stem = id.file_stem();
        (self.dir.join(format!("{stem}.pem")), self.dir.join(format!("{stem}.key")))
    }

    /// Issue `id`'s certificate unless it exists.
    pub fn issue(&self, id: &NodeId) -> anyhow::Result<(PathBuf, PathBuf)> {
        let (cert, key) = self.files(id);
        if !cert.exists() {
            let pem = self.ca.issue(id, 30)?;
            std::fs::write(&cert, pem.cert_pem)?;
            std::fs::write(&key, pem.key_pem)?;
        }
        Ok((cert, key))
    }

    /// `id`'s TLS identity, for the raw QUIC ceiling.
    pub fn node_tls(&self, id: &NodeId) -> anyhow::Result<NodeTls> {
        let (cert, key) = self.issue(id)?;
        Ok(NodeTls::from_pem(id, self.ca.cert_pem().as_bytes(), &std::fs::read(cert)?, &std::fs::read(key)?)?)
    }
}

/// One node's place in a cluster.
pub struct NodeSpec {
    pub id: NodeId,
    pub listen: SocketAddr,
    pub api: SocketAddr,
    pub parent: Option<SocketAddr>,
    pub data_dir: PathBuf,
    pub topology: Option<PathBuf>,
}

/// Write `id`'s config (and certificate) into the PKI folder; its path.
pub fn write_config(pki: &Pki, spec: &NodeSpec) -> anyhow::Result<PathBuf> {
    let (cert, key) = pki.issue(&spec.id)?;
    let q = |p: &Path| serde_json::Value::from(p.display().to_string()).to_string();
    let mut text = format!(
        "node_id = \"{}\"\ndata_dir = {}\nlisten = \"{}\"\napi = \"{}\"\n\
         # Heals are noticed within 200 ms (the least allowed), so catch-up\n\
         # times measure the transfer rather than the redial backoff.\n\
         reconnect_max_ms = 200\n",
        spec.id,
        q(&spec.data_dir),
        spec.listen,
        spec.api
    );
    if let Some(t) = &spec.topology {
        text += &format!("topology = {}\n", q(t));
    }
    match (spec.id.parent(), spec.parent) {
        (Some(p), Some(addr)) => text += &format!("[parent]\nnode_id = \"{p}\"\naddr = \"{addr}\"\n"),
        (None, None) => {}
        _ => bail!("{}: a parent address is needed exactly when the node has a parent", spec.id),
    }
    text += &format!(
        "[tls]\nca_cert = {}\ncert = {}\nkey = {}\n",
        q(&pki.dir.join(jobmesh_node::pki::CA_CERT_FILE)),
        q(&cert),
        q(&key)
    );
    let path = pki.dir.join(format!("{}.toml", spec.id.file_stem()));
    std::fs::write(&path, text)?;
    Ok(path)
}

/// Open a store, waiting (bounded) for a node that just stopped to let go
/// of its lock.
pub fn open_store(dir: &Path) -> anyhow::Result<SledKv> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match SledKv::open(dir) {
            Ok(kv) => return Ok(kv),
            Err(OpenError::Locked { .. }) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(e.into()),
        }
    }
}

/// An engine on a store, driven without a network to fill the store: the
/// API's local writes, or batches from a child applied exactly as a link
/// applies them.
pub struct Filler {
    engine: Engine<SledKv>,
    kv: SledKv,
    /// Per child: the `through` of the last batch delivered.
    through: BTreeMap<NodeId, u64>,
    unflushed: usize,
}

/// Batches applied between two flushes while filling.
const FILL_FLUSH_EVERY: usize = 8;

impl Filler {
    pub fn open(dir: &Path, id: &NodeId) -> anyhow::Result<Filler> {
        let kv = open_store(dir)?;
        let engine = Engine::open(id.clone(), kv.clone(), EngineConfig::default(), now_ms())?;
        Ok(Filler { engine, kv, through: BTreeMap::new(), unflushed: 0 })
    }

    /// Everything written so far made durable; engine output dropped.
    pub fn flush(&mut self) -> anyhow::Result<()> {
        let ticket = self.engine.begin_flush();
        self.kv.flush_blocking()?;
        self.engine.flushed(ticket, now_ms());
        self.drain()?;
        self.unflushed = 0;
        Ok(())
    }

    fn drain(&mut self) -> anyhow::Result<()> {
        while self.engine.poll_transmit().is_some() {}
        while let Some(ev) = self.engine.poll_event() {
            if let Event::Refused { reason, .. } = ev {
                bail!("the engine refused a bench batch: {reason}");
            }
        }
        Ok(())
    }

    /// `n` postings written at this node through the engine's local write
    /// path (one store write each, flushed every 4,096), numbered from the
    /// node's counter. Returns the first and last ids.
    pub fn local_postings(&mut self, n: usize, audience: Option<&NodeId>) -> anyhow::Result<(RecordId, RecordId)> {
        let mut first = None;
        let mut last = None;
        for i in 0..n {
            let w = self.engine.create_posting(new_posting(i as u64, audience.cloned()), now_ms())?;
            let id = w.records[0].id.clone();
            first.get_or_insert_with(|| id.clone());
            last = Some(id);
            if i % 4096 == 4095 {
                self.flush()?;
            }
        }
        self.flush()?;
        match (first, last) {
            (Some(f), Some(l)) => Ok((f, l)),
            _ => bail!("no postings written"),
        }
    }

    /// Apply `records` (all with origins in subtree(`child`)) as batches
    /// from `child`, flushing every few batches.
    pub fn deliver(&mut self, child: &NodeId, records: Vec<Record>) -> anyhow::Result<()> {
        let now = now_ms();
        if !self.through.contains_key(child) {
            self.engine.link_up(child, now)?;
            let hello = Hello {
                protocol: PROTOCOL_VERSION,
                capabilities: CAPABILITIES,
                node_id: child.clone(),
                resume_after: 0,
                seen_yours: true,
            };
            self.engine.handle_frame(child, Frame::V1(FrameV1::Hello(hello)), now)?;
            let start = store::checkpoint(&self.kv, child)?;
            self.through.insert(child.clone(), start);
        }
        let mut records = records;
        while !records.is_empty() {
            let rest = records.split_off(records.len().min(MAX_BATCH_RECORDS));
            let from = self.through[child];
            let through = from + records.len() as u64;
            let batch = Batch { from, through, records: std::mem::replace(&mut records, rest) };
            self.engine.handle_frame(child, Frame::V1(FrameV1::Batch(batch)), now)?;
            self.through.insert(child.clone(), through);
            self.drain()?;
            self.unflushed += 1;
            if self.unflushed >= FILL_FLUSH_EVERY {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// Flush and close; the store's size on disk.
    pub fn finish(mut self) -> anyhow::Result<u64> {
        self.flush()?;
        let size = self.kv.size_on_disk();
        drop(self.engine);
        Ok(size)
    }
}
