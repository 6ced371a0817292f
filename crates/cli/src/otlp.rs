//! Export of traces over OTLP/HTTP (JSON) when `otlp_endpoint` is set: the span of every model
//! call (target `bastion::llm`) and tool execution (`bastion::tools`), with their
//! OpenTelemetry GenAI attributes, batched on the tokio runtime. Only spans are exported, never events, so no log message (a provider's error
//! text, say) leaves through this path; message contents and keys are never span attributes.

use opentelemetry::trace::{Status, TracerProvider as _};
use opentelemetry::{Array, KeyValue, Value};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanProcessor};
use opentelemetry_sdk::Resource;
use std::time::Duration;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// The targets of the spans exported: model calls, and tool executions.
const LLM_TARGET: &str = "bastion::llm";
const TOOLS_TARGET: &str = "bastion::tools";

/// Bounds one export, and so how long a shutdown may wait on an unresponsive collector.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// A string array in the GenAI conventions; the span records the one reason as a string.
const FINISH_REASONS: &str = "gen_ai.response.finish_reasons";

/// The tracer provider behind the layer; [`Otlp::shutdown`] sends what is still queued.
pub struct Otlp {
    provider: SdkTracerProvider,
}

impl Otlp {
    /// A provider exporting to `{endpoint}/v1/traces`. Must run inside the tokio runtime,
    /// which the batch processor's task runs on.
    pub fn new(endpoint: &str) -> anyhow::Result<Otlp> {
        let client = reqwest::Client::builder()
            .timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|e| anyhow::anyhow!("otlp_endpoint: cannot build the HTTP client: {e}"))?;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_protocol(Protocol::HttpJson)
            .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|e| anyhow::anyhow!("otlp_endpoint: {e}"))?;
        let batch =
            BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio).build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(Normalize(batch))
            .with_resource(
                Resource::builder()
                    .with_service_name("bastion")
                    .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
                    .build(),
            )
            .build();
        Ok(Otlp { provider })
    }

    /// The layer that turns `bastion::llm` spans into OpenTelemetry spans (`otel.name` and
    /// `otel.kind` name them); every other span and every event is filtered out.
    pub fn layer<S>(&self) -> impl Layer<S>
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    {
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("bastion"))
            // Nothing downstream reads an active OpenTelemetry context, and activating one on
            // span entry is where OpenTelemetry's own logging can re-enter the subscriber.
            .with_context_activation(false)
            .with_tracked_inactivity(false)
            .with_threads(false)
            .with_location(false)
            .with_filter(filter_fn(|meta| {
                meta.is_span() && (meta.target() == LLM_TARGET || meta.target() == TOOLS_TARGET)
            }))
    }

    /// Exports the spans still queued and stops the exporter. The processor blocks while it
    /// waits for its task, hence the blocking thread.
    pub async fn shutdown(self) {
        let provider = self.provider;
        match tokio::task::spawn_blocking(move || provider.shutdown()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "otlp: the last spans may not have been sent"),
            Err(e) => tracing::warn!(error = %e, "otlp: shutdown failed"),
        }
    }
}

/// Before a span is queued, what the GenAI conventions ask and a tracing field cannot say:
/// the finish reasons as an array of strings, an error status on a call that failed
/// (`error.type` set). (Counts are recorded as `i64`: tracing-opentelemetry exports unsigned
/// fields as strings.)
#[derive(Debug)]
struct Normalize<P>(P);

impl<P: SpanProcessor> SpanProcessor for Normalize<P> {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &opentelemetry::Context) {
        self.0.on_start(span, cx)
    }

    fn on_end(&self, mut span: SpanData) {
        for kv in &mut span.attributes {
            let key = kv.key.as_str();
            if key == "error.type" {
                span.status = Status::error(kv.value.as_str().into_owned());
            } else if key == FINISH_REASONS {
                if let Value::String(s) = &kv.value {
                    kv.value = Value::Array(Array::String(vec![s.clone()]));
                }
            }
        }
        self.0.on_end(span)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.0.set_resource(resource)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Keeps the spans that end.
    #[derive(Debug, Clone, Default)]
    struct Collect(Arc<Mutex<Vec<SpanData>>>);

    impl SpanProcessor for Collect {
        fn on_start(&self, _: &mut opentelemetry_sdk::trace::Span, _: &opentelemetry::Context) {}
        fn on_end(&self, span: SpanData) {
            self.0.lock().unwrap().push(span);
        }
        fn force_flush(&self) -> OTelSdkResult {
            Ok(())
        }
        fn shutdown_with_timeout(&self, _: Duration) -> OTelSdkResult {
            Ok(())
        }
    }

    #[test]
    fn finish_reasons_are_an_array_and_errors_set_the_status() {
        let collected = Collect::default();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(Normalize(collected.clone()))
            .build();
        let subscriber = tracing_subscriber::layer::SubscriberExt::with(
            tracing_subscriber::registry(),
            Otlp {
                provider: provider.clone(),
            }
            .layer(),
        );
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                target: "bastion::llm",
                "chat",
                otel.name = "chat m",
                otel.kind = "client",
                gen_ai.request.max_tokens = 256i64,
                gen_ai.usage.input_tokens = tracing::field::Empty,
                gen_ai.response.finish_reasons = "stop",
                bastion.cost_usd = tracing::field::Empty,
                bastion.principal = "12345",
                error.type = tracing::field::Empty,
            );
            span.record("gen_ai.usage.input_tokens", 12i64);
            span.record("bastion.cost_usd", 0.5f64);
            span.record("error.type", "timeout");
            span.in_scope(|| tracing::info!(target: "bastion::llm", secret = "x", "an event"));
            tracing::info_span!(target: "bastion::other", "not exported").in_scope(|| {});
        });
        let spans = collected.0.lock().unwrap().clone();
        assert_eq!(spans.len(), 1, "{spans:?}");
        let span = &spans[0];
        assert_eq!(span.name, "chat m");
        assert_eq!(span.span_kind, opentelemetry::trace::SpanKind::Client);
        assert!(span.events.is_empty(), "events are not exported");
        let attr = |k: &str| {
            span.attributes
                .iter()
                .find(|kv| kv.key.as_str() == k)
                .map(|kv| kv.value.clone())
        };
        assert_eq!(attr("gen_ai.request.max_tokens"), Some(Value::I64(256)));
        assert_eq!(attr("gen_ai.usage.input_tokens"), Some(Value::I64(12)));
        assert_eq!(attr("bastion.cost_usd"), Some(Value::F64(0.5)));
        assert_eq!(
            attr("gen_ai.response.finish_reasons"),
            Some(Value::Array(Array::String(vec!["stop".into()])))
        );
        assert_eq!(attr("bastion.principal"), Some(Value::from("12345")));
        assert_eq!(span.status, Status::error("timeout"));
    }
}
