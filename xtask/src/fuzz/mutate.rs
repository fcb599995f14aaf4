//! Structure-aware mutation of ONNX models: the protobuf wire format parsed into a tree (a length-delimited field
//! whose payload parses cleanly is taken for a message), changed where a parser or an allocator is most likely to
//! trip (sizes set to 2^31 or 2^63, names and locations replaced with hostile strings, fields dropped, duplicated or
//! nested, external data pointed outside), and written back with every length recomputed. A share of the mutants
//! also get blind byte flips and truncation after serialization.

use openautoglm::wire::{put_varint, read_varint};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// One protobuf field.
#[derive(Clone, Debug)]
pub struct Field {
    pub number: u32,
    pub node: Node,
}

#[derive(Clone, Debug)]
pub enum Node {
    Varint(u64),
    Fixed64([u8; 8]),
    Fixed32([u8; 4]),
    Bytes(Vec<u8>),
    Message(Vec<Field>),
}

const MAX_DEPTH: usize = 40;

/// Parses `bytes` as a message; `None` unless every byte is a well-formed field.
pub fn parse(bytes: &[u8]) -> Option<Vec<Field>> {
    parse_at(bytes, 0)
}

fn parse_at(bytes: &[u8], depth: usize) -> Option<Vec<Field>> {
    let mut fields = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let (key, used) = read_varint(&bytes[at..])?;
        at += used;
        let number = u32::try_from(key >> 3).ok().filter(|&n| n > 0)?;
        let node = match key & 7 {
            0 => {
                let (v, used) = read_varint(&bytes[at..])?;
                at += used;
                Node::Varint(v)
            }
            1 => {
                let v = bytes.get(at..at + 8)?.try_into().ok()?;
                at += 8;
                Node::Fixed64(v)
            }
            5 => {
                let v = bytes.get(at..at + 4)?.try_into().ok()?;
                at += 4;
                Node::Fixed32(v)
            }
            2 => {
                let (len, used) = read_varint(&bytes[at..])?;
                at += used;
                let end = at.checked_add(usize::try_from(len).ok()?)?;
                let payload = bytes.get(at..end)?;
                at = end;
                // Text is kept as bytes: a message needs at least one field and must not be printable text.
                let looks_like_text = payload.iter().all(|b| b.is_ascii_graphic() || *b == b' ');
                match (depth < MAX_DEPTH && !payload.is_empty() && !looks_like_text)
                    .then(|| parse_at(payload, depth + 1))
                    .flatten()
                {
                    Some(message) => Node::Message(message),
                    None => Node::Bytes(payload.to_vec()),
                }
            }
            _ => return None,
        };
        fields.push(Field { number, node });
    }
    Some(fields)
}

/// Writes a message back, lengths recomputed.
pub fn serialize(fields: &[Field], out: &mut Vec<u8>) {
    for field in fields {
        let wire = match field.node {
            Node::Varint(_) => 0,
            Node::Fixed64(_) => 1,
            Node::Bytes(_) | Node::Message(_) => 2,
            Node::Fixed32(_) => 5,
        };
        put_varint(u64::from(field.number) << 3 | wire, out);
        match &field.node {
            Node::Varint(v) => put_varint(*v, out),
            Node::Fixed64(b) => out.extend_from_slice(b),
            Node::Fixed32(b) => out.extend_from_slice(b),
            Node::Bytes(b) => {
                put_varint(b.len() as u64, out);
                out.extend_from_slice(b);
            }
            Node::Message(m) => {
                let mut inner = Vec::new();
                serialize(m, &mut inner);
                put_varint(inner.len() as u64, out);
                out.extend(inner);
            }
        }
    }
}

const INTERESTING: [u64; 20] = [
    0,
    1,
    2,
    3,
    7,
    8,
    16,
    255,
    256,
    1 << 15,
    1 << 16,
    (1 << 31) - 1,
    1 << 31,
    1 << 32,
    (1 << 32) + 1,
    1 << 40,
    1 << 62,
    (1 << 63) - 1,
    1 << 63,
    u64::MAX,
];

const HOSTILE: [&str; 16] = [
    "../../../../etc/passwd",
    "/etc/passwd",
    "etc/passwd",
    "",
    "\0",
    "a\0b",
    "location",
    "offset",
    "length",
    "data_location",
    "-1",
    "18446744073709551615",
    "x/../../y",
    "/proc/self/mem",
    "/dev/zero",
    "model.onnx",
];

/// What to change: the k-th node of a kind, counted in tree order.
#[derive(Clone, Copy)]
enum Target {
    Varint,
    Bytes,
    Message,
}

fn count(fields: &[Field], target: Target) -> usize {
    fields
        .iter()
        .map(|f| {
            let here = matches!(
                (&f.node, target),
                (Node::Varint(_), Target::Varint)
                    | (Node::Bytes(_), Target::Bytes)
                    | (Node::Message(_), Target::Message)
            );
            usize::from(here) + if let Node::Message(m) = &f.node { count(m, target) } else { 0 }
        })
        .sum()
}

/// Calls `change` on the `k`-th node of the kind (a message's own field list for `Target::Message`).
fn visit(fields: &mut [Field], target: Target, k: &mut usize, change: &mut dyn FnMut(&mut Node)) -> bool {
    for field in fields.iter_mut() {
        let hit = matches!(
            (&field.node, target),
            (Node::Varint(_), Target::Varint) | (Node::Bytes(_), Target::Bytes) | (Node::Message(_), Target::Message)
        );
        if hit {
            if *k == 0 {
                change(&mut field.node);
                return true;
            }
            *k -= 1;
        }
        if let Node::Message(m) = &mut field.node
            && visit(m, target, k, change)
        {
            return true;
        }
    }
    false
}

fn change_one(
    model: &mut [Field],
    target: Target,
    rng: &mut SmallRng,
    change: &mut dyn FnMut(&mut Node, &mut SmallRng),
) {
    let n = count(model, target);
    if n == 0 {
        return;
    }
    let mut k = rng.random_range(0..n);
    let mut local = SmallRng::from_rng(rng);
    visit(model, target, &mut k, &mut |node| change(node, &mut local));
}

fn hostile_bytes(rng: &mut SmallRng) -> Vec<u8> {
    match rng.random_range(0..4) {
        0 => vec![b'A'; rng.random_range(1000..70_000)],
        1 => (0..rng.random_range(1..32)).map(|_| rng.random()).collect(),
        _ => HOSTILE[rng.random_range(0..HOSTILE.len())].as_bytes().to_vec(),
    }
}

/// A TensorProto-shaped tail: external data at a hostile location.
fn external_data(rng: &mut SmallRng) -> Vec<Field> {
    let entry = |key: &str, value: Vec<u8>| Field {
        number: 13,
        node: Node::Message(vec![
            Field { number: 1, node: Node::Bytes(key.as_bytes().to_vec()) },
            Field { number: 2, node: Node::Bytes(value) },
        ]),
    };
    vec![
        entry("location", hostile_bytes(rng)),
        entry("length", INTERESTING[rng.random_range(0..INTERESTING.len())].to_string().into_bytes()),
        Field { number: 14, node: Node::Varint(1) },
    ]
}

/// One mutant of `model`, at most `max_bytes` long.
pub fn mutant(model: &[Field], rng: &mut SmallRng, max_bytes: usize) -> Vec<u8> {
    let mut tree = model.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        match rng.random_range(0..10) {
            0..=2 => change_one(&mut tree, Target::Varint, rng, &mut |node, rng| {
                if let Node::Varint(v) = node {
                    *v = match rng.random_range(0..4) {
                        0 => v.wrapping_add(1),
                        1 => *v ^ (1 << rng.random_range(0..64)),
                        _ => INTERESTING[rng.random_range(0..INTERESTING.len())],
                    };
                }
            }),
            3 | 4 => change_one(&mut tree, Target::Bytes, rng, &mut |node, rng| {
                if let Node::Bytes(b) = node {
                    match rng.random_range(0..3) {
                        0 if !b.is_empty() => b.truncate(rng.random_range(0..b.len())),
                        1 if !b.is_empty() => {
                            let i = rng.random_range(0..b.len());
                            b[i] ^= 1 << rng.random_range(0..8);
                        }
                        _ => *b = hostile_bytes(rng),
                    }
                }
            }),
            5 => change_one(&mut tree, Target::Message, rng, &mut |node, rng| {
                if let Node::Message(m) = node
                    && !m.is_empty()
                {
                    m.remove(rng.random_range(0..m.len()));
                }
            }),
            6 => change_one(&mut tree, Target::Message, rng, &mut |node, rng| {
                if let Node::Message(m) = node
                    && !m.is_empty()
                {
                    let copy = m[rng.random_range(0..m.len())].clone();
                    m.insert(rng.random_range(0..=m.len()), copy);
                }
            }),
            7 => change_one(&mut tree, Target::Message, rng, &mut |node, rng| {
                if let Node::Message(m) = node {
                    m.extend(external_data(rng));
                }
            }),
            8 => change_one(&mut tree, Target::Message, rng, &mut |node, rng| {
                // Nest the message inside copies of itself: depth attacks.
                if let Node::Message(m) = node
                    && let Some(number) = m.first().map(|f| f.number)
                {
                    for _ in 0..rng.random_range(1..40) {
                        let inner = std::mem::take(m);
                        m.push(Field { number, node: Node::Message(inner) });
                    }
                }
            }),
            _ => change_one(&mut tree, Target::Message, rng, &mut |node, rng| {
                if let Node::Message(m) = node
                    && m.len() > 1
                {
                    let (a, b) = (rng.random_range(0..m.len()), rng.random_range(0..m.len()));
                    m.swap(a, b);
                }
            }),
        }
    }
    let mut out = Vec::new();
    serialize(&tree, &mut out);
    // Blind damage after serialization, for the parsers' own checks.
    if rng.random_bool(0.15) && !out.is_empty() {
        for _ in 0..rng.random_range(1..8) {
            let i = rng.random_range(0..out.len());
            out[i] = rng.random();
        }
    }
    if rng.random_bool(0.05) && !out.is_empty() {
        out.truncate(rng.random_range(0..out.len()));
    }
    out.truncate(max_bytes);
    out
}

/// Removes fields one at a time, keeping each removal while `still_fails` holds: a smaller reproducer.
pub fn minimise(model: &[Field], still_fails: &mut dyn FnMut(&[u8]) -> bool, budget: std::time::Duration) -> Vec<u8> {
    let started = std::time::Instant::now();
    let mut tree = model.to_vec();
    let mut k = 0;
    loop {
        if started.elapsed() > budget || k >= count(&tree, Target::Message) + tree.len() {
            break;
        }
        let mut candidate = tree.clone();
        let removed = if k < tree.len() {
            candidate.remove(k);
            true
        } else {
            let mut index = k - tree.len();
            let mut removed = false;
            visit(&mut candidate, Target::Message, &mut index, &mut |node| {
                if let Node::Message(m) = node
                    && !m.is_empty()
                {
                    m.pop();
                    removed = true;
                }
            });
            removed
        };
        let mut bytes = Vec::new();
        serialize(&candidate, &mut bytes);
        if removed && still_fails(&bytes) {
            tree = candidate;
        } else {
            k += 1;
        }
    }
    let mut bytes = Vec::new();
    serialize(&tree, &mut bytes);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_serialize_round_trip() {
        // ModelProto { ir_version: 8, graph: { name: "g", node: { op_type: "Relu" } } }
        let bytes = [0x08, 0x08, 0x3a, 0x0b, 0x12, 0x01, b'g', 0x0a, 0x06, 0x22, 0x04, b'R', b'e', b'l', b'u'];
        let tree = parse(&bytes).unwrap();
        let mut out = Vec::new();
        serialize(&tree, &mut out);
        assert_eq!(out, bytes);
        assert!(matches!(&tree[1].node, Node::Message(m) if m.len() == 2));
    }

    #[test]
    fn mutants_differ_and_stay_bounded() {
        let bytes = [0x08, 0x08, 0x3a, 0x0b, 0x12, 0x01, b'g', 0x0a, 0x06, 0x22, 0x04, b'R', b'e', b'l', b'u'];
        let tree = parse(&bytes).unwrap();
        let mut rng = SmallRng::seed_from_u64(7);
        let mutants: Vec<Vec<u8>> = (0..50).map(|_| mutant(&tree, &mut rng, 1 << 20)).collect();
        assert!(mutants.iter().any(|m| m != &bytes));
        assert!(mutants.iter().all(|m| m.len() <= 1 << 20));
    }

    #[test]
    fn minimise_keeps_what_reproduces() {
        let bytes = [0x08, 0x08, 0x3a, 0x0b, 0x12, 0x01, b'g', 0x0a, 0x06, 0x22, 0x04, b'R', b'e', b'l', b'u'];
        let tree = parse(&bytes).unwrap();
        let small = minimise(&tree, &mut |b| b.windows(4).any(|w| w == b"Relu"), std::time::Duration::from_secs(5));
        assert!(small.len() < bytes.len() && small.windows(4).any(|w| w == b"Relu"), "{small:?}");
    }
}
