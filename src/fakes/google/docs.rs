//! Docs v1: documents (create, get, batchUpdate) as plain text, and the
//! `webViewLink` target.

use super::*;

pub(super) fn document_json(f: &File) -> Value {
    let mut content = vec![json!({ "endIndex": 1, "sectionBreak": { "sectionStyle": {
        "columnSeparatorStyle": "NONE", "contentDirection": "LEFT_TO_RIGHT", "sectionType": "CONTINUOUS",
    }}})];
    let mut index = 1;
    for line in f.text.split_inclusive('\n') {
        let end = index + line.encode_utf16().count();
        content.push(json!({
            "startIndex": index,
            "endIndex": end,
            "paragraph": {
                "elements": [{ "startIndex": index, "endIndex": end, "textRun": { "content": line, "textStyle": {} } }],
                "paragraphStyle": { "namedStyleType": "NORMAL_TEXT", "direction": "LEFT_TO_RIGHT" },
            },
        }));
        index = end;
    }
    json!({
        "documentId": f.id,
        "title": f.name,
        "body": { "content": content },
        "revisionId": format!("rev-{}", f.revision),
        "suggestionsViewMode": "SUGGESTIONS_INLINE",
        "documentStyle": {},
    })
}

pub(super) async fn documents_create(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = guard(&shared, &headers, Api::Docs, "POST /v1/documents".into()).await {
        return r;
    }
    let body = match json_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let title = body
        .get("title")
        .and_then(Value::as_str)
        .unwrap_or("Untitled document")
        .to_string();
    let doc = {
        let mut inner = shared.lock();
        let id = inner.new_id("1pgd");
        let file = File {
            id,
            name: title.clone(),
            mime_type: DOC_MIME.into(),
            parents: Vec::new(),
            app_properties: BTreeMap::new(),
            trashed: false,
            text: "\n".into(),
            permissions: vec![owner_permission(&shared.client_email)],
            template: false,
            revision: 1,
        };
        let v = document_json(&file);
        inner.files.push(file);
        v
    };
    shared
        .timeline
        .say(format!("Google Docs: created doc \"{title}\""));
    axum::Json(doc).into_response()
}

pub(super) async fn documents_get(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = guard(
        &shared,
        &headers,
        Api::Docs,
        format!("GET /v1/documents/{id}"),
    )
    .await
    {
        return r;
    }
    let doc = shared
        .lock()
        .file(&id)
        .filter(|f| f.mime_type == DOC_MIME)
        .map(document_json);
    match doc {
        Some(d) => axum::Json(d).into_response(),
        None => gerr(
            404,
            "NOT_FOUND",
            "Requested entity was not found.",
            "notFound",
        ),
    }
}

pub(super) async fn documents_batch_update(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id_action): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(r) = guard(
        &shared,
        &headers,
        Api::Docs,
        format!("POST /v1/documents/{id_action}"),
    )
    .await
    {
        return r;
    }
    let Some(id) = id_action.strip_suffix(":batchUpdate") else {
        return gerr(404, "NOT_FOUND", "Method not found.", "notFound");
    };
    let body = match json_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let requests = match body.get("requests") {
        Some(Value::Array(r)) => r.clone(),
        None => Vec::new(),
        Some(_) => return bad_request("requests must be an array"),
    };
    let (replies, name, summary) = {
        let mut inner = shared.lock();
        let Some(file) = inner.file_mut(id).filter(|f| f.mime_type == DOC_MIME) else {
            return gerr(
                404,
                "NOT_FOUND",
                "Requested entity was not found.",
                "notFound",
            );
        };
        // Atomic: work on a copy, keep it only if every request applies.
        let mut text = file.text.clone();
        let mut replies = Vec::new();
        let mut summary = Vec::new();
        for (i, request) in requests.iter().enumerate() {
            match apply_request(&mut text, request) {
                Ok((reply, what)) => {
                    replies.push(reply);
                    summary.push(what);
                }
                Err(message) => return bad_request(&format!("Invalid requests[{i}].{message}")),
            }
        }
        file.text = text;
        file.revision += 1;
        (replies, file.name.clone(), summary.join(", "))
    };
    if !summary.is_empty() {
        shared
            .timeline
            .say(format!("Google Docs: edited \"{name}\": {summary}"));
    }
    axum::Json(json!({ "documentId": id, "replies": replies, "writeControl": {} })).into_response()
}

/// Applies one batchUpdate request to the body text: the reply and a few
/// words for the timeline, or the error message (after `requests[i].`).
pub(super) fn apply_request(text: &mut String, request: &Value) -> Result<(Value, String), String> {
    let obj = request.as_object().ok_or("request: must be an object")?;
    if obj.len() != 1 {
        return Err("request: exactly one kind of request must be set".into());
    }
    if let Some(r) = obj.get("insertText") {
        let insert = r["text"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or("insertText: Insert text requests must specify text to insert.")?;
        let len16 = text.encode_utf16().count();
        let offset16 = match (r.get("location"), r.get("endOfSegmentLocation")) {
            (Some(loc), None) => {
                if loc["segmentId"].as_str().is_some_and(|s| !s.is_empty()) {
                    return Err("insertText: the fake Docs API only edits the body segment".into());
                }
                let index = loc["index"]
                    .as_u64()
                    .ok_or("insertText: location.index is required")?
                    as usize;
                if index < 1 || index > len16 {
                    return Err(format!(
                        "insertText: Index {index} must be less than the end index of the referenced segment, {}.",
                        len16 + 1
                    ));
                }
                index - 1
            }
            (None, Some(_)) => len16 - 1,
            _ => {
                return Err(
                    "insertText: exactly one of location and endOfSegmentLocation must be set"
                        .into(),
                );
            }
        };
        let at = byte_at(text, offset16).ok_or("insertText: the index splits a surrogate pair")?;
        text.insert_str(at, insert);
        let n = insert.chars().count();
        return Ok((json!({}), format!("inserted {n} characters")));
    }
    if let Some(r) = obj.get("replaceAllText") {
        let find = r["containsText"]["text"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or("replaceAllText: containsText.text is required")?;
        if r["containsText"]["searchByRegex"].as_bool() == Some(true) {
            return Err("replaceAllText: the fake Docs API does not search by regex".into());
        }
        let match_case = r["containsText"]["matchCase"].as_bool().unwrap_or(false);
        let replace = r["replaceText"].as_str().unwrap_or_default();
        let (new_text, n) = replace_all(text, find, replace, match_case);
        *text = with_final_newline(&new_text);
        let reply = json!({ "replaceAllText": { "occurrencesChanged": n } });
        return Ok((reply, format!("replaced {n} × {find}")));
    }
    let name = obj.keys().next().cloned().unwrap_or_default();
    Err(format!("{name}: not implemented by the fake Docs API"))
}

/// The byte offset of a UTF-16 offset, if it falls on a character boundary.
pub(super) fn byte_at(text: &str, offset16: usize) -> Option<usize> {
    let mut n = 0;
    for (b, c) in text.char_indices() {
        if n == offset16 {
            return Some(b);
        }
        n += c.len_utf16();
        if n > offset16 {
            return None;
        }
    }
    (n == offset16).then_some(text.len())
}

/// Replaces every occurrence (ASCII case-insensitively unless `match_case`).
pub(super) fn replace_all(
    text: &str,
    find: &str,
    replace: &str,
    match_case: bool,
) -> (String, usize) {
    if match_case {
        return (text.replace(find, replace), text.matches(find).count());
    }
    let mut out = String::new();
    let mut n = 0;
    let mut i = 0;
    while i < text.len() {
        let end = i + find.len();
        if end <= text.len()
            && text.is_char_boundary(end)
            && text[i..end].eq_ignore_ascii_case(find)
        {
            out.push_str(replace);
            n += 1;
            i = end;
        } else if let Some(c) = text[i..].chars().next() {
            out.push(c);
            i += c.len_utf8();
        } else {
            break;
        }
    }
    (out, n)
}

/// The `webViewLink` target: the doc as plain text, so the demo's links open
/// something local.
pub(super) async fn view(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let doc = shared
        .lock()
        .file(&id)
        .map(|f| format!("{}\n\n{}", f.name, f.text));
    match doc {
        Some(text) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such doc").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_at_utf16_indices_and_replaces() {
        let mut t = String::from("a😀b\n");
        apply_request(
            &mut t,
            &json!({"insertText":{"text":"X","location":{"index":4}}}),
        )
        .unwrap();
        assert_eq!(t, "a😀Xb\n");
        assert!(
            apply_request(
                &mut t,
                &json!({"insertText":{"text":"X","location":{"index":3}}})
            )
            .is_err()
        );
        assert!(
            apply_request(
                &mut t,
                &json!({"insertText":{"text":"X","location":{"index":7}}})
            )
            .is_err()
        );
        apply_request(
            &mut t,
            &json!({"insertText":{"text":"!","endOfSegmentLocation":{}}}),
        )
        .unwrap();
        assert_eq!(t, "a😀Xb!\n");
        let (r, _) = apply_request(&mut t, &json!({"replaceAllText":{"replaceText":"y","containsText":{"text":"x","matchCase":false}}})).unwrap();
        assert_eq!(r["replaceAllText"]["occurrencesChanged"], 1);
        assert_eq!(t, "a😀yb!\n");
    }
}
