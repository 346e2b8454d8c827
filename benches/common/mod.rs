//! Data for the log benches: 100-byte values of three kinds, seeded.

#![allow(dead_code)]

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rewind::log::Record;

pub const VALUE_LEN: usize = 100;

#[derive(Clone, Copy, Debug)]
pub enum Values {
    /// The same byte repeated, as `redis-benchmark -d` sends.
    Constant,
    /// Random letters and digits: text-like, partly compressible.
    Alnum,
    /// Uniformly random bytes: incompressible.
    Random,
}

impl Values {
    pub const ALL: [Values; 3] = [Values::Constant, Values::Alnum, Values::Random];

    pub fn name(self) -> &'static str {
        match self {
            Values::Constant => "constant",
            Values::Alnum => "alnum",
            Values::Random => "random",
        }
    }
}

pub fn records(n: usize, kind: Values, seed: u64) -> Vec<Record> {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let key = format!("key:{:012}", rng.gen_range(0..1_000_000u64)).into_bytes();
            let value: Vec<u8> = match kind {
                Values::Constant => vec![b'x'; VALUE_LEN],
                Values::Alnum => (0..VALUE_LEN)
                    .map(|_| ALNUM[rng.gen_range(0..ALNUM.len())])
                    .collect(),
                Values::Random => (0..VALUE_LEN).map(|_| rng.gen()).collect(),
            };
            Record::put(key, value)
        })
        .collect()
}

/// Logical bytes of records: keys plus values.
pub fn logical_bytes(records: &[Record]) -> u64 {
    records
        .iter()
        .map(|r| match r {
            Record::Put { key, value } => (key.len() + value.len()) as u64,
            Record::Delete { key } => key.len() as u64,
        })
        .sum()
}
