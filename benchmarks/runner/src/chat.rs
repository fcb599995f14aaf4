//! `--chat`: an 8-turn conversation (no system prompt, greedy, a fixed answer length) with the KV cache kept between
//! turns, and the same on a second LLM of the same files whose chat gives its cache back before every message (every
//! turn runs the whole history: the SDK before chats kept their cache); a second chat that shares a first one's long
//! system prompt; and each named decoder variant's decode speed on one prompt. Conversations alternate round by
//! round, so drift hits both alike; per-turn figures are medians over rounds.
//!
//! openautoglm-bench --chat --llm DIR [--precision auto|NAME] [--variants fp32,int4-mixed] [--answer-tokens 64]
//!                   [--rounds 3] [--threads N] [--ort LIB] --out RESULT.json

use std::path::PathBuf;
use std::time::Instant;

use bench_schema::chat::{ChatOutput, ChatTurn, DecodeSpeed};
use openautoglm::llm::{Chat, ChatMessage, GenerateOptions, GenerationMetrics, Llm};
use openautoglm::{EngineConfig, Runtime};

use super::progress;

/// Eight user messages of similar length.
const MESSAGES: [&str; 8] = [
    "I want to start baking bread at home. What do I need to buy first?",
    "How long should I knead the dough, and how do I know when it is ready?",
    "My kitchen is cold in winter. How can I help the dough rise properly?",
    "What is the difference between using fresh yeast and dry yeast in bread?",
    "Can I replace some of the white flour with whole wheat flour in this recipe?",
    "How do I get a crisp crust without burning the bottom of the loaf?",
    "What is the best way to store bread so it stays fresh for several days?",
    "Could you suggest a simple seeded variation of the bread for next weekend?",
];

/// A system prompt of more than 300 tokens, as apps write them.
const SYSTEM: &str = "You are the assistant of a community hiking club in the mountains. Members ask you about \
trails, weather, safety, equipment, club events and the history of the region. Follow these rules in every answer. \
First, be brief: answer in two or three sentences unless the member asks for detail, and never pad an answer with \
greetings or summaries. Second, safety comes before everything else: when a question touches on snow, storms, river \
crossings, exposure, altitude sickness, wild animals or getting lost, say plainly what the risk is and what a careful \
hiker does about it, and suggest checking the official forecast and the trail conditions page before leaving. Third, \
name trails by their official names and numbers, give distances in kilometres and heights in metres, and give times \
as a range for an average adult walker with short breaks. Fourth, when you do not know something, such as whether a \
hut is open this week or whether a bridge has been repaired, say that you do not know and point the member to the \
club office, which is open on weekday evenings and Saturday mornings. Fifth, do not recommend routes above the tree \
line to members who say they are beginners, and never suggest leaving marked paths. Sixth, equipment advice should \
favour what members already own, and second-hand gear from the club's spring swap, over buying new things. Seventh, \
club events are listed in the monthly newsletter; you may mention the next guided walk, the first-aid course and the \
volunteer trail maintenance days, but you must not promise places on them, because places are given out by the \
events secretary. Eighth, be kind to new members, avoid jargon, and explain any technical word you have to use.";

struct Args {
    dir: PathBuf,
    variant: Option<String>,
    variants: Vec<String>,
    answer_tokens: i32,
    rounds: usize,
    threads: i32,
    ort: Option<PathBuf>,
    out: PathBuf,
}

fn parse() -> Result<Args, String> {
    let mut args = std::env::args().skip(1).filter(|a| a != "--chat");
    let (mut dir, mut variant, mut variants, mut ort, mut out) = (None, None, Vec::new(), None, None);
    let (mut answer_tokens, mut rounds, mut threads) = (64, 3, 0);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--llm" => dir = Some(PathBuf::from(value()?)),
            "--precision" => {
                variant = Some(value()?).filter(|v| v != "auto");
            }
            "--variants" => variants = value()?.split(',').map(str::to_owned).collect(),
            "--answer-tokens" => answer_tokens = value()?.parse().map_err(|e| format!("--answer-tokens: {e}"))?,
            "--rounds" => rounds = value()?.parse().map_err(|e| format!("--rounds: {e}"))?,
            "--threads" => threads = value()?.parse().map_err(|e| format!("--threads: {e}"))?,
            "--ort" => ort = Some(PathBuf::from(value()?)),
            "--out" => out = Some(PathBuf::from(value()?)),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Args {
        dir: dir.ok_or("--llm is required")?,
        variant,
        variants,
        answer_tokens,
        rounds: rounds.max(1),
        threads,
        ort,
        out: out.ok_or("--out is required")?,
    })
}

fn open(args: &Args, variant: Option<&str>) -> Result<Llm, String> {
    let config = EngineConfig::default().with_threads(args.threads);
    match variant {
        Some(name) => Llm::open_variant(&args.dir, name, config),
        None => Llm::open(&args.dir, config),
    }
    .map_err(|e| e.to_string())
}

/// One message's answer: its metrics, tokens and the whole turn's milliseconds.
struct Answer {
    metrics: GenerationMetrics,
    tokens: Vec<u32>,
    turn_ms: f64,
}

/// Runs one message to its end.
fn answer(chat: &Chat, message: &str, options: &GenerateOptions) -> Result<Answer, String> {
    let started = Instant::now();
    let mut generation = chat.send(message, options.clone()).map_err(|e| e.to_string())?;
    for piece in generation.by_ref() {
        piece.map_err(|e| e.to_string())?;
    }
    let turn_ms = started.elapsed().as_secs_f64() * 1e3;
    Ok(Answer { metrics: generation.metrics(), tokens: generation.tokens().to_vec(), turn_ms })
}

/// The conversation on `llm`; without reuse the chat gives its cache back before every message.
fn conversation(llm: &Llm, reuse: bool, options: &GenerateOptions) -> Result<Vec<Answer>, String> {
    let chat = Chat::new(llm, None);
    MESSAGES
        .iter()
        .map(|message| {
            if !reuse {
                chat.release_cache();
            }
            answer(&chat, message, options)
        })
        .collect()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    if values.is_empty() { 0.0 } else { values[values.len() / 2] }
}

fn wait_ms(m: &GenerationMetrics) -> f64 {
    m.prompt_ms + m.time_to_first_token_ms
}

/// Per turn, the median over rounds.
fn turns(rounds: &[Vec<Answer>]) -> Vec<ChatTurn> {
    (0..MESSAGES.len())
        .map(|t| {
            let at = |f: fn(&Answer) -> f64| median(rounds.iter().map(|r| f(&r[t])).collect());
            ChatTurn {
                turn: t as u32 + 1,
                prompt_tokens: rounds[0][t].metrics.prompt_tokens as u64,
                cached_prompt_tokens: rounds[0][t].metrics.cached_prompt_tokens as u64,
                wait_ms: at(|a| wait_ms(&a.metrics)),
                time_to_first_token_ms: at(|a| a.metrics.time_to_first_token_ms),
                turn_ms: at(|a| a.turn_ms),
            }
        })
        .collect()
}

pub fn run() -> Result<(), String> {
    let args = parse()?;
    Runtime::init(args.ort.as_deref()).map_err(|e| e.to_string())?;
    let total = 3 * args.rounds + args.variants.len() * args.rounds;
    let mut done = 0;
    let mut step = || {
        done += 1;
        progress(done, total);
    };
    // A fixed answer length: the same work every turn, whatever the model says.
    let options = GenerateOptions {
        max_tokens: args.answer_tokens,
        min_tokens: args.answer_tokens,
        ..GenerateOptions::default()
    };
    let (kept, replayed) = (open(&args, args.variant.as_deref())?, open(&args, args.variant.as_deref())?);
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for _ in 0..args.rounds {
        with.push(conversation(&kept, true, &options)?);
        step();
        without.push(conversation(&replayed, false, &options)?);
        step();
    }
    let tokens_equal = with.iter().zip(&without).all(|(a, b)| a.iter().zip(b).all(|(x, y)| x.tokens == y.tokens));

    // A second chat with the same long system prompt: its first turn starts from the first chat's cache.
    let (mut first, mut second, mut second_cached) = (Vec::new(), Vec::new(), 0);
    let short = GenerateOptions { max_tokens: 8, min_tokens: 8, ..GenerateOptions::default() };
    for _ in 0..args.rounds {
        let (a, b) = (Chat::new(&kept, Some(SYSTEM)), Chat::new(&kept, Some(SYSTEM)));
        let first_answer = answer(&a, "Which trail is best for a first hike with children?", &short)?;
        let second_answer = answer(&b, "Is the lake hut open in the first week of June?", &short)?;
        first.push(wait_ms(&first_answer.metrics));
        second.push(wait_ms(&second_answer.metrics));
        second_cached = second_answer.metrics.cached_prompt_tokens as u64;
        step();
    }
    let system_prompt_tokens = kept.encode(SYSTEM).map_err(|e| e.to_string())?.len() as u64;
    let file = kept.file().to_owned();
    drop((kept, replayed));

    // Decode speed per variant, on one prompt, rounds interleaved across variants.
    let llms = args.variants.iter().map(|v| open(&args, Some(v))).collect::<Result<Vec<_>, _>>()?;
    let decode_options = GenerateOptions { max_tokens: 128, min_tokens: 128, ..GenerateOptions::default() };
    let messages = [ChatMessage::new("user", MESSAGES[0])];
    let mut speeds = vec![Vec::new(); llms.len()];
    for _ in 0..args.rounds {
        for (llm, speed) in llms.iter().zip(&mut speeds) {
            let mut generation = llm.chat(&messages, decode_options.clone()).map_err(|e| e.to_string())?;
            for piece in generation.by_ref() {
                piece.map_err(|e| e.to_string())?;
            }
            speed.push(generation.metrics().tokens_per_second);
            step();
        }
    }
    let output = ChatOutput {
        file,
        rounds: args.rounds as u32,
        answer_tokens: args.answer_tokens as u32,
        with_reuse: turns(&with),
        without_reuse: turns(&without),
        tokens_equal,
        system_prompt_tokens,
        first_chat_wait_ms: median(first),
        second_chat_wait_ms: median(second),
        second_chat_cached_tokens: second_cached,
        decode: args
            .variants
            .iter()
            .zip(speeds)
            .map(|(variant, speed)| DecodeSpeed { variant: variant.clone(), tokens_per_second: median(speed) })
            .collect(),
    };
    super::write_json(&args.out, &output)
}
