//! Google Docs v1: the crisis doc's text. Filling a new doc (the
//! template's placeholder, or the blank body), inserting the deprecation
//! notice at its top, appending the timeline at its end, and reading the
//! body's text to tell what an earlier attempt already wrote.

use reqwest::Method;
use serde_json::{Value, json};

use super::{Google, TEMPLATE_PLACEHOLDER, enc};
use crate::vendors::DeliveryError;

/// The first line of an appended timeline: names the incident and the
/// effect, so a retry can tell the append already happened.
pub fn timeline_marker(incident_id: i64, key: &str) -> String {
    format!("Timeline of incident {incident_id} (pagerd, {key})")
}

impl Google {
    /// Appends `marker` (one line, see [`timeline_marker`]) and `text` as
    /// new paragraphs at the end of the doc (`insertText` at
    /// `endOfSegmentLocation`). With `look_first` (an earlier attempt may
    /// have reached Docs), reads the doc first and does nothing when a
    /// paragraph is exactly `marker`: customer text elsewhere in the doc
    /// cannot fake it, since the marker is a paragraph of its own.
    pub async fn append_timeline(
        &self,
        doc_id: &str,
        marker: &str,
        text: &str,
        look_first: bool,
    ) -> Result<(), DeliveryError> {
        let marker = crate::render::doc_line(marker);
        if look_first {
            let body = self.doc_text(doc_id).await?;
            if body.lines().any(|l| l == marker) {
                return Ok(());
            }
        }
        let text = crate::render::doc_text(text);
        let appended = format!("\n{marker}\n{}", text.trim_end_matches('\n'));
        let request = json!({ "insertText": { "text": appended, "endOfSegmentLocation": {} } });
        self.batch_update(doc_id, vec![request]).await
    }

    /// Writes `body` into a doc found again by its marker, unless an earlier
    /// attempt already did.
    pub(super) async fn fill_if_blank(
        &self,
        doc_id: &str,
        body: &str,
    ) -> Result<(), DeliveryError> {
        let text = self.doc_text(doc_id).await?;
        let needed = match self.settings.template_id {
            Some(_) => text.contains(TEMPLATE_PLACEHOLDER),
            None => text.trim().is_empty(),
        };
        if needed {
            self.fill(doc_id, body).await
        } else {
            Ok(())
        }
    }

    /// Writes `body` into a fresh doc: replaces the template placeholder, or
    /// appends to the blank doc.
    pub(super) async fn fill(&self, doc_id: &str, body: &str) -> Result<(), DeliveryError> {
        let body = &crate::render::doc_text(body);
        let request = match self.settings.template_id {
            Some(_) => json!({ "replaceAllText": {
                "replaceText": body,
                "containsText": { "text": TEMPLATE_PLACEHOLDER, "matchCase": true },
            }}),
            None if body.is_empty() => return Ok(()),
            None => json!({ "insertText": { "text": body, "endOfSegmentLocation": {} } }),
        };
        self.batch_update(doc_id, vec![request]).await
    }

    pub(super) async fn batch_update(
        &self,
        doc_id: &str,
        requests: Vec<Value>,
    ) -> Result<(), DeliveryError> {
        let url = format!(
            "{}/v1/documents/{}:batchUpdate",
            self.settings.docs_url,
            enc(doc_id)
        );
        let what = format!("Docs documents.batchUpdate of {doc_id}");
        self.call(
            Method::POST,
            &url,
            &[],
            Some(&json!({ "requests": requests })),
            &what,
        )
        .await?;
        Ok(())
    }

    /// The body text of a doc (paragraph text runs, in order).
    pub(super) async fn doc_text(&self, doc_id: &str) -> Result<String, DeliveryError> {
        let url = format!("{}/v1/documents/{}", self.settings.docs_url, enc(doc_id));
        let doc = self
            .call(
                Method::GET,
                &url,
                &[],
                None,
                &format!("Docs documents.get of {doc_id}"),
            )
            .await?;
        Ok(body_text(&doc))
    }
}

/// Concatenates the text runs of a Docs `Document`'s body paragraphs.
fn body_text(doc: &Value) -> String {
    let mut out = String::new();
    for element in doc["body"]["content"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        for pe in element["paragraph"]["elements"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            if let Some(t) = pe["textRun"]["content"].as_str() {
                out.push_str(t);
            }
        }
    }
    out
}
