//! Loading: built-in defaults ← `.agent/config.yml` ← `ACODE_*` environment
//! variables, then validation.
//!
//! Layering is done with figment. Each source is its own provider with its
//! own name, so when figment rejects a value its metadata tells us whether
//! the value came from the file or from which environment variable.

use std::path::{Path, PathBuf};

use figment::providers::Serialized;
use figment::value::{Dict, Empty, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};

use crate::error::{ConfigError, Origin};
use crate::keys::{KEYS, KeyInfo};
use crate::model::Config;

/// The metadata name of the file provider (env providers are named after
/// their variable, which always starts with `ACODE_`).
const FILE_PROVIDER: &str = "acode config file";

impl Config {
    /// Loads the configuration from the defaults, the YAML `file` (skipped if
    /// `None` or missing) and the environment as seen through `env`, then
    /// validates it.
    ///
    /// `env` maps a variable name to its value; tests pass a map, the
    /// binary passes the process environment
    /// ([`Config::load_from_env_and_file`]).
    pub fn load(
        file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));

        let mut file_used = None;
        if let Some(path) = file
            && let Some(dict) = read_file(path)?
        {
            figment = figment.merge(Layer::new(FILE_PROVIDER, dict));
            file_used = Some(path.to_path_buf());
        }

        let mut env_set = Vec::new();
        for info in KEYS {
            if let Some(raw) = env(info.env) {
                let value = env_value(info, &raw);
                let dict = figment::util::nest(info.key, value)
                    .into_dict()
                    .unwrap_or_default();
                figment = figment.merge(Layer::new(info.env, dict));
                env_set.push((info.key, raw));
            }
        }

        let sources = Sources {
            file: file_used,
            env: env_set,
        };
        let config: Config = figment.extract().map_err(|e| sources.map_error(e))?;
        config.validate().map_err(|e| sources.attribute(e))?;
        Ok(config)
    }

    /// [`Config::load`] with the process environment.
    pub fn load_from_env_and_file(file: Option<&Path>) -> Result<Config, ConfigError> {
        Config::load(file, &|name| {
            std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
        })
    }
}

/// Reads and parses the file; `Ok(None)` if it does not exist.
fn read_file(path: &Path) -> Result<Option<Dict>, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ConfigError::Unreadable {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    // An empty or comment-only document deserializes to an empty mapping.
    let mut dict: Dict = serde_saphyr::from_str(&text).map_err(|e| ConfigError::InvalidYaml {
        path: path.to_path_buf(),
        reason: yaml_reason(&e.to_string()),
    })?;
    empty_sections_to_maps("", &mut dict);
    Ok(Some(dict))
}

/// The first line of a parser error without its `error: ` tag (the rest is
/// a source snippet, too long for a one-line message).
fn yaml_reason(message: &str) -> String {
    let first = message.lines().next().unwrap_or_default();
    first.strip_prefix("error: ").unwrap_or(first).to_owned()
}

/// A section written with nothing under it (`sync:`) is YAML null; treat it
/// as an empty section rather than as a type error.
fn empty_sections_to_maps(prefix: &str, dict: &mut Dict) {
    for (k, v) in dict.iter_mut() {
        let path = join(prefix, k);
        match v {
            Value::Empty(..) if KeyInfo::is_section(&path) => *v = Value::from(Dict::new()),
            Value::Dict(_, inner) => empty_sections_to_maps(&path, inner),
            _ => {}
        }
    }
}

/// An environment value as a figment value: strings verbatim, everything
/// else read as a YAML scalar so `5` is a number and `true` a bool.
fn env_value(info: &KeyInfo, raw: &str) -> Value {
    if info.kind.is_string() {
        // An empty optional string unsets it (e.g. force offline).
        if raw.is_empty() && matches!(info.kind, crate::keys::KeyKind::OptStr { .. }) {
            return Value::from(Empty::None);
        }
        return Value::from(raw.to_owned());
    }
    match serde_saphyr::from_str::<Value>(raw) {
        Ok(Value::Dict(..) | Value::Array(..)) | Err(_) => Value::from(raw.to_owned()),
        Ok(value) => value,
    }
}

/// One named layer of configuration data.
struct Layer {
    name: String,
    data: Dict,
}

impl Layer {
    fn new(name: &str, data: Dict) -> Self {
        Layer {
            name: name.to_owned(),
            data,
        }
    }
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.name.clone())
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.data.clone()))
    }
}

/// What was layered over the defaults, to say where a bad value came from.
struct Sources {
    file: Option<PathBuf>,
    /// (dotted key, raw value) for every environment variable that was set.
    env: Vec<(&'static str, String)>,
}

impl Sources {
    /// Where the value of `key` came from: its env var if set, else the file.
    fn origin_of(&self, key: &str) -> Option<Origin> {
        if let Some(info) = KeyInfo::find(key)
            && self.env.iter().any(|(k, _)| *k == key)
        {
            return Some(Origin::Env(info.env.to_owned()));
        }
        self.file.clone().map(Origin::File)
    }

    /// The origin named by figment's metadata, falling back to
    /// [`Sources::origin_of`].
    fn origin_from(&self, metadata: Option<&Metadata>, key: &str) -> Option<Origin> {
        match metadata.map(|m| m.name.as_ref()) {
            Some(FILE_PROVIDER) => self.file.clone().map(Origin::File),
            Some(name) if name.starts_with("ACODE_") => Some(Origin::Env(name.to_owned())),
            _ => self.origin_of(key),
        }
    }

    /// Fills in the origin of a validation error.
    fn attribute(&self, error: ConfigError) -> ConfigError {
        match error {
            ConfigError::InvalidValue {
                key,
                value,
                expected,
                origin: None,
            } => {
                let origin = self.origin_of(&key);
                ConfigError::InvalidValue {
                    key,
                    value,
                    expected,
                    origin,
                }
            }
            other => other,
        }
    }

    /// Turns figment's extraction error into a [`ConfigError`] naming the
    /// full key and its origin.
    fn map_error(&self, error: figment::Error) -> ConfigError {
        use figment::error::Kind;

        let mut path: &[String] = &error.path;
        if let Some((first, rest)) = path.split_first()
            && first.as_str() == "default"
        {
            path = rest;
        }
        let parent = path.join(".");

        if let Kind::UnknownField(field, known) = &error.kind {
            // figment's path usually ends with the unknown field already.
            let key = if path.last() == Some(field) {
                parent
            } else {
                join(&parent, field)
            };
            // Environment layers only ever set known keys, so an unknown one
            // was written in the file.
            return ConfigError::UnknownKey {
                key,
                origin: self.file.clone().map(Origin::File),
                known: known.iter().map(|k| (*k).to_owned()).collect(),
            };
        }

        let key = parent;
        let origin = self.origin_from(error.metadata.as_ref(), &key);
        let env_raw = match &origin {
            Some(Origin::Env(_)) => self
                .env
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, raw)| raw.clone()),
            _ => None,
        };
        let value = env_raw.or_else(|| match &error.kind {
            Kind::InvalidType(actual, _) | Kind::InvalidValue(actual, _) => show(actual),
            Kind::UnknownVariant(name, _) => Some(name.clone()),
            _ => None,
        });
        let expected = match (KeyInfo::find(&key), &error.kind) {
            (Some(info), _) => info.kind.expected(),
            (None, _) if KeyInfo::is_section(&key) || key.is_empty() => {
                "a mapping of keys".to_owned()
            }
            (None, Kind::InvalidType(_, exp) | Kind::InvalidValue(_, exp)) => exp.clone(),
            (None, other) => other.to_string(),
        };
        ConfigError::InvalidValue {
            key,
            value,
            expected,
            origin,
        }
    }
}

/// A rejected value as the user wrote it, when it is a scalar.
fn show(actual: &figment::error::Actual) -> Option<String> {
    use figment::error::Actual;
    match actual {
        Actual::Bool(b) => Some(b.to_string()),
        Actual::Unsigned(n) => Some(n.to_string()),
        Actual::Signed(n) => Some(n.to_string()),
        Actual::Float(n) => Some(n.to_string()),
        Actual::Char(c) => Some(c.to_string()),
        Actual::Str(s) => Some(s.clone()),
        Actual::Unit | Actual::Option => Some("null".to_owned()),
        _ => None,
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

#[cfg(test)]
#[path = "load_tests.rs"]
mod tests;
