//! Fencing: one server archives to a prefix at a time.
//!
//! The lease object (`<prefix>/rewind-v1/lease`, JSON, below) names the generation that
//! archives there. A server creates it with a conditional PUT (`If-None-Match: *`); finding
//! it held by another generation, it refuses to archive. Its own generation id is kept in the
//! data directory (`archive.json`), so a restart of the same server carries on.
//! `--archive-takeover` replaces the lease (`If-Match` on the version read); the old server
//! checks the lease and stops shipping once it has lost it. Every generation writes under
//! its own `gen/<gen>/` names, so two generations never write the same object.
//!
//! ```text
//! lease         {"format":"rewind-archive-lease","version":1,"generation":G,"host":H,
//!                "pid":P,"data_dir":D,"started_us":T}
//! archive.json  {"format":"rewind-archive-generation","version":1,"url":U,"generation":G}
//! ```

use std::path::Path;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::error::ArchiveError;
use super::store::{Archive, Created};
use crate::log::FormatError;

const LEASE_FORMAT: &str = "rewind-archive-lease";
const LOCAL_FORMAT: &str = "rewind-archive-generation";
const VERSION: u32 = 1;
/// The data directory's record of its generation.
pub const LOCAL_FILE: &str = "archive.json";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Lease {
    pub format: String,
    pub version: u32,
    pub generation: String,
    pub host: String,
    pub pid: u32,
    pub data_dir: String,
    pub started_us: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Local {
    format: String,
    version: u32,
    url: String,
    generation: String,
}

impl Lease {
    pub fn decode(b: &[u8]) -> Result<Lease, FormatError> {
        let l: Lease = serde_json::from_slice(b).map_err(|e| FormatError::Malformed {
            what: "archive lease",
            detail: e.to_string(),
        })?;
        if l.format != LEASE_FORMAT {
            return Err(FormatError::Malformed {
                what: "archive lease",
                detail: format!("format '{}'", l.format),
            });
        }
        if l.version != VERSION {
            return Err(FormatError::BadVersion {
                what: "archive lease",
                found: l.version.min(255) as u8,
                supported: VERSION as u8,
            });
        }
        Ok(l)
    }

    fn encode(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).expect("a lease serialises"))
    }
}

/// A new generation id: start time, then random bits (so ids sort by start).
pub fn new_generation(now_us: u64) -> String {
    use ring::rand::SecureRandom;
    let mut r = [0u8; 4];
    ring::rand::SystemRandom::new()
        .fill(&mut r)
        .expect("the system random source works");
    format!("{now_us:016}-{:08x}", u32::from_le_bytes(r))
}

/// Takes (or keeps) the lease on `archive` for the server of `data_dir`. Returns the
/// generation to write under.
pub async fn acquire(
    archive: &Archive,
    data_dir: &Path,
    now_us: u64,
    takeover: bool,
) -> Result<String, ArchiveError> {
    // A takeover always starts a new generation: a copied data directory (a cloned VM, a
    // restored snapshot) carries its original's id and must not write under it.
    // The same directory by any path: the lease compares it.
    let data_dir = &std::fs::canonicalize(data_dir).map_err(|e| ArchiveError::io(data_dir, e))?;
    let local = if takeover {
        None
    } else {
        read_local(data_dir, &archive.url)?
    };
    let generation = local.clone().unwrap_or_else(|| new_generation(now_us));
    // Recorded before the lease names it, so a crash in between cannot leave a lease this
    // directory does not know it holds.
    if local.is_none() {
        write_local(data_dir, &archive.url, &generation)?;
    }
    let lease = Lease {
        format: LEASE_FORMAT.into(),
        version: VERSION,
        generation: generation.clone(),
        host: hostname(),
        pid: std::process::id(),
        data_dir: data_dir.display().to_string(),
        started_us: now_us,
    };
    let name = archive.layout.lease();
    if archive.create(&name, lease.encode()).await? == Created::AlreadyThere {
        let Some((bytes, version)) = archive.get_versioned(&name).await? else {
            // Released between the two calls: try once more from the top.
            return Box::pin(acquire(archive, data_dir, now_us, takeover)).await;
        };
        let held = Lease::decode(&bytes).map_err(|source| ArchiveError::Damaged {
            name: name.clone(),
            source,
        })?;
        let ours = held.generation == generation
            && held.host == lease.host
            && held.data_dir == lease.data_dir;
        if !ours && !takeover {
            return Err(fenced(archive, &held));
        }
        // Ours (a restart: the lease names this process now) or taken over.
        if !archive.replace(&name, lease.encode(), version).await? {
            return Err(ArchiveError::Plan(format!(
                "the lease on {} changed while taking it; try again",
                archive.url
            )));
        }
        if !ours {
            tracing::warn!(
                "took the archive {} over from generation {} (host {}, data dir {})",
                archive.url,
                held.generation,
                held.host,
                held.data_dir
            );
        }
    }
    Ok(generation)
}

/// Checks that this process of `generation` still holds the lease: a copy of this server
/// (a cloned machine) that took it since, even under the same generation, fences this one.
/// A lease that is gone or unreadable stops archiving too.
pub async fn check(archive: &Archive, generation: &str) -> Result<(), ArchiveError> {
    let name = archive.layout.lease();
    let Some((bytes, _)) = archive.get_versioned(&name).await? else {
        return Err(ArchiveError::LeaseLost(name));
    };
    let held =
        Lease::decode(&bytes).map_err(|e| ArchiveError::LeaseLost(format!("{name} ({e})")))?;
    if held.generation != generation || held.pid != std::process::id() || held.host != hostname() {
        return Err(fenced(archive, &held));
    }
    Ok(())
}

fn fenced(archive: &Archive, held: &Lease) -> ArchiveError {
    ArchiveError::Fenced {
        url: archive.url.clone(),
        generation: held.generation.clone(),
        host: held.host.clone(),
        pid: held.pid,
        data_dir: held.data_dir.clone(),
        since: crate::restore::format_time(held.started_us),
    }
}

fn read_local(data_dir: &Path, url: &str) -> Result<Option<String>, ArchiveError> {
    let path = data_dir.join(LOCAL_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ArchiveError::io(&path, e)),
    };
    let bad = |detail: String| ArchiveError::Damaged {
        name: path.display().to_string(),
        source: FormatError::Malformed {
            what: "archive generation file",
            detail,
        },
    };
    let l: Local = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    if l.format != LOCAL_FORMAT || l.version != VERSION {
        return Err(bad(format!("format '{}' version {}", l.format, l.version)));
    }
    // Another archive URL: this server starts a new generation there.
    Ok((l.url == url).then_some(l.generation))
}

fn write_local(data_dir: &Path, url: &str, generation: &str) -> Result<(), ArchiveError> {
    let l = Local {
        format: LOCAL_FORMAT.into(),
        version: VERSION,
        url: url.into(),
        generation: generation.into(),
    };
    let bytes = serde_json::to_vec_pretty(&l).expect("serialises");
    crate::log::fsutil::write_atomic(&data_dir.join(LOCAL_FILE), &bytes)?;
    Ok(())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_round_trip_and_damage() {
        let l = Lease {
            format: LEASE_FORMAT.into(),
            version: 1,
            generation: new_generation(5),
            host: "h".into(),
            pid: 9,
            data_dir: "/d".into(),
            started_us: 5,
        };
        assert_eq!(Lease::decode(&l.encode()).unwrap(), l);
        let mut v2 = l.clone();
        v2.version = 2;
        assert!(matches!(
            Lease::decode(&v2.encode()),
            Err(FormatError::BadVersion { found: 2, .. })
        ));
        let bytes = l.encode();
        for i in 0..bytes.len() {
            let mut bad = bytes.to_vec();
            bad[i] ^= 0x80; // never valid UTF-8 in JSON text
            assert!(Lease::decode(&bad).is_err(), "flip at {i} accepted");
        }
    }

    #[tokio::test]
    async fn a_second_server_is_fenced_and_a_takeover_wins() {
        let store = tempfile::tempdir().unwrap();
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let url = format!("file://{}", store.path().display());
        let archive = Archive::open(&url).unwrap();
        let g1 = acquire(&archive, a.path(), 1, false).await.unwrap();
        // The same data directory carries on with its generation.
        assert_eq!(acquire(&archive, a.path(), 2, false).await.unwrap(), g1);
        // A copy of it (same generation file, another directory) is refused.
        let copy = tempfile::tempdir().unwrap();
        std::fs::copy(a.path().join(LOCAL_FILE), copy.path().join(LOCAL_FILE)).unwrap();
        assert!(matches!(
            acquire(&archive, copy.path(), 2, false).await,
            Err(ArchiveError::Fenced { .. })
        ));
        let err = acquire(&archive, b.path(), 3, false).await.unwrap_err();
        assert!(matches!(err, ArchiveError::Fenced { ref generation, .. } if *generation == g1));
        assert!(err.to_string().contains("--archive-takeover"), "{err}");
        let g2 = acquire(&archive, b.path(), 4, true).await.unwrap();
        assert_ne!(g1, g2);
        assert!(check(&archive, &g2).await.is_ok());
        assert!(matches!(
            check(&archive, &g1).await,
            Err(ArchiveError::Fenced { .. })
        ));
        // A takeover by a copy starts its own generation.
        let g3 = acquire(&archive, copy.path(), 5, true).await.unwrap();
        assert!(g3 != g1 && g3 != g2);
        archive.delete(&archive.layout.lease()).await.unwrap();
        assert!(matches!(
            check(&archive, &g3).await,
            Err(ArchiveError::LeaseLost(_))
        ));
    }
}
