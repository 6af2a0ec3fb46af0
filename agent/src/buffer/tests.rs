//! Tests for the disk buffer.

use std::collections::VecDeque;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::*;

fn cfg(dir: &Path, segment_bytes: u64, max_bytes: u64) -> BufferConfig {
    BufferConfig {
        dir: dir.to_path_buf(),
        max_bytes,
        segment_bytes,
    }
}

fn open(cfg: &BufferConfig) -> (DiskBuffer, OpenReport) {
    DiskBuffer::open(cfg.clone()).expect("open buffer")
}

/// Deterministic payload of varied size (1..=300 bytes) tagged with its index.
fn payload(i: usize) -> Vec<u8> {
    let len = 1 + (i * 37) % 300;
    let mut p: Vec<u8> = (0..len).map(|j| (i * 31 + j * 7) as u8).collect();
    p[0] = i as u8;
    p
}

fn frame_len(p: &[u8]) -> u64 {
    HEADER_LEN + p.len() as u64
}

/// Reads everything from `from` with small batches; returns the records and the final position.
fn read_all(buf: &mut DiskBuffer, from: Position) -> (Vec<Vec<u8>>, Position) {
    let mut out = Vec::new();
    let mut pos = from;
    loop {
        let batch = buf.read(pos, 7, 1000).expect("read");
        assert!(batch.next >= pos, "read went backwards");
        pos = batch.next;
        if batch.records.is_empty() {
            assert_eq!(pos, buf.end(), "an empty batch means the end was reached");
            return (out, pos);
        }
        out.extend(batch.records);
    }
}

/// [`read_all`] from [`DiskBuffer::start`].
fn read_from_start(buf: &mut DiskBuffer) -> (Vec<Vec<u8>>, Position) {
    let start = buf.start();
    read_all(buf, start)
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| parse_segment_name(n).is_some())
        })
        .collect();
    files.sort();
    files
}

fn patch(dir: &Path, at: Position, offset_in_record: u64, bytes: &[u8]) {
    let path = segment_path(dir, at.segment);
    let mut data = fs::read(&path).expect("read segment");
    let start = (at.offset + offset_in_record) as usize;
    data[start..start + bytes.len()].copy_from_slice(bytes);
    fs::write(&path, data).expect("write segment");
}

#[test]
fn round_trip_across_segments() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = cfg(tmp.path(), 1024, DEFAULT_MAX_BYTES);
    let (mut buf, report) = open(&cfg);
    assert_eq!(report.segments, 1);
    assert_eq!(report.truncated_bytes, 0);

    let expected: Vec<Vec<u8>> = (0..200).map(payload).collect();
    let mut positions = Vec::new();
    for p in &expected {
        positions.push(buf.append(p).expect("append"));
    }
    assert!(positions.windows(2).all(|w| w[0] < w[1]));
    buf.sync().expect("sync");
    let stats = buf.stats();
    assert_eq!(stats.appended_records, 200);
    assert_eq!(stats.unacked_records, 200);
    assert!(
        stats.segments > 5,
        "expected several segments, got {}",
        stats.segments
    );
    assert_eq!(stats.segments, segment_files(tmp.path()).len());
    assert_eq!(
        stats.bytes_on_disk,
        expected.iter().map(|p| frame_len(p)).sum::<u64>()
    );
    for f in segment_files(tmp.path()) {
        let len = fs::metadata(&f).expect("metadata").len();
        // A segment only exceeds segment_bytes if it holds a single record.
        assert!(len <= 1024, "{} is {len} bytes", f.display());
    }

    let start = buf.start();
    assert_eq!(start, Position::new(0, 0));
    let (got, end) = read_all(&mut buf, start);
    assert_eq!(got, expected);
    buf.ack_through(end).expect("ack");
    let stats = buf.stats();
    assert_eq!(stats.unacked_records, 0);
    assert_eq!(
        stats.segments, 1,
        "only the write segment survives a full ack"
    );
    assert_eq!(segment_files(tmp.path()).len(), 1);
    drop(buf);

    let (mut buf, report) = open(&cfg);
    assert_eq!(report.unacked_bytes_estimate, 0);
    assert_eq!(report.segments, 1);
    assert_eq!(buf.stats().unacked_records, 0);
    let start = buf.start();
    assert_eq!(start, end);
    let batch = buf.read(start, 100, usize::MAX).expect("read");
    assert!(batch.records.is_empty());
    // And the buffer keeps working after the restart.
    buf.append(b"after").expect("append");
    let (got, _) = read_all(&mut buf, start);
    assert_eq!(got, vec![b"after".to_vec()]);
}

#[test]
fn read_respects_record_and_byte_budgets() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut buf, _) = open(&cfg(tmp.path(), 4096, DEFAULT_MAX_BYTES));
    for len in [10usize, 20, 30, 400] {
        buf.append(&vec![len as u8; len]).expect("append");
    }
    let b = buf.read(buf.start(), 2, usize::MAX).expect("read");
    assert_eq!(b.records.len(), 2);
    let b = buf.read(b.next, 10, 25).expect("read");
    assert_eq!(
        b.records,
        vec![vec![30u8; 30]],
        "first record always returned"
    );
    let b = buf.read(b.next, 10, 1).expect("read");
    assert_eq!(b.records, vec![vec![144u8; 400]]);
    let b2 = buf.read(b.next, 10, 1).expect("read");
    assert!(b2.records.is_empty());
    assert_eq!(b2.next, b.next);
    let none = buf.read(buf.start(), 0, usize::MAX).expect("read");
    assert!(none.records.is_empty());
    assert_eq!(none.next, buf.start());
}

#[test]
fn reopen_replays_exactly_the_unacked_records() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = cfg(tmp.path(), 700, DEFAULT_MAX_BYTES);
    let expected: Vec<Vec<u8>> = (0..60).map(payload).collect();
    let acked_upto;
    {
        let (mut buf, _) = open(&cfg);
        for p in &expected {
            buf.append(p).expect("append");
        }
        // Read and ack 25 records in a few batches, then read 10 more without acking.
        let mut pos = buf.start();
        let mut n = 0;
        while n < 25 {
            let b = buf.read(pos, (25 - n).min(4), usize::MAX).expect("read");
            n += b.records.len();
            pos = b.next;
            buf.ack_through(pos).expect("ack");
        }
        acked_upto = pos;
        let b = buf.read(pos, 10, usize::MAX).expect("read");
        assert_eq!(b.records.len(), 10);
        assert_eq!(buf.stats().unacked_records, 35);
        // Dropped without acking: simulates a restart.
    }
    let (mut buf, report) = open(&cfg);
    assert_eq!(report.truncated_bytes, 0);
    assert_eq!(
        report.unacked_bytes_estimate,
        expected[25..].iter().map(|p| frame_len(p)).sum::<u64>()
    );
    assert_eq!(buf.start(), acked_upto);
    assert_eq!(buf.stats().unacked_records, 35);
    let (got, _) = read_from_start(&mut buf);
    assert_eq!(got, expected[25..].to_vec());
    // Segments wholly before the watermark are gone.
    let oldest = segment_files(tmp.path())[0].clone();
    assert_eq!(oldest, segment_path(tmp.path(), acked_upto.segment));
}

#[test]
fn stale_or_out_of_range_acks() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut buf, _) = open(&cfg(tmp.path(), 4096, DEFAULT_MAX_BYTES));
    buf.append(b"one").expect("append");
    let second = buf.append(b"two").expect("append");
    buf.ack_through(second).expect("ack");
    buf.ack_through(Position::new(0, 0))
        .expect("stale ack is ignored");
    assert_eq!(buf.start(), second);
    let beyond = Position::new(0, buf.end().offset + 1);
    assert!(matches!(
        buf.ack_through(beyond),
        Err(BufferError::PositionOutOfRange { .. })
    ));
    assert!(matches!(
        buf.read(Position::new(5, 0), 1, 1),
        Err(BufferError::PositionOutOfRange { .. })
    ));
    let (got, _) = read_from_start(&mut buf);
    assert_eq!(got, vec![b"two".to_vec()]);
}

#[test]
fn torn_tail_is_truncated_on_open() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = cfg(tmp.path(), 1024, DEFAULT_MAX_BYTES);
    let expected: Vec<Vec<u8>> = (0..20).map(payload).collect();
    {
        let (mut buf, _) = open(&cfg);
        for p in &expected {
            buf.append(p).expect("append");
        }
    }
    let last = segment_files(tmp.path()).pop().expect("a segment");
    let clean_len = fs::metadata(&last).expect("metadata").len();
    // A header announcing 100 bytes followed by only 10 of them: a crash mid-append.
    let mut torn = Vec::new();
    torn.extend_from_slice(&100u32.to_le_bytes());
    torn.extend_from_slice(&0xdead_beef_u32.to_le_bytes());
    torn.extend_from_slice(&[7u8; 10]);
    OpenOptions::new()
        .append(true)
        .open(&last)
        .expect("open segment")
        .write_all(&torn)
        .expect("write garbage");

    let (mut buf, report) = open(&cfg);
    assert_eq!(report.truncated_bytes, torn.len() as u64);
    assert_eq!(fs::metadata(&last).expect("metadata").len(), clean_len);
    let (got, end) = read_from_start(&mut buf);
    assert_eq!(got, expected);
    assert_eq!(buf.stats().corrupt_records, 0);

    // New appends go right after the last whole record and read back fine.
    let pos = buf.append(b"fresh").expect("append");
    assert_eq!(pos, end);
    let (got, _) = read_all(&mut buf, end);
    assert_eq!(got, vec![b"fresh".to_vec()]);
    drop(buf);

    // A partial header (3 bytes) is torn too.
    OpenOptions::new()
        .append(true)
        .open(&last)
        .expect("open segment")
        .write_all(&[1, 2, 3])
        .expect("write garbage");
    let (mut buf, report) = open(&cfg);
    assert_eq!(report.truncated_bytes, 3);
    let (got, _) = read_from_start(&mut buf);
    assert_eq!(got.len(), expected.len() + 1);
}

#[test]
fn ledger_past_truncated_end_starts_a_new_segment() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = cfg(tmp.path(), 1 << 20, DEFAULT_MAX_BYTES);
    let end;
    {
        let (mut buf, _) = open(&cfg);
        for i in 0..10 {
            buf.append(&payload(i)).expect("append");
        }
        end = buf.end();
        buf.ack_through(end).expect("ack");
    }
    // Power loss lost the tail of the data but the ledger survived.
    let seg = segment_path(tmp.path(), 0);
    let f = OpenOptions::new().write(true).open(&seg).expect("open");
    f.set_len(end.offset / 2).expect("truncate");
    drop(f);

    let (mut buf, report) = open(&cfg);
    assert!(report.truncated_bytes > 0 || fs::metadata(&seg).is_err());
    assert!(!seg.exists(), "fully acked segment is deleted");
    let pos = buf.append(b"new").expect("append");
    assert!(
        pos > end,
        "new record {pos} must sort after the watermark {end}"
    );
    let (got, _) = read_from_start(&mut buf);
    assert_eq!(got, vec![b"new".to_vec()]);
}

#[test]
fn crc_mismatch_skips_exactly_that_record() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = cfg(tmp.path(), 600, DEFAULT_MAX_BYTES);
    let expected: Vec<Vec<u8>> = (0..40).map(payload).collect();
    let mut positions = Vec::new();
    {
        let (mut buf, _) = open(&cfg);
        for p in &expected {
            positions.push(buf.append(p).expect("append"));
        }
    }
    let victim = 12;
    assert!(expected[victim].len() >= 2);
    let at = positions[victim];
    assert!(
        at.segment < positions[39].segment,
        "victim not in the last segment"
    );
    let original = expected[victim][1];
    patch(tmp.path(), at, HEADER_LEN + 1, &[original ^ 0xff]);

    let (mut buf, report) = open(&cfg);
    assert_eq!(report.truncated_bytes, 0);
    let (got, _) = read_from_start(&mut buf);
    let mut want = expected.clone();
    want.remove(victim);
    assert_eq!(got, want);
    assert_eq!(buf.stats().corrupt_records, 1);
    // Re-reading the same damage does not count it twice.
    let (again, _) = read_from_start(&mut buf);
    assert_eq!(again, want);
    assert_eq!(buf.stats().corrupt_records, 1);
}

#[test]
fn implausible_length_skips_rest_of_segment() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = cfg(tmp.path(), 600, DEFAULT_MAX_BYTES);
    let expected: Vec<Vec<u8>> = (0..40).map(payload).collect();
    let mut positions = Vec::new();
    {
        let (mut buf, _) = open(&cfg);
        for p in &expected {
            positions.push(buf.append(p).expect("append"));
        }
    }
    // Pick a record in the second segment that has a successor in the same segment.
    let seg = positions[0].segment + 1;
    let in_seg: Vec<usize> = (0..positions.len())
        .filter(|&i| positions[i].segment == seg)
        .collect();
    assert!(
        in_seg.len() >= 2,
        "segment {seg} holds {} records",
        in_seg.len()
    );
    let victim = in_seg[0];
    patch(tmp.path(), positions[victim], 0, &u32::MAX.to_le_bytes());

    let (mut buf, report) = open(&cfg);
    assert_eq!(
        report.truncated_bytes, 0,
        "only the last segment is truncated"
    );
    let (got, _) = read_from_start(&mut buf);
    let want: Vec<Vec<u8>> = expected
        .iter()
        .enumerate()
        .filter(|(i, _)| positions[*i].segment != seg)
        .map(|(_, p)| p.clone())
        .collect();
    assert_eq!(got, want);
    assert_eq!(buf.stats().corrupt_records, 1);

    // A length that fits the 16 MiB limit but runs past the end of the segment is implausible too.
    let victim = in_seg[1];
    drop(buf);
    patch(
        tmp.path(),
        positions[victim],
        0,
        &(MAX_RECORD_BYTES as u32).to_le_bytes(),
    );
    patch(
        tmp.path(),
        positions[in_seg[0]],
        0,
        &(expected[in_seg[0]].len() as u32).to_le_bytes(),
    );
    let (mut buf, _) = open(&cfg);
    let (got, _) = read_from_start(&mut buf);
    let want: Vec<Vec<u8>> = expected
        .iter()
        .enumerate()
        .filter(|(i, _)| positions[*i].segment != seg || *i == in_seg[0])
        .map(|(_, p)| p.clone())
        .collect();
    assert_eq!(got, want);
    assert_eq!(buf.stats().corrupt_records, 1);
}

#[test]
fn corruption_in_the_write_segment_moves_appends_to_a_new_segment() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = cfg(tmp.path(), 1 << 20, DEFAULT_MAX_BYTES);
    let (mut buf, _) = open(&cfg);
    let a = buf.append(b"first").expect("append");
    buf.append(b"second").expect("append");
    patch(tmp.path(), a, 0, &u32::MAX.to_le_bytes());
    let b = buf.read(buf.start(), 10, usize::MAX).expect("read");
    assert!(b.records.is_empty());
    assert_eq!(buf.stats().corrupt_records, 1);
    let c = buf.append(b"third").expect("append");
    assert_eq!(c.segment, a.segment + 1, "append after corruption rolls");
    let b = buf.read(b.next, 10, usize::MAX).expect("read");
    assert_eq!(b.records, vec![b"third".to_vec()]);
    // A replay from the start skips the damage again but still finds the new record.
    drop(buf);
    let (mut buf, _) = open(&cfg);
    let (got, _) = read_from_start(&mut buf);
    assert_eq!(got, vec![b"third".to_vec()]);
}

#[test]
fn size_cap_drops_oldest_segments() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = cfg(tmp.path(), 1000, 3000);
    let (mut buf, _) = open(&cfg);
    let rec = |i: usize| vec![i as u8; 100];
    let mut positions = Vec::new();
    for i in 0..100 {
        positions.push(buf.append(&rec(i)).expect("append"));
        assert!(buf.stats().bytes_on_disk <= 3000);
    }
    let stats = buf.stats();
    assert!(stats.dropped_records > 0);
    assert_eq!(stats.dropped_bytes, stats.dropped_records * 108);
    assert_eq!(stats.appended_records, 100);
    assert_eq!(stats.unacked_records + stats.dropped_records, 100);
    assert_eq!(stats.segments, segment_files(tmp.path()).len());

    // Reading from the very first position continues at the oldest surviving segment.
    let oldest = segment_files(tmp.path())[0].clone();
    assert!(oldest != segment_path(tmp.path(), 0));
    let (got, _) = read_all(&mut buf, Position::new(0, 0));
    let survivors = 100 - stats.dropped_records as usize;
    assert_eq!(got.len(), survivors);
    let want: Vec<Vec<u8>> = (100 - survivors..100).map(rec).collect();
    assert_eq!(got, want);
    assert_eq!(buf.start().offset, 0);
    assert_eq!(buf.start(), positions[100 - survivors]);

    // Acked data is not counted as dropped.
    let end = buf.end();
    buf.ack_through(end).expect("ack");
    let before = buf.stats().dropped_records;
    for i in 0..10 {
        buf.append(&rec(i)).expect("append");
    }
    assert_eq!(buf.stats().dropped_records, before);
}

#[test]
fn size_cap_with_a_single_segment_rolls_before_dropping() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // Segments could grow to 1 MiB but the whole buffer is capped at 10 records.
    let cfg = cfg(tmp.path(), 1 << 20, 1080);
    let (mut buf, _) = open(&cfg);
    for i in 0..25 {
        buf.append(&[i as u8; 100]).expect("append");
        assert!(buf.stats().bytes_on_disk <= 1080);
    }
    let stats = buf.stats();
    assert_eq!(stats.dropped_records, 20);
    assert_eq!(stats.dropped_bytes, 20 * 108);
    let (got, _) = read_all(&mut buf, Position::default());
    assert_eq!(
        got,
        (20..25).map(|i| vec![i as u8; 100]).collect::<Vec<_>>()
    );
    drop(buf);
    let (buf, report) = open(&cfg);
    assert_eq!(buf.stats().unacked_records, 5);
    assert_eq!(report.unacked_bytes_estimate, 5 * 108);
}

#[test]
fn oversized_records_are_rejected() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut buf, _) = open(&cfg(tmp.path(), 4096, 1000));
    let huge = vec![0u8; MAX_RECORD_BYTES + 1];
    assert!(matches!(
        buf.append(&huge),
        Err(BufferError::RecordTooLarge { .. })
    ));
    assert!(matches!(
        buf.append(&[0u8; 993]),
        Err(BufferError::ExceedsCapacity { .. })
    ));
    buf.append(&[0u8; 992]).expect("exactly at the cap");
    assert_eq!(buf.stats().appended_records, 1);
    assert!(
        BufferError::RecordTooLarge { len: 1, max: 0 }
            .to_string()
            .starts_with("record of")
    );
}

#[test]
fn second_open_of_the_same_dir_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = cfg(tmp.path(), 4096, DEFAULT_MAX_BYTES);
    let (_buf, _) = open(&cfg);
    assert!(matches!(
        DiskBuffer::open(cfg.clone()),
        Err(BufferError::Locked(_))
    ));
}

#[test]
fn corrupt_ledger_replays_everything() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = cfg(tmp.path(), 4096, DEFAULT_MAX_BYTES);
    {
        let (mut buf, _) = open(&cfg);
        for i in 0..5 {
            buf.append(&payload(i)).expect("append");
        }
        let b = buf.read(buf.start(), 2, usize::MAX).expect("read");
        buf.ack_through(b.next).expect("ack");
    }
    fs::write(tmp.path().join("ledger"), b"garbage").expect("write ledger");
    let (mut buf, _) = open(&cfg);
    let (got, _) = read_from_start(&mut buf);
    assert_eq!(got, (0..5).map(payload).collect::<Vec<_>>());
}

#[test]
fn invalid_config_is_rejected() {
    let tmp = tempfile::tempdir().expect("tempdir");
    assert!(matches!(
        DiskBuffer::open(cfg(tmp.path(), 0, 10)),
        Err(BufferError::InvalidConfig(_))
    ));
    assert!(matches!(
        DiskBuffer::open(cfg(tmp.path(), 10, 0)),
        Err(BufferError::InvalidConfig(_))
    ));
    let d = BufferConfig::default();
    assert_eq!(d.max_bytes, 512 * 1024 * 1024);
    assert_eq!(d.segment_bytes, 8 * 1024 * 1024);
}

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<u8>),
    Read {
        max_records: usize,
        max_bytes: usize,
    },
    AckLastRead,
    AckStale,
    Sync,
    Reopen,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => proptest::collection::vec(any::<u8>(), 0..200).prop_map(Op::Append),
        4 => (1usize..8, 1usize..600)
            .prop_map(|(max_records, max_bytes)| Op::Read { max_records, max_bytes }),
        2 => Just(Op::AckLastRead),
        1 => Just(Op::AckStale),
        1 => Just(Op::Sync),
        1 => Just(Op::Reopen),
    ]
}

/// In-memory reference model of the buffer.
#[derive(Default)]
struct Model {
    /// Every appended, not yet acked payload, oldest first.
    unacked: VecDeque<Vec<u8>>,
    /// How many of `unacked` the reader has already been given since the last reset.
    read_idx: usize,
}

impl Model {
    fn next_batch(&self, max_records: usize, max_bytes: usize) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = Vec::new();
        let mut bytes = 0;
        for r in self.unacked.iter().skip(self.read_idx) {
            if out.len() >= max_records || (!out.is_empty() && bytes + r.len() > max_bytes) {
                break;
            }
            bytes += r.len();
            out.push(r.clone());
        }
        out
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn model_based_operations_match_in_memory_model(
        segment_bytes in 64u64..1024,
        ops in proptest::collection::vec(op_strategy(), 1..80),
    ) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cfg = cfg(tmp.path(), segment_bytes, DEFAULT_MAX_BYTES);
        let (mut buf, _) = open(&cfg);
        let mut model = Model::default();
        let mut cursor = buf.start();
        // `next` of the latest read and the model's read index at that point.
        let mut last_read: Option<(Position, usize)> = None;
        let mut last_ack: Option<Position> = None;

        for op in ops {
            match op {
                Op::Append(p) => {
                    let pos = buf.append(&p).expect("append");
                    prop_assert!(pos >= cursor);
                    model.unacked.push_back(p);
                }
                Op::Read { max_records, max_bytes } => {
                    let batch = buf.read(cursor, max_records, max_bytes).expect("read");
                    let want = model.next_batch(max_records, max_bytes);
                    prop_assert_eq!(&batch.records, &want);
                    prop_assert!(batch.next >= cursor);
                    cursor = batch.next;
                    model.read_idx += want.len();
                    last_read = Some((cursor, model.read_idx));
                }
                Op::AckLastRead => {
                    if let Some((pos, idx)) = last_read.take() {
                        buf.ack_through(pos).expect("ack");
                        model.unacked.drain(..idx);
                        model.read_idx -= idx;
                        last_ack = Some(pos);
                        prop_assert_eq!(buf.start().max(pos), buf.start());
                    }
                }
                Op::AckStale => {
                    if let Some(pos) = last_ack {
                        let before = buf.start();
                        buf.ack_through(pos).expect("stale ack");
                        prop_assert_eq!(buf.start(), before);
                    }
                }
                Op::Sync => buf.sync().expect("sync"),
                Op::Reopen => {
                    drop(buf);
                    let (b, report) = open(&cfg);
                    buf = b;
                    prop_assert_eq!(report.truncated_bytes, 0);
                    prop_assert_eq!(
                        report.unacked_bytes_estimate,
                        model.unacked.iter().map(|p| frame_len(p)).sum::<u64>()
                    );
                    cursor = buf.start();
                    model.read_idx = 0;
                    last_read = None;
                }
            }
            let stats = buf.stats();
            prop_assert_eq!(stats.unacked_records, model.unacked.len() as u64);
            prop_assert_eq!(stats.dropped_records, 0);
            prop_assert_eq!(stats.corrupt_records, 0);
            prop_assert_eq!(stats.segments, segment_files(tmp.path()).len());
        }

        // Drain: the rest comes out in order; then ack everything and restart empty.
        let (rest, end) = read_all(&mut buf, cursor);
        let want: Vec<Vec<u8>> = model.unacked.iter().skip(model.read_idx).cloned().collect();
        prop_assert_eq!(rest, want);
        buf.ack_through(end).expect("ack");
        prop_assert_eq!(buf.stats().unacked_records, 0);
        prop_assert_eq!(buf.stats().segments, 1);
        drop(buf);
        let (mut buf, report) = open(&cfg);
        prop_assert_eq!(report.unacked_bytes_estimate, 0);
        let batch = buf.read(buf.start(), 100, usize::MAX).expect("read");
        prop_assert!(batch.records.is_empty());
    }
}

#[test]
fn io_errors_name_the_operation_path_and_cause() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("not-a-dir");
    fs::write(&file, b"x").expect("write");
    let err = DiskBuffer::open(cfg(&file.join("buffer"), 10, 10)).expect_err("cannot create dir");
    let msg = err.to_string();
    assert!(
        msg.starts_with("i/o error while creating buffer directory"),
        "{msg}"
    );
    assert!(msg.contains("not-a-dir"), "{msg}");
    assert!(matches!(err, BufferError::Io { .. }));
}
