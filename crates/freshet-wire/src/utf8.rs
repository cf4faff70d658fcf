//! Refusing query text that is not valid UTF-8 (22021), as PostgreSQL does.
//!
//! pgwire decodes the text of Query and Parse messages with
//! `String::from_utf8_lossy`, so invalid bytes would reach the engine as
//! U+FFFD and be stored as such. The decoded `String` cannot tell a
//! replacement character the client really sent from one pgwire made up, so
//! the check happens on the bytes: every connection's (decrypted) input
//! passes through [`Utf8Guard`], which follows the message framing, lets
//! every message through untouched except Query and Parse messages whose
//! text is not UTF-8. Those it rewrites into the same message with the text
//! replaced by [`MARKER`] and PostgreSQL's error message; the query handlers
//! recognize the marker ([`invalid_text_error`]) and answer 22021 in the
//! message's place in the protocol (an ErrorResponse, then ReadyForQuery or,
//! in the extended protocol, skipping to Sync), so nothing is parsed,
//! executed or stored.
//!
//! Other bytes pass through with at most one copy; bodies of other messages
//! (COPY data above all) are read straight into the decoder's buffer.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Text that starts a query the guard substituted for invalid UTF-8.
/// Noncharacters: no client sends them by accident, and a client that sends
/// them on purpose only gets its own statement refused.
pub(crate) const MARKER: &str = "\u{FFFF}\u{FFFE}freshet:invalid-utf8\u{FFFE}\u{FFFF}";

/// The 22021 error for a query the guard replaced, or `None` for real text.
pub(crate) fn invalid_text_error(query: &str) -> Option<crate::error::WireError> {
    let message = query.strip_prefix(MARKER)?;
    Some(crate::error::WireError::protocol("22021", message))
}

/// Largest message body the guard collects to check; larger ones pass
/// through unchecked, and pgwire refuses them (its own limit is lower).
const MAX_CHECKED_LEN: usize = 0x3fff_ffff;

const QUERY: u8 = b'Q';
const PARSE: u8 = b'P';

/// Where the guard is in the client's message stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Expecting the untagged start-up packet: a length, then its body.
    Startup,
    /// Expecting a message header: a type byte and a length.
    Header,
    /// Passing this many more body bytes through unexamined.
    PassThrough(usize),
    /// Collecting a whole Query or Parse message (type byte and length
    /// included) of this many bytes, to check it.
    Collect(usize),
}

/// A reader that refuses invalid UTF-8 in query text (see the module docs).
pub(crate) struct Utf8Guard<S> {
    inner: S,
    /// Bytes read from `inner` not yet examined.
    input: BytesMut,
    /// Examined bytes not yet handed to the reader.
    output: BytesMut,
    state: State,
    eof: bool,
}

impl<S> Utf8Guard<S> {
    /// Wraps a connection whose next message is the start-up packet, with
    /// `buffered` bytes already read from it.
    pub(crate) fn new(inner: S, buffered: BytesMut) -> Self {
        Utf8Guard {
            inner,
            input: buffered,
            output: BytesMut::new(),
            state: State::Startup,
            eof: false,
        }
    }

    /// Moves examined bytes from `input` to `output` as far as whole
    /// headers and checked messages allow.
    fn process(&mut self) {
        loop {
            match self.state {
                State::Startup => {
                    let Some(len) = be_u32(&self.input, 0) else {
                        return;
                    };
                    self.output.put(self.input.split_to(4));
                    self.state = body_state(len);
                }
                State::Header => {
                    let Some(len) = be_u32(&self.input, 1) else {
                        return;
                    };
                    let tag = self.input[0];
                    if matches!(tag, QUERY | PARSE) && (4..=MAX_CHECKED_LEN).contains(&len) {
                        self.state = State::Collect(1 + len);
                    } else {
                        self.output.put(self.input.split_to(5));
                        self.state = body_state(len);
                    }
                }
                State::PassThrough(remaining) => {
                    let n = remaining.min(self.input.len());
                    if n == 0 && remaining > 0 {
                        return;
                    }
                    self.output.put(self.input.split_to(n));
                    self.state = body_state_after(remaining - n);
                }
                State::Collect(total) => {
                    if self.input.len() < total {
                        return;
                    }
                    let message = self.input.split_to(total);
                    match checked_message(&message) {
                        None => self.output.put(message),
                        Some(replacement) => self.output.put(replacement.as_slice()),
                    }
                    self.state = State::Header;
                }
            }
        }
    }
}

fn be_u32(bytes: &[u8], at: usize) -> Option<usize> {
    let b = bytes.get(at..at + 4)?;
    usize::try_from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])).ok()
}

/// The state after a header announcing `len` (length field included).
fn body_state(len: usize) -> State {
    body_state_after(len.saturating_sub(4))
}

fn body_state_after(remaining: usize) -> State {
    if remaining == 0 {
        State::Header
    } else {
        State::PassThrough(remaining)
    }
}

/// A NUL-terminated string at the start of `bytes`: its bytes and the rest
/// after the NUL.
fn cstring(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = bytes.iter().position(|&b| b == 0)?;
    Some((&bytes[..end], &bytes[end + 1..]))
}

/// PostgreSQL's message for the first invalid sequence in `text`, or `None`
/// when it is valid UTF-8.
fn invalid_sequence(text: &[u8]) -> Option<String> {
    let error = std::str::from_utf8(text).err()?;
    let bad = &text[error.valid_up_to()..];
    // Like PostgreSQL, show as many bytes as the first byte announces.
    let announced = match bad.first().copied().unwrap_or(0) {
        b if b & 0xE0 == 0xC0 => 2,
        b if b & 0xF0 == 0xE0 => 3,
        b if b & 0xF8 == 0xF0 => 4,
        _ => 1,
    };
    let shown: Vec<String> = bad
        .iter()
        .take(announced)
        .map(|b| format!("0x{b:02x}"))
        .collect();
    Some(format!(
        "invalid byte sequence for encoding \"UTF8\": {}",
        shown.join(" ")
    ))
}

/// The replacement for a Query or Parse message whose text is not UTF-8, or
/// `None` when the message may pass as it is. `message` is whole: type
/// byte, length, body.
fn checked_message(message: &[u8]) -> Option<Vec<u8>> {
    let tag = message[0];
    let body = &message[5..];
    let (prefix, text, rest): (&[u8], &[u8], &[u8]) = if tag == PARSE {
        let (name, after_name) = cstring(body)?;
        let (query, rest) = cstring(after_name)?;
        // A statement name that is not UTF-8 cannot be kept; a valid one is,
        // so the client's later Bind and Describe find the failed statement.
        if let Some(error) = invalid_sequence(name) {
            return Some(rebuild(tag, b"", &error, rest));
        }
        (name, query, rest)
    } else {
        let (query, rest) = cstring(body)?;
        (b"", query, rest)
    };
    let error = invalid_sequence(text)?;
    Some(rebuild(tag, prefix, &error, rest))
}

/// A message of type `tag` whose text is the marker and `error`, after the
/// statement name `name` for Parse, followed by the original `rest`.
fn rebuild(tag: u8, name: &[u8], error: &str, rest: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    if tag == PARSE {
        body.extend_from_slice(name);
        body.push(0);
    }
    body.extend_from_slice(MARKER.as_bytes());
    body.extend_from_slice(error.as_bytes());
    body.push(0);
    body.extend_from_slice(rest);
    let mut message = Vec::with_capacity(body.len() + 5);
    message.push(tag);
    let len = u32::try_from(body.len() + 4).unwrap_or(u32::MAX);
    message.extend_from_slice(&len.to_be_bytes());
    message.extend_from_slice(&body);
    message
}

impl<S: AsyncRead + Unpin> AsyncRead for Utf8Guard<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.output.is_empty() {
                let n = this.output.len().min(buf.remaining());
                buf.put_slice(&this.output[..n]);
                this.output.advance(n);
                return Poll::Ready(Ok(()));
            }
            this.process();
            if !this.output.is_empty() {
                continue;
            }
            if this.eof {
                // A truncated message: hand over what there is, as the
                // socket would have.
                let n = this.input.len().min(buf.remaining());
                buf.put_slice(&this.input[..n]);
                this.input.advance(n);
                return Poll::Ready(Ok(()));
            }
            // A body passing through is read straight into the caller's buffer.
            if let State::PassThrough(remaining) = this.state {
                if this.input.is_empty() && remaining >= buf.remaining() {
                    let before = buf.filled().len();
                    ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
                    let n = buf.filled().len() - before;
                    if n == 0 {
                        this.eof = true;
                    }
                    this.state = body_state_after(remaining - n);
                    return Poll::Ready(Ok(()));
                }
            }
            let mut chunk = [0u8; 8192];
            let mut chunk_buf = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut chunk_buf))?;
            if chunk_buf.filled().is_empty() {
                this.eof = true;
            } else {
                this.input.extend_from_slice(chunk_buf.filled());
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Utf8Guard<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn message(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![tag];
        m.extend_from_slice(&u32::try_from(body.len() + 4).unwrap().to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    fn startup() -> Vec<u8> {
        let body = b"\x00\x03\x00\x00user\x00me\x00\x00";
        let mut m = u32::try_from(body.len() + 4)
            .unwrap()
            .to_be_bytes()
            .to_vec();
        m.extend_from_slice(body);
        m
    }

    async fn through_guard(input: Vec<u8>) -> Vec<u8> {
        let mut guard = Utf8Guard::new(std::io::Cursor::new(input), BytesMut::new());
        let mut out = Vec::new();
        guard.read_to_end(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn valid_messages_pass_unchanged() {
        let mut input = startup();
        input.extend(message(b'Q', "SELECT 'é\u{FFFD}'\0".as_bytes()));
        input.extend(message(b'd', &[0xff; 20000]));
        input.extend(message(b'P', b"s\0SELECT $1\0\x00\x01\x00\x00\x04\xa0"));
        assert_eq!(through_guard(input.clone()).await, input);
    }

    #[tokio::test]
    async fn invalid_query_text_is_replaced() {
        let mut input = startup();
        input.extend(message(b'Q', b"INSERT INTO t VALUES ('\xc3\x28')\0"));
        input.extend(message(b'S', b""));
        let out = through_guard(input).await;
        let start = startup().len();
        let len = be_u32(&out, start + 1).unwrap();
        let query = std::str::from_utf8(&out[start + 5..start + len]).unwrap();
        let error = invalid_text_error(query.trim_end_matches('\0')).unwrap();
        assert_eq!(
            error.to_string(),
            "invalid byte sequence for encoding \"UTF8\": 0xc3 0x28"
        );
        assert_eq!(&out[start + 1 + len..], message(b'S', b"").as_slice());
    }

    #[tokio::test]
    async fn invalid_parse_text_keeps_name_and_types() {
        let mut input = startup();
        input.extend(message(
            b'P',
            b"st\0SELECT '\xff'\0\x00\x01\x00\x00\x00\x19",
        ));
        let out = through_guard(input).await;
        let body = &out[startup().len() + 5..];
        let (name, rest) = cstring(body).unwrap();
        assert_eq!(name, b"st");
        let (query, types) = cstring(rest).unwrap();
        assert!(std::str::from_utf8(query).unwrap().starts_with(MARKER));
        assert_eq!(types, b"\x00\x01\x00\x00\x00\x19");
    }
}
