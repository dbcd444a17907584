//! Prometheus series of ingest jobs and searches. hearthd registers them on its registry.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// How a job attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOutcome {
    /// Its chunks and vectors are committed.
    Done,
    /// Failed for now; scheduled again with a delay.
    Retried,
    /// Gave up: the document is marked failed.
    Failed,
    /// Another worker or a newer version took it over.
    Lost,
    /// hearthd stopped meanwhile; returned to the queue.
    Interrupted,
}

impl JobOutcome {
    const ALL: [JobOutcome; 5] = [
        JobOutcome::Done,
        JobOutcome::Retried,
        JobOutcome::Failed,
        JobOutcome::Lost,
        JobOutcome::Interrupted,
    ];

    pub fn label(self) -> &'static str {
        match self {
            JobOutcome::Done => "done",
            JobOutcome::Retried => "retried",
            JobOutcome::Failed => "failed",
            JobOutcome::Lost => "lost",
            JobOutcome::Interrupted => "interrupted",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    /// `ingest` (a new document or version) or `embed` (into a new embedding space).
    pub kind: String,
    pub outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModeLabel {
    pub mode: &'static str,
}

#[derive(Debug, Clone)]
pub struct LibraryMetrics {
    pub jobs_total: Family<JobLabels, Counter>,
    pub job_seconds: Family<KindLabel, Histogram>,
    pub chunks_total: Counter,
    pub search_seconds: Family<ModeLabel, Histogram>,
    pub blob_sweeps_total: Counter,
    pub blobs_swept_total: Family<SweptLabel, Counter>,
    /// Where ingest and search embeddings were computed (the local model or a remote hearthd).
    pub embed_backends: crate::embed::remote::BackendMetrics,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SweptLabel {
    /// `original` (a blob no document refers to) or `leftover` (a staging file or a probe object).
    pub kind: &'static str,
}

impl Default for LibraryMetrics {
    fn default() -> Self {
        Self {
            jobs_total: Family::default(),
            job_seconds: Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.01, 2.5, 14))),
            chunks_total: Counter::default(),
            search_seconds: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0005, 2.0, 16))
            }),
            blob_sweeps_total: Counter::default(),
            blobs_swept_total: Family::default(),
            embed_backends: crate::embed::remote::BackendMetrics::default(),
        }
    }
}

impl LibraryMetrics {
    /// Registers `hearth_ingest_*`, `hearth_search_*`, `hearth_blob_*` and `hearth_embed_backend_*`, each labelled series at zero from the start.
    pub fn register(&self, registry: &mut Registry) {
        for kind in ["ingest", "embed"] {
            for outcome in JobOutcome::ALL {
                self.job(kind, outcome, 0);
            }
            drop(self.job_seconds.get_or_create(&KindLabel { kind: kind.into() }));
        }
        for mode in ["hybrid", "vector", "keyword"] {
            drop(self.search_seconds.get_or_create(&ModeLabel { mode }));
        }
        let ingest = registry.sub_registry_with_prefix("hearth_ingest");
        ingest.register(
            "jobs",
            "Job attempts by kind and how they ended",
            self.jobs_total.clone(),
        );
        ingest.register(
            "job_duration_seconds",
            "Time from claim to commit of jobs that completed, by kind",
            self.job_seconds.clone(),
        );
        ingest.register(
            "chunks",
            "Chunks committed by ingest jobs",
            self.chunks_total.clone(),
        );
        let search = registry.sub_registry_with_prefix("hearth_search");
        search.register(
            "duration_seconds",
            "Time to answer a search (query embedding included), by mode",
            self.search_seconds.clone(),
        );
        for kind in ["original", "leftover"] {
            drop(self.blobs_swept_total.get_or_create(&SweptLabel { kind }));
        }
        let blobs = registry.sub_registry_with_prefix("hearth_blob");
        blobs.register(
            "sweeps",
            "Sweeps of the blob store for originals nothing refers to",
            self.blob_sweeps_total.clone(),
        );
        blobs.register(
            "swept",
            "Blobs removed by sweeps: originals nothing refers to, and staging files or probes left behind",
            self.blobs_swept_total.clone(),
        );
        self.embed_backends.register(registry);
    }

    /// Counts one sweep and what it removed.
    pub fn swept(&self, originals: u64, leftovers: u64) {
        self.blob_sweeps_total.inc();
        self.blobs_swept_total
            .get_or_create(&SweptLabel { kind: "original" })
            .inc_by(originals);
        self.blobs_swept_total
            .get_or_create(&SweptLabel { kind: "leftover" })
            .inc_by(leftovers);
    }

    /// Counts `count` job attempts of `kind` that ended with `outcome`.
    pub fn job(&self, kind: &str, outcome: JobOutcome, count: u64) {
        self.jobs_total
            .get_or_create(&JobLabels {
                kind: kind.to_owned(),
                outcome: outcome.label(),
            })
            .inc_by(count);
    }
}
