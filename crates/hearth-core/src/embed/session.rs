//! Loading a verified model directory into an onnxruntime session through fastembed.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use fastembed::{InitOptionsUserDefined, TextEmbedding, TokenizerFiles, UserDefinedEmbeddingModel};

use super::EmbedError;
use super::engine::ExecutionProvider;
use crate::model::{ModelManifest, Pooling, Quantization, VerifiedModel};

/// onnxruntime allows one environment per process; the first load picks the library.
static ENVIRONMENT: OnceLock<Result<(PathBuf, ort::environment::Environment), String>> = OnceLock::new();

/// The onnxruntime library to use: the configured path, else `ORT_DYLIB_PATH`.
fn resolve_onnxruntime(configured: Option<&Path>) -> Result<PathBuf, EmbedError> {
    configured
        .map(Path::to_owned)
        .or_else(|| {
            std::env::var_os("ORT_DYLIB_PATH")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .ok_or(EmbedError::OnnxRuntimeNotConfigured)
}

/// The process's onnxruntime environment, loading the library from `path` on first use. Anything else in the
/// process that runs onnxruntime (the benchmark's raw baseline) must share it.
/// Whether the loaded onnxruntime has the CUDA execution provider (only meaningful once it is loaded).
pub fn cuda_available() -> bool {
    use ort::ep::ExecutionProvider as _;
    ort::ep::CUDA::is_available().unwrap_or(false)
}

pub fn onnxruntime_environment(path: &Path) -> Result<ort::environment::Environment, EmbedError> {
    let loaded = ENVIRONMENT.get_or_init(|| {
        if !path.is_file() {
            return Err(format!("{} does not exist", path.display()));
        }
        ort::init_from(path)
            .map_err(|e| e.to_string())?
            .with_name("hearth")
            .build()
            .map(|environment| (path.to_owned(), environment))
            .map_err(|e| e.to_string())
    });
    match loaded {
        Ok((_, environment)) => Ok(environment.clone()),
        Err(message) => Err(EmbedError::OnnxRuntime {
            path: path.to_owned(),
            message: message.clone(),
        }),
    }
}

/// A loaded model: the session, the query lane's own session when asked for, and a copy of its tokenizer
/// without truncation or padding, for exact counts.
pub(crate) struct LoadedModel {
    pub(crate) model: VerifiedModel,
    pub(crate) session: TextEmbedding,
    pub(crate) query_session: Option<TextEmbedding>,
    pub(crate) counter: tokenizers::Tokenizer,
    pub(crate) onnxruntime: PathBuf,
}

/// The execution providers a session runs on: the CPU, or CUDA first (failing the session rather than quietly
/// falling back when the GPU is unusable).
fn execution_providers(
    provider: ExecutionProvider,
    onnxruntime: &Path,
) -> Result<Vec<ort::ep::ExecutionProviderDispatch>, EmbedError> {
    // onnxruntime's CPU arena grows to the largest batch it ever ran and keeps that memory for good: hundreds of
    // MiB after one batch of long inputs (docs/benchmarks.md, memory). Without it, a batch's tensors are freed
    // when it ends.
    let cpu = ort::ep::CPU::default().with_arena_allocator(false).build();
    Ok(match provider {
        ExecutionProvider::Cpu => vec![cpu],
        ExecutionProvider::Cuda => {
            use ort::ep::ExecutionProvider as _;
            if !ort::ep::CUDA::is_available().unwrap_or(false) {
                return Err(EmbedError::CudaNotBuiltIn {
                    onnxruntime: onnxruntime.to_owned(),
                });
            }
            // Fails the session (no GPU, driver or CUDA library) instead of quietly running on the CPU.
            vec![ort::ep::CUDA::default().build().error_on_failure(), cpu]
        }
    })
}

/// The files fastembed builds a session from, read from the verified model directory.
fn read_session_files(model: &VerifiedModel) -> Result<[Vec<u8>; 5], String> {
    let read = |name: &str| std::fs::read(model.file(name)).map_err(|e| format!("reading {name}: {e}"));
    Ok([
        read("model.onnx")?,
        read("tokenizer.json")?,
        read("config.json")?,
        read("special_tokens_map.json")?,
        read("tokenizer_config.json")?,
    ])
}

/// Verifies the model files first (a damaged model is the more useful error), then loads onnxruntime and the model:
/// one session with `intra_threads`, and a second with `query_threads` unless that is 0, both on `provider`, and
/// both keeping an int8 model's weights int8 with `keep_quantized_weights`.
pub(crate) fn load(
    model_dir: &Path,
    onnxruntime: Option<&Path>,
    provider: ExecutionProvider,
    intra_threads: usize,
    query_threads: usize,
    keep_quantized_weights: bool,
) -> Result<LoadedModel, EmbedError> {
    let model = VerifiedModel::open(model_dir)?;
    let onnxruntime = resolve_onnxruntime(onnxruntime)?;
    let environment = onnxruntime_environment(&onnxruntime)?;
    let providers = execution_providers(provider, &onnxruntime)?;
    let session_error = |message: String| EmbedError::Session {
        dir: model_dir.to_owned(),
        message,
    };
    let manifest: &ModelManifest = &model.manifest;
    let files = read_session_files(&model).map_err(session_error)?;
    let quantized = manifest.quantization == Quantization::DynamicInt8;
    let open = |threads: usize, keep_int8: bool| {
        let [onnx, tokenizer, config, special_tokens, tokenizer_config] = files.clone();
        let user_model = UserDefinedEmbeddingModel::new(
            onnx,
            TokenizerFiles {
                tokenizer_file: tokenizer,
                config_file: config,
                special_tokens_map_file: special_tokens,
                tokenizer_config_file: tokenizer_config,
            },
        )
        .with_pooling(match manifest.pooling {
            Pooling::Mean => fastembed::Pooling::Mean,
            Pooling::Cls => fastembed::Pooling::Cls,
        })
        .with_quantization(match manifest.quantization {
            Quantization::None => fastembed::QuantizationMode::None,
            Quantization::DynamicInt8 => fastembed::QuantizationMode::Dynamic,
        });
        let mut options = InitOptionsUserDefined::new()
            .with_environment(environment.clone())
            .with_max_length(manifest.max_tokens)
            .with_intra_threads(threads)
            .with_execution_providers(providers.clone())
            .with_session_config("session.intra_op.allow_spinning", "0");
        if quantized && keep_int8 {
            // Constant folding would dequantize every int8 weight into a float32 copy at load.
            options =
                options.with_session_config("optimization.disable_specified_optimizers", "ConstantFolding");
        }
        TextEmbedding::try_new_from_user_defined(user_model, options)
            .map_err(|e| session_error(e.to_string()))
    };
    let session = open(intra_threads, keep_quantized_weights)?;
    // The same choice for the query lane: a model whose graph dequantizes its int8 weights (the test model's)
    // does it on every run when they are kept int8, which for one short query is most of its cost (about 100 ms
    // against 14 for the test model on x86, docs/benchmarks.md).
    let query_session = match query_threads {
        0 => None,
        n => Some(open(n, keep_quantized_weights)?),
    };
    let mut counter = session.tokenizer.clone();
    counter
        .with_truncation(None)
        .map_err(|e| session_error(format!("tokenizer: {e}")))?;
    counter.with_padding(None);
    Ok(LoadedModel {
        model,
        session,
        query_session,
        counter,
        onnxruntime,
    })
}
