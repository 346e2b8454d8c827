//! The portable engine: `pwrite` (looping over short writes) and `fdatasync`; direct writes
//! with `pwritev2` (`RWF_DSYNC`).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::{IoEngine, IoFailure};

#[derive(Debug, Default)]
pub struct StdEngine;

impl IoEngine for StdEngine {
    fn append(
        &mut self,
        file: &File,
        buf: &[u8],
        offset: u64,
        sync: bool,
    ) -> Result<(), IoFailure> {
        file.write_all_at(buf, offset).map_err(IoFailure::Write)?;
        if sync {
            file.sync_data().map_err(IoFailure::Sync)?;
        }
        Ok(())
    }

    fn append_direct(
        &mut self,
        file: &File,
        buf: &[u8],
        offset: u64,
        dsync: bool,
    ) -> Result<(), IoFailure> {
        crate::log::direct::pwrite_direct(file, buf, offset, dsync)
            .map_err(|e| super::direct_failure(e, dsync))
    }

    fn sync_data(&mut self, file: &File) -> io::Result<()> {
        file.sync_data()
    }

    fn name(&self) -> &'static str {
        "std"
    }
}
