//! A strict reader of the Prometheus text format (0.0.4), for tests of
//! `/metrics`: it panics on anything the format does not allow (a bad
//! name, a label twice, a sample before its TYPE, a sample twice).

#![allow(clippy::unwrap_used)] // test support: a malformed exposition fails the test

use std::collections::{BTreeMap, HashMap};

/// (name, labels) → value, from a whole exposition; panics on anything the
/// format does not allow.
pub type Samples = HashMap<(String, BTreeMap<String, String>), f64>;

fn is_name(s: &str, colon: bool) -> bool {
    let mut chars = s.chars();
    let ok_first = |c: char| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':');
    chars.next().is_some_and(ok_first)
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':'))
}

fn parse_value(s: &str) -> f64 {
    match s {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        _ => s.parse().unwrap_or_else(|_| panic!("bad value {s:?}")),
    }
}

/// `{a="x",b="y"}` → labels, and what follows the closing brace.
fn parse_labels(s: &str) -> (BTreeMap<String, String>, &str) {
    let mut labels = BTreeMap::new();
    let mut rest = s.strip_prefix('{').unwrap();
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return (labels, after);
        }
        let eq = rest.find('=').unwrap();
        let name = &rest[..eq];
        assert!(is_name(name, false), "bad label name {name:?}");
        rest = rest[eq + 1..]
            .strip_prefix('"')
            .expect("label value must be quoted");
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next().expect("unterminated label value") {
                (i, '"') => break i,
                (_, '\\') => match chars.next().unwrap().1 {
                    'n' => value.push('\n'),
                    c @ ('\\' | '"') => value.push(c),
                    c => panic!("bad escape \\{c}"),
                },
                (_, c) => value.push(c),
            }
        };
        assert!(
            labels.insert(name.to_string(), value).is_none(),
            "label {name} twice"
        );
        rest = &rest[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

pub fn parse(text: &str) -> Samples {
    let mut types: HashMap<String, String> = HashMap::new();
    let mut samples = Samples::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix("# ") {
            let mut parts = comment.splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("TYPE"), Some(name), Some(kind)) => {
                    assert!(is_name(name, true), "bad name {name:?}");
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind)
                    );
                    assert!(
                        types.insert(name.into(), kind.into()).is_none(),
                        "TYPE {name} twice"
                    );
                }
                (Some("HELP"), Some(name), _) => assert!(is_name(name, true)),
                _ => {}
            }
            continue;
        }
        let split = line.find(['{', ' ']).unwrap();
        let name = &line[..split];
        assert!(is_name(name, true), "bad metric name in {line:?}");
        let (labels, rest) = if line[split..].starts_with('{') {
            parse_labels(&line[split..])
        } else {
            (BTreeMap::new(), &line[split..])
        };
        let mut fields = rest.trim_start().split(' ');
        let value = parse_value(fields.next().unwrap());
        assert!(
            fields.next().is_none_or(|ts| ts.parse::<i64>().is_ok()),
            "{line:?}"
        );
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| types.get(*f).is_some_and(|k| k == "histogram"))
            })
            .unwrap_or(name);
        assert!(types.contains_key(family), "{name} has no TYPE before it");
        assert!(
            samples.insert((name.into(), labels), value).is_none(),
            "{line:?} twice"
        );
    }
    samples
}

pub fn get(s: &Samples, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    s.get(&(name.to_string(), labels)).copied()
}
