//! The commented `.agent/config.yml` that `acode init` writes.
//!
//! Generated from [`KEYS`] and [`Config::default`], so it always lists every
//! key with its real default and parses back to exactly the defaults.

use figment::value::Value;

use crate::keys::{KEYS, KeyKind};
use crate::model::Config;

const HEADER: &str = "\
# acode workspace configuration.
#
# Every key is shown with its default value; delete a line to keep the
# default. Each key may be overridden by an environment variable named
# ACODE_<SECTION>_<KEY>: the dotted key path upper-cased, dots replaced by
# underscores (e.g. sync.upload.batch_size -> ACODE_SYNC_UPLOAD_BATCH_SIZE).
# Each key's variable is shown in brackets at the end of its comment.
";

impl Config {
    /// The YAML text `acode init` writes: a header, then every key with its
    /// default value, each preceded by a comment saying what it is for.
    /// Optional keys that are unset by default are written commented out.
    pub fn template() -> String {
        let defaults = Value::serialize(Config::default()).ok();
        let mut out = String::from(HEADER);
        let mut open: Vec<&str> = Vec::new();
        for info in KEYS {
            let segments: Vec<&str> = info.key.split('.').collect();
            let Some((leaf, sections)) = segments.split_last() else {
                continue;
            };
            let common = open
                .iter()
                .zip(sections)
                .take_while(|(a, b)| a == b)
                .count();
            for (depth, name) in sections.iter().enumerate().skip(common) {
                if depth == 0 {
                    out.push('\n');
                }
                out.push_str(&format!("{}{name}:\n", indent(depth)));
            }
            open = sections.to_vec();

            let pad = indent(sections.len());
            out.push_str(&format!("{pad}# {} [{}]\n", info.doc, info.env));
            let default = defaults.as_ref().and_then(|d| d.find_ref(info.key));
            match (info.kind, default) {
                (KeyKind::OptStr { example }, None | Some(Value::Empty(..))) => {
                    out.push_str(&format!("{pad}# {leaf}: {example}\n"));
                }
                (kind, value) => {
                    out.push_str(&format!("{pad}{leaf}: {}\n", render(kind, value)));
                }
            }
        }
        out
    }
}

fn indent(depth: usize) -> String {
    "  ".repeat(depth)
}

/// A default value as YAML: free-form strings quoted, names and numbers bare.
fn render(kind: KeyKind, value: Option<&Value>) -> String {
    match value {
        Some(Value::Bool(_, b)) => b.to_string(),
        Some(Value::Num(_, n)) => n
            .to_u128()
            .map(|n| n.to_string())
            .or_else(|| n.to_i128().map(|n| n.to_string()))
            .or_else(|| n.to_f64().map(|n| n.to_string()))
            .unwrap_or_else(|| "null".to_owned()),
        Some(Value::String(_, s)) if matches!(kind, KeyKind::Choice(_)) => s.clone(),
        Some(Value::String(_, s)) => quote(s),
        _ => "null".to_owned(),
    }
}

/// A YAML double-quoted string.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn template_parses_back_to_the_defaults() -> Result<(), Box<dyn std::error::Error>> {
        let text = Config::template();
        let parsed: Config = serde_saphyr::from_str(&text)?;
        assert_eq!(parsed, Config::default());
        Ok(())
    }

    #[test]
    fn template_loads_back_to_the_defaults() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("config.yml");
        std::fs::write(&path, Config::template())?;
        let env: HashMap<String, String> = HashMap::new();
        let loaded = Config::load(Some(&path), &|k| env.get(k).cloned())?;
        assert_eq!(loaded, Config::default());
        Ok(())
    }

    #[test]
    fn template_mentions_every_key_with_its_doc_and_env_var() {
        let text = Config::template();
        assert!(text.starts_with("# acode workspace configuration."));
        assert!(text.contains("ACODE_<SECTION>_<KEY>"));
        for info in Config::keys() {
            let leaf = info.key.rsplit('.').next().unwrap_or(info.key);
            assert!(text.contains(&format!("{leaf}:")), "{} missing", info.key);
            assert!(text.contains(info.doc), "doc of {} missing", info.key);
            assert!(text.contains(info.env), "{} missing", info.env);
        }
    }

    #[test]
    fn template_writes_defaults_and_comments_out_unset_keys() {
        let text = Config::template();
        assert!(text.contains("\n    batch_size: 50\n"), "{text}");
        assert!(text.contains("\n    batch_bytes_max: 1048576\n"), "{text}");
        assert!(text.contains("\n    tenant: \"default\"\n"), "{text}");
        assert!(text.contains("\n    policy: last_write_wins\n"), "{text}");
        assert!(text.contains("\n  durability: full\n"), "{text}");
        assert!(
            text.contains("\n    # url: https://sync.example.com\n"),
            "{text}"
        );
        assert!(text.contains("unset means offline"), "{text}");
        // Every non-comment, non-blank line is valid YAML at some depth;
        // each key's comment sits right above it.
        let lines: Vec<&str> = text.lines().collect();
        let i = lines
            .iter()
            .position(|l| l.trim() == "batch_size: 50")
            .unwrap();
        assert!(lines[i - 1].trim_start().starts_with("# Most changes sent"));
    }

    #[test]
    fn quoting_escapes_yaml_specials() -> Result<(), Box<dyn std::error::Error>> {
        let s = "a \"b\" \\ c\n\u{1}";
        let back: String = serde_saphyr::from_str(&quote(s))?;
        assert_eq!(back, s);
        Ok(())
    }
}
