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
    /// The calendar hand-off calls are booked on; booking is off without it.
    pub calendar_id: Option<String>,
    /// Calendar v3 base.
    pub calendar_url: String,
    /// The user the service account acts as for Calendar (the JWT `sub`,
    /// domain-wide delegation): needed to invite attendees.
    pub impersonate: Option<String>,
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
    pub(crate) calendar_id: Option<String>,
    pub(crate) calendar_url: Option<String>,
    pub(crate) impersonate: Option<String>,
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
        let calendar_id = g
            .calendar_id
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        let impersonate = g
            .impersonate
            .map(|t| t.trim().to_lowercase())
            .filter(|t| !t.is_empty());
        if let Some(who) = &impersonate {
            c.email("google.impersonate", who);
            if calendar_id.is_none() {
                c.problem(
                    "google.impersonate",
                    "only applies with google.calendar_id (Calendar acts as this user)",
                );
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
            calendar_url: c.url(
                "google.calendar_url",
                g.calendar_url,
                Some(super::calendar::DEFAULT_CALENDAR_URL),
            ),
            calendar_id,
            impersonate,
        }
    });
    policy.crisis_docs = google.is_some();
    google
}

/// What `check-config` warns about in `[google]` (valid, but probably not
/// meant).
pub fn warnings(g: &GoogleConfig) -> Vec<String> {
    let mut out = Vec::new();
    if g.calendar_id.is_some() && g.impersonate.is_none() {
        out.push(
            "google.calendar_id is set without google.impersonate: hand-off calls are booked \
             without attendees (a service account cannot invite anyone without domain-wide \
             delegation); their addresses go in the event's description"
                .to_string(),
        );
    }
    out
}

impl super::calendar::Calendar {
    /// The hand-off calendar of `[google]`, when `calendar_id` is set.
    pub fn from_config(
        g: &GoogleConfig,
        key: super::ServiceAccountKey,
        http: reqwest::Client,
    ) -> Option<Self> {
        let settings = super::calendar::CalendarSettings {
            token_url: g.token_url.clone(),
            calendar_url: g.calendar_url.clone(),
            calendar_id: g.calendar_id.clone()?,
            impersonate: g.impersonate.clone(),
        };
        Some(super::calendar::Calendar::new(settings, key, http))
    }
}

impl super::Google {
    /// The Drive/Docs client of `[google]`.
    pub fn from_config(
        g: &GoogleConfig,
        key: super::ServiceAccountKey,
        http: reqwest::Client,
    ) -> Self {
        let settings = super::GoogleSettings {
            token_url: g.token_url.clone(),
            drive_url: g.drive_url.clone(),
            docs_url: g.docs_url.clone(),
            template_id: g.template_id.clone(),
            folder_id: g.folder_id.clone(),
        };
        super::Google::new(settings, key, http)
    }
}
