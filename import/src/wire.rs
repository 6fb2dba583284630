//! The JSON of `POST /v1/import/{kind}` (rows already read from a file, by
//! API key) and of `POST /v1/import/{kind}/file` (a whole file), shared by
//! the node that answers and the CLI that asks. JSON over HTTP, not the
//! replication wire: these types may gain fields.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::rows::Problem;

/// Most rows in one `POST /v1/import/{kind}`.
pub const MAX_BATCH_ROWS: usize = 1_000;
/// Largest body of one import request, in bytes (a batch of rows).
pub const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Largest uploaded file, in bytes.
pub const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;
/// Problems listed in a file report (the count is always complete; the
/// full list is in the CLI's CSV report).
pub const MAX_LISTED_PROBLEMS: usize = 1_000;
/// Rows shown in a file report's preview.
pub const PREVIEW_ROWS: usize = 10;

/// One row to import: its file line and its cells by API key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchRow {
    #[serde(deserialize_with = "whole_number")]
    pub line: u64,
    pub cells: BTreeMap<String, String>,
}

/// Largest line number: 2^53 − 1, the largest integer every JSON reader
/// (read as a double) tells apart from its neighbours, so that 2^53 + 1,
/// read as 2^53, is refused rather than taken for another line.
pub const MAX_LINE: u64 = (1 << 53) - 1;

/// A line number written as an integer or a whole float (`17.0`, as some
/// JSON writers spell every number), at most [`MAX_LINE`].
fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let f = f64::deserialize(d)?;
    if f >= 0.0 && f.fract() == 0.0 && f <= MAX_LINE as f64 {
        Ok(f as u64)
    } else {
        Err(serde::de::Error::custom(format!("{f} is not a line number")))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchRequest {
    pub rows: Vec<BatchRow>,
}

/// What became of one row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowResult {
    pub line: u64,
    pub external_ref: String,
    /// The record held under the row's reference (after a dry run: only if
    /// it already existed).
    pub id: Option<String>,
    /// This request created it.
    pub created: bool,
    /// Why the row was refused (its columns named by API key).
    pub problems: Vec<Problem>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchResponse {
    pub dry_run: bool,
    pub results: Vec<RowResult>,
}

/// One row of a file report's preview.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreviewRow {
    pub line: u64,
    /// Cells in the file's column order.
    pub cells: Vec<String>,
    pub problems: Vec<Problem>,
}

/// The answer to an uploaded file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FileReport {
    pub kind: String,
    pub dry_run: bool,
    /// Data rows read (blank rows not counted).
    pub rows: u64,
    /// Data rows in the file (blank ones included), when known up front.
    pub rows_total: Option<u64>,
    pub good: u64,
    pub bad: u64,
    /// Created by this upload (0 on a dry run).
    pub created: u64,
    /// Rows whose reference was already used here: nothing created.
    pub existing: u64,
    /// Set when the file could not be read at all (nothing imported).
    pub error: Option<String>,
    pub headers: Vec<String>,
    pub preview: Vec<PreviewRow>,
    /// Every problem's display text ("第 17 行 岗位数: …"), at most
    /// [`MAX_LISTED_PROBLEMS`].
    pub problems: Vec<Problem>,
    pub problems_total: u64,
}
