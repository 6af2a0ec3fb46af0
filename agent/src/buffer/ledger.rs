//! The ack ledger: a tiny file holding the acknowledgement watermark.
//!
//! Layout (28 bytes): `b"LLMSLDG1"`, `u64 LE segment`, `u64 LE offset`, `u32 LE crc32` of the
//! first 24 bytes. It is replaced atomically: write `ledger.tmp`, fsync, rename over `ledger`,
//! fsync the directory.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use super::{BufferError, Position, io_err, sync_dir};

const LEDGER_FILE: &str = "ledger";
const LEDGER_TMP_FILE: &str = "ledger.tmp";
const MAGIC: [u8; 8] = *b"LLMSLDG1";
const LEDGER_LEN: usize = 28;

fn encode(pos: Position) -> [u8; LEDGER_LEN] {
    let mut out = [0u8; LEDGER_LEN];
    out[..8].copy_from_slice(&MAGIC);
    out[8..16].copy_from_slice(&pos.segment.to_le_bytes());
    out[16..24].copy_from_slice(&pos.offset.to_le_bytes());
    let crc = crc32fast::hash(&out[..24]);
    out[24..].copy_from_slice(&crc.to_le_bytes());
    out
}

fn decode(bytes: &[u8]) -> Option<Position> {
    let bytes: &[u8; LEDGER_LEN] = bytes.try_into().ok()?;
    let (body, crc) = bytes.split_at(24);
    if body[..8] != MAGIC || crc32fast::hash(body).to_le_bytes() != crc {
        return None;
    }
    let segment = u64::from_le_bytes(body[8..16].try_into().ok()?);
    let offset = u64::from_le_bytes(body[16..24].try_into().ok()?);
    Some(Position { segment, offset })
}

/// Reads the watermark; `None` when there is no ledger or it is unreadable garbage (warned).
pub(super) fn load(dir: &Path) -> Result<Option<Position>, BufferError> {
    let path = dir.join(LEDGER_FILE);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("reading ledger", &path)(e)),
    };
    let pos = decode(&bytes);
    if pos.is_none() {
        tracing::warn!(
            path = %path.display(),
            len = bytes.len(),
            "disk buffer ledger is corrupt; replaying from the oldest segment"
        );
    }
    Ok(pos)
}

/// Atomically replaces the ledger with `pos`.
pub(super) fn store(dir: &Path, pos: Position) -> Result<(), BufferError> {
    let tmp = dir.join(LEDGER_TMP_FILE);
    let mut file = File::create(&tmp).map_err(io_err("creating ledger", &tmp))?;
    file.write_all(&encode(pos))
        .map_err(io_err("writing ledger", &tmp))?;
    file.sync_all().map_err(io_err("syncing ledger", &tmp))?;
    drop(file);
    let path = dir.join(LEDGER_FILE);
    fs::rename(&tmp, &path).map_err(io_err("renaming ledger into place", &path))?;
    sync_dir(dir)
}

/// Removes a leftover `ledger.tmp` from an interrupted [`store`].
pub(super) fn remove_stale_tmp(dir: &Path) -> Result<(), BufferError> {
    let tmp = dir.join(LEDGER_TMP_FILE);
    match fs::remove_file(&tmp) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("removing stale ledger", &tmp)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_encoding_round_trips_and_rejects_garbage() {
        let pos = Position {
            segment: 7,
            offset: 12345,
        };
        let bytes = encode(pos);
        assert_eq!(decode(&bytes), Some(pos));
        let mut bad = bytes;
        bad[10] ^= 1;
        assert_eq!(decode(&bad), None);
        assert_eq!(decode(&bytes[..20]), None);
    }
}
