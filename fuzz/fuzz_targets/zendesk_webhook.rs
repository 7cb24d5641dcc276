//! `parse_zendesk` on arbitrary bytes: it must never panic, and whatever it
//! accepts must be a usable ticket (the ticket number is 1 to 20 ASCII
//! digits, every tag is a non-empty word without white space or commas,
//! whether the tags came as a string or a JSON list).
#![no_main]

use libfuzzer_sys::fuzz_target;

const BASE: &str = "https://acme.zendesk.com";

fuzz_target!(|data: &[u8]| {
    let Ok(ticket) = pagerd::vendors::zendesk::webhook::parse(data, BASE) else {
        return;
    };
    assert!(
        !ticket.id.is_empty() && ticket.id.len() <= 20,
        "ticket id {:?} is not 1 to 20 characters",
        ticket.id
    );
    assert!(
        ticket.id.bytes().all(|b| b.is_ascii_digit()),
        "ticket id {:?} is not all ASCII digits",
        ticket.id
    );
    for tag in &ticket.tags {
        assert!(!tag.is_empty(), "empty tag in {:?}", ticket.tags);
        assert!(
            !tag.contains(|c: char| c.is_whitespace() || c == ','),
            "tag {tag:?} contains white space or a comma"
        );
    }
    // The dedup key and the link are built from the id: no surprises there.
    assert!(!ticket.url.is_empty());
});
