//! Staff's files in and figures out, against real nodes (a 1+1+1 chain): a
//! 50,000-row CSV imported, killed halfway and run again (planted errors
//! reported exactly, every good row exactly once, converged to the
//! province), a 10,000-row xlsx and a GB18030 file, concurrent POSTs under
//! one external reference, and exports read back with calamine equal to
//! the JSON they come from.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use calamine::Reader;
use jobmesh_tests::bin::jobmesh_bin;
use jobmesh_tests::{eventually, within, Api, Mesh};
use serde_json::{json, Value};

const NODES: [&str; 3] = ["gz", "gz/a", "gz/a/x"];
const COUNTY: &str = "gz/a/x";
const CONVERGE: Duration = Duration::from_secs(120);

fn import(kind: &str, file: &Path, api: &str, extra: &[&str]) -> Output {
    Command::new(jobmesh_bin())
        .args(["import", kind])
        .arg(file)
        .args(["--api", api])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run jobmesh import: {e}"))
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The rows/s the CLI printed.
fn rate(o: &Output) -> f64 {
    let out = String::from_utf8_lossy(&o.stdout);
    out.lines()
        .filter_map(|line| line.rsplit(';').next())
        .find_map(|part| part.trim().strip_suffix(" rows/s").and_then(|n| n.parse().ok()))
        .unwrap_or_else(|| panic!("no rate in the output: {out}"))
}

/// The report written beside `file`: (line, column, problem) triples.
fn report(file: &Path) -> BTreeSet<(u64, String, String)> {
    let path = format!("{}.report.csv", file.display());
    let mut r = csv::Reader::from_path(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    r.records()
        .map(|rec| {
            let rec = rec.unwrap_or_else(|e| panic!("{path}: {e}"));
            let field = rec[2].to_string();
            let msg = if field.is_empty() {
                format!("{} ({})", &rec[3], &rec[4])
            } else {
                format!("{} ({field} {})", &rec[3], &rec[4])
            };
            (rec[0].parse().unwrap(), rec[1].to_string(), msg)
        })
        .collect()
}

async fn records(api: &Api, kind: &str) -> u64 {
    api.status().await.map(|s| s["records"][kind].as_u64().unwrap_or(0)).unwrap_or(0)
}

async fn wait_records(mesh: &Mesh, nodes: &[&str], kind: &str, n: u64) {
    for id in nodes {
        let api = mesh.api(id);
        eventually(&format!("{id} holds {n} {kind}"), CONVERGE, || async {
            let have = records(&api, kind).await;
            if have == n {
                Ok(())
            } else {
                Err(format!("{have}"))
            }
        })
        .await;
    }
}

/// A postings CSV of `n` rows, with an `external_ref` column when `refs`;
/// returns the planted errors as the report must show them.
fn postings_csv(path: &Path, n: u64, refs: bool) -> BTreeSet<(u64, String, String)> {
    let mut w = csv::Writer::from_path(path).unwrap();
    let mut head = vec!["岗位名称", "招聘单位", "职业类别", "用工类型", "岗位数", "薪资", "有效期至"];
    if refs {
        head.push("外部编号");
    }
    w.write_record(&head).unwrap();
    let mut planted = BTreeSet::new();
    for i in 0..n {
        let line = i + 2;
        let mut row: Vec<String> = vec![
            format!("焊工 {i}"),
            format!("企业 {}", i % 97),
            "制造业".into(),
            ["全职", "兼职", "零工", "临时工"][(i % 4) as usize].into(),
            (1 + i % 5).to_string(),
            "4000-6000元/月".into(),
            "2030-12-31".into(),
        ];
        if refs {
            row.push(format!("fair-{i}"));
        }
        match i {
            15 => {
                row[4] = "三".into();
                planted.insert((line, "岗位数".into(), "必须是正整数 (positions must be a positive integer)".into()));
            }
            1000 => {
                row[3] = "gig".into();
                planted.insert((
                    line,
                    "用工类型".into(),
                    "必须是 全职、兼职、零工、临时工 之一 (work_type must be one of full_time, part_time, odd_job, temporary)".into(),
                ));
            }
            20_000 => {
                row[0] = String::new();
                row[6] = "2030-02-30".into();
                planted.insert((line, "岗位名称".into(), "不能为空 (title must not be empty)".into()));
                planted.insert((
                    line,
                    "有效期至".into(),
                    "必须是日期 YYYY-MM-DD (valid_until must be a date YYYY-MM-DD)".into(),
                ));
            }
            i if i == n - 1 => {
                row[4] = "0".into();
                planted.insert((line, "岗位数".into(), "必须是正整数 (positions must be a positive integer)".into()));
            }
            _ => {}
        }
        w.write_record(&row).unwrap();
    }
    w.flush().unwrap();
    planted
}

fn bad_lines(planted: &BTreeSet<(u64, String, String)>) -> u64 {
    planted.iter().map(|p| p.0).collect::<BTreeSet<_>>().len() as u64
}

/// "created N, already present M" from the CLI's last line.
fn created_existing(o: &Output) -> (u64, u64) {
    let out = String::from_utf8_lossy(&o.stdout);
    let after = |key: &str| -> u64 {
        let rest = out.split(key).nth(1).unwrap_or_else(|| panic!("no {key:?} in {out}"));
        rest.trim_start().split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
    };
    (after("created "), after("already present "))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_50k_csv_killed_halfway_and_rerun_reports_exactly_and_converges() {
    within(Duration::from_secs(600), "csv import", async {
        let mesh = Mesh::start(&NODES).await;
        let url = mesh.url(COUNTY);
        let county = mesh.api(COUNTY);
        let file = mesh.root().join("fair.csv");
        let n = 50_000;
        let planted = postings_csv(&file, n, false);
        let good = n - bad_lines(&planted);

        // Start the import and kill it at its first progress line (plain
        // lines, since stderr is a pipe): part of the file is in.
        let mut child = Command::new(jobmesh_bin())
            .args(["import", "postings"])
            .arg(&file)
            .args(["--api", &url])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let first = std::thread::spawn(move || {
            use std::io::BufRead;
            std::io::BufReader::new(stderr).lines().map_while(Result::ok).find(|l| l.starts_with("importing: "))
        })
        .join()
        .unwrap();
        let line = first.unwrap_or_else(|| panic!("the import printed no progress before it ended"));
        let pid = child.id();
        let killed = Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap();
        assert!(killed.success(), "kill -9 {pid}");
        let status = child.wait().unwrap();
        assert!(!status.success(), "killed halfway: {status:?} after {line:?}");
        let partial = county.list_all("postings").await.unwrap().len() as u64;
        println!("killed after {line:?}: {partial} of {good} postings in");
        assert!(partial > 0 && partial < good, "killed halfway: {partial} of {good} rows in");

        // Run it again: the report is exactly the planted errors, the rest
        // is in once.
        let started = Instant::now();
        let out = import("postings", &file, &url, &["--quiet"]);
        println!("csv re-import of {n} rows: {:.1} s, {:.0} rows/s", started.elapsed().as_secs_f64(), rate(&out));
        assert_eq!(out.status.code(), Some(2), "bad rows give exit 2: {}", text(&out));
        assert_eq!(report(&file), planted, "the report lists exactly the planted errors");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("第 17 行 岗位数: 必须是正整数 (positions must be a positive integer)"), "{stdout}");
        let (created, existing) = created_existing(&out);
        assert_eq!(created + existing, good, "{stdout}");
        assert!(existing >= partial, "what the killed run wrote is found again: {stdout}");
        let posts = county.list_all("postings").await.unwrap();
        let titles: BTreeSet<String> = posts.iter().map(|p| p["title"].as_str().unwrap().to_owned()).collect();
        assert_eq!(posts.len(), titles.len(), "no row is in twice");
        let want: BTreeSet<String> =
            (0..n).filter(|i| !planted.iter().any(|p| p.0 == i + 2)).map(|i| format!("焊工 {i}")).collect();
        assert_eq!(titles, want, "every good row exactly once");
        wait_records(&mesh, &NODES, "postings", good).await;

        // The same file again creates nothing.
        let again = import("postings", &file, &url, &["--quiet"]);
        assert_eq!(created_existing(&again), (0, good), "{}", text(&again));
        assert_eq!(records(&county, "postings").await, good);
        // A dry run of a fresh file writes nothing.
        let fresh = mesh.root().join("fresh.csv");
        postings_csv(&fresh, 300, true);
        let dry = import("postings", &fresh, &url, &["--quiet", "--dry-run"]);
        assert!(
            String::from_utf8_lossy(&dry.stdout).contains("dry run: would create 298, already present 0"),
            "{}",
            text(&dry)
        );
        // All or nothing: the file has bad rows, so nothing goes in.
        let aon = import("postings", &fresh, &url, &["--quiet", "--all-or-nothing"]);
        assert_eq!(aon.status.code(), Some(2), "{}", text(&aon));
        assert!(String::from_utf8_lossy(&aon.stdout).contains("nothing written"), "{}", text(&aon));
        assert_eq!(county.list_all("postings").await.unwrap().len() as u64, good);
        mesh.finish().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xlsx_and_gb18030_workers_import() {
    within(Duration::from_secs(300), "xlsx and gb18030", async {
        let mesh = Mesh::start(&NODES).await;
        let url = mesh.url(COUNTY);
        // 10,000 workers in an xlsx with Chinese headers and two bad rows.
        let file = mesh.root().join("registry.xlsx");
        let mut wb = rust_xlsxwriter::Workbook::new();
        let ws = wb.add_worksheet();
        for (c, h) in ["姓名", "重点群体", "联系电话", "技能", "登记号"].iter().enumerate() {
            ws.write_string(0, c as u16, *h).unwrap();
        }
        let n = 10_000u32;
        for i in 0..n {
            let r = i + 1;
            // Row 4,000 has no name (an empty string would not be stored).
            if i != 4_000 {
                ws.write_string(r, 0, format!("求职者{i}")).unwrap();
            }
            let group = match i {
                42 => "游客",
                _ => ["高校毕业生", "农民工", "退役军人", "农村劳动力", "残疾人", "其他"][(i % 6) as usize],
            };
            ws.write_string(r, 1, group).unwrap();
            ws.write_number(r, 2, 13_800_000_000f64 + f64::from(i)).unwrap();
            ws.write_string(r, 3, "焊接；叉车").unwrap();
            ws.write_string(r, 4, format!("reg-{i}")).unwrap();
        }
        wb.save(&file).unwrap();
        let started = Instant::now();
        let out = import("workers", &file, &url, &["--quiet"]);
        println!("xlsx import of {n} rows: {:.1} s, {:.0} rows/s", started.elapsed().as_secs_f64(), rate(&out));
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        let want: BTreeSet<(u64, String, String)> = [
            (
                44,
                "重点群体".to_string(),
                "必须是 高校毕业生、农民工、退役军人、农村劳动力、残疾人、其他 之一 (key_group must be one of college_graduate, migrant_worker, ex_serviceman, rural_labor, disabled, other)".to_string(),
            ),
            (4_002, "姓名".to_string(), "不能为空 (name must not be empty)".to_string()),
        ]
        .into();
        assert_eq!(report(&file), want);
        let good = u64::from(n) - 2;
        wait_records(&mesh, &NODES, "workers", good).await;
        let county = mesh.api(COUNTY);

        // A GB18030 CSV (as Excel on a Chinese Windows saves it).
        let names = ["张伟", "王芳", "李娜", "刘洋", "陈静"];
        let mut text_csv = String::from("姓名,重点群体,技能,求职类型\n");
        for (i, name) in names.iter().enumerate() {
            text_csv.push_str(&format!("{name},农民工,砌砖、木工,{}\n", ["零工", "全职"][i % 2]));
        }
        let (bytes, _, unmappable) = encoding_rs::GB18030.encode(&text_csv);
        assert!(!unmappable);
        assert!(std::str::from_utf8(&bytes).is_err(), "the fixture really is not UTF-8");
        let gb = mesh.root().join("gb18030.csv");
        std::fs::write(&gb, &bytes).unwrap();
        let out = import("workers", &gb, &url, &["--quiet"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        wait_records(&mesh, &[COUNTY], "workers", good + names.len() as u64).await;
        let all = county.list_all("workers").await.unwrap();
        let got: BTreeSet<&str> = all.iter().filter_map(|w| w["name"].as_str()).filter(|n| names.contains(n)).collect();
        assert_eq!(got, names.into_iter().collect::<BTreeSet<_>>());
        let zhang = all.iter().find(|w| w["name"] == "张伟").unwrap();
        assert_eq!(zhang["skills"], json!(["砌砖", "木工"]));
        assert_eq!(zhang["wanted_work_type"], "odd_job");
        mesh.finish().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_reference_makes_one_record_even_when_posted_concurrently() {
    within(Duration::from_secs(120), "external_ref", async {
        let mesh = Mesh::start(&NODES[..2]).await;
        let api = mesh.api("gz/a");
        let mut body = jobmesh_tests::posting_body("same job twice", 2, None);
        body["external_ref"] = json!("platform-7");
        let replies = futures::future::join_all((0..8).map(|_| api.post_json("/v1/postings", &body))).await;
        let mut statuses = BTreeMap::new();
        let mut ids = BTreeSet::new();
        for r in replies {
            let r = r.unwrap();
            *statuses.entry(r.status).or_insert(0) += 1;
            let v = r.json.unwrap();
            assert_eq!(v["version"], 1, "no new version: {v}");
            ids.insert(v["id"].as_str().unwrap().to_string());
        }
        assert_eq!(ids.len(), 1, "one record");
        assert_eq!(statuses, BTreeMap::from([(201, 1), (200, 7)]));
        // Workers and matters too.
        let mut w = jobmesh_tests::worker_body("once");
        w["external_ref"] = json!("reg-1");
        let first = api.post_json("/v1/workers", &w).await.unwrap();
        let second = api.post_json("/v1/workers", &w).await.unwrap();
        assert_eq!((first.status, second.status), (201, 200));
        assert_eq!(first.json.unwrap()["id"], second.json.unwrap()["id"]);
        let m = json!({"category": "job_search", "channel": "walk_in", "summary": "求职咨询", "external_ref": "reg-1"});
        let first = api.post_json("/v1/matters", &m).await.unwrap();
        let second = api.post_json("/v1/matters", &m).await.unwrap();
        assert_eq!((first.status, second.status), (201, 200), "a reference is per kind");
        assert_eq!(first.json.unwrap()["id"], second.json.unwrap()["id"]);
        let bad = api
            .post_json(
                "/v1/matters",
                &json!({"category": "job_search", "channel": "walk_in",
            "summary": "x", "external_ref": "a".repeat(129)}),
            )
            .await
            .unwrap();
        assert_eq!(bad.status, 400, "{}", bad.describe());
        mesh.finish().await;
    })
    .await
}

/// A sheet's rows as strings keyed by header.
fn sheet_rows(path: &Path, sheet: &str) -> Vec<BTreeMap<String, String>> {
    let mut wb = calamine::open_workbook_auto(path).unwrap();
    let range = wb.worksheet_range(sheet).unwrap_or_else(|e| panic!("sheet {sheet}: {e}"));
    let mut rows = range.rows();
    let head: Vec<String> = rows.next().unwrap().iter().map(|c| c.to_string()).collect();
    rows.map(|r| head.iter().cloned().zip(r.iter().map(|c| c.to_string())).collect()).collect()
}

fn json_cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => {
            if *b {
                "true".into()
            } else {
                "false".into()
            }
        }
        other => other.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exported_xlsx_equals_the_summary_json() {
    within(Duration::from_secs(180), "export", async {
        let mesh = Mesh::start(&NODES).await;
        let county = mesh.api(COUNTY);
        let gz = mesh.api("gz");
        for i in 0..5 {
            county.post_posting(&jobmesh_tests::posting_body(&format!("job {i}"), 3, Some("gz/a"))).await;
        }
        county.post_worker(&jobmesh_tests::worker_body("w")).await;
        wait_records(&mesh, &["gz"], "postings", 5).await;
        eventually("the county's summary with its 5 postings reached the province", CONVERGE, || async {
            let s = gz.summary().await?;
            let today = s["daily"].as_array().and_then(|d| d.last()).map(|d| d["postings_published"].clone());
            if s["subtree"]["postings_open"] == 5 && today == Some(json!(5)) {
                Ok(())
            } else {
                Err(format!("subtree {} today {today:?}", s["subtree"]))
            }
        })
        .await;
        let fields = [
            "node_id",
            "reported_at",
            "missing",
            "totals.postings_open",
            "totals.positions_open",
            "totals.workers_registered",
            "subtree.postings_open",
            "subtree.positions_open",
            "subtree.workers_registered",
        ];
        let path = mesh.root().join("summary.xlsx");
        // Offices report every few seconds: compare one export with the JSON
        // read just before and after it, retrying until the two agree.
        eventually("the exported offices equal the summary JSON", Duration::from_secs(60), || async {
            let before = gz.summary().await?;
            let r = reqwest::get(format!("{}/v1/summary.xlsx?lang=en", gz.base())).await.map_err(|e| e.to_string())?;
            if r.status() != 200 {
                return Err(format!("status {}", r.status()));
            }
            std::fs::write(&path, r.bytes().await.map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
            let after = gz.summary().await?;
            if before["nodes"] != after["nodes"] {
                let pick = |s: &Value| -> Vec<Vec<String>> {
                    s["nodes"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|n| {
                            fields
                                .iter()
                                .map(|f| {
                                    json_cell(
                                        &n.pointer(&format!("/{}", f.replace('.', "/")))
                                            .cloned()
                                            .unwrap_or(Value::Null),
                                    )
                                })
                                .collect()
                        })
                        .collect()
                };
                if pick(&before) != pick(&after) {
                    return Err("the summary changed during the export".into());
                }
            }
            let rows = sheet_rows(&path, "offices");
            let nodes = before["nodes"].as_array().unwrap();
            if rows.len() != nodes.len() {
                return Err(format!("{} rows, {} offices", rows.len(), nodes.len()));
            }
            for (row, node) in rows.iter().zip(nodes) {
                for f in fields {
                    let want =
                        json_cell(&node.pointer(&format!("/{}", f.replace('.', "/"))).cloned().unwrap_or(Value::Null));
                    if row.get(f) != Some(&want) {
                        return Err(format!("{f}: xlsx {:?}, json {want:?}", row.get(f)));
                    }
                }
            }
            let daily = sheet_rows(&path, "daily");
            let jd = before["daily"].as_array().unwrap();
            if daily.len() != jd.len()
                || daily.iter().zip(jd).any(|(r, d)| {
                    r["postings_published"] != json_cell(&d["postings_published"]) || r["day"] != json_cell(&d["day"])
                })
            {
                return Err("daily differs".into());
            }
            Ok(())
        })
        .await;
        // Chinese headers, a date range, and the postings list.
        let today = gz.summary().await.unwrap()["daily"].as_array().unwrap().last().unwrap()["day"]
            .as_str()
            .unwrap()
            .to_string();
        let r = reqwest::get(format!("{}/v1/summary.xlsx?lang=zh&from={today}&to={today}", gz.base())).await.unwrap();
        std::fs::write(&path, r.bytes().await.unwrap()).unwrap();
        let daily = sheet_rows(&path, "每日");
        assert_eq!(daily.len(), 1);
        assert_eq!(daily[0]["新发布岗位"], "5");
        let offices = sheet_rows(&path, "机构");
        assert!(offices.iter().any(|r| r["机构编号"] == COUNTY && r["本级在招岗位信息"] == "5"), "{offices:?}");
        let r = reqwest::get(format!("{}/v1/postings.xlsx?lang=en", gz.base())).await.unwrap();
        let pp = mesh.root().join("postings.xlsx");
        std::fs::write(&pp, r.bytes().await.unwrap()).unwrap();
        let rows = sheet_rows(&pp, "postings");
        let listed = gz.list_all("postings").await.unwrap();
        assert_eq!(
            rows.iter().map(|r| r["id"].clone()).collect::<Vec<_>>(),
            listed.iter().map(|p| json_cell(&p["id"])).collect::<Vec<_>>()
        );
        let csv = reqwest::get(format!("{}/v1/postings.csv?lang=zh&work_type=full_time", gz.base()))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(csv.starts_with("\u{feff}编号,发布机构,岗位名称"), "{csv}");
        assert_eq!(csv.lines().count(), 6, "{csv}");
        mesh.finish().await;
    })
    .await
}
