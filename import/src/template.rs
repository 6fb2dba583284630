//! Templates: a header row in Chinese or English and one example row, as a
//! UTF-8 CSV with a BOM (Excel then shows the Chinese headers). The same
//! bytes are served by the node at `/v1/import/{kind}/template.csv?lang=`.

use crate::columns::ImportKind;

/// Header languages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

impl Lang {
    pub fn parse(s: &str) -> Option<Lang> {
        match s {
            "zh" | "zh-CN" | "zh-cn" | "cn" => Some(Lang::Zh),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// From an `Accept-Language` header: Chinese when it comes first.
    pub fn from_accept_language(h: &str) -> Lang {
        match h.split(',').next().map(|s| s.trim().to_ascii_lowercase()) {
            Some(s) if s.starts_with("zh") => Lang::Zh,
            _ => Lang::En,
        }
    }
}

/// The template's bytes.
pub fn template_csv(kind: ImportKind, lang: Lang) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(b"\xEF\xBB\xBF".to_vec());
    let cols = kind.columns();
    let head: Vec<&str> = cols.iter().map(|c| if lang == Lang::Zh { c.zh } else { c.en }).collect();
    let example: Vec<&str> = cols.iter().map(|c| if lang == Lang::Zh { c.example_zh } else { c.example_en }).collect();
    // Writing to a Vec cannot fail.
    let _ = w.write_record(&head);
    let _ = w.write_record(&example);
    w.into_inner().unwrap_or_default()
}

/// The template's file name, e.g. `jobmesh-postings-zh.csv`.
pub fn template_name(kind: ImportKind, lang: Lang) -> String {
    format!("jobmesh-{}-{}.csv", kind.as_str(), if lang == Lang::Zh { "zh" } else { "en" })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read;
    use crate::rows::{check_raw, Mapping};

    #[test]
    fn every_template_imports_its_own_example() {
        for kind in ImportKind::ALL {
            for lang in [Lang::Zh, Lang::En] {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join(template_name(kind, lang));
                std::fs::write(&path, template_csv(kind, lang)).unwrap();
                let mut sheet = read::open(&path).unwrap();
                let m = Mapping::new(kind, &sheet.headers).unwrap();
                let row = sheet.next().unwrap().unwrap();
                assert_eq!(row.line, 2);
                let good = check_raw(&m, &row, 1_796_097_600_000)
                    .unwrap()
                    .unwrap_or_else(|p| panic!("{kind:?} {lang:?}: {p:?}"));
                assert!(!good.external_ref.starts_with("row-"), "the example carries a reference");
                assert!(sheet.next().is_none());
            }
        }
    }
}
