//! Google: the service account's token (the JWT grant at `token_url`), the
//! template doc and folder (`files.get` with `fields=id,name,mimeType`), and
//! the hand-off calendar (`calendars.get`, with the Calendar token: as
//! `google.impersonate` when set).

use super::Check;
use crate::config::Config;
use crate::vendors::ProbeError;
use crate::vendors::google::calendar::Calendar;
use crate::vendors::google::{FOLDER_MIME, GOOGLE_DOC_MIME, Google, ServiceAccountKey};

const TOKEN: &str = "Google service account";
const TEMPLATE: &str = "Google template doc";
const FOLDER: &str = "Google folder";
const CALENDAR: &str = "Google Calendar";

pub(super) async fn checks(config: &Config, http: reqwest::Client) -> Vec<Check> {
    let Some(gc) = &config.google else {
        return vec![Check::pass("Google", "not configured (no [google])")];
    };
    let key = match ServiceAccountKey::from_file(&gc.service_account_file) {
        Ok(k) => k,
        Err(e) => {
            return vec![Check::fail(
                TOKEN,
                e,
                "download a JSON key of the service account (Google Cloud console → IAM → \
                 Service accounts → Keys) into google.service_account_file",
            )];
        }
    };
    let calendar = Calendar::from_config(gc, key.clone(), http.clone());
    let client = Google::from_config(gc, key, http);
    let account = client.account().to_string();
    match client.check_token().await {
        Ok(()) => {}
        Err(ProbeError::Rejected { reason }) => {
            return vec![Check::fail(
                TOKEN,
                format!("no access token for {account}: {reason}"),
                "the key in google.service_account_file was refused: create a new key for the \
                 service account (IAM → Service accounts → Keys; disabled or deleted keys and \
                 accounts are refused) and check the server clock",
            )];
        }
        Err(e) => {
            return vec![Check::fail(
                TOKEN,
                format!("cannot get a token: {e}"),
                format!(
                    "check google.token_url ({}) and that this host reaches it",
                    gc.token_url
                ),
            )];
        }
    }
    let mut out = vec![Check::pass(
        TOKEN,
        format!(
            "{account} got an access token (JWT grant at {})",
            gc.token_url
        ),
    )];
    if let Some(id) = &gc.template_id {
        out.push(
            file_check(
                &client,
                &account,
                TEMPLATE,
                "google.template_id",
                id,
                GOOGLE_DOC_MIME,
            )
            .await,
        );
    }
    if let Some(id) = &gc.folder_id {
        out.push(
            file_check(
                &client,
                &account,
                FOLDER,
                "google.folder_id",
                id,
                FOLDER_MIME,
            )
            .await,
        );
    }
    if let Some(calendar) = &calendar {
        out.push(calendar_check(calendar).await);
    }
    out
}

/// `calendars.get` of `google.calendar_id` with the Calendar token (as the
/// impersonated user when `google.impersonate` is set).
async fn calendar_check(calendar: &Calendar) -> Check {
    let id = calendar.calendar_id();
    let who = calendar.acting_as();
    match calendar.check().await {
        Ok(meta) => Check::pass(
            CALENDAR,
            format!(
                "{id} ({:?}) is visible to {who} (calendars.get)",
                meta.summary
            ),
        ),
        Err(ProbeError::NotFound { .. }) => Check::fail(
            CALENDAR,
            format!("{who} cannot see {id} (google.calendar_id): Calendar answers 404"),
            format!(
                "share the calendar with {who} (\"Make changes to events\"), or fix \
                 google.calendar_id"
            ),
        ),
        Err(ProbeError::Rejected { reason }) => Check::fail(
            CALENDAR,
            format!("no Calendar access as {who}: {reason}"),
            "with google.impersonate, the Workspace admin must grant the service account's \
             client ID domain-wide delegation for the scopes \
             https://www.googleapis.com/auth/calendar.events and \
             https://www.googleapis.com/auth/calendar.readonly (Admin console → Security → \
             API controls → Domain-wide delegation); without it, share the calendar with the \
             service account",
        ),
        Err(e) => Check::fail(
            CALENDAR,
            format!("cannot check {id} (google.calendar_id): {e}"),
            "check google.calendar_url and that this host reaches it",
        ),
    }
}

async fn file_check(
    client: &Google,
    account: &str,
    name: &str,
    key: &str,
    id: &str,
    mime: &str,
) -> Check {
    let what = if mime == FOLDER_MIME {
        "a Drive folder"
    } else {
        "a Google Doc"
    };
    let share = if mime == FOLDER_MIME {
        format!(
            "share the folder with {account} as Editor (or add it to the shared drive as \
             Content manager), or fix {key}"
        )
    } else {
        format!("share the doc with {account} (Viewer is enough), or fix {key}")
    };
    match client.file_meta(id).await {
        Ok(f) if f.mime_type == mime => Check::pass(
            name,
            format!("{id} ({:?}) is readable by {account} (files.get)", f.name),
        ),
        Ok(f) => Check::fail(
            name,
            format!("{id} ({:?}) is {}, not {what} ({key})", f.name, f.mime_type),
            format!("set {key} to the id of {what}"),
        ),
        Err(ProbeError::NotFound { .. }) => Check::fail(
            name,
            format!("{account} cannot read {id} ({key}): Drive answers 404"),
            share,
        ),
        Err(ProbeError::Rejected { reason }) => Check::fail(
            name,
            format!("{account} may not read {id} ({key}): {reason}"),
            share,
        ),
        Err(e) => Check::fail(
            name,
            format!("cannot check {id} ({key}): {e}"),
            "check google.drive_url and that this host reaches it",
        ),
    }
}
