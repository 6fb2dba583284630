//! What the bench prints: a table of figures (min / median / max over the
//! runs, beside the ceiling measured in the same invocation and the ratio
//! to it) and one JSON line per case and run.
//!
//! Ratios read the same way for every figure: 1.0 is the ceiling, below 1.0
//! is short of it. For throughputs that is `median / ceiling`; for
//! latencies and footprints, where the ceiling is a floor, `floor / median`.

use std::fmt::Write as _;
use std::fs::File;
use std::io::Write;
use std::path::Path;

/// How a figure is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Things per second, higher is better.
    PerSec,
    /// Microseconds (shown as ms), lower is better.
    Micros,
    /// Microseconds (shown as µs), lower is better: CPU time per record.
    CpuMicros,
    /// Bytes (shown as MiB), lower is better.
    Bytes,
    /// Bytes per record, lower is better.
    BytesPer,
    /// Seconds, lower is better.
    Secs,
    /// Simulated milliseconds, lower is better.
    SimMs,
}

impl Unit {
    fn higher_is_better(self) -> bool {
        self == Unit::PerSec
    }

    fn name(self) -> &'static str {
        match self {
            Unit::PerSec => "/s",
            Unit::Micros => "ms",
            Unit::CpuMicros => "CPU µs",
            Unit::Bytes => "MiB",
            Unit::BytesPer => "B/rec",
            Unit::Secs => "s",
            Unit::SimMs => "sim ms",
        }
    }

    pub fn show(self, v: f64) -> String {
        if !v.is_finite() {
            return "—".into();
        }
        match self {
            Unit::PerSec => thousands(v.round() as u64),
            Unit::Micros => {
                let ms = v / 1000.0;
                if ms < 10.0 {
                    format!("{ms:.2}")
                } else if ms < 100.0 {
                    format!("{ms:.1}")
                } else {
                    format!("{ms:.0}")
                }
            }
            Unit::CpuMicros => format!("{v:.1}"),
            Unit::Bytes => format!("{:.1}", v / (1024.0 * 1024.0)),
            Unit::BytesPer => format!("{v:.0}"),
            Unit::Secs => format!("{v:.2}"),
            Unit::SimMs => format!("{v:.0}"),
        }
    }
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A bound measured in the same invocation.
#[derive(Debug, Clone)]
pub struct Ceiling {
    /// What it is, for the table's last column.
    pub label: String,
    /// In the figure's unit.
    pub value: f64,
}

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Row {
    pub case: &'static str,
    pub figure: String,
    pub unit: Unit,
    /// One value per run.
    pub values: Vec<f64>,
    pub ceiling: Option<Ceiling>,
    /// The ceiling measured next to each run, when it was: the ratio is
    /// then the median of the per-run ratios (robust to the machine's load
    /// drifting between cases).
    pub paired: Vec<f64>,
    /// Where the figure should land, in words (`>= 120,000/s`), and the
    /// bound itself in the figure's unit.
    pub target: Option<(String, f64)>,
    /// A target on the ratio instead (`>= 0.70 × ceiling`).
    pub target_ratio: Option<(String, f64)>,
}

impl Row {
    pub fn new(case: &'static str, figure: impl Into<String>, unit: Unit, values: Vec<f64>) -> Row {
        Row {
            case,
            figure: figure.into(),
            unit,
            values,
            ceiling: None,
            paired: Vec::new(),
            target: None,
            target_ratio: None,
        }
    }

    pub fn ceiling(mut self, c: Option<Ceiling>) -> Row {
        self.ceiling = c;
        self
    }

    /// A ceiling measured beside each run (same order as the values).
    pub fn paired(mut self, label: &str, ceilings: Vec<f64>) -> Row {
        self.ceiling = Some(Ceiling { label: label.to_owned(), value: median(&ceilings) });
        self.paired = ceilings;
        self
    }

    pub fn target(mut self, words: &str, bound: f64) -> Row {
        self.target = Some((words.to_owned(), bound));
        self
    }

    pub fn target_ratio(mut self, words: &str, ratio: f64) -> Row {
        self.target_ratio = Some((words.to_owned(), ratio));
        self
    }

    pub fn median(&self) -> f64 {
        median(&self.values)
    }

    pub fn ratio(&self) -> Option<f64> {
        let higher = self.unit.higher_is_better();
        if !self.paired.is_empty() && self.paired.len() == self.values.len() {
            let r: Vec<f64> = self
                .values
                .iter()
                .zip(&self.paired)
                .filter(|(v, c)| **v > 0.0 && **c > 0.0)
                .map(|(v, c)| if higher { v / c } else { c / v })
                .collect();
            return (!r.is_empty()).then(|| median(&r));
        }
        let c = self.ceiling.as_ref()?.value;
        let m = self.median();
        if !(c > 0.0 && m > 0.0 && c.is_finite() && m.is_finite()) {
            return None;
        }
        Some(if higher { m / c } else { c / m })
    }

    pub fn met(&self) -> Option<bool> {
        if let Some((_, r)) = &self.target_ratio {
            return self.ratio().map(|x| x >= *r);
        }
        let (_, bound) = self.target.as_ref()?;
        let m = self.median();
        Some(if self.unit.higher_is_better() { m >= *bound } else { m <= *bound })
    }
}

/// Median of a slice (NaN if empty).
pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// Nearest-rank percentile of sorted samples (`p` in 0..=100).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// p50 and p99 of unsorted samples.
pub fn p50_p99(samples: &mut [f64]) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    (percentile(samples, 50.0), percentile(samples, 99.0))
}

/// A JSON value for one field of a line.
pub enum J {
    S(String),
    U(u64),
    F(f64),
}

/// The table being built and the JSON lines' sink.
pub struct Report {
    pub rows: Vec<Row>,
    /// Explanations printed under the table: measured bounds of figures.
    pub notes: Vec<String>,
    /// Cases that failed, with the error.
    pub failures: Vec<(String, String)>,
    json: Option<File>,
}

impl Report {
    pub fn new(json_path: &Path) -> anyhow::Result<Report> {
        if let Some(dir) = json_path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = File::create(json_path)
            .map_err(|e| anyhow::anyhow!("cannot create the JSON file {}: {e}", json_path.display()))?;
        Ok(Report { rows: Vec::new(), notes: Vec::new(), failures: Vec::new(), json: Some(file) })
    }

    /// Write one JSON line (`{"bench":"jobmesh","case":…,"run":…,…}`) to
    /// stdout and to the file, fields in the order given.
    pub fn json(&mut self, case: &str, run: usize, fields: &[(&str, J)]) {
        let mut line = format!("{{\"bench\":\"jobmesh\",\"case\":{},\"run\":{run}", serde_json::Value::from(case));
        for (k, v) in fields {
            let v = match v {
                J::S(s) => serde_json::Value::from(s.as_str()).to_string(),
                J::U(n) => n.to_string(),
                J::F(f) if f.is_finite() => {
                    let r = (f * 1000.0).round() / 1000.0;
                    serde_json::Value::from(r).to_string()
                }
                J::F(_) => "null".into(),
            };
            let _ = write!(line, ",{}:{v}", serde_json::Value::from(*k));
        }
        line.push('}');
        println!("{line}");
        if let Some(f) = self.json.as_mut() {
            let _ = writeln!(f, "{line}");
        }
    }

    pub fn row(&mut self, row: Row) {
        self.rows.push(row);
    }

    pub fn note(&mut self, note: impl Into<String>) {
        let note = note.into();
        eprintln!("bench: {note}");
        self.notes.push(note);
    }

    /// The table, as printed at the end.
    pub fn table(&self) -> String {
        let header = ["case", "figure", "unit", "min", "median", "max", "ceiling", "ratio", "target", "met"];
        let mut lines: Vec<[String; 10]> = Vec::new();
        for r in &self.rows {
            let min = r.values.iter().copied().fold(f64::INFINITY, f64::min);
            let max = r.values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let ceiling = match &r.ceiling {
                Some(c) => format!("{} ({})", r.unit.show(c.value), c.label),
                None => "—".into(),
            };
            lines.push([
                r.case.to_owned(),
                r.figure.clone(),
                r.unit.name().to_owned(),
                r.unit.show(min),
                r.unit.show(r.median()),
                r.unit.show(max),
                ceiling,
                r.ratio().map(|x| format!("{x:.2}")).unwrap_or_else(|| "—".into()),
                r.target.as_ref().or(r.target_ratio.as_ref()).map(|(w, _)| w.clone()).unwrap_or_else(|| "—".into()),
                match r.met() {
                    Some(true) => "yes".into(),
                    Some(false) => "no".into(),
                    None => "—".into(),
                },
            ]);
        }
        let mut widths = header.map(|h| h.chars().count());
        for l in &lines {
            for (w, c) in widths.iter_mut().zip(l.iter()) {
                *w = (*w).max(c.chars().count());
            }
        }
        let fmt_line = |cells: &[String]| {
            let mut s = String::from("|");
            for (i, (c, w)) in cells.iter().zip(widths.iter()).enumerate() {
                let pad = w - c.chars().count();
                // Numbers right-aligned, words left-aligned.
                if (3..=5).contains(&i) || i == 7 {
                    let _ = write!(s, " {}{} |", " ".repeat(pad), c);
                } else {
                    let _ = write!(s, " {}{} |", c, " ".repeat(pad));
                }
            }
            s
        };
        let mut out = String::new();
        out.push_str(&fmt_line(&header.map(String::from)));
        out.push('\n');
        out.push('|');
        for w in widths {
            out.push_str(&"-".repeat(w + 2));
            out.push('|');
        }
        out.push('\n');
        for l in &lines {
            out.push_str(&fmt_line(l));
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_medians() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(p50_p99(&mut v), (50.0, 99.0));
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(12), "12");
    }

    #[test]
    fn ratios_read_the_same_way_for_every_unit() {
        let c = |v| Some(Ceiling { label: "x".into(), value: v });
        let r = Row::new("t", "tput", Unit::PerSec, vec![50.0]).ceiling(c(100.0));
        assert_eq!(r.ratio(), Some(0.5));
        let r = Row::new("t", "lat", Unit::Micros, vec![200.0]).ceiling(c(100.0));
        assert_eq!(r.ratio(), Some(0.5));
    }
}
