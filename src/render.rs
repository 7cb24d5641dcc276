//! Rendering customer-controlled text for every destination: the one place
//! that knows how each sink reads text, and how much of it it takes.
//!
//! Ticket titles, requester names and e-mails, organisations, tags, and the
//! names of responders (from Slack, PagerDuty or the CLI) are *data*: they
//! are shown, never interpreted. Each sink gets its own function:
//!
//! | sink | function | what it does | limit |
//! |---|---|---|---|
//! | Slack mrkdwn | [`slack`], [`slack_field`], [`slack_link`] | `&`, `<`, `>` escaped as Slack documents, so no `<!channel>`, `<@U…>`, `<#C…>` or `<url\|label>` from customer text | [`SLACK_TEXT_MAX`], [`SLACK_SECTION_MAX`] |
//! | Slack plain_text / values | [`slack_plain`] | controls removed | [`SLACK_HEADER_MAX`], [`SLACK_BUTTON_VALUE_MAX`] |
//! | cutting Slack text | [`slack_cut`] | never halves `&amp;` or a `<…>` of pagerd's | any |
//! | Google Drive file name | [`drive_name`] | one line, no controls | [`DRIVE_NAME_MAX`] |
//! | Google Docs body | [`doc_text`], [`doc_line`] | plain text, controls other than newline and tab removed | — |
//! | Google Calendar event | [`calendar_title`], [`calendar_description`] | one-line title; the description (which Calendar reads as HTML) with `&`, `<`, `>` escaped | [`CALENDAR_TITLE_MAX`], [`CALENDAR_DESCRIPTION_MAX`] |
//! | GitLab issue | [`gitlab_title`], [`gitlab_description`] | one-line title; the description is pagerd's Markdown, controls removed | [`GITLAB_TITLE_MAX`], [`GITLAB_DESCRIPTION_MAX`] |
//! | e-mail | [`email_subject`], [`email_line`], [`email_body`] | no CR/LF in the subject (header injection) | [`EMAIL_SUBJECT_MAX`] |
//! | PagerDuty | [`pagerduty_summary`], [`pagerduty_note`], [`pagerduty_detail`] | plain text | [`PAGERDUTY_SUMMARY_MAX`], [`PAGERDUTY_NOTE_MAX`], [`PAGERDUTY_DETAIL_MAX`] |
//! | Zendesk comment `body` | [`zendesk`] | Markdown (Zendesk renders `body` as Markdown) backslash-escaped, one line | [`ZENDESK_FIELD_MAX`] |
//! | terminal (CLI) | [`terminal`], [`terminal_lines`] | C0/C1 controls, ESC, DEL and bidi overrides shown as `\u{fffd}` | — |
//!
//! Lengths are counted in Unicode scalar values (`char`s), which is how the
//! vendors count characters for these limits; a cut text ends with `…`.

/// Slack: longest message `text` (`msg_too_long` beyond).
pub const SLACK_TEXT_MAX: usize = 40_000;
/// Slack: longest `text` of a section block (`invalid_blocks` beyond).
pub const SLACK_SECTION_MAX: usize = 3_000;
/// Slack: longest `text` of a header block.
pub const SLACK_HEADER_MAX: usize = 150;
/// Slack: longest `value` of a button.
pub const SLACK_BUTTON_VALUE_MAX: usize = 2_000;
/// Slack: longest `text` of a button.
pub const SLACK_BUTTON_TEXT_MAX: usize = 75;
/// pagerd's cap on a ticket title within a Slack message (after escaping),
/// so an announcement fits a section block whole.
pub const SLACK_TITLE_MAX: usize = 1_000;
/// pagerd's cap on a name (customer, responder) within a Slack message.
pub const SLACK_NAME_MAX: usize = 200;
/// Google Drive: longest file name.
pub const DRIVE_NAME_MAX: usize = 255;
/// pagerd's cap on a Google Calendar event title.
pub const CALENDAR_TITLE_MAX: usize = 1_024;
/// pagerd's cap on a Google Calendar event description (before escaping;
/// Calendar keeps about 8 000 characters).
pub const CALENDAR_DESCRIPTION_MAX: usize = 6_000;
/// GitLab: longest issue title.
pub const GITLAB_TITLE_MAX: usize = 255;
/// GitLab: longest issue description.
pub const GITLAB_DESCRIPTION_MAX: usize = 1_048_576;
/// E-mail: longest subject pagerd sends.
pub const EMAIL_SUBJECT_MAX: usize = 200;
/// PagerDuty Events API: longest `payload.summary`.
pub const PAGERDUTY_SUMMARY_MAX: usize = 1_024;
/// pagerd's cap on a PagerDuty note.
pub const PAGERDUTY_NOTE_MAX: usize = 10_000;
/// pagerd's cap on one `custom_details` value of a page (the whole event
/// must stay well under the Events API's 512 KB).
pub const PAGERDUTY_DETAIL_MAX: usize = 4_096;
/// pagerd's cap on customer text within a Zendesk comment.
pub const ZENDESK_FIELD_MAX: usize = 1_000;

const ELLIPSIS: char = '…';
const REPLACEMENT: char = '\u{fffd}';

/// At most `max` characters of `s`, with `…` when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    if max > 0 {
        out.push(ELLIPSIS);
    }
    out
}

/// Bidirectional formatting characters: they reorder what a reader sees
/// ("Trojan Source"), so the terminal shows them as `\u{fffd}`.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Unicode line and paragraph separators: line breaks to most renderers.
fn is_line_separator(c: char) -> bool {
    matches!(c, '\u{2028}' | '\u{2029}' | '\u{85}')
}

/// `s` on one line: every control character (newline included) and line
/// separator becomes a space.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() || is_line_separator(c) {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// `s` with control characters other than newline and tab removed (CR
/// too: a lone CR would rewrite a line on some renderers).
fn text_block(s: &str) -> String {
    s.chars()
        .filter(|&c| c == '\n' || c == '\t' || !c.is_control())
        .collect()
}

// ---- Slack ------------------------------------------------------------------

/// Customer text as Slack mrkdwn that shows it: `&`, `<` and `>` escaped
/// (Slack's documented escaping), control characters other than newline and
/// tab removed. With `<` escaped, no special sequence (`<!channel>`,
/// `<!everyone>`, `<!here>`, `<@U…>`, `<#C…>`, `<url|label>`) can start.
pub fn slack(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c if c == '\n' || c == '\t' || !c.is_control() => out.push(c),
            _ => {}
        }
    }
    out
}

/// One line of customer text for a Slack message, escaped ([`slack`]) and
/// cut to `max` characters of mrkdwn.
pub fn slack_field(s: &str, max: usize) -> String {
    slack_cut(&slack(&one_line(s)), max)
}

/// A list of names (responders) for Slack, each escaped, at most `max`
/// characters in all.
pub fn slack_names(names: &[String], max: usize) -> String {
    let escaped: Vec<String> = names
        .iter()
        .map(|n| slack_field(n, SLACK_NAME_MAX))
        .collect();
    slack_cut(&escaped.join(", "), max)
}

/// pagerd's own link: `<url|label>` when `url` is an `http(s)` URL (with
/// `&`, `<`, `>`, `|`, white space and controls made harmless), else the
/// label alone. The label is escaped like customer text.
pub fn slack_link(url: &str, label: &str) -> String {
    let label = slack_field(label, SLACK_NAME_MAX);
    let Some(url) = slack_url(url) else {
        return label;
    };
    format!("<{url}|{label}>")
}

/// An `http(s)` URL made safe inside `<…|…>`: `&` as `&amp;` (as Slack
/// asks), and `<`, `>`, `|`, white space and controls percent-encoded.
fn slack_url(url: &str) -> Option<String> {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if !(lower.starts_with("https://") || lower.starts_with("http://")) {
        return None;
    }
    let mut out = String::with_capacity(url.len());
    for c in url.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' | '>' | '|' | '"' | '`' => out.push_str(&format!("%{:02X}", u32::from(c))),
            c if c.is_whitespace() || c.is_control() || is_bidi_control(c) => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
            c => out.push(c),
        }
    }
    Some(out)
}

/// Plain-text for a Slack `plain_text` object or a value (no mrkdwn is
/// parsed there): one line, at most `max` characters.
pub fn slack_plain(s: &str, max: usize) -> String {
    truncate(&one_line(s), max)
}

/// At most `max` characters of Slack mrkdwn, ending with `…` when cut, and
/// never cutting an escape (`&amp;`, `&lt;`, `&gt;`) or a `<…>` sequence
/// in half: a partial one is dropped whole.
pub fn slack_cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let keep = max.saturating_sub(1);
    let end = s.char_indices().nth(keep).map_or(s.len(), |(i, _)| i);
    let mut head = &s[..end];
    // An entity is at most 5 characters (`&amp;`): an `&` without its `;`
    // near the end was cut.
    if let Some(amp) = head.rfind('&')
        && !head[amp..].contains(';')
    {
        head = &head[..amp];
    }
    // A `<` without its `>` was cut (only pagerd's own markup has `<`).
    if let Some(lt) = head.rfind('<')
        && !head[lt..].contains('>')
    {
        head = &head[..lt];
    }
    let mut out = head.to_string();
    if max > 0 {
        out.push(ELLIPSIS);
    }
    out
}

// ---- Google -----------------------------------------------------------------

/// A Google Drive file name: one line, no controls, at most
/// [`DRIVE_NAME_MAX`] characters.
pub fn drive_name(s: &str) -> String {
    truncate(one_line(s).trim(), DRIVE_NAME_MAX)
}

/// Google Docs body text: plain text with control characters other than
/// newline and tab removed (Docs strips most of them anyway), and the
/// Private Use Area, which Docs strips too.
pub fn doc_text(s: &str) -> String {
    text_block(s)
        .chars()
        .filter(|c| !('\u{e000}'..='\u{f8ff}').contains(c))
        .collect()
}

/// One line of customer text within a doc (a newline would start a
/// paragraph of the customer's making).
pub fn doc_line(s: &str) -> String {
    doc_text(&one_line(s))
}

// ---- Google Calendar ---------------------------------------------------------

/// A Calendar event title: one line, no controls, at most
/// [`CALENDAR_TITLE_MAX`] characters.
pub fn calendar_title(s: &str) -> String {
    truncate(one_line(s).trim(), CALENDAR_TITLE_MAX)
}

/// A Calendar event description. Calendar reads it as HTML, so `&`, `<`
/// and `>` are escaped: text stays text, no link or markup can be
/// smuggled in. Controls other than newline and tab are removed; at most
/// [`CALENDAR_DESCRIPTION_MAX`] characters before escaping.
pub fn calendar_description(s: &str) -> String {
    truncate(&text_block(s), CALENDAR_DESCRIPTION_MAX)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

// ---- GitLab -----------------------------------------------------------------

/// A GitLab issue title: one line, no controls, at most
/// [`GITLAB_TITLE_MAX`] characters.
pub fn gitlab_title(s: &str) -> String {
    truncate(one_line(s).trim(), GITLAB_TITLE_MAX)
}

/// A GitLab issue description: pagerd's own Markdown (customer text in it
/// was escaped where it was written), controls other than newline and tab
/// removed, at most [`GITLAB_DESCRIPTION_MAX`] characters.
pub fn gitlab_description(s: &str) -> String {
    truncate(&text_block(s), GITLAB_DESCRIPTION_MAX)
}

// ---- E-mail -----------------------------------------------------------------

/// An e-mail subject: no CR, LF or other control (no header injection), at
/// most [`EMAIL_SUBJECT_MAX`] characters.
pub fn email_subject(s: &str) -> String {
    truncate(&one_line(s), EMAIL_SUBJECT_MAX)
}

/// One line of customer text within an e-mail body.
pub fn email_line(s: &str) -> String {
    one_line(s)
}

/// A plain-text e-mail body: control characters other than newline and tab
/// removed.
pub fn email_body(s: &str) -> String {
    text_block(s)
}

// ---- PagerDuty --------------------------------------------------------------

/// A page's `summary`: one line, at most [`PAGERDUTY_SUMMARY_MAX`].
pub fn pagerduty_summary(s: &str) -> String {
    truncate(&one_line(s), PAGERDUTY_SUMMARY_MAX)
}

/// A note on a PagerDuty incident: plain text, at most
/// [`PAGERDUTY_NOTE_MAX`].
pub fn pagerduty_note(s: &str) -> String {
    truncate(&text_block(s), PAGERDUTY_NOTE_MAX)
}

/// One `custom_details` value: one line, at most [`PAGERDUTY_DETAIL_MAX`].
pub fn pagerduty_detail(s: &str) -> String {
    truncate(&one_line(s), PAGERDUTY_DETAIL_MAX)
}

// ---- Zendesk ----------------------------------------------------------------

/// Customer text within a Zendesk comment `body`. Zendesk renders `body`
/// as Markdown (HTML goes in `html_body`, which pagerd never sends), so the
/// characters that start Markdown or inline HTML are backslash-escaped;
/// `{` and `}` too, so a name cannot smuggle a `{placeholder}` into a
/// template. One line, at most [`ZENDESK_FIELD_MAX`] characters before
/// escaping.
pub fn zendesk(s: &str) -> String {
    let line = truncate(one_line(s).trim(), ZENDESK_FIELD_MAX);
    let mut out = String::with_capacity(line.len());
    for c in line.chars() {
        if matches!(
            c,
            '\\' | '`'
                | '*'
                | '_'
                | '['
                | ']'
                | '<'
                | '>'
                | '!'
                | '#'
                | '|'
                | '~'
                | '{'
                | '}'
                | '('
                | ')'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// pagerd's cap on one piece of customer text in an issue description.
pub const GITLAB_FIELD_MAX: usize = 1_000;

/// Customer text within a GitLab issue description (GitLab Flavored
/// Markdown): escaped like [`zendesk`], and `@` followed by a word joiner
/// (U+2060) so `@all` or `@someone` mention nobody (GitLab resolves
/// references after Markdown, so a backslash would not stop them).
pub fn gitlab(s: &str) -> String {
    zendesk(&truncate(s, GITLAB_FIELD_MAX)).replace('@', "@\u{2060}")
}

// ---- Terminal ---------------------------------------------------------------

fn terminal_char(c: char, keep_newline: bool) -> char {
    if (keep_newline && c == '\n')
        || !(c.is_control() || is_bidi_control(c) || is_line_separator(c))
    {
        c
    } else if is_line_separator(c) || c == '\n' || c == '\t' {
        ' '
    } else {
        REPLACEMENT
    }
}

/// One line for the operator's terminal: C0 and C1 controls (ESC
/// included), DEL and bidi overrides shown as `\u{fffd}`; newline and tab
/// become spaces.
pub fn terminal(s: &str) -> String {
    s.chars().map(|c| terminal_char(c, false)).collect()
}

/// Like [`terminal`], keeping newlines (for multi-line messages).
pub fn terminal_lines(s: &str) -> String {
    s.chars().map(|c| terminal_char(c, true)).collect()
}

/// JSON for the terminal: pretty-printed, with every character
/// [`terminal`] would replace written as a `\uXXXX` escape instead (JSON
/// escapes C0 controls itself, but not DEL, C1 controls or bidi
/// overrides). Still valid JSON, with the same value.
pub fn terminal_json(v: &serde_json::Value) -> String {
    let pretty = format!("{v:#}");
    let mut out = String::with_capacity(pretty.len());
    for c in pretty.chars() {
        if c != '\n' && terminal_char(c, true) != c {
            // Outside strings, pretty JSON holds only newlines and spaces;
            // anything else replaced sits inside a string.
            let mut buf = [0u16; 2];
            for unit in c.encode_utf16(&mut buf) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_and_gitlab_text_is_shown_not_run() {
        assert_eq!(
            calendar_description("<a href=\"https://evil.example\">join</a> & \u{1b}[2Jbye\n"),
            "&lt;a href=\"https://evil.example\"&gt;join&lt;/a&gt; &amp; [2Jbye\n"
        );
        assert_eq!(
            calendar_title("Hand-off\nincident 4"),
            "Hand-off incident 4"
        );
        let long = "x".repeat(300);
        assert_eq!(gitlab_title(&long).chars().count(), GITLAB_TITLE_MAX);
        assert_eq!(gitlab_description("- [ ] a\r\n- [ ] b"), "- [ ] a\n- [ ] b");
    }

    #[test]
    fn slack_shows_special_sequences_instead_of_running_them() {
        let t = slack("<!channel> DB down <https://evil.example/ack|Click here> & <@U123>");
        assert_eq!(
            t,
            "&lt;!channel&gt; DB down &lt;https://evil.example/ack|Click here&gt; &amp; &lt;@U123&gt;"
        );
        assert!(!t.contains('<') && !t.contains('>'));
        assert_eq!(slack("a\u{1b}[2Jb\nc\td\r"), "a[2Jb\nc\td");
    }

    #[test]
    fn slack_links_stay_links_and_hostile_urls_cannot_break_out() {
        assert_eq!(
            slack_link("https://acme.zendesk.com/agent/tickets/4711", "#4711"),
            "<https://acme.zendesk.com/agent/tickets/4711|#4711>"
        );
        assert_eq!(
            slack_link("https://x.test/a?b=1&c=<2>|evil me", "#1"),
            "<https://x.test/a?b=1&amp;c=%3C2%3E%7Cevil%20me|#1>"
        );
        assert_eq!(slack_link("javascript:alert(1)", "<#1>"), "&lt;#1&gt;");
    }

    #[test]
    fn slack_cut_keeps_escapes_whole() {
        let s = slack("a&b");
        assert_eq!(s, "a&amp;b");
        for max in 0..=s.chars().count() + 1 {
            let cut = slack_cut(&s, max);
            assert!(cut.chars().count() <= max, "{max}: {cut}");
            let body = cut.trim_end_matches('…');
            if let Some(i) = body.rfind('&') {
                assert!(body[i..].starts_with("&amp;"), "{max}: {cut}");
            }
        }
        assert_eq!(slack_cut("x <https://a|#1> y", 8), "x …");
        assert_eq!(slack_cut("abcdef", 4), "abc…");
    }

    #[test]
    fn one_line_sinks_have_no_line_breaks() {
        let hostile = "Down\r\nBcc: all@corp.test\u{2028}x\u{85}y";
        for out in [
            email_subject(hostile),
            pagerduty_summary(hostile),
            drive_name(hostile),
            email_line(hostile),
            doc_line(hostile),
            zendesk(hostile),
            terminal(hostile),
        ] {
            assert!(!out.contains(['\r', '\n', '\u{2028}', '\u{85}']), "{out:?}");
        }
        assert_eq!(email_subject(&"x".repeat(500)).chars().count(), 200);
        assert_eq!(drive_name(&"x".repeat(500)).chars().count(), 255);
        assert_eq!(pagerduty_summary(&"x".repeat(5000)).chars().count(), 1024);
    }

    #[test]
    fn zendesk_markdown_and_placeholders_are_escaped() {
        assert_eq!(
            zendesk("[click](https://evil) <b>{requester}</b>"),
            "\\[click\\]\\(https://evil\\) \\<b\\>\\{requester\\}\\</b\\>"
        );
        assert_eq!(zendesk("Dana\n# Heading"), "Dana \\# Heading");
    }

    #[test]
    fn terminal_replaces_escapes_c1_and_bidi() {
        let t = terminal("a\u{1b}[2Jb\u{9b}c\u{202e}d\u{7f}e\nf");
        assert_eq!(t, "a\u{fffd}[2Jb\u{fffd}c\u{fffd}d\u{fffd}e f");
        assert_eq!(terminal_lines("a\nb\u{1b}"), "a\nb\u{fffd}");
    }

    #[test]
    fn terminal_json_stays_json() {
        let v = serde_json::json!({"t": "a\u{1b}[2J\u{9b}\u{202e}\u{2028}b\n"});
        let s = terminal_json(&v);
        assert!(
            s.chars().all(|c| c == '\n' || terminal_char(c, true) == c),
            "{s}"
        );
        assert_eq!(serde_json::from_str::<serde_json::Value>(&s).ok(), Some(v));
    }

    #[test]
    fn docs_keep_newlines_and_tabs_only() {
        assert_eq!(doc_text("a\u{0}b\nc\td\u{b}e\u{e000}"), "ab\nc\tde");
    }
}
