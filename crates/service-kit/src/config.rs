//! Configuration as both binaries read it: an optional YAML file (`-f/--config`), overridden by
//! environment variables named by a prefix and the key path joined with `__`
//! (`AUTH_SVC__AUTH__ACCESS_EXPIRE`), deserialised into the binary's own config type.
//!
//! Every variable also has a `_FILE` variant (`AUTH_SVC__DATABASE_URL_FILE`) naming a file whose
//! text is the key's value, so secrets can reach a pod as a mounted Secret rather than as
//! environment variables, which every child process inherits and diagnostic dumps include.

use std::path::Path;

use figment::{
    Figment, Metadata, Profile, Provider,
    error::Kind,
    providers::{Env, Format, Serialized, Yaml},
    value::{Dict, Map},
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
    let env = Env::prefixed(env_prefix).split("__");
    let from_files = values_from_files::<T>(&env, env_prefix)?;
    let file_variables: Vec<&str> = from_files.iter().map(|value| value.variable_key.as_str()).collect();
    figment = figment.merge(env.clone().ignore(&file_variables));
    for value in from_files {
        figment = figment.merge(value);
    }
    figment.extract().map_err(|errors| describe(errors, env_prefix))
}

/// Marks the errors whose value came from a `_FILE` variable, so they never show it.
const FROM_FILE: &str = "the file named by ";

/// A key's value read from the file its `_FILE` variable names; never `Debug`, it may be a secret.
struct FileValue {
    /// The dotted key of the variable itself (`database_url_file`).
    variable_key: String,
    /// The dotted key it sets (`database_url`).
    key: String,
    variable: String,
    text: String,
}

impl Provider for FileValue {
    fn metadata(&self) -> Metadata {
        Metadata::named(format!("{FROM_FILE}{}", self.variable))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        // Always a string, unlike an environment value: a secret that looks like a number or a
        // list stays the text it is.
        Serialized::default(&self.key, &self.text).data()
    }
}

/// The `_FILE` variables of `env` that stand for another key, each with its file read. A key of
/// `T` that itself ends in `_file` (`auth.keys.<kid>.private_key_file`) keeps its own meaning.
fn values_from_files<T: DeserializeOwned>(env: &Env, env_prefix: &str) -> Result<Vec<FileValue>, String> {
    let variables: Vec<(String, String)> = env.iter().map(|(key, value)| (key.to_string(), value)).collect();
    let mut values = Vec::new();
    for (variable_key, path) in &variables {
        let Some(key) = variable_key.strip_suffix("_file") else { continue };
        if is_a_key_of::<T>(variable_key, path) {
            continue;
        }
        let variable = env_name(env_prefix, variable_key);
        if variables.iter().any(|(other, _)| other == key) {
            return Err(format!("{} and {variable} are both set; set one of them", env_name(env_prefix, key)));
        }
        let text = read_value_file(Path::new(path)).map_err(|why| format!("{variable}: cannot read {path}: {why}"))?;
        values.push(FileValue { variable_key: variable_key.clone(), key: key.to_owned(), variable, text });
    }
    Ok(values)
}

/// Whether `T` has the dotted `key`: only an unknown field at exactly that place says no (every
/// config struct denies unknown fields). Other errors (a missing sibling) do not matter here.
fn is_a_key_of<T: DeserializeOwned>(key: &str, value: &str) -> bool {
    let probe = Figment::from(Serialized::default(key, value)).extract::<T>();
    let Err(errors) = probe else { return true };
    // figment's path of an unknown field ends in the field itself.
    !errors.into_iter().any(|error| matches!(error.kind, Kind::UnknownField(..)) && error.path.join(".") == key)
}

/// The file's text without the one trailing newline that `echo` and editors add.
fn read_value_file(path: &Path) -> std::io::Result<String> {
    let text = std::fs::read_to_string(path)?;
    let text = text.strip_suffix('\n').map(|line| line.strip_suffix('\r').unwrap_or(line)).unwrap_or(&text);
    Ok(text.to_owned())
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

    /// A problem worded in full by the caller (a standard variable that is not one of ours).
    pub fn message(text: String) -> Self {
        Self(text)
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
            let from_file = error.metadata.as_ref().is_some_and(|metadata| metadata.name.starts_with(FROM_FILE));
            let mut kind = match &error.kind {
                // serde's words quote the value; a file's text may be a secret.
                Kind::InvalidType(_, expected) | Kind::InvalidValue(_, expected) if from_file => {
                    format!("invalid value (not shown), expected {expected}")
                }
                kind => kind.to_string(),
            };
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

#[cfg(test)]
mod tests {
    // figment::Jail closures return figment::Error, which clippy finds large.
    #![allow(clippy::result_large_err)]

    use serde::Deserialize;

    use super::*;

    const PREFIX: &str = "KIT__";

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        #[serde(default)]
        database_url: Option<String>,
        #[serde(default)]
        auth: SampleAuth,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct SampleAuth {
        secret: Option<String>,
        /// A key that is a path itself, like auth-svc's `auth.keys.<kid>.private_key_file`.
        key_file: Option<String>,
        expire: u64,
    }

    fn load_sample(file: Option<&Path>) -> Result<Sample, String> {
        load(file, PREFIX)
    }

    #[test]
    fn a_file_variable_sets_its_key_to_the_files_text_less_one_newline() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("url", "postgres://app:pw@db/auth\n")?;
            jail.create_file("secret", "two lines\r\n\n")?;
            jail.set_env("KIT__DATABASE_URL_FILE", "url");
            jail.set_env("KIT__AUTH__SECRET_FILE", "secret");
            let sample = load_sample(None)?;
            assert_eq!(sample.database_url.as_deref(), Some("postgres://app:pw@db/auth"));
            assert_eq!(sample.auth.secret.as_deref(), Some("two lines\r\n"), "one newline only");
            Ok(())
        });
    }

    #[test]
    fn a_file_variable_wins_over_the_yaml_file_and_its_text_stays_a_string() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("config.yaml", "auth:\n  secret: from-yaml\n  expire: 5\n")?;
            jail.create_file("secret", "12345")?;
            jail.set_env("KIT__AUTH__SECRET_FILE", "secret");
            let sample = load_sample(Some(Path::new("config.yaml")))?;
            assert_eq!(sample.auth.secret.as_deref(), Some("12345"));
            assert_eq!(sample.auth.expire, 5);
            Ok(())
        });
    }

    #[test]
    fn a_key_and_its_file_variable_both_set_is_an_error_naming_both() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("secret", "from-file")?;
            jail.set_env("KIT__AUTH__SECRET", "from-env");
            jail.set_env("KIT__AUTH__SECRET_FILE", "secret");
            let err = load_sample(None).err().ok_or("expected an error")?;
            assert_eq!(err, "KIT__AUTH__SECRET and KIT__AUTH__SECRET_FILE are both set; set one of them");
            Ok(())
        });
    }

    #[test]
    fn an_unreadable_file_is_an_error_naming_the_variable_and_the_path() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("KIT__DATABASE_URL_FILE", "/no/such/secret");
            let err = load_sample(None).err().ok_or("expected an error")?;
            assert!(err.starts_with("KIT__DATABASE_URL_FILE: cannot read /no/such/secret: "), "{err}");
            jail.create_binary("not-text", &[0xff, 0xfe, b'p', b'w'])?;
            jail.set_env("KIT__DATABASE_URL_FILE", "not-text");
            let err = load_sample(None).err().ok_or("expected an error")?;
            assert!(err.starts_with("KIT__DATABASE_URL_FILE: cannot read not-text: "), "{err}");
            assert!(!err.contains("pw"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn a_key_that_ends_in_file_keeps_its_meaning() {
        figment::Jail::expect_with(|jail| {
            // Not read: the key's value is the path itself.
            jail.set_env("KIT__AUTH__KEY_FILE", "/etc/keys/k1.pem");
            let sample = load_sample(None)?;
            assert_eq!(sample.auth.key_file.as_deref(), Some("/etc/keys/k1.pem"));
            Ok(())
        });
    }

    #[test]
    fn a_bad_value_from_a_file_names_the_key_and_the_variable_but_not_the_text() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("expire", "hunter2-secret")?;
            jail.set_env("KIT__AUTH__EXPIRE_FILE", "expire");
            let err = load_sample(None).err().ok_or("expected an error")?;
            assert!(err.starts_with("auth.expire (KIT__AUTH__EXPIRE) invalid value (not shown)"), "{err}");
            assert!(err.ends_with("from the file named by KIT__AUTH__EXPIRE_FILE"), "{err}");
            assert!(!err.contains("hunter2"), "{err}");
            Ok(())
        });
        // A `_FILE` variable of no key: the unknown key is named, as for any variable.
        figment::Jail::expect_with(|jail| {
            jail.create_file("nope", "x")?;
            jail.set_env("KIT__NOPE_FILE", "nope");
            let err = load_sample(None).err().ok_or("expected an error")?;
            assert!(err.contains("unknown field: found `nope`"), "{err}");
            Ok(())
        });
    }
}
