//! Reading a file's rows as text cells: CSV (UTF-8 or GB18030) streamed
//! record by record, and xlsx (first worksheet) through calamine.
//!
//! The encoding of a CSV is decided before reading: a UTF-8 BOM (or a
//! UTF-16 one) says so; otherwise the whole file is checked for UTF-8
//! validity in 64 KiB chunks (a read pass that holds one chunk), and a file
//! that is not valid UTF-8 is read as GB18030, which Excel on a Chinese
//! Windows writes (its GBK is a subset). Line numbers are the file's own,
//! counting the header as line 1, so a report names the line staff see in
//! their editor or the row number Excel shows.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use calamine::{Data, Reader};

/// Why a file could not be read (a bad row is not an error: see
/// [`crate::rows`]).
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}: not a CSV file at line {line}: {problem}")]
    Csv { path: String, line: u64, problem: String },
    #[error("{path}: not a readable xlsx workbook: {problem}")]
    Xlsx { path: String, problem: String },
    #[error("{path}: the file has no header row")]
    Empty { path: String },
    #[error("{path}: unknown file type; expected .csv or .xlsx")]
    UnknownFormat { path: String },
}

/// The file formats read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Xlsx,
}

impl Format {
    /// By extension, else by content (an xlsx is a zip: `PK\x03\x04`).
    pub fn detect(path: &Path) -> Result<Format, ReadError> {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("csv" | "txt") => return Ok(Format::Csv),
            Some("xlsx" | "xlsm") => return Ok(Format::Xlsx),
            _ => {}
        }
        let mut head = [0u8; 4];
        let n = File::open(path).and_then(|mut f| f.read(&mut head)).map_err(|e| io(path, e))?;
        if n == 4 && head == *b"PK\x03\x04" {
            Ok(Format::Xlsx)
        } else if n > 0 {
            Ok(Format::Csv)
        } else {
            Err(ReadError::UnknownFormat { path: path.display().to_string() })
        }
    }
}

/// The text encoding a CSV was read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsvEncoding {
    Utf8,
    Gb18030,
    /// Named by a UTF-16 BOM.
    Utf16,
}

/// One row of a file: its line number and its cells as text (trimmed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRow {
    pub line: u64,
    pub cells: Vec<String>,
}

impl RawRow {
    pub fn is_blank(&self) -> bool {
        self.cells.iter().all(|c| c.is_empty())
    }
}

/// An opened file: its header row and an iterator over the rows below it.
pub struct Sheet {
    pub headers: Vec<String>,
    /// Data rows in the file (blank rows included), when known up front.
    pub rows_total: Option<u64>,
    pub encoding: Option<CsvEncoding>,
    rows: Box<dyn Iterator<Item = Result<RawRow, ReadError>> + Send>,
}

impl Iterator for Sheet {
    type Item = Result<RawRow, ReadError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.rows.next()
    }
}

fn io(path: &Path, source: std::io::Error) -> ReadError {
    ReadError::Io { path: path.display().to_string(), source }
}

/// Open a CSV or xlsx file.
pub fn open(path: &Path) -> Result<Sheet, ReadError> {
    match Format::detect(path)? {
        Format::Csv => open_csv(path),
        Format::Xlsx => open_xlsx(path),
    }
}

/// Decide a CSV's encoding (see the module doc).
pub fn detect_encoding(path: &Path) -> Result<CsvEncoding, ReadError> {
    let mut f = BufReader::new(File::open(path).map_err(|e| io(path, e))?);
    let mut buf = vec![0u8; 64 * 1024];
    let mut carry: Vec<u8> = Vec::new();
    let mut first = true;
    loop {
        let n = f.read(&mut buf).map_err(|e| io(path, e))?;
        if n == 0 {
            // A file cut inside a character is not UTF-8.
            return Ok(if carry.is_empty() { CsvEncoding::Utf8 } else { CsvEncoding::Gb18030 });
        }
        if first {
            first = false;
            if buf[..n].starts_with(b"\xEF\xBB\xBF") {
                return Ok(CsvEncoding::Utf8);
            }
            if buf[..n].starts_with(b"\xFF\xFE") || buf[..n].starts_with(b"\xFE\xFF") {
                return Ok(CsvEncoding::Utf16);
            }
        }
        carry.extend_from_slice(&buf[..n]);
        match std::str::from_utf8(&carry) {
            Ok(_) => carry.clear(),
            // An incomplete character at the end of the chunk: keep it for
            // the next one.
            Err(e) if e.error_len().is_none() => {
                let keep = carry.split_off(e.valid_up_to());
                carry = keep;
            }
            Err(_) => return Ok(CsvEncoding::Gb18030),
        }
    }
}

/// Count the CSV records after the header (a cheap pass: delimiters,
/// quotes and newlines are ASCII in UTF-8, GB18030 and every encoding read
/// here except UTF-16, which is not counted).
fn count_csv_records(path: &Path) -> Option<u64> {
    let f = File::open(path).ok()?;
    let mut r = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(BufReader::new(f));
    let mut rec = csv::ByteRecord::new();
    let mut n = 0u64;
    while r.read_byte_record(&mut rec).ok()? {
        n += 1;
    }
    Some(n)
}

fn open_csv(path: &Path) -> Result<Sheet, ReadError> {
    let encoding = detect_encoding(path)?;
    let f = File::open(path).map_err(|e| io(path, e))?;
    let label = match encoding {
        CsvEncoding::Utf8 => encoding_rs::UTF_8,
        CsvEncoding::Gb18030 => encoding_rs::GB18030,
        CsvEncoding::Utf16 => encoding_rs::UTF_16LE,
    };
    // BOM sniffing stays on, so a UTF-16 file's BOM picks its byte order and
    // a UTF-8 BOM is dropped rather than glued to the first header.
    let decoded = encoding_rs_io::DecodeReaderBytesBuilder::new()
        .encoding(Some(label))
        .bom_sniffing(true)
        .build(BufReader::with_capacity(256 * 1024, f));
    let reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(decoded);
    let p = path.display().to_string();
    let csv_err = {
        let p = p.clone();
        move |e: csv::Error| {
            let line = e.position().map(|pos| pos.line()).unwrap_or(0);
            match e.into_kind() {
                csv::ErrorKind::Io(source) => ReadError::Io { path: p.clone(), source },
                other => ReadError::Csv { path: p.clone(), line, problem: format!("{other:?}") },
            }
        }
    };
    let mut records = reader.into_records();
    let header = match records.next() {
        None => return Err(ReadError::Empty { path: p }),
        Some(r) => r.map_err(&csv_err)?,
    };
    let headers: Vec<String> = header.iter().map(|h| h.trim().trim_start_matches('\u{feff}').to_owned()).collect();
    let rows_total = if encoding == CsvEncoding::Utf16 { None } else { count_csv_records(path) };
    let rows = records.map(move |r| {
        let r = r.map_err(&csv_err)?;
        let line = r.position().map(|pos| pos.line()).unwrap_or(0);
        Ok(RawRow { line, cells: r.iter().map(|c| c.trim().to_owned()).collect() })
    });
    Ok(Sheet { headers, rows_total, encoding: Some(encoding), rows: Box::new(rows) })
}

/// Excel's day 25,569 is 1970-01-01 (in the 1900 date system).
const EXCEL_UNIX_EPOCH_DAY: f64 = 25_569.0;

/// A cell as text: whole numbers without a fraction, dates as ISO dates.
pub fn cell_text(d: &Data) -> String {
    match d {
        Data::Empty => String::new(),
        Data::String(s) => s.trim().to_owned(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        Data::Float(f) => f.to_string(),
        Data::Bool(b) => b.to_string(),
        Data::DateTime(dt) => {
            let day = (dt.as_f64() - EXCEL_UNIX_EPOCH_DAY).floor();
            if day.abs() < 1e7 {
                jobmesh_protocol::time::day_to_iso(day as i32)
            } else {
                dt.as_f64().to_string()
            }
        }
        Data::DateTimeIso(s) => s.get(..10).unwrap_or(s).to_owned(),
        Data::DurationIso(s) => s.clone(),
        Data::Error(e) => format!("#{e:?}"),
    }
}

/// The first worksheet. calamine reads a sheet whole (an xlsx is a zip of
/// XML, so it cannot be read from a pipe anyway); the rows it yields are
/// converted one at a time.
fn open_xlsx(path: &Path) -> Result<Sheet, ReadError> {
    let p = path.display().to_string();
    let xerr = |e: calamine::Error| ReadError::Xlsx { path: p.clone(), problem: e.to_string() };
    let mut wb = calamine::open_workbook_auto(path).map_err(xerr)?;
    let range = wb.worksheet_range_at(0).ok_or_else(|| ReadError::Empty { path: p.clone() })?.map_err(xerr)?;
    let (row0, _col0) = range.start().ok_or_else(|| ReadError::Empty { path: p.clone() })?;
    // Cells are reported by their sheet column; the range may start right of
    // column A, which is fine since headers are matched by name.
    let mut rows: Vec<RawRow> = Vec::with_capacity(range.height());
    for (i, r) in range.rows().enumerate() {
        rows.push(RawRow { line: u64::from(row0) + i as u64 + 1, cells: r.iter().map(cell_text).collect() });
    }
    drop(range);
    let mut it = rows.into_iter();
    let header = it.next().ok_or(ReadError::Empty { path: p })?;
    let rows_total = Some(it.len() as u64);
    Ok(Sheet { headers: header.cells, rows_total, encoding: None, rows: Box::new(it.map(Ok)) })
}
