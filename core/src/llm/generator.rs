//! A decoder LLM and its generations: prefill, then one token at a time. The KV cache never passes through Rust
//! buffers: a shared-buffer decoder (GroupQueryAttention) appends to one bound buffer per layer in place; other
//! decoders hand each step's `present` outputs to the next step as its `past` inputs, as ONNX Runtime values.

use std::borrow::Cow;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use half::f16;
use ort::AsPointer;
use ort::memory::{AllocationDevice, AllocatorType, MemoryInfo, MemoryType};
use ort::session::{IoBinding, Session, SessionInputValue};
use ort::value::{DynValue, Tensor as OrtTensor};
use serde::Deserialize;

use super::sampling::{GenerateOptions, Sampler};
use crate::config::{EngineConfig, Precision};
use crate::engine::open_session;
use crate::error::{Error, Result, catch_panic};
use crate::source::Source;

fn fail(what: &str, e: ort::Error) -> Error {
    Error::InferenceFailed { reason: format!("{what}: {}", e.message()) }
}

/// The last position's logits (f32 or f16) copied into `out`, a buffer reused across steps.
fn last_logits(logits: &DynValue, vocab: usize, out: &mut Vec<f32>) -> Result<()> {
    out.clear();
    match logits.try_extract_tensor::<f32>() {
        Ok((_, data)) => out.extend_from_slice(&data[data.len() - vocab..]),
        Err(_) => {
            let (_, data) = logits.try_extract_tensor::<f16>().map_err(|e| fail("logits", e))?;
            out.extend(data[data.len() - vocab..].iter().map(|h| h.to_f32()));
        }
    }
    Ok(())
}

/// The next token from the last position's logits (modified in place), with `banned` tokens excluded.
fn choose(sampler: &mut Sampler, logits: &mut [f32], history: &[u32], banned: &[u32]) -> u32 {
    for &token in banned {
        if let Some(l) = logits.get_mut(token as usize) {
            *l = f32::NEG_INFINITY;
        }
    }
    sampler.next(logits, history)
}

/// The layout of a decoder made by `benchmarks/llm/make_decoder.py` (its `decoder.json`).
#[derive(Debug, Clone, Deserialize)]
struct DecoderConfig {
    layers: usize,
    kv_heads: usize,
    head_dim: usize,
    vocab: usize,
    max_positions: usize,
    eos: u32,
    /// The KV cache is one buffer per layer, sized for the whole generation, that the attention updates in place
    /// (GroupQueryAttention's shared past/present buffer, genai's `past_present_share_buffer`). Otherwise each step's
    /// `present` outputs, one position longer, become the next step's `past` inputs.
    #[serde(default)]
    past_present_share_buffer: bool,
}

/// One message of a chat.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: &str, content: &str) -> ChatMessage {
        ChatMessage { role: role.to_owned(), content: content.to_owned() }
    }
}

/// Why a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// An end-of-sequence token or a stop string.
    Stop,
    /// `max_tokens` reached.
    Length,
    /// The model's context is full.
    ContextFull,
    /// Cancelled by the caller.
    Cancelled,
}

/// What one generation cost.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GenerationMetrics {
    pub prompt_tokens: u32,
    pub generated_tokens: u32,
    /// Laying out (chat template) and tokenizing the prompt.
    pub prompt_ms: f64,
    /// From the prompt's tokens to the first generated token: the prefill and the first choice (onnxruntime-genai's
    /// definition). The whole wait a user sees is `prompt_ms` + this.
    pub time_to_first_token_ms: f64,
    /// Generated tokens after the first, per second of decoding.
    pub tokens_per_second: f64,
    /// Per decode step (one token each), after the first token.
    pub token_p50_ms: f64,
    pub token_p95_ms: f64,
    pub total_ms: f64,
    /// Peak resident memory of the process so far (Linux and Android; 0 where unknown).
    pub peak_rss_mb: f64,
}

struct LlmInner {
    session: Mutex<Session>,
    tokenizer: tokenizers::Tokenizer,
    chat_template: Option<String>,
    config: DecoderConfig,
    kv_f16: bool,
    logits_f16: bool,
    /// Whether the decoder takes `position_ids` (the decomposed layout) or derives positions from the mask.
    position_ids: bool,
    stop_tokens: Vec<u32>,
    past_names: Vec<String>,
    present_names: Vec<String>,
    file: String,
}

/// A decoder LLM loaded from a directory made by `cargo xtask models prepare smollm2`: `<precision>.onnx`,
/// `tokenizer.json`, `chat_template.jinja` and `decoder.json`. Cheap to clone; share it between threads.
#[derive(Clone)]
pub struct Llm {
    inner: Arc<LlmInner>,
}

impl std::fmt::Debug for Llm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Llm").field("file", &self.inner.file).finish()
    }
}

/// The decoder file for a precision: `Auto` is 4-bit where made (the fastest here, and exact against
/// recomputation), else FP32.
fn decoder_file(dir: &Path, precision: Precision) -> Result<String> {
    let candidates: &[&str] = match precision {
        Precision::Auto => &["int4.onnx", "fp32.onnx"],
        Precision::Fp32 => &["fp32.onnx"],
        Precision::Fp16 => &["fp16.onnx"],
        Precision::Int8 => &["int8.onnx"],
        Precision::Int4 => &["int4.onnx"],
    };
    candidates.iter().find(|f| dir.join(f).is_file()).map(|f| (*f).to_owned()).ok_or_else(|| Error::InvalidConfig {
        reason: format!("{} has no {precision:?} decoder (looked for {candidates:?})", dir.display()),
    })
}

impl Llm {
    pub fn open(dir: impl AsRef<Path>, config: EngineConfig) -> Result<Llm> {
        let dir = dir.as_ref();
        catch_panic(|| {
            let read = |name: &str| {
                std::fs::read_to_string(dir.join(name))
                    .map_err(|_| Error::ModelNotFound { path: dir.join(name).display().to_string() })
            };
            let config_text = read("decoder.json")?;
            let decoder: DecoderConfig = serde_json::from_str(&config_text)
                .map_err(|e| Error::invalid_model(format!("{}: decoder.json: {e}", dir.display())))?;
            let file = decoder_file(dir, config.precision)?;
            let session_config = EngineConfig { precision: Precision::Auto, shape_buckets: Vec::new(), ..config };
            let (session, _, _) = open_session(Source::File(&dir.join(&file)), &session_config, None, None)?;
            let tokenizer = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json"))
                .map_err(|e| Error::invalid_model(format!("{}: tokenizer.json: {e}", dir.display())))?;
            let chat_template = read("chat_template.jinja").ok();
            let past_names: Vec<String> = (0..decoder.layers)
                .flat_map(|i| [format!("past_key_values.{i}.key"), format!("past_key_values.{i}.value")])
                .collect();
            let present_names: Vec<String> =
                (0..decoder.layers).flat_map(|i| [format!("present.{i}.key"), format!("present.{i}.value")]).collect();
            let declared: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
            // position_ids is optional: decoders whose attention takes positions from the mask have none.
            let position_ids = declared.contains(&"position_ids");
            for name in ["input_ids", "attention_mask"].iter().copied().chain(past_names.iter().map(String::as_str)) {
                if !declared.contains(&name) {
                    return Err(Error::invalid_model(format!(
                        "{file} is not a decoder of decoder.json's layout: no input `{name}`"
                    )));
                }
            }
            let is_f16 = |t: &ort::value::ValueType| {
                matches!(t, ort::value::ValueType::Tensor { ty: ort::value::TensorElementType::Float16, .. })
            };
            let kv_f16 = session.inputs().iter().find(|i| i.name() == past_names[0]).is_some_and(|i| is_f16(i.dtype()));
            let logits_f16 = session.outputs().iter().find(|o| o.name() == "logits").is_some_and(|o| is_f16(o.dtype()));
            let mut stop_tokens = vec![decoder.eos];
            stop_tokens.extend(
                ["<|endoftext|>", "<|im_end|>", "<|eot_id|>", "</s>"].iter().filter_map(|t| tokenizer.token_to_id(t)),
            );
            stop_tokens.sort_unstable();
            stop_tokens.dedup();
            log::info!("LLM {} loaded from {}", file, dir.display());
            Ok(Llm {
                inner: Arc::new(LlmInner {
                    session: Mutex::new(session),
                    tokenizer,
                    chat_template,
                    config: decoder,
                    kv_f16,
                    logits_f16,
                    position_ids,
                    stop_tokens,
                    past_names,
                    present_names,
                    file,
                }),
            })
        })
    }

    /// The decoder file running (e.g. `int4.onnx`).
    pub fn file(&self) -> &str {
        &self.inner.file
    }

    /// The longest prompt + answer, in tokens.
    pub fn max_context(&self) -> u32 {
        self.inner.config.max_positions as u32
    }

    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.inner
            .tokenizer
            .encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| Error::invalid_input("prompt", format!("cannot tokenize: {e}")))
    }

    /// The chat as the model's template lays it out, ending where the assistant's answer begins.
    pub fn chat_prompt(&self, messages: &[ChatMessage]) -> Result<String> {
        let template = self.inner.chat_template.as_deref().ok_or_else(|| Error::InvalidConfig {
            reason: "this model has no chat template (chat_template.jinja); use generate with a prompt".into(),
        })?;
        let mut env = minijinja::Environment::new();
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |message: String| -> std::result::Result<String, minijinja::Error> {
            Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, message))
        });
        env.add_template("chat", template).map_err(|e| Error::invalid_model(format!("chat template: {e}")))?;
        let token = |id: u32| self.inner.tokenizer.id_to_token(id).unwrap_or_default();
        env.get_template("chat")
            .and_then(|t| {
                t.render(minijinja::context! {
                    messages => messages,
                    add_generation_prompt => true,
                    bos_token => token(1),
                    eos_token => token(self.inner.config.eos),
                })
            })
            .map_err(|e| Error::invalid_input("messages", format!("the chat template refused them: {e}")))
    }

    /// Continues `prompt` (no template applied).
    pub fn generate(&self, prompt: &str, options: GenerateOptions) -> Result<Generation> {
        let started = Instant::now();
        catch_panic(|| Generation::start(self.inner.clone(), self.encode(prompt)?, options, started, None))
    }

    /// Answers the chat: the template applied to `messages`, with the assistant's turn open.
    pub fn chat(&self, messages: &[ChatMessage], options: GenerateOptions) -> Result<Generation> {
        let started = Instant::now();
        catch_panic(|| {
            let tokens = self.encode(&self.chat_prompt(messages)?)?;
            Generation::start(self.inner.clone(), tokens, options, started, None)
        })
    }
}

/// A conversation that remembers its turns. When the history no longer fits the context with room for the answer,
/// the oldest turns (after the system message) are dropped.
pub struct Chat {
    llm: Llm,
    history: Arc<Mutex<Vec<ChatMessage>>>,
}

impl Chat {
    pub fn new(llm: &Llm, system: Option<&str>) -> Chat {
        let history = system.map(|s| vec![ChatMessage::new("system", s)]).unwrap_or_default();
        Chat { llm: llm.clone(), history: Arc::new(Mutex::new(history)) }
    }

    /// The turns so far (the assistant's answer is added when its generation ends, cancelled ones included).
    pub fn history(&self) -> Vec<ChatMessage> {
        self.history.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn send(&self, user: &str, options: GenerateOptions) -> Result<Generation> {
        catch_panic(|| self.send_inner(user, options))
    }

    fn send_inner(&self, user: &str, options: GenerateOptions) -> Result<Generation> {
        let started = Instant::now();
        let mut history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        history.push(ChatMessage::new("user", user));
        let budget = self.llm.max_context().saturating_sub(options.max_tokens) as usize;
        let tokens = loop {
            let tokens = self.llm.encode(&self.llm.chat_prompt(&history)?)?;
            let first_droppable = usize::from(history.first().is_some_and(|m| m.role == "system"));
            if tokens.len() <= budget || history.len() <= first_droppable + 1 {
                break tokens;
            }
            history.remove(first_droppable);
        };
        drop(history);
        Generation::start(self.llm.inner.clone(), tokens, options, started, Some(self.history.clone()))
    }
}

/// Stops a generation from another thread; it ends before its next token.
#[derive(Clone, Debug, Default)]
pub struct CancelHandle(Arc<AtomicBool>);

impl CancelHandle {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// A zero-filled f32 (or f16) tensor of ours.
fn new_tensor(shape: Vec<usize>, f16: bool) -> ort::Result<DynValue> {
    let allocator = ort::memory::Allocator::default();
    if f16 {
        let mut t = OrtTensor::<f16>::new(&allocator, shape)?;
        t.extract_tensor_mut().1.fill(f16::ZERO);
        Ok(t.into_dyn())
    } else {
        let mut t = OrtTensor::<f32>::new(&allocator, shape)?;
        t.extract_tensor_mut().1.fill(0.0);
        Ok(t.into_dyn())
    }
}

/// A KV cache tensor of `positions` positions, in the decoder's KV type.
fn kv_tensor(llm: &LlmInner, positions: usize) -> Result<DynValue> {
    let cfg = &llm.config;
    new_tensor(vec![1, cfg.kv_heads, positions, cfg.head_dim], llm.kv_f16).map_err(|e| fail("KV cache", e))
}

/// The KV cache of a shared-buffer decoder: per layer one buffer for `capacity` positions (the whole generation),
/// bound as both its `past` input and its `present` output, so the attention appends to it in place and nothing is
/// copied or reallocated between steps.
fn shared_kv_cache(llm: &LlmInner, session: &Session, capacity: usize) -> Result<SharedKvCache> {
    let mut binding = session.create_binding().map_err(|e| fail("binding", e))?;
    for (past, present) in llm.past_names.iter().zip(&llm.present_names) {
        let mut buffer = kv_tensor(llm, capacity)?;
        binding.bind_input(past.as_str(), &buffer).map_err(|e| fail("KV cache", e))?;
        binding.bind_output(present.as_str(), &mut buffer).map_err(|e| fail("KV cache", e))?;
    }
    Ok(SharedKvCache { binding, logits: None })
}

/// A shared-buffer decoder's state: the binding holds the KV buffers (as input and output) and, once decoding
/// one token at a time, the one-row logits buffer.
struct SharedKvCache {
    binding: IoBinding,
    logits: Option<DynValue>,
}

/// A generation in progress: an iterator of text pieces, each valid UTF-8 (a character split across tokens is
/// held until complete). Dropping it, or [`CancelHandle::cancel`], stops it between tokens.
pub struct Generation {
    llm: Arc<LlmInner>,
    options: GenerateOptions,
    sampler: Sampler,
    tokens: Vec<u32>,
    prompt_len: usize,
    /// Model steps run so far (the first is the prefill).
    steps: usize,
    /// The KV cache between steps: the last `present` outputs, or a shared-buffer decoder's buffers.
    past: Option<Vec<DynValue>>,
    shared: Option<SharedKvCache>,
    /// The generated text so far, and how much of it was handed out.
    text: String,
    emitted: usize,
    /// Incremental detokenization state (tokenizers' decode stream): each step decodes a few tokens, not all.
    stream_ids: Vec<u32>,
    stream_prefix: String,
    stream_prefix_index: usize,
    cancel: CancelHandle,
    finish: Option<FinishReason>,
    history: Option<Arc<Mutex<Vec<ChatMessage>>>>,
    started: Instant,
    prompt_ms: f64,
    first_token_ms: Option<f64>,
    step_ms: Vec<f64>,
    /// The last position's logits, one buffer reused across steps.
    logits: Vec<f32>,
}

impl Generation {
    fn start(
        llm: Arc<LlmInner>,
        tokens: Vec<u32>,
        options: GenerateOptions,
        started: Instant,
        history: Option<Arc<Mutex<Vec<ChatMessage>>>>,
    ) -> Result<Generation> {
        options.validate().map_err(|reason| Error::InvalidConfig { reason })?;
        if tokens.is_empty() {
            return Err(Error::invalid_input("prompt", "the prompt has no tokens"));
        }
        let max = llm.config.max_positions;
        if tokens.len() >= max {
            return Err(Error::invalid_input(
                "prompt",
                format!("{} tokens; the model's context holds {max}, answer included", tokens.len()),
            ));
        }
        // The KV cache is made with the request, as genai makes its generator's state before the prompt runs: the
        // time to first token is the model's, and a cache that cannot be had fails here.
        let shared = if llm.config.past_present_share_buffer {
            let capacity = (tokens.len() + options.max_tokens as usize).min(max);
            let session = llm.session.lock().unwrap_or_else(|e| e.into_inner());
            Some(shared_kv_cache(&llm, &session, capacity)?)
        } else {
            None
        };
        let prompt_ms = started.elapsed().as_secs_f64() * 1e3;
        Ok(Generation {
            sampler: Sampler::new(&options),
            prompt_len: tokens.len(),
            tokens,
            options,
            llm,
            steps: 0,
            past: None,
            shared,
            text: String::new(),
            emitted: 0,
            stream_ids: Vec::new(),
            stream_prefix: String::new(),
            stream_prefix_index: 0,
            cancel: CancelHandle::default(),
            finish: None,
            history,
            started: Instant::now(),
            prompt_ms,
            first_token_ms: None,
            step_ms: Vec::new(),
            logits: Vec::new(),
        })
    }

    pub fn cancel_handle(&self) -> CancelHandle {
        self.cancel.clone()
    }

    /// Why it ended; `None` while it runs. Cancelled counts as ended at once, before the next step notices.
    pub fn finish_reason(&self) -> Option<FinishReason> {
        self.finish.or(self.cancel.is_cancelled().then_some(FinishReason::Cancelled))
    }

    /// The whole answer so far.
    pub fn text(&self) -> &str {
        &self.text[..self.emitted]
    }

    /// Generated token ids so far.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens[self.prompt_len..]
    }

    pub fn metrics(&self) -> GenerationMetrics {
        let steps = crate::bench::Summary::of(&self.step_ms);
        let decode_ms: f64 = self.step_ms.iter().sum();
        GenerationMetrics {
            prompt_tokens: self.prompt_len as u32,
            generated_tokens: (self.tokens.len() - self.prompt_len) as u32,
            prompt_ms: self.prompt_ms,
            time_to_first_token_ms: self.first_token_ms.unwrap_or_default(),
            tokens_per_second: if decode_ms > 0.0 { self.step_ms.len() as f64 * 1e3 / decode_ms } else { 0.0 },
            token_p50_ms: steps.map_or(0.0, |s| s.p50),
            token_p95_ms: steps.map_or(0.0, |s| s.p95),
            total_ms: self.prompt_ms + self.started.elapsed().as_secs_f64() * 1e3,
            peak_rss_mb: crate::bench::memory().map_or(0.0, |m| m.peak_rss as f64 / (1024.0 * 1024.0)),
        }
    }

    fn end(&mut self, reason: FinishReason) -> Option<String> {
        self.finish = Some(reason);
        (self.past, self.shared) = (None, None); // the KV cache's memory goes back now, not when this is dropped
        // Whatever was held back for a possible stop string is answer text after all (unless a stop string ended it).
        let rest = self.text[self.emitted..].to_owned();
        self.emitted = self.text.len();
        if let Some(history) = self.history.take() {
            history.lock().unwrap_or_else(|e| e.into_inner()).push(ChatMessage::new("assistant", &self.text));
        }
        (!rest.is_empty()).then_some(rest)
    }

    /// One model step: the prompt on the first call, then the last token. Returns the next token.
    fn step(&mut self) -> Result<u32> {
        let llm = self.llm.clone();
        let (start, n) = if self.steps == 0 { (0, self.tokens.len()) } else { (self.tokens.len() - 1, 1) };
        let total = start + n;
        let ids: Vec<i64> = self.tokens[start..].iter().map(|&t| t as i64).collect();
        let input_ids = OrtTensor::from_array(([1usize, n], ids)).map_err(|e| fail("input_ids", e))?;
        let mask =
            OrtTensor::from_array(([1usize, total], vec![1i64; total])).map_err(|e| fail("attention_mask", e))?;
        let positions = if llm.position_ids {
            let positions: Vec<i64> = (start as i64..total as i64).collect();
            Some(OrtTensor::from_array(([1usize, n], positions)).map_err(|e| fail("position_ids", e))?)
        } else {
            None
        };
        let mut inputs: Vec<(Cow<'_, str>, SessionInputValue<'_>)> =
            vec![("input_ids".into(), input_ids.into()), ("attention_mask".into(), mask.into())];
        if let Some(positions) = positions {
            inputs.push(("position_ids".into(), positions.into()));
        }
        // Until `min_tokens` are out, the stop tokens cannot be chosen.
        let banned: &[u32] =
            if self.tokens.len() - self.prompt_len < self.options.min_tokens as usize { &llm.stop_tokens } else { &[] };
        let vocab = llm.config.vocab;
        let mut session = llm.session.lock().unwrap_or_else(|e| e.into_inner());
        let token = if let Some(shared) = self.shared.as_mut() {
            let binding = &mut shared.binding;
            for (name, value) in &inputs {
                binding.bind_input(name.as_ref(), &**value).map_err(|e| fail("binding", e))?;
            }
            if n > 1 {
                // The prompt's logits (rows x vocab, megabytes) come from ONNX Runtime's arena, whose pages are warm
                // after the first request; a buffer of our own would be faulted in afresh at every prompt.
                let cpu = MemoryInfo::new(AllocationDevice::CPU, 0, AllocatorType::Device, MemoryType::CPUOutput)
                    .map_err(|e| fail("logits", e))?;
                binding.bind_output_to_device("logits", &cpu).map_err(|e| fail("logits", e))?;
                let outputs = session.run_binding(binding).map_err(|e| fail("decoder step", e))?;
                let logits = outputs.get("logits").ok_or_else(|| Error::internal("the decoder gave no logits"))?;
                last_logits(logits, vocab, &mut self.logits)?;
                choose(&mut self.sampler, &mut self.logits, &self.tokens, banned)
            } else {
                if shared.logits.is_none() {
                    let mut logits = new_tensor(vec![1, 1, vocab], llm.logits_f16).map_err(|e| fail("logits", e))?;
                    binding.bind_output("logits", &mut logits).map_err(|e| fail("logits", e))?;
                    shared.logits = Some(logits);
                }
                // ort's run_binding would wrap all 61 bound outputs in new values at every step; every output here
                // is already ours, so the C call alone does.
                // SAFETY: the session and binding are live, the binding holds its values, and `session` is locked.
                unsafe {
                    ort::Error::result_from_status((ort::api().RunWithBinding)(
                        session.ptr().cast_mut(),
                        std::ptr::null(),
                        binding.ptr(),
                    ))
                }
                .map_err(|e| fail("decoder step", e))?;
                let logits = shared.logits.as_mut().expect("bound above");
                // The one-row logits buffer is ours: sample in place, without a copy (unless it holds f16).
                match logits.try_extract_tensor_mut::<f32>() {
                    Ok((_, data)) => choose(&mut self.sampler, data, &self.tokens, banned),
                    Err(_) => {
                        last_logits(logits, vocab, &mut self.logits)?;
                        choose(&mut self.sampler, &mut self.logits, &self.tokens, banned)
                    }
                }
            }
        } else {
            let past = match self.past.take() {
                Some(past) => past,
                None => (0..llm.past_names.len()).map(|_| kv_tensor(&llm, 0)).collect::<Result<Vec<_>>>()?,
            };
            inputs.extend(llm.past_names.iter().zip(past).map(|(name, value)| (name.as_str().into(), value.into())));
            let mut outputs = session.run(inputs).map_err(|e| fail("decoder step", e))?;
            let logits = outputs.get("logits").ok_or_else(|| Error::internal("the decoder gave no logits"))?;
            last_logits(logits, vocab, &mut self.logits)?;
            let past = llm
                .present_names
                .iter()
                .map(|name| {
                    outputs.remove(name).ok_or_else(|| Error::internal(format!("the decoder gave no `{name}`")))
                })
                .collect::<Result<Vec<_>>>()?;
            self.past = Some(past);
            choose(&mut self.sampler, &mut self.logits, &self.tokens, banned)
        };
        self.steps += 1;
        Ok(token)
    }

    /// The next piece of text, or `None` when the generation has ended.
    fn advance(&mut self) -> Result<Option<String>> {
        loop {
            if self.finish.is_some() {
                return Ok(None);
            }
            if self.cancel.is_cancelled() {
                return Ok(self.end(FinishReason::Cancelled));
            }
            let generated = self.tokens.len() - self.prompt_len;
            if generated >= self.options.max_tokens as usize {
                return Ok(self.end(FinishReason::Length));
            }
            if self.tokens.len() >= self.llm.config.max_positions {
                return Ok(self.end(FinishReason::ContextFull));
            }
            let step_started = Instant::now();
            let token = self.step()?;
            let elapsed = step_started.elapsed().as_secs_f64() * 1e3;
            if self.first_token_ms.is_none() {
                self.first_token_ms = Some(self.started.elapsed().as_secs_f64() * 1e3);
            } else {
                self.step_ms.push(elapsed);
            }
            if self.llm.stop_tokens.contains(&token) {
                return Ok(self.end(FinishReason::Stop));
            }
            self.tokens.push(token);
            // A character split across tokens decodes to nothing until its last byte arrives.
            let new_text = tokenizers::tokenizer::step_decode_stream(
                &self.llm.tokenizer,
                vec![token],
                true,
                &mut self.stream_ids,
                &mut self.stream_prefix,
                &mut self.stream_prefix_index,
            )
            .map_err(|e| Error::internal(format!("decoding tokens: {e}")))?;
            let Some(new_text) = new_text else { continue };
            self.text.push_str(&new_text);
            if let Some(at) = self.options.stop.iter().filter_map(|s| self.text.find(s.as_str())).min() {
                self.text.truncate(at);
                return Ok(self.end(FinishReason::Stop));
            }
            // Hold back a tail that could be the start of a stop string.
            let hold = self
                .options
                .stop
                .iter()
                .flat_map(|s| (1..s.len()).filter(|&k| s.is_char_boundary(k)).map(move |k| &s[..k]))
                .filter(|prefix| self.text.ends_with(prefix))
                .map(str::len)
                .max()
                .unwrap_or(0);
            let until = self.text.len() - hold;
            if until > self.emitted && self.text.is_char_boundary(until) {
                let piece = self.text[self.emitted..until].to_owned();
                self.emitted = until;
                return Ok(Some(piece));
            }
        }
    }
}

impl Drop for Generation {
    /// Dropped before its end (a collector that stopped early): the chat still records the answer it saw.
    fn drop(&mut self) {
        if self.finish.is_none() {
            self.end(FinishReason::Cancelled);
        }
    }
}

impl Iterator for Generation {
    type Item = Result<String>;

    fn next(&mut self) -> Option<Self::Item> {
        match catch_panic(|| self.advance()) {
            Ok(Some(piece)) => Some(Ok(piece)),
            Ok(None) => None,
            Err(e) => {
                self.finish = Some(FinishReason::Stop);
                (self.past, self.shared) = (None, None);
                Some(Err(e))
            }
        }
    }
}
