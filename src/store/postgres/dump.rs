//! What `pagerd backup` says for a PostgreSQL store: the `pg_dump` and
//! `pg_restore` commands for its database, built from `store.url` and
//! `store.tls` with any password taken out (a password never goes on a
//! command line, where `ps` shows it, nor on the screen).

use crate::config::{PostgresConfig, StoreTls};

/// The system's CA bundle (Debian's `ca-certificates`: the Mozilla roots).
pub const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The commands that back up and restore the database of `pg` into and
/// from `file`, each on one line, then where the password goes.
pub fn commands(pg: &PostgresConfig, file: &str) -> String {
    let url = connection_url(pg);
    let password = if pg.password.is_some() || has_password(pg.url.expose()) {
        "\nThe password (store.password_file) goes in a ~/.pgpass line \
         HOST:PORT:DATABASE:USER:PASSWORD (mode 0600) of the user running them, \
         never on the command line."
    } else {
        ""
    };
    format!(
        "  pg_dump --format=custom --file {file} '{url}'\n\
         Restore (pagerd stopped on every machine):\n  \
         pg_restore --clean --if-exists --single-transaction --dbname '{url}' {file}{password}"
    )
}

/// `store.url` without a password (in the user part or as `?password=`),
/// with the TLS of `store.tls` as libpq parameters when the URL has no
/// `sslmode` of its own: `verify-full` checks against `store.ca_file`, or
/// else against Debian's bundle of the same Mozilla roots pagerd trusts
/// ([`SYSTEM_ROOTS`]; libpq has no default of its own before version 16).
fn connection_url(pg: &PostgresConfig) -> String {
    let raw = pg.url.expose();
    let Ok(mut url) = reqwest::Url::parse(raw) else {
        // Not a URL the url crate reads (libpq still might): name the key
        // rather than print something that might hold a password.
        return "the URL of store.url, without its password".into();
    };
    let _ = url.set_password(None);
    let mut pairs: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != "password")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if !pairs.iter().any(|(k, _)| k == "sslmode") {
        match pg.tls {
            StoreTls::Disable => {}
            StoreTls::Require => pairs.push(("sslmode".into(), "require".into())),
            StoreTls::VerifyFull => {
                pairs.push(("sslmode".into(), "verify-full".into()));
                let root = match &pg.ca_file {
                    Some(ca) => ca.display().to_string(),
                    None => SYSTEM_ROOTS.into(),
                };
                pairs.push(("sslrootcert".into(), root));
            }
        }
    }
    if pairs.is_empty() {
        url.set_query(None);
    } else {
        let query: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        url.set_query(Some(&query.join("&")));
    }
    url.to_string()
}

/// Percent-encodes what would end a query parameter or the shell's quotes
/// (libpq decodes it); paths stay readable (`/etc/pagerd/postgres-ca.pem`).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'.'
            | b'_'
            | b'~'
            | b'/'
            | b':'
            | b','
            | b'@' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Whether the URL carries a password.
fn has_password(raw: &str) -> bool {
    reqwest::Url::parse(raw)
        .is_ok_and(|u| u.password().is_some() || u.query_pairs().any(|(k, _)| k == "password"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::secret::Secret;

    fn pg(url: &str, tls: StoreTls, ca: Option<&str>, password: bool) -> PostgresConfig {
        PostgresConfig {
            url: Secret::new(url),
            password: password.then(|| Secret::new("pw-from-file")),
            lease_renew: Duration::from_secs(2),
            lease_ttl: Duration::from_secs(10),
            tls,
            ca_file: ca.map(Into::into),
        }
    }

    #[test]
    fn the_commands_name_the_database_and_never_a_password() {
        let c = commands(
            &pg(
                "postgres://pagerd:hunter2@db.internal:5432/pagerd?password=hunter3",
                StoreTls::VerifyFull,
                Some("/etc/pagerd/postgres-ca.pem"),
                false,
            ),
            "pagerd.dump",
        );
        let url = "postgres://pagerd@db.internal:5432/pagerd?sslmode=verify-full&sslrootcert=/etc/pagerd/postgres-ca.pem";
        assert!(
            c.contains(&format!(
                "pg_dump --format=custom --file pagerd.dump '{url}'"
            )),
            "{c}"
        );
        assert!(c.contains(&format!("--dbname '{url}' pagerd.dump")), "{c}");
        assert!(c.contains("~/.pgpass"), "{c}");
        assert!(!c.contains("hunter"), "{c}");
    }

    #[test]
    fn a_local_database_without_password_gets_plain_commands() {
        let c = commands(
            &pg(
                "postgres://postgres@127.0.0.1:5432/pagerd",
                StoreTls::Disable,
                None,
                false,
            ),
            "F",
        );
        assert!(
            c.contains(
                "pg_dump --format=custom --file F 'postgres://postgres@127.0.0.1:5432/pagerd'"
            ),
            "{c}"
        );
        assert!(!c.contains("pgpass") && !c.contains("sslmode"), "{c}");
        // A password from store.password_file is mentioned, never shown.
        let c = commands(
            &pg(
                "postgres://pagerd@db/pagerd?sslmode=require",
                StoreTls::Require,
                None,
                true,
            ),
            "F",
        );
        assert!(
            c.contains("sslmode=require") && c.contains("~/.pgpass"),
            "{c}"
        );
        // verify-full without store.ca_file: the system's bundle of the
        // Mozilla roots, which every libpq reads.
        let c = commands(
            &pg(
                "postgres://pagerd@db/pagerd",
                StoreTls::VerifyFull,
                None,
                false,
            ),
            "F",
        );
        assert!(
            c.contains(&format!(
                "'postgres://pagerd@db/pagerd?sslmode=verify-full&sslrootcert={SYSTEM_ROOTS}'"
            )),
            "{c}"
        );
        assert!(
            !c.contains("pw-from-file") && !c.contains("sslmode=require&sslmode"),
            "{c}"
        );
    }
}
