//! The scheduler: bounded priority queues, token-budget batches, one thread per session (the main lane serves
//! every class, the optional query lane only search queries).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;

use fastembed::TextEmbedding;
use tokio::sync::oneshot;

use super::EmbedError;
use super::metrics::{ClassLabel, EmbedMetrics, ReasonLabel};
use super::postprocess::matryoshka;
use super::session::{self, LoadedModel};
use crate::model::{ModelManifest, Quantization, VerifiedModel};

/// Who is waiting. A batch is always taken from the most urgent non-empty class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Priority {
    /// A search query: a person is waiting.
    Query,
    /// `/v1/embeddings`: a program is waiting.
    Api,
    /// Document chunks: nobody is waiting on one in particular.
    Ingest,
}

impl Priority {
    pub(crate) const ALL: [Priority; 3] = [Priority::Query, Priority::Api, Priority::Ingest];

    fn slot(self) -> usize {
        self as usize
    }

    pub fn label(self) -> &'static str {
        match self {
            Priority::Query => "query",
            Priority::Api => "api",
            Priority::Ingest => "ingest",
        }
    }
}

/// Which task prefix from the manifest an input gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    Query,
    Document,
}

/// The `[embedding]` section of hearth's configuration.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbedderConfig {
    /// Model directory with a `manifest.json`.
    pub model_dir: PathBuf,
    /// `libonnxruntime.so`; `None` reads `ORT_DYLIB_PATH`.
    pub onnxruntime: Option<PathBuf>,
    /// onnxruntime intra-op threads; 0 means one per available core.
    pub intra_threads: usize,
    /// Threads of the query lane: a second session of the same model that embeds only search queries, so a
    /// query never waits behind an ingest batch (which can take a second or more). 0 turns the lane off and
    /// saves the second copy of the model in memory; queries then go first in the one queue, but wait for the
    /// batch in progress.
    pub query_lane_threads: usize,
    /// Most padded tokens (inputs × longest input) in one batch.
    pub max_batch_tokens: usize,
    /// Most inputs in one batch.
    pub max_batch_inputs: usize,
    /// Most inputs waiting in all classes together; beyond it callers are told to retry.
    pub queue_capacity: usize,
    /// Where inference runs. `cuda` needs an onnxruntime built with the CUDA execution provider and a GPU; without
    /// either, loading fails and says which (no silent fallback to the CPU).
    pub execution_provider: ExecutionProvider,
    /// For a dynamic-int8 model, keep the weights int8 in both sessions. onnxruntime's constant folding
    /// otherwise turns the dequantization of the weights into float32 copies when the session loads: four times
    /// the memory of the weights (the 23 MB test model's session takes 158 MB instead of 36 MB), but a model whose
    /// graph dequantizes its weights then does it on every batch instead (for the test model a 90 MB transient
    /// and most of one short query's time). The Pi profile turns it on.
    pub keep_quantized_weights: bool,
    /// Another hearthd that embeds ingest (and, by setting, queries) for this one while it is the same space.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<super::remote::RemoteConfig>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionProvider {
    #[default]
    Cpu,
    Cuda,
}

impl EmbedderConfig {
    pub fn new(model_dir: PathBuf) -> Self {
        Self {
            model_dir,
            onnxruntime: None,
            intra_threads: 0,
            query_lane_threads: 1,
            max_batch_tokens: 8192,
            max_batch_inputs: 64,
            queue_capacity: 4096,
            execution_provider: ExecutionProvider::Cpu,
            keep_quantized_weights: false,
            remote: None,
        }
    }
}

impl Default for EmbedderConfig {
    fn default() -> Self {
        Self::new(PathBuf::from("/var/lib/hearth/model"))
    }
}

#[derive(Debug, Clone)]
pub struct EmbedRequest {
    pub inputs: Vec<String>,
    pub kind: InputKind,
    pub priority: Priority,
    /// Cut inputs over the model's limit instead of refusing them; the cut ones are listed in the result.
    pub truncate: bool,
    /// Matryoshka output size; `None` is the model's native size.
    pub dimensions: Option<usize>,
}

impl EmbedRequest {
    pub fn new(inputs: Vec<String>, kind: InputKind, priority: Priority) -> Self {
        Self {
            inputs,
            kind,
            priority,
            truncate: false,
            dimensions: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Embedded {
    /// One unit vector per input, in input order.
    pub vectors: Vec<Vec<f32>>,
    /// Tokens each input was embedded with (prefix and special tokens included, after any truncation).
    pub tokens: Vec<usize>,
    /// Indices of inputs that were truncated to the model's limit.
    pub truncated: Vec<usize>,
    /// Sequence number of the last batch that served this request (batches are numbered from 1).
    pub last_batch: u64,
}

/// What the scheduler sends back: every vector in input order and the last batch's number, or the failure.
type Reply = Result<(Vec<Vec<f32>>, u64), String>;

/// A submitted request. Await [`Pending::wait`]; dropping it withdraws the inputs still queued.
#[derive(Debug)]
pub struct Pending {
    reply: oneshot::Receiver<Reply>,
    dimensions: Option<usize>,
    tokens: Vec<usize>,
    truncated: Vec<usize>,
}

impl Pending {
    pub async fn wait(self) -> Result<Embedded, EmbedError> {
        let (vectors, last_batch) = self
            .reply
            .await
            .map_err(|_| EmbedError::ShuttingDown)?
            .map_err(EmbedError::Inference)?;
        let vectors = match self.dimensions {
            Some(dims) => vectors.iter().map(|v| matryoshka(v, dims)).collect(),
            None => vectors,
        };
        Ok(Embedded {
            vectors,
            tokens: self.tokens,
            truncated: self.truncated,
            last_batch,
        })
    }
}

/// A handle to the embedding engine; clones share it. The scheduler threads stop when the last handle drops.
#[derive(Clone)]
pub struct Embedder {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("model", &self.inner.model.manifest.id)
            .field("dir", &self.inner.model.dir)
            .finish_non_exhaustive()
    }
}

struct Inner {
    shared: Arc<Shared>,
    model: VerifiedModel,
    counter: tokenizers::Tokenizer,
    onnxruntime: PathBuf,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.lock().shutdown = true;
        self.shared.wake.notify_all();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(PoisonError::into_inner));
        for thread in threads {
            let _ = thread.join();
        }
    }
}

/// Which classes a scheduler thread serves.
#[derive(Debug, Clone, Copy)]
enum Lane {
    /// Every class, most urgent first.
    All,
    /// Search queries only, on their own session.
    Queries,
}

impl Lane {
    fn classes(self) -> &'static [Priority] {
        match self {
            Lane::All => &Priority::ALL,
            Lane::Queries => &[Priority::Query],
        }
    }
}

struct Shared {
    queues: Mutex<Queues>,
    wake: Condvar,
    batches_started: AtomicU64,
    metrics: EmbedMetrics,
    max_batch_tokens: usize,
    max_batch_inputs: usize,
    queue_capacity: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queues> {
        self.queues.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Default)]
struct Queues {
    classes: [VecDeque<Item>; 3],
    waiting: usize,
    shutdown: bool,
}

struct Item {
    request: Arc<RequestState>,
    index: usize,
    text: String,
    tokens: usize,
    enqueued: Instant,
}

struct RequestState {
    inner: Mutex<RequestInner>,
}

struct RequestInner {
    vectors: Vec<Option<Vec<f32>>>,
    remaining: usize,
    last_batch: u64,
    reply: Option<oneshot::Sender<Reply>>,
}

impl RequestState {
    fn lock(&self) -> MutexGuard<'_, RequestInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The caller went away, or the request already failed: its inputs are not worth computing.
    fn abandoned(&self) -> bool {
        self.lock().reply.as_ref().is_none_or(oneshot::Sender::is_closed)
    }

    fn complete(&self, index: usize, vector: Vec<f32>, batch: u64) {
        let mut inner = self.lock();
        if inner.reply.is_none() {
            return;
        }
        inner.vectors[index] = Some(vector);
        inner.remaining -= 1;
        inner.last_batch = inner.last_batch.max(batch);
        if inner.remaining == 0 {
            let vectors = std::mem::take(&mut inner.vectors).into_iter().flatten().collect();
            let last_batch = inner.last_batch;
            if let Some(reply) = inner.reply.take() {
                let _ = reply.send(Ok((vectors, last_batch)));
            }
        }
    }

    fn fail(&self, message: &str) {
        if let Some(reply) = self.lock().reply.take() {
            let _ = reply.send(Err(message.to_owned()));
        }
    }
}

impl Embedder {
    /// Verifies the model files, loads onnxruntime and the model (twice with a query lane), and starts the
    /// scheduler threads. Blocking: call it from a blocking context.
    pub fn load(config: &EmbedderConfig, metrics: EmbedMetrics) -> Result<Self, EmbedError> {
        let threads = match config.intra_threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        let LoadedModel {
            model,
            session,
            query_session,
            counter,
            onnxruntime,
        } = session::load(
            &config.model_dir,
            config.onnxruntime.as_deref(),
            config.execution_provider,
            threads,
            config.query_lane_threads,
            config.keep_quantized_weights,
        )?;
        let shared = Arc::new(Shared {
            queues: Mutex::new(Queues::default()),
            wake: Condvar::new(),
            batches_started: AtomicU64::new(0),
            metrics,
            max_batch_tokens: config.max_batch_tokens.max(1),
            max_batch_inputs: config.max_batch_inputs.max(1),
            queue_capacity: config.queue_capacity.max(1),
        });
        let quantized = model.manifest.quantization == Quantization::DynamicInt8;
        let lanes = std::iter::once((Lane::All, session, "hearth-embed"))
            .chain(query_session.map(|session| (Lane::Queries, session, "hearth-embed-query")));
        let mut handles = Vec::new();
        for (lane, session, name) in lanes {
            let lane_shared = Arc::clone(&shared);
            let spawned = std::thread::Builder::new()
                .name(name.into())
                .spawn(move || run_scheduler(&lane_shared, session, quantized, lane));
            match spawned {
                Ok(handle) => handles.push(handle),
                Err(error) => {
                    // Stop the lanes already running before reporting.
                    shared.lock().shutdown = true;
                    shared.wake.notify_all();
                    handles.into_iter().for_each(|h| drop(h.join()));
                    return Err(EmbedError::Inference(format!(
                        "cannot start the scheduler thread: {error}"
                    )));
                }
            }
        }
        Ok(Self {
            inner: Arc::new(Inner {
                shared,
                model,
                counter,
                onnxruntime,
                threads: Mutex::new(handles),
            }),
        })
    }

    pub fn manifest(&self) -> &ModelManifest {
        &self.inner.model.manifest
    }

    pub fn model_dir(&self) -> &std::path::Path {
        &self.inner.model.dir
    }

    pub fn onnxruntime_path(&self) -> &std::path::Path {
        &self.inner.onnxruntime
    }

    /// The model's tokenizer, for token-aware chunking.
    pub fn tokenizer(&self) -> &tokenizers::Tokenizer {
        &self.inner.counter
    }

    /// Batches started so far; the next batch gets this number plus one.
    pub fn batches_started(&self) -> u64 {
        self.inner.shared.batches_started.load(Ordering::SeqCst)
    }

    /// Exact token counts of texts as this model would see them (special tokens included, no prefix added).
    pub fn count_tokens(&self, texts: &[String]) -> Result<Vec<usize>, EmbedError> {
        let encodings = self
            .inner
            .counter
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        Ok(encodings.iter().map(tokenizers::Encoding::len).collect())
    }

    /// Checks, encodes and enqueues a request, in that order (the shape of TEI's tokenization then queue): nothing
    /// reaches the queue that the model would refuse. Errors here are the caller's (4xx) or backpressure (retry).
    pub fn submit(&self, request: EmbedRequest) -> Result<Pending, EmbedError> {
        self.validate(&request)
            .and_then(|dimensions| {
                let encoded = self.encode(request)?;
                self.enqueue(encoded, dimensions)
            })
            .inspect_err(|error| {
                if let Some(reason) = rejection_reason(error) {
                    let metrics = &self.inner.shared.metrics;
                    metrics
                        .rejected_total
                        .get_or_create(&ReasonLabel { reason })
                        .inc();
                }
            })
    }

    /// What can be refused before tokenizing: the output size, empty inputs, a request larger than the queue.
    /// Returns the Matryoshka size to cut vectors to, if not the model's own.
    fn validate(&self, request: &EmbedRequest) -> Result<Option<usize>, EmbedError> {
        let manifest = &self.inner.model.manifest;
        let capacity = self.inner.shared.queue_capacity;
        let dimensions = match request.dimensions {
            None => None,
            Some(d) if d == manifest.dims => None,
            Some(d) if manifest.matryoshka_dims.contains(&d) => Some(d),
            Some(requested) => {
                let mut allowed = manifest.matryoshka_dims.clone();
                allowed.push(manifest.dims);
                allowed.sort_unstable();
                allowed.dedup();
                return Err(EmbedError::DimensionsNotSupported { requested, allowed });
            }
        };
        if request.inputs.is_empty() {
            return Err(EmbedError::NoInputs);
        }
        if let Some(index) = request.inputs.iter().position(String::is_empty) {
            return Err(EmbedError::EmptyInput { index });
        }
        if request.inputs.len() > capacity {
            return Err(EmbedError::RequestLargerThanQueue {
                inputs: request.inputs.len(),
                capacity,
            });
        }
        Ok(dimensions)
    }

    /// The inputs with the model's task prefix, their token counts, and which were cut to fit (refused instead
    /// without `truncate`).
    fn encode(&self, request: EmbedRequest) -> Result<Encoded, EmbedError> {
        let manifest = &self.inner.model.manifest;
        let prefix = match request.kind {
            InputKind::Query => &manifest.query_prefix,
            InputKind::Document => &manifest.document_prefix,
        };
        let texts: Vec<String> = if prefix.is_empty() {
            request.inputs
        } else {
            request
                .inputs
                .iter()
                .map(|text| format!("{prefix}{text}"))
                .collect()
        };
        let counted = self.count_tokens(&texts)?;
        let max_tokens = manifest.max_tokens;
        let mut truncated = Vec::new();
        for (index, &tokens) in counted.iter().enumerate() {
            if tokens > max_tokens {
                if !request.truncate {
                    return Err(EmbedError::InputTooLong {
                        index,
                        tokens,
                        max_tokens,
                    });
                }
                truncated.push(index);
            }
        }
        Ok(Encoded {
            tokens: counted.iter().map(|&t| t.min(max_tokens)).collect(),
            texts,
            truncated,
            priority: request.priority,
        })
    }

    /// Puts the encoded inputs in their priority's queue, shortest first, or refuses when the queue is full.
    fn enqueue(&self, encoded: Encoded, dimensions: Option<usize>) -> Result<Pending, EmbedError> {
        let shared = &self.inner.shared;
        let Encoded {
            texts,
            tokens,
            truncated,
            priority,
        } = encoded;
        let (reply, receiver) = oneshot::channel();
        let state = Arc::new(RequestState {
            inner: Mutex::new(RequestInner {
                vectors: vec![None; texts.len()],
                remaining: texts.len(),
                last_batch: 0,
                reply: Some(reply),
            }),
        });
        // Length order inside a request: consecutive inputs of similar length pad least when batched.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| tokens[i]);
        let now = Instant::now();
        let mut slots: Vec<Option<String>> = texts.into_iter().map(Some).collect();
        let items: Vec<Item> = order
            .into_iter()
            .map(|index| Item {
                request: Arc::clone(&state),
                index,
                text: slots[index].take().unwrap_or_default(),
                tokens: tokens[index],
                enqueued: now,
            })
            .collect();
        {
            let mut queues = shared.lock();
            if queues.shutdown {
                return Err(EmbedError::ShuttingDown);
            }
            if queues.waiting + items.len() > shared.queue_capacity {
                return Err(EmbedError::QueueFull {
                    capacity: shared.queue_capacity,
                });
            }
            queues.waiting += items.len();
            queues.classes[priority.slot()].extend(items);
            set_depth_gauges(shared, &queues);
        }
        // Every lane waits on this: the one that can serve the new inputs must wake.
        shared.wake.notify_all();
        Ok(Pending {
            reply: receiver,
            dimensions,
            tokens,
            truncated,
        })
    }

    /// Submits and waits. Tokenizing is CPU work proportional to the input, so it runs on a blocking thread,
    /// never on an async worker that other requests share.
    pub async fn embed(&self, request: EmbedRequest) -> Result<Embedded, EmbedError> {
        let embedder = self.clone();
        let pending = tokio::task::spawn_blocking(move || embedder.submit(request))
            .await
            .map_err(|error| EmbedError::Tokenizer(format!("the tokenizing task failed: {error}")))??;
        pending.wait().await
    }
}

fn set_depth_gauges(shared: &Shared, queues: &Queues) {
    for class in Priority::ALL {
        shared
            .metrics
            .queue_depth
            .get_or_create(&ClassLabel { class: class.label() })
            .set(i64::try_from(queues.classes[class.slot()].len()).unwrap_or(i64::MAX));
    }
}

fn run_scheduler(shared: &Shared, mut session: TextEmbedding, quantized: bool, lane: Lane) {
    while let Some((class, batch)) = next_batch(shared, lane) {
        let sequence = shared.batches_started.fetch_add(1, Ordering::SeqCst) + 1;
        let metrics = &shared.metrics;
        let label = ClassLabel { class: class.label() };
        let longest = batch.iter().map(|item| item.tokens).max().unwrap_or(0);
        for item in &batch {
            metrics
                .queue_wait_seconds
                .get_or_create(&label)
                .observe(item.enqueued.elapsed().as_secs_f64());
        }
        metrics.batch_inputs.observe(batch.len() as f64);
        metrics.batch_tokens.observe((longest * batch.len()) as f64);

        let texts: Vec<&str> = batch.iter().map(|item| item.text.as_str()).collect();
        // Dynamic-quantized models are run as one batch per call (fastembed refuses to split them: quantization
        // ranges are computed per batch); the batch is already the size the budget allows.
        let batch_size = if quantized { None } else { Some(texts.len()) };
        let started = Instant::now();
        let result = contain_panic(|| session.embed(&texts, batch_size).map_err(|e| e.to_string()));
        metrics.inference_seconds.observe(started.elapsed().as_secs_f64());

        match result {
            Ok(vectors) if vectors.len() == batch.len() => {
                metrics
                    .inputs_total
                    .get_or_create(&label)
                    .inc_by(batch.len() as u64);
                metrics
                    .tokens_total
                    .inc_by(batch.iter().map(|item| item.tokens as u64).sum());
                for (item, vector) in batch.into_iter().zip(vectors) {
                    item.request.complete(item.index, vector, sequence);
                }
            }
            Ok(vectors) => {
                let message = format!(
                    "the model returned {} vectors for {} inputs",
                    vectors.len(),
                    batch.len()
                );
                batch.iter().for_each(|item| item.request.fail(&message));
            }
            Err(message) => {
                tracing::error!(%message, inputs = batch.len(), "embedding batch failed");
                batch.iter().for_each(|item| item.request.fail(&message));
            }
        }
    }
}

/// Runs one batch so that a panic inside it (onnxruntime bindings, tokenizer post-processing) fails that batch
/// instead of killing the scheduler thread: a dead thread would leave every queued request waiting forever.
fn contain_panic<T>(run: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)).unwrap_or_else(|payload| {
        let detail = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".to_owned());
        Err(format!("the embedding batch panicked: {detail}"))
    })
}

/// Blocks until there is work for this lane (or shutdown), then takes one batch from its most urgent class.
fn next_batch(shared: &Shared, lane: Lane) -> Option<(Priority, Vec<Item>)> {
    let mut queues = shared.lock();
    loop {
        for &class in lane.classes() {
            let queue = &mut queues.classes[class.slot()];
            let before = queue.len();
            queue.retain(|item| !item.request.abandoned());
            let dropped = before - queue.len();
            let batch = take_batch(queue, shared.max_batch_tokens, shared.max_batch_inputs);
            queues.waiting -= dropped + batch.len();
            if !batch.is_empty() {
                set_depth_gauges(shared, &queues);
                return Some((class, batch));
            }
        }
        if queues.shutdown {
            return None;
        }
        queues = shared.wake.wait(queues).unwrap_or_else(PoisonError::into_inner);
    }
}

/// One batch from a queue: always the oldest input (so nothing waits forever), together with the run of inputs
/// around it in length order that wastes the least on padding. Every run through the oldest input that fits the
/// budget (count × longest ≤ max_tokens, count ≤ max_inputs) is considered, each extended as far as it fits; the
/// one with the highest share of real tokens wins. Neighbours in queue order would pad a short input up to the
/// long tail of the request before it, which measured 20–30% slower over HTTP with several requests in flight.
fn take_batch(queue: &mut VecDeque<Item>, max_tokens: usize, max_inputs: usize) -> Vec<Item> {
    if queue.is_empty() {
        return Vec::new();
    }
    let mut by_length: Vec<usize> = (0..queue.len()).collect();
    by_length.sort_by_key(|&position| (queue[position].tokens, position));
    let lengths: Vec<usize> = by_length.iter().map(|&position| queue[position].tokens).collect();
    let mut prefix = vec![0usize; lengths.len() + 1];
    for (i, length) in lengths.iter().enumerate() {
        prefix[i + 1] = prefix[i] + length;
    }
    let anchor = by_length.iter().position(|&position| position == 0).unwrap_or(0);
    let fits = |lo: usize, hi: usize| hi - lo < max_inputs && (hi - lo + 1) * lengths[hi] <= max_tokens;
    // (real tokens, padded tokens, lo, hi) of the best run so far; compared as real/padded by cross-multiplying.
    // The anchor alone always fits, so the loop below always sets it at lo == anchor.
    let mut best: Option<(usize, usize, usize, usize)> = None;
    for lo in anchor.saturating_sub(max_inputs - 1)..=anchor {
        if !fits(lo, anchor) {
            continue;
        }
        let mut hi = anchor;
        while hi + 1 < lengths.len() && fits(lo, hi + 1) {
            hi += 1;
        }
        let real = prefix[hi + 1] - prefix[lo];
        let padded = (hi - lo + 1) * lengths[hi];
        let better = best.is_none_or(|(best_real, best_padded, best_lo, best_hi)| {
            real * best_padded > best_real * padded
                || (real * best_padded == best_real * padded && hi - lo > best_hi - best_lo)
        });
        if better {
            best = Some((real, padded, lo, hi));
        }
    }
    let (_, _, lo, hi) = best.unwrap_or((0, 0, anchor, anchor));
    let mut chosen: Vec<usize> = by_length[lo..=hi].to_vec();
    chosen.sort_unstable();
    let mut batch = Vec::with_capacity(chosen.len());
    let mut kept = VecDeque::with_capacity(queue.len() - chosen.len());
    let mut next = chosen.iter().peekable();
    for (position, item) in queue.drain(..).enumerate() {
        if next.peek() == Some(&&position) {
            next.next();
            batch.push(item);
        } else {
            kept.push_back(item);
        }
    }
    *queue = kept;
    batch
}

/// A request's inputs as the model will see them: prefixed, counted, and in which queue.
struct Encoded {
    texts: Vec<String>,
    tokens: Vec<usize>,
    truncated: Vec<usize>,
    priority: Priority,
}

/// The `reason` label a refusal is counted under in `hearth_embed_rejected_total`; `None` for what is not a
/// refusal of the request (the model failing, a shutdown).
fn rejection_reason(error: &EmbedError) -> Option<&'static str> {
    match error {
        EmbedError::DimensionsNotSupported { .. } => Some("dimensions"),
        EmbedError::NoInputs | EmbedError::EmptyInput { .. } => Some("empty"),
        EmbedError::RequestLargerThanQueue { .. } => Some("too_large"),
        EmbedError::InputTooLong { .. } => Some("too_long"),
        EmbedError::QueueFull { .. } => Some("queue_full"),
        EmbedError::ShuttingDown
        | EmbedError::Model(_)
        | EmbedError::OnnxRuntimeNotConfigured
        | EmbedError::OnnxRuntime { .. }
        | EmbedError::Session { .. }
        | EmbedError::CudaNotBuiltIn { .. }
        | EmbedError::Tokenizer(_)
        | EmbedError::Inference(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(lengths: &[usize]) -> VecDeque<Item> {
        let (reply, _receiver) = oneshot::channel();
        let request = Arc::new(RequestState {
            inner: Mutex::new(RequestInner {
                vectors: vec![None; lengths.len()],
                remaining: lengths.len(),
                last_batch: 0,
                reply: Some(reply),
            }),
        });
        lengths
            .iter()
            .enumerate()
            .map(|(index, &tokens)| Item {
                request: Arc::clone(&request),
                index,
                text: String::new(),
                tokens,
                enqueued: Instant::now(),
            })
            .collect()
    }

    fn lengths(batch: &[Item]) -> Vec<usize> {
        let mut lengths: Vec<usize> = batch.iter().map(|item| item.tokens).collect();
        lengths.sort_unstable();
        lengths
    }

    #[test]
    fn a_panicking_batch_is_an_error_not_a_dead_thread() {
        let result: Result<(), String> = contain_panic(|| panic!("index out of bounds"));
        assert_eq!(
            result,
            Err("the embedding batch panicked: index out of bounds".to_owned())
        );
        let formatted: Result<(), String> = contain_panic(|| panic!("{} tokens", 3));
        assert_eq!(
            formatted,
            Err("the embedding batch panicked: 3 tokens".to_owned())
        );
        assert_eq!(contain_panic(|| Ok::<_, String>(7)), Ok(7));
    }

    #[test]
    fn the_oldest_input_is_always_in_the_batch() {
        let mut q = queue(&[200, 5, 6, 7, 190, 210]);
        let batch = take_batch(&mut q, 1000, 64);
        assert!(batch.iter().any(|item| item.index == 0), "oldest input skipped");
        assert!(
            lengths(&batch).iter().all(|&l| l >= 190),
            "short inputs padded: {:?}",
            lengths(&batch)
        );
        let left: Vec<usize> = q.iter().map(|item| item.tokens).filter(|&l| l < 100).collect();
        assert_eq!(
            left,
            vec![5, 6, 7],
            "the short inputs wait for a batch of their own length"
        );
    }

    #[test]
    fn short_inputs_are_not_padded_up_to_a_long_neighbour() {
        // Two requests, each sorted short to long, as submit() queues them. Queue order would take
        // [10, 11, 12, 100] first (4 × 100 ≤ 500) and pad three short inputs to 100 tokens.
        let mut q = queue(&[10, 11, 12, 100, 101, 10, 11, 12, 100, 101]);
        let batch = take_batch(&mut q, 500, 64);
        assert_eq!(lengths(&batch), vec![10, 10, 11, 11, 12, 12]);
        let batch = take_batch(&mut q, 500, 64);
        assert_eq!(lengths(&batch), vec![100, 100, 101, 101]);
        assert!(q.is_empty());
    }

    #[test]
    fn batches_respect_the_token_budget_and_input_cap() {
        let mut q = queue(&[50; 100]);
        let batch = take_batch(&mut q, 1000, 64);
        assert_eq!(batch.len(), 20, "20 × 50 tokens fill a 1000-token budget");
        let mut q = queue(&[5; 100]);
        assert_eq!(take_batch(&mut q, 100_000, 64).len(), 64);
        // An input longer than the budget still runs, alone.
        let mut q = queue(&[5000, 5]);
        assert_eq!(lengths(&take_batch(&mut q, 1000, 64)), vec![5000]);
    }
}
