//! The JSON shape of an AMF packet: what the server replies, and what the
//! client accepts to build a packet. The same shape both ways:
//!
//! ```text
//! {"version":0,
//!  "headers":[{"name":"session","must_understand":false,"value":"abc123"}],
//!  "messages":[{"target":"lab.add","response":"/1","value":[1,2]}]}
//! ```
//!
//! Values map to JSON where JSON has the type, and to a one-key object
//! whose key starts with `$` where it does not:
//!
//! | AMF0                | JSON                                                   |
//! |---------------------|--------------------------------------------------------|
//! | number              | a number; `{"$number":"NaN"}`, `"Infinity"`, `"-Infinity"` |
//! | boolean, null       | `true`/`false`, `null`                                 |
//! | string              | a string (one over 65,535 bytes is sent as a long string) |
//! | object              | an object (`{"$object":{...}}` if a key starts with `$`) |
//! | strict array        | an array                                               |
//! | undefined           | `{"$undefined":null}`                                  |
//! | reference           | `{"$reference":3}`                                     |
//! | ECMA array          | `{"$ecma_array":{"key":value,...}}`                    |
//! | date                | `{"$date":{"ms":1700000000000,"tz":0}}`                |
//! | long string         | `{"$long_string":"..."}`                               |
//! | unsupported         | `{"$unsupported":null}`                                |
//! | XML document        | `{"$xml":"<a/>"}`                                      |
//! | typed object        | `{"$typed_object":{"class":"C","members":{...}}}`      |
//!
//! The server writes object members in the order they came; the client's
//! JSON objects are read with serde_json, whose objects are unordered, so
//! their members are sent sorted by key. Numbers are written in Rust's
//! shortest form that reads back to the same double; serde_json reads them
//! back exactly, except that without its `float_roundtrip` feature a
//! 17-digit value can come back one unit in the last place off.

use std::fmt::Write as _;

use serde_json::{Map, Value as Json};

use super::codec::{Header, Message, Packet, Value};

/// Writes a JSON string literal.
fn string(out: &mut String, s: &str) {
    // serde_json's escaping; a &str always serialises.
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()));
}

fn number(out: &mut String, n: f64) {
    if n.is_nan() {
        out.push_str(r#"{"$number":"NaN"}"#);
    } else if n.is_infinite() {
        out.push_str(if n > 0.0 { r#"{"$number":"Infinity"}"# } else { r#"{"$number":"-Infinity"}"# });
    } else if n == n.trunc() && n.abs() < 1e15 && !(n == 0.0 && n.is_sign_negative()) {
        let _ = write!(out, "{}", n as i64);
    } else {
        out.push_str(&serde_json::to_string(&n).unwrap_or_else(|_| "null".into()));
    }
}

fn pairs(out: &mut String, pairs: &[(String, Value)]) {
    out.push('{');
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        string(out, k);
        out.push(':');
        value(out, v);
    }
    out.push('}');
}

fn tagged(out: &mut String, tag: &str, body: impl FnOnce(&mut String)) {
    out.push_str("{\"");
    out.push_str(tag);
    out.push_str("\":");
    body(out);
    out.push('}');
}

/// Writes one value in the JSON shape above.
pub fn value(out: &mut String, v: &Value) {
    match v {
        Value::Number(n) => number(out, *n),
        Value::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::String(s) => string(out, s),
        Value::Object(p) if p.iter().any(|(k, _)| k.starts_with('$')) => tagged(out, "$object", |o| pairs(o, p)),
        Value::Object(p) => pairs(out, p),
        Value::Null => out.push_str("null"),
        Value::Undefined => out.push_str(r#"{"$undefined":null}"#),
        Value::Reference(i) => tagged(out, "$reference", |o| {
            let _ = write!(o, "{i}");
        }),
        Value::EcmaArray(p) => tagged(out, "$ecma_array", |o| pairs(o, p)),
        Value::StrictArray(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                value(out, item);
            }
            out.push(']');
        }
        Value::Date { millis, timezone } => tagged(out, "$date", |o| {
            o.push_str("{\"ms\":");
            number(o, *millis);
            let _ = write!(o, ",\"tz\":{timezone}}}");
        }),
        Value::LongString(s) => tagged(out, "$long_string", |o| string(o, s)),
        Value::Unsupported => out.push_str(r#"{"$unsupported":null}"#),
        Value::XmlDocument(s) => tagged(out, "$xml", |o| string(o, s)),
        Value::TypedObject { class, members } => tagged(out, "$typed_object", |o| {
            o.push_str("{\"class\":");
            string(o, class);
            o.push_str(",\"members\":");
            pairs(o, members);
            o.push('}');
        }),
    }
}

/// The packet as one line of JSON (no newline), members in wire order.
pub fn packet_to_json(p: &Packet) -> String {
    let mut out = String::new();
    let _ = write!(out, "{{\"version\":{},\"headers\":[", p.version);
    for (i, h) in p.headers.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"name\":");
        string(&mut out, &h.name);
        let _ = write!(out, ",\"must_understand\":{},\"value\":", h.must_understand);
        value(&mut out, &h.value);
        out.push('}');
    }
    out.push_str("],\"messages\":[");
    for (i, m) in p.messages.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"target\":");
        string(&mut out, &m.target);
        out.push_str(",\"response\":");
        string(&mut out, &m.response);
        out.push_str(",\"value\":");
        value(&mut out, &m.value);
        out.push('}');
    }
    out.push_str("]}");
    out
}

// ---------------------------------------------------------------- reading

fn number_from(j: &Json, at: &str) -> Result<f64, String> {
    match j {
        Json::Number(n) => n.as_f64().ok_or_else(|| format!("{at}: {n} is not a number AMF can hold")),
        Json::Object(m) if m.len() == 1 && m.contains_key("$number") => match m.get("$number").and_then(Json::as_str) {
            Some("NaN") => Ok(f64::NAN),
            Some("Infinity") => Ok(f64::INFINITY),
            Some("-Infinity") => Ok(f64::NEG_INFINITY),
            _ => Err(format!("{at}: $number must be \"NaN\", \"Infinity\" or \"-Infinity\"")),
        },
        other => Err(format!("{at}: expected a number, got {other}")),
    }
}

fn pairs_from(j: &Json, at: &str) -> Result<Vec<(String, Value)>, String> {
    let Json::Object(m) = j else { return Err(format!("{at}: expected an object, got {j}")) };
    m.iter().map(|(k, v)| Ok((k.clone(), value_from(v, &format!("{at}.{k}"))?))).collect()
}

fn str_from<'a>(j: &'a Json, at: &str) -> Result<&'a str, String> {
    j.as_str().ok_or_else(|| format!("{at}: expected a string, got {j}"))
}

fn tagged_from(tag: &str, body: &Json, at: &str) -> Result<Value, String> {
    let at = format!("{at}.{tag}");
    Ok(match tag {
        "$number" => Value::Number(number_from(&Json::Object(Map::from_iter([(tag.to_string(), body.clone())])), &at)?),
        "$object" => Value::Object(pairs_from(body, &at)?),
        "$undefined" => Value::Undefined,
        "$unsupported" => Value::Unsupported,
        "$reference" => {
            let i = body.as_u64().and_then(|i| u16::try_from(i).ok());
            Value::Reference(i.ok_or_else(|| format!("{at}: expected an index 0-65535, got {body}"))?)
        }
        "$ecma_array" => Value::EcmaArray(pairs_from(body, &at)?),
        "$date" => {
            let Json::Object(m) = body else { return Err(format!("{at}: expected {{\"ms\":...,\"tz\":...}}")) };
            if let Some(k) = m.keys().find(|k| !matches!(k.as_str(), "ms" | "tz")) {
                return Err(format!("{at}: unknown key '{k}' (expected ms and tz)"));
            }
            let millis = number_from(m.get("ms").ok_or_else(|| format!("{at}: missing ms"))?, &format!("{at}.ms"))?;
            let timezone = match m.get("tz") {
                None => 0,
                Some(t) => t
                    .as_i64()
                    .and_then(|t| i16::try_from(t).ok())
                    .ok_or_else(|| format!("{at}.tz: expected minutes -32768 to 32767, got {t}"))?,
            };
            Value::Date { millis, timezone }
        }
        "$long_string" => Value::LongString(str_from(body, &at)?.to_string()),
        "$xml" => Value::XmlDocument(str_from(body, &at)?.to_string()),
        "$typed_object" => {
            let Json::Object(m) = body else { return Err(format!("{at}: expected {{\"class\":...,\"members\":...}}")) };
            let class =
                str_from(m.get("class").ok_or_else(|| format!("{at}: missing class"))?, &format!("{at}.class"))?;
            let members = match m.get("members") {
                None => Vec::new(),
                Some(j) => pairs_from(j, &format!("{at}.members"))?,
            };
            Value::TypedObject { class: class.to_string(), members }
        }
        other => return Err(format!("{at}: unknown tag '{other}' (an object whose only key starts with $ is a tag)")),
    })
}

/// Reads one value in the JSON shape above; `at` names where, for errors.
pub fn value_from(j: &Json, at: &str) -> Result<Value, String> {
    Ok(match j {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Boolean(*b),
        Json::Number(_) => Value::Number(number_from(j, at)?),
        Json::String(s) if s.len() > usize::from(u16::MAX) => Value::LongString(s.clone()),
        Json::String(s) => Value::String(s.clone()),
        Json::Array(items) => Value::StrictArray(
            items.iter().enumerate().map(|(i, v)| value_from(v, &format!("{at}[{i}]"))).collect::<Result<_, _>>()?,
        ),
        Json::Object(m) => match m.iter().next() {
            Some((k, body)) if m.len() == 1 && k.starts_with('$') => tagged_from(k, body, at)?,
            _ => Value::Object(pairs_from(j, at)?),
        },
    })
}

fn check_keys(m: &Map<String, Json>, allowed: &[&str], at: &str) -> Result<(), String> {
    match m.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(format!("{at}: unknown key '{k}' (expected {})", allowed.join(", "))),
        None => Ok(()),
    }
}

fn list<'a>(m: &'a Map<String, Json>, key: &str) -> Result<&'a [Json], String> {
    match m.get(key) {
        None => Ok(&[]),
        Some(Json::Array(a)) => Ok(a),
        Some(other) => Err(format!("{key}: expected an array, got {other}")),
    }
}

fn field_str(m: &Map<String, Json>, key: &str, at: &str) -> Result<String, String> {
    match m.get(key) {
        None => Ok(String::new()),
        Some(j) => Ok(str_from(j, &format!("{at}.{key}"))?.to_string()),
    }
}

/// Reads a packet from JSON text in the shape above. Missing parts default:
/// version 0, no headers, no messages, `must_understand` false, empty names,
/// `null` values. Unknown keys are refused (they are usually typos).
pub fn packet_from_json(text: &str) -> Result<Packet, String> {
    let j: Json = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    let Json::Object(m) = &j else { return Err(format!("expected a JSON object for the packet, got {j}")) };
    check_keys(m, &["version", "headers", "messages"], "packet")?;
    let version = match m.get("version") {
        None => 0,
        Some(v) => v
            .as_u64()
            .and_then(|v| u16::try_from(v).ok())
            .ok_or_else(|| format!("version: expected 0-65535, got {v}"))?,
    };
    let mut headers = Vec::new();
    for (i, h) in list(m, "headers")?.iter().enumerate() {
        let at = format!("headers[{i}]");
        let Json::Object(h) = h else { return Err(format!("{at}: expected an object")) };
        check_keys(h, &["name", "must_understand", "value"], &at)?;
        let must_understand = match h.get("must_understand") {
            None => false,
            Some(b) => b.as_bool().ok_or_else(|| format!("{at}.must_understand: expected true or false"))?,
        };
        let value = value_from(h.get("value").unwrap_or(&Json::Null), &format!("{at}.value"))?;
        headers.push(Header { name: field_str(h, "name", &at)?, must_understand, value });
    }
    let mut messages = Vec::new();
    for (i, msg) in list(m, "messages")?.iter().enumerate() {
        let at = format!("messages[{i}]");
        let Json::Object(msg) = msg else { return Err(format!("{at}: expected an object")) };
        check_keys(msg, &["target", "response", "value"], &at)?;
        let value = value_from(msg.get("value").unwrap_or(&Json::Null), &format!("{at}.value"))?;
        messages.push(Message {
            target: field_str(msg, "target", &at)?,
            response: field_str(msg, "response", &at)?,
            value,
        });
    }
    Ok(Packet { version, headers, messages })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::amf::codec::tests::arb_packet;
    use proptest::prelude::*;

    /// Sorts object members recursively, as a trip through serde_json does.
    fn sorted(v: &Value) -> Value {
        // serde_json keeps the last of duplicate keys, in key order: so does a BTreeMap.
        let sort = |p: &[(String, Value)]| {
            let m: std::collections::BTreeMap<String, Value> = p.iter().map(|(k, v)| (k.clone(), sorted(v))).collect();
            m.into_iter().collect::<Vec<_>>()
        };
        match v {
            Value::Object(p) => Value::Object(sort(p)),
            Value::EcmaArray(p) => Value::EcmaArray(sort(p)),
            Value::TypedObject { class, members } => {
                Value::TypedObject { class: class.clone(), members: sort(members) }
            }
            Value::StrictArray(items) => Value::StrictArray(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }

    fn sorted_packet(p: &Packet) -> Packet {
        Packet {
            version: p.version,
            headers: p.headers.iter().map(|h| Header { value: sorted(&h.value), ..h.clone() }).collect(),
            messages: p.messages.iter().map(|m| Message { value: sorted(&m.value), ..m.clone() }).collect(),
        }
    }

    #[test]
    fn shape_of_a_packet() {
        let p = Packet {
            version: 3,
            headers: vec![Header { name: "h".into(), must_understand: true, value: Value::Number(1.5) }],
            messages: vec![Message {
                target: "t".into(),
                response: "/1".into(),
                value: Value::Object(vec![
                    ("z".into(), Value::Number(2.0)),
                    ("a".into(), Value::Date { millis: 0.0, timezone: -60 }),
                ]),
            }],
        };
        let j = packet_to_json(&p);
        assert_eq!(
            j,
            r#"{"version":3,"headers":[{"name":"h","must_understand":true,"value":1.5}],"messages":[{"target":"t","response":"/1","value":{"z":2,"a":{"$date":{"ms":0,"tz":-60}}}}]}"#
        );
        assert_eq!(packet_from_json(&j).unwrap(), sorted_packet(&p));
    }

    #[test]
    fn tags_and_their_escapes() {
        let cases = [
            (Value::Undefined, r#"{"$undefined":null}"#),
            (Value::Number(f64::INFINITY), r#"{"$number":"Infinity"}"#),
            (Value::Number(-0.0), "-0.0"),
            (Value::Number(1e300), "1e+300"),
            (Value::Object(vec![("$x".into(), Value::Null)]), r#"{"$object":{"$x":null}}"#),
            (Value::Object(vec![]), "{}"),
            (Value::EcmaArray(vec![("k".into(), Value::Boolean(true))]), r#"{"$ecma_array":{"k":true}}"#),
            (Value::Reference(7), r#"{"$reference":7}"#),
            (Value::LongString("é\"".into()), r#"{"$long_string":"é\""}"#),
            (Value::XmlDocument("<a/>".into()), r#"{"$xml":"<a/>"}"#),
            (Value::Unsupported, r#"{"$unsupported":null}"#),
            (
                Value::TypedObject { class: "C".into(), members: vec![] },
                r#"{"$typed_object":{"class":"C","members":{}}}"#,
            ),
        ];
        for (v, text) in cases {
            let mut out = String::new();
            value(&mut out, &v);
            assert_eq!(out, text);
            let back = value_from(&serde_json::from_str(text).unwrap(), "v").unwrap();
            match (&back, &v) {
                (Value::Number(a), Value::Number(b)) => assert_eq!(a.to_bits(), b.to_bits(), "{text}"),
                _ => assert_eq!(back, v, "{text}"),
            }
        }
        let mut out = String::new();
        value(&mut out, &Value::Number(f64::NAN));
        assert_eq!(out, r#"{"$number":"NaN"}"#);
    }

    #[test]
    fn bad_json_names_the_place() {
        let e = packet_from_json("{").unwrap_err();
        assert!(e.starts_with("not valid JSON"), "{e}");
        let e = packet_from_json(r#"{"version":70000}"#).unwrap_err();
        assert!(e.contains("version"), "{e}");
        let e = packet_from_json(r#"{"mesages":[]}"#).unwrap_err();
        assert!(e.contains("'mesages'"), "{e}");
        let e = packet_from_json(r#"{"messages":[{"value":{"$bogus":1}}]}"#).unwrap_err();
        assert!(e.contains("messages[0].value") && e.contains("$bogus"), "{e}");
        let e = packet_from_json(r#"{"headers":[{"name":1}]}"#).unwrap_err();
        assert!(e.contains("headers[0].name"), "{e}");
        let p = packet_from_json(r#"{"messages":[{"target":"t"}]}"#).unwrap();
        assert_eq!(p.messages[0], Message { target: "t".into(), response: String::new(), value: Value::Null });
        let long = format!(r#"{{"messages":[{{"value":"{}"}}]}}"#, "x".repeat(70_000));
        assert!(matches!(packet_from_json(&long).unwrap().messages[0].value, Value::LongString(_)));
    }

    /// Equal, but numbers may differ in the last bit: serde_json without its
    /// `float_roundtrip` feature can parse a 17-digit number one ULP off.
    fn same(a: &Value, b: &Value) -> bool {
        let num = |x: f64, y: f64| x == y || x.to_bits().abs_diff(y.to_bits()) <= 1;
        let pairs = |p: &[(String, Value)], q: &[(String, Value)]| {
            p.len() == q.len() && p.iter().zip(q).all(|((k, v), (l, w))| k == l && same(v, w))
        };
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => num(*x, *y),
            (Value::Date { millis: x, timezone: s }, Value::Date { millis: y, timezone: t }) => num(*x, *y) && s == t,
            (Value::Object(p), Value::Object(q)) | (Value::EcmaArray(p), Value::EcmaArray(q)) => pairs(p, q),
            (Value::TypedObject { class: c, members: p }, Value::TypedObject { class: d, members: q }) => {
                c == d && pairs(p, q)
            }
            (Value::StrictArray(x), Value::StrictArray(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(v, w)| same(v, w))
            }
            _ => a == b,
        }
    }

    proptest! {
        #[test]
        fn json_round_trip_up_to_member_order(p in arb_packet()) {
            let text = packet_to_json(&p);
            let back = packet_from_json(&text);
            prop_assert!(back.is_ok(), "{:?} from {}", back, text);
            let (back, p) = (back.unwrap_or_default(), sorted_packet(&p));
            prop_assert_eq!(back.version, p.version);
            prop_assert_eq!(back.headers.len(), p.headers.len());
            prop_assert_eq!(back.messages.len(), p.messages.len());
            for (h, g) in back.headers.iter().zip(&p.headers) {
                prop_assert!(h.name == g.name && h.must_understand == g.must_understand && same(&h.value, &g.value), "{:?} != {:?}", h, g);
            }
            for (m, n) in back.messages.iter().zip(&p.messages) {
                prop_assert!(m.target == n.target && m.response == n.response && same(&m.value, &n.value), "{:?} != {:?}", m, n);
            }
        }
    }
}
