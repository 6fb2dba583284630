//! A throwaway PostgreSQL server for the sink's tests.
//!
//! [`Postgres::start`] runs Debian's `initdb` into a temporary folder and
//! starts `postgres` on a free loopback port, as a non-root OS user (when
//! the tests run as root: the `postgres` user the package creates, else a
//! `jobmesh-pg` system user made with `useradd`). The superuser is `admin`
//! with a password, and every login needs a password (scram-sha-256), so a
//! wrong password really is refused. The server is stopped by its PID
//! (SIGINT, a fast shutdown) when dropped; [`Postgres::kill9`] and
//! [`Postgres::restart`] crash and restart it on the same data.
//!
//! Binaries: `$JOBMESH_PG_BIN`, else the newest `/usr/lib/postgresql/*/bin`,
//! else `initdb` on `PATH` (e.g. /usr/local/bin). When none is found the
//! tests skip with a message, except under `CI=true`, where they fail
//! (`.ci/run` installs the `postgresql` package); the bench reports its
//! case as not run ([`Postgres::try_start`]).

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::mesh::free_tcp;

/// The superuser's password.
pub const ADMIN_PASSWORD: &str = "admin-secret";
/// How long the server gets to accept connections after it is started.
const READY_LIMIT: Duration = Duration::from_secs(60);
/// How long a fast shutdown may take before the server is killed.
const STOP_LIMIT: Duration = Duration::from_secs(20);

/// A running (or crashed) PostgreSQL server of one test.
pub struct Postgres {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    bin: PathBuf,
    pub port: u16,
    owner: Option<(u32, u32)>,
    fsync: bool,
    child: Option<Child>,
}

/// Where PostgreSQL's server binaries are, if installed.
pub fn bin_dir() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("JOBMESH_PG_BIN") {
        return Some(PathBuf::from(p));
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    found.sort();
    if let Some((_, b)) = found.pop() {
        return Some(b);
    }
    let out = Command::new("sh").args(["-c", "command -v initdb"]).output().ok()?;
    let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    p.parent().filter(|_| out.status.success()).map(Path::to_path_buf)
}

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The uid and gid to run PostgreSQL as: `None` when not root (run as
/// ourselves); as root, the `postgres` user or one made for the tests.
fn server_owner() -> Option<(u32, u32)> {
    let me: u32 = run(Command::new("id").arg("-u"), "id -u").trim().parse().ok()?;
    if me != 0 {
        return None;
    }
    let id_of = |user: &str| -> Option<(u32, u32)> {
        let u = Command::new("id").args(["-u", user]).output().ok().filter(|o| o.status.success())?;
        let g = Command::new("id").args(["-g", user]).output().ok().filter(|o| o.status.success())?;
        Some((
            String::from_utf8_lossy(&u.stdout).trim().parse().ok()?,
            String::from_utf8_lossy(&g.stdout).trim().parse().ok()?,
        ))
    };
    if let Some(ids) = id_of("postgres").or_else(|| id_of("jobmesh-pg")) {
        return Some(ids);
    }
    // Another test may create it at the same moment: a failure is fine if
    // the user exists afterwards.
    let _ = Command::new("useradd")
        .args(["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "jobmesh-pg"])
        .status();
    Some(id_of("jobmesh-pg").unwrap_or_else(|| panic!("running as root, and cannot create the user jobmesh-pg")))
}

impl Postgres {
    /// A fresh server, or `None` (with a message) when PostgreSQL is not
    /// installed and this is not CI. `fsync` off suits tests that kill
    /// processes (the OS keeps what a killed server wrote); the bench keeps
    /// it on.
    pub fn start(fsync: bool) -> Option<Postgres> {
        match Postgres::try_start(fsync) {
            Ok(pg) => Some(pg),
            Err(why) => {
                let ci = std::env::var("CI").map(|v| v == "true").unwrap_or(false);
                assert!(!ci, "CI=true: {why} (.ci/run installs the postgresql package)");
                eprintln!("SKIPPED: {why}; set JOBMESH_PG_BIN or install postgresql");
                None
            }
        }
    }

    /// A fresh server, or why there is none (no server binaries). Failures
    /// once the binaries are found (initdb, start) panic.
    pub fn try_start(fsync: bool) -> Result<Postgres, String> {
        let Some(bin) = bin_dir() else {
            return Err("PostgreSQL's server binaries were not found (no initdb in $JOBMESH_PG_BIN, \
                        /usr/lib/postgresql/*/bin or PATH)"
                .into());
        };
        let tmp = tempfile::Builder::new().prefix("jobmesh-pg-").tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let dir = tmp.path().to_path_buf();
        let owner = server_owner();
        std::fs::write(dir.join("pwfile"), format!("{ADMIN_PASSWORD}\n")).unwrap_or_else(|e| panic!("pwfile: {e}"));
        if let Some((uid, gid)) = owner {
            run(Command::new("chown").args(["-R", &format!("{uid}:{gid}")]).arg(&dir), "chown");
        }
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-U", "admin", "-A", "scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync"])
            .arg(format!("--pwfile={}", dir.join("pwfile").display()))
            .current_dir(&dir);
        if let Some((uid, gid)) = owner {
            initdb.uid(uid).gid(gid);
        }
        run(&mut initdb, "initdb");
        let mut pg = Postgres { _tmp: tmp, dir, bin, port: free_tcp().port(), owner, fsync, child: None };
        pg.spawn_until_ready();
        Ok(pg)
    }

    fn spawn(&mut self) -> Child {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.dir.join("postgres.log"))
            .unwrap_or_else(|e| panic!("postgres.log: {e}"));
        let err = log.try_clone().unwrap_or_else(|e| panic!("postgres.log: {e}"));
        let mut cmd = Command::new(self.bin.join("postgres"));
        cmd.arg("-D")
            .arg(self.dir.join("data"))
            .args(["-p", &self.port.to_string(), "-c", "listen_addresses=127.0.0.1", "-k"])
            .arg(&self.dir)
            .args(["-c", &format!("fsync={}", if self.fsync { "on" } else { "off" })])
            .args(["-c", "max_connections=40", "-c", "shared_buffers=64MB"])
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err));
        if let Some((uid, gid)) = self.owner {
            cmd.uid(uid).gid(gid);
        }
        cmd.spawn().unwrap_or_else(|e| panic!("spawn postgres: {e}"))
    }

    /// Start the server and wait until it accepts a login. After a crash,
    /// the killed server's backends may still hold its shared memory for a
    /// moment; the start is then retried.
    fn spawn_until_ready(&mut self) {
        let started = Instant::now();
        let mut child = self.spawn();
        loop {
            assert!(
                started.elapsed() < READY_LIMIT,
                "PostgreSQL did not start within {READY_LIMIT:?}\n{}",
                self.log_tail()
            );
            if let Ok(Some(_)) = child.try_wait() {
                std::thread::sleep(Duration::from_millis(300));
                child = self.spawn();
                continue;
            }
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-t", "1"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ready {
                self.child = Some(child);
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A folder the server may read and write (server-side `COPY` files).
    pub fn server_dir(&self) -> &Path {
        &self.dir
    }

    /// The server's PID (the postmaster), while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `postgresql://USER@127.0.0.1:PORT/DB` (no password).
    pub fn url(&self, user: &str, db: &str) -> String {
        format!("postgresql://{user}@127.0.0.1:{}/{db}", self.port)
    }

    /// A connection as `user` with `password` to `db`.
    pub async fn connect_as(&self, user: &str, password: &str, db: &str) -> tokio_postgres::Client {
        let cfg = format!("host=127.0.0.1 port={} user={user} password={password} dbname={db}", self.port);
        let (client, conn) = tokio_postgres::connect(&cfg, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("connect {user}@{db}: {e}"));
        tokio::spawn(async move {
            let _ = conn.await;
        });
        client
    }

    /// A superuser connection to `db`.
    pub async fn admin(&self, db: &str) -> tokio_postgres::Client {
        self.connect_as("admin", ADMIN_PASSWORD, db).await
    }

    /// Make a login role with `password` and a database it owns.
    pub async fn create_user_and_db(&self, user: &str, password: &str, db: &str) {
        let admin = self.admin("postgres").await;
        // Two statements: CREATE DATABASE cannot run inside the implicit
        // transaction of a multi-statement batch.
        for sql in
            [format!("CREATE ROLE {user} LOGIN PASSWORD '{password}'"), format!("CREATE DATABASE {db} OWNER {user}")]
        {
            admin.batch_execute(&sql).await.unwrap_or_else(|e| panic!("{sql}: {e:?}"));
        }
    }

    /// `kill -9` the postmaster (by PID) and reap it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start again on the same data (after [`Postgres::kill9`] or
    /// [`Postgres::stop`]), waiting until it accepts logins.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart: the server is still running");
        self.spawn_until_ready();
    }

    /// Fast shutdown by PID (SIGINT), killed after [`STOP_LIMIT`].
    pub fn stop(&mut self) {
        let Some(mut c) = self.child.take() else { return };
        let _ = Command::new("kill").args(["-INT", &c.id().to_string()]).status();
        let started = Instant::now();
        while started.elapsed() < STOP_LIMIT {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
    }

    /// The end of the server's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default();
        crate::bin::tail(&text, 30)
    }
}

/// A TCP relay between the sink and PostgreSQL that can cut the link:
/// [`TcpCut::cut`] drops every relayed connection at once and refuses new
/// ones (each is closed as soon as it is accepted) until [`TcpCut::heal`].
pub struct TcpCut {
    pub addr: std::net::SocketAddr,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl TcpCut {
    /// Relay from a free loopback port to `upstream`.
    pub async fn start(upstream: std::net::SocketAddr) -> TcpCut {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("local_addr: {e}"));
        let down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let conns = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (d, c) = (down.clone(), conns.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if d.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let relay = tokio::spawn(async move {
                    if let Ok(mut out) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
                let mut list = c.lock().unwrap_or_else(|p| p.into_inner());
                list.retain(|h: &tokio::task::AbortHandle| !h.is_finished());
                list.push(relay.abort_handle());
            }
        });
        TcpCut { addr, down, conns, accept }
    }

    /// Drop every relayed connection and refuse new ones.
    pub fn cut(&self) {
        self.down.store(true, std::sync::atomic::Ordering::SeqCst);
        for h in self.conns.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            h.abort();
        }
    }

    /// Relay new connections again.
    pub fn heal(&self) {
        self.down.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for TcpCut {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The mirror's tables against a node's API, field by field.
pub mod compare {
    use std::collections::BTreeMap;

    use serde_json::Value;
    use tokio_postgres::Client;

    use crate::client::Api;

    /// `YYYY-MM-DDTHH:MM:SSZ`, as the API writes times.
    fn iso(col: &str) -> String {
        format!("to_char({col} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS {col}")
    }

    /// The rows of `sql` (one JSON object per row, under column `j`) by id.
    async fn rows(pg: &Client, sql: &str) -> Result<BTreeMap<String, Value>, String> {
        let rows = pg.query(sql, &[]).await.map_err(|e| format!("{sql}: {e}"))?;
        Ok(rows
            .iter()
            .map(|r| {
                let v: Value = r.get("j");
                (v["id"].as_str().unwrap_or_default().to_string(), v)
            })
            .collect())
    }

    /// Every record of `collection` at the API has a row with equal fields,
    /// and no row is extra.
    async fn same(pg: &Client, api: &Api, collection: &str, sql: &str) -> Result<usize, String> {
        let held: BTreeMap<String, Value> = api
            .list_with(collection, 5_000, &[])
            .await?
            .into_iter()
            .map(|v| (v["id"].as_str().unwrap_or_default().to_string(), v))
            .collect();
        let mirrored = rows(pg, sql).await?;
        if let Some(id) = held.keys().find(|id| !mirrored.contains_key(*id)) {
            return Err(format!(
                "{collection}: {id} is held but not mirrored ({} held, {} mirrored)",
                held.len(),
                mirrored.len()
            ));
        }
        if let Some(id) = mirrored.keys().find(|id| !held.contains_key(*id)) {
            return Err(format!("{collection}: {id} is mirrored but not held"));
        }
        for (id, row) in &mirrored {
            let rec = &held[id];
            for (k, v) in row.as_object().into_iter().flatten() {
                if rec.get(k) != Some(v) {
                    return Err(format!("{collection} {id}: field {k}: mirrored {v}, held {:?}", rec.get(k)));
                }
            }
        }
        Ok(held.len())
    }

    /// Counts per collection when the mirror equals the node's records:
    /// postings, workers and placements field by field, fills summed per
    /// posting against each posting's `filled`, and each office's latest
    /// summary totals against `/v1/summary`.
    pub async fn mirror_equals(pg: &Client, schema: &str, api: &Api) -> Result<BTreeMap<&'static str, usize>, String> {
        let s = schema;
        let mut counts = BTreeMap::new();
        let postings = format!(
            "SELECT row_to_json(t) AS j FROM (SELECT id, origin, version, title, employer, category, work_type, \
             positions, wage, location, valid_until::text AS valid_until, status, audience, {}, {} FROM {s}.postings) t",
            iso("created_at"),
            iso("updated_at")
        );
        counts.insert("postings", same(pg, api, "postings", &postings).await?);
        let workers = format!(
            "SELECT row_to_json(t) AS j FROM (SELECT id, origin, version, name, key_group, phone, skills, \
             wanted_work_type, {} FROM {s}.workers) t",
            iso("registered_at")
        );
        counts.insert("workers", same(pg, api, "workers", &workers).await?);
        let placements = format!(
            "SELECT row_to_json(t) AS j FROM (SELECT id, origin, version, worker_id, worker_office, posting_id, \
             posting_origin, category, work_type, key_group, {} FROM {s}.placements) t",
            iso("placed_at")
        );
        counts.insert("placements", same(pg, api, "placements", &placements).await?);
        let matters = format!(
            "SELECT row_to_json(t) AS j FROM (SELECT id, origin, version, category, channel, key_group, summary, \
             status, {}, {}, {} FROM {s}.matters) t",
            iso("opened_at"),
            iso("resolved_at"),
            iso("updated_at")
        );
        counts.insert("matters", same(pg, api, "matters", &matters).await?);

        // Fills: the sum per posting is the posting's `filled` at the node.
        let filled: BTreeMap<String, i64> = pg
            .query(&format!("SELECT posting_id, sum(filled)::int8 FROM {s}.fills GROUP BY posting_id"), &[])
            .await
            .map_err(|e| e.to_string())?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        for p in api.list_with("postings", 5_000, &[]).await? {
            let id = p["id"].as_str().unwrap_or_default();
            let want = p["filled"].as_i64().unwrap_or(-1);
            let got = filled.get(id).copied().unwrap_or(0);
            if want != got {
                return Err(format!("fills of {id}: mirrored sum {got}, held {want}"));
            }
        }
        counts.insert("fills", filled.len());

        // Summaries: each office's latest totals.
        let summary = api.summary().await?;
        let mirrored: BTreeMap<String, Value> = pg
            .query(
                &format!(
                    "SELECT origin, json_build_object('postings_open', postings_open, 'positions_open', positions_open, \
                     'positions_filled', positions_filled, 'workers_registered', workers_registered, \
                     'workers_seeking', workers_seeking, 'placements', placements) FROM {s}.summaries"
                ),
                &[],
            )
            .await
            .map_err(|e| e.to_string())?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let mut offices = 0;
        for row in summary["nodes"].as_array().into_iter().flatten() {
            let id = row["node_id"].as_str().unwrap_or_default();
            if row["totals"].is_null() || row["missing"] == Value::Bool(true) {
                continue;
            }
            let Some(m) = mirrored.get(id) else { return Err(format!("summary of {id} is not mirrored")) };
            for (k, v) in m.as_object().into_iter().flatten() {
                if row["totals"].get(k) != Some(v) {
                    return Err(format!("summary of {id}: {k} mirrored {v}, held {}", row["totals"][k]));
                }
            }
            offices += 1;
        }
        counts.insert("summaries", offices);

        // History: the latest summary version of each office is in it.
        let r = pg
            .query_one(
                &format!(
                    "SELECT count(*) FROM {s}.summaries m WHERE NOT EXISTS \
                     (SELECT 1 FROM {s}.summaries_history h WHERE h.origin = m.origin AND h.version = m.version)"
                ),
                &[],
            )
            .await
            .map_err(|e| e.to_string())?;
        let missing: i64 = r.get(0);
        if missing != 0 {
            return Err(format!("{missing} latest summaries have no history row"));
        }
        Ok(counts)
    }

    /// `/v1/status` says the sink has mirrored everything the node holds.
    pub async fn caught_up(api: &Api) -> Result<Value, String> {
        let st = api.status().await?;
        let sink = &st["sink"];
        if sink.is_null() {
            return Err(format!("/v1/status has no sink: {st}"));
        }
        if sink["lag_entries"] != 0 || sink["connected"] != true || sink["checkpoint"] != st["journal"]["last_seq"] {
            return Err(format!("sink not caught up: {sink} (journal {})", st["journal"]));
        }
        Ok(sink.clone())
    }
}
