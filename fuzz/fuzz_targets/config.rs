//! `Config::parse` on arbitrary UTF-8 text: it must never panic, whatever the
//! TOML (syntax errors, wrong types, unknown keys, absurd durations, bad
//! URLs, missing sections). Non-UTF-8 input is skipped: `Config::load` reads
//! the file with `read_to_string`, which refuses it before parsing.
//!
//! `Config::parse` reads the secret files a config names. So that a fuzzed
//! path cannot make the harness hang or run out of memory (`/dev/zero`,
//! `/dev/stdin`, a FIFO, `/proc/kmsg`), an input naming an existing path that
//! is not a small regular file is skipped. Relative paths resolve under
//! `/nonexistent`, so only absolute paths can name anything.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

const CONFIG_PATH: &str = "/nonexistent/pagerd.toml";

/// Whether `s`, taken as a path the way the config takes it, names something
/// reading could block on or blow up with.
fn risky_path(s: &str) -> bool {
    if s.contains('\0') {
        return false; // Not a path the OS accepts: reading fails at once.
    }
    let path = Path::new("/nonexistent").join(s);
    match std::fs::metadata(&path) {
        Err(_) => false,
        Ok(m) => !m.is_file() || m.len() == 0 || m.len() > 1 << 20,
    }
}

fn any_risky_string(v: &toml::Value) -> bool {
    match v {
        toml::Value::String(s) => risky_path(s),
        toml::Value::Array(a) => a.iter().any(any_risky_string),
        toml::Value::Table(t) => t.values().any(any_risky_string),
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(doc) = text.parse::<toml::Table>()
        && doc.values().any(any_risky_string)
    {
        return;
    }
    let path = Path::new(CONFIG_PATH);
    match pagerd::config::Config::parse(path, text) {
        Ok(config) => {
            // Whatever validates must keep the promises the daemon relies on.
            assert!(config.policy.ack_timeout > 0, "ack_timeout 0 accepted");
            assert!(config.policy.crisis_responders >= 1);
            assert!(
                !config.policy.emergency_priorities.is_empty()
                    || !config.policy.emergency_tags.is_empty()
            );
        }
        Err(e) => {
            assert!(!e.problems.is_empty(), "an error without a problem");
            // The error is printed by `check-config`: formatting must not panic.
            let _ = e.to_string();
        }
    }
});
