//! The process's memory, for INFO's `# Memory` and `/metrics`.
//!
//! - `used`: the bytes the allocator (mimalloc, `src/main.rs`) holds committed from the
//!   kernel, from `mi_process_info`. Redis's `used_memory` counts allocated bytes instead; a
//!   counting allocator would cost an atomic add on every allocation, so rewind reports what
//!   the allocator has taken, which is at least what it handed out.
//! - `rss`: resident pages from `/proc/self/statm`.
//! - `peak`: mimalloc's own peak of committed bytes (or the largest `used` a reading saw).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryReading {
    pub used: u64,
    pub peak: u64,
    pub rss: u64,
}

static PEAK: AtomicU64 = AtomicU64::new(0);

fn resident_bytes() -> u64 {
    // statm: size resident shared text lib data dt, in pages.
    let Ok(s) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: u64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * page.max(1) as u64
}

/// The allocator's committed bytes now and at their peak.
fn allocator_commit() -> (u64, u64) {
    let (mut commit, mut peak) = (0usize, 0usize);
    // SAFETY: every out-parameter is optional (nullable); the two given point at live usizes.
    unsafe {
        libmimalloc_sys::mi_process_info(
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            &mut commit,
            &mut peak,
            std::ptr::null_mut(),
        );
    }
    (commit as u64, peak as u64)
}

pub fn read() -> MemoryReading {
    let rss = resident_bytes();
    let (commit, commit_peak) = allocator_commit();
    // Where mimalloc is not the allocator (unit tests), it has committed almost nothing:
    // the resident size is then the better answer.
    let (used, exact_peak) = if commit > 0 && commit >= rss / 8 {
        (commit, commit_peak)
    } else {
        (rss, 0)
    };
    let peak = PEAK.fetch_max(used, Relaxed).max(used).max(exact_peak);
    MemoryReading { used, peak, rss }
}

/// Redis's `used_memory_human`: 1.50M, 12.03G.
pub fn human(bytes: u64) -> String {
    const UNITS: [(&str, f64); 4] = [
        ("T", 1_099_511_627_776.0),
        ("G", 1_073_741_824.0),
        ("M", 1_048_576.0),
        ("K", 1024.0),
    ];
    for (u, size) in UNITS {
        if bytes as f64 >= size {
            return format!("{:.2}{u}", bytes as f64 / size);
        }
    }
    format!("{bytes}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_are_plausible_and_human_sizes_match_redis() {
        let m = read();
        assert!(m.rss > 1 << 20, "{m:?}");
        assert!(m.used > 0 && m.peak >= m.used, "{m:?}");
        assert_eq!(human(512), "512B");
        assert_eq!(human(1536), "1.50K");
        assert_eq!(human(3 << 30), "3.00G");
    }
}
