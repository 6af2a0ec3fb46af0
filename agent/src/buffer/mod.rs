//! Durable, size-capped disk buffer for records waiting to be acknowledged by the collector.
//!
//! The agent encodes each sample or telemetry message (protobuf bytes, opaque to this module),
//! [`DiskBuffer::append`]s it, ships what [`DiskBuffer::read`] returns, and calls
//! [`DiskBuffer::ack_through`] once the collector has acknowledged a batch. The design is a
//! simplified take on Vector's `disk_v2` buffer: append-only segment files plus a ledger that
//! holds the acknowledgement watermark.
//!
//! # Guarantees
//!
//! * **A record survives a process crash once `append` returns.** Every append writes the whole
//!   frame to the segment file with `write(2)` before returning, so it is in the kernel page cache
//!   and a `kill -9` loses nothing. Surviving power loss / a kernel crash additionally needs an
//!   fsync: [`DiskBuffer::sync`] (called by the agent on an interval) fsyncs the current segment,
//!   any segments sealed since the last sync, and the directory. Records appended after the last
//!   `sync` may be lost on power loss.
//! * **A record is deleted only when (a) it has been acknowledged, or (b) the size cap forces the
//!   oldest data out.** Case (b) happens when an append would make the segment files exceed
//!   [`BufferConfig::max_bytes`]: whole oldest segments are deleted, acked or not; the unacked
//!   records and bytes lost are counted in [`BufferStats::dropped_records`] /
//!   [`BufferStats::dropped_bytes`] and reported with one `tracing::warn!` per append that drops.
//!   The segment being written is never deleted; when it alone is at the cap the writer starts a
//!   new segment first.
//! * Delivery is **at least once**: a record read but not acked before a restart (or reconnect,
//!   when the caller rewinds to [`DiskBuffer::start`]) is read again.
//! * Records are returned in append order. Records whose bytes were damaged on disk are skipped
//!   and counted (see *Recovery*), never returned.
//! * One process at a time: `open` takes an exclusive `flock` on `<dir>/lock` (skipped with a
//!   warning on filesystems that do not support locking).
//!
//! # On-disk format
//!
//! ```text
//! <dir>/seg-0000000000000000.log   segment files, append-only, ids strictly increasing
//! <dir>/seg-0000000000000001.log
//! <dir>/ledger                     ack watermark (28 bytes), replaced atomically
//! <dir>/lock                       empty, flock'ed while a DiskBuffer is open
//! ```
//!
//! A segment is a sequence of frames `[u32 LE payload_len][u32 LE crc32(payload)][payload]`
//! (crc32 = `crc32fast`, IEEE). Payloads are at most [`MAX_RECORD_BYTES`] (16 MiB). The writer
//! starts a new segment when appending to the current one would take it past
//! [`BufferConfig::segment_bytes`] (a single larger record gets a segment of its own).
//!
//! A [`Position`] `{ segment, offset }` names a byte offset in a segment (a record boundary when
//! produced by this module); positions order lexicographically. The ledger stores the watermark:
//! every record strictly before it is acknowledged. Its layout is `b"LLMSLDG1"`, `u64 LE segment`,
//! `u64 LE offset`, `u32 LE crc32` of the preceding 24 bytes; it is replaced by writing
//! `ledger.tmp`, fsyncing it, renaming it over `ledger` and fsyncing the directory.
//!
//! # Recovery (what `open` and `read` do)
//!
//! * **Ledger.** Missing means nothing is acked (start of the oldest segment). A corrupt ledger is
//!   treated as missing, with a warning: the whole buffer is replayed (duplicates, no loss).
//!   Segments wholly before the watermark are deleted.
//! * **Torn tail.** A crash in the middle of an append leaves a partial frame at the end of the
//!   last segment. `open` walks the frame headers of the last segment and truncates it at the
//!   first incomplete header, length above 16 MiB, or payload running past the end of the file;
//!   the bytes removed are reported in [`OpenReport::truncated_bytes`]. (Anything after such a
//!   point could not be read anyway.) If the ledger points past the (truncated) end of the last
//!   segment, that segment is deleted and a fresh one is started after the watermark, so new
//!   records are never mistaken for acked ones.
//! * **CRC skip.** `read` verifies every payload. A frame whose CRC does not match but whose length
//!   is plausible (fits in the segment and is at most 16 MiB) is skipped alone. A frame whose
//!   length is implausible makes the rest of that segment unreadable: it is skipped as one
//!   corrupt record and reading continues with the next segment (if this happens in the segment
//!   being written, the next append starts a new segment so new records stay readable). Both
//!   cases bump [`BufferStats::corrupt_records`] (once per damaged position per process, however
//!   often it is re-read) and log a warning.
//!
//! Known limitation: after power loss *without* a preceding `sync`, some filesystems leave a
//! zero-filled tail. Zero bytes are a valid frame for an empty payload (length 0, crc32 0), so such
//! a tail reads back as empty records; callers should not append empty payloads and may ignore
//! empty ones on read.
//!
//! All operations are synchronous and take `&mut self`; wrap the buffer in a mutex or own it
//! from one thread (or `spawn_blocking`) when used from async code.

mod format;
mod ledger;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use tracing::{debug, info, warn};

pub use format::MAX_RECORD_BYTES;
use format::{HEADER_LEN, READ_BUFFER_BYTES, WalkStop};

/// Default cap on the total size of all segment files: 512 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 512 * 1024 * 1024;

/// Default segment size at which the writer starts a new segment: 8 MiB.
pub const DEFAULT_SEGMENT_BYTES: u64 = 8 * 1024 * 1024;

const LOCK_FILE: &str = "lock";
const SEGMENT_PREFIX: &str = "seg-";
const SEGMENT_SUFFIX: &str = ".log";
/// Capacity of the reusable frame buffer kept between appends.
const FRAME_SCRATCH_KEEP: usize = 64 * 1024;
/// Sealed segments whose fsync is deferred to the next `sync` before one is synced inline.
const MAX_DEFERRED_SYNCS: usize = 4;

/// A byte position in the buffer: `offset` bytes into segment `segment`.
///
/// Positions order lexicographically (segment first, then offset). Positions handed out by
/// [`DiskBuffer::read`] and [`DiskBuffer::start`] always sit on record boundaries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// Segment id (the number in `seg-<id>.log`).
    pub segment: u64,
    /// Byte offset inside the segment file.
    pub offset: u64,
}

impl Position {
    /// Creates a position.
    pub const fn new(segment: u64, offset: u64) -> Self {
        Self { segment, offset }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.segment, self.offset)
    }
}

/// Configuration of a [`DiskBuffer`].
///
/// The size cap drops whole segments, so keep `segment_bytes` well below `max_bytes`
/// (at most `max_bytes / 8` is a good rule; `open` warns above `max_bytes / 4`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BufferConfig {
    /// Directory holding the segment files and the ledger; created if missing.
    pub dir: PathBuf,
    /// Cap on the total size of all segment files (framing included); when an append would
    /// exceed it the oldest segments are dropped. Default [`DEFAULT_MAX_BYTES`] (512 MiB).
    pub max_bytes: u64,
    /// A new segment starts when appending would take the current one past this size.
    /// Default [`DEFAULT_SEGMENT_BYTES`] (8 MiB).
    pub segment_bytes: u64,
}

impl Default for BufferConfig {
    /// `dir` defaults to the relative path `llmscope-buffer`; callers normally set it.
    fn default() -> Self {
        Self {
            dir: PathBuf::from("llmscope-buffer"),
            max_bytes: DEFAULT_MAX_BYTES,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
        }
    }
}

impl BufferConfig {
    /// Default configuration rooted at `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            ..Self::default()
        }
    }
}

/// What [`DiskBuffer::open`] found and repaired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenReport {
    /// Segment files in use after cleanup (including the one being written).
    pub segments: usize,
    /// Bytes (framing included) at or after the ack watermark.
    pub unacked_bytes_estimate: u64,
    /// Bytes cut from the end of the last segment because they were a torn (partial) record.
    pub truncated_bytes: u64,
}

/// Records returned by [`DiskBuffer::read`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadBatch {
    /// Payloads, in append order.
    pub records: Vec<Vec<u8>>,
    /// Where the read stopped: every record before it was returned (or skipped as corrupt).
    /// Pass it to the next `read`, and to [`DiskBuffer::ack_through`] once the collector has
    /// acknowledged `records`.
    pub next: Position,
}

/// Counters describing the buffer; see [`DiskBuffer::stats`].
///
/// `bytes_on_disk`, `segments` and `unacked_records` describe the current state; the other
/// counters count events since this `DiskBuffer` was opened (they are not persisted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BufferStats {
    /// Total size of the segment files (framing included; the ledger is not counted).
    pub bytes_on_disk: u64,
    /// Number of segment files.
    pub segments: usize,
    /// Records appended since open.
    pub appended_records: u64,
    /// Unacked records deleted by the size cap since open.
    pub dropped_records: u64,
    /// Unacked bytes (framing included) deleted by the size cap since open.
    pub dropped_bytes: u64,
    /// Corrupt records skipped by `read` since open (each damaged position counted once).
    pub corrupt_records: u64,
    /// Records at or after the ack watermark. Best effort: it counts structurally valid frames
    /// (including ones whose CRC is bad and that `read` will skip) and can drift if segments
    /// are damaged or deleted behind the buffer's back.
    pub unacked_records: u64,
}

/// Errors returned by [`DiskBuffer`].
#[derive(Debug, thiserror::Error)]
pub enum BufferError {
    /// The configuration cannot work.
    #[error("invalid disk buffer config: {0}")]
    InvalidConfig(&'static str),
    /// Another process (or another `DiskBuffer` in this one) holds the directory.
    #[error("disk buffer directory {} is locked by another process", .0.display())]
    Locked(PathBuf),
    /// The payload is larger than [`MAX_RECORD_BYTES`].
    #[error("record of {len} bytes exceeds the maximum record size of {max} bytes")]
    RecordTooLarge {
        /// Payload length.
        len: usize,
        /// The limit, [`MAX_RECORD_BYTES`].
        max: usize,
    },
    /// The framed record alone is larger than [`BufferConfig::max_bytes`].
    #[error(
        "record of {frame_bytes} bytes (framing included) cannot fit in a buffer capped at {max_bytes} bytes"
    )]
    ExceedsCapacity {
        /// Payload length plus the 8-byte header.
        frame_bytes: u64,
        /// The configured cap.
        max_bytes: u64,
    },
    /// A position past the end of the buffer was passed to `read` or `ack_through`.
    #[error("position {pos} is beyond the end of the buffer ({end})")]
    PositionOutOfRange {
        /// The offending position.
        pos: Position,
        /// The current end of the buffer.
        end: Position,
    },
    /// A filesystem operation failed. The message includes the OS error (it is not exposed as
    /// `Error::source`, so chained printing does not repeat it).
    #[error("i/o error while {op} {}: {error}", path.display())]
    Io {
        /// What was being done, e.g. "appending to segment".
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        error: io::Error,
    },
}

/// Builds a `map_err` adapter turning an `io::Error` into [`BufferError::Io`].
fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> BufferError + use<> {
    let path = path.to_path_buf();
    move |error| BufferError::Io { op, path, error }
}

/// fsyncs a directory so that file creations, renames and deletions in it are durable.
fn sync_dir(dir: &Path) -> Result<(), BufferError> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err("syncing directory", dir))
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{SEGMENT_PREFIX}{id:016}{SEGMENT_SUFFIX}"))
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name
        .strip_prefix(SEGMENT_PREFIX)?
        .strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() < 16 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Segment files in `dir` as `(id, file length)`, sorted by id.
fn list_segments(dir: &Path) -> Result<Vec<(u64, u64)>, BufferError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err("listing buffer directory", dir))? {
        let entry = entry.map_err(io_err("listing buffer directory", dir))?;
        let Some(id) = entry.file_name().to_str().and_then(parse_segment_name) else {
            continue;
        };
        let meta = entry
            .metadata()
            .map_err(io_err("reading metadata of segment", &entry.path()))?;
        if meta.is_file() {
            out.push((id, meta.len()));
        }
    }
    out.sort_unstable();
    Ok(out)
}

fn remove_file_if_exists(path: &Path) -> Result<(), BufferError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("deleting segment", path)(e)),
    }
}

fn create_segment(dir: &Path, id: u64) -> Result<File, BufferError> {
    let path = segment_path(dir, id);
    OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)
        .map_err(io_err("creating segment", &path))
}

fn acquire_lock(dir: &Path) -> Result<File, BufferError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_err("opening lock file", &path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(BufferError::Locked(dir.to_path_buf())),
        Err(TryLockError::Error(e)) if e.kind() == io::ErrorKind::Unsupported => {
            warn!(path = %path.display(), "file locking unsupported; disk buffer is not protected against concurrent use");
            Ok(file)
        }
        Err(TryLockError::Error(e)) => Err(io_err("locking", &path)(e)),
    }
}

/// In-memory bookkeeping for one segment file.
#[derive(Debug, Clone, Copy, Default)]
struct Segment {
    /// Bytes of whole records in the file (for the write segment: what has been appended).
    len: u64,
    /// Frames in this segment at or after the ack watermark (best effort).
    unacked_records: u64,
}

/// Outcome of reading within one segment.
enum SegmentRead {
    /// The batch is full; stop.
    Full,
    /// The cursor reached the end of the segment.
    End,
    /// The segment file vanished; it was removed from the index.
    Missing,
}

/// Cursor and budget of one `read` call.
struct BatchState {
    pos: Position,
    records: Vec<Vec<u8>>,
    bytes: usize,
    max_records: usize,
    max_bytes: usize,
}

/// The durable disk buffer. See the [module documentation](self) for guarantees and format.
#[derive(Debug)]
pub struct DiskBuffer {
    cfg: BufferConfig,
    /// All segment files, by id. Never empty: the last entry is the write segment.
    segments: BTreeMap<u64, Segment>,
    write_id: u64,
    writer: File,
    /// Sealed segments not yet fsynced; synced by `sync`.
    unsynced: Vec<File>,
    /// A segment file was created since the last directory fsync.
    dir_dirty: bool,
    /// The write segment holds unreadable bytes; the next append must start a new segment.
    roll_pending: bool,
    watermark: Position,
    total_bytes: u64,
    /// Positions of corrupt records already counted (pruned below the watermark).
    corrupt_seen: BTreeSet<Position>,
    appended_records: u64,
    dropped_records: u64,
    dropped_bytes: u64,
    corrupt_records: u64,
    frame: Vec<u8>,
    /// Held for its `flock`; released on drop.
    _lock: File,
}

impl DiskBuffer {
    /// Opens (creating if needed) the buffer in `cfg.dir` and recovers from any previous crash.
    ///
    /// Reads the ledger, deletes segments wholly before the watermark, truncates a torn tail of
    /// the last segment, and counts the unacked records (this walks the frame headers of every
    /// remaining segment). Fails with [`BufferError::Locked`] if the directory is in use.
    pub fn open(cfg: BufferConfig) -> Result<(Self, OpenReport), BufferError> {
        if cfg.max_bytes == 0 {
            return Err(BufferError::InvalidConfig(
                "max_bytes must be greater than zero",
            ));
        }
        if cfg.segment_bytes == 0 {
            return Err(BufferError::InvalidConfig(
                "segment_bytes must be greater than zero",
            ));
        }
        if cfg.segment_bytes > cfg.max_bytes / 4 {
            warn!(
                segment_bytes = cfg.segment_bytes,
                max_bytes = cfg.max_bytes,
                "disk buffer segments are large relative to the size cap; hitting the cap drops whole segments, so a large share of the buffer is lost at once"
            );
        }
        let dir = cfg.dir.clone();
        fs::create_dir_all(&dir).map_err(io_err("creating buffer directory", &dir))?;
        let lock = acquire_lock(&dir)?;
        ledger::remove_stale_tmp(&dir)?;
        let ledger_pos = ledger::load(&dir)?;
        let listed = list_segments(&dir)?;

        let watermark =
            ledger_pos.unwrap_or_else(|| Position::new(listed.first().map_or(0, |&(id, _)| id), 0));
        // A fresh segment must sort after everything on disk and after the watermark.
        let fresh_id = listed
            .last()
            .map_or(0, |&(id, _)| id.saturating_add(1))
            .max(watermark.segment + u64::from(watermark.offset > 0));
        let last_id = listed.last().map(|&(id, _)| id);

        let mut segments = BTreeMap::new();
        let mut writer = None;
        let mut truncated_bytes = 0;
        for &(id, file_len) in &listed {
            let path = segment_path(&dir, id);
            let count_from = if id == watermark.segment {
                watermark.offset
            } else {
                0
            };
            if Some(id) != last_id {
                if Position::new(id, file_len) <= watermark {
                    remove_file_if_exists(&path)?;
                    debug!(segment = id, "deleted acknowledged disk buffer segment");
                    continue;
                }
                let file = File::open(&path).map_err(io_err("opening segment", &path))?;
                let walk = format::walk(&file, count_from, file_len, count_from)
                    .map_err(io_err("scanning segment", &path))?;
                segments.insert(
                    id,
                    Segment {
                        len: file_len,
                        unacked_records: walk.frames,
                    },
                );
                continue;
            }

            // The last segment: find and cut a torn tail, then append to it.
            let file = OpenOptions::new()
                .read(true)
                .append(true)
                .open(&path)
                .map_err(io_err("opening segment", &path))?;
            let walk = format::walk(&file, 0, file_len, count_from)
                .map_err(io_err("scanning segment", &path))?;
            let mut len = file_len;
            if walk.stop != WalkStop::Clean {
                file.set_len(walk.end)
                    .and_then(|()| file.sync_all())
                    .map_err(io_err("truncating torn tail of segment", &path))?;
                truncated_bytes = file_len - walk.end;
                len = walk.end;
                warn!(
                    segment = id,
                    offset = walk.end,
                    truncated_bytes,
                    reason = if walk.stop == WalkStop::Torn {
                        "partial record"
                    } else {
                        "implausible record length"
                    },
                    "disk buffer truncated a torn tail"
                );
            }
            if Position::new(id, len) < watermark {
                // The ledger is ahead of the data (possible after power loss without sync).
                // Appending here would place new records before the watermark.
                drop(file);
                remove_file_if_exists(&path)?;
                warn!(
                    segment = id,
                    len,
                    watermark = %watermark,
                    "disk buffer ledger points past the end of the data; starting a new segment"
                );
                continue;
            }
            segments.insert(
                id,
                Segment {
                    len,
                    unacked_records: walk.frames,
                },
            );
            writer = Some((id, file));
        }

        let mut dir_dirty = false;
        let (write_id, writer) = match writer {
            Some(w) => w,
            None => {
                let file = create_segment(&dir, fresh_id)?;
                segments.insert(fresh_id, Segment::default());
                dir_dirty = true;
                (fresh_id, file)
            }
        };

        let total_bytes = segments.values().map(|s| s.len).sum();
        let unacked_bytes_estimate = segments
            .iter()
            .map(|(&id, s)| unacked_bytes(watermark, id, s.len))
            .sum();
        let report = OpenReport {
            segments: segments.len(),
            unacked_bytes_estimate,
            truncated_bytes,
        };
        info!(
            dir = %dir.display(),
            segments = report.segments,
            unacked_bytes = report.unacked_bytes_estimate,
            truncated_bytes,
            watermark = %watermark,
            "opened disk buffer"
        );
        let buffer = Self {
            cfg,
            segments,
            write_id,
            writer,
            unsynced: Vec::new(),
            dir_dirty,
            roll_pending: false,
            watermark,
            total_bytes,
            corrupt_seen: BTreeSet::new(),
            appended_records: 0,
            dropped_records: 0,
            dropped_bytes: 0,
            corrupt_records: 0,
            frame: Vec::new(),
            _lock: lock,
        };
        Ok((buffer, report))
    }

    /// Appends one record and returns its position (the offset of its first byte).
    ///
    /// The frame has been handed to the OS when this returns, so it survives a process crash;
    /// call [`sync`](Self::sync) for durability across power loss. If the segment files would
    /// exceed `max_bytes`, the oldest segments are deleted first (acked or not; counted in
    /// [`BufferStats`] and logged). Fails for payloads over [`MAX_RECORD_BYTES`] or frames
    /// larger than `max_bytes`. On a write error the partial frame is cut off again.
    pub fn append(&mut self, payload: &[u8]) -> Result<Position, BufferError> {
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|&l| l as usize <= MAX_RECORD_BYTES)
            .ok_or(BufferError::RecordTooLarge {
                len: payload.len(),
                max: MAX_RECORD_BYTES,
            })?;
        let frame_bytes = HEADER_LEN + u64::from(len);
        if frame_bytes > self.cfg.max_bytes {
            return Err(BufferError::ExceedsCapacity {
                frame_bytes,
                max_bytes: self.cfg.max_bytes,
            });
        }
        let current = self.write_len();
        if current > 0 && (self.roll_pending || current + frame_bytes > self.cfg.segment_bytes) {
            self.roll()?;
        }
        if self.total_bytes + frame_bytes > self.cfg.max_bytes {
            self.make_room(frame_bytes)?;
        }

        let offset = self.write_len();
        format::encode_frame(&mut self.frame, payload, len);
        let written = self.writer.write_all(&self.frame);
        if self.frame.capacity() > FRAME_SCRATCH_KEEP {
            self.frame = Vec::new();
        }
        if let Err(e) = written {
            let path = segment_path(&self.cfg.dir, self.write_id);
            // Cut off whatever part of the frame made it, so the segment stays well formed.
            if let Err(cut) = self.writer.set_len(offset) {
                warn!(segment = self.write_id, error = %cut, "could not cut off a partially written record; starting a new segment");
                self.roll_pending = true;
            }
            return Err(io_err("appending to segment", &path)(e));
        }
        if let Some(seg) = self.segments.get_mut(&self.write_id) {
            seg.len += frame_bytes;
            seg.unacked_records += 1;
        }
        self.total_bytes += frame_bytes;
        self.appended_records += 1;
        Ok(Position::new(self.write_id, offset))
    }

    /// fsyncs the current segment, segments sealed since the last call, and (if a segment was
    /// created) the directory. Everything appended before the call then survives power loss.
    pub fn sync(&mut self) -> Result<(), BufferError> {
        while let Some(file) = self.unsynced.first() {
            file.sync_data()
                .map_err(io_err("syncing sealed segment in", &self.cfg.dir))?;
            self.unsynced.remove(0);
        }
        self.writer.sync_data().map_err(io_err(
            "syncing segment",
            &segment_path(&self.cfg.dir, self.write_id),
        ))?;
        if self.dir_dirty {
            sync_dir(&self.cfg.dir)?;
            self.dir_dirty = false;
        }
        Ok(())
    }

    /// The first unacknowledged position: where a reader starts after connecting, reconnecting
    /// or restarting. It is the ack watermark, moved forward to the oldest existing segment if
    /// the size cap deleted the segment it pointed into.
    pub fn start(&self) -> Position {
        let oldest = self
            .segments
            .keys()
            .next()
            .copied()
            .unwrap_or(self.write_id);
        self.watermark.max(Position::new(oldest, 0))
    }

    /// The position just after the last appended record.
    pub fn end(&self) -> Position {
        Position::new(self.write_id, self.write_len())
    }

    /// Reads up to `max_records` records starting at `from`.
    ///
    /// `max_bytes` limits the payload bytes in the batch, except that the first record is
    /// always returned whatever its size (so a large record cannot stall the reader).
    /// If `from`'s segment was deleted by the size cap, reading continues at the start of the
    /// oldest existing segment after it; at the end of a segment it continues with the next.
    /// Corrupt records are skipped and counted (see the module docs). Reaching the end of the
    /// data returns what was collected, possibly nothing. Fails with
    /// [`BufferError::PositionOutOfRange`] if `from` is past [`end`](Self::end).
    pub fn read(
        &mut self,
        from: Position,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<ReadBatch, BufferError> {
        let end = self.end();
        if from > end {
            return Err(BufferError::PositionOutOfRange { pos: from, end });
        }
        let mut batch = BatchState {
            pos: from,
            records: Vec::new(),
            bytes: 0,
            max_records,
            max_bytes,
        };
        if max_records == 0 {
            return Ok(ReadBatch {
                records: Vec::new(),
                next: from,
            });
        }
        while let Some((&id, seg)) = self.segments.range(batch.pos.segment..).next() {
            let seg_len = seg.len;
            if id != batch.pos.segment {
                batch.pos = Position::new(id, 0);
            }
            if batch.pos.offset >= seg_len {
                if id == self.write_id {
                    break;
                }
                batch.pos = Position::new(id.saturating_add(1), 0);
                continue;
            }
            match self.read_segment(id, seg_len, &mut batch)? {
                SegmentRead::Full => break,
                SegmentRead::End | SegmentRead::Missing => {}
            }
        }
        Ok(ReadBatch {
            records: batch.records,
            next: batch.pos,
        })
    }

    /// Marks every record before `pos` as acknowledged.
    ///
    /// Ignored unless `pos` is beyond the current watermark. Persists the ledger atomically
    /// (three fsyncs: ack per batch, not per record), then deletes segments that lie entirely
    /// before the watermark, except the one being written. Fails with
    /// [`BufferError::PositionOutOfRange`] if `pos` is past [`end`](Self::end).
    pub fn ack_through(&mut self, pos: Position) -> Result<(), BufferError> {
        if pos <= self.watermark {
            return Ok(());
        }
        let end = self.end();
        if pos > end {
            return Err(BufferError::PositionOutOfRange { pos, end });
        }
        ledger::store(&self.cfg.dir, pos)?;
        let previous = std::mem::replace(&mut self.watermark, pos);

        // Keep `unacked_records` of the watermark segment in step (best effort).
        if let Some(seg) = self.segments.get(&pos.segment).copied() {
            let from = if previous.segment == pos.segment {
                previous.offset
            } else {
                0
            };
            let limit = pos.offset.min(seg.len);
            if limit > from {
                let path = segment_path(&self.cfg.dir, pos.segment);
                let walked =
                    File::open(&path).and_then(|file| format::walk(&file, from, limit, from));
                match walked {
                    Ok(walk) => {
                        if let Some(seg) = self.segments.get_mut(&pos.segment) {
                            seg.unacked_records = seg.unacked_records.saturating_sub(walk.frames);
                        }
                    }
                    Err(e) => {
                        warn!(segment = pos.segment, error = %e, "could not count acknowledged records; unacked_records may be off");
                    }
                }
            }
        }
        self.collect_acked();
        Ok(())
    }

    /// Current counters; see [`BufferStats`].
    pub fn stats(&self) -> BufferStats {
        BufferStats {
            bytes_on_disk: self.total_bytes,
            segments: self.segments.len(),
            appended_records: self.appended_records,
            dropped_records: self.dropped_records,
            dropped_bytes: self.dropped_bytes,
            corrupt_records: self.corrupt_records,
            unacked_records: self.segments.values().map(|s| s.unacked_records).sum(),
        }
    }

    fn write_len(&self) -> u64 {
        self.segments.get(&self.write_id).map_or(0, |s| s.len)
    }

    /// Seals the write segment and starts the next one.
    fn roll(&mut self) -> Result<(), BufferError> {
        let id = self.write_id.saturating_add(1);
        let file = create_segment(&self.cfg.dir, id)?;
        let sealed = std::mem::replace(&mut self.writer, file);
        self.write_id = id;
        self.segments.insert(id, Segment::default());
        self.dir_dirty = true;
        self.roll_pending = false;
        // Defer the sealed segment's fsync to `sync`, but keep the backlog (and open files) small.
        self.unsynced.push(sealed);
        if self.unsynced.len() > MAX_DEFERRED_SYNCS {
            let oldest = self.unsynced.remove(0);
            oldest
                .sync_data()
                .map_err(io_err("syncing sealed segment in", &self.cfg.dir))?;
        }
        debug!(segment = id, "disk buffer started a new segment");
        self.collect_acked();
        Ok(())
    }

    /// Deletes the oldest segments until `frame_bytes` more fit under `max_bytes`.
    fn make_room(&mut self, frame_bytes: u64) -> Result<(), BufferError> {
        let (mut segments, mut records, mut bytes) = (0u64, 0u64, 0u64);
        let mut result = Ok(());
        while self.total_bytes + frame_bytes > self.cfg.max_bytes {
            let Some(oldest) = self.segments.keys().next().copied() else {
                break;
            };
            if oldest == self.write_id {
                if self.write_len() == 0 {
                    break;
                }
                // Never delete the segment being written: seal it first.
                if let Err(e) = self.roll() {
                    result = Err(e);
                    break;
                }
                continue;
            }
            let len = self.segments.get(&oldest).map_or(0, |s| s.len);
            let lost_bytes = unacked_bytes(self.watermark, oldest, len);
            match self.remove_segment(oldest) {
                Ok(seg) => {
                    segments += 1;
                    records += seg.unacked_records;
                    bytes += lost_bytes;
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        self.dropped_records += records;
        self.dropped_bytes += bytes;
        if records > 0 || bytes > 0 {
            warn!(
                dir = %self.cfg.dir.display(),
                dropped_segments = segments,
                dropped_records = records,
                dropped_bytes = bytes,
                max_bytes = self.cfg.max_bytes,
                total_dropped_records = self.dropped_records,
                resume_at = %self.start(),
                "disk buffer full: dropped oldest unacknowledged records"
            );
        } else if segments > 0 {
            debug!(
                dropped_segments = segments,
                "disk buffer cap reached: deleted acknowledged segments"
            );
        }
        self.prune_corrupt_seen();
        result
    }

    /// Deletes a segment file and forgets it.
    fn remove_segment(&mut self, id: u64) -> Result<Segment, BufferError> {
        remove_file_if_exists(&segment_path(&self.cfg.dir, id))?;
        let seg = self.segments.remove(&id).unwrap_or_default();
        self.total_bytes = self.total_bytes.saturating_sub(seg.len);
        Ok(seg)
    }

    /// Deletes segments lying entirely before the watermark, except the write segment.
    fn collect_acked(&mut self) {
        let doomed: Vec<u64> = self
            .segments
            .iter()
            .take_while(|&(&id, seg)| Position::new(id, seg.len) <= self.watermark)
            .map(|(&id, _)| id)
            .filter(|&id| id != self.write_id)
            .collect();
        for id in doomed {
            match self.remove_segment(id) {
                Ok(_) => debug!(segment = id, "deleted acknowledged disk buffer segment"),
                // Left in the index; retried after the next ack or roll.
                Err(e) => {
                    warn!(segment = id, error = %e, "could not delete acknowledged disk buffer segment");
                }
            }
        }
        self.prune_corrupt_seen();
    }

    fn prune_corrupt_seen(&mut self) {
        if !self.corrupt_seen.is_empty() {
            self.corrupt_seen = self.corrupt_seen.split_off(&self.start());
        }
    }

    /// Reads records of segment `id` (whole records span `[0, seg_len)`) into `batch`.
    fn read_segment(
        &mut self,
        id: u64,
        seg_len: u64,
        batch: &mut BatchState,
    ) -> Result<SegmentRead, BufferError> {
        let path = segment_path(&self.cfg.dir, id);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound && id != self.write_id => {
                warn!(segment = id, path = %path.display(), "disk buffer segment vanished; skipping it");
                if let Some(seg) = self.segments.remove(&id) {
                    self.total_bytes = self.total_bytes.saturating_sub(seg.len);
                }
                return Ok(SegmentRead::Missing);
            }
            Err(e) => return Err(io_err("opening segment", &path)(e)),
        };
        let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, file);
        reader
            .seek(SeekFrom::Start(batch.pos.offset))
            .map_err(io_err("seeking in segment", &path))?;
        loop {
            if batch.records.len() >= batch.max_records {
                return Ok(SegmentRead::Full);
            }
            let remaining = seg_len.saturating_sub(batch.pos.offset);
            if remaining == 0 {
                return Ok(SegmentRead::End);
            }
            if remaining < HEADER_LEN {
                self.skip_rest_of_segment(id, seg_len, batch, "truncated record header");
                return Ok(SegmentRead::End);
            }
            let mut header = [0u8; HEADER_LEN as usize];
            match reader.read_exact(&mut header) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    self.skip_rest_of_segment(
                        id,
                        seg_len,
                        batch,
                        "segment file shorter than expected",
                    );
                    return Ok(SegmentRead::End);
                }
                Err(e) => return Err(io_err("reading segment", &path)(e)),
            }
            let (len, crc) = format::decode_header(&header);
            let frame_bytes = HEADER_LEN + u64::from(len);
            let len = len as usize;
            if len > MAX_RECORD_BYTES || frame_bytes > remaining {
                self.skip_rest_of_segment(id, seg_len, batch, "implausible record length");
                return Ok(SegmentRead::End);
            }
            if !batch.records.is_empty() && batch.bytes + len > batch.max_bytes {
                return Ok(SegmentRead::Full);
            }
            let mut payload = vec![0u8; len];
            match reader.read_exact(&mut payload) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    self.skip_rest_of_segment(
                        id,
                        seg_len,
                        batch,
                        "segment file shorter than expected",
                    );
                    return Ok(SegmentRead::End);
                }
                Err(e) => return Err(io_err("reading segment", &path)(e)),
            }
            let at = batch.pos;
            batch.pos.offset += frame_bytes;
            if crc32fast::hash(&payload) != crc {
                self.note_corrupt(at, frame_bytes, "crc mismatch");
                continue;
            }
            batch.bytes += len;
            batch.records.push(payload);
        }
    }

    /// Skips from the cursor to the end of segment `id` after unreadable framing.
    fn skip_rest_of_segment(
        &mut self,
        id: u64,
        seg_len: u64,
        batch: &mut BatchState,
        reason: &'static str,
    ) {
        self.note_corrupt(batch.pos, seg_len - batch.pos.offset, reason);
        batch.pos.offset = seg_len;
        if id == self.write_id {
            // Records appended after the garbage would be skipped too: write elsewhere.
            self.roll_pending = true;
        }
    }

    fn note_corrupt(&mut self, at: Position, skipped_bytes: u64, reason: &'static str) {
        if self.corrupt_seen.insert(at) {
            self.corrupt_records += 1;
            warn!(
                dir = %self.cfg.dir.display(),
                segment = at.segment,
                offset = at.offset,
                skipped_bytes,
                reason,
                total_corrupt_records = self.corrupt_records,
                "disk buffer skipped a corrupt record"
            );
        }
    }
}

/// Bytes of segment `id` (of length `len`) at or after `watermark`.
fn unacked_bytes(watermark: Position, id: u64, len: u64) -> u64 {
    match id.cmp(&watermark.segment) {
        std::cmp::Ordering::Less => 0,
        std::cmp::Ordering::Equal => len.saturating_sub(watermark.offset),
        std::cmp::Ordering::Greater => len,
    }
}
