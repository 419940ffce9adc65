//! The golden corpus (`tests/fixtures/wire/<platform>/`): frames and bodies taken from the seeds, the
//! platform pages and the public clients they name — never from this project's simulators. Each file's
//! first line is `# ` + its provenance; the rest is one frame a line (`.txt`, `.jsonl`) or one body.
//!
//! Shapes compare a simulator's frame with the golden one for the same situation:
//! - JSON: every key path the simulator sends exists in the golden frame with the same JSON type (it
//!   invents nothing), and the paths the adapter reads are present in both;
//! - protobuf: the same, with field numbers and wire types for key paths, read with the golden frame as
//!   the guide to which length-delimited fields are messages.

use std::collections::BTreeMap;

use serde_json::Value;

/// The provenance line and the rest of a corpus file.
pub fn split(file: &'static str) -> (&'static str, &'static str) {
    let (first, rest) = file.split_once('\n').unwrap_or((file, ""));
    let provenance = first.strip_prefix("# ").unwrap_or_else(|| panic!("a corpus file starts with `# `: {first}"));
    assert!(provenance.len() > 20, "a provenance says where the frame comes from: {provenance}");
    (provenance, rest)
}

/// The frames of a line-per-frame corpus file.
pub fn frames(file: &'static str) -> Vec<&'static str> {
    let (_, rest) = split(file);
    rest.strip_suffix('\n').unwrap_or(rest).split('\n').collect()
}

/// The body of a one-body corpus file, as JSON.
pub fn json(file: &'static str) -> Value {
    serde_json::from_str(split(file).1).expect("a JSON corpus body parses")
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Every key path of `value` (`a.b`, `a[].c`) and its JSON type; array elements are merged.
pub fn paths(value: &Value) -> BTreeMap<String, &'static str> {
    fn walk(value: &Value, at: String, out: &mut BTreeMap<String, &'static str>) {
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    let path = if at.is_empty() { key.clone() } else { format!("{at}.{key}") };
                    out.insert(path.clone(), kind(value));
                    walk(value, path, out);
                }
            }
            Value::Array(items) => {
                for item in items {
                    walk(item, format!("{at}[]"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = BTreeMap::new();
    walk(value, String::new(), &mut out);
    out
}

/// Asserts that `sim` has the shape of the golden frames for its situation: no key path that none of them
/// has, no type that differs (a golden `null` stands for any type), and every path of `required` in the
/// golden frames and in `sim`.
pub fn assert_json_shape(what: &str, golden: &[&Value], sim: &Value, required: &[&str]) {
    let mut golden_paths = BTreeMap::new();
    for frame in golden {
        for (path, kind) in paths(frame) {
            let slot = golden_paths.entry(path).or_insert(kind);
            if *slot == "null" {
                *slot = kind;
            }
        }
    }
    let sim_paths = paths(sim);
    for (path, kind) in &sim_paths {
        match golden_paths.get(path) {
            None => panic!("{what}: the simulator sends `{path}`, which no golden frame has\nsim: {sim}"),
            Some(golden_kind) => assert!(
                golden_kind == kind || *golden_kind == "null" || *kind == "null",
                "{what}: `{path}` is {kind} from the simulator, {golden_kind} in the golden frames"
            ),
        }
    }
    for path in required {
        assert!(golden_paths.contains_key(*path), "{what}: the golden frames lack `{path}`");
        assert!(sim_paths.contains_key(*path), "{what}: the simulator does not send `{path}`\nsim: {sim}");
    }
}

/// Protobuf written as JSON with field numbers for keys: strings and nested objects are length-delimited,
/// numbers varints, booleans varints, arrays repeated fields. Encoded here by hand, independently of
/// prost and of the project's `.proto` files.
pub fn protobuf(value: &Value) -> Vec<u8> {
    fn varint(mut n: u64, out: &mut Vec<u8>) {
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    }
    fn field(number: u64, value: &Value, out: &mut Vec<u8>) {
        match value {
            Value::Array(items) => items.iter().for_each(|item| field(number, item, out)),
            Value::Number(n) => {
                varint(number << 3, out);
                varint(n.as_i64().expect("integers only") as u64, out);
            }
            Value::Bool(b) => {
                varint(number << 3, out);
                varint(u64::from(*b), out);
            }
            Value::String(s) => {
                varint((number << 3) | 2, out);
                varint(s.len() as u64, out);
                out.extend_from_slice(s.as_bytes());
            }
            Value::Object(_) => {
                let inner = protobuf(value);
                varint((number << 3) | 2, out);
                varint(inner.len() as u64, out);
                out.extend_from_slice(&inner);
            }
            Value::Null => {}
        }
    }
    let mut out = Vec::new();
    for (key, value) in value.as_object().expect("a message is an object") {
        field(key.parse().expect("keys are field numbers"), value, &mut out);
    }
    out
}

/// One field of a protobuf message: number, wire type, payload (of a length-delimited field).
type Field<'a> = (u64, u8, &'a [u8]);

/// The fields of one protobuf message.
fn fields(mut bytes: &[u8]) -> Result<Vec<Field<'_>>, String> {
    fn varint(bytes: &mut &[u8]) -> Result<u64, String> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = bytes.split_first().ok_or("truncated varint")?;
            *bytes = rest;
            n |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(n);
            }
        }
        Err("varint too long".into())
    }
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let key = varint(&mut bytes)?;
        let (number, wire) = (key >> 3, (key & 7) as u8);
        match wire {
            0 => {
                varint(&mut bytes)?;
                out.push((number, 0, &[][..]));
            }
            2 => {
                let len = varint(&mut bytes)? as usize;
                if len > bytes.len() {
                    return Err("truncated field".into());
                }
                out.push((number, 2, &bytes[..len]));
                bytes = &bytes[len..];
            }
            1 | 5 => {
                let len = if wire == 1 { 8 } else { 4 };
                if len > bytes.len() {
                    return Err("truncated field".into());
                }
                out.push((number, wire, &[][..]));
                bytes = &bytes[len..];
            }
            other => return Err(format!("wire type {other}")),
        }
    }
    Ok(out)
}

/// Asserts that the protobuf `sim` sends only fields the golden message (JSON notation) has, with the same
/// wire types, nested messages checked the same way, and that it has every field of `required`
/// (paths like `2.2.1`).
pub fn assert_protobuf_shape(what: &str, golden: &Value, sim: &[u8], required: &[&str]) {
    fn walk(what: &str, golden: &Value, sim: &[u8], at: &str, seen: &mut Vec<String>) {
        let golden = golden.as_object().expect("a message is an object");
        for (number, wire, payload) in fields(sim).unwrap_or_else(|e| panic!("{what}: {at}: not protobuf: {e}")) {
            let path = if at.is_empty() { number.to_string() } else { format!("{at}.{number}") };
            let golden_value = golden.get(&number.to_string()).unwrap_or_else(|| {
                panic!("{what}: the simulator sends field {path}, which the golden message does not have")
            });
            let golden_value = match golden_value {
                Value::Array(items) => items.first().expect("a repeated field has an example"),
                other => other,
            };
            let golden_wire = match golden_value {
                Value::Number(_) | Value::Bool(_) => 0,
                _ => 2,
            };
            assert_eq!(
                wire, golden_wire,
                "{what}: field {path} has wire type {wire}, {golden_wire} in the golden message"
            );
            if golden_value.is_object() {
                walk(what, golden_value, payload, &path, seen);
            }
            seen.push(path);
        }
    }
    let mut seen = Vec::new();
    walk(what, golden, sim, "", &mut seen);
    for path in required {
        assert!(seen.iter().any(|p| p == path), "{what}: the simulator does not send field {path}");
    }
}

/// The payload of the first length-delimited field `number` of a protobuf message.
pub fn field(bytes: &[u8], number: u64) -> Option<Vec<u8>> {
    fields(bytes)
        .ok()?
        .into_iter()
        .find(|(n, wire, _)| *n == number && *wire == 2)
        .map(|(_, _, payload)| payload.to_vec())
}
