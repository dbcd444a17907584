//! Prometheus series of the embedding scheduler. hearthd registers them on its registry.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClassLabel {
    pub class: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Debug, Clone)]
pub struct EmbedMetrics {
    pub queue_depth: Family<ClassLabel, Gauge>,
    pub queue_wait_seconds: Family<ClassLabel, Histogram>,
    pub batch_inputs: Histogram,
    pub batch_tokens: Histogram,
    pub inference_seconds: Histogram,
    pub inputs_total: Family<ClassLabel, Counter>,
    pub tokens_total: Counter,
    pub rejected_total: Family<ReasonLabel, Counter>,
}

impl Default for EmbedMetrics {
    fn default() -> Self {
        Self {
            queue_depth: Family::default(),
            queue_wait_seconds: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0005, 2.5, 14))
            }),
            batch_inputs: Histogram::new(exponential_buckets(1.0, 2.0, 10)),
            batch_tokens: Histogram::new(exponential_buckets(16.0, 2.0, 12)),
            inference_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            inputs_total: Family::default(),
            tokens_total: Counter::default(),
            rejected_total: Family::default(),
        }
    }
}

/// Every `reason` a submission is refused with (`Embedder::submit`).
const REJECT_REASONS: [&str; 5] = ["dimensions", "empty", "queue_full", "too_large", "too_long"];

impl EmbedMetrics {
    /// Registers every series under `hearth_embed_*`, each labelled series at zero from the start, so that rates
    /// and alerts work before the first event (and the families are listed before any traffic).
    pub fn register(&self, registry: &mut Registry) {
        for priority in super::engine::Priority::ALL {
            let class = ClassLabel {
                class: priority.label(),
            };
            drop(self.queue_depth.get_or_create(&class));
            drop(self.queue_wait_seconds.get_or_create(&class));
            drop(self.inputs_total.get_or_create(&class));
        }
        for reason in REJECT_REASONS {
            drop(self.rejected_total.get_or_create(&ReasonLabel { reason }));
        }
        let registry = registry.sub_registry_with_prefix("hearth_embed");
        registry.register(
            "queue_depth",
            "Inputs waiting, by priority class",
            self.queue_depth.clone(),
        );
        registry.register(
            "queue_wait_seconds",
            "Time an input waited before its batch started, by priority class",
            self.queue_wait_seconds.clone(),
        );
        registry.register("batch_inputs", "Inputs per batch", self.batch_inputs.clone());
        registry.register(
            "batch_tokens",
            "Padded tokens per batch",
            self.batch_tokens.clone(),
        );
        registry.register(
            "inference_seconds",
            "Model time per batch",
            self.inference_seconds.clone(),
        );
        registry.register(
            "inputs",
            "Inputs embedded, by priority class",
            self.inputs_total.clone(),
        );
        registry.register("tokens", "Tokens embedded (unpadded)", self.tokens_total.clone());
        registry.register(
            "rejected",
            "Requests refused, by reason",
            self.rejected_total.clone(),
        );
    }
}
