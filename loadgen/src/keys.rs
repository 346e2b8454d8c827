//! Which key each request touches and what value a SET carries. Everything is seeded, so a
//! run can be replayed.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KeyDist {
    Uniform,
    /// Zipf with exponent `s` over the key space: a few keys get most requests.
    Zipf(f64),
    Sequential,
}

impl std::str::FromStr for KeyDist {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "uniform" => Ok(KeyDist::Uniform),
            "sequential" => Ok(KeyDist::Sequential),
            z if z.starts_with("zipf:") => match z[5..].parse::<f64>() {
                Ok(e) if e > 0.0 && e.is_finite() => Ok(KeyDist::Zipf(e)),
                _ => Err(format!("bad zipf exponent in {z:?}: want e.g. zipf:0.99")),
            },
            other => Err(format!(
                "unknown key distribution {other:?}: uniform, zipf:S or sequential"
            )),
        }
    }
}

/// Value sizes: fixed or uniform in a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValueSize {
    pub min: usize,
    pub max: usize,
}

impl std::str::FromStr for ValueSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("bad value size {s:?}: want N or MIN-MAX bytes");
        let (min, max) = match s.split_once('-') {
            Some((a, b)) => (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?),
            None => {
                let n = s.parse().map_err(|_| bad())?;
                (n, n)
            }
        };
        if min > max || max > 512 << 20 {
            return Err(bad());
        }
        Ok(ValueSize { min, max })
    }
}

const POOL: usize = 1 << 20;
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// One connection's source of keys and values.
pub struct KeyGen {
    rng: SmallRng,
    dist: KeyDist,
    zipf: Option<Zipf<f64>>,
    keys: u64,
    next: u64,
    values: ValueSize,
    /// Random letters and digits that values are cut from (`redis-benchmark -d` sends one
    /// repeated byte, which compresses unrealistically well).
    pool: Vec<u8>,
}

impl KeyGen {
    pub fn new(seed: u64, dist: KeyDist, keys: u64, values: ValueSize) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let pool = (0..POOL.max(values.max + 1))
            .map(|_| ALNUM[rng.gen_range(0..ALNUM.len())])
            .collect();
        let zipf = match dist {
            KeyDist::Zipf(s) => Some(Zipf::new(keys.max(1), s).expect("validated exponent")),
            _ => None,
        };
        let next = rng.gen_range(0..keys.max(1));
        KeyGen {
            rng,
            dist,
            zipf,
            keys: keys.max(1),
            next,
            values,
            pool,
        }
    }

    /// The next key number in `0..keys`.
    pub fn key(&mut self) -> u64 {
        match self.dist {
            KeyDist::Uniform => self.rng.gen_range(0..self.keys),
            KeyDist::Sequential => {
                self.next = (self.next + 1) % self.keys;
                self.next
            }
            KeyDist::Zipf(_) => {
                let z = self.zipf.as_ref().expect("zipf set").sample(&mut self.rng) as u64;
                z.saturating_sub(1).min(self.keys - 1)
            }
        }
    }

    pub fn value(&mut self) -> &[u8] {
        let len = self.rng.gen_range(self.values.min..=self.values.max);
        let at = self.rng.gen_range(0..=self.pool.len() - len);
        &self.pool[at..at + len]
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.rng.gen_bool(p.clamp(0.0, 1.0))
    }
}

/// `key:000000012345`, as bytes into `out`.
pub fn key_name(n: u64, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(b"key:");
    let mut digits = [b'0'; 12];
    let mut v = n;
    for d in digits.iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
    if v > 0 {
        // Past twelve digits: write them all.
        out.extend_from_slice(n.to_string().as_bytes());
    } else {
        out.extend_from_slice(&digits);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing() {
        assert_eq!("zipf:0.99".parse::<KeyDist>().unwrap(), KeyDist::Zipf(0.99));
        assert!("zipf:-1".parse::<KeyDist>().is_err());
        assert_eq!(
            "100".parse::<ValueSize>().unwrap(),
            ValueSize { min: 100, max: 100 }
        );
        assert_eq!(
            "10-20".parse::<ValueSize>().unwrap(),
            ValueSize { min: 10, max: 20 }
        );
        assert!("20-10".parse::<ValueSize>().is_err());
    }

    #[test]
    fn seeded_runs_repeat() {
        let v = ValueSize { min: 5, max: 50 };
        let mut a = KeyGen::new(7, KeyDist::Uniform, 1000, v);
        let mut b = KeyGen::new(7, KeyDist::Uniform, 1000, v);
        for _ in 0..100 {
            assert_eq!(a.key(), b.key());
            assert_eq!(a.value().to_vec(), b.value().to_vec());
        }
    }

    #[test]
    fn zipf_is_skewed_and_uniform_is_not() {
        let v = ValueSize { min: 1, max: 1 };
        let share_of_top_1pct = |dist| {
            let mut g = KeyGen::new(3, dist, 10_000, v);
            let n = 200_000;
            let hot = (0..n).filter(|_| g.key() < 100).count();
            hot as f64 / n as f64
        };
        let zipf = share_of_top_1pct(KeyDist::Zipf(0.99));
        let uniform = share_of_top_1pct(KeyDist::Uniform);
        // Measured: zipf(0.99) over 10,000 keys sends about half the requests to the top 1%.
        assert!(zipf > 0.4, "zipf top-1% share {zipf}");
        assert!(
            (0.007..0.013).contains(&uniform),
            "uniform top-1% share {uniform}"
        );
    }

    #[test]
    fn sequential_walks_the_key_space() {
        let mut g = KeyGen::new(1, KeyDist::Sequential, 5, ValueSize { min: 1, max: 1 });
        let first = g.key();
        let seq: Vec<u64> = (0..5).map(|_| g.key()).collect();
        assert_eq!(seq[4], first);
        assert_eq!(
            seq.iter().collect::<std::collections::HashSet<_>>().len(),
            5
        );
    }

    #[test]
    fn key_names_are_zero_padded() {
        let mut k = Vec::new();
        key_name(12345, &mut k);
        assert_eq!(k, b"key:000000012345");
        key_name(1_000_000_000_000, &mut k);
        assert_eq!(k, b"key:1000000000000");
    }

    #[test]
    fn values_have_the_asked_sizes() {
        let mut g = KeyGen::new(2, KeyDist::Uniform, 10, ValueSize { min: 3, max: 9 });
        for _ in 0..1000 {
            let n = g.value().len();
            assert!((3..=9).contains(&n));
        }
    }
}
