//! Paging of list endpoints (**contract**): pages are ordered by record id,
//! `limit` is 1..=5,000 (default 500), `after=CURSOR` continues after the
//! record id `CURSOR`, and `next` is the cursor of the following page or
//! `null` once the kind is exhausted. Because a page starts strictly after
//! the previous page's last id, an unchanged record never shows on two pages.
//!
//! With filters, a page keeps scanning until it is full or the kind is
//! exhausted, but reads at most [`MAX_SCAN`] records per request: a page cut
//! short by that bound returns the last id it looked at as `next`, so the
//! client simply asks again (it may get fewer than `limit` items, or none,
//! with a non-null `next`).

use jobmesh_protocol::kv::{Kv, StoreError};
use jobmesh_protocol::store::{self, StoredRecord};
use jobmesh_protocol::Kind;

use super::error::{ApiError, Code};
use super::input::{plain_uint, QueryParams, MAX_ID_INPUT};

pub const DEFAULT_LIMIT: usize = 500;
pub const MAX_LIMIT: usize = 5_000;
/// Most records one request reads while filtering.
pub const MAX_SCAN: usize = 100_000;
/// Records read from the store per step.
const CHUNK: usize = 1_024;

/// `limit` and `after` of a list request.
#[derive(Debug, Clone)]
pub struct PageRequest {
    pub limit: usize,
    pub after: Option<String>,
}

impl PageRequest {
    pub fn from_query(q: &QueryParams) -> Result<PageRequest, ApiError> {
        // Plain digits only: `+5`, `-1` and `007` are refused rather than
        // read as 5, an error or 7, so a client's bug shows.
        let limit = match q.get("limit") {
            None => DEFAULT_LIMIT,
            Some(s) => match plain_uint(s) {
                Some(n) if (1..=MAX_LIMIT as u64).contains(&n) => n as usize,
                _ => {
                    let shown: String = s.chars().take(64).collect();
                    return Err(ApiError::coded(
                        "limit",
                        Code::InvalidLimit,
                        format!("{shown:?} is not an integer 1..={MAX_LIMIT} in plain digits"),
                    )
                    .param("min", 1)
                    .param("max", MAX_LIMIT));
                }
            },
        };
        let after = match q.get("after") {
            None | Some("") => None,
            Some(s) if s.len() > MAX_ID_INPUT => {
                return Err(ApiError::coded("after", Code::InvalidId, format!("longer than {MAX_ID_INPUT} bytes")))
            }
            Some(s) => {
                jobmesh_protocol::RecordId::parse(s).map_err(|e| ApiError::coded("after", Code::InvalidId, e))?;
                Some(s.to_owned())
            }
        };
        Ok(PageRequest { limit, after })
    }
}

/// One page of items and the cursor of the next.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// Read one page of records of `kind` whose id starts with `id_prefix`,
/// keeping those `keep` maps to `Some`.
pub fn scan_page<K, T>(
    kv: &K,
    kind: Kind,
    id_prefix: &str,
    req: &PageRequest,
    mut keep: impl FnMut(&StoredRecord) -> Result<Option<T>, StoreError>,
) -> Result<Page<T>, StoreError>
where
    K: Kv + ?Sized,
{
    let mut items: Vec<(String, T)> = Vec::new();
    let mut cursor = req.after.clone();
    let mut scanned = 0usize;
    loop {
        let chunk = CHUNK.min(req.limit + 1 - items.len()).max(64);
        let batch = store::list_records(kv, kind, id_prefix, cursor.as_deref(), chunk)?;
        let exhausted = batch.len() < chunk;
        for rec in batch {
            scanned += 1;
            let id = rec.record.id.as_str().to_owned();
            if let Some(item) = keep(&rec)? {
                items.push((id.clone(), item));
                if items.len() > req.limit {
                    items.pop();
                    let next = items.last().map(|(id, _)| id.clone());
                    return Ok(Page { items: items.into_iter().map(|(_, t)| t).collect(), next });
                }
            }
            cursor = Some(id);
        }
        if exhausted {
            return Ok(Page { items: items.into_iter().map(|(_, t)| t).collect(), next: None });
        }
        if scanned >= MAX_SCAN {
            return Ok(Page { items: items.into_iter().map(|(_, t)| t).collect(), next: cursor });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jobmesh_protocol::kv::MemKv;
    use jobmesh_protocol::record::{Body, Worker};
    use jobmesh_protocol::store::Applier;
    use jobmesh_protocol::{NodeId, Record, RecordId};

    fn kv_with_workers(n: u64) -> MemKv {
        let mut kv = MemKv::new();
        let me = NodeId::parse("gz").unwrap();
        let finished = {
            let mut a = Applier::new(&kv, 0);
            for i in 1..=n {
                a.merge(Record {
                    id: RecordId::numbered(&me, Kind::Worker, i),
                    origin: me.clone(),
                    version: 1,
                    body: Body::Worker(Worker {
                        name: format!("w{i}"),
                        key_group: jobmesh_protocol::record::KeyGroup::Other,
                        phone: None,
                        skills: vec![],
                        wanted_work_type: None,
                        registered_at: 0,
                    }),
                })
                .unwrap();
            }
            a.finish()
        };
        jobmesh_protocol::kv::Kv::write(&mut kv, finished.batch).unwrap();
        kv
    }

    #[test]
    fn pages_cover_everything_once() {
        let kv = kv_with_workers(2_500);
        for (limit, filter_mod) in [(1, 1), (7, 1), (500, 1), (5_000, 1), (3, 10), (1_000, 3)] {
            let mut seen = Vec::new();
            let mut req = PageRequest { limit, after: None };
            let mut pages = 0;
            loop {
                let page = scan_page(&kv, Kind::Worker, "", &req, |r| {
                    let n: u64 = r.record.id.as_str().rsplit('w').next().unwrap().parse().unwrap();
                    Ok((n % filter_mod == 0).then(|| r.record.id.to_string()))
                })
                .unwrap();
                assert!(page.items.len() <= limit);
                seen.extend(page.items);
                pages += 1;
                match page.next {
                    Some(n) => req.after = Some(n),
                    None => break,
                }
                assert!(pages < 10_000);
            }
            let mut sorted = seen.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), seen.len(), "no record twice (limit {limit})");
            assert_eq!(seen.len() as u64, 2_500 / filter_mod, "every record once (limit {limit})");
        }
    }
}
