//! `dvc-pulse snapshot --input`: a window straight from an export of events, with
//! DataFusion and no Kafka. Lines go through the gateway's validation on every core; the
//! latest version of each dossier is folded in input order ([`LatestVersions`], the rule
//! of the batch SQL), and the window is computed over those in SQL. The worker's windows
//! must equal this.

use crate::config::Config;
use crate::error::AppError;
use chrono::{DateTime, NaiveDate, Utc};
use dvc_pulse_ingest::import::{
    ImportOptions, InputFormat, Records, detect, read_ndjson_blocks, read_records,
};
use dvc_pulse_model::event::ict;
use dvc_pulse_model::parse::Rejected;
use dvc_pulse_model::{DossierEvent, Reference, Validator};
use dvc_pulse_window::fact::day_number;
use dvc_pulse_window::{
    BlockFold, Dims, LatestVersions, WindowQuery, WindowTable, window_from_latest,
};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// What a file snapshot read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct InputSummary {
    /// Records read.
    pub records: usize,
    /// Valid versions.
    pub accepted: usize,
    /// Rejected records, by reason code.
    pub rejected: BTreeMap<String, usize>,
}

/// A window computed from a file, with what was read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileSnapshot {
    /// The window table.
    #[serde(flatten)]
    pub table: WindowTable,
    /// What the input held.
    pub input: InputSummary,
}

/// Computes `q` over the events in `path`. `now` is the validation clock; with
/// `horizon_days`, versions older than that before `now`'s day are ignored, as a worker would.
/// Reading and parsing keep the calling thread busy (it merges what the parser threads
/// fold) until the file is read; only the window query is asynchronous.
pub async fn from_file(
    cfg: &Config,
    path: &Path,
    q: &WindowQuery,
    now: DateTime<Utc>,
    horizon_days: Option<i32>,
    progress: impl Fn(u64, u64),
) -> Result<FileSnapshot, AppError> {
    let reference = Arc::new(Reference::load(&cfg.reference)?);
    from_file_with(cfg, reference, path, q, now, horizon_days, progress).await
}

/// [`from_file`] with the reference data already loaded (the caller renders with it).
/// The dimension tables of the query are built beside the parse.
pub async fn from_file_with(
    cfg: &Config,
    reference: Arc<Reference>,
    path: &Path,
    q: &WindowQuery,
    now: DateTime<Utc>,
    horizon_days: Option<i32>,
    progress: impl Fn(u64, u64),
) -> Result<FileSnapshot, AppError> {
    q.validate_with(|code| reference.localities.contains(code))?;
    let v = Validator::new(reference.clone(), cfg.ingest.validation.clone());
    let today: NaiveDate = now.with_timezone(&ict()).date_naive();
    let cutoff = horizon_days.map_or(i32::MIN, |h| day_number(today) - h);
    let total = std::fs::metadata(path).map_or(0, |m| m.len());
    let format = detect(path)?;
    let (dims, folded) = std::thread::scope(|s| {
        let dims = s.spawn(|| Dims::new(&reference));
        let latest = LatestVersions::new(cutoff);
        let folded = fold_file(&v, path, format, now, latest, total, |read| {
            progress(read, total)
        });
        let dims = dims.join().expect("building the dimension tables panicked");
        (dims, folded)
    });
    let (latest, input) = folded?;
    let table = window_from_latest(&dims, latest, q).await?;
    Ok(FileSnapshot { table, input })
}

impl InputSummary {
    fn add(&mut self, other: InputSummary) {
        self.records += other.records;
        self.accepted += other.accepted;
        for (reason, n) in other.rejected {
            *self.rejected.entry(reason).or_default() += n;
        }
    }
}

/// A run of the input, parsed and folded on a parser thread.
struct Run {
    fold: BlockFold,
    summary: InputSummary,
    /// Bytes of the file read up to the end of the run.
    read: u64,
}

impl Run {
    /// Counts a parsed record, and folds it when valid.
    fn add<R: std::ops::Deref<Target = Rejected>>(&mut self, parsed: Result<&DossierEvent, R>) {
        self.summary.records += 1;
        match parsed {
            Ok(e) => {
                self.summary.accepted += 1;
                self.fold.push(e);
            }
            Err(r) => {
                *self
                    .summary
                    .rejected
                    .entry(r.rejection.reason.as_str().to_string())
                    .or_default() += 1
            }
        }
    }
}

/// A run of the input as the reader hands it over: records, or a block of whole NDJSON
/// lines that the parser thread splits itself (numbering them from 0: a snapshot
/// counts rejected lines by reason and reports no line numbers).
enum Input {
    Records(Records),
    Lines(Vec<u8>),
}

/// Reads, parses and folds `path` on every core: a reader thread hands runs of records
/// to one parser thread per core, each parses and folds its runs apart, and the calling
/// thread merges the runs in input order (which decides ties between versions). `total`
/// is the file's size, to make room early for the dossiers it holds.
fn fold_file(
    v: &Validator,
    path: &Path,
    format: InputFormat,
    now: DateTime<Utc>,
    mut latest: LatestVersions,
    total: u64,
    progress: impl Fn(u64),
) -> Result<(LatestVersions, InputSummary), AppError> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let blank = latest.block();
    let mut summary = InputSummary::default();
    let (work, runs) = std::sync::mpsc::sync_channel::<(u64, Input, u64)>(cores);
    let runs = std::sync::Mutex::new(runs);
    std::thread::scope(|s| {
        let (done_tx, done) = std::sync::mpsc::channel::<(u64, Run)>();
        for _ in 0..cores {
            let (runs, done_tx, blank) = (&runs, done_tx.clone(), &blank);
            s.spawn(move || parse_runs(v, now, blank, runs, &done_tx));
        }
        drop(done_tx);
        let reader = s.spawn(move || read_runs(path, format, work));
        let mut waiting = std::collections::HashMap::new();
        let (mut next, mut sized) = (0u64, false);
        for (seq, run) in done {
            waiting.insert(seq, run);
            while let Some(run) = waiting.remove(&next) {
                summary.add(run.summary);
                latest.merge(run.fold);
                if !sized && run.read >= total / 32 {
                    // Room for the dossiers the whole file holds at the rate so far.
                    sized = true;
                    let expected = latest.len() as u64 * total / run.read.max(1);
                    latest
                        .reserve(((expected + expected / 8) as usize).saturating_sub(latest.len()));
                }
                progress(run.read);
                next += 1;
            }
        }
        reader.join().expect("the reader thread panicked")
    })?;
    Ok((latest, summary))
}

/// The reader thread: NDJSON in blocks of about 512 KiB of whole lines (a block is
/// still in cache when a parser thread reads it: 4 MiB blocks took 5-10% more CPU),
/// other formats in runs of 16,384 records.
fn read_runs(
    path: &Path,
    format: InputFormat,
    work: std::sync::mpsc::SyncSender<(u64, Input, u64)>,
) -> Result<(), dvc_pulse_ingest::IngestError> {
    let mut seq = 0;
    let mut send = |input, read| {
        seq += 1;
        work.send((seq - 1, input, read)).is_ok()
    };
    if format == InputFormat::Ndjson {
        return read_ndjson_blocks(path, 512 << 10, |block, read| {
            send(Input::Lines(block), read)
        });
    }
    let opts = ImportOptions {
        batch_size: 16_384,
        skip_before: 0,
    };
    read_records(path, &opts, |records, read| {
        send(Input::Records(records), read)
    })
}

/// A parser thread: takes runs until the reader is done, parses and folds each.
fn parse_runs(
    v: &Validator,
    now: DateTime<Utc>,
    blank: &BlockFold,
    runs: &std::sync::Mutex<std::sync::mpsc::Receiver<(u64, Input, u64)>>,
    done: &std::sync::mpsc::Sender<(u64, Run)>,
) {
    let mut event = DossierEvent::empty();
    loop {
        let next = runs.lock().expect("runs lock").recv();
        let Ok((seq, input, read)) = next else {
            return;
        };
        let records = match input {
            Input::Records(r) => r,
            Input::Lines(block) => Records::from_lines(block, 0),
        };
        let mut run = Run {
            fold: blank.clone(),
            summary: InputSummary::default(),
            read,
        };
        run.fold.reserve(records.len());
        // A run that is all UTF-8 (most are) is checked once, not line by line; each
        // line is parsed into the same event.
        match records.texts() {
            Some(texts) => texts.for_each(|(_, text)| {
                let parsed = v.parse_text_into(text, now, &mut event);
                run.add(parsed.map(|()| &event));
            }),
            None => records.iter().for_each(|(_, raw)| {
                run.add(v.parse_record(raw, now).as_ref().map_err(|r| &**r));
            }),
        }
        drop(records);
        if done.send((seq, run)).is_err() {
            return;
        }
    }
}

/// Environment variable holding the worker's read token for `snapshot --url` and `diff`.
pub const READ_TOKEN_ENV: &str = "DVC_PULSE_READ_TOKEN";

/// `dvc-pulse snapshot --url` and `dvc-pulse diff`: asks a running worker (with the read
/// token of `DVC_PULSE_READ_TOKEN`, when set). `path` is the
/// API path, `params` its query; `progress(bytes read, total if known)` is called as the
/// body arrives. Returns the content type and body; an API error becomes
/// [`AppError::Http`] with the worker's code and detail.
pub async fn from_url(
    base: &str,
    path: &str,
    params: &[(&str, String)],
    mut progress: impl FnMut(u64, Option<u64>),
) -> Result<(String, Vec<u8>), AppError> {
    let mut url = reqwest::Url::parse(base)
        .and_then(|u| u.join(path))
        .map_err(|e| AppError::Config(format!("--url {base}: {e}")))?;
    for (k, v) in params {
        url.query_pairs_mut().append_pair(k, v);
    }
    let http = |e: reqwest::Error| AppError::Http(format!("{url}: {e}"));
    let mut req = reqwest::Client::new().get(url.clone());
    // A worker with read tokens wants one: from the environment, never the command line.
    if let Ok(token) = std::env::var(READ_TOKEN_ENV)
        && !token.trim().is_empty()
    {
        req = req.bearer_auth(token.trim());
    }
    let mut resp = req.send().await.map_err(http)?;
    let status = resp.status();
    let total = resp.content_length();
    let kind = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(http)? {
        body.extend_from_slice(&chunk);
        progress(body.len() as u64, total);
    }
    if !status.is_success() {
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        return Err(AppError::Http(format!(
            "{status}: {} ({})",
            v["error"]["code"].as_str().unwrap_or("error"),
            v["error"]["message"]
                .as_str()
                .unwrap_or_else(|| std::str::from_utf8(&body).unwrap_or(""))
        )));
    }
    Ok((kind, body))
}
