//! How the poller reads PagerDuty: an incident's status (`GET /incidents`)
//! against what pagerd knows, as the acknowledgement or resolution it
//! means.

use super::webhook::Action;
use super::{RemoteIncident, RemoteUser};
use crate::engine::Status;

/// What PagerDuty's status of an incident tells that pagerd does not know
/// yet, with who acknowledged first; `None` when nothing new.
pub fn news(remote: &RemoteIncident, known: Status) -> Option<(Action, Option<&RemoteUser>)> {
    let action = match (remote.status.as_str(), known) {
        ("acknowledged", Status::Triggered) => Action::Acknowledged,
        ("resolved", Status::Triggered | Status::Acknowledged) => Action::Resolved,
        _ => return None,
    };
    Some((action, remote.acknowledgers.first()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(status: &str) -> RemoteIncident {
        RemoteIncident {
            id: "P1".into(),
            status: status.into(),
            acknowledgers: vec![RemoteUser {
                id: Some("PANA".into()),
                name: "Ana".into(),
            }],
        }
    }

    #[test]
    fn only_what_pagerd_does_not_know_yet_is_news() {
        let acked = remote("acknowledged");
        let (a, who) = news(&acked, Status::Triggered).unwrap();
        assert_eq!(a, Action::Acknowledged);
        assert_eq!(who.map(|w| w.name.as_str()), Some("Ana"));
        assert!(news(&remote("acknowledged"), Status::Acknowledged).is_none());
        assert_eq!(
            news(&remote("resolved"), Status::Acknowledged).unwrap().0,
            Action::Resolved
        );
        assert!(news(&remote("resolved"), Status::Resolved).is_none());
        assert!(news(&remote("triggered"), Status::Triggered).is_none());
    }
}
