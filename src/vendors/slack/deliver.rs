//! The chat's effects, delivered through Slack: a crisis announcement (with
//! its buttons) opens a thread per channel; later posts go in that thread.

use async_trait::async_trait;

use super::{Slack, SlackMessage};
use crate::engine::{Effect, Outcome, SlackThread};
use crate::render;
use crate::store::Pending;
use crate::vendors::{DeliveryError, Vendor, wrong_lane};

#[async_trait]
impl Vendor for Slack {
    async fn deliver(&self, p: &Pending) -> Result<Option<Outcome>, DeliveryError> {
        let Effect::ChatPost {
            channel,
            text,
            buttons,
        } = &p.effect
        else {
            return Err(wrong_lane("Slack", &p.effect));
        };
        let inc = &p.incident;
        let thread = inc.crisis.as_ref().and_then(|c| c.threads.get(channel));
        let msg = SlackMessage {
            channel: thread.map_or_else(|| channel.clone(), |t| t.channel_id.clone()),
            text: render::slack_cut(text, render::SLACK_TEXT_MAX),
            blocks: (*buttons && thread.is_none())
                .then(|| super::blocks::announcement_blocks(text, inc.id)),
            thread_ts: thread.map(|t| t.ts.clone()),
            marker: p.key(),
        };
        let posted = self.post(&msg, p.maybe_sent).await?;
        Ok(thread.is_none().then(|| Outcome::ChatThread {
            channel: channel.clone(),
            thread: SlackThread {
                channel_id: posted.channel,
                ts: posted.ts,
            },
        }))
    }
}
