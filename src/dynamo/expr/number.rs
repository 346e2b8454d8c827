//! DynamoDB numbers compared and added exactly: up to 38 significant digits, magnitudes from
//! 1E-130 to below 1E+126, as DynamoDB stores them (no floating point anywhere).

use std::cmp::Ordering;

use crate::dynamo::attr::parse_number;
use crate::dynamo::error::DynamoError;

/// `±digits × 10^exp`, digits without leading or trailing zeros; zero has no digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dec {
    neg: bool,
    digits: Vec<u8>,
    exp: i64,
}

impl Dec {
    pub fn parse(s: &str) -> Result<Dec, DynamoError> {
        let (neg, digits, exp) = parse_number(s)?;
        Ok(Dec {
            neg,
            digits: digits.bytes().map(|b| b - b'0').collect(),
            exp,
        })
    }

    fn is_zero(&self) -> bool {
        self.digits.is_empty()
    }

    /// Exponent of the leading digit.
    fn magnitude(&self) -> i64 {
        self.exp + self.digits.len() as i64 - 1
    }

    fn cmp_abs(&self, other: &Dec) -> Ordering {
        match (self.is_zero(), other.is_zero()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            _ => {}
        }
        self.magnitude().cmp(&other.magnitude()).then_with(|| {
            // Same leading exponent: compare digit by digit, missing digits are zeros.
            let n = self.digits.len().max(other.digits.len());
            (0..n)
                .map(|i| {
                    let a = self.digits.get(i).copied().unwrap_or(0);
                    let b = other.digits.get(i).copied().unwrap_or(0);
                    a.cmp(&b)
                })
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal)
        })
    }

    pub fn cmp(&self, other: &Dec) -> Ordering {
        let sign = |d: &Dec| {
            if d.is_zero() {
                0
            } else if d.neg {
                -1
            } else {
                1
            }
        };
        match sign(self).cmp(&sign(other)) {
            Ordering::Equal if sign(self) < 0 => other.cmp_abs(self),
            Ordering::Equal => self.cmp_abs(other),
            o => o,
        }
    }

    /// Digits scaled to exponent `e` (at most `self.exp`), least significant first.
    fn scaled(&self, e: i64) -> Vec<u8> {
        let mut v: Vec<u8> = std::iter::repeat_n(0, (self.exp - e) as usize).collect();
        v.extend(self.digits.iter().rev());
        v
    }

    fn normalized(neg: bool, mut le: Vec<u8>, mut exp: i64) -> Dec {
        while le.last() == Some(&0) {
            le.pop();
        }
        let lead = le.iter().take_while(|&&d| d == 0).count();
        le.drain(..lead);
        exp += lead as i64;
        le.reverse();
        if le.is_empty() {
            return Dec {
                neg: false,
                digits: le,
                exp: 0,
            };
        }
        Dec {
            neg,
            digits: le,
            exp,
        }
    }

    /// `self + other`, exactly; an error past 38 digits or DynamoDB's range.
    pub fn add(&self, other: &Dec) -> Result<Dec, DynamoError> {
        if self.is_zero() {
            return Ok(other.clone());
        }
        if other.is_zero() {
            return Ok(self.clone());
        }
        // Aligning exponents too far apart would spell out hundreds of digits: the result
        // would not fit 38 anyway.
        if (self.exp - other.exp).abs() > 300 {
            return Err(overflow());
        }
        let e = self.exp.min(other.exp);
        let (a, b) = (self.scaled(e), other.scaled(e));
        let n = a.len().max(b.len());
        let at = |v: &Vec<u8>, i: usize| v.get(i).copied().unwrap_or(0) as i32;
        let out = if self.neg == other.neg {
            let mut out = Vec::with_capacity(n + 1);
            let mut carry = 0;
            for i in 0..n {
                let s = at(&a, i) + at(&b, i) + carry;
                out.push((s % 10) as u8);
                carry = s / 10;
            }
            if carry > 0 {
                out.push(carry as u8);
            }
            Dec::normalized(self.neg, out, e)
        } else {
            // Subtract the smaller magnitude from the larger; the sign is the larger's.
            let (big, small, neg) = match self.cmp_abs(other) {
                Ordering::Less => (&b, &a, other.neg),
                _ => (&a, &b, self.neg),
            };
            let mut out = Vec::with_capacity(n);
            let mut borrow = 0;
            for i in 0..n {
                let mut d = at(big, i) - at(small, i) - borrow;
                borrow = 0;
                if d < 0 {
                    d += 10;
                    borrow = 1;
                }
                out.push(d as u8);
            }
            Dec::normalized(neg, out, e)
        };
        if out.digits.len() > 38 || (!out.is_zero() && !(-130..=125).contains(&out.magnitude())) {
            return Err(overflow());
        }
        Ok(out)
    }

    pub fn negated(&self) -> Dec {
        Dec {
            neg: !self.neg && !self.is_zero(),
            ..self.clone()
        }
    }

    /// Plain decimal text (`-1.25`, `300`), or with an exponent when that would be long.
    pub fn to_text(&self) -> String {
        if self.is_zero() {
            return "0".into();
        }
        let sign = if self.neg { "-" } else { "" };
        let ds: String = self.digits.iter().map(|d| (b'0' + d) as char).collect();
        let len = ds.len() as i64;
        if self.exp >= 0 && self.exp + len <= 40 {
            return format!("{sign}{ds}{}", "0".repeat(self.exp as usize));
        }
        if self.exp < 0 && -self.exp < len {
            let (int, frac) = ds.split_at((len + self.exp) as usize);
            return format!("{sign}{int}.{frac}");
        }
        if self.exp < 0 && -self.exp - len <= 40 {
            return format!("{sign}0.{}{ds}", "0".repeat((-self.exp - len) as usize));
        }
        format!("{sign}{ds}E{}", self.exp)
    }
}

fn overflow() -> DynamoError {
    DynamoError::Validation(
        "Number overflow. Attempting to store a number with magnitude larger than supported range"
            .into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Dec {
        Dec::parse(s).unwrap()
    }

    #[test]
    fn compare_numerically() {
        let mut v = ["10", "9.5", "-3", "0", "-0.5", "1E2", "99", "-100", "0.001"];
        v.sort_by(|a, b| d(a).cmp(&d(b)));
        assert_eq!(
            v,
            ["-100", "-3", "-0.5", "0", "0.001", "9.5", "10", "99", "1E2"]
        );
        assert_eq!(d("1.0").cmp(&d("1")), Ordering::Equal);
    }

    #[test]
    fn add_exactly() {
        for (a, b, sum) in [
            ("1", "2", "3"),
            ("0.1", "0.2", "0.3"),
            ("-5", "3", "-2"),
            ("5", "-5", "0"),
            ("99", "1", "100"),
            ("1.25", "-0.25", "1"),
            (
                "12345678901234567890123456789012345678",
                "1",
                "12345678901234567890123456789012345679",
            ),
            ("-0.001", "-0.009", "-0.01"),
        ] {
            assert_eq!(d(a).add(&d(b)).unwrap().to_text(), sum, "{a} + {b}");
        }
        assert_eq!(
            d("99999999999999999999999999999999999999")
                .add(&d("1"))
                .unwrap()
                .to_text(),
            "100000000000000000000000000000000000000"
        );
        assert!(d("1234567890123456789012345678901234567.8")
            .add(&d("0.01"))
            .is_err());
        assert!(d("1E125").add(&d("1E-10")).is_err());
        assert_eq!(d("7").add(&d("2").negated()).unwrap().to_text(), "5");
    }
}
