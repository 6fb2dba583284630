//! The `jobmesh import` and `jobmesh export` subcommands' arguments and
//! their execution (the binary's CLI embeds these structs).

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};

use crate::client::{self, Api, ImportOptions};
use crate::columns::ImportKind;
use crate::template::Lang;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    Postings,
    Workers,
    Matters,
}

impl From<KindArg> for ImportKind {
    fn from(k: KindArg) -> ImportKind {
        match k {
            KindArg::Postings => ImportKind::Postings,
            KindArg::Workers => ImportKind::Workers,
            KindArg::Matters => ImportKind::Matters,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LangArg {
    Zh,
    En,
}

impl From<LangArg> for Lang {
    fn from(l: LangArg) -> Lang {
        match l {
            LangArg::Zh => Lang::Zh,
            LangArg::En => Lang::En,
        }
    }
}

/// `jobmesh import postings|workers|matters FILE --api URL [--token-file F] [--dry-run]`
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// What the file holds.
    #[arg(value_enum)]
    pub kind: KindArg,
    /// A .csv (UTF-8 or GB18030) or .xlsx file; headers in Chinese or
    /// English (see the README's column mapping).
    #[arg(required_unless_present = "template")]
    pub file: Option<PathBuf>,
    /// The office's API, e.g. http://127.0.0.1:7480.
    #[arg(long, value_name = "URL", required_unless_present = "template")]
    pub api: Option<String>,
    /// A file holding the API's bearer token.
    #[arg(long, value_name = "F")]
    pub token_file: Option<PathBuf>,
    /// Check every row (here and at the node) without writing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Write nothing unless every row is good.
    #[arg(long)]
    pub all_or_nothing: bool,
    /// No progress output.
    #[arg(long)]
    pub quiet: bool,
    /// Write a template for KIND with headers in this language instead of
    /// importing (to FILE, or jobmesh-KIND-LANG.csv).
    #[arg(long, value_enum, value_name = "LANG")]
    pub template: Option<LangArg>,
}

/// Exit status when some rows were bad (good rows went in unless
/// `--all-or-nothing`).
pub const EXIT_BAD_ROWS: u8 = 2;

/// Run `jobmesh import`; returns the process exit status.
pub fn import(args: ImportArgs) -> anyhow::Result<u8> {
    let kind = ImportKind::from(args.kind);
    if let Some(lang) = args.template {
        let path = client::write_template(kind, lang.into(), args.file.as_deref())?;
        println!("{}", path.display());
        return Ok(0);
    }
    let (Some(file), Some(base)) = (args.file, args.api) else { bail!("FILE and --api are required") };
    let api = Api::new(&base, args.token_file.as_deref())?;
    let o =
        ImportOptions { kind, file, dry_run: args.dry_run, all_or_nothing: args.all_or_nothing, progress: !args.quiet };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let out = rt.block_on(client::import(&api, &o))?;
    println!("{}", client::summary_text(&o, &out));
    Ok(if out.bad > 0 { EXIT_BAD_ROWS } else { 0 })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportWhat {
    /// Figures per office of a subtree (`/v1/summary.csv|xlsx`).
    Summary,
    /// The postings held at the office (`/v1/postings.csv|xlsx`).
    Postings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    Csv,
    Xlsx,
}

/// `jobmesh export summary|postings --api URL [--format xlsx] [--out F]`
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[arg(value_enum)]
    pub what: ExportWhat,
    /// The office's API, e.g. http://127.0.0.1:7480.
    #[arg(long, value_name = "URL")]
    pub api: String,
    #[arg(long, value_name = "F")]
    pub token_file: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = FormatArg::Xlsx)]
    pub format: FormatArg,
    /// Header language.
    #[arg(long, value_enum, default_value_t = LangArg::Zh)]
    pub lang: LangArg,
    /// Where to write (default: summary.xlsx, postings.csv, ...).
    #[arg(long, short, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// More query parameters: node=, from=, to= for the summary; audience=,
    /// category=, work_type=, open=, origin= for postings.
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
}

/// Run `jobmesh export`.
pub fn export(args: ExportArgs) -> anyhow::Result<()> {
    let what = match args.what {
        ExportWhat::Summary => "summary",
        ExportWhat::Postings => "postings",
    };
    let ext = match args.format {
        FormatArg::Csv => "csv",
        FormatArg::Xlsx => "xlsx",
    };
    let mut query = vec![format!("lang={}", if args.lang == LangArg::Zh { "zh" } else { "en" })];
    for p in &args.params {
        let Some((k, v)) = p.split_once('=') else { bail!("--param {p:?} is not KEY=VALUE") };
        query.push(format!("{}={}", encode(k), encode(v)));
    }
    let path = format!("/v1/{what}.{ext}?{}", query.join("&"));
    let out = args.out.unwrap_or_else(|| PathBuf::from(format!("{what}.{ext}")));
    let api = Api::new(&args.api, args.token_file.as_deref())?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the runtime")?;
    let n = rt.block_on(client::download(&api, &path, &out))?;
    println!("{} ({n} bytes)", out.display());
    Ok(())
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
