//! The demo's synthetic workload: what offices of a provincial employment
//! service do all day, at a few events per second, through each office's
//! HTTP API.
//!
//! [`Workload`] is a pure generator: a seeded [`Rng`] decides which office
//! acts, what it does (publish a posting, register a worker, record a
//! placement) and every field, so a seed gives the same sequence of
//! requests. Only placements depend on the mesh: which seeking workers and
//! open postings an office holds at that moment comes from its API, and the
//! generator then picks among them ([`Workload::pick`]). [`Driver`] sends
//! the requests and counts what the offices acknowledged.
//!
//! What an office does depends on what it is: odd-job markets post odd jobs
//! and day labour (domestic service, sorting, couriers) paid by the day;
//! labor cooperation stations in other provinces post factory and logistics
//! jobs in their city for workers from home; counties, cities and the
//! province post a mix. Workers come from the key groups (college
//! graduates, migrant workers, ex-servicemen, rural labor, …) in proportions
//! that suit the office.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use jobmesh_protocol::sim::rng::Rng;
use jobmesh_protocol::time::day_to_iso;
use jobmesh_protocol::topology::{Office, Topology};
use jobmesh_protocol::NodeId;
use serde_json::{json, Value};

/// Most candidates fetched from an office when choosing a placement.
const PLACEMENT_CANDIDATES: usize = 200;
/// Longest a workload request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// What kind of office acts: it shapes what it posts and who registers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OfficeKind {
    /// The provincial HQ (depth 1).
    Province,
    /// A municipal sub-station (depth 2).
    City,
    /// A county workstation (depth 3).
    County,
    /// An odd-jobs market (a station whose id's last segment starts with
    /// `oddjobs`).
    OddJobs,
    /// An out-of-province labor cooperation station (`coop-…`), with the
    /// place where it is (e.g. 广东东莞) when its name says.
    LaborCoop { place: String },
    /// Any other station.
    Station,
}

/// An office as the workload sees it.
#[derive(Debug, Clone)]
pub struct Actor {
    pub id: NodeId,
    pub kind: OfficeKind,
    /// Where its jobs are, in Chinese (花溪区, 贵阳市, 广东东莞).
    pub place: String,
    /// The short name of its city or region, used in employer names (贵阳).
    pub region: String,
}

/// One step of the workload.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// `POST /v1/postings` at `office`.
    Post { office: NodeId, body: Value },
    /// `POST /v1/workers` at `office`.
    Register { office: NodeId, body: Value },
    /// Place one of the office's seeking workers into one of the open
    /// postings it holds (`POST /v1/placements`); a registration when there
    /// is nothing to place.
    Place { office: NodeId, fallback: Value },
}

impl Action {
    pub fn office(&self) -> &NodeId {
        match self {
            Action::Post { office, .. } | Action::Register { office, .. } | Action::Place { office, .. } => office,
        }
    }
}

/// The seeded generator.
pub struct Workload {
    rng: Rng,
    actors: Vec<Actor>,
    /// Cumulative weights over `actors`: counties and stations do most of
    /// the work, the province least.
    cumulative: Vec<u64>,
    /// Today's local day number, for `valid_until`.
    today: i32,
}

impl Workload {
    /// A workload over the offices of `topo`, starting on local day `today`.
    pub fn new(topo: &Topology, seed: u64, today: i32) -> Workload {
        let actors: Vec<Actor> = topo.offices.iter().map(|o| actor(topo, o)).collect();
        let mut total = 0;
        let cumulative = actors
            .iter()
            .map(|a| {
                total += match a.kind {
                    OfficeKind::Province => 1,
                    OfficeKind::City => 2,
                    _ => 4,
                };
                total
            })
            .collect();
        Workload { rng: Rng::new(seed), actors, cumulative, today }
    }

    pub fn actors(&self) -> &[Actor] {
        &self.actors
    }

    /// The next step.
    pub fn next_action(&mut self) -> Action {
        let total = self.cumulative.last().copied().unwrap_or(0);
        if total == 0 {
            return Action::Register {
                office: NodeId::parse("gz").unwrap_or_else(|_| unreachable!()),
                body: json!({}),
            };
        }
        let roll = self.rng.below(total);
        let i = self.cumulative.partition_point(|&c| c <= roll);
        let actor = self.actors[i.min(self.actors.len() - 1)].clone();
        match self.rng.below(11) {
            0..=2 => Action::Post { office: actor.id.clone(), body: self.posting(&actor) },
            3..=7 => Action::Register { office: actor.id.clone(), body: self.worker(&actor) },
            _ => Action::Place { office: actor.id.clone(), fallback: self.worker(&actor) },
        }
    }

    /// Pick one of `n` candidates (`n > 0`).
    pub fn pick(&mut self, n: usize) -> usize {
        self.rng.below(n as u64) as usize
    }

    fn weighted<'a, T>(&mut self, items: &'a [(T, u64)]) -> &'a T {
        let total: u64 = items.iter().map(|(_, w)| w).sum();
        let mut roll = self.rng.below(total.max(1));
        for (item, w) in items {
            if roll < *w {
                return item;
            }
            roll -= w;
        }
        &items[items.len() - 1].0
    }

    fn one<'a>(&mut self, items: &'a [&'a str]) -> &'a str {
        self.rng.pick(items).copied().unwrap_or("")
    }

    /// A posting body for `a`.
    pub fn posting(&mut self, a: &Actor) -> Value {
        let categories: &[(usize, u64)] = match a.kind {
            OfficeKind::OddJobs => &[(4, 4), (2, 2), (3, 2), (0, 2), (5, 1)],
            OfficeKind::LaborCoop { .. } => &[(1, 5), (2, 2), (3, 2), (0, 1), (6, 2)],
            _ => &[(0, 2), (1, 2), (2, 1), (3, 2), (4, 2), (5, 2), (6, 2)],
        };
        let c = &CATEGORIES[*self.weighted(categories)];
        let work_types: &[(&str, u64)] = match a.kind {
            OfficeKind::OddJobs => &[("odd_job", 6), ("temporary", 3), ("part_time", 1)],
            OfficeKind::LaborCoop { .. } => &[("full_time", 9), ("temporary", 1)],
            _ => &[("full_time", 6), ("part_time", 2), ("temporary", 1), ("odd_job", 1)],
        };
        let work_type = *self.weighted(work_types);
        let coastal = matches!(a.kind, OfficeKind::LaborCoop { .. });
        let wage = match work_type {
            "full_time" => {
                let bonus = if coastal { 1_000 } else { 0 } + if c.name == "技术工" { 1_500 } else { 0 };
                let lo = 3_000 + 100 * self.rng.range(0, 30) + bonus;
                let hi = lo + 500 * self.rng.range(1, 4);
                format!("{lo}-{hi}元/月")
            }
            "part_time" => format!("{}元/小时", self.rng.range(18, 35)),
            _ => format!("{}元/天", 10 * self.rng.range(15, 32)),
        };
        let positions = match work_type {
            "odd_job" => self.rng.range(1, 5),
            "part_time" => self.rng.range(1, 6),
            "temporary" => self.rng.range(2, 10),
            _ if coastal => self.rng.range(10, 60),
            _ => self.rng.range(2, 20),
        };
        let valid_days = match work_type {
            "odd_job" => self.rng.range(3, 14),
            _ => self.rng.range(14, 60),
        };
        let employer = format!("{}{}{}", a.region, self.one(BRANDS), self.one(c.employers));
        let mut body = json!({
            "title": self.one(c.titles),
            "employer": employer,
            "category": c.name,
            "work_type": work_type,
            "positions": positions,
            "wage": wage,
            "location": a.place,
            "valid_until": day_to_iso(self.today + valid_days as i32),
        });
        if let Some(audience) = self.audience(&a.id) {
            body["audience"] = json!(audience.as_str());
        }
        body
    }

    /// Mostly the office's own subtree (the default); sometimes its whole
    /// city, sometimes the whole province.
    fn audience(&mut self, id: &NodeId) -> Option<NodeId> {
        let roll = self.rng.below(100);
        let ancestor = |depth: usize| {
            let mut cur = id.clone();
            while cur.depth() > depth {
                cur = cur.parent()?;
            }
            Some(cur)
        };
        match (id.depth(), roll) {
            (1, _) => None,
            (_, 0..=9) => ancestor(1),
            (d, 10..=29) if d >= 3 => ancestor(2),
            _ => None,
        }
    }

    /// A worker registration body for `a`.
    pub fn worker(&mut self, a: &Actor) -> Value {
        let groups: &[(&str, u64)] = match a.kind {
            OfficeKind::LaborCoop { .. } => &[
                ("migrant_worker", 55),
                ("rural_labor", 30),
                ("college_graduate", 5),
                ("ex_serviceman", 5),
                ("other", 5),
            ],
            OfficeKind::OddJobs => &[
                ("rural_labor", 40),
                ("migrant_worker", 30),
                ("college_graduate", 10),
                ("other", 10),
                ("ex_serviceman", 5),
                ("disabled", 5),
            ],
            _ => &[
                ("college_graduate", 30),
                ("migrant_worker", 25),
                ("rural_labor", 25),
                ("ex_serviceman", 10),
                ("other", 6),
                ("disabled", 4),
            ],
        };
        let group = *self.weighted(groups);
        let name = format!("{}{}", self.one(SURNAMES), self.one(GIVEN_NAMES));
        let (skills, wanted): (&[&str], &[&str]) = match group {
            "college_graduate" => {
                (&["办公软件", "数据分析", "电子商务", "会计", "普通话二级甲等", "新媒体运营"], &["full_time"])
            }
            "migrant_worker" => {
                (&["电焊", "叉车", "流水线操作", "驾驶证C1", "砌筑", "电工证"], &["full_time", "temporary"])
            }
            "rural_labor" => {
                (&["种植", "养殖", "保洁", "搬运", "烹饪", "育儿"], &["odd_job", "temporary", "part_time"])
            }
            "ex_serviceman" => (&["驾驶证B2", "安保", "班组管理", "急救", "维修"], &["full_time"]),
            "disabled" => (&["手工编织", "电脑打字", "客服"], &["part_time"]),
            _ => (&["保洁", "烹饪", "收银", "驾驶证C1"], &["part_time", "odd_job", "full_time"]),
        };
        let mut chosen: Vec<&str> = Vec::new();
        for _ in 0..self.rng.range(1, 3) {
            let s = self.one(skills);
            if !chosen.contains(&s) {
                chosen.push(s);
            }
        }
        // In the 199 0000 block, which no operator assigns: never a real number.
        let phone = format!("1990000{:04}", self.rng.below(10_000));
        let mut body = json!({ "name": name, "key_group": group, "phone": phone, "skills": chosen });
        if self.rng.chance(0.8) {
            body["wanted_work_type"] = json!(self.one(wanted));
        }
        body
    }
}

/// A posting category: its name as the web page lists it, job titles, and
/// kinds of employer.
struct Category {
    name: &'static str,
    titles: &'static [&'static str],
    employers: &'static [&'static str],
}

const CATEGORIES: [Category; 7] = [
    Category {
        name: "餐饮服务员",
        titles: &["餐厅服务员", "传菜员", "收银员", "酸汤鱼店服务员"],
        employers: &["餐饮管理有限公司", "大酒店", "酸汤鱼餐厅", "农家乐"],
    },
    Category {
        name: "普工/装配工",
        titles: &["普工", "装配工", "流水线操作工", "质检员"],
        employers: &["电子科技有限公司", "精密制造有限公司", "服装有限公司", "鞋业有限公司"],
    },
    Category {
        name: "分拣员",
        titles: &["包裹分拣员", "仓库分拣员", "装卸分拣工"],
        employers: &["物流有限公司", "供应链管理有限公司", "电商仓储中心"],
    },
    Category {
        name: "快递员",
        titles: &["快递员", "同城配送员", "外卖骑手"],
        employers: &["速运有限公司", "快递服务部", "同城配送站"],
    },
    Category {
        name: "家政服务",
        titles: &["家政保洁员", "育儿嫂", "钟点工", "月嫂"],
        employers: &["家政服务有限公司", "巾帼家政服务中心"],
    },
    Category {
        name: "养老护理",
        titles: &["养老护理员", "护工", "康养服务员"],
        employers: &["养老服务中心", "康养中心", "社区日间照料中心"],
    },
    Category {
        name: "技术工",
        titles: &["电工", "焊工", "汽修技术员", "数控车工", "空调安装工"],
        employers: &["电气安装工程有限公司", "汽车维修有限公司", "机械制造有限公司"],
    },
];

const BRANDS: &[&str] =
    &["黔兴", "筑城", "山海", "顺达", "安康", "宏远", "恒信", "鑫源", "金桥", "和顺", "瑞丰", "贵联", "苗岭", "乌江"];

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "吴", "赵", "周", "罗", "龙", "潘", "石", "田", "何", "谢", "胡", "陆",
    "韦", "蒙", "邓", "冉", "安",
];

const GIVEN_NAMES: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超", "秀英", "霞",
    "平", "刚", "桂英", "建华", "小红", "春梅", "志强", "海燕", "国平", "文静", "子涵", "浩然", "雨欣", "家豪", "美玲",
];

/// Destination cities of the labor cooperation stations, by pinyin.
const COOP_CITIES: &[(&str, &str)] = &[
    ("shantou", "汕头"),
    ("shenzhen", "深圳"),
    ("zhanjiang", "湛江"),
    ("jiangmen", "江门"),
    ("huzhou", "湖州"),
    ("hangzhou", "杭州"),
    ("zhongshan", "中山"),
    ("wenzhou", "温州"),
    ("huizhou", "惠州"),
    ("yiwu", "义乌"),
    ("xiamen", "厦门"),
    ("jiaxing", "嘉兴"),
    ("guangzhou", "广州"),
    ("dongguan", "东莞"),
    ("suzhou", "苏州"),
    ("qingyuan", "清远"),
    ("zhaoqing", "肇庆"),
    ("tianjin", "天津"),
    ("nanjing", "南京"),
    ("kunshan", "昆山"),
    ("jinhua", "金华"),
    ("foshan", "佛山"),
    ("zhuhai", "珠海"),
    ("shaoxing", "绍兴"),
    ("kunming", "昆明"),
    ("jinjiang", "晋江"),
    ("fuzhou", "福州"),
    ("changzhou", "常州"),
    ("wuxi", "无锡"),
    ("taizhou", "台州"),
    ("quanzhou", "泉州"),
    ("ningbo", "宁波"),
    ("hefei", "合肥"),
    ("chongqing", "重庆"),
    ("chengdu", "成都"),
    ("beijing", "北京"),
];

const PROVINCES: &[(&str, &str)] =
    &[("guangdong", "广东"), ("zhejiang", "浙江"), ("fujian", "福建"), ("jiangsu", "江苏")];

/// How the workload sees `o`.
pub fn actor(topo: &Topology, o: &Office) -> Actor {
    let leaf = o.id.leaf_name();
    let kind = match o.id.depth() {
        1 => OfficeKind::Province,
        2 => OfficeKind::City,
        3 => OfficeKind::County,
        _ if leaf.starts_with("oddjobs") => OfficeKind::OddJobs,
        _ if leaf.starts_with("coop") => OfficeKind::LaborCoop { place: coop_place(o) },
        _ => OfficeKind::Station,
    };
    // A station's jobs are in its county, a city's in the city.
    let home = |depth: usize| {
        let mut cur = o.id.clone();
        while cur.depth() > depth {
            match cur.parent() {
                Some(p) => cur = p,
                None => break,
            }
        }
        topo.get(&cur).map(place_name).unwrap_or_default()
    };
    let city = home(2);
    let region = ["省", "市", "州", "新区"].iter().find_map(|x| city.strip_suffix(x)).unwrap_or(&city).to_owned();
    let place = match &kind {
        OfficeKind::LaborCoop { place } if !place.is_empty() => place.clone(),
        _ => home(o.id.depth().min(3)),
    };
    let region = match &kind {
        OfficeKind::LaborCoop { place } if !place.is_empty() => {
            let city = COOP_CITIES.iter().find(|(_, zh)| place.contains(zh)).map(|(_, zh)| zh.to_string());
            city.unwrap_or(region)
        }
        _ if region.is_empty() => "贵州".to_owned(),
        _ => region,
    };
    Actor { id: o.id.clone(), kind, place, region }
}

/// The place an office serves, from its Chinese name: 花溪区工作站 → 花溪区,
/// 贵阳市分站 → 贵阳市, 贵州省就业服务总站 → 贵州省; the English name when
/// there is no Chinese one.
fn place_name(o: &Office) -> String {
    let zh = o.name_zh.trim();
    for suffix in ["就业服务总站", "工作站", "分站", "总站"] {
        if let Some(p) = zh.strip_suffix(suffix) {
            if !p.is_empty() {
                return p.to_owned();
            }
        }
    }
    if zh.is_empty() {
        o.name.clone()
    } else {
        zh.to_owned()
    }
}

/// Where a labor cooperation station is: 广东东莞 from "labor cooperation
/// station of kaiyang in dongguan (guangdong)", 广东佛山三水 from
/// "岑巩县驻佛山三水劳务协作站" and "… (Guangdong)"; empty when the names do
/// not say.
fn coop_place(o: &Office) -> String {
    let name = o.name.to_lowercase();
    let province = name.rsplit(" (").next().filter(|_| name.contains(" (")).map(|p| p.trim_end_matches(')'));
    let province_zh = PROVINCES.iter().find(|(py, _)| Some(*py) == province).map(|(_, zh)| *zh).unwrap_or("");
    if let Some(at) = o.name_zh.split_once('驻').and_then(|(_, rest)| rest.strip_suffix("劳务协作站")) {
        if !at.is_empty() {
            return format!("{province_zh}{at}");
        }
    }
    let Some(after) = name.split_once(" in ").map(|(_, rest)| rest) else { return String::new() };
    let city = after.split(" (").next().unwrap_or("").trim();
    match COOP_CITIES.iter().find(|(py, _)| *py == city) {
        Some((_, zh)) => format!("{province_zh}{zh}"),
        None => String::new(),
    }
}

/// What the offices acknowledged (201) so far, and what they refused.
#[derive(Debug, Default)]
pub struct Counts {
    pub postings: AtomicU64,
    pub workers: AtomicU64,
    pub placements: AtomicU64,
    /// 409s: the posting filled up between the listing and the placement.
    pub conflicts: AtomicU64,
    /// Failed requests (an office down, a timeout, an unexpected status).
    pub errors: AtomicU64,
}

impl Counts {
    pub fn get(&self) -> (u64, u64, u64) {
        (
            self.postings.load(Ordering::Relaxed),
            self.workers.load(Ordering::Relaxed),
            self.placements.load(Ordering::Relaxed),
        )
    }
}

/// Sends the workload's steps to the offices' APIs.
pub struct Driver {
    client: reqwest::Client,
    apis: HashMap<NodeId, SocketAddr>,
    pub counts: std::sync::Arc<Counts>,
    /// The last error, for the progress line.
    pub last_error: Option<String>,
}

impl Driver {
    /// A driver for offices whose APIs are at `apis` (loopback addresses:
    /// the demo never sends a request anywhere else).
    pub fn new(apis: HashMap<NodeId, SocketAddr>) -> reqwest::Result<Driver> {
        let client = reqwest::Client::builder().no_proxy().timeout(REQUEST_TIMEOUT).build()?;
        Ok(Driver { client, apis, counts: Default::default(), last_error: None })
    }

    /// Carry out one step. Errors are counted, not returned: an office that
    /// is down for a moment must not stop the workload.
    pub async fn apply(&mut self, w: &mut Workload, action: Action) {
        let Some(&api) = self.apis.get(action.office()) else { return };
        let base = format!("http://{api}");
        let result = match action {
            Action::Post { body, .. } => self.post(&format!("{base}/v1/postings"), &body).await.map(|_| {
                self.counts.postings.fetch_add(1, Ordering::Relaxed);
            }),
            Action::Register { body, .. } => self.post(&format!("{base}/v1/workers"), &body).await.map(|_| {
                self.counts.workers.fetch_add(1, Ordering::Relaxed);
            }),
            Action::Place { office, fallback } => self.place(w, &base, &office, &fallback).await,
        };
        if let Err(e) = result {
            self.counts.errors.fetch_add(1, Ordering::Relaxed);
            self.last_error = Some(e);
        }
    }

    async fn place(&mut self, w: &mut Workload, base: &str, office: &NodeId, fallback: &Value) -> Result<(), String> {
        let workers =
            self.get(&format!("{base}/v1/workers?office={office}&status=seeking&limit={PLACEMENT_CANDIDATES}")).await?;
        let workers: Vec<&str> = list(&workers, "workers").filter_map(|w| w["id"].as_str()).collect();
        let postings = self.get(&format!("{base}/v1/postings?open=true&limit={PLACEMENT_CANDIDATES}")).await?;
        let postings: Vec<&str> = list(&postings, "postings")
            .filter(|p| p["status"] == "open" && p["remaining"].as_u64().is_some_and(|r| r > 0))
            .filter_map(|p| p["id"].as_str())
            .collect();
        if workers.is_empty() || postings.is_empty() {
            // Nothing to place here yet: someone registers instead.
            self.post(&format!("{base}/v1/workers"), fallback).await?;
            self.counts.workers.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let worker = workers[w.pick(workers.len())];
        let posting = postings[w.pick(postings.len())];
        let body = json!({ "worker_id": worker, "posting_id": posting });
        match self.client.post(format!("{base}/v1/placements")).json(&body).send().await {
            Ok(r) if r.status() == reqwest::StatusCode::CREATED => {
                self.counts.placements.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Ok(r) if r.status() == reqwest::StatusCode::CONFLICT => {
                self.counts.conflicts.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Ok(r) => Err(format!("POST {base}/v1/placements: {} {}", r.status(), r.text().await.unwrap_or_default())),
            Err(e) => Err(format!("POST {base}/v1/placements: {e}")),
        }
    }

    async fn post(&self, url: &str, body: &Value) -> Result<Value, String> {
        let r = self.client.post(url).json(body).send().await.map_err(|e| format!("POST {url}: {e}"))?;
        if r.status() != reqwest::StatusCode::CREATED {
            return Err(format!("POST {url}: {} {}", r.status(), r.text().await.unwrap_or_default()));
        }
        r.json().await.map_err(|e| format!("POST {url}: {e}"))
    }

    async fn get(&self, url: &str) -> Result<Value, String> {
        let r = self.client.get(url).send().await.map_err(|e| format!("GET {url}: {e}"))?;
        if !r.status().is_success() {
            return Err(format!("GET {url}: {}", r.status()));
        }
        r.json().await.map_err(|e| format!("GET {url}: {e}"))
    }
}

fn list<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v[key].as_array().into_iter().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> Topology {
        Topology::parse_tsv(jobmesh_node::deploy::GUIZHOU_TSV).unwrap()
    }

    #[test]
    fn offices_are_recognised_and_placed() {
        let t = tree();
        let a = |id: &str| actor(&t, t.get(&NodeId::parse(id).unwrap()).unwrap());
        let p = a("gz");
        assert_eq!((p.kind, p.place.as_str(), p.region.as_str()), (OfficeKind::Province, "贵州省", "贵州"));
        let c = a("gz/guiyang");
        assert_eq!((c.kind, c.place.as_str(), c.region.as_str()), (OfficeKind::City, "贵阳市", "贵阳"));
        let k = a("gz/guiyang/huaxi");
        assert_eq!((k.kind, k.place.as_str()), (OfficeKind::County, "花溪区"));
        let o = a("gz/guiyang/guanshanhu/oddjobs-danfeng");
        assert_eq!((o.kind, o.place.as_str()), (OfficeKind::OddJobs, "观山湖区"));
        let l = a("gz/zunyi/huichuan/coop-shantou");
        assert_eq!(l.kind, OfficeKind::LaborCoop { place: "广东汕头".into() });
        assert_eq!((l.place.as_str(), l.region.as_str()), ("广东汕头", "汕头"));
        let s = a("gz/qiandongnan/cengong/coop-foshan-sanshui");
        assert_eq!((s.place.as_str(), s.region.as_str()), ("广东佛山三水", "佛山"));
        // Every destination in the real tree is known.
        for o in &t.offices {
            if let OfficeKind::LaborCoop { place } = actor(&t, o).kind {
                assert!(!place.is_empty(), "{}", o.name);
            }
        }
    }

    #[test]
    fn a_seed_gives_the_same_workload_and_bodies_fit_the_api() {
        let t = tree().slice(40);
        let mut a = Workload::new(&t, 7, 20_000);
        let mut b = Workload::new(&t, 7, 20_000);
        let (mut posts, mut regs, mut places) = (0, 0, 0);
        for _ in 0..2_000 {
            let x = a.next_action();
            assert_eq!(x, b.next_action());
            match &x {
                Action::Post { office, body } => {
                    posts += 1;
                    for key in ["title", "employer", "category", "work_type", "wage", "location", "valid_until"] {
                        assert!(body[key].as_str().is_some_and(|s| !s.is_empty()), "{key}: {body}");
                    }
                    assert!(body["positions"].as_u64().is_some_and(|n| n > 0));
                    if let Some(aud) = body["audience"].as_str() {
                        assert!(office.is_in_subtree_of(&NodeId::parse(aud).unwrap()), "{body}");
                    }
                }
                Action::Register { body, .. } | Action::Place { fallback: body, .. } => {
                    if matches!(x, Action::Place { .. }) {
                        places += 1;
                    } else {
                        regs += 1;
                    }
                    let name = body["name"].as_str().unwrap();
                    assert!((2..=3).contains(&name.chars().count()), "{name}");
                    assert!(body["skills"].as_array().is_some_and(|s| !s.is_empty()));
                }
            }
        }
        assert!(posts > 300 && regs > 600 && places > 300, "{posts} {regs} {places}");
        let mut c = Workload::new(&t, 8, 20_000);
        assert!((0..20).any(|_| c.next_action() != a.next_action()));
    }
}
