//! The PITR oracle: writers record when each write was sent and acknowledged; a restore to
//! time T must hold, for every key, the last write acknowledged before T or a write that was
//! in flight at T (sent at or before T, acknowledged after), and no key nothing allows.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

/// One write: `value` None is a delete.
#[derive(Debug, Clone)]
pub struct Write {
    pub value: Option<Vec<u8>>,
    pub sent_us: u64,
    pub acked_us: u64,
}

pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// Writes per key, in the order each key's writer issued them.
#[derive(Debug, Default, Clone)]
pub struct History {
    pub keys: HashMap<Vec<u8>, Vec<Write>>,
}

impl History {
    pub fn record(&mut self, key: &[u8], w: Write) {
        self.keys.entry(key.to_vec()).or_default().push(w);
    }

    pub fn merge(&mut self, other: History) {
        for (k, ws) in other.keys {
            self.keys.entry(k).or_default().extend(ws);
        }
    }

    /// The values a key may have after a restore to `t` (None: absent).
    pub fn allowed(&self, key: &[u8], t: u64) -> Vec<Option<Vec<u8>>> {
        let Some(ws) = self.keys.get(key) else {
            return vec![None];
        };
        let mut allowed = Vec::new();
        // The last write acknowledged before t (or nothing, if none was).
        let last_acked = ws.iter().rev().find(|w| w.acked_us < t);
        allowed.push(last_acked.and_then(|w| w.value.clone()));
        for w in ws.iter().filter(|w| w.sent_us <= t && w.acked_us >= t) {
            allowed.push(w.value.clone());
        }
        allowed
    }

    /// Checks a restored table against the history. `read(key)` reads the restored value.
    /// Returns the mismatches, described.
    pub fn check(&self, t: u64, mut read: impl FnMut(&[u8]) -> Option<Vec<u8>>) -> Vec<String> {
        let mut bad = Vec::new();
        for key in self.keys.keys() {
            let got = read(key);
            let allowed = self.allowed(key, t);
            if !allowed.contains(&got) {
                bad.push(format!(
                    "{} = {:?} at T={t}; allowed {:?}; writes {:?}",
                    String::from_utf8_lossy(key),
                    got.as_deref().map(String::from_utf8_lossy),
                    allowed
                        .iter()
                        .map(|a| a.as_deref().map(String::from_utf8_lossy))
                        .collect::<Vec<_>>(),
                    self.keys[key]
                        .iter()
                        .map(|w| (
                            w.value.as_deref().map(String::from_utf8_lossy),
                            w.sent_us,
                            w.acked_us
                        ))
                        .collect::<Vec<_>>()
                ));
            }
        }
        bad
    }

    /// How many keys must or may exist after a restore to t: (at least, at most).
    pub fn count_bounds(&self, t: u64) -> (usize, usize) {
        let mut lo = 0;
        let mut hi = 0;
        for k in self.keys.keys() {
            let a = self.allowed(k, t);
            if a.iter().all(|v| v.is_some()) {
                lo += 1;
            }
            if a.iter().any(|v| v.is_some()) {
                hi += 1;
            }
        }
        (lo, hi)
    }
}
