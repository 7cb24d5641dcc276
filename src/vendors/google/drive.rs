//! Google Drive v3: the crisis doc as a file. Creating it (a copy of the
//! template or a blank Google Doc, tagged with the effect's marker in
//! `appProperties` and found again by it), sharing it, renaming it when it
//! is deprecated, and reading a file's metadata for `pagerd doctor`.
//!
//! The doc's text is Docs' business ([`super::docs`]).

use reqwest::Method;
use serde_json::{Value, json};

use super::{Doc, FileMeta, GOOGLE_DOC_MIME, Google, Grantee, MARKER_PROPERTY, enc};
use crate::vendors::{DeliveryError, ProbeError, probe_response};

/// Upper bound on `permissions.list` pages.
const MAX_PAGES: usize = 20;

impl Google {
    /// Creates the incident doc `title` holding `body`, tagged with `marker`,
    /// or returns the doc already tagged with it (filling it in if an
    /// earlier attempt stopped before writing the body).
    pub async fn create_doc(
        &self,
        title: &str,
        body: &str,
        marker: &str,
    ) -> Result<Doc, DeliveryError> {
        if let Some(doc) = self.find_by_marker(marker).await? {
            self.fill_if_blank(&doc.id, body).await?;
            return Ok(doc);
        }
        let mut meta = json!({
            "name": crate::render::drive_name(title),
            "appProperties": { MARKER_PROPERTY: marker },
        });
        if let Some(folder) = &self.settings.folder_id {
            meta["parents"] = json!([folder]);
        }
        let query = [("fields", "id,webViewLink"), ("supportsAllDrives", "true")];
        let file = match &self.settings.template_id {
            Some(template) => {
                let url = format!("{}/files/{}/copy", self.settings.drive_url, enc(template));
                let what = format!("Drive files.copy of template {template}");
                self.call(Method::POST, &url, &query, Some(&meta), &what)
                    .await?
            }
            None => {
                meta["mimeType"] = json!(GOOGLE_DOC_MIME);
                let url = format!("{}/files", self.settings.drive_url);
                self.call(
                    Method::POST,
                    &url,
                    &query,
                    Some(&meta),
                    "Drive files.create",
                )
                .await?
            }
        };
        let doc = to_doc(&file).ok_or_else(|| {
            DeliveryError::retry("Google Drive answered a new file without an id")
        })?;
        self.fill(&doc.id, body).await?;
        Ok(doc)
    }

    /// Shares a doc with `grantee` as `role` (`writer`, `commenter` or
    /// `reader`), unless it already has that role or a stronger one. Users
    /// get Drive's notification e-mail.
    pub async fn share(
        &self,
        doc_id: &str,
        grantee: &Grantee,
        role: &str,
    ) -> Result<(), DeliveryError> {
        if !["writer", "commenter", "reader"].contains(&role) {
            return Err(DeliveryError::permanent(format!(
                "Google Drive share of {doc_id}: role {role:?} is not one of writer, commenter, reader"
            )));
        }
        let url = format!(
            "{}/files/{}/permissions",
            self.settings.drive_url,
            enc(doc_id)
        );
        let mut page_token = String::new();
        for _ in 0..MAX_PAGES {
            let mut query = vec![
                (
                    "fields",
                    "nextPageToken,permissions(id,type,role,emailAddress,domain)",
                ),
                ("supportsAllDrives", "true"),
            ];
            if !page_token.is_empty() {
                query.push(("pageToken", page_token.as_str()));
            }
            let what = format!("Drive permissions.list of {doc_id}");
            let list = self.call(Method::GET, &url, &query, None, &what).await?;
            let perms = list["permissions"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            if perms.iter().any(|p| grants(p, grantee, role)) {
                return Ok(());
            }
            page_token = list["nextPageToken"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if page_token.is_empty() {
                break;
            }
        }
        let (body, notify) = match grantee {
            Grantee::Domain(domain) => (
                json!({ "type": "domain", "role": role, "domain": domain }),
                false,
            ),
            Grantee::User(email) => (
                json!({ "type": "user", "role": role, "emailAddress": email }),
                true,
            ),
        };
        let mut query = vec![("supportsAllDrives", "true"), ("fields", "id")];
        if notify {
            query.push(("sendNotificationEmail", "true"));
        }
        let what = format!("Drive permissions.create on {doc_id}");
        self.call(Method::POST, &url, &query, Some(&body), &what)
            .await?;
        Ok(())
    }

    /// Marks a doc as superseded: prefixes its name with `title_prefix`
    /// (e.g. `[DEPRECATED] `) and inserts `notice` as its first paragraph,
    /// each unless already done.
    pub async fn deprecate(
        &self,
        doc_id: &str,
        title_prefix: &str,
        notice: &str,
    ) -> Result<(), DeliveryError> {
        let url = format!("{}/files/{}", self.settings.drive_url, enc(doc_id));
        if !title_prefix.is_empty() {
            let query = [("fields", "name"), ("supportsAllDrives", "true")];
            let file = self
                .call(
                    Method::GET,
                    &url,
                    &query,
                    None,
                    &format!("Drive files.get of {doc_id}"),
                )
                .await?;
            let name = file["name"].as_str().unwrap_or_default();
            if !name.starts_with(title_prefix) {
                // The prefix must not push the name past Drive's limit.
                let body =
                    json!({ "name": crate::render::drive_name(&format!("{title_prefix}{name}")) });
                let query = [("fields", "id,name"), ("supportsAllDrives", "true")];
                self.call(
                    Method::PATCH,
                    &url,
                    &query,
                    Some(&body),
                    &format!("Drive files.update of {doc_id}"),
                )
                .await?;
            }
        }
        let notice_text = notice.trim_end_matches('\n');
        if !notice_text.is_empty() {
            let text = self.doc_text(doc_id).await?;
            if !text.starts_with(notice_text) {
                let request = json!({ "insertText": { "text": format!("{notice_text}\n"), "location": { "index": 1 } } });
                self.batch_update(doc_id, vec![request]).await?;
            }
        }
        Ok(())
    }

    /// `files.get` of `file_id` with `fields=id,name,mimeType`: whether the
    /// service account can see it. Read-only. A file it cannot see is
    /// [`ProbeError::NotFound`] (Drive answers 404 for both).
    pub async fn file_meta(&self, file_id: &str) -> Result<FileMeta, ProbeError> {
        let token = self.auth.probe().await?;
        let url = format!("{}/files/{}", self.settings.drive_url, enc(file_id));
        let resp = self
            .http
            .get(&url)
            .bearer_auth(token.expose())
            .query(&[
                ("fields", "id,name,mimeType"),
                ("supportsAllDrives", "true"),
            ])
            .send()
            .await;
        let service = format!("Google Drive files.get of {file_id}");
        let (v, _): (Value, _) = probe_response(&service, resp).await?;
        let field = |name: &str| v[name].as_str().unwrap_or_default().to_string();
        Ok(FileMeta {
            id: field("id"),
            name: field("name"),
            mime_type: field("mimeType"),
        })
    }

    async fn find_by_marker(&self, marker: &str) -> Result<Option<Doc>, DeliveryError> {
        let q = format!(
            "appProperties has {{ key='{MARKER_PROPERTY}' and value='{}' }} and trashed=false",
            escape_query(marker)
        );
        let url = format!("{}/files", self.settings.drive_url);
        let query = [
            ("q", q.as_str()),
            ("fields", "files(id,webViewLink)"),
            ("supportsAllDrives", "true"),
            ("includeItemsFromAllDrives", "true"),
        ];
        let list = self
            .call(Method::GET, &url, &query, None, "Drive files.list")
            .await?;
        Ok(list["files"]
            .as_array()
            .and_then(|files| files.iter().find_map(to_doc)))
    }
}

/// Whether a listed permission already gives `grantee` at least `role`.
fn grants(p: &Value, grantee: &Grantee, role: &str) -> bool {
    let same = match grantee {
        Grantee::Domain(d) => {
            p["type"] == "domain"
                && p["domain"]
                    .as_str()
                    .is_some_and(|x| x.eq_ignore_ascii_case(d))
        }
        Grantee::User(email) => {
            p["type"] == "user"
                && p["emailAddress"]
                    .as_str()
                    .is_some_and(|x| x.eq_ignore_ascii_case(email))
        }
    };
    same && role_rank(p["role"].as_str().unwrap_or_default()) >= role_rank(role)
}

fn role_rank(role: &str) -> u8 {
    match role {
        "owner" => 6,
        "organizer" => 5,
        "fileOrganizer" => 4,
        "writer" => 3,
        "commenter" => 2,
        "reader" => 1,
        _ => 0,
    }
}

fn to_doc(file: &Value) -> Option<Doc> {
    let id = file["id"].as_str().filter(|s| !s.is_empty())?;
    let url = file["webViewLink"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| format!("https://docs.google.com/document/d/{id}/edit"));
    Some(Doc {
        id: id.to_string(),
        url,
    })
}

/// Escapes a string literal for a Drive query (`'` and `\`).
fn escape_query(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\'', "\\'")
}
