//! The row-by-row report: every bad row's problems, written as a CSV beside
//! the input (`sheet.csv` → `sheet.csv.report.csv`), in UTF-8 with a BOM so
//! that Excel opens the Chinese text correctly.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::rows::Problem;

/// Where the report of `input` goes.
pub fn report_path(input: &Path) -> PathBuf {
    let mut name = input.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".report.csv");
    input.with_file_name(name)
}

/// Write the problems (header `行,列,字段,问题,problem`).
pub fn write_csv<W: Write>(out: W, problems: &[Problem]) -> std::io::Result<()> {
    let mut out = out;
    out.write_all(b"\xEF\xBB\xBF")?;
    let mut w = csv::Writer::from_writer(out);
    w.write_record(["行 line", "列 column", "字段 field", "问题", "problem"])?;
    for p in problems {
        w.write_record([p.line.to_string().as_str(), &p.column, &p.field, &p.zh, &p.en])?;
    }
    w.flush()
}

/// Write the report file beside `input`; returns its path.
pub fn write_beside(input: &Path, problems: &[Problem]) -> std::io::Result<PathBuf> {
    let path = report_path(input);
    let f = std::fs::File::create(&path)?;
    write_csv(std::io::BufWriter::new(f), problems)?;
    Ok(path)
}
