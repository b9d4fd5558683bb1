//! Bulk import of NDJSON, JSON arrays or CSV (canonical or DVCQG column names), through
//! the same validation and topics as the gateway, one transaction per batch.

use crate::error::IngestError;
use crate::pipeline;
use crate::sink::KafkaSink;
use chrono::{DateTime, Utc};
use dvc_pulse_model::Validator;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use tokio::sync::mpsc;

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportSummary {
    /// Records read (after `skip_before`).
    pub records: usize,
    /// Accepted events committed to the events topic.
    pub accepted: usize,
    /// Rejected records committed to the dead-letter topic, by reason.
    pub rejected: BTreeMap<String, usize>,
    /// Index (line or array position) of the last committed record.
    pub committed_through: Option<usize>,
}

/// Import options.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Records per transaction.
    pub batch_size: usize,
    /// Skip records whose index is below this (to resume after a failure).
    pub skip_before: usize,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            batch_size: 2000,
            skip_before: 0,
        }
    }
}

/// Input file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    /// One JSON object per line.
    Ndjson,
    /// One JSON array of objects.
    JsonArray,
    /// CSV with a header of field names.
    Csv,
}

/// Guesses the format from the extension, then the first byte.
pub fn detect(path: &Path) -> Result<InputFormat, IngestError> {
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
    {
        return Ok(InputFormat::Csv);
    }
    let mut f = std::fs::File::open(path).map_err(|source| io(path, source))?;
    let mut buf = [0u8; 4096];
    let n = f.read(&mut buf).map_err(|source| io(path, source))?;
    let head = dvc_pulse_model::parse::strip_bom(&buf[..n]);
    Ok(match head.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => InputFormat::JsonArray,
        _ => InputFormat::Ndjson,
    })
}

fn io(path: &Path, source: std::io::Error) -> IngestError {
    IngestError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Imports `path`. `progress(bytes_read, bytes_total)` is called after each batch.
/// On a Kafka failure the error is returned with the summary so far: rerun with
/// `skip_before = committed_through + 1` to resume without duplicates.
pub async fn import_file(
    path: &Path,
    validator: &Validator,
    sink: &KafkaSink,
    options: &ImportOptions,
    now: impl Fn() -> DateTime<Utc>,
    progress: impl Fn(u64, u64),
) -> Result<ImportSummary, (ImportSummary, IngestError)> {
    let (mut rx, reader, total) =
        read_file(path, options).map_err(|e| (ImportSummary::default(), e))?;
    let origin = format!(
        "import:{}",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    );
    let mut summary = ImportSummary::default();
    while let Some(batch) = rx.recv().await {
        let (records, read) = batch.map_err(|e| (summary.clone(), e))?;
        let last = records.last_index();
        summary.records += records.len();
        let outcome = pipeline::process(validator, records.iter(), &origin, now());
        sink.publish(outcome.messages)
            .await
            .map_err(|e| (summary.clone(), e.into()))?;
        summary.accepted += outcome.accepted;
        for r in outcome.rejected {
            *summary.rejected.entry(r.reason.to_string()).or_default() += 1;
        }
        summary.committed_through = last.or(summary.committed_through);
        progress(read, total);
    }
    reader
        .await
        .map_err(|e| (summary.clone(), IngestError::Internal(e.to_string())))?;
    Ok(summary)
}

/// Batches of `(index, raw record)` read from a file on a blocking thread, each with the
/// bytes read so far; plus the reader's task and the file's size.
pub type RecordBatches = mpsc::Receiver<Result<(Records, u64), IngestError>>;

/// A batch of raw records, each with its index (line or array position): their bytes
/// in one buffer, so reading allocates per batch, not per record.
#[derive(Debug, Clone, Default)]
pub struct Records {
    bytes: Vec<u8>,
    /// Index of each record and where its bytes lie.
    spans: Vec<(usize, usize, usize)>,
}

impl Records {
    /// Room for `n` records of `bytes` bytes in all.
    pub fn with_capacity(n: usize, bytes: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(bytes),
            spans: Vec::with_capacity(n),
        }
    }

    /// The NDJSON lines of `block` (whole lines, the first numbered `first`), without
    /// copying them: each trimmed, blank ones skipped. What [`read_ndjson_blocks`] hands
    /// over (the file's byte-order mark already dropped) becomes records here, on
    /// whatever thread parses them.
    pub fn from_lines(block: Vec<u8>, first: usize) -> Self {
        let mut spans = Vec::with_capacity(block.len() / 128);
        let mut start = 0;
        for index in first.. {
            if start >= block.len() {
                break;
            }
            let end = memchr::memchr(b'\n', &block[start..]).map_or(block.len(), |n| start + n);
            let t = block[start..end].trim_ascii();
            if !t.is_empty() {
                let at = t.as_ptr() as usize - block.as_ptr() as usize;
                spans.push((index, at, at + t.len()));
            }
            start = end + 1;
        }
        Self {
            bytes: block,
            spans,
        }
    }

    /// Adds a record.
    pub fn push(&mut self, index: usize, raw: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(raw);
        self.spans.push((index, start, self.bytes.len()));
    }

    /// Records held.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// True when no record is held.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Bytes held, all records together.
    pub fn bytes(&self) -> usize {
        self.bytes.len()
    }

    /// Index of the last record.
    pub fn last_index(&self) -> Option<usize> {
        self.spans.last().map(|e| e.0)
    }

    /// `(index, raw record)`, in order.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &[u8])> {
        self.spans
            .iter()
            .map(|&(index, start, end)| (index, &self.bytes[start..end]))
    }

    /// `(index, record)`, in order, when every byte held is UTF-8 and every record starts
    /// and ends on a character boundary (lines always do: they are cut at line breaks and
    /// trimmed of ASCII white space only): one check of the whole buffer instead of one
    /// per record.
    pub fn texts(&self) -> Option<impl Iterator<Item = (usize, &str)>> {
        let text = std::str::from_utf8(&self.bytes).ok()?;
        let whole = |&(_, start, end): &(usize, usize, usize)| {
            text.is_char_boundary(start) && text.is_char_boundary(end)
        };
        if !self.spans.iter().all(whole) {
            return None;
        }
        Some(
            self.spans
                .iter()
                .map(move |&(index, start, end)| (index, &text[start..end])),
        )
    }
}

/// Reads NDJSON `path` in blocks of whole lines of about `block_bytes`, handing each to
/// `sink` with the bytes read so far; stops early when `sink` returns false. The reading
/// thread only reads: splitting the lines ([`Records::from_lines`]) is left to the
/// threads that parse, and so is counting them (a caller that reports line numbers
/// numbers each block's first line from the lines of the blocks before it).
pub fn read_ndjson_blocks(
    path: &Path,
    block_bytes: usize,
    mut sink: impl FnMut(Vec<u8>, u64) -> bool,
) -> Result<(), IngestError> {
    let mut file = std::fs::File::open(path).map_err(|source| io(path, source))?;
    let (mut carry, mut read, mut first) = (Vec::new(), 0u64, true);
    loop {
        let mut block = Vec::with_capacity(block_bytes + carry.len());
        block.append(&mut carry);
        let want = block_bytes
            .saturating_sub(block.len())
            .max(block_bytes / 4)
            .max(1) as u64;
        let n = (&mut file)
            .take(want)
            .read_to_end(&mut block)
            .map_err(|source| io(path, source))?;
        read += n as u64;
        let at_end = n == 0;
        // Whole lines only: the tail after the last newline waits for the next block.
        let cut = match memchr::memrchr(b'\n', &block) {
            _ if at_end => block.len(),
            Some(last) => last + 1,
            None => {
                carry = block;
                continue;
            }
        };
        carry = block.split_off(cut);
        // The file's first block holds its whole first line, and so any byte-order mark.
        if std::mem::take(&mut first) {
            let bom = block.len() - dvc_pulse_model::parse::strip_bom(&block).len();
            block.drain(..bom);
        }
        if block.is_empty() {
            return Ok(());
        }
        if !sink(block, read) {
            return Ok(());
        }
    }
}

/// Starts reading `path` (format detected) in batches of `options.batch_size` records.
pub fn read_file(
    path: &Path,
    options: &ImportOptions,
) -> Result<(RecordBatches, tokio::task::JoinHandle<()>, u64), IngestError> {
    let total = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let (tx, rx) = mpsc::channel(2);
    let (p, opts) = (path.to_path_buf(), options.clone());
    detect(path)?;
    let reader = tokio::task::spawn_blocking(move || {
        let sent = read_records(&p, &opts, |batch, read| {
            tx.blocking_send(Ok((batch, read))).is_ok()
        });
        if let Err(e) = sent {
            let _ = tx.blocking_send(Err(e));
        }
    });
    Ok((rx, reader, total))
}

/// Reads `path` (format detected) on the calling thread, handing each batch of
/// `options.batch_size` records to `sink` with the bytes read so far; stops early when
/// `sink` returns false.
pub fn read_records(
    path: &Path,
    opts: &ImportOptions,
    sink: impl FnMut(Records, u64) -> bool,
) -> Result<(), IngestError> {
    let format = detect(path)?;
    let file = std::fs::File::open(path).map_err(|source| io(path, source))?;
    let mut out = Batcher {
        opts,
        batch: Records::with_capacity(opts.batch_size, 0),
        read: 0,
        sink,
    };
    match format {
        InputFormat::Ndjson => read_ndjson(path, file, &mut out)?,
        InputFormat::JsonArray => read_array(path, file, &mut out)?,
        InputFormat::Csv => read_csv(path, file, &mut out)?,
    }
    if !out.batch.is_empty() {
        (out.sink)(out.batch, out.read);
    }
    Ok(())
}

/// Gathers records into batches for a sink; `read` is the bytes read so far.
struct Batcher<'a, F> {
    opts: &'a ImportOptions,
    batch: Records,
    read: u64,
    sink: F,
}

impl<F: FnMut(Records, u64) -> bool> Batcher<'_, F> {
    /// Adds a record; false when the sink wants no more.
    fn push(&mut self, index: usize, raw: &[u8]) -> bool {
        if index >= self.opts.skip_before {
            self.batch.push(index, raw);
        }
        if self.batch.len() >= self.opts.batch_size {
            let room = Records::with_capacity(self.opts.batch_size, self.batch.bytes());
            return (self.sink)(std::mem::replace(&mut self.batch, room), self.read);
        }
        true
    }
}

fn read_ndjson<F: FnMut(Records, u64) -> bool>(
    path: &Path,
    file: std::fs::File,
    out: &mut Batcher<'_, F>,
) -> Result<(), IngestError> {
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut line = Vec::new();
    for index in 0.. {
        line.clear();
        let n = r
            .read_until(b'\n', &mut line)
            .map_err(|source| io(path, source))?;
        if n == 0 {
            break;
        }
        out.read += n as u64;
        let first = if index == 0 {
            dvc_pulse_model::parse::strip_bom(&line)
        } else {
            &line
        };
        let t = first.trim_ascii();
        if !t.is_empty() && !out.push(index, t) {
            break;
        }
    }
    Ok(())
}

fn read_array<F: FnMut(Records, u64) -> bool>(
    path: &Path,
    file: std::fs::File,
    out: &mut Batcher<'_, F>,
) -> Result<(), IngestError> {
    let mut body = Vec::new();
    BufReader::new(file)
        .read_to_end(&mut body)
        .map_err(|source| io(path, source))?;
    out.read = body.len() as u64;
    for (index, raw) in dvc_pulse_model::parse::split_body(&body) {
        if !out.push(index, &raw) {
            break;
        }
    }
    Ok(())
}

fn read_csv<F: FnMut(Records, u64) -> bool>(
    path: &Path,
    file: std::fs::File,
    out: &mut Batcher<'_, F>,
) -> Result<(), IngestError> {
    let mut r = csv::ReaderBuilder::new().flexible(true).from_reader(file);
    let headers = r.byte_headers().map_err(|e| csv_error(path, e))?.clone();
    let mut row = csv::ByteRecord::new();
    loop {
        let raw = match r.read_byte_record(&mut row) {
            Ok(false) => break,
            Ok(true) => csv_row_to_json(&headers, &row),
            // A row that cannot be read still gets its line and a reason.
            Err(_) => b"<unreadable CSV row>".to_vec(),
        };
        let index = row.position().map(|p| p.line() as usize - 1).unwrap_or(0);
        out.read = row.position().map(|p| p.byte()).unwrap_or(out.read);
        if !out.push(index, &raw) {
            break;
        }
    }
    Ok(())
}

fn csv_error(path: &Path, e: csv::Error) -> IngestError {
    io(
        path,
        std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
    )
}

/// A CSV row as a JSON object of its non-empty cells. Cells that are not UTF-8 make the
/// row itself non-UTF-8, so validation reports `invalid_utf8` for it.
fn csv_row_to_json(headers: &csv::ByteRecord, row: &csv::ByteRecord) -> Vec<u8> {
    let mut map = serde_json::Map::new();
    for (h, v) in headers.iter().zip(row.iter()) {
        let (Ok(h), Ok(v)) = (std::str::from_utf8(h), std::str::from_utf8(v)) else {
            return row.as_slice().to_vec();
        };
        if !v.trim().is_empty() {
            map.insert(
                h.trim().to_string(),
                serde_json::Value::String(v.to_string()),
            );
        }
    }
    serde_json::to_vec(&map).expect("a map serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines of a UTF-8 block come out as text, each trimmed; a block with invalid bytes,
    /// or records cut inside a character, give none (their records are then checked one
    /// by one).
    #[test]
    fn texts_are_whole_records_of_a_utf8_buffer() {
        let lines = Records::from_lines(" {\"a\":\"Hồ sơ\"} \n\n{}\r\n".as_bytes().to_vec(), 7);
        let texts: Vec<(usize, &str)> = lines.texts().expect("UTF-8").collect();
        assert_eq!(texts, vec![(7, "{\"a\":\"Hồ sơ\"}"), (9, "{}")]);
        let bad = Records::from_lines(b"{}\n{\"a\":\"\xff\"}\n".to_vec(), 0);
        assert!(bad.texts().is_none());
        // "ồ" is three bytes: cut after its first, each record alone is not UTF-8, though
        // the buffer is.
        let mut cut = Records::default();
        let (head, tail) = "ồ".as_bytes().split_at(1);
        cut.push(0, head);
        cut.push(1, tail);
        assert!(std::str::from_utf8(&cut.bytes).is_ok());
        assert!(cut.texts().is_none());
    }

    fn records(path: &Path) -> Vec<(usize, Vec<u8>)> {
        let opts = ImportOptions {
            batch_size: 3,
            skip_before: 0,
        };
        let mut out = Vec::new();
        read_records(path, &opts, |r, _| {
            out.extend(r.iter().map(|(i, b)| (i, b.to_vec())));
            true
        })
        .unwrap();
        out
    }

    /// Blocks of any size, split on the parsing side, give the records the line reader
    /// gives: same indexes, same bytes (BOM, blank lines, CRLF, a last line without a
    /// newline, a line longer than a block); the last block reports every byte read.
    #[test]
    fn ndjson_blocks_split_into_the_same_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.ndjson");
        let long = format!("{{\"x\":\"{}\"}}", "y".repeat(300));
        let text = format!(
            "\u{feff}{{\"a\":1}}\n\n  {{\"b\":2}}  \r\n{long}\n\n\n{{\"c\":\"đ\"}}\r\n\u{feff}{{\"e\":5}}\n{{\"d\":4}}"
        );
        std::fs::write(&path, &text).unwrap();
        let want = records(&path);
        assert_eq!(
            want.iter().map(|r| r.0).collect::<Vec<_>>(),
            [0, 2, 3, 6, 7, 8]
        );
        // Only the file's own byte-order mark is dropped: one on a later line stays.
        assert!(want[0].1.starts_with(b"{") && want[4].1.starts_with("\u{feff}".as_bytes()));
        for size in [1, 2, 5, 17, 64, 1 << 20] {
            let (mut got, mut last, mut blocks, mut first) = (Vec::new(), 0, 0, 0);
            read_ndjson_blocks(&path, size, |block, read| {
                blocks += 1;
                let lines = memchr::memchr_iter(b'\n', &block).count();
                let next = first + lines + usize::from(!block.ends_with(b"\n"));
                let r = Records::from_lines(block, first);
                first = next;
                got.extend(r.iter().map(|(i, b)| (i, b.to_vec())));
                last = read;
                true
            })
            .unwrap();
            assert_eq!(got, want, "blocks of {size} bytes");
            assert_eq!(last, text.len() as u64);
            assert!(
                size >= text.len() || blocks > 2,
                "blocks of {size} bytes: {blocks}"
            );
        }
    }
}
