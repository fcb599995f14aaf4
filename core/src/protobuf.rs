//! The protobuf wire format, read without a schema or a copy: the fields of one message in order, each a varint, a
//! fixed-size value or a borrowed byte range. `model_check` follows ONNX's field numbers over it.

/// What a malformed message is refused with.
pub(crate) type Found<T = ()> = std::result::Result<T, String>;

/// One field's payload. Groups (wire types 3 and 4) are deprecated and never in ONNX: they are refused.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Value<'a> {
    Varint(u64),
    Fixed64,
    Bytes(&'a [u8]),
    Fixed32,
}

/// The fields of one message, in order; an error ends the iteration.
pub(crate) struct Fields<'a> {
    bytes: &'a [u8],
    at: usize,
    failed: bool,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Fields { bytes, at: 0, failed: false }
    }

    fn field(&mut self) -> Found<(u32, Value<'a>)> {
        let rest = &self.bytes[self.at..];
        let (key, used) = varint(rest)?;
        self.at += used;
        let number = u32::try_from(key >> 3).map_err(|_| "field number out of range")?;
        if number == 0 {
            return Err("field number 0".into());
        }
        let rest = &self.bytes[self.at..];
        let (value, used) = match key & 7 {
            0 => varint(rest).map(|(v, used)| (Value::Varint(v), used))?,
            1 if rest.len() >= 8 => (Value::Fixed64, 8),
            5 if rest.len() >= 4 => (Value::Fixed32, 4),
            2 => {
                let (len, used) = varint(rest)?;
                let end = usize::try_from(len)
                    .ok()
                    .and_then(|len| used.checked_add(len))
                    .filter(|&end| end <= rest.len())
                    .ok_or("a length runs past the end of its message (truncated or corrupt)")?;
                (Value::Bytes(&rest[used..end]), end)
            }
            1 | 5 => return Err("truncated fixed-size field".into()),
            other => return Err(format!("wire type {other} is not used by ONNX (corrupt or not a model)")),
        };
        self.at += used;
        Ok((number, value))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Found<(u32, Value<'a>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.at >= self.bytes.len() {
            return None;
        }
        let field = self.field();
        self.failed = field.is_err();
        Some(field)
    }
}

/// A base-128 varint of at most 10 bytes; returns the value and the bytes it used.
pub(crate) fn varint(bytes: &[u8]) -> Found<(u64, usize)> {
    let mut value = 0u64;
    for (i, &byte) in bytes.iter().take(10).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    Err("truncated or overlong varint".into())
}

/// Repeated int64, packed or not.
pub(crate) fn push_ints(into: &mut Vec<i64>, value: Value<'_>) -> Found {
    match value {
        Value::Varint(v) => into.push(v as i64),
        Value::Bytes(packed) => {
            let mut at = 0;
            while at < packed.len() {
                let (v, used) = varint(&packed[at..])?;
                into.push(v as i64);
                at += used;
            }
        }
        _ => return Err("dims have the wrong wire type".into()),
    }
    Ok(())
}

/// `v` appended to `out` as a protobuf varint: the one writer of wire data, for the tests here and in
/// `model_check`, the integration tests' model builder and the fuzzer's mutants ([`crate::wire`]).
pub fn put_varint(mut v: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// `v` as a protobuf varint.
#[cfg(test)]
pub(crate) fn encode_varint(v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    put_varint(v, &mut out);
    out
}

/// A field's key (number and wire type) as protobuf writes it.
#[cfg(test)]
pub(crate) fn key(number: u32, wire: u8) -> Vec<u8> {
    encode_varint(u64::from(number) << 3 | u64::from(wire))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_wire_format() {
        assert_eq!(varint(&[0x96, 0x01]).unwrap(), (150, 2));
        assert!(varint(&[0x80; 11]).is_err());
        assert!(varint(&[0x80]).is_err());
        let message = [key(3, 0), vec![7], key(4, 2), vec![2, b'a', b'b']].concat();
        let fields: Vec<_> = Fields::new(&message).collect();
        assert!(matches!(fields[0], Ok((3, Value::Varint(7)))));
        assert!(matches!(fields[1], Ok((4, Value::Bytes(b"ab")))));
    }
}
