//! Local embeddings: one scheduler thread owns the ONNX session (fastembed's `embed` takes `&mut self`) and forms
//! batches by a token budget from three priority classes, so a search query waits for at most the batch already
//! running, whatever bulk ingest is queued.
//!
//! Inputs are tokenized on the caller's thread, which counts tokens exactly: an input over the model's limit is
//! refused with both numbers unless the caller opts into truncation, which is then reported. Nothing is silently
//! cut.

mod engine;
mod metrics;
mod postprocess;
pub mod remote;
mod session;

pub use engine::{
    EmbedRequest, Embedded, Embedder, EmbedderConfig, ExecutionProvider, InputKind, Pending, Priority,
};
pub use metrics::EmbedMetrics;
pub use postprocess::matryoshka;
pub use session::{cuda_available, onnxruntime_environment};

use std::path::PathBuf;

use crate::model::ModelError;

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(
        "onnxruntime not found: set embedding.onnxruntime in the config or ORT_DYLIB_PATH to libonnxruntime.so"
    )]
    OnnxRuntimeNotConfigured,
    #[error("cannot load onnxruntime from {path}: {message}")]
    OnnxRuntime { path: PathBuf, message: String },
    #[error("cannot load the model in {dir}: {message}")]
    Session { dir: PathBuf, message: String },
    #[error(
        "embedding.execution_provider = \"cuda\", but the onnxruntime at {onnxruntime} has no CUDA execution \
         provider: point embedding.onnxruntime at an onnxruntime built with CUDA, or set it to \"cpu\""
    )]
    CudaNotBuiltIn { onnxruntime: PathBuf },
    #[error("no inputs: send at least one text")]
    NoInputs,
    #[error("input {index} is empty")]
    EmptyInput { index: usize },
    #[error(
        "input {index} has {tokens} tokens, more than the {max_tokens} this model accepts: split it, or ask for \
         truncation"
    )]
    InputTooLong {
        index: usize,
        tokens: usize,
        max_tokens: usize,
    },
    #[error("{requested} dimensions are not available for this model: it offers {allowed:?}")]
    DimensionsNotSupported { requested: usize, allowed: Vec<usize> },
    #[error("the embedding queue is full ({capacity} inputs waiting): retry shortly")]
    QueueFull { capacity: usize },
    #[error(
        "a request of {inputs} inputs can never fit the embedding queue of {capacity}: send fewer at once"
    )]
    RequestLargerThanQueue { inputs: usize, capacity: usize },
    #[error("tokenizer failed: {0}")]
    Tokenizer(String),
    #[error("inference failed: {0}")]
    Inference(String),
    #[error("the embedder is shutting down")]
    ShuttingDown,
}
