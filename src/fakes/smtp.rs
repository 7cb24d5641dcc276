//! A fake SMTP relay: a real, minimal SMTP server (RFC 5321) on loopback that
//! keeps every mail it accepts.
//!
//! It speaks plain SMTP only (no STARTTLS, no AUTH: `EHLO` does not offer
//! them), implements `EHLO`/`HELO`, `MAIL FROM`, `RCPT TO`, `DATA` (with
//! dot-unstuffing), `RSET`, `NOOP` and `QUIT`, answers `500` to anything
//! else and enforces line, message, recipient and idle limits. It can be
//! told to refuse the next senders ([`FakeSmtp::fail_next`]).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use super::Timeline;

/// Longest command line accepted (RFC 5321 §4.5.3.1.4 says 512 octets).
pub const MAX_LINE: usize = 1000;
/// Largest message accepted (advertised as `SIZE`).
pub const MAX_MESSAGE: usize = 10 * 1024 * 1024;
/// Most recipients per transaction.
pub const MAX_RECIPIENTS: usize = 100;
/// A connection silent this long is closed.
const IDLE: Duration = Duration::from_secs(60);

/// One accepted mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// The envelope sender (`MAIL FROM`), without angle brackets.
    pub from: String,
    /// The envelope recipients (`RCPT TO`), in order.
    pub to: Vec<String>,
    /// The `Subject:` header, RFC 2047 encoded-words decoded.
    pub subject: String,
    /// The raw DATA (headers and body), dot-unstuffed, CRLF line ends.
    pub body: String,
    /// The `Message-ID:` header as sent, e.g. `<inc-1@pagerd>`.
    pub message_id: Option<String>,
}

struct Shared {
    timeline: Timeline,
    mails: Mutex<Vec<Mail>>,
    /// The verb of every command received (`EHLO`, `NOOP`, `DATA`, …).
    commands: Mutex<Vec<String>>,
    fail_next: Mutex<VecDeque<String>>,
}

/// A running fake relay; stops when dropped.
pub struct FakeSmtp {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeSmtp {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every
        // open session too.
        self.task.abort();
    }
}

impl FakeSmtp {
    /// Starts the relay on `127.0.0.1:0`.
    pub async fn start(timeline: Timeline) -> std::io::Result<FakeSmtp> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            timeline,
            mails: Mutex::new(Vec::new()),
            commands: Mutex::new(Vec::new()),
            fail_next: Mutex::new(VecDeque::new()),
        });
        let accept_shared = shared.clone();
        let task = tokio::spawn(async move {
            let mut sessions = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        if let Ok((stream, _)) = accepted {
                            let shared = accept_shared.clone();
                            sessions.spawn(async move {
                                let _ = session(stream, &shared).await;
                            });
                        }
                    }
                    Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
                }
            }
        });
        Ok(FakeSmtp { addr, shared, task })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `smtp://127.0.0.1:PORT`, for [`crate::vendors::email::Mailer::new`].
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// Every mail accepted, in order.
    pub fn messages(&self) -> Vec<Mail> {
        lock(&self.shared.mails).clone()
    }

    /// The verb of every command received, upper-cased, in order
    /// (`EHLO`, `MAIL`, `RCPT`, `DATA`, `NOOP`, `QUIT`, …).
    pub fn commands(&self) -> Vec<String> {
        lock(&self.shared.commands).clone()
    }

    /// Answers the next `n` `MAIL FROM` commands with `reply` (a full
    /// reply line such as `451 4.3.0 try later` or `550 5.7.1 denied`)
    /// instead of accepting the sender.
    pub fn fail_next(&self, n: usize, reply: &str) {
        let mut q = lock(&self.shared.fail_next);
        q.extend(std::iter::repeat_n(reply.trim_end().to_string(), n));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reads one line (up to and including `\n`) of at most `max` bytes.
/// `Ok(None)` at end of stream; `Err(InvalidData)` for an over-long line.
async fn read_line<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    max: usize,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::new();
    let n = tokio::time::timeout(
        IDLE,
        (&mut *reader).take(max as u64).read_until(b'\n', &mut buf),
    )
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "idle"))??;
    if n == 0 {
        return Ok(None);
    }
    if !buf.ends_with(b"\n") {
        if buf.len() >= max {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "line too long",
            ));
        }
        // The peer closed mid-line.
        return Ok(None);
    }
    Ok(Some(buf))
}

/// The address in `<addr>` (and anything after it: ESMTP parameters).
fn path_arg(rest: &str) -> Option<String> {
    let rest = rest.trim_start();
    let inner = rest.strip_prefix('<')?;
    let end = inner.find('>')?;
    Some(inner[..end].trim().to_string())
}

/// Sends one reply (possibly multi-line, lines joined by CRLF).
async fn reply(w: &mut tokio::net::tcp::OwnedWriteHalf, text: &str) -> std::io::Result<()> {
    w.write_all(text.as_bytes()).await?;
    w.write_all(b"\r\n").await?;
    w.flush().await
}

async fn session(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    reply(&mut write, "220 pagerd-fake-smtp ESMTP ready").await?;
    let mut greeted = false;
    let mut from: Option<String> = None;
    let mut rcpts: Vec<String> = Vec::new();
    loop {
        let line = match read_line(&mut reader, MAX_LINE).await {
            Ok(Some(l)) => l,
            Ok(None) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                reply(&mut write, "500 5.5.2 line too long").await?;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let line = String::from_utf8_lossy(&line);
        let line = line.trim_end_matches(['\r', '\n']);
        let (verb, rest) = line.split_once(' ').unwrap_or((line, ""));
        lock(&shared.commands).push(verb.to_ascii_uppercase());
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" if !rest.trim().is_empty() => {
                greeted = true;
                from = None;
                rcpts.clear();
                let text = format!(
                    "250-pagerd-fake-smtp greets {}\r\n250-8BITMIME\r\n250-SIZE {MAX_MESSAGE}\r\n250 SMTPUTF8",
                    rest.trim()
                );
                reply(&mut write, &text).await?;
            }
            "HELO" if !rest.trim().is_empty() => {
                greeted = true;
                from = None;
                rcpts.clear();
                reply(&mut write, "250 pagerd-fake-smtp").await?;
            }
            "EHLO" | "HELO" => reply(&mut write, "501 5.5.4 domain name required").await?,
            "MAIL" => {
                let Some(addr) = rest.strip_prefix_ci("FROM:").and_then(path_arg) else {
                    reply(&mut write, "501 5.5.4 syntax: MAIL FROM:<address>").await?;
                    continue;
                };
                if !greeted {
                    reply(&mut write, "503 5.5.1 say EHLO first").await?;
                    continue;
                }
                if from.is_some() {
                    reply(&mut write, "503 5.5.1 sender already given").await?;
                    continue;
                }
                let refusal = lock(&shared.fail_next).pop_front();
                if let Some(refusal) = refusal {
                    shared.timeline.say(format!(
                        "SMTP: refused mail from {addr} with \"{refusal}\" (injected)"
                    ));
                    reply(&mut write, &refusal).await?;
                } else {
                    from = Some(addr);
                    rcpts.clear();
                    reply(&mut write, "250 2.1.0 sender ok").await?;
                }
            }
            "RCPT" => {
                let Some(addr) = rest
                    .strip_prefix_ci("TO:")
                    .and_then(path_arg)
                    .filter(|a| !a.is_empty())
                else {
                    reply(&mut write, "501 5.5.4 syntax: RCPT TO:<address>").await?;
                    continue;
                };
                if from.is_none() {
                    reply(&mut write, "503 5.5.1 need MAIL before RCPT").await?;
                } else if rcpts.len() >= MAX_RECIPIENTS {
                    reply(&mut write, "452 4.5.3 too many recipients").await?;
                } else if !addr.contains('@') {
                    reply(&mut write, "553 5.1.3 address must be user@domain").await?;
                } else {
                    rcpts.push(addr);
                    reply(&mut write, "250 2.1.5 recipient ok").await?;
                }
            }
            "DATA" => {
                let Some(sender) = from.clone().filter(|_| !rcpts.is_empty()) else {
                    reply(&mut write, "503 5.5.1 need MAIL and RCPT before DATA").await?;
                    continue;
                };
                reply(&mut write, "354 end data with <CR><LF>.<CR><LF>").await?;
                let Some(data) = read_data(&mut reader).await? else {
                    return Ok(());
                };
                let Some(data) = data else {
                    reply(&mut write, "552 5.3.4 message too big").await?;
                    from = None;
                    rcpts.clear();
                    continue;
                };
                let mail = parse_mail(sender, std::mem::take(&mut rcpts), data);
                shared.timeline.say(format!(
                    "SMTP: mail to {}: \"{}\"",
                    mail.to.join(", "),
                    mail.subject
                ));
                let n = {
                    let mut mails = lock(&shared.mails);
                    mails.push(mail);
                    mails.len()
                };
                from = None;
                reply(&mut write, &format!("250 2.0.0 queued as fake-{n}")).await?;
            }
            "RSET" => {
                from = None;
                rcpts.clear();
                reply(&mut write, "250 2.0.0 reset").await?;
            }
            "NOOP" => reply(&mut write, "250 2.0.0 ok").await?,
            "QUIT" => {
                reply(&mut write, "221 2.0.0 bye").await?;
                return Ok(());
            }
            _ => reply(&mut write, "500 5.5.2 command not recognized").await?,
        }
    }
}

/// Reads DATA up to the lone `.` line, undoing dot-stuffing. `Ok(None)`:
/// the peer went away; `Ok(Some(None))`: the message exceeded
/// [`MAX_MESSAGE`] (read to its end and dropped).
async fn read_data<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
) -> std::io::Result<Option<Option<String>>> {
    let mut data: Vec<u8> = Vec::new();
    let mut too_big = false;
    loop {
        // Body lines may be long (base64 is 76, but a sloppy client may
        // send more); the whole message is bounded anyway.
        let Some(line) = read_line(reader, MAX_MESSAGE + 3).await? else {
            return Ok(None);
        };
        if line == b".\r\n" || line == b".\n" {
            break;
        }
        let line = line.strip_prefix(b".").unwrap_or(&line);
        if data.len() + line.len() > MAX_MESSAGE {
            too_big = true;
            data.clear();
        }
        if !too_big {
            data.extend_from_slice(line);
        }
    }
    if too_big {
        return Ok(Some(None));
    }
    Ok(Some(Some(String::from_utf8_lossy(&data).into_owned())))
}

/// Builds the record: the headers the tests care about, unfolded.
fn parse_mail(from: String, to: Vec<String>, body: String) -> Mail {
    let head = body
        .split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .replace("\r\n ", " ")
        .replace("\r\n\t", " ");
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    let subject = header("Subject")
        .map(|s| decode_words(&s))
        .unwrap_or_default();
    let message_id = header("Message-ID");
    Mail {
        from,
        to,
        subject,
        body,
        message_id,
    }
}

/// Decodes RFC 2047 encoded-words (`=?utf-8?b?…?=`, `=?utf-8?q?…?=`);
/// whitespace between two encoded-words is dropped, as the RFC says.
fn decode_words(s: &str) -> String {
    let mut out = String::new();
    let mut last_was_word = false;
    for (i, token) in s.split(' ').enumerate() {
        let decoded = decode_word(token);
        if i > 0 && !(last_was_word && decoded.is_some()) {
            out.push(' ');
        }
        last_was_word = decoded.is_some();
        out.push_str(decoded.as_deref().unwrap_or(token));
    }
    out
}

fn decode_word(token: &str) -> Option<String> {
    let inner = token.strip_prefix("=?")?.strip_suffix("?=")?;
    let mut parts = inner.splitn(3, '?');
    let charset = parts.next()?;
    let encoding = parts.next()?;
    let text = parts.next()?;
    if !charset.eq_ignore_ascii_case("utf-8") && !charset.eq_ignore_ascii_case("us-ascii") {
        return None;
    }
    let bytes = match encoding {
        "b" | "B" => base64::engine::general_purpose::STANDARD
            .decode(text)
            .ok()?,
        "q" | "Q" => {
            let mut out = Vec::new();
            let b = text.as_bytes();
            let mut i = 0;
            while i < b.len() {
                match b[i] {
                    b'_' => out.push(b' '),
                    b'=' if i + 2 < b.len() => {
                        out.push(
                            u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).ok()?, 16)
                                .ok()?,
                        );
                        i += 2;
                    }
                    c => out.push(c),
                }
                i += 1;
            }
            out
        }
        _ => return None,
    };
    String::from_utf8(bytes).ok()
}

/// `strip_prefix`, ignoring ASCII case (SMTP verbs and keywords).
trait StripPrefixCi {
    fn strip_prefix_ci(&self, prefix: &str) -> Option<&str>;
}

impl StripPrefixCi for str {
    fn strip_prefix_ci(&self, prefix: &str) -> Option<&str> {
        let head = self.get(..prefix.len())?;
        head.eq_ignore_ascii_case(prefix)
            .then(|| &self[prefix.len()..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn talk(addr: SocketAddr, script: &str) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(script.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn speaks_smtp() {
        let smtp = FakeSmtp::start(Timeline::default()).await.unwrap();
        let out = talk(
            smtp.addr(),
            "HELO x\r\nNOOP\r\nFOO\r\nRCPT TO:<a@b>\r\nMAIL FROM:<s@x>\r\nRCPT TO:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n\
             Subject: =?utf-8?b?UDEg4oCT?= =?utf-8?q?_db?= down\r\nMessage-ID: <m1@pagerd>\r\n\r\n..dot\r\nline\r\n.\r\nQUIT\r\n",
        )
        .await;
        let codes: Vec<&str> = out.lines().map(|l| &l[..3]).collect();
        assert_eq!(
            codes,
            [
                "220", "250", "250", "500", "503", "250", "250", "250", "354", "250", "221"
            ],
            "{out}"
        );
        let m = &smtp.messages()[0];
        assert_eq!(m.from, "s@x");
        assert_eq!(m.to, ["a@b", "c@d"]);
        assert_eq!(m.subject, "P1 – db down");
        assert_eq!(m.message_id.as_deref(), Some("<m1@pagerd>"));
        assert!(m.body.ends_with("\r\n\r\n.dot\r\nline\r\n"), "{:?}", m.body);
    }

    #[tokio::test]
    async fn ehlo_is_multiline_and_long_lines_are_refused() {
        let smtp = FakeSmtp::start(Timeline::default()).await.unwrap();
        let out = talk(smtp.addr(), "EHLO me\r\nRSET\r\nQUIT\r\n").await;
        assert!(out.contains("250-pagerd-fake-smtp greets me\r\n"), "{out}");
        assert!(!out.contains("STARTTLS") && !out.contains("AUTH"));
        let long = format!("NOOP {}\r\n", "x".repeat(MAX_LINE));
        let out = talk(smtp.addr(), &long).await;
        assert!(out.ends_with("500 5.5.2 line too long\r\n"), "{out}");
    }
}
