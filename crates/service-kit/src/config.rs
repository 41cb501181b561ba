//! Configuration as both binaries read it: an optional YAML file (`-f/--config`), overridden by
//! environment variables named by a prefix and the key path joined with `__`
//! (`AUTH_SVC__AUTH__ACCESS_EXPIRE`), deserialised into the binary's own config type.

use std::path::Path;

use figment::{
    Figment,
    providers::{Env, Format, Yaml},
};
use serde::de::DeserializeOwned;

/// Reads `file` (if given), then the `env_prefix`ed environment, into `T`. The error is one
/// line naming each bad key, the variable that sets it and where the value came from.
pub fn load<T: DeserializeOwned>(file: Option<&Path>, env_prefix: &str) -> Result<T, String> {
    let mut figment = Figment::new();
    if let Some(path) = file {
        if !path.is_file() {
            return Err(format!("file {} not found", path.display()));
        }
        figment = figment.merge(Yaml::file_exact(path));
    }
    figment = figment.merge(Env::prefixed(env_prefix).split("__"));
    figment.extract().map_err(|errors| describe(errors, env_prefix))
}

/// A configuration problem, worded as one line that names the key and the variable that sets it.
#[derive(Debug, thiserror::Error)]
#[error("config: {0}")]
pub struct ConfigError(String);

impl ConfigError {
    /// An invalid value at the dotted `key` of a config whose variables start with `env_prefix`.
    pub fn invalid(env_prefix: &str, key: &str, why: &str) -> Self {
        Self(format!("{key} ({}) {why}", env_name(env_prefix, key)))
    }
}

/// [`load`], then `validate`: what serde cannot check (ranges, relations between keys).
pub fn load_validated<T: DeserializeOwned>(
    file: Option<&Path>,
    env_prefix: &str,
    validate: impl FnOnce(&T) -> Result<(), ConfigError>,
) -> Result<T, ConfigError> {
    let config = load(file, env_prefix).map_err(ConfigError)?;
    validate(&config)?;
    Ok(config)
}

/// The binary's loaded config, or the end of the process: a config that cannot be read is a
/// usage error, said on stderr as `program: why`, with exit status 2. Call it first in `main`,
/// before anything has started that exiting would cut short.
pub fn loaded_or_exit<T>(program: &str, loaded: Result<T, impl std::fmt::Display>) -> T {
    loaded.unwrap_or_else(|err| {
        eprintln!("{program}: {err}");
        std::process::exit(2)
    })
}

/// The environment variable that overrides a dotted key (`auth.access_expire`).
pub fn env_name(env_prefix: &str, key: &str) -> String {
    format!("{env_prefix}{}", key.replace('.', "__").to_uppercase())
}

/// figment's errors on one line, each naming its key, the variable that sets it, and its origin.
fn describe(errors: figment::Error, env_prefix: &str) -> String {
    let lines: Vec<String> = errors
        .into_iter()
        .map(|error| {
            let key = error.path.join(".").to_lowercase();
            let mut kind = error.kind.to_string();
            // serde's words for a 0 given to a `NonZero*` key name Rust types; say the rule.
            if kind.contains("expected a nonzero") {
                kind = "must be at least 1".to_owned();
            }
            let what = if key.is_empty() { kind } else { format!("{key} ({}) {kind}", env_name(env_prefix, &key)) };
            match &error.metadata {
                Some(metadata) => match &metadata.source {
                    Some(source) => format!("{what}, in {source}"),
                    None => format!("{what}, from {}", metadata.name),
                },
                None => what,
            }
        })
        .collect();
    lines.join("; ").replace('\n', " ")
}
