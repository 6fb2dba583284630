//! `jobmesh backup --config F --out FILE`: asks the running node for its
//! store (`GET /v1/backup`; the node holds its data directory's lock, see
//! `jobmesh_node::ops::backup`), checks the file and writes it.

use std::path::PathBuf;

use anyhow::{bail, ensure, Context};
use clap::Args;
use jobmesh_node::config::Config;
use jobmesh_node::ops::backup::decode;

/// Longest the node may take to produce a backup.
const BACKUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The office's config: its `api` and `api_token_file` say where to
    /// ask.
    #[arg(long, short, value_name = "FILE")]
    pub config: PathBuf,
    /// Where to write the backup.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// `jobmesh backup`.
pub fn backup(args: BackupArgs) -> anyhow::Result<()> {
    let cfg = Config::load(&args.config)?;
    let host = if cfg.api.ip().is_unspecified() {
        std::net::SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), cfg.api.port())
    } else {
        cfg.api
    };
    let url = format!("http://{host}/v1/backup");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the runtime")?;
    let bytes = rt.block_on(async {
        let http = reqwest::Client::builder().timeout(BACKUP_TIMEOUT).build()?;
        let mut req = http.get(&url);
        if let Some(t) = &cfg.api_token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.with_context(|| format!("the node does not answer at {url}; is it running?"))?;
        let status = r.status();
        let body = r.bytes().await?;
        if !status.is_success() {
            bail!("GET {url}: {status} {}", String::from_utf8_lossy(&body));
        }
        anyhow::Ok(body)
    })?;
    let (m, _) = decode(&bytes).context("the node's answer")?;
    ensure!(m.node_id == cfg.node_id.as_str(), "the node at {url} is {}, not {}", m.node_id, cfg.node_id);
    let tmp = args.out.with_extension("partial");
    std::fs::write(&tmp, &bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &args.out).with_context(|| format!("cannot write {}", args.out.display()))?;
    println!(
        "{}: backup of {} at {}: {} entries, journal seq {}, {} bytes, sha256 {}",
        args.out.display(),
        m.node_id,
        m.created_at,
        m.entries,
        m.last_seq,
        bytes.len(),
        m.body_sha256
    );
    Ok(())
}
