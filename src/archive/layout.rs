//! Object names in the archive (layout version 1). Listing a prefix gives the restore plan:
//! every name carries what the plan needs (table, shard, sequences, commit times).
//!
//! ```text
//! <prefix>/rewind-v1/lease                                    who archives here (fencing)
//! <prefix>/rewind-v1/gen/<gen>/catalog/<unix_us>.cat           the catalog, on every change
//! <prefix>/rewind-v1/gen/<gen>/t<id>/meta/<unix_us>.meta        table.meta, on every change
//! <prefix>/rewind-v1/gen/<gen>/t<id>/s<k>/log/<segment_seq>/<first_seq>-<last_seq>-<first_us>-<last_us>.part
//! <prefix>/rewind-v1/gen/<gen>/t<id>/s<k>/log/<segment_seq>/index.idx
//! <prefix>/rewind-v1/gen/<gen>/t<id>/s<k>/ckp/<end_seq>-<start_seq>-<end_us>.ckp
//! ```
//!
//! Sequences and times are zero-padded to 16 decimal digits so names sort in number order
//! (and stay short: some S3 servers keep a key in one file name); table ids and shards are
//! plain decimal. `<gen>` is `<started_unix_us>-<8 random hex digits>`.

/// The first path component of every object this layout writes.
pub const ROOT: &str = "rewind-v1";

/// A parsed part name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PartName {
    pub first_seq: u64,
    pub last_seq: u64,
    pub first_us: u64,
    pub last_us: u64,
}

/// A parsed checkpoint name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct CkpName {
    pub end_seq: u64,
    pub start_seq: u64,
    pub end_us: u64,
}

/// Names under one archive prefix (`prefix` may be empty).
#[derive(Debug, Clone)]
pub struct Layout {
    prefix: String,
}

impl Layout {
    pub fn new(prefix: &str) -> Self {
        let p = prefix.trim_matches('/');
        Layout {
            prefix: if p.is_empty() {
                ROOT.to_string()
            } else {
                format!("{p}/{ROOT}")
            },
        }
    }

    pub fn lease(&self) -> String {
        format!("{}/lease", self.prefix)
    }

    /// Where every generation lives: list it to find them.
    pub fn generations(&self) -> String {
        format!("{}/gen", self.prefix)
    }

    pub fn generation(&self, gen: &str) -> String {
        format!("{}/gen/{gen}", self.prefix)
    }

    pub fn catalog(&self, gen: &str, at_us: u64) -> String {
        format!("{}/catalog/{at_us:016}.cat", self.generation(gen))
    }

    pub fn table(&self, gen: &str, id: u64) -> String {
        format!("{}/t{id}", self.generation(gen))
    }

    pub fn meta(&self, gen: &str, id: u64, at_us: u64) -> String {
        format!("{}/meta/{at_us:016}.meta", self.table(gen, id))
    }

    pub fn shard(&self, gen: &str, id: u64, shard: u32) -> String {
        format!("{}/s{shard}", self.table(gen, id))
    }

    pub fn log(&self, gen: &str, id: u64, shard: u32) -> String {
        format!("{}/log", self.shard(gen, id, shard))
    }

    pub fn part(&self, gen: &str, id: u64, shard: u32, segment_seq: u64, p: &PartName) -> String {
        format!(
            "{}/{segment_seq:016}/{:016}-{:016}-{:016}-{:016}.part",
            self.log(gen, id, shard),
            p.first_seq,
            p.last_seq,
            p.first_us,
            p.last_us
        )
    }

    pub fn index(&self, gen: &str, id: u64, shard: u32, segment_seq: u64) -> String {
        format!("{}/{segment_seq:016}/index.idx", self.log(gen, id, shard))
    }

    pub fn checkpoints(&self, gen: &str, id: u64, shard: u32) -> String {
        format!("{}/ckp", self.shard(gen, id, shard))
    }

    pub fn checkpoint(&self, gen: &str, id: u64, shard: u32, c: &CkpName) -> String {
        format!(
            "{}/{:016}-{:016}-{:016}.ckp",
            self.checkpoints(gen, id, shard),
            c.end_seq,
            c.start_seq,
            c.end_us
        )
    }

    /// Splits an object name inside a generation into what it is.
    pub fn classify(&self, name: &str) -> Option<(String, Object)> {
        let rest = name.strip_prefix(&format!("{}/gen/", self.prefix))?;
        let (gen, rest) = rest.split_once('/')?;
        Some((gen.to_string(), Object::parse(rest)?))
    }
}

/// An object inside a generation, by what its name says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object {
    Catalog {
        at_us: u64,
    },
    Meta {
        table: u64,
        at_us: u64,
    },
    Part {
        table: u64,
        shard: u32,
        segment_seq: u64,
        name: PartName,
    },
    Index {
        table: u64,
        shard: u32,
        segment_seq: u64,
    },
    Checkpoint {
        table: u64,
        shard: u32,
        name: CkpName,
    },
}

impl Object {
    fn parse(rest: &str) -> Option<Object> {
        let parts: Vec<&str> = rest.split('/').collect();
        match parts.as_slice() {
            ["catalog", f] => Some(Object::Catalog {
                at_us: num(f.strip_suffix(".cat")?)?,
            }),
            [id, "meta", f] => Some(Object::Meta {
                table: table_num(id)?,
                at_us: num(f.strip_suffix(".meta")?)?,
            }),
            [id, shard, "log", seg, f] => {
                let table = table_num(id)?;
                let shard = shard_num(shard)?;
                let segment_seq = num(seg)?;
                if *f == "index.idx" {
                    return Some(Object::Index {
                        table,
                        shard,
                        segment_seq,
                    });
                }
                let n = nums(f.strip_suffix(".part")?)?;
                let [first_seq, last_seq, first_us, last_us] = n.as_slice() else {
                    return None;
                };
                Some(Object::Part {
                    table,
                    shard,
                    segment_seq,
                    name: PartName {
                        first_seq: *first_seq,
                        last_seq: *last_seq,
                        first_us: *first_us,
                        last_us: *last_us,
                    },
                })
            }
            [id, shard, "ckp", f] => {
                let n = nums(f.strip_suffix(".ckp")?)?;
                let [end_seq, start_seq, end_us] = n.as_slice() else {
                    return None;
                };
                Some(Object::Checkpoint {
                    table: table_num(id)?,
                    shard: shard_num(shard)?,
                    name: CkpName {
                        end_seq: *end_seq,
                        start_seq: *start_seq,
                        end_us: *end_us,
                    },
                })
            }
            _ => None,
        }
    }
}

fn num(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn nums(s: &str) -> Option<Vec<u64>> {
    s.split('-').map(num).collect()
}

fn shard_num(s: &str) -> Option<u32> {
    u32::try_from(num(s.strip_prefix('s')?)?).ok()
}

fn table_num(s: &str) -> Option<u64> {
    num(s.strip_prefix('t')?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back() {
        let l = Layout::new("/backups/prod/");
        let g = "0001764000000000-0a1b2c3d";
        let p = PartName {
            first_seq: 5,
            last_seq: 9,
            first_us: 100,
            last_us: 200,
        };
        let name = l.part(g, 3, 1, 1, &p);
        assert!(name.starts_with("backups/prod/rewind-v1/gen/"), "{name}");
        assert_eq!(
            l.classify(&name),
            Some((
                g.to_string(),
                Object::Part {
                    table: 3,
                    shard: 1,
                    segment_seq: 1,
                    name: p
                }
            ))
        );
        let c = CkpName {
            end_seq: 90,
            start_seq: 80,
            end_us: 7,
        };
        assert_eq!(
            l.classify(&l.checkpoint(g, 3, 0, &c)).unwrap().1,
            Object::Checkpoint {
                table: 3,
                shard: 0,
                name: c
            }
        );
        assert_eq!(
            l.classify(&l.index(g, 3, 2, 77)).unwrap().1,
            Object::Index {
                table: 3,
                shard: 2,
                segment_seq: 77
            }
        );
        assert_eq!(
            l.classify(&l.meta(g, 3, 55)).unwrap().1,
            Object::Meta {
                table: 3,
                at_us: 55
            }
        );
        assert_eq!(
            l.classify(&l.catalog(g, 56)).unwrap().1,
            Object::Catalog { at_us: 56 }
        );
        // Names of other layouts, or stray objects, are not ours.
        assert_eq!(l.classify("backups/prod/rewind-v1/lease"), None);
        assert_eq!(
            l.classify(&format!("{}/tx/meta/1.meta", l.generation(g))),
            None
        );
        assert_eq!(Layout::new("").lease(), "rewind-v1/lease");
    }

    #[test]
    fn names_sort_in_number_order() {
        let l = Layout::new("p");
        let a = l.part(
            "g",
            1,
            0,
            1,
            &PartName {
                first_seq: 9,
                last_seq: 9,
                first_us: 9,
                last_us: 9,
            },
        );
        let b = l.part(
            "g",
            1,
            0,
            1,
            &PartName {
                first_seq: 10,
                last_seq: 10,
                first_us: 10,
                last_us: 10,
            },
        );
        assert!(a < b);
    }
}
