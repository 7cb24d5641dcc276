//! Secrets: values that must never reach a log line, an error or a metric.
//!
//! Every credential pagerd holds is a [`Secret`]. Its `Debug` and `Display`
//! print `***`, so a `?config` in a log statement cannot leak anything; the
//! raw value is only reachable through [`Secret::expose`], which makes each
//! use greppable.

use std::fmt;

/// A credential read from a file or an environment variable.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value. Surrounding whitespace (a trailing newline in a secret
    /// file) is removed because no vendor credential contains it.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into().trim().to_string())
    }

    /// The raw value, for building a request header or an HMAC key.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact_the_value() {
        let s = Secret::new("hunter2\n");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(s.expose(), "hunter2");
    }
}
