//! Checkpoints: per partition, the dossier table (Arrow IPC), the daily buckets (Parquet,
//! for peers and analysts) and a manifest naming them with the Kafka offset they reflect.
//! Data files get fresh names; the manifest is written last in one put, so a reader sees
//! the old checkpoint or the new one, never a mix.

use crate::error::WorkerError;
use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::ipc::reader::FileReader;
use datafusion::arrow::ipc::writer::FileWriter;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use dvc_pulse_rollup::PartitionState;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{GetOptions, ObjectStore, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// What a checkpoint of one partition holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The next offset to apply: everything before it is in the state.
    pub next_offset: i64,
    /// Newest `updated_at` applied, microseconds since the epoch.
    pub newest_event_us: i64,
    /// Dossiers held.
    pub dossiers: usize,
    /// Object name of the dossier table (Arrow IPC file).
    pub dossiers_file: String,
    /// Object name of the daily buckets (Parquet).
    pub buckets_file: String,
    /// Object name of the revisions kept for `as_of` (Arrow IPC); absent before history.
    #[serde(default)]
    pub history_file: Option<String>,
    /// No `as_of` before this ingestion time (ms): older revisions were folded away.
    #[serde(default)]
    pub history_floor_ms: i64,
    /// Newest ingestion time read (ms).
    #[serde(default)]
    pub history_last_ms: i64,
    /// When it was written (RFC 3339, UTC).
    pub written_at: String,
    /// Which worker wrote it.
    pub writer: String,
}

/// A partition's state, encoded and ready to write.
#[derive(Debug)]
pub struct Encoded {
    ipc: Vec<u8>,
    history: Vec<u8>,
    floor_ms: i64,
    last_ms: i64,
    parquet: Vec<u8>,
    next_offset: i64,
    newest_event_us: i64,
    dossiers: usize,
}

/// A checkpoint store over any `object_store` backend.
#[derive(Clone)]
pub struct CheckpointStore {
    store: Arc<dyn ObjectStore>,
    url: String,
}

impl std::fmt::Debug for CheckpointStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointStore")
            .field("url", &self.url)
            .finish()
    }
}

fn err(path: &Path, e: impl std::fmt::Display) -> WorkerError {
    WorkerError::Checkpoint {
        path: path.to_string(),
        detail: e.to_string(),
    }
}

impl CheckpointStore {
    /// Opens the store named by `url` (see [`crate::WorkerConfig::checkpoint_url`]).
    pub fn open(url: &str) -> Result<Self, WorkerError> {
        let store: Arc<dyn ObjectStore> = if url == "memory://" {
            Arc::new(object_store::memory::InMemory::new())
        } else if url.starts_with("s3://") {
            s3(url)?
        } else {
            let dir = url.strip_prefix("file://").unwrap_or(url);
            std::fs::create_dir_all(dir)
                .map_err(|e| WorkerError::Config(format!("checkpoint directory {dir}: {e}")))?;
            Arc::new(
                object_store::local::LocalFileSystem::new_with_prefix(dir)
                    .map_err(|e| WorkerError::Config(format!("checkpoint directory {dir}: {e}")))?,
            )
        };
        Ok(Self {
            store,
            url: url.to_string(),
        })
    }

    fn dir(topic: &str, partition: i32) -> String {
        format!("{topic}/p{partition:05}")
    }

    /// Encodes `state` for [`CheckpointStore::write`]: synchronous, so callers can hold
    /// the state's lock while encoding and release it before any I/O.
    pub fn encode(state: &PartitionState) -> Result<Encoded, WorkerError> {
        let dossiers = state.dossiers_batch()?;
        let buckets = state.buckets_batch();
        let e = |e: &dyn std::fmt::Display| WorkerError::Checkpoint {
            path: "(encoding)".into(),
            detail: e.to_string(),
        };
        let ipc_of = |b: &RecordBatch| -> Result<Vec<u8>, WorkerError> {
            let mut w = FileWriter::try_new(Vec::new(), &b.schema()).map_err(|x| e(&x))?;
            w.write(b).map_err(|x| e(&x))?;
            w.into_inner().map_err(|x| e(&x))
        };
        let ipc = ipc_of(&dossiers)?;
        let history = ipc_of(&state.history_batch()?)?;
        let parquet = {
            let mut w =
                ArrowWriter::try_new(Vec::new(), buckets.schema(), None).map_err(|x| e(&x))?;
            w.write(&buckets).map_err(|x| e(&x))?;
            w.into_inner().map_err(|x| e(&x))?
        };
        Ok(Encoded {
            ipc,
            history,
            floor_ms: state.history.floor_ms,
            last_ms: state.history.last_ms,
            parquet,
            next_offset: state.next_offset,
            newest_event_us: state.newest_event_us,
            dossiers: state.dossier_count(),
        })
    }

    /// Writes an encoded checkpoint: data files first, then the manifest naming them.
    pub async fn write(
        &self,
        topic: &str,
        partition: i32,
        enc: Encoded,
        writer: &str,
    ) -> Result<Manifest, WorkerError> {
        let dir = Self::dir(topic, partition);
        let stem = format!("{:020}-{writer}", enc.next_offset);
        let dpath = Path::from(format!("{dir}/{stem}.dossiers.arrow"));
        let bpath = Path::from(format!("{dir}/{stem}.buckets.parquet"));
        let hpath = Path::from(format!("{dir}/{stem}.history.arrow"));
        self.store
            .put_opts(&hpath, PutPayload::from(enc.history), PutOptions::default())
            .await
            .map_err(|e| err(&hpath, e))?;
        self.store
            .put_opts(&dpath, PutPayload::from(enc.ipc), PutOptions::default())
            .await
            .map_err(|e| err(&dpath, e))?;
        self.store
            .put_opts(&bpath, PutPayload::from(enc.parquet), PutOptions::default())
            .await
            .map_err(|e| err(&bpath, e))?;
        let manifest = Manifest {
            topic: topic.to_string(),
            partition,
            next_offset: enc.next_offset,
            newest_event_us: enc.newest_event_us,
            dossiers: enc.dossiers,
            dossiers_file: dpath.to_string(),
            buckets_file: bpath.to_string(),
            history_file: Some(hpath.to_string()),
            history_floor_ms: enc.floor_ms,
            history_last_ms: enc.last_ms,
            written_at: chrono::Utc::now().to_rfc3339(),
            writer: writer.to_string(),
        };
        let mpath = Path::from(format!("{dir}/manifest.json"));
        let previous = self.manifest(topic, partition).await.ok().flatten();
        let body = serde_json::to_vec_pretty(&manifest).expect("manifest serialises");
        self.store
            .put_opts(&mpath, PutPayload::from(body), PutOptions::default())
            .await
            .map_err(|e| err(&mpath, e))?;
        // The files the old manifest named are garbage now, if this worker wrote them.
        if let Some(old) =
            previous.filter(|m| m.writer == writer && m.dossiers_file != manifest.dossiers_file)
        {
            let old: Vec<_> = [
                Some(old.dossiers_file),
                Some(old.buckets_file),
                old.history_file,
            ]
            .into_iter()
            .flatten()
            .map(|f| Ok(Path::from(f)))
            .collect();
            let mut deleted = self.store.delete_stream(futures::stream::iter(old).boxed());
            while deleted.next().await.is_some() {}
        }
        Ok(manifest)
    }

    /// The current manifest of a partition, if any.
    pub async fn manifest(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Option<Manifest>, WorkerError> {
        let mpath = Path::from(format!("{}/manifest.json", Self::dir(topic, partition)));
        match self.store.get_opts(&mpath, GetOptions::default()).await {
            Ok(r) => {
                let bytes = r.bytes().await.map_err(|e| err(&mpath, e))?;
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| err(&mpath, e))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(err(&mpath, e)),
        }
    }

    async fn get(&self, name: &str) -> Result<Bytes, WorkerError> {
        let p = Path::from(name);
        let r = self
            .store
            .get_opts(&p, GetOptions::default())
            .await
            .map_err(|e| err(&p, e))?;
        r.bytes().await.map_err(|e| err(&p, e))
    }

    async fn ipc(&self, name: &str) -> Result<Vec<RecordBatch>, WorkerError> {
        let bytes = self.get(name).await?;
        let p = Path::from(name);
        let reader =
            FileReader::try_new(std::io::Cursor::new(bytes), None).map_err(|e| err(&p, e))?;
        reader.collect::<Result<_, _>>().map_err(|e| err(&p, e))
    }

    /// Loads a partition's state from its checkpoint (empty when there is none), keeping
    /// `history_ms` of revisions.
    pub async fn load(
        &self,
        topic: &str,
        partition: i32,
        history_ms: i64,
    ) -> Result<(PartitionState, Option<Manifest>), WorkerError> {
        let Some(m) = self.manifest(topic, partition).await? else {
            let mut s = PartitionState::default();
            s.history = dvc_pulse_rollup::history::History::new(history_ms);
            return Ok((s, None));
        };
        let batches = self.ipc(&m.dossiers_file).await?;
        let mut state = PartitionState::from_dossiers(&batches, m.next_offset, m.newest_event_us)?;
        let history = match &m.history_file {
            Some(f) => self.ipc(f).await?,
            None => Vec::new(),
        };
        // A checkpoint from before history: nothing before it was written can be asked for.
        let floor = if m.history_file.is_some() {
            m.history_floor_ms
        } else {
            chrono::DateTime::parse_from_rfc3339(&m.written_at).map_or(0, |t| t.timestamp_millis())
        };
        state.restore_history(&history, history_ms, floor)?;
        state.history.last_ms = state.history.last_ms.max(m.history_last_ms);
        Ok((state, Some(m)))
    }

    /// The daily buckets a manifest names.
    pub async fn buckets(&self, m: &Manifest) -> Result<Vec<RecordBatch>, WorkerError> {
        let bytes = self.get(&m.buckets_file).await?;
        let p = Path::from(m.buckets_file.as_str());
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .and_then(|b| b.build())
            .map_err(|e| err(&p, e))?;
        reader.collect::<Result<_, _>>().map_err(|e| err(&p, e))
    }
}

#[cfg(feature = "s3")]
fn s3(url: &str) -> Result<Arc<dyn ObjectStore>, WorkerError> {
    let u = url
        .parse()
        .map_err(|e| WorkerError::Config(format!("{url}: {e}")))?;
    let (store, prefix) =
        object_store::parse_url_opts(&u, std::env::vars().map(|(k, v)| (k.to_lowercase(), v)))
            .map_err(|e| WorkerError::Config(format!("{url}: {e}")))?;
    Ok(Arc::new(object_store::prefix::PrefixStore::new(
        store, prefix,
    )))
}

#[cfg(not(feature = "s3"))]
fn s3(url: &str) -> Result<Arc<dyn ObjectStore>, WorkerError> {
    Err(WorkerError::Config(format!(
        "{url}: this build has no S3 support; rebuild with `--features dvc-pulse-worker/s3`"
    )))
}
