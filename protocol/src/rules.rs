//! Data rules for new local writes: what an office may publish or record,
//! beyond the shape a receiver checks in [`crate::record::Record::validate`].
//!
//! These rules protect the figures (an audience that reaches no office, a
//! posting already expired, the same worker placed twice on one posting)
//! and what people read (phone numbers, texts without control characters,
//! lengths in characters). They apply where a record is written, at its
//! origin: the engine checks them on every local write and the API calls the
//! same functions first, so that it can name every bad field at once.
//!
//! They are deliberately not part of `Record::validate`: a receiver must keep
//! accepting records that older nodes wrote under looser rules (a phone
//! `"abc"`, a text of 171 汉字 within 512 bytes), or a batch holding one such
//! record would be refused forever. The simulator's oracle and the chaos
//! checker check the rules over everything written during a run.

use crate::kv::{Kv, StoreError};
use crate::node_id::NodeId;
use crate::record::{Body, Kind, Posting, PostingStatus, RecordId, MAX_TEXT};
use crate::store;
use crate::time;

/// Longest free text (title, employer, wage, …) a new record may carry, in
/// characters. Any UTF-8 character is at most 4 bytes, so a text within this
/// bound is always within the byte bound [`MAX_TEXT`] that every node,
/// old or new, checks on receipt.
pub const MAX_TEXT_CHARS: usize = MAX_TEXT / 4;

/// Why a value breaks a data rule. Each variant is one `code` of the API's
/// error body (see [`RuleError::code`]); the fields are its parameters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// A required text is empty or only whitespace.
    #[error("must not be empty")]
    Empty,
    /// A text longer than [`MAX_TEXT_CHARS`] characters.
    #[error("longer than {max_chars} characters ({chars} given)")]
    TooLong { max_chars: usize, chars: usize },
    /// A control character (line break, tab, NUL, …) in a one-line text.
    #[error("contains a control character (U+{code_point:04X})")]
    ControlCharacter { code_point: u32 },
    /// Not a mainland mobile or landline number.
    #[error(
        "{0:?} is not a phone number (mobile 1[3-9] and 9 digits, or landline such as 0851-12345678, optionally +86)"
    )]
    Phone(String),
    /// `valid_until` lies before today (the office's local day).
    #[error("{date} is before today ({today})")]
    DateInPast { date: String, today: String },
    /// The audience is not an office this node knows.
    #[error("{0} is not an office known here (not in this node's topology, lineage or children)")]
    UnknownAudience(NodeId),
}

impl RuleError {
    /// The stable machine-readable code (**contract**: the page's catalogue
    /// of messages is keyed by it).
    pub fn code(&self) -> &'static str {
        match self {
            RuleError::Empty => "required",
            RuleError::TooLong { .. } => "too_long",
            RuleError::ControlCharacter { .. } => "control_character",
            RuleError::Phone(_) => "invalid_phone",
            RuleError::DateInPast { .. } => "date_in_past",
            RuleError::UnknownAudience(_) => "unknown_audience",
        }
    }
}

/// A one-line text of a new record: not blank when `required`, at most
/// [`MAX_TEXT_CHARS`] characters, no control characters.
pub fn check_text(s: &str, required: bool) -> Result<(), RuleError> {
    if required && s.trim().is_empty() {
        return Err(RuleError::Empty);
    }
    let chars = s.chars().count();
    if chars > MAX_TEXT_CHARS {
        return Err(RuleError::TooLong { max_chars: MAX_TEXT_CHARS, chars });
    }
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return Err(RuleError::ControlCharacter { code_point: c as u32 });
    }
    Ok(())
}

/// A mainland phone number: mobile `1[3-9]` plus 9 digits, or a landline
/// with area code `0` plus 2–3 digits and a 7–8 digit number, written
/// `0851-12345678` or `085112345678`; either may start with `+86` (then the
/// landline's leading 0 is dropped, `+86 851 12345678`). Spaces and one `-`
/// between parts are allowed.
pub fn check_phone(raw: &str) -> Result<(), RuleError> {
    let bad = || RuleError::Phone(raw.chars().take(40).collect());
    let s = raw.trim();
    let (international, rest) = match s.strip_prefix("+86") {
        Some(r) => (true, r.trim_start_matches([' ', '-'])),
        None => (false, s),
    };
    if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit() || b == b' ' || b == b'-') {
        return Err(bad());
    }
    let parts: Vec<&str> = rest.split([' ', '-']).filter(|p| !p.is_empty()).collect();
    let digits: String = parts.concat();
    let mobile = digits.len() == 11 && digits.starts_with('1') && matches!(digits.as_bytes()[1], b'3'..=b'9');
    if mobile && parts.iter().all(|p| !p.is_empty()) && (parts.len() == 1 || parts.len() == 3) {
        return Ok(());
    }
    // Landline: area code then number, either joined or in two parts.
    let landline = |area: &str, number: &str| {
        let area_ok = if international {
            (2..=3).contains(&area.len()) && !area.starts_with('0')
        } else {
            (3..=4).contains(&area.len()) && area.starts_with('0') && !area.starts_with("00")
        };
        area_ok && (7..=8).contains(&number.len()) && !number.starts_with('0')
    };
    let ok = match parts.as_slice() {
        [area, number] => landline(area, number),
        [joined] => {
            let area_lens: &[usize] = if international { &[2, 3] } else { &[3, 4] };
            area_lens.iter().any(|&n| joined.len() > n && landline(&joined[..n], &joined[n..]))
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(bad())
    }
}

/// The office's local day of `now_ms`, as `YYYY-MM-DD`.
pub fn today_iso(now_ms: u64) -> String {
    time::day_to_iso(time::local_day(now_ms))
}

/// `valid_until` of a new or changed posting: today or later (by the
/// origin's clock, in the office's local time).
pub fn check_valid_until(date: &str, now_ms: u64) -> Result<(), RuleError> {
    match time::iso_to_day(date) {
        Some(day) if day < time::local_day(now_ms) => {
            Err(RuleError::DateInPast { date: date.to_owned(), today: today_iso(now_ms) })
        }
        _ => Ok(()),
    }
}

/// Is `p` past its `valid_until` at `now_ms`? The date is the last day on
/// which the posting is valid, so it expires at the following local midnight.
pub fn is_expired(p: &Posting, now_ms: u64) -> bool {
    p.valid_until.as_deref().and_then(time::iso_to_day).is_some_and(|day| day < time::local_day(now_ms))
}

/// Does `p` count as open at `now_ms` with `filled` positions taken: status
/// open, positions left, and not past its `valid_until`?
pub fn counts_open(p: &Posting, filled: u32, now_ms: u64) -> bool {
    p.status == PostingStatus::Open && filled < p.positions && !is_expired(p, now_ms)
}

/// An audience `me` may publish to. With a topology (`in_topology` is
/// `Some`), the audience must be one of its offices; without one, it must
/// be `me`, an ancestor of `me`, or in the subtree of a child `me` knows
/// (`known_children`, from its links).
pub fn check_audience(
    me: &NodeId,
    audience: &NodeId,
    in_topology: Option<&dyn Fn(&NodeId) -> bool>,
    known_children: &[NodeId],
) -> Result<(), RuleError> {
    let ok = match in_topology {
        Some(contains) => contains(audience),
        None => me.is_in_subtree_of(audience) || known_children.iter().any(|c| audience.is_in_subtree_of(c)),
    };
    if ok {
        Ok(())
    } else {
        Err(RuleError::UnknownAudience(audience.clone()))
    }
}

/// The placement held here, if any, of `worker` on `posting`. A placement is
/// made at the worker's office or an ancestor of it, so only those offices'
/// placements are read (by id prefix), and only when the worker has any.
pub fn placement_of<K: Kv + ?Sized>(
    kv: &K,
    worker: &RecordId,
    posting: &RecordId,
) -> Result<Option<RecordId>, StoreError> {
    if store::placed(kv, worker)? == 0 {
        return Ok(None);
    }
    let mut office = Some(worker.origin());
    while let Some(at) = office {
        let prefix = RecordId::origin_prefix(&at, Kind::Placement);
        let mut after: Option<String> = None;
        loop {
            let batch = store::list_records(kv, Kind::Placement, &prefix, after.as_deref(), 1_024)?;
            for sr in &batch {
                if let Body::Placement(l) = &sr.record.body {
                    if l.worker_id == *worker && l.posting_id == *posting {
                        return Ok(Some(sr.record.id.clone()));
                    }
                }
            }
            match batch.last() {
                Some(last) if batch.len() == 1_024 => after = Some(last.record.id.as_str().to_owned()),
                _ => break,
            }
        }
        office = at.parent();
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones() {
        for ok in [
            "13812345678",
            "19912345678",
            "+8613812345678",
            "+86 138 1234 5678",
            "138-1234-5678",
            "0851-12345678",
            "085112345678",
            "010-1234567",
            "0851 1234567",
            "+86 851 12345678",
            "+86-851-12345678",
        ] {
            assert_eq!(check_phone(ok), Ok(()), "{ok}");
        }
        for bad in [
            "abc",
            "",
            "12812345678",
            "1381234567",
            "138123456789",
            "0851-0123456",
            "851-12345678",
            "+86 0851 12345678",
            "0851--12345678x",
            "+1 2025550123",
            "00851-12345678",
            "0851-123456789",
        ] {
            assert!(check_phone(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn texts_are_counted_in_characters() {
        let han = "岗".repeat(MAX_TEXT_CHARS);
        assert_eq!(check_text(&han, true), Ok(()));
        assert!(han.len() <= MAX_TEXT, "within the byte bound receivers check");
        let e = check_text(&format!("{han}岗"), true).unwrap_err();
        assert_eq!(e, RuleError::TooLong { max_chars: MAX_TEXT_CHARS, chars: MAX_TEXT_CHARS + 1 });
        assert_eq!(check_text("  \u{3000} ", true), Err(RuleError::Empty));
        assert_eq!(check_text("", false), Ok(()));
        assert_eq!(check_text("a\nb", true), Err(RuleError::ControlCharacter { code_point: 10 }));
        assert_eq!(check_text("a\u{7f}", false).unwrap_err().code(), "control_character");
    }

    #[test]
    fn dates_and_expiry() {
        // 2026-11-29 16:30 UTC is 2026-11-30 in Guizhou.
        let now = time::iso_to_day("2026-11-29").unwrap() as u64 * 86_400_000 + 16 * 3_600_000 + 1_800_000;
        assert_eq!(today_iso(now), "2026-11-30");
        assert!(check_valid_until("2026-11-30", now).is_ok());
        assert!(check_valid_until("2027-01-01", now).is_ok());
        let e = check_valid_until("2026-11-29", now).unwrap_err();
        assert_eq!(e, RuleError::DateInPast { date: "2026-11-29".into(), today: "2026-11-30".into() });
        let mut p = Posting {
            title: "t".into(),
            employer: "e".into(),
            category: "c".into(),
            work_type: crate::record::WorkType::OddJob,
            positions: 2,
            wage: None,
            location: None,
            valid_until: Some("2026-11-30".into()),
            status: PostingStatus::Open,
            audience: NodeId::parse("gz").unwrap(),
            created_at: 0,
            updated_at: 0,
        };
        assert!(!is_expired(&p, now) && counts_open(&p, 1, now));
        assert!(is_expired(&p, now + 86_400_000) && !counts_open(&p, 0, now + 86_400_000));
        assert!(!counts_open(&p, 2, now));
        p.valid_until = None;
        assert!(!is_expired(&p, u64::MAX / 2));
    }

    #[test]
    fn audiences() {
        let id = |s: &str| NodeId::parse(s).unwrap();
        let me = id("gz/guiyang");
        let topo = [id("gz"), id("gz/guiyang"), id("gz/guiyang/huaxi")];
        let contains = |a: &NodeId| topo.contains(a);
        let with: Option<&dyn Fn(&NodeId) -> bool> = Some(&contains);
        assert!(check_audience(&me, &id("gz/guiyang/huaxi"), with, &[]).is_ok());
        assert!(check_audience(&me, &id("gz"), with, &[]).is_ok());
        let e = check_audience(&me, &id("gz/guiyang/nosuch"), with, &[]).unwrap_err();
        assert_eq!(e.code(), "unknown_audience");
        assert!(check_audience(&me, &id("gz/zunyi"), with, &[]).is_err());
        // Without a topology: lineage and known children.
        assert!(check_audience(&me, &id("gz"), None, &[]).is_ok());
        assert!(check_audience(&me, &me, None, &[]).is_ok());
        assert!(check_audience(&me, &id("gz/guiyang/huaxi"), None, &[]).is_err());
        assert!(check_audience(&me, &id("gz/guiyang/huaxi/s1"), None, &[id("gz/guiyang/huaxi")]).is_ok());
        assert!(check_audience(&me, &id("gz/zunyi"), None, &[id("gz/guiyang/huaxi")]).is_err());
    }
}
