//! Plans made from a listing alone: which objects a restore needs, the restorable window,
//! and which objects the archive's retention may delete.

use std::collections::BTreeMap;

use super::layout::{CkpName, Layout, Object, PartName};
use super::store::Listed;

/// One shard's objects in one generation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardObjects {
    /// Checkpoints by end sequence, with their sizes.
    pub checkpoints: BTreeMap<u64, (CkpName, u64)>,
    /// Parts by segment, each segment's by first sequence, with their sizes.
    pub segments: BTreeMap<u64, BTreeMap<u64, (PartName, u64)>>,
    /// Index objects by segment, with their sizes.
    pub indexes: BTreeMap<u64, u64>,
}

/// One table's objects in one generation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableObjects {
    /// Times of its metadata versions.
    pub metas: Vec<u64>,
    pub shards: BTreeMap<u32, ShardObjects>,
}

/// A generation's objects, by table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Generation {
    pub catalogs: Vec<u64>,
    pub tables: BTreeMap<u64, TableObjects>,
}

/// Sorts a listing of a generation (`Layout::generation`) by what each object is.
pub fn group(layout: &Layout, listed: &[Listed]) -> BTreeMap<String, Generation> {
    let mut out: BTreeMap<String, Generation> = BTreeMap::new();
    for o in listed {
        let Some((gen, obj)) = layout.classify(&o.name) else {
            continue;
        };
        let g = out.entry(gen).or_default();
        match obj {
            Object::Catalog { at_us } => g.catalogs.push(at_us),
            Object::Meta { table, at_us } => g.tables.entry(table).or_default().metas.push(at_us),
            Object::Part {
                table,
                shard,
                segment_seq,
                name,
            } => {
                g.tables
                    .entry(table)
                    .or_default()
                    .shards
                    .entry(shard)
                    .or_default()
                    .segments
                    .entry(segment_seq)
                    .or_default()
                    .entry(name.first_seq)
                    // Two parts from one start (a retried PUT whose answer was lost): the one
                    // reaching further wins, whichever the listing gives first.
                    .and_modify(|(p, size)| {
                        if name.last_seq > p.last_seq {
                            (*p, *size) = (name, o.size);
                        }
                    })
                    .or_insert((name, o.size));
            }
            Object::Index {
                table,
                shard,
                segment_seq,
            } => {
                g.tables
                    .entry(table)
                    .or_default()
                    .shards
                    .entry(shard)
                    .or_default()
                    .indexes
                    .insert(segment_seq, o.size);
            }
            Object::Checkpoint { table, shard, name } => {
                g.tables
                    .entry(table)
                    .or_default()
                    .shards
                    .entry(shard)
                    .or_default()
                    .checkpoints
                    .insert(name.end_seq, (name, o.size));
            }
        }
    }
    for g in out.values_mut() {
        g.catalogs.sort_unstable();
        for t in g.tables.values_mut() {
            t.metas.sort_unstable();
        }
    }
    out
}

/// A run of parts: segment, part and size of each.
type Chain = Vec<(u64, PartName, u64)>;

/// What one shard's restore downloads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardPlan {
    pub checkpoint: Option<CkpName>,
    /// Segments to rebuild, each from its first part, and whether it is whole (its index is
    /// then worth fetching).
    pub segments: Vec<(u64, Vec<PartName>, bool)>,
    pub bytes: u64,
}

impl ShardObjects {
    /// Every part in sequence order, with its segment.
    fn parts(&self) -> Vec<(u64, PartName, u64)> {
        self.segments
            .iter()
            .flat_map(|(s, ps)| ps.values().map(move |(p, size)| (*s, *p, *size)))
            .collect()
    }

    /// The run of parts that carries on from the segment holding `from_seq` without a gap,
    /// each segment from its first part. `None` when no segment can start it.
    fn chain_from(&self, from_seq: u64) -> Option<Chain> {
        let parts = self.parts();
        // The segment holding from_seq, read from its first part.
        let seg = parts
            .iter()
            .find(|(_, p, _)| p.first_seq <= from_seq && from_seq <= p.last_seq)
            .map(|(s, _, _)| *s);
        let seg = match seg {
            Some(s) => s,
            // Nothing at from_seq: the next segment must start exactly there.
            None => parts.iter().find(|(s, _, _)| *s == from_seq)?.0,
        };
        let mut chain: Chain = Vec::new();
        for (s, p, size) in parts.into_iter().filter(|(s, _, _)| *s >= seg) {
            let expected = chain
                .last()
                .map_or(s, |(_, l, _)| l.last_seq.saturating_add(1));
            let starts_segment = chain.last().is_none_or(|(ls, _, _)| *ls != s);
            if p.first_seq != expected || (starts_segment && p.first_seq != s) {
                break;
            }
            chain.push((s, p, size));
        }
        (!chain.is_empty()).then_some(chain)
    }

    fn last_part(&self) -> Option<PartName> {
        self.segments
            .values()
            .flat_map(|ps| ps.values())
            .map(|(p, _)| *p)
            .max_by_key(|p| p.last_seq)
    }

    /// Whether the shard has anything in the archive.
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty() && self.checkpoints.is_empty()
    }

    /// Every base a restore can start from, oldest first: the log from sequence 1 (only for a
    /// table that started empty: a restored table starts from its first checkpoint), then
    /// each checkpoint; with the moment each serves from and its size.
    fn bases(&self, from_empty: bool) -> Vec<(Option<CkpName>, u64, u64)> {
        let mut v = Vec::new();
        if from_empty {
            v.push((None, 0, 0));
        }
        v.extend(
            self.checkpoints
                .values()
                .map(|(c, size)| (Some(*c), c.end_us, *size)),
        );
        v
    }

    /// The log a base needs, if the archive holds it: the gap-free chain of parts from the
    /// base's start, how far in time it reaches, and whether it runs to the archive's last
    /// part. A fuzzy checkpoint needs the log up to its end; only a checkpoint whose start is
    /// its end (a restored table's first) stands alone.
    fn serve(&self, base: Option<CkpName>) -> Option<(Chain, u64, bool)> {
        let last = self.last_part();
        let from = base.map_or(1, |c| c.start_seq.saturating_add(1));
        match self.chain_from(from) {
            Some(chain) => {
                let end = chain
                    .last()
                    .map(|(_, p, _)| *p)
                    .expect("a chain is not empty");
                if base.is_some_and(|c| end.last_seq < c.end_seq) {
                    return None;
                }
                let reach = end.last_us.max(base.map_or(0, |c| c.end_us));
                Some((chain, reach, Some(end) == last))
            }
            None => {
                let standalone = match base {
                    Some(c) => {
                        c.start_seq == c.end_seq && last.is_none_or(|l| l.last_seq <= c.start_seq)
                    }
                    None => last.is_none(),
                };
                standalone.then(|| (Vec::new(), base.map_or(0, |c| c.end_us), true))
            }
        }
    }

    /// The oldest and newest moments this shard's objects restore with a log that runs to
    /// the archive's newest part (earlier stretches cut off by a gap are not offered), or
    /// `None` when the archive holds nothing of the shard or nothing that reaches its end.
    pub fn window(&self, from_empty: bool) -> Option<(u64, u64)> {
        if self.is_empty() {
            return None;
        }
        let mut out: Option<(u64, u64)> = None;
        for (base, from_us, _) in self.bases(from_empty) {
            if let Some((_, reach, true)) = self.serve(base) {
                let (e, l) = out.get_or_insert((from_us, reach));
                *e = (*e).min(from_us);
                *l = (*l).max(reach);
            }
        }
        out
    }

    /// What a restore to `at_us` (`u64::MAX`: everything archived) downloads. Refused unless
    /// a base at or before the moment has a gap-free log that reaches it.
    pub fn plan(&self, at_us: u64, from_empty: bool) -> Result<ShardPlan, String> {
        for (base, from_us, base_size) in self.bases(from_empty).into_iter().rev() {
            if from_us > at_us {
                continue;
            }
            let Some((chain, reach, complete)) = self.serve(base) else {
                continue;
            };
            if reach < at_us && !complete {
                continue; // a gap before the moment
            }
            if at_us == u64::MAX && !complete {
                continue;
            }
            let from = base.map_or(1, |c| c.start_seq.saturating_add(1));
            let mut segments: Vec<(u64, Vec<PartName>, bool)> = Vec::new();
            let mut bytes = base_size;
            for (s, p, size) in chain {
                // A part entirely after the moment is not needed; its segment's earlier parts
                // are (a segment is rebuilt from its start).
                if p.first_us > at_us && p.first_seq > from {
                    break;
                }
                match segments.last_mut() {
                    Some((ls, v, _)) if *ls == s => v.push(p),
                    _ => segments.push((s, vec![p], false)),
                }
                bytes += size;
            }
            for (s, v, whole) in segments.iter_mut() {
                let all = self.segments.get(s).map_or(0, |m| m.len());
                *whole = v.len() == all && self.indexes.contains_key(s);
            }
            return Ok(ShardPlan {
                checkpoint: base,
                segments,
                bytes,
            });
        }
        Err("the archive holds no checkpoint and gap-free log that reach that moment".into())
    }

    /// Objects retention may delete when the window starts at `earliest_us`: checkpoints
    /// older than the newest one at or before it, and segments wholly before that one's start.
    pub fn expired(&self, earliest_us: u64) -> (Vec<CkpName>, Vec<u64>) {
        let Some((keep, _)) = self
            .checkpoints
            .values()
            .rev()
            .find(|(c, _)| c.end_us <= earliest_us)
        else {
            return (Vec::new(), Vec::new());
        };
        let ckps = self
            .checkpoints
            .values()
            .filter(|(c, _)| c.end_seq < keep.end_seq)
            .map(|(c, _)| *c)
            .collect();
        let segs: Vec<u64> = self.segments.keys().copied().collect();
        let doomed = segs
            .windows(2)
            .filter(|w| w[1] <= keep.start_seq.saturating_add(1))
            .map(|w| w[0])
            .collect();
        (ckps, doomed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(first_seq: u64, last_seq: u64, first_us: u64, last_us: u64) -> PartName {
        PartName {
            first_seq,
            last_seq,
            first_us,
            last_us,
        }
    }

    fn shard(parts: &[(u64, PartName)], ckps: &[CkpName]) -> ShardObjects {
        let mut s = ShardObjects::default();
        for (seg, p) in parts {
            s.segments
                .entry(*seg)
                .or_default()
                .insert(p.first_seq, (*p, 10));
        }
        for c in ckps {
            s.checkpoints.insert(c.end_seq, (*c, 100));
        }
        s
    }

    #[test]
    fn plans_from_the_log_start_and_stops_after_the_moment() {
        let s = shard(
            &[
                (1, part(1, 10, 100, 200)),
                (1, part(11, 20, 210, 300)),
                (21, part(21, 30, 310, 400)),
            ],
            &[],
        );
        assert_eq!(s.window(true), Some((0, 400)));
        let p = s.plan(250, true).unwrap();
        assert_eq!(p.checkpoint, None);
        assert_eq!(p.segments.len(), 1);
        assert_eq!(p.segments[0].1.len(), 2);
        let all = s.plan(u64::MAX, true).unwrap();
        assert_eq!(all.segments.len(), 2);
    }

    #[test]
    fn a_checkpoint_cuts_the_download_and_gaps_end_the_window() {
        let c = CkpName {
            end_seq: 25,
            start_seq: 22,
            end_us: 350,
        };
        // Segment 1 was deleted by retention; the checkpoint's start is in segment 21.
        let s = shard(
            &[
                (21, part(21, 30, 310, 400)),
                (31, part(31, 40, 410, 500)),
                (41, part(45, 50, 600, 700)), // a gap: 41..=44 missing
            ],
            &[c],
        );
        // The gap at 41 ends what the checkpoint's log reaches: no window runs to the end.
        assert_eq!(s.window(true), None);
        let p = s.plan(450, true).unwrap();
        assert_eq!(p.checkpoint, Some(c));
        assert_eq!(
            p.segments.iter().map(|(s, _, _)| *s).collect::<Vec<_>>(),
            vec![21, 31]
        );
        // Before the checkpoint there is no base; past the gap, no log.
        assert!(s.plan(320, true).is_err());
        assert!(s.plan(650, true).is_err());
        assert!(s.plan(u64::MAX, true).is_err());
    }

    #[test]
    fn a_fuzzy_checkpoint_needs_its_log_and_a_gap_is_never_bridged() {
        let fuzzy = CkpName {
            end_seq: 30,
            start_seq: 20,
            end_us: 300,
        };
        // Log from 1 to 10, then (PITR off, then on) a gap, then segment 41 onward.
        let s = shard(
            &[(1, part(1, 10, 100, 200)), (41, part(41, 50, 500, 600))],
            &[fuzzy],
        );
        // The checkpoint's log (21..=30) is missing: it serves nothing, and the era before
        // the gap does not reach the end: not restorable, and no moment after 200 is.
        assert_eq!(s.window(true), None);
        assert!(s.plan(250, true).is_err());
        assert!(s.plan(550, true).is_err());
        assert!(
            s.plan(150, true).is_ok(),
            "inside the old era the log serves"
        );
        // A restored table's first checkpoint (start = end) stands alone.
        let first = CkpName {
            end_seq: 40,
            start_seq: 40,
            end_us: 450,
        };
        let s2 = shard(&[(41, part(41, 50, 500, 600))], &[first]);
        assert_eq!(s2.window(false), Some((450, 600)));
        assert_eq!(s2.plan(470, false).unwrap().checkpoint, Some(first));
        // A restored table's log from sequence 1 is not a base without that checkpoint.
        let s3 = shard(&[(1, part(1, 10, 500, 600))], &[]);
        assert_eq!(s3.window(true), Some((0, 600)));
        assert_eq!(s3.window(false), None);
        assert!(s3.plan(550, false).is_err());
        assert!(ShardObjects::default().window(true).is_none());
    }

    #[test]
    fn retention_keeps_the_base_and_what_follows() {
        let c1 = CkpName {
            end_seq: 15,
            start_seq: 12,
            end_us: 250,
        };
        let c2 = CkpName {
            end_seq: 35,
            start_seq: 32,
            end_us: 450,
        };
        let s = shard(
            &[
                (1, part(1, 20, 100, 300)),
                (21, part(21, 30, 310, 400)),
                (31, part(31, 40, 410, 500)),
            ],
            &[c1, c2],
        );
        assert_eq!(s.expired(200), (vec![], vec![]));
        assert_eq!(s.expired(300), (vec![], vec![]));
        // Window from 460: keep c2 (start 32, in segment 31); c1 and segments 1, 21 go.
        assert_eq!(s.expired(460), (vec![c1], vec![1, 21]));
    }
}
