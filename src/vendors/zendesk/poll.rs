//! What the poller asks Zendesk: the searches that find emergency tickets
//! (Zendesk's search syntax).

use crate::engine::Policy;

/// The searches that find emergency tickets.
pub fn queries(policy: &Policy) -> Vec<String> {
    let by_priority = policy
        .emergency_priorities
        .iter()
        .map(|p| format!("type:ticket priority:{p} status<solved"));
    let by_tag = policy
        .emergency_tags
        .iter()
        .map(|t| format!("type:ticket tags:{t} status<solved"));
    by_priority.chain(by_tag).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_query_per_emergency_criterion() {
        assert_eq!(
            queries(&Policy::default()),
            vec![
                "type:ticket priority:urgent status<solved",
                "type:ticket tags:emergency status<solved"
            ]
        );
    }
}
