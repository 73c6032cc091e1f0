//! The UDP answer cache: encoded answers keyed by the query's bytes after its
//! ID and by the rotation step, valid for one live set. A hit costs a copy and
//! an ID patch instead of a parse and an encode.
//!
//! Why the key is the raw query: two queries with the same bytes after the ID
//! get the same answer, whatever their options; anything that differs (EDNS
//! cookies, flags, case) simply misses. Why per worker: no lock on the hot path.

use std::collections::HashMap;
use std::sync::Arc;

use hickory_proto::op::Message;

use crate::answer::{self, respond, Live, Transport, Zone};

/// Most cached UDP answers per worker; when full, the cache is emptied.
pub(crate) const CACHE_MAX: usize = 4096;

/// One worker's cache.
pub(crate) struct AnswerCache {
    live: Arc<Vec<Live>>,
    map: HashMap<Vec<u8>, Vec<u8>>,
    key: Vec<u8>,
    /// Answers served from the cache (for tests and debugging).
    pub(crate) hits: u64,
}

impl AnswerCache {
    /// An empty cache for the live set `live`.
    pub(crate) fn new(live: Arc<Vec<Live>>) -> AnswerCache {
        AnswerCache { live, map: HashMap::new(), key: Vec::new(), hits: 0 }
    }

    /// Entries held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// The answer to `bytes` for the live set `live` at rotation `counter`
    /// (taken modulo the set's size, so a step repeats and can be cached).
    /// A new live set empties the cache.
    pub(crate) fn answer(&mut self, zone: &Zone, live: Arc<Vec<Live>>, counter: u64, bytes: &[u8]) -> Option<Vec<u8>> {
        if !Arc::ptr_eq(&live, &self.live) || self.map.len() >= CACHE_MAX {
            self.map.clear();
            self.live = live;
        }
        if bytes.len() < 12 {
            return answer::malformed(bytes);
        }
        let step = counter % self.live.len().max(1) as u64;
        self.key.clear();
        self.key.extend_from_slice(&bytes[2..]);
        self.key.extend_from_slice(&step.to_be_bytes());
        if let Some(hit) = self.map.get(&self.key[..]) {
            self.hits += 1;
            let mut out = hit.clone();
            out[..2].copy_from_slice(&bytes[..2]);
            return Some(out);
        }
        let q = match Message::from_vec(bytes) {
            Ok(q) => q,
            Err(_) => return answer::malformed(bytes),
        };
        let out = respond(&q, zone, &self.live, step, Transport::Udp)?;
        if out.len() >= 2 {
            self.map.insert(self.key.clone(), out.clone());
        }
        Some(out)
    }
}
