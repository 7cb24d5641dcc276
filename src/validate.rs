//! What every section of the config file is checked with: collecting
//! problems (each named by its key) instead of stopping at the first,
//! durations, URLs, required values, e-mail addresses, and secrets read
//! from `*_file` or `*_env` (with a warning when a secret file is open to
//! every user of the machine). `crate::config` assembles the sections; each
//! vendor's section is checked in its own folder (`vendors/*/config.rs`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::secret::Secret;

/// One thing wrong with the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The key at fault, like `pagerduty.routing_key_file`.
    pub key: String,
    /// What is wrong and what to do.
    pub message: String,
}

/// Collects problems while validating, so all of them are reported.
pub struct Check {
    /// The config file's folder: relative secret paths are read from it.
    pub base: PathBuf,
    /// Everything wrong so far.
    pub problems: Vec<Problem>,
    /// What is valid but probably not meant (a secret file others can
    /// read): `check-config` prints these and still exits 0.
    pub warnings: Vec<Problem>,
}

impl Check {
    /// A check of a file in `base` (relative paths are read from it).
    pub fn new(base: PathBuf) -> Check {
        Check {
            base,
            problems: Vec::new(),
            warnings: Vec::new(),
        }
    }

    pub fn problem(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            key: key.to_string(),
            message: message.into(),
        });
    }

    pub fn duration(&mut self, key: &str, value: Option<&str>, default: &str) -> Duration {
        let text = value.unwrap_or(default);
        match humantime::parse_duration(text) {
            Ok(d) => d,
            Err(e) => {
                self.problem(
                    key,
                    format!(
                        "{text:?} is not a duration ({e}); write it like \"30s\", \"5m\", \"1h\""
                    ),
                );
                humantime::parse_duration(default).unwrap_or_default()
            }
        }
    }

    /// A poll interval: `"0s"` or `"off"` turns polling off.
    pub fn interval(&mut self, key: &str, value: Option<&str>, default: &str) -> Option<Duration> {
        if value == Some("off") {
            return None;
        }
        let d = self.duration(key, value, default);
        (!d.is_zero()).then_some(d)
    }

    pub fn url(&mut self, key: &str, value: Option<String>, default: Option<&str>) -> String {
        let Some(v) = value.or(default.map(String::from)) else {
            self.problem(key, "is required");
            return String::new();
        };
        match reqwest::Url::parse(&v) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => v.trim_end_matches('/').to_string(),
            _ => {
                self.problem(key, format!("{v:?} is not an http(s) URL"));
                String::new()
            }
        }
    }

    pub fn required(&mut self, key: &str, value: Option<String>) -> String {
        match value {
            Some(v) if !v.trim().is_empty() => v,
            _ => {
                self.problem(key, "is required");
                String::new()
            }
        }
    }

    /// Reads the secret `name` from `name_file` or `name_env`.
    pub fn secret(
        &mut self,
        section: &str,
        name: &str,
        file: Option<PathBuf>,
        env: Option<String>,
    ) -> Option<Secret> {
        let (fkey, ekey) = (
            format!("{section}.{name}_file"),
            format!("{section}.{name}_env"),
        );
        match (file, env) {
            (Some(_), Some(_)) => {
                self.problem(&fkey, format!("set only one of {fkey} and {ekey}"));
                None
            }
            (Some(path), None) => {
                let path = if path.is_relative() {
                    self.base.join(path)
                } else {
                    path
                };
                match std::fs::read_to_string(&path) {
                    Ok(v) if !v.trim().is_empty() => {
                        self.private_file(&fkey, &path);
                        Some(Secret::new(v))
                    }
                    Ok(_) => {
                        self.problem(&fkey, format!("{} is empty", path.display()));
                        None
                    }
                    Err(e) => {
                        self.problem(&fkey, format!("cannot read {}: {e}", path.display()));
                        None
                    }
                }
            }
            (None, Some(var)) => match std::env::var(&var) {
                Ok(v) if !v.trim().is_empty() => Some(Secret::new(v)),
                _ => {
                    self.problem(
                        &ekey,
                        format!("environment variable {var} is not set or empty"),
                    );
                    None
                }
            },
            (None, None) => None,
        }
    }

    /// Warns when the secret file at `path` (named by `key`) gives any
    /// permission to users outside its owner and group (`mode & 0o007`):
    /// every account on the machine could read the credential. Group access
    /// is fine: the Debian package installs secrets 0640 `root:pagerd`.
    pub fn private_file(&mut self, key: &str, path: &Path) {
        use std::os::unix::fs::PermissionsExt as _;
        let Ok(meta) = std::fs::metadata(path) else {
            return;
        };
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o007 != 0 {
            let p = path.display();
            self.warnings.push(Problem {
                key: key.to_string(),
                message: format!(
                    "{p} is open to every user on this machine (mode {mode:04o}); \
                     fix: chmod 0640 {p}; chown root:pagerd {p}"
                ),
            });
        }
    }

    pub fn required_secret(
        &mut self,
        section: &str,
        name: &str,
        file: Option<PathBuf>,
        env: Option<String>,
    ) -> Secret {
        let before = self.problems.len();
        let s = self.secret(section, name, file, env);
        if s.is_none() && self.problems.len() == before {
            self.problem(
                &format!("{section}.{name}_file"),
                format!("is required (or {section}.{name}_env naming an environment variable)"),
            );
        }
        s.unwrap_or_else(|| Secret::new(""))
    }

    pub fn email(&mut self, key: &str, value: &str) {
        if !looks_like_email(value) {
            self.problem(key, format!("{value:?} is not an e-mail address"));
        }
    }
}

/// `local@domain.tld`: one `@`, something before it, a dotted domain after
/// it, no white space.
pub fn looks_like_email(value: &str) -> bool {
    let Some((local, domain)) = value.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !value.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// The values lower-cased and trimmed (tags, priorities).
pub fn lower(v: Vec<String>) -> Vec<String> {
    v.into_iter()
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}
