//! Checking rows: from text cells to the typed record the engine creates,
//! or the list of problems, each naming the line, the column as the file
//! heads it, and the problem in Chinese and English. The limits and data
//! rules are `jobmesh-protocol`'s (`rules::check_text`, `check_phone`,
//! `check_valid_until`, positions, skills, node ids), so a row that passes
//! here passes the node's own checks; the node runs this same check on
//! every row it is sent.

use std::collections::BTreeMap;

use jobmesh_protocol::engine::local::{check_external_ref, NewMatter, NewPosting, NewRecord, NewWorker};
use jobmesh_protocol::matters::{Channel, MatterCategory, MatterStatus, MAX_MATTER_SUMMARY};
use jobmesh_protocol::record::{KeyGroup, WorkType, MAX_POSITIONS, MAX_SKILLS};
use jobmesh_protocol::rules::{self, RuleError};
use jobmesh_protocol::NodeId;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::columns::{self, Column, ImportKind, EXTERNAL_REF};
use crate::read::RawRow;

/// One problem of one row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// The file's line (the header is line 1).
    pub line: u64,
    /// The column as the file heads it (empty for a whole-row problem).
    pub column: String,
    /// The API field (empty for a whole-row problem).
    pub field: String,
    pub zh: String,
    pub en: String,
}

impl Problem {
    /// "必须是正整数 (positions must be a positive integer)"
    pub fn message(&self) -> String {
        if self.field.is_empty() {
            format!("{} ({})", self.zh, self.en)
        } else {
            format!("{} ({} {})", self.zh, self.field, self.en)
        }
    }
}

/// A data rule's refusal in Chinese and English.
pub fn rule_text(e: &RuleError) -> (String, String) {
    let zh = match e {
        RuleError::Empty => "不能为空".to_owned(),
        RuleError::TooLong { max_chars, chars } => format!("最多 {max_chars} 个字（现有 {chars} 个）"),
        RuleError::ControlCharacter { code_point } => format!("含有控制字符 U+{code_point:04X}"),
        RuleError::Phone(_) => "电话号码格式不对".to_owned(),
        RuleError::DateInPast { today, .. } => format!("不能早于今天（{today}）"),
        RuleError::UnknownAudience(_) => "不是本站已知的机构".to_owned(),
    };
    (zh, e.to_string())
}

impl std::fmt::Display for Problem {
    /// "第 17 行 岗位数: 必须是正整数 (positions must be a positive integer)"
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.column.is_empty() {
            write!(f, "第 {} 行: {}", self.line, self.message())
        } else {
            write!(f, "第 {} 行 {}: {}", self.line, self.column, self.message())
        }
    }
}

/// Why a file's header row cannot be used. Nothing is imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("第 1 行: 未知的列 {header:?} (unknown column {header:?}); 可用的列 (known columns): {known}")]
    Unknown { header: String, known: String },
    #[error("第 1 行: 缺少必填列 {zh} (missing required column {en})")]
    Missing { zh: &'static str, en: &'static str },
    #[error("第 1 行: 列 {header:?} 重复 (column {header:?} appears twice)")]
    Duplicate { header: String },
}

/// Which file column fills which field.
#[derive(Debug, Clone)]
pub struct Mapping {
    pub kind: ImportKind,
    /// `(cell index, column)` for every header.
    cols: Vec<(usize, &'static Column)>,
    /// The file's headers, as written.
    pub headers: Vec<String>,
}

impl Mapping {
    /// Map a header row; a blank header cell is ignored (and so is its column).
    pub fn new(kind: ImportKind, headers: &[String]) -> Result<Mapping, HeaderError> {
        let mut cols: Vec<(usize, &'static Column)> = Vec::new();
        for (i, h) in headers.iter().enumerate() {
            if h.trim().is_empty() {
                continue;
            }
            let Some(c) = kind.columns().iter().find(|c| c.matches(h)) else {
                let known = kind.columns().iter().map(|c| format!("{}/{}", c.zh, c.en)).collect::<Vec<_>>().join(", ");
                return Err(HeaderError::Unknown { header: h.clone(), known });
            };
            if cols.iter().any(|(_, o)| o.key == c.key) {
                return Err(HeaderError::Duplicate { header: h.clone() });
            }
            cols.push((i, c));
        }
        for c in kind.columns() {
            if c.required && !cols.iter().any(|(_, o)| o.key == c.key) {
                return Err(HeaderError::Missing { zh: c.zh, en: c.en });
            }
        }
        Ok(Mapping { kind, cols, headers: headers.to_vec() })
    }

    /// The file's header for a field (its API key when the file lacks it).
    pub fn header_of(&self, key: &str) -> String {
        self.cols
            .iter()
            .find(|(_, c)| c.key == key)
            .map(|(i, _)| self.headers[*i].clone())
            .unwrap_or_else(|| key.into())
    }

    /// A raw row's cells by API key, or a problem for cells beyond the
    /// header row's width.
    pub fn cells(&self, row: &RawRow) -> Result<BTreeMap<String, String>, Problem> {
        if let Some(extra) = row.cells.iter().skip(self.headers.len()).position(|c| !c.is_empty()) {
            let n = self.headers.len() + extra + 1;
            return Err(Problem {
                line: row.line,
                column: String::new(),
                field: String::new(),
                zh: format!("第 {n} 列没有表头"),
                en: format!("cell in column {n} has no header"),
            });
        }
        let mut out = BTreeMap::new();
        for (i, c) in &self.cols {
            if let Some(v) = row.cells.get(*i) {
                if !v.is_empty() {
                    out.insert(c.key.to_owned(), v.clone());
                }
            }
        }
        Ok(out)
    }
}

/// A checked row, ready for the engine.
#[derive(Debug, Clone)]
pub struct Good {
    pub line: u64,
    pub external_ref: String,
    pub record: NewRecord,
}

/// The reference of a row without an `external_ref` cell: a hash of its
/// fields (so the same row imports once however often the file is read;
/// two identical rows in one file are one record, which is what a sheet
/// that lists a job twice by mistake means).
pub fn row_hash(kind: ImportKind, cells: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    h.update(kind.as_str().as_bytes());
    for (k, v) in cells {
        if k != EXTERNAL_REF {
            h.update([0x1e]);
            h.update(k.as_bytes());
            h.update([0x1f]);
            h.update(v.as_bytes());
        }
    }
    let d = h.finalize();
    let hex: String = d.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("row-{hex}")
}

struct Check<'a> {
    line: u64,
    now_ms: u64,
    cells: &'a BTreeMap<String, String>,
    header: &'a dyn Fn(&str) -> String,
    problems: Vec<Problem>,
}

impl Check<'_> {
    fn problem(&mut self, field: &str, zh: impl Into<String>, en: impl Into<String>) {
        self.problems.push(Problem {
            line: self.line,
            column: (self.header)(field),
            field: field.into(),
            zh: zh.into(),
            en: en.into(),
        });
    }

    fn rule(&mut self, field: &str, e: &RuleError) {
        let (zh, en) = rule_text(e);
        self.problem(field, zh, en);
    }

    fn opt_text(&mut self, field: &str) -> Option<String> {
        let v = self.cells.get(field)?.trim();
        if v.is_empty() {
            return None;
        }
        if let Err(e) = rules::check_text(v, false) {
            self.rule(field, &e);
            return None;
        }
        Some(v.to_owned())
    }

    fn text(&mut self, field: &str) -> String {
        match self.cells.get(field).map(|s| s.trim()).filter(|s| !s.is_empty()) {
            None => {
                self.rule(field, &RuleError::Empty);
                String::new()
            }
            Some(_) => self.opt_text(field).unwrap_or_default(),
        }
    }

    /// A closed list's value: its API spelling, English words or Chinese name.
    fn choice<T>(
        &mut self,
        field: &str,
        required: bool,
        parse: fn(&str) -> Option<T>,
        zh: &[&str],
        en: &[&str],
    ) -> Option<T> {
        let v = if required { Some(self.text(field)).filter(|s| !s.is_empty()) } else { self.opt_text(field) }?;
        let parsed = parse(&v);
        if parsed.is_none() {
            let (zh, en) = columns::choices(zh, en);
            self.problem(field, format!("必须是 {zh} 之一"), format!("must be one of {en}"));
        }
        parsed
    }

    fn positions(&mut self, field: &str) -> u32 {
        let v = self.text(field);
        if v.is_empty() {
            return 0;
        }
        match v.parse::<u64>() {
            Ok(n) if n >= 1 && n <= u64::from(MAX_POSITIONS) => n as u32,
            Ok(n) if n > u64::from(MAX_POSITIONS) => {
                self.problem(field, format!("不能超过 {MAX_POSITIONS}"), format!("must be at most {MAX_POSITIONS}"));
                0
            }
            _ => {
                self.problem(field, "必须是正整数", "must be a positive integer");
                0
            }
        }
    }

    fn work_type(&mut self, field: &str, required: bool) -> Option<WorkType> {
        let en = WorkType::ALL.map(WorkType::as_str);
        self.choice(field, required, columns::parse_work_type, &columns::WORK_TYPE_ZH, &en)
    }

    fn key_group(&mut self, field: &str, required: bool) -> Option<KeyGroup> {
        let en = KeyGroup::ALL.map(KeyGroup::as_str);
        self.choice(field, required, columns::parse_key_group, &columns::KEY_GROUP_ZH, &en)
    }

    fn date(&mut self, field: &str) -> Option<String> {
        let v = self.opt_text(field)?;
        // Sheets often write 2027/3/31; the API takes ISO dates only.
        let iso = match v.split(['/', '-', '.']).collect::<Vec<_>>()[..] {
            [y, m, d] if y.len() == 4 => format!("{y}-{m:0>2}-{d:0>2}"),
            _ => v.clone(),
        };
        if jobmesh_protocol::time::is_iso_date(&iso) {
            if let Err(e) = rules::check_valid_until(&iso, self.now_ms) {
                self.rule(field, &e);
                return None;
            }
            Some(iso)
        } else {
            self.problem(field, "必须是日期 YYYY-MM-DD", "must be a date YYYY-MM-DD");
            None
        }
    }
}

/// Check one row's cells (by API key). `header` names a field's column as
/// the file heads it, for the report; `now_ms` is today for the dates.
pub fn check(
    kind: ImportKind,
    line: u64,
    cells: &BTreeMap<String, String>,
    header: &dyn Fn(&str) -> String,
    now_ms: u64,
) -> Result<Good, Vec<Problem>> {
    let mut c = Check { line, now_ms, cells, header, problems: Vec::new() };
    let external_ref = match cells.get(EXTERNAL_REF).map(|s| s.trim()).filter(|s| !s.is_empty()) {
        Some(r) => {
            if let Err(p) = check_external_ref(r) {
                c.problem(EXTERNAL_REF, "不可用", p);
            }
            r.to_owned()
        }
        None => row_hash(kind, cells),
    };
    let record = match kind {
        ImportKind::Postings => {
            let title = c.text("title");
            let employer = c.text("employer");
            let category = c.text("category");
            let work_type = c.work_type("work_type", true);
            let positions = c.positions("positions");
            let audience = c.opt_text("audience").and_then(|a| match NodeId::parse(&a) {
                Ok(id) => Some(id),
                Err(e) => {
                    c.problem("audience", "不是有效的机构编号", format!("is not an office id: {e}"));
                    None
                }
            });
            let wage = c.opt_text("wage");
            let location = c.opt_text("location");
            let valid_until = c.date("valid_until");
            work_type.map(|work_type| {
                NewRecord::Posting(NewPosting {
                    title,
                    employer,
                    category,
                    work_type,
                    positions,
                    audience,
                    wage,
                    location,
                    valid_until,
                })
            })
        }
        ImportKind::Workers => {
            let name = c.text("name");
            let key_group = c.key_group("key_group", true);
            let phone = c.opt_text("phone");
            if let Some(Err(e)) = phone.as_deref().map(rules::check_phone) {
                c.rule("phone", &e);
            }
            let skills: Vec<String> = c
                .opt_text("skills")
                .map(|s| {
                    s.split([';', '；', '、', ',', '，'])
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            if skills.len() > MAX_SKILLS {
                c.problem("skills", format!("最多 {MAX_SKILLS} 项"), format!("must have at most {MAX_SKILLS} entries"));
            }
            let wanted_work_type = c.work_type("wanted_work_type", false);
            key_group.map(|key_group| NewRecord::Worker(NewWorker { name, key_group, phone, skills, wanted_work_type }))
        }
        ImportKind::Matters => {
            let cat_en = MatterCategory::ALL.map(MatterCategory::as_str);
            let category =
                c.choice("category", true, columns::parse_matter_category, &columns::MATTER_CATEGORY_ZH, &cat_en);
            let ch_en = Channel::ALL.map(Channel::as_str);
            let channel = c.choice("channel", true, columns::parse_channel, &columns::CHANNEL_ZH, &ch_en);
            let key_group = c.key_group("key_group", false);
            let summary = c.text("summary");
            if summary.len() > MAX_MATTER_SUMMARY {
                c.problem(
                    "summary",
                    format!("不能超过 {MAX_MATTER_SUMMARY} 字节"),
                    format!("longer than {MAX_MATTER_SUMMARY} bytes"),
                );
            }
            let st_en = MatterStatus::ALL.map(MatterStatus::as_str);
            let status = c
                .choice("status", false, columns::parse_matter_status, &columns::MATTER_STATUS_ZH, &st_en)
                .unwrap_or(MatterStatus::Open);
            category.zip(channel).map(|(category, channel)| {
                NewRecord::Matter(NewMatter { category, channel, key_group, summary, status })
            })
        }
    };
    match record {
        Some(record) if c.problems.is_empty() => Ok(Good { line, external_ref, record }),
        _ => Err(c.problems),
    }
}

/// One row's outcome.
pub type Checked = Result<Good, Vec<Problem>>;

/// Check a raw row against a mapping. `None` for a blank row (skipped:
/// sheets end in blank rows).
pub fn check_raw(m: &Mapping, row: &RawRow, now_ms: u64) -> Option<Checked> {
    if row.is_blank() {
        return None;
    }
    let cells = match m.cells(row) {
        Ok(c) => c,
        Err(p) => return Some(Err(vec![p])),
    };
    Some(check(m.kind, row.line, &cells, &|k| m.header_of(k), now_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-01 at noon in Guiyang.
    const NOW: u64 = 1_796_097_600_000;

    fn cells(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_report_line_reads_as_staff_expect() {
        let m = Mapping::new(
            ImportKind::Postings,
            &["岗位名称", "招聘单位", "职业类别", "用工类型", "岗位数"].map(String::from),
        )
        .unwrap();
        let row = RawRow {
            line: 17, cells: ["焊工", "贵州钢铁", "制造业", "全职", "三"].map(String::from).to_vec()
        };
        let problems = check_raw(&m, &row, NOW).unwrap().unwrap_err();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].to_string(), "第 17 行 岗位数: 必须是正整数 (positions must be a positive integer)");
    }

    #[test]
    fn every_problem_of_a_row_is_reported() {
        let c = cells(&[("title", "x"), ("work_type", "gig"), ("positions", "0"), ("valid_until", "2027-02-30")]);
        let p = check(ImportKind::Postings, 3, &c, &|k| k.to_owned(), NOW).unwrap_err();
        let fields: Vec<&str> = p.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["employer", "category", "work_type", "positions", "valid_until"]);
    }

    #[test]
    fn hashes_are_stable_and_refs_win() {
        let a = cells(&[("name", "张伟"), ("key_group", "农民工")]);
        let g = check(ImportKind::Workers, 2, &a, &|k| k.to_owned(), NOW).unwrap();
        assert_eq!(g.external_ref, row_hash(ImportKind::Workers, &a));
        assert!(g.external_ref.starts_with("row-") && g.external_ref.len() == 36);
        let b = cells(&[("name", "张伟"), ("key_group", "农民工"), ("external_ref", "reg-1")]);
        assert_eq!(check(ImportKind::Workers, 2, &b, &|k| k.to_owned(), NOW).unwrap().external_ref, "reg-1");
    }

    #[test]
    fn headers_are_checked() {
        assert!(matches!(
            Mapping::new(ImportKind::Workers, &["姓名".into()]),
            Err(HeaderError::Missing { en: "Key group", .. })
        ));
        assert!(matches!(
            Mapping::new(ImportKind::Workers, &["姓名".into(), "key_group".into(), "shoe size".into()]),
            Err(HeaderError::Unknown { .. })
        ));
        assert!(matches!(
            Mapping::new(ImportKind::Workers, &["姓名".into(), "name".into(), "key_group".into()]),
            Err(HeaderError::Duplicate { .. })
        ));
    }
}
