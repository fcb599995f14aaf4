//! A decoder LLM as loaded from its directory: the ONNX decoder (through the engine's session building, so the
//! model check, accelerators and compile cache apply), its tokenizer, chat template and layout (`decoder.json`).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ort::session::Session;
use serde::Deserialize;

use super::chat::ChatMessage;
use super::generation::Generation;
use super::sampling::GenerateOptions;
use crate::config::{EngineConfig, Precision};
use crate::error::{Error, Result, catch_panic};
use crate::session::open_session;
use crate::source::Source;

/// The layout of a decoder made by `tools/models/make_decoder.py` (its `decoder.json`).
#[derive(Debug, Clone, Deserialize)]
pub(super) struct DecoderConfig {
    pub(super) layers: usize,
    pub(super) kv_heads: usize,
    pub(super) head_dim: usize,
    pub(super) vocab: usize,
    pub(super) max_positions: usize,
    pub(super) eos: u32,
    /// The KV cache is one buffer per layer, sized for the whole generation, that the attention updates in place
    /// (GroupQueryAttention's shared past/present buffer, genai's `past_present_share_buffer`). Otherwise each step's
    /// `present` outputs, one position longer, become the next step's `past` inputs.
    #[serde(default)]
    pub(super) past_present_share_buffer: bool,
    /// The input that, set to 1, makes the decoder compute the last position's logits only (the LM head once per
    /// prefill instead of once per prompt token). Decoders made before it compute every position's; so does this
    /// one when the input is left at its default.
    #[serde(default)]
    pub(super) last_logits_input: Option<String>,
}

/// What every generation of one LLM shares; a generation holds it while it runs.
pub(super) struct LlmInner {
    pub(super) session: Mutex<Session>,
    /// The decoder as its lane counts it: one step of one generation at a time, in order of priority.
    pub(super) pool: crate::schedule::lane::Pool,
    /// Generations started and not yet ended: with more than one, prefills go in short chunks.
    pub(super) active: std::sync::atomic::AtomicUsize,
    pub(super) tokenizer: tokenizers::Tokenizer,
    pub(super) chat_template: Option<String>,
    pub(super) config: DecoderConfig,
    pub(super) kv_f16: bool,
    pub(super) logits_f16: bool,
    /// Whether the decoder takes `position_ids` (the decomposed layout) or derives positions from the mask.
    pub(super) position_ids: bool,
    pub(super) stop_tokens: Vec<u32>,
    pub(super) past_names: Vec<String>,
    pub(super) present_names: Vec<String>,
    pub(super) file: String,
    pub(super) choice: crate::bundle::PrecisionChoice,
    /// Compute every position's logits in a prefill even where the decoder can skip them (benchmarks compare both).
    pub(super) all_logits: std::sync::atomic::AtomicBool,
    /// The most prompt positions one prefill run takes ([`PREFILL_CHUNK`] unless set).
    pub(super) prefill_chunk: std::sync::atomic::AtomicUsize,
}

/// Prompt positions per prefill run: long enough that the matrix products stay efficient, short enough that a
/// 2,000-token prompt's activations (attention scores grow with chunk x context) stay small next to the model.
pub(super) const PREFILL_CHUNK: usize = 256;

/// A decoder LLM loaded from a directory made by `cargo xtask models prepare smollm2`: `<precision>.onnx`,
/// `tokenizer.json`, `chat_template.jinja` and `decoder.json`. Cheap to clone; share it between threads.
#[derive(Clone)]
pub struct Llm {
    pub(super) inner: Arc<LlmInner>,
    /// The model that drafts for speculative decoding ([`Llm::with_draft`]).
    pub(super) draft: Option<Arc<LlmInner>>,
}

impl std::fmt::Debug for Llm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Llm")
            .field("file", &self.inner.file)
            .field("draft", &self.draft.as_ref().map(|d| d.file.as_str()))
            .finish()
    }
}

impl Llm {
    pub fn open(dir: impl AsRef<Path>, config: EngineConfig) -> Result<Llm> {
        Llm::open_with(dir.as_ref(), config, None)
    }

    /// Loads one decoder of `dir` by its variant name (`int4-mixed` for `int4-mixed.onnx`), whatever its quality
    /// verdict (its [`Llm::precision`] says so): for benchmarks comparing variants of one precision.
    pub fn open_variant(dir: impl AsRef<Path>, variant: &str, config: EngineConfig) -> Result<Llm> {
        Llm::open_with(dir.as_ref(), config, Some(variant))
    }

    fn open_with(dir: &Path, config: EngineConfig, variant: Option<&str>) -> Result<Llm> {
        catch_panic(|| {
            let read = |name: &str| {
                std::fs::read_to_string(dir.join(name))
                    .map_err(|_| Error::ModelNotFound { path: dir.join(name).display().to_string() })
            };
            let config_text = read("decoder.json")?;
            let decoder: DecoderConfig = serde_json::from_str(&config_text)
                .map_err(|e| Error::invalid_model(format!("{}: decoder.json: {e}", dir.display())))?;
            let choice = match variant {
                Some(name) => super::variants::named(dir, name)?,
                None => {
                    super::variants::choose(dir, config.precision, &crate::accelerator::leading_accelerator(&config)?)?
                }
            };
            let file = choice.file.clone();
            let session_config = EngineConfig { precision: Precision::Auto, shape_buckets: Vec::new(), ..config };
            let opened = open_session(Source::File(&dir.join(&file)), &session_config, None, None, None)?;
            let lane = crate::schedule::LaneKind::of(&opened.accelerators);
            let session = opened.session;
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
                    pool: crate::schedule::lane::Pool::new(lane, 1),
                    active: std::sync::atomic::AtomicUsize::new(0),
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
                    choice,
                    all_logits: std::sync::atomic::AtomicBool::new(false),
                    prefill_chunk: std::sync::atomic::AtomicUsize::new(PREFILL_CHUNK),
                }),
                draft: None,
            })
        })
    }

    /// This LLM with `draft` proposing tokens for speculative decoding (requests that set
    /// [`GenerateOptions::max_draft_tokens`]): a cheaper model, such as a 4-bit variant of this one, with the same
    /// tokenizer. The output stays this model's own. Refused when the tokenizers differ.
    pub fn with_draft(&self, draft: &Llm) -> Result<Llm> {
        let (ours, theirs) = (&self.inner.tokenizer, &draft.inner.tokenizer);
        let probe = "Speculative decoding: 12 drafts, 3 kept.\n";
        let same = ours.get_vocab_size(true) == theirs.get_vocab_size(true)
            && self.inner.config.vocab == draft.inner.config.vocab
            && ours.encode(probe, false).ok().map(|e| e.get_ids().to_vec())
                == theirs.encode(probe, false).ok().map(|e| e.get_ids().to_vec());
        if !same {
            return Err(Error::InvalidConfig {
                reason: format!(
                    "{} cannot draft for {}: their tokenizers differ (a draft model must share the vocabulary)",
                    draft.inner.file, self.inner.file
                ),
            });
        }
        Ok(Llm { inner: self.inner.clone(), draft: Some(draft.inner.clone()) })
    }

    /// The draft model's file, if one is attached.
    pub fn draft_file(&self) -> Option<&str> {
        self.draft.as_ref().map(|d| d.file.as_str())
    }

    /// The decoder file running (e.g. `int4.onnx`).
    pub fn file(&self) -> &str {
        &self.inner.file
    }

    /// Which decoder runs and why (`Auto` only picks one that passed its quality check against FP32).
    pub fn precision(&self) -> &crate::bundle::PrecisionChoice {
        &self.inner.choice
    }

    /// Whether a prefill computes the logits of every prompt position (`true`) or, where the decoder allows it (those
    /// made by `models prepare` since it learnt to), only the last one's, which is all generation uses: memory then
    /// grows with the KV cache, not with prompt length x vocabulary. For benchmarks and scoring; default `false`.
    #[doc(hidden)]
    pub fn set_all_logits(&self, all: bool) {
        self.inner.all_logits.store(all, std::sync::atomic::Ordering::Relaxed);
    }

    /// The most prompt positions one prefill run takes (default 256); a longer prompt is run in chunks, appended to
    /// the KV cache one after another. For tests and benchmarks.
    #[doc(hidden)]
    pub fn set_prefill_chunk(&self, positions: usize) {
        self.inner.prefill_chunk.store(positions.max(1), std::sync::atomic::Ordering::Relaxed);
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

    /// The text of `tokens` (special tokens left out), as a generation's `text()` holds it.
    pub fn decode(&self, tokens: &[u32]) -> Result<String> {
        self.inner
            .tokenizer
            .decode(tokens, true)
            .map_err(|e| Error::invalid_input("tokens", format!("cannot decode: {e}")))
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
        catch_panic(|| {
            Generation::start(self.inner.clone(), self.encode(prompt)?, options, started, None, self.draft.clone())
        })
    }

    /// Answers the chat: the template applied to `messages`, with the assistant's turn open.
    pub fn chat(&self, messages: &[ChatMessage], options: GenerateOptions) -> Result<Generation> {
        let started = Instant::now();
        catch_panic(|| {
            let tokens = self.encode(&self.chat_prompt(messages)?)?;
            Generation::start(self.inner.clone(), tokens, options, started, None, self.draft.clone())
        })
    }
}
