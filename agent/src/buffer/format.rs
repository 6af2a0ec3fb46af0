//! Record framing and structural scanning of segment files.
//!
//! A record on disk is `[u32 LE payload_len][u32 LE crc32(payload)][payload]`.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};

/// Size of the per-record header: payload length plus CRC, both `u32` little endian.
pub(super) const HEADER_LEN: u64 = 8;

/// Largest payload accepted by [`super::DiskBuffer::append`] (16 MiB).
pub const MAX_RECORD_BYTES: usize = 16 * 1024 * 1024;

/// Buffer size used when scanning or reading segment files.
pub(super) const READ_BUFFER_BYTES: usize = 64 * 1024;

/// Writes the framed form of `payload` into `out` (cleared first).
///
/// The caller must have checked `payload.len() <= MAX_RECORD_BYTES`.
pub(super) fn encode_frame(out: &mut Vec<u8>, payload: &[u8], len: u32) {
    out.clear();
    out.reserve(HEADER_LEN as usize + payload.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Splits a record header into `(payload_len, crc32)`.
pub(super) fn decode_header(header: &[u8; HEADER_LEN as usize]) -> (u32, u32) {
    let [l0, l1, l2, l3, c0, c1, c2, c3] = *header;
    (
        u32::from_le_bytes([l0, l1, l2, l3]),
        u32::from_le_bytes([c0, c1, c2, c3]),
    )
}

/// Why a structural walk over a segment stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WalkStop {
    /// The walk reached `limit` exactly on a record boundary.
    Clean,
    /// The bytes at `end` are an incomplete header or a payload that runs past `limit`.
    Torn,
    /// The header at `end` claims a payload larger than [`MAX_RECORD_BYTES`].
    Implausible,
}

/// Result of [`walk`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Walk {
    /// Complete frames found that start at or after `count_from`.
    pub frames: u64,
    /// Offset where the walk stopped (end of the last complete frame).
    pub end: u64,
    /// Why it stopped there.
    pub stop: WalkStop,
}

/// Walks frame headers (skipping payloads, CRCs are not checked) from `from` up to `limit`.
///
/// Only structure is validated: a header must be complete, its length must be at most
/// [`MAX_RECORD_BYTES`] and the payload must end at or before `limit`.
pub(super) fn walk(file: &File, from: u64, limit: u64, count_from: u64) -> io::Result<Walk> {
    let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, file);
    reader.seek(SeekFrom::Start(from))?;
    let mut pos = from;
    let mut frames = 0u64;
    let stop = loop {
        if pos >= limit {
            break WalkStop::Clean;
        }
        let remaining = limit - pos;
        if remaining < HEADER_LEN {
            break WalkStop::Torn;
        }
        let mut header = [0u8; HEADER_LEN as usize];
        match reader.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break WalkStop::Torn,
            Err(e) => return Err(e),
        }
        let (len, _crc) = decode_header(&header);
        if len as usize > MAX_RECORD_BYTES {
            break WalkStop::Implausible;
        }
        let frame = HEADER_LEN + u64::from(len);
        if frame > remaining {
            break WalkStop::Torn;
        }
        reader.seek_relative(i64::from(len))?;
        if pos >= count_from {
            frames += 1;
        }
        pos += frame;
    };
    Ok(Walk {
        frames,
        end: pos,
        stop,
    })
}
