//! The conversation runtime as the server runs it: which model and key an assistant's calls
//! use ([`route`]), what a call may cost before it is made ([`Chat::admit`]: spend caps and
//! token limits, refused before the provider is reached), and what every call leaves behind
//! ([`Chat::end`]: a trace span with OpenTelemetry GenAI attributes, a stored trace row,
//! usage counters). The provider clients themselves are `bastion-runtime`'s.

pub mod endpoint;
pub mod mcp;
pub mod meter;
pub mod prompt;
pub mod recorder;
pub mod route;
pub mod tool_loop;
pub mod tools;
pub mod turn;

use crate::error::{ApiError, ApiResult};
use crate::events;
use crate::flow::Meta;
use crate::state::AppState;
use bastion_core::{ConversationId, LlmCallId, MessageId, Principal};
use bastion_runtime::{ChatRequest, PriceTable, ProviderError, Usage};
use bastion_store::llm_calls::LlmCall;
use bastion_store::usage::Counter;
use bastion_store::{AssistantScope, KeyGrant};
use meter::{CounterKey, Meter};
use recorder::Recorder;
use route::{ModelRoute, Routes};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Chat {
    pub client: bastion_runtime::Client,
    pub prices: PriceTable,
    pub routes: Routes,
    pub meter: Arc<Meter>,
    pub recorder: Recorder,
    /// Conversations waiting for a person to approve a tool call.
    pub approvals: tools::ApprovalWaiters,
    /// MCP servers attached through assistants' MCP endpoints, on this node.
    pub attached: endpoint::AttachedServers,
    /// Assistants' tool registries, cached.
    pub tool_sets: tools::ToolSets,
}

/// A call that passed [`Chat::admit`]: the counters it will be charged to.
pub struct Admitted {
    counters: Vec<CounterKey>,
    /// The prompt's estimated tokens, as weighed (charged if the provider sends no usage).
    prompt_tokens: u64,
    /// The reply's token allowance: the assistant's per-reply limit, lowered to what is left
    /// of the daily and conversation limits.
    pub max_tokens: u32,
}

/// What a call is, for its trace.
pub struct CallContext {
    pub conversation: Option<ConversationId>,
    pub message: Option<MessageId>,
    /// Keep the prompt and completion with the trace (calls in a conversation only).
    pub keep_content: bool,
}

/// A call in flight: what [`Chat::end`] records.
pub struct CallRecord {
    started: Instant,
    first_token: Option<Duration>,
    counters: Vec<CounterKey>,
    /// The prompt's estimated tokens, charged when the provider reports no usage.
    prompt_estimate: u64,
    row: LlmCall,
    span: tracing::Span,
}

impl CallRecord {
    /// The first token arrived (once; later calls are ignored).
    pub fn first_token(&mut self) {
        if self.first_token.is_none() {
            self.first_token = Some(self.started.elapsed());
        }
    }
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }
}

/// How a call ended.
pub enum Outcome<'a> {
    Finished {
        usage: Usage,
        finish_reason: &'a str,
        completion: &'a str,
    },
    /// Failed or cut off after `completion` had arrived (charged as estimated).
    Failed { error: &'a str, completion: &'a str },
}

/// A call about to be made, as [`Chat::admit`] weighs it.
pub struct Ask<'a> {
    pub scope: &'a AssistantScope,
    pub route: &'a ModelRoute,
    /// The API key of a program's call: its spend cap applies too.
    pub key: Option<&'a KeyGrant>,
    /// The prompt's estimated tokens.
    pub prompt_tokens: u64,
    /// Tokens the conversation used so far (none outside a conversation).
    pub conversation_tokens_used: Option<i64>,
}

impl Chat {
    pub fn new(
        state_store: bastion_store::Store,
        settings: &crate::Settings,
    ) -> Result<Chat, ProviderError> {
        let client = bastion_runtime::Client::new(bastion_runtime::ClientConfig {
            connect_timeout: Duration::from_secs(settings.provider_connect_timeout_secs),
            response_timeout: Duration::from_secs(settings.provider_timeout_secs),
            idle_timeout: Duration::from_secs(settings.provider_timeout_secs),
            max_attempts: settings.provider_max_attempts,
            private_hosts: settings.provider_private_hosts.clone(),
            ..Default::default()
        })?;
        let meter = Arc::new(Meter::new(state_store.clone(), Duration::from_secs(5)));
        let recorder = Recorder::start(
            state_store,
            meter.clone(),
            Duration::from_millis(settings.usage_flush_ms),
        );
        Ok(Chat {
            client,
            prices: settings.price_table(),
            routes: Routes::new(Duration::from_secs(settings.cache_ttl_secs)),
            meter,
            recorder,
            approvals: Default::default(),
            attached: Default::default(),
            tool_sets: tools::ToolSets::new(Duration::from_secs(settings.cache_ttl_secs)),
        })
    }

    /// Checks the spend caps (the provider key's, and the API key's when a program calls) and
    /// the assistant's token limits against what the call could cost at most: the prompt as
    /// estimated and a full reply. A call that could exceed a cap is refused here, before the
    /// provider is reached, and the refusal is audited for the workspace's owners.
    pub async fn admit(&self, state: &AppState, meta: &Meta, ask: Ask<'_>) -> ApiResult<Admitted> {
        let Ask {
            scope,
            route,
            key,
            prompt_tokens,
            conversation_tokens_used,
        } = ask;
        let now = time::OffsetDateTime::now_utc();
        let month = meter::month(now);
        let s = &route.settings;
        let mut max_tokens = s.max_reply_tokens.max(1);
        if let (Some(limit), Some(used)) = (s.max_conversation_tokens, conversation_tokens_used) {
            let left = limit - used - prompt_tokens as i64;
            if left <= 0 {
                return Err(ApiError::LimitReached {
                    detail: format!(
                        "this conversation reached its limit of {limit} tokens; start a new one"
                    ),
                    retry_after: None,
                });
            }
            max_tokens = max_tokens.min(left);
        }
        let mut counters = vec![(format!("assistant:{}", scope.assistant_id()), month.clone())];
        if let Principal::User(user) = scope.principal() {
            let daily = (
                format!("member:{}:{user}", scope.assistant_id()),
                meter::day(now),
            );
            if let Some(limit) = s.max_daily_tokens_per_user {
                let used = self.meter.used(&daily).await?.tokens();
                let left = limit - used - prompt_tokens as i64;
                if left <= 0 {
                    return Err(ApiError::LimitReached {
                        detail: format!(
                            "you reached this assistant's limit of {limit} tokens a day; it resets at midnight UTC"
                        ),
                        retry_after: Some(meter::until_tomorrow(now)),
                    });
                }
                max_tokens = max_tokens.min(left);
            }
            counters.push(daily);
        }
        let max_tokens = u32::try_from(max_tokens).unwrap_or(u32::MAX);
        let mut capped = vec![(
            (format!("provider_key:{}", route.key_id), month.clone()),
            route.key_cap_micros,
            "provider key",
            route.key_id.to_string(),
        )];
        if let Some(k) = key {
            capped.push((
                (format!("api_key:{}", k.key().id), month.clone()),
                k.key().monthly_spend_cap_micros,
                "API key",
                k.key().id.to_string(),
            ));
        }
        let most = self
            .prices
            .max_cost_micros(&s.model, prompt_tokens, u64::from(max_tokens));
        for (counter, cap, what, id) in capped {
            if let Some(cap) = cap {
                let Some(most) = most else {
                    return Err(ApiError::SpendCap(format!(
                        "the {what} has a spend cap but model {:?} has no price, so the cap cannot be kept; an operator adds it to model_prices",
                        s.model
                    )));
                };
                let used = self.meter.used(&counter).await?.cost_micros;
                if used + most > cap {
                    cap_reached(state, meta, scope, what, &id, cap, used).await;
                    return Err(ApiError::SpendCap(format!(
                        "the {what}'s monthly spend cap of ${} is reached (used ${}, this call could cost up to ${})",
                        usd(cap),
                        usd(used),
                        usd(most)
                    )));
                }
            }
            counters.push(counter);
        }
        Ok(Admitted {
            counters,
            prompt_tokens,
            max_tokens,
        })
    }

    /// Starts the record of a call about to be made.
    pub fn begin(
        &self,
        scope: &AssistantScope,
        route: &ModelRoute,
        admitted: Admitted,
        request: &ChatRequest,
        ctx: CallContext,
    ) -> CallRecord {
        let model = request.model.as_str();
        let span = tracing::info_span!(
            target: "bastion::llm",
            "chat",
            otel.name = %format!("chat {model}"),
            otel.kind = "client",
            gen_ai.operation.name = "chat",
            gen_ai.system = route.provider.as_str(),
            gen_ai.request.model = model,
            gen_ai.request.max_tokens = i64::from(request.max_tokens),
            gen_ai.request.temperature = request.temperature.map(f64::from),
            gen_ai.response.model = model,
            gen_ai.usage.input_tokens = tracing::field::Empty,
            gen_ai.usage.output_tokens = tracing::field::Empty,
            gen_ai.response.finish_reasons = tracing::field::Empty,
            bastion.assistant = %scope.assistant_id(),
            bastion.principal = %scope.principal(),
            bastion.cost_usd = tracing::field::Empty,
            bastion.time_to_first_token_ms = tracing::field::Empty,
            error.type = tracing::field::Empty,
        );
        let prompt = if ctx.keep_content {
            let mut all = Vec::with_capacity(request.messages.len() + 1);
            if let Some(system) = &request.system {
                all.push(json!({"role": "system", "content": system}));
            }
            all.extend(request.messages.iter().map(|m| json!(m)));
            serde_json::Value::Array(all).to_string()
        } else {
            String::new()
        };
        CallRecord {
            started: Instant::now(),
            first_token: None,
            counters: admitted.counters,
            prompt_estimate: admitted.prompt_tokens,
            row: LlmCall {
                id: LlmCallId::new(),
                assistant_id: scope.assistant_id(),
                conversation_id: ctx.conversation,
                message_id: ctx.message,
                principal: scope.principal().to_string(),
                provider: route.provider.as_str().to_string(),
                model: model.to_string(),
                provider_key_id: Some(route.key_id),
                input_tokens: 0,
                output_tokens: 0,
                cost_micros: None,
                latency_ms: 0,
                ttft_ms: None,
                finish_reason: None,
                error: None,
                prompt,
                completion: if ctx.keep_content {
                    String::new()
                } else {
                    "-".into()
                },
                created_at: bastion_store::now_ms(),
            },
            span,
        }
    }

    /// Records how a call ended: usage and cost on its counters, its trace row, its span's
    /// attributes, metrics.
    pub async fn end(&self, mut rec: CallRecord, outcome: Outcome<'_>) {
        let elapsed = rec.started.elapsed();
        let keep = rec.row.completion != "-";
        let (usage, finish, error, completion) = match outcome {
            Outcome::Finished {
                usage,
                finish_reason,
                completion,
            } => (usage, Some(finish_reason), None, completion),
            Outcome::Failed { error, completion } => {
                // The provider sent no usage: charge what was asked and what arrived, as
                // estimated, so an interrupted call still counts against the caps.
                let usage = Usage {
                    input_tokens: rec.prompt_estimate,
                    output_tokens: bastion_runtime::budget::estimate_tokens(completion),
                };
                (usage, None, Some(error), completion)
            }
        };
        let cost = self.prices.cost_micros(&rec.row.model, usage);
        let span = &rec.span;
        // As i64: tracing-opentelemetry exports unsigned fields as strings.
        span.record("gen_ai.usage.input_tokens", usage.input_tokens as i64);
        span.record("gen_ai.usage.output_tokens", usage.output_tokens as i64);
        if let Some(f) = finish {
            span.record("gen_ai.response.finish_reasons", f);
        }
        if let Some(c) = cost {
            span.record("bastion.cost_usd", c as f64 / 1e6);
        }
        if let Some(t) = rec.first_token {
            span.record("bastion.time_to_first_token_ms", t.as_millis() as i64);
        }
        if let Some(e) = error {
            span.record("error.type", e);
        }
        span.in_scope(|| {
            tracing::info!(
                target: "bastion::llm",
                latency_ms = elapsed.as_millis() as u64,
                input_tokens = usage.input_tokens,
                output_tokens = usage.output_tokens,
                finish_reason = finish.unwrap_or(""),
                error = error.unwrap_or(""),
                "model call"
            )
        });
        let provider = rec.row.provider.clone();
        metrics::counter!("bastion_llm_calls_total", "provider" => provider.clone(), "outcome" => if error.is_some() { "error" } else { "ok" }).increment(1);
        metrics::counter!("bastion_llm_tokens_total", "direction" => "input")
            .increment(usage.input_tokens);
        metrics::counter!("bastion_llm_tokens_total", "direction" => "output")
            .increment(usage.output_tokens);
        metrics::histogram!("bastion_llm_call_duration_seconds", "provider" => provider.clone())
            .record(elapsed.as_secs_f64());
        if let Some(t) = rec.first_token {
            metrics::histogram!("bastion_llm_time_to_first_token_seconds", "provider" => provider)
                .record(t.as_secs_f64());
        }
        self.meter.record(
            &rec.counters,
            Counter {
                input_tokens: usage.input_tokens as i64,
                output_tokens: usage.output_tokens as i64,
                cost_micros: cost.unwrap_or(0),
                calls: 1,
            },
        );
        rec.row.input_tokens = usage.input_tokens as i64;
        rec.row.output_tokens = usage.output_tokens as i64;
        rec.row.cost_micros = cost;
        rec.row.latency_ms = elapsed.as_millis() as i64;
        rec.row.ttft_ms = rec.first_token.map(|t| t.as_millis() as i64);
        rec.row.finish_reason = finish.map(str::to_string);
        rec.row.error = error.map(str::to_string);
        rec.row.completion = if keep {
            completion.to_string()
        } else {
            String::new()
        };
        // Stored for a conversation's traces. A program's call (/v1) has no conversation and
        // no reader: it is counted above and leaves its span (over OTLP when configured),
        // not a row per call that nothing reads and nothing would ever prune.
        if rec.row.conversation_id.is_some() {
            self.recorder.call(rec.row).await;
        }
    }

    /// A call that failed before any of the answer arrived: recorded, counted, and mapped
    /// to the client's answer.
    pub async fn failed_before_answer(
        &self,
        rec: CallRecord,
        provider: &str,
        e: ProviderError,
    ) -> ApiError {
        self.end(
            rec,
            Outcome::Failed {
                error: e.kind(),
                completion: "",
            },
        )
        .await;
        self.provider_error(provider, e)
    }

    /// A provider error on a call: counted, then mapped to the client's answer.
    pub fn provider_error(&self, provider: &str, e: ProviderError) -> ApiError {
        metrics::counter!("bastion_provider_errors_total", "provider" => provider.to_string(), "kind" => e.kind()).increment(1);
        tracing::warn!(target: "bastion::llm", provider, error = %e, "provider call failed");
        ApiError::Provider(e)
    }
}

fn usd(micros: i64) -> String {
    format!("{:.2}", micros as f64 / 1e6)
}

/// Tells the workspace's owners, through the audit log, that a cap stopped a call — once a
/// minute per capped key, so a client retrying in a loop does not flood the chain.
async fn cap_reached(
    state: &AppState,
    meta: &Meta,
    scope: &AssistantScope,
    what: &str,
    id: &str,
    cap: i64,
    used: i64,
) {
    metrics::counter!("bastion_spend_cap_refusals_total").increment(1);
    let once = format!("cap|{id}");
    if state.recent_denials.contains_key(&once) {
        return;
    }
    state.recent_denials.insert(once, ());
    state
        .audit(events::event(
            scope.workspace_id(),
            events::actor(scope.principal()),
            meta,
            "spend.cap_reached",
            id,
            events::FAILURE,
            json!({"key": what, "assistant": scope.assistant_id().to_string(),
                   "cap_usd": cap as f64 / 1e6, "used_usd": used as f64 / 1e6}),
        ))
        .await;
}
