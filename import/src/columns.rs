//! The column mapping (**documented in the README**): which file headers,
//! in Chinese or English, fill which API field of each import kind, and the
//! words accepted for closed lists (work types, key groups).
//!
//! A header matches a column when, after trimming, lowercasing and dropping
//! spaces, `_`, `-` and a trailing `*` (the templates mark required
//! columns), it equals the column's API key, English or Chinese name, or one
//! of its aliases. Extending the importer to a new record kind (service
//! matters, once the node has them) is one more [`ImportKind`] variant, its
//! column table here, and its row check in [`crate::rows`].

use jobmesh_protocol::matters::{Channel, MatterCategory, MatterStatus};
use jobmesh_protocol::record::{KeyGroup, WorkType};

/// What a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImportKind {
    Postings,
    Workers,
    Matters,
}

impl ImportKind {
    pub const ALL: [ImportKind; 3] = [ImportKind::Postings, ImportKind::Workers, ImportKind::Matters];

    /// The plural used in the CLI and in `/v1/import/{kind}`.
    pub fn as_str(self) -> &'static str {
        match self {
            ImportKind::Postings => "postings",
            ImportKind::Workers => "workers",
            ImportKind::Matters => "matters",
        }
    }

    pub fn parse(s: &str) -> Option<ImportKind> {
        ImportKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn columns(self) -> &'static [Column] {
        match self {
            ImportKind::Postings => POSTING_COLUMNS,
            ImportKind::Workers => WORKER_COLUMNS,
            ImportKind::Matters => MATTER_COLUMNS,
        }
    }

    /// The column whose API key is `key`.
    pub fn column(self, key: &str) -> Option<&'static Column> {
        self.columns().iter().find(|c| c.key == key)
    }
}

/// One column of an import file.
#[derive(Debug)]
pub struct Column {
    /// The API field it fills (`positions`).
    pub key: &'static str,
    /// The English header of the templates (`Positions`).
    pub en: &'static str,
    /// The Chinese header of the templates (`岗位数`).
    pub zh: &'static str,
    pub required: bool,
    /// Other headers staff's sheets use for it.
    pub aliases: &'static [&'static str],
    /// What the template's example row holds.
    pub example_en: &'static str,
    pub example_zh: &'static str,
}

impl Column {
    /// Does a file's header name this column?
    pub fn matches(&self, header: &str) -> bool {
        let h = normalize_header(header);
        [self.key, self.en, self.zh].iter().chain(self.aliases).any(|n| normalize_header(n) == h)
    }
}

/// The reference column shared by every kind.
pub const EXTERNAL_REF: &str = "external_ref";

const fn col(
    key: &'static str,
    en: &'static str,
    zh: &'static str,
    required: bool,
    aliases: &'static [&'static str],
    example_en: &'static str,
    example_zh: &'static str,
) -> Column {
    Column { key, en, zh, required, aliases, example_en, example_zh }
}

pub const POSTING_COLUMNS: &[Column] = &[
    col(EXTERNAL_REF, "External ref", "外部编号", false, &["ref", "编号", "序号"], "fair-2026-001", "招聘会-2026-001"),
    col("title", "Title", "岗位名称", true, &["job title", "岗位", "职位", "职位名称"], "Welder", "焊工"),
    col(
        "employer",
        "Employer",
        "招聘单位",
        true,
        &["company", "用人单位", "企业名称", "单位名称"],
        "Guizhou Steel",
        "贵州钢铁",
    ),
    col("category", "Category", "职业类别", true, &["occupation", "工种", "职业"], "manufacturing", "制造业"),
    col("work_type", "Work type", "用工类型", true, &["type", "用工形式", "工作性质"], "full_time", "全职"),
    col("positions", "Positions", "岗位数", true, &["openings", "招聘人数", "人数"], "3", "3"),
    col("audience", "Audience", "发布范围", false, &[], "", ""),
    col("wage", "Wage", "薪资", false, &["salary", "工资", "薪酬", "薪资待遇"], "4000-6000/month", "4000-6000元/月"),
    col("location", "Location", "工作地点", false, &["place", "地点"], "Guanshanhu", "观山湖区"),
    col(
        "valid_until",
        "Valid until",
        "有效期至",
        false,
        &["expires", "截止日期", "有效期"],
        "2027-03-31",
        "2027-03-31",
    ),
];

pub const WORKER_COLUMNS: &[Column] = &[
    col(
        EXTERNAL_REF,
        "External ref",
        "外部编号",
        false,
        &["ref", "编号", "序号", "登记号"],
        "reg-000123",
        "登记-000123",
    ),
    col("name", "Name", "姓名", true, &["full name"], "Zhang Wei", "张伟"),
    col("key_group", "Key group", "重点群体", true, &["group", "人员类别", "群体类别"], "migrant_worker", "农民工"),
    col("phone", "Phone", "联系电话", false, &["contact", "电话", "手机", "手机号"], "13800000000", "13800000000"),
    col("skills", "Skills", "技能", false, &["专业技能", "技能特长"], "welding; forklift", "焊接；叉车"),
    col(
        "wanted_work_type",
        "Wanted work type",
        "求职类型",
        false,
        &["wanted", "意向用工类型", "求职意向"],
        "full_time",
        "全职",
    ),
];

pub const MATTER_COLUMNS: &[Column] = &[
    col(
        EXTERNAL_REF,
        "External ref",
        "外部编号",
        false,
        &["ref", "编号", "序号", "受理号"],
        "hotline-2026-0042",
        "热线-2026-0042",
    ),
    col("category", "Category", "事项类别", true, &["matter category", "类别"], "job_search", "求职帮扶"),
    col("channel", "Channel", "受理渠道", true, &["渠道", "来源"], "walk_in", "现场窗口"),
    col("key_group", "Key group", "人员类别", false, &["group", "重点群体"], "migrant_worker", "农民工"),
    col(
        "summary",
        "Summary",
        "事项摘要",
        true,
        &["摘要", "内容", "事项内容"],
        "Asked about wage arrears",
        "咨询欠薪问题",
    ),
    col("status", "Status", "办理状态", false, &["状态"], "open", "办理中"),
];

/// Chinese names of the work types, in [`WorkType::ALL`] order.
pub const WORK_TYPE_ZH: [&str; 4] = ["全职", "兼职", "零工", "临时工"];
/// Chinese names of the key groups, in [`KeyGroup::ALL`] order.
pub const KEY_GROUP_ZH: [&str; 6] = ["高校毕业生", "农民工", "退役军人", "农村劳动力", "残疾人", "其他"];

/// Chinese names of the matter categories, in [`MatterCategory::ALL`] order.
pub const MATTER_CATEGORY_ZH: [&str; 7] =
    ["劳动维权", "政策咨询", "求职帮扶", "返岗帮扶", "走访企业", "培训推荐", "其他"];
/// Chinese names of the channels, in [`Channel::ALL`] order.
pub const CHANNEL_ZH: [&str; 4] = ["现场窗口", "12333热线", "网上办理", "上门服务"];
/// Chinese names of the matter statuses, in [`MatterStatus::ALL`] order.
pub const MATTER_STATUS_ZH: [&str; 2] = ["办理中", "已办结"];

fn normalize_header(h: &str) -> String {
    h.trim()
        .trim_start_matches('\u{feff}')
        .trim_end_matches('*')
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

fn normalize_word(s: &str) -> String {
    s.trim().chars().map(|c| if c == ' ' || c == '-' { '_' } else { c }).flat_map(char::to_lowercase).collect()
}

/// A work type from its API spelling, English words or Chinese name.
pub fn parse_work_type(s: &str) -> Option<WorkType> {
    let w = normalize_word(s);
    WorkType::parse(&w).or_else(|| {
        let i = WORK_TYPE_ZH.iter().position(|z| *z == w || (*z == "临时工" && w == "临时"))?;
        Some(WorkType::ALL[i])
    })
}

/// A key group from its API spelling, English words or Chinese name.
pub fn parse_key_group(s: &str) -> Option<KeyGroup> {
    let w = normalize_word(s);
    KeyGroup::parse(&w).or_else(|| {
        let i = KEY_GROUP_ZH.iter().position(|z| *z == w)?;
        Some(KeyGroup::ALL[i])
    })
}

/// A matter category from its API spelling, English words or Chinese name.
pub fn parse_matter_category(s: &str) -> Option<MatterCategory> {
    let w = normalize_word(s);
    MatterCategory::parse(&w).or_else(|| Some(MatterCategory::ALL[MATTER_CATEGORY_ZH.iter().position(|z| *z == w)?]))
}

/// A channel from its API spelling, English words or Chinese name.
pub fn parse_channel(s: &str) -> Option<Channel> {
    let w = normalize_word(s);
    Channel::parse(&w).or_else(|| Some(Channel::ALL[CHANNEL_ZH.iter().position(|z| *z == w)?]))
}

/// A matter status from its API spelling or Chinese name.
pub fn parse_matter_status(s: &str) -> Option<MatterStatus> {
    let w = normalize_word(s);
    MatterStatus::parse(&w).or_else(|| Some(MatterStatus::ALL[MATTER_STATUS_ZH.iter().position(|z| *z == w)?]))
}

/// The allowed words of a closed list, in Chinese and in English.
pub fn choices(zh: &[&str], en: &[&str]) -> (String, String) {
    (zh.join("、"), en.join(", "))
}

/// "全职、兼职、零工、临时工" and "full_time, part_time, odd_job, temporary".
pub fn work_type_choices() -> (String, String) {
    (WORK_TYPE_ZH.join("、"), WorkType::ALL.map(WorkType::as_str).join(", "))
}

pub fn key_group_choices() -> (String, String) {
    (KEY_GROUP_ZH.join("、"), KeyGroup::ALL.map(KeyGroup::as_str).join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_match_in_either_language() {
        let c = ImportKind::Postings.column("positions").unwrap();
        for h in ["positions", "Positions", " 岗位数* ", "招聘人数", "POSITIONS"] {
            assert!(c.matches(h), "{h}");
        }
        assert!(!c.matches("position count"));
        let c = ImportKind::Postings.column("valid_until").unwrap();
        assert!(c.matches("Valid until") && c.matches("valid-until") && c.matches("有效期至"));
    }

    #[test]
    fn every_header_names_one_column() {
        for kind in ImportKind::ALL {
            for c in kind.columns() {
                for h in [c.key, c.en, c.zh].iter().chain(c.aliases) {
                    let n = kind.columns().iter().filter(|o| o.matches(h)).count();
                    assert_eq!(n, 1, "{} header {h:?} matches {n} columns", kind.as_str());
                }
            }
        }
    }

    #[test]
    fn closed_lists_in_either_language() {
        assert_eq!(parse_work_type("零工"), Some(WorkType::OddJob));
        assert_eq!(parse_work_type("Full time"), Some(WorkType::FullTime));
        assert_eq!(parse_work_type("part-time"), Some(WorkType::PartTime));
        assert_eq!(parse_work_type("gig"), None);
        assert_eq!(parse_key_group("退役军人"), Some(KeyGroup::ExServiceman));
        assert_eq!(parse_key_group("college graduate"), Some(KeyGroup::CollegeGraduate));
        assert_eq!(parse_matter_category("劳动维权"), Some(MatterCategory::RightsProtection));
        assert_eq!(parse_channel("12333热线"), Some(Channel::Hotline12333));
        assert_eq!(parse_channel("hotline_12333"), Some(Channel::Hotline12333));
        assert_eq!(parse_matter_status("已办结"), Some(MatterStatus::Resolved));
    }
}
