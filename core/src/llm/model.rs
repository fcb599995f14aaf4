//! A decoder LLM as loaded from its directory: the ONNX decoder (through the engine's session building, so the
//! model check, accelerators and compile cache apply), its tokenizer, its chat template compiled once, and its
//! layout and special tokens (`decoder.json`). Everything a generation reads; nothing here knows of generations.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize};

use ort::session::Session;
use serde::Deserialize;

use super::template::{ChatMessage, ChatTemplate};
use crate::config::{EngineConfig, Precision};
use crate::error::{Error, Result};
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
    /// The begin-of-sequence token, which chat templates may print (the GGUF's `tokenizer.ggml.bos_token_id`).
    #[serde(default)]
    pub(super) bos: Option<u32>,
    /// The end-of-sequence token: generation stops when the model chooses it.
    pub(super) eos: u32,
    /// Further tokens that end an answer (an end-of-turn token distinct from `eos`, say).
    #[serde(default)]
    pub(super) stop_tokens: Vec<u32>,
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

/// Prompt positions per prefill run: long enough that the matrix products stay efficient, short enough that a
/// 2,000-token prompt's activations (attention scores grow with chunk x context) stay small next to the model.
pub(super) const PREFILL_CHUNK: usize = 256;

/// What every generation of one LLM shares; a generation holds it while it runs.
pub(super) struct Model {
    pub(super) session: Mutex<Session>,
    /// The decoder as its lane counts it: one step of one generation at a time, in order of priority.
    pub(super) pool: crate::schedule::lane::Pool,
    /// Generations started and not yet ended: with more than one, prefills go in short chunks.
    pub(super) active: AtomicUsize,
    pub(super) tokenizer: tokenizers::Tokenizer,
    /// The chat template, or why it does not parse (then only `chat` fails; `generate` works).
    template: Option<std::result::Result<ChatTemplate, Error>>,
    pub(super) config: DecoderConfig,
    pub(super) kv_f16: bool,
    pub(super) logits_f16: bool,
    /// Whether the decoder takes `position_ids` (the decomposed layout) or derives positions from the mask.
    pub(super) position_ids: bool,
    /// `eos` and the configured stop tokens, sorted.
    pub(super) stop_tokens: Vec<u32>,
    pub(super) past_names: Vec<String>,
    pub(super) present_names: Vec<String>,
    pub(super) file: String,
    pub(super) choice: crate::bundle::PrecisionChoice,
    /// Compute every position's logits in a prefill even where the decoder can skip them (benchmarks compare both).
    pub(super) all_logits: AtomicBool,
    /// The most prompt positions one prefill run takes ([`PREFILL_CHUNK`] unless set).
    pub(super) prefill_chunk: AtomicUsize,
    /// The KV cache bytes its sequences (running and kept) reserve, held to the memory limit.
    pub(super) kv: super::kv_account::KvAccount,
}

impl Model {
    /// Loads the decoder of `dir` named `variant`, or the one `config.precision` chooses.
    pub(super) fn open(dir: &Path, config: EngineConfig, variant: Option<&str>) -> Result<Model> {
        let read = |name: &str| {
            std::fs::read_to_string(dir.join(name))
                .map_err(|_| Error::ModelNotFound { path: dir.join(name).display().to_string() })
        };
        let decoder: DecoderConfig = serde_json::from_str(&read("decoder.json")?)
            .map_err(|e| Error::invalid_model(format!("{}: decoder.json: {e}", dir.display())))?;
        let choice = match variant {
            Some(name) => super::variants::named(dir, name)?,
            None => super::variants::choose(dir, config.precision, &crate::accelerator::leading_accelerator(&config)?)?,
        };
        let file = choice.file.clone();
        let kv = super::kv_account::KvAccount::new(crate::alloc::Limit::from_mb(config.memory_limit_mb));
        // A generation's steps come back to back: workers that spin between them start each step at once (waking a
        // sleeping worker cost about 5% of a 4-bit SmolLM2 step here), and stop spinning soon after the last one.
        let spinning = config.spinning.or(Some(true));
        let session_config = EngineConfig { precision: Precision::Auto, shape_buckets: Vec::new(), spinning, ..config };
        let workers = std::sync::Arc::default();
        let opened = open_session(Source::File(&dir.join(&file)), &session_config, None, None, None, &workers)?;
        let lane = crate::schedule::LaneKind::of(&opened.accelerators);
        let session = opened.session;
        let tokenizer = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| Error::invalid_model(format!("{}: tokenizer.json: {e}", dir.display())))?;
        let token_text = |id: Option<u32>| id.and_then(|id| tokenizer.id_to_token(id)).unwrap_or_default();
        let template = match read("chat_template.jinja") {
            Ok(source) => Some(ChatTemplate::compile(source, token_text(decoder.bos), token_text(Some(decoder.eos)))),
            Err(_) => None,
        };
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
        let mut stop_tokens = decoder.stop_tokens.clone();
        stop_tokens.push(decoder.eos);
        stop_tokens.sort_unstable();
        stop_tokens.dedup();
        log::info!("LLM {} loaded from {}", file, dir.display());
        Ok(Model {
            session: Mutex::new(session),
            pool: crate::schedule::lane::Pool::new(lane, 1),
            active: AtomicUsize::new(0),
            tokenizer,
            template,
            config: decoder,
            kv_f16,
            logits_f16,
            position_ids,
            stop_tokens,
            past_names,
            present_names,
            file,
            choice,
            all_logits: AtomicBool::new(false),
            prefill_chunk: AtomicUsize::new(PREFILL_CHUNK),
            kv,
        })
    }

    /// The KV cache bytes of one position (every layer's key and value).
    pub(super) fn kv_bytes_per_position(&self) -> usize {
        let element = if self.kv_f16 { 2 } else { 4 };
        self.past_names.len() * self.config.kv_heads * self.config.head_dim * element
    }

    pub(super) fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.tokenizer
            .encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| Error::invalid_input("prompt", format!("cannot tokenize: {e}")))
    }

    pub(super) fn decode(&self, tokens: &[u32]) -> Result<String> {
        self.tokenizer.decode(tokens, true).map_err(|e| Error::invalid_input("tokens", format!("cannot decode: {e}")))
    }

    pub(super) fn chat_prompt(&self, messages: &[ChatMessage]) -> Result<String> {
        let template = self.template.as_ref().ok_or_else(|| Error::InvalidConfig {
            reason: "this model has no chat template (chat_template.jinja); use generate with a prompt".into(),
        })?;
        template.as_ref().map_err(Clone::clone)?.render(messages)
    }

    /// Whether `draft` can propose tokens for this model: the same vocabulary, tokenizing alike.
    pub(super) fn shares_tokenizer(&self, draft: &Model) -> bool {
        let (ours, theirs) = (&self.tokenizer, &draft.tokenizer);
        let probe = "Speculative decoding: 12 drafts, 3 kept.\n";
        ours.get_vocab_size(true) == theirs.get_vocab_size(true)
            && self.config.vocab == draft.config.vocab
            && ours.encode(probe, false).ok().map(|e| e.get_ids().to_vec())
                == theirs.encode(probe, false).ok().map(|e| e.get_ids().to_vec())
    }
}
