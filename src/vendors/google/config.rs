//! `[google]` of the config file: its keys, their defaults and checks.

use std::path::PathBuf;

use serde::Deserialize;

use crate::engine::Policy;
use crate::validate::Check;

/// `[google]`.
#[derive(Debug, Clone)]
pub struct GoogleConfig {
    /// OAuth token endpoint.
    pub token_url: String,
    /// Drive v3 base.
    pub drive_url: String,
    /// Docs base.
    pub docs_url: String,
    /// The service account's JSON key file.
    pub service_account_file: PathBuf,
    /// Doc to copy for each crisis; blank doc when `None`.
    pub template_id: Option<String>,
    /// Drive folder (or shared drive folder) for the docs.
    pub folder_id: Option<String>,
    /// Company domain that gets writer access.
    pub share_domain: Option<String>,
    /// The customer's role: `writer`, `commenter` or `reader`.
    pub customer_role: String,
}

/// The section as written in the file (unknown keys refused).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGoogle {
    pub(crate) token_url: Option<String>,
    pub(crate) drive_url: Option<String>,
    pub(crate) docs_url: Option<String>,
    pub(crate) service_account_file: Option<PathBuf>,
    pub(crate) template_id: Option<String>,
    pub(crate) folder_id: Option<String>,
    pub(crate) share_domain: Option<String>,
    pub(crate) customer_role: Option<String>,
}

/// Checks `[google]` (optional: `None` when absent), recording every problem
/// in `c`; what it decides of the policy goes into `policy`.
pub(crate) fn check(
    c: &mut Check,
    raw: Option<RawGoogle>,
    policy: &mut Policy,
) -> Option<GoogleConfig> {
    let google = raw.map(|g| {
        let role = g.customer_role.unwrap_or_else(|| "commenter".into());
        if !matches!(role.as_str(), "writer" | "commenter" | "reader") {
            c.problem(
                "google.customer_role",
                format!("{role:?} is not one of writer, commenter, reader"),
            );
        }
        let file = match g.service_account_file {
            Some(f) if f.is_relative() => c.base.join(f),
            Some(f) => f,
            None => {
                c.problem(
                    "google.service_account_file",
                    "is required: the service account's JSON key",
                );
                PathBuf::new()
            }
        };
        if !file.as_os_str().is_empty() {
            match crate::vendors::google::ServiceAccountKey::from_file(&file) {
                Ok(_) => c.private_file("google.service_account_file", &file),
                Err(e) => c.problem("google.service_account_file", e),
            }
        }
        GoogleConfig {
            token_url: c.url(
                "google.token_url",
                g.token_url,
                Some("https://oauth2.googleapis.com/token"),
            ),
            drive_url: c.url(
                "google.drive_url",
                g.drive_url,
                Some("https://www.googleapis.com/drive/v3"),
            ),
            docs_url: c.url(
                "google.docs_url",
                g.docs_url,
                Some("https://docs.googleapis.com"),
            ),
            service_account_file: file,
            template_id: g.template_id.filter(|t| !t.is_empty()),
            folder_id: g.folder_id.filter(|t| !t.is_empty()),
            share_domain: g.share_domain.filter(|t| !t.is_empty()),
            customer_role: role,
        }
    });
    policy.crisis_docs = google.is_some();
    google
}
