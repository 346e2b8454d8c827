//! Redis-style glob patterns over key bytes, as `KEYS` and `SCAN MATCH` read them: `*` any
//! run of bytes, `?` one byte, `[abc]` `[a-z]` `[^a-z]` one byte of (or not of) a set, and
//! `\x` the byte `x` itself. Matching is case-sensitive and byte-wise.
//!
//! Hand-written rather than taken from a crate: the glob crates match file paths (`/` and
//! leading dots are special there), and Redis's rules are short. Stars are matched by the
//! usual backtracking to the last star, so a pattern costs O(pattern x key) at worst, never
//! exponential time.

/// A compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    tokens: Vec<Token>,
    source: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Byte(u8),
    Any,
    Star,
    /// Inclusive byte ranges, and whether the set is negated.
    Class(Vec<(u8, u8)>, bool),
}

/// The longest pattern accepted.
pub const MAX_PATTERN: usize = 4096;

impl Glob {
    /// Compiles `pattern`. A `[` without its `]` is the class of what follows it (nothing
    /// matches an empty one); a trailing `\` stands for itself.
    pub fn new(pattern: &[u8]) -> Result<Glob, String> {
        if pattern.len() > MAX_PATTERN {
            return Err(format!(
                "pattern of {} bytes, over the limit of {MAX_PATTERN}",
                pattern.len()
            ));
        }
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < pattern.len() {
            let c = pattern[i];
            i += 1;
            let t = match c {
                b'*' => {
                    // Runs of stars match like one.
                    if tokens.last() == Some(&Token::Star) {
                        continue;
                    }
                    Token::Star
                }
                b'?' => Token::Any,
                b'\\' if i < pattern.len() => {
                    i += 1;
                    Token::Byte(pattern[i - 1])
                }
                b'[' => {
                    let negated = pattern.get(i) == Some(&b'^');
                    if negated {
                        i += 1;
                    }
                    let mut ranges = Vec::new();
                    while i < pattern.len() && pattern[i] != b']' {
                        let mut lo = pattern[i];
                        if lo == b'\\' && i + 1 < pattern.len() {
                            i += 1;
                            lo = pattern[i];
                        }
                        if i + 2 < pattern.len() && pattern[i + 1] == b'-' && pattern[i + 2] != b']'
                        {
                            let mut hi = pattern[i + 2];
                            let mut skip = 3;
                            if hi == b'\\' && i + 3 < pattern.len() {
                                hi = pattern[i + 3];
                                skip = 4;
                            }
                            ranges.push((lo.min(hi), lo.max(hi)));
                            i += skip;
                        } else {
                            ranges.push((lo, lo));
                            i += 1;
                        }
                    }
                    i += 1; // the `]`, if there is one
                    Token::Class(ranges, negated)
                }
                c => Token::Byte(c),
            };
            tokens.push(t);
        }
        Ok(Glob {
            tokens,
            source: pattern.to_vec(),
        })
    }

    /// The pattern as given.
    pub fn source(&self) -> &[u8] {
        &self.source
    }

    /// Whether `key` matches.
    pub fn matches(&self, key: &[u8]) -> bool {
        let (mut t, mut k) = (0usize, 0usize);
        // Where to resume after the last star: its token and the key position it took.
        let mut star: Option<(usize, usize)> = None;
        loop {
            if t < self.tokens.len() {
                let step = match &self.tokens[t] {
                    Token::Star => {
                        star = Some((t, k));
                        t += 1;
                        continue;
                    }
                    _ if k >= key.len() => false,
                    Token::Byte(b) => *b == key[k],
                    Token::Any => true,
                    Token::Class(ranges, negated) => {
                        let inside = ranges.iter().any(|&(lo, hi)| lo <= key[k] && key[k] <= hi);
                        inside != *negated
                    }
                };
                if step {
                    t += 1;
                    k += 1;
                    continue;
                }
            } else if k == key.len() {
                return true;
            }
            // Mismatch: let the last star take one more byte, if it can.
            match star {
                Some((st, sk)) if sk < key.len() => {
                    star = Some((st, sk + 1));
                    t = st + 1;
                    k = sk + 1;
                }
                _ => return false,
            }
        }
    }

    /// True for `*`: every key.
    pub fn matches_all(&self) -> bool {
        self.tokens == [Token::Star]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m(p: &str, k: &str) -> bool {
        Glob::new(p.as_bytes()).unwrap().matches(k.as_bytes())
    }

    #[test]
    fn redis_cases() {
        assert!(m("*", ""));
        assert!(m("*", "anything"));
        assert!(m("user:*", "user:42"));
        assert!(!m("user:*", "usr:42"));
        assert!(m("h?llo", "hello"));
        assert!(m("h?llo", "hallo"));
        assert!(!m("h?llo", "hllo"));
        assert!(m("h*llo", "hllo"));
        assert!(m("h*llo", "heeeello"));
        assert!(m("h[ae]llo", "hello"));
        assert!(!m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo"));
        assert!(
            m("h[b-a]llo", "hallo"),
            "ranges given backwards still match"
        );
        assert!(!m("h[a-b]llo", "hcllo"));
        assert!(m("a\\*b", "a*b"));
        assert!(!m("a\\*b", "axb"));
        assert!(m("[\\]]", "]"));
        assert!(m("*a*b*c*", "xxaxxbxxcxx"));
        assert!(!m("*a*b*c*", "xxaxxcxxbxx"));
        assert!(!m("ab[", "abx"), "an open, empty class matches nothing");
        assert!(m("ab[xy", "abx"), "an open class takes what follows");
        assert!(m("tail\\", "tail\\"));
        assert!(!m("", "x"));
        assert!(m("", ""));
    }

    #[test]
    fn long_patterns_are_refused() {
        assert!(Glob::new(&vec![b'a'; MAX_PATTERN + 1]).is_err());
    }

    /// A plain recursive matcher of the same rules, for plain bytes, `*` and `?`.
    fn reference(p: &[u8], k: &[u8]) -> bool {
        match (p.first(), k.first()) {
            (None, None) => true,
            (None, Some(_)) => false,
            (Some(b'*'), _) => reference(&p[1..], k) || (!k.is_empty() && reference(p, &k[1..])),
            (Some(b'?'), Some(_)) => reference(&p[1..], &k[1..]),
            (Some(c), Some(d)) if c == d => reference(&p[1..], &k[1..]),
            _ => false,
        }
    }

    proptest! {
        #[test]
        fn agrees_with_a_recursive_matcher(
            p in proptest::collection::vec(prop_oneof![Just(b'*'), Just(b'?'), Just(b'a'), Just(b'b')], 0..8),
            k in proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), Just(b'c')], 0..10),
        ) {
            prop_assert_eq!(Glob::new(&p).unwrap().matches(&k), reference(&p, &k));
        }
    }
}
