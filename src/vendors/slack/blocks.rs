//! What pagerd shows in Slack beyond the engine's texts: the Block Kit of a
//! crisis announcement (text and buttons) and the answers to `/pagerd`.
//! Customer text in them goes through [`crate::render`]'s Slack functions.

use serde_json::{Value, json};

use super::actions::ACTION_PREFIX;
use crate::engine::{Incident, Status};
use crate::render;

/// Cap on a title in `/pagerd status` (20 incidents fit one message).
const STATUS_TITLE_MAX: usize = 300;

/// The Acknowledge / Escalate / Join / Resolve buttons of a crisis
/// announcement under its text, within Slack's block limits.
pub fn announcement_blocks(text: &str, incident: i64) -> Value {
    let button = |label: &str, action: &str, style: Option<&str>| {
        let mut b = json!({
            "type": "button",
            "text": { "type": "plain_text", "text": render::slack_plain(label, render::SLACK_BUTTON_TEXT_MAX) },
            "action_id": format!("{ACTION_PREFIX}{action}"),
            "value": render::slack_plain(&incident.to_string(), render::SLACK_BUTTON_VALUE_MAX),
        });
        if let Some(s) = style {
            b["style"] = json!(s);
        }
        b
    };
    json!([
        { "type": "section", "text": { "type": "mrkdwn", "text": render::slack_cut(text, render::SLACK_SECTION_MAX) } },
        { "type": "actions", "block_id": format!("pagerd_incident_{incident}"), "elements": [
            button("Acknowledge", "ack", Some("primary")),
            button("Escalate to level 2", "escalate", Some("danger")),
            button("Join", "join", None),
            button("Resolve", "resolve", None),
        ]},
    ])
}

/// An answer only the user sees; `text` is mrkdwn, cut to Slack's limit.
pub fn ephemeral(text: &str) -> Value {
    json!({ "response_type": "ephemeral", "text": render::slack_cut(text, render::SLACK_TEXT_MAX) })
}

/// `/pagerd status`: one line per open incident.
pub fn status(open: &[Incident]) -> String {
    if open.is_empty() {
        return "No open emergencies.".into();
    }
    open.iter()
        .map(|i| {
            let who = match (&i.status, &i.acked) {
                (Status::Acknowledged, Some((by, _))) => format!(
                    "acknowledged by {}",
                    render::slack_field(by, render::SLACK_NAME_MAX)
                ),
                _ => "NOT acknowledged".into(),
            };
            format!(
                "• {} — #{} {} ({}), level {}, {who}",
                i.id,
                i.ticket.id,
                render::slack_field(&i.ticket.title, STATUS_TITLE_MAX),
                render::slack_field(i.ticket.customer(), render::SLACK_NAME_MAX),
                i.level
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The answer to `/pagerd VERB ID`: done, or nothing to do and why; and
/// when the action declared a crisis, that it did.
pub fn command_answer(verb: &str, id: i64, ignored: Option<&str>, crisis: Option<&str>) -> String {
    let mut text = match ignored {
        Some(reason) => format!(
            "Nothing to do for incident {id}: {}.",
            render::slack(reason)
        ),
        None => format!(
            "Done: {} on incident {id}.",
            render::slack_field(verb, render::SLACK_NAME_MAX)
        ),
    };
    if let Some(why) = crisis {
        text.push_str(&format!(
            "\n:rotating_light: This declared a *crisis* ({}): the crisis doc and announcements follow.",
            render::slack_field(why, render::SLACK_NAME_MAX)
        ));
    }
    text
}
