//! The payShield host-command wire format: frames, headers, command and response codes.
//!
//! Why this exists: the server, the client and the fuzzers share one definition of a message.
//!
//! ```text
//! request  = LEN(2, big-endian) HEADER(h) COMMAND(2) BODY
//! response = LEN(2, big-endian) HEADER(h) RESPONSE(2) ERROR(2) BODY
//! ```
//! `h` is configurable (default 4 characters); the header is echoed so a client can pipeline
//! requests on one connection and match responses by header. The response code is the command
//! code with its second character advanced by one (`NC`→`ND`, `CA`→`CB`, `M6`→`M7`).
//!
//! Bodies are read with [`Fields`], a cursor whose every accessor checks the length first and
//! returns error 15 on shortage: peer input can never cause a panic. A frame longer than
//! [`FRAME_LEN_MAX`] or shorter than header + command is refused.

use crate::error::HsmError;
use crate::keys::KeyToken;

/// Default header length (characters).
pub const HEADER_LEN_DEFAULT: usize = 4;
/// Largest accepted frame payload (bytes after the length prefix).
pub const FRAME_LEN_MAX: usize = 32 * 1024 + 256;

/// A decoded request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Echoed header.
    pub header: Vec<u8>,
    /// Two-character command code.
    pub command: [u8; 2],
    /// Command body.
    pub body: Vec<u8>,
}

/// A response about to be encoded or just decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// Echoed header.
    pub header: Vec<u8>,
    /// Response code (command code with the second character advanced).
    pub code: [u8; 2],
    /// Two-character error code (`00` = success).
    pub error: [u8; 2],
    /// Response body (empty on error).
    pub body: Vec<u8>,
}

/// The response code for a command code.
pub fn response_code(command: [u8; 2]) -> [u8; 2] {
    [command[0], command[1].wrapping_add(1)]
}

/// A validation-data or offset field: `value` right-padded with `F` to 12 characters (payShield
/// DA, EA, BK, DE).
pub fn f_padded_12(value: &str) -> String {
    format!("{value:F<12}")
}

/// Split one frame off the front of `buf`: `Ok(Some((payload, consumed)))` when complete,
/// `Ok(None)` when more bytes are needed, error 80 when the declared length is out of bounds.
pub fn split_frame(buf: &[u8]) -> Result<Option<(&[u8], usize)>, HsmError> {
    let Some(len_bytes) = buf.get(..2) else {
        return Ok(None);
    };
    let len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
    if len == 0 || len > FRAME_LEN_MAX {
        return Err(HsmError::DataLength);
    }
    Ok(buf.get(2..2 + len).map(|p| (p, 2 + len)))
}

/// Prefix a payload with its 2-byte length (error 80 if too long).
pub fn frame(payload: &[u8]) -> Result<Vec<u8>, HsmError> {
    if payload.is_empty() || payload.len() > FRAME_LEN_MAX {
        return Err(HsmError::DataLength);
    }
    let mut out = Vec::with_capacity(payload.len() + 2);
    out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

impl Request {
    /// Decode a frame payload. A payload too short for header + command is error 15 (the
    /// header, if present, is still returned by [`Request::header_of`] for the error reply).
    pub fn decode(payload: &[u8], header_len: usize) -> Result<Request, HsmError> {
        let header = payload.get(..header_len).ok_or(HsmError::InvalidInput)?;
        let cmd = payload
            .get(header_len..header_len + 2)
            .ok_or(HsmError::InvalidInput)?;
        Ok(Request {
            header: header.to_vec(),
            command: [cmd[0], cmd[1]],
            body: payload[header_len + 2..].to_vec(),
        })
    }

    /// Whatever header bytes a (possibly malformed) payload carries.
    pub fn header_of(payload: &[u8], header_len: usize) -> Vec<u8> {
        payload[..payload.len().min(header_len)].to_vec()
    }

    /// Encode as a frame payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.header.len() + 2 + self.body.len());
        out.extend_from_slice(&self.header);
        out.extend_from_slice(&self.command);
        out.extend_from_slice(&self.body);
        out
    }
}

impl Response {
    /// A success or error response to `command`.
    pub fn new(header: Vec<u8>, command: [u8; 2], result: Result<Vec<u8>, HsmError>) -> Response {
        let code = response_code(command);
        match result {
            Ok(body) => Response {
                header,
                code,
                error: *b"00",
                body,
            },
            Err(e) => {
                let c = e.code().as_bytes();
                let error = match c {
                    [a, b] => [*a, *b],
                    _ => *b"41",
                };
                Response {
                    header,
                    code,
                    error,
                    body: Vec::new(),
                }
            }
        }
    }

    /// Encode as a frame payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.header.len() + 4 + self.body.len());
        out.extend_from_slice(&self.header);
        out.extend_from_slice(&self.code);
        out.extend_from_slice(&self.error);
        out.extend_from_slice(&self.body);
        out
    }

    /// Decode a frame payload (client side).
    pub fn decode(payload: &[u8], header_len: usize) -> Result<Response, HsmError> {
        let header = payload.get(..header_len).ok_or(HsmError::InvalidInput)?;
        let rest = payload.get(header_len..).ok_or(HsmError::InvalidInput)?;
        let (code, rest) = rest.split_at_checked(2).ok_or(HsmError::InvalidInput)?;
        let (error, body) = rest.split_at_checked(2).ok_or(HsmError::InvalidInput)?;
        Ok(Response {
            header: header.to_vec(),
            code: [code[0], code[1]],
            error: [error[0], error[1]],
            body: body.to_vec(),
        })
    }

    /// `Ok(body)` for error `00`, otherwise the error.
    pub fn into_result(self) -> Result<Vec<u8>, HsmError> {
        if &self.error == b"00" {
            Ok(self.body)
        } else {
            Err(HsmError::from_code(&String::from_utf8_lossy(&self.error)))
        }
    }
}

/// A bounds-checked cursor over a command body.
#[derive(Debug)]
pub struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    /// Start reading `body`.
    pub fn new(body: &'a [u8]) -> Fields<'a> {
        Fields { rest: body }
    }

    /// The next `n` bytes (error 15 if fewer remain).
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], HsmError> {
        let (head, tail) = self
            .rest
            .split_at_checked(n)
            .ok_or(HsmError::InvalidInput)?;
        self.rest = tail;
        Ok(head)
    }

    /// The next `n` bytes as ASCII text.
    pub fn text(&mut self, n: usize) -> Result<&'a str, HsmError> {
        let b = self.take(n)?;
        if !b.is_ascii() {
            return Err(HsmError::InvalidInput);
        }
        std::str::from_utf8(b).map_err(|_| HsmError::InvalidInput)
    }

    /// The next `n` decimal digits as a number.
    pub fn number(&mut self, n: usize) -> Result<usize, HsmError> {
        let t = self.text(n)?;
        if !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(HsmError::InvalidInput);
        }
        t.parse().map_err(|_| HsmError::InvalidInput)
    }

    /// The next `n` hex characters as a number.
    pub fn hex_number(&mut self, n: usize) -> Result<usize, HsmError> {
        usize::from_str_radix(self.text(n)?, 16).map_err(|_| HsmError::InvalidInput)
    }

    /// The next `2 × n` hex characters decoded to `n` bytes.
    pub fn hex_bytes(&mut self, n: usize) -> Result<Vec<u8>, HsmError> {
        hex::decode(self.take(n.checked_mul(2).ok_or(HsmError::InvalidInput)?)?)
            .map_err(|_| HsmError::InvalidInput)
    }

    /// A fixed-size array from `2 × N` hex characters.
    pub fn hex_array<const N: usize>(&mut self) -> Result<[u8; N], HsmError> {
        let mut out = [0u8; N];
        hex::decode_to_slice(self.take(2 * N)?, &mut out).map_err(|_| HsmError::InvalidInput)?;
        Ok(out)
    }

    /// A key token (scheme letter + hex of the scheme's length).
    pub fn token(&mut self) -> Result<KeyToken, HsmError> {
        let (t, used) = KeyToken::parse_prefix(self.rest)?;
        self.rest = &self.rest[used..];
        Ok(t)
    }

    /// Text up to (not including) `delimiter`, which is consumed; error 15 if absent.
    pub fn until(&mut self, delimiter: u8) -> Result<&'a str, HsmError> {
        let pos = self
            .rest
            .iter()
            .position(|&b| b == delimiter)
            .ok_or(HsmError::InvalidInput)?;
        let t = self.text(pos)?;
        self.rest = &self.rest[1..];
        Ok(t)
    }

    /// Consume `byte` if it is next.
    pub fn eat(&mut self, byte: u8) -> bool {
        if self.rest.first() == Some(&byte) {
            self.rest = &self.rest[1..];
            true
        } else {
            false
        }
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.rest)
    }

    /// Everything left, without consuming it.
    pub fn rest_peek(&self) -> &'a [u8] {
        self.rest
    }

    /// True when nothing is left.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// Error 15 unless the body is fully consumed (trailing bytes are a framing mistake).
    pub fn finish(&self) -> Result<(), HsmError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(HsmError::InvalidInput)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_code_advances_the_second_letter() {
        assert_eq!(&response_code(*b"NC"), b"ND");
        assert_eq!(&response_code(*b"CA"), b"CB");
        assert_eq!(&response_code(*b"M6"), b"M7");
        assert_eq!(&response_code(*b"A0"), b"A1");
    }

    #[test]
    fn frames_split_only_when_complete() {
        let f = frame(b"0001NC").expect("frame");
        assert_eq!(f[..2], [0, 6]);
        assert_eq!(split_frame(&f[..5]), Ok(None));
        assert_eq!(split_frame(&f), Ok(Some((&b"0001NC"[..], 8))));
        assert_eq!(split_frame(&[0, 0]), Err(HsmError::DataLength));
        assert_eq!(split_frame(&[0xFF, 0xFF]), Err(HsmError::DataLength));
        assert_eq!(split_frame(&[0]), Ok(None));
    }

    #[test]
    fn requests_and_responses_round_trip() {
        let r = Request {
            header: b"0001".to_vec(),
            command: *b"B2",
            body: b"0003abc".to_vec(),
        };
        assert_eq!(Request::decode(&r.encode(), 4), Ok(r.clone()));
        let resp = Response::new(r.header.clone(), r.command, Ok(b"abc".to_vec()));
        assert_eq!(resp.encode(), b"0001B300abc");
        assert_eq!(Response::decode(&resp.encode(), 4), Ok(resp.clone()));
        let err = Response::new(b"0001".to_vec(), *b"CA", Err(HsmError::InvalidKeyType));
        assert_eq!(err.encode(), b"0001CB28");
        assert_eq!(
            Response::decode(b"0001CB28", 4).and_then(Response::into_result),
            Err(HsmError::InvalidKeyType)
        );
        assert_eq!(Request::decode(b"000", 4), Err(HsmError::InvalidInput));
        assert_eq!(Request::decode(b"0001N", 4), Err(HsmError::InvalidInput));
    }

    #[test]
    fn fields_check_every_length() {
        let mut f = Fields::new(b"0012AB;rest");
        assert_eq!(f.number(2), Ok(0));
        assert_eq!(f.hex_number(2), Ok(0x12));
        assert_eq!(f.until(b';'), Ok("AB"));
        assert_eq!(f.take(10), Err(HsmError::InvalidInput));
        assert_eq!(f.text(4), Ok("rest"));
        assert!(f.finish().is_ok());
        assert_eq!(Fields::new(b"1A").number(2), Err(HsmError::InvalidInput));
        assert_eq!(
            Fields::new(b"U12").token().map(|_| ()),
            Err(HsmError::InvalidInput)
        );
        assert_eq!(
            Fields::new(b"ZZ").hex_bytes(usize::MAX),
            Err(HsmError::InvalidInput)
        );
    }
}
