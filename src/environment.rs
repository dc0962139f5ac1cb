//! The `COMPUTEGATE_*` environment, checked once when the process starts. A variable the binary
//! does not know is an error (a misspelt `COMPUTEGATE_MASTER_KEYS` would otherwise be ignored
//! and the gateway start without what the operator meant to give it), with the closest known
//! name suggested. Every secret may instead be read from a file named by `<NAME>_FILE`, as
//! Kubernetes mounts Secrets; giving both is an error. Configuration overrides
//! (`COMPUTEGATE_<SECTION>__<KEY>`) must name a configuration section; the configuration
//! loader checks the rest of their path. `COMPUTEGATE_TEST_*` belongs to the test harness.
//!
//! [`Environment::install`] keeps the checked environment for the process; [`var`] reads it.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use computegate_gateway::config::{CONFIG_SECTIONS, ENV_PREFIX};

use crate::startup::StartupConfigError;

/// Secrets: each also readable from the file named by `<NAME>_FILE`.
pub const SECRETS: &[&str] = &[
    "COMPUTEGATE_MASTER_KEY",
    "COMPUTEGATE_USAGE_SECRET",
    "COMPUTEGATE_USAGE_SECRET_PREVIOUS",
    "COMPUTEGATE_IDV_STRIPE_SECRET",
    "COMPUTEGATE_IDV_STRIPE_SECRET_PREVIOUS",
    "COMPUTEGATE_IDV_PERSONA_SECRET",
    "COMPUTEGATE_IDV_PERSONA_SECRET_PREVIOUS",
    "COMPUTEGATE_IDV_ONFIDO_SECRET",
    "COMPUTEGATE_IDV_ONFIDO_SECRET_PREVIOUS",
    "COMPUTEGATE_IDV_ONFIDO_API_TOKEN",
];

/// Settings that are not secrets and not configuration-file keys.
pub const SETTINGS: &[&str] = &[
    "COMPUTEGATE_CONFIG",
    "COMPUTEGATE_IDV_ONFIDO_REGION",
    "COMPUTEGATE_IDV_ONFIDO_API_URL",
    "COMPUTEGATE_IDV_ONFIDO_TIMEOUT_MS",
    "COMPUTEGATE_IDV_ONFIDO_RETRY_MS",
];

/// The prefix of the test harness's own variables (never read by the binary).
const TEST_PREFIX: &str = "COMPUTEGATE_TEST_";

/// The checked `COMPUTEGATE_*` variables, secrets read from their files.
#[derive(Clone, Default)]
pub struct Environment {
    vars: BTreeMap<String, String>,
}

static INSTALLED: OnceLock<Environment> = OnceLock::new();

/// The value of `name` in the installed environment (the process's own before
/// [`Environment::install`], as in unit tests).
pub fn var(name: &str) -> Option<String> {
    match INSTALLED.get() {
        Some(env) => env.get(name),
        None => std::env::var(name).ok(),
    }
}

// === impl Environment ===

impl std::fmt::Debug for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names only: the values are secrets.
        f.debug_list().entries(self.vars.keys()).finish()
    }
}

impl Environment {
    /// Checks `vars` (name, value); `read` reads a `_FILE` variable's file.
    pub fn check(
        vars: impl IntoIterator<Item = (String, String)>,
        read: impl Fn(&str) -> std::io::Result<String>,
    ) -> Result<Environment, StartupConfigError> {
        let mut problems = Vec::new();
        let mut out = BTreeMap::new();
        let mut from_files: Vec<(String, String)> = Vec::new();
        for (name, value) in vars {
            if !name.starts_with(ENV_PREFIX) || name.starts_with(TEST_PREFIX) {
                continue;
            }
            let rest = &name[ENV_PREFIX.len()..];
            let section = rest
                .split("__")
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase();
            if CONFIG_SECTIONS.contains(&section.as_str()) {
                // A configuration override (`COMPUTEGATE_DATA_DIR`, `COMPUTEGATE_SERVER__…`).
                out.insert(name, value);
            } else if rest.contains("__") {
                problems.push(format!(
                    "{name}: `{section}` is not a configuration section (one of {})",
                    CONFIG_SECTIONS.join(", ")
                ));
            } else if SECRETS.contains(&name.as_str()) || SETTINGS.contains(&name.as_str()) {
                out.insert(name, value);
            } else if let Some(secret) = name
                .strip_suffix("_FILE")
                .filter(|base| SECRETS.contains(base))
            {
                match read(&value) {
                    Ok(text) => from_files.push((secret.to_owned(), text.trim_end().to_owned())),
                    Err(e) => problems.push(format!("{name}: cannot read {value}: {e}")),
                }
            } else {
                problems.push(unknown(&name));
            }
        }
        for (name, value) in from_files {
            match out.entry(name) {
                std::collections::btree_map::Entry::Occupied(e) => problems.push(format!(
                    "{name} and {name}_FILE are both set; give one",
                    name = e.key()
                )),
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(value);
                }
            }
        }
        if problems.is_empty() {
            Ok(Environment { vars: out })
        } else {
            Err(StartupConfigError(problems.join("; ")))
        }
    }

    /// The process's environment, checked (files read from disk).
    pub fn from_process() -> Result<Environment, StartupConfigError> {
        let vars = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
        Environment::check(vars, |path| std::fs::read_to_string(path))
    }

    /// Keeps this environment for the rest of the process ([`var`]).
    pub fn install(self) {
        let _ = INSTALLED.set(self);
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<String> {
        self.vars.get(name).cloned()
    }
}

/// The problem with an unknown `COMPUTEGATE_*` name, with the closest known one.
fn unknown(name: &str) -> String {
    let known = SECRETS
        .iter()
        .chain(SETTINGS)
        .map(|k| ((*k).to_owned(), strsim::jaro_winkler(k, name)))
        .chain(SECRETS.iter().map(|k| {
            let file = format!("{k}_FILE");
            let score = strsim::jaro_winkler(&file, name);
            (file, score)
        }))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    match known {
        Some((best, score)) if score > 0.85 => {
            format!("{name} is not a variable Computegate reads (did you mean {best}?)")
        }
        _ => format!(
            "{name} is not a variable Computegate reads (configuration overrides are \
             COMPUTEGATE_<SECTION>__<KEY>; see the README)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(vars: &[(&str, &str)]) -> Result<Environment, StartupConfigError> {
        Environment::check(
            vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
            |path| match path {
                "/run/secrets/master" => Ok("bWFzdGVy\n".into()),
                _ => Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no such file",
                )),
            },
        )
    }

    #[test]
    fn known_names_pass_and_others_are_ignored() {
        let env = check(&[
            ("COMPUTEGATE_MASTER_KEY", "k"),
            ("COMPUTEGATE_SERVER__PUBLIC_ADDR", "0.0.0.0:8080"),
            ("COMPUTEGATE_TEST_REDIS_URL", "redis://x"),
            ("COMPUTEGATE_CONFIG", "/etc/computegate.toml"),
            ("COMPUTEGATE_DATA_DIR", "/var/lib/computegate"),
            ("PATH", "/usr/bin"),
        ])
        .unwrap();
        assert_eq!(env.get("COMPUTEGATE_MASTER_KEY").as_deref(), Some("k"));
        assert_eq!(env.get("COMPUTEGATE_TEST_REDIS_URL"), None);
        assert_eq!(env.get("PATH"), None);
    }

    #[test]
    fn a_misspelt_name_is_an_error_naming_the_closest_one() {
        let e = check(&[("COMPUTEGATE_MASTER_KEYS", "k")]).unwrap_err();
        assert!(e.0.contains("did you mean COMPUTEGATE_MASTER_KEY?"), "{e}");
        let e = check(&[("COMPUTEGATE_SERVR__PUBLIC_ADDR", "x")]).unwrap_err();
        assert!(
            e.0.contains("`servr` is not a configuration section"),
            "{e}"
        );
        let e = check(&[("COMPUTEGATE_WHATEVER", "x")]).unwrap_err();
        assert!(e.0.contains("not a variable Computegate reads"), "{e}");
    }

    #[test]
    fn secrets_come_from_files_but_not_from_both() {
        let env = check(&[("COMPUTEGATE_MASTER_KEY_FILE", "/run/secrets/master")]).unwrap();
        assert_eq!(
            env.get("COMPUTEGATE_MASTER_KEY").as_deref(),
            Some("bWFzdGVy")
        );
        let e = check(&[
            ("COMPUTEGATE_MASTER_KEY", "k"),
            ("COMPUTEGATE_MASTER_KEY_FILE", "/run/secrets/master"),
        ])
        .unwrap_err();
        assert!(e.0.contains("both set"), "{e}");
        let e = check(&[("COMPUTEGATE_USAGE_SECRET_FILE", "/nope")]).unwrap_err();
        assert!(e.0.contains("cannot read /nope"), "{e}");
        // Only secrets have a file form.
        assert!(check(&[("COMPUTEGATE_CONFIG_FILE", "/x")]).is_err());
        // The secret's value never appears in Debug.
        assert!(!format!("{env:?}").contains("bWFzdGVy"));
    }
}
