//! Cutting ISO 8583 messages out of a TCP byte stream (tokio `Decoder`/`Encoder`).
//!
//! ISO 8583 does not define framing; networks put a length header before each message:
//! two binary bytes (big-endian, the common case and `ssc87`'s), four ASCII digits, or two
//! BCD bytes, optionally followed by a 5-byte TPDU (ID `0x60`, destination and source
//! addresses, as on CUP/EFTPOS links). The length counts the TPDU and the message, not the
//! header itself. A header announcing more than `frame_len_max` bytes is an error *before*
//! anything is buffered, so a peer cannot make us allocate; on any error the caller closes
//! that connection (the stream position is lost).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// The length header of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LengthHeader {
    /// Two bytes, big-endian binary (0-65535).
    Binary2,
    /// Four ASCII decimal digits (0-9999).
    Ascii4,
    /// Two bytes of packed BCD, four digits (0-9999).
    Bcd2,
}

impl LengthHeader {
    fn len(self) -> usize {
        match self {
            Self::Binary2 | Self::Bcd2 => 2,
            Self::Ascii4 => 4,
        }
    }

    fn capacity(self) -> usize {
        match self {
            Self::Binary2 => 0xFFFF,
            Self::Ascii4 | Self::Bcd2 => 9999,
        }
    }

    fn read(self, b: &[u8]) -> Option<usize> {
        match self {
            Self::Binary2 => Some(usize::from(u16::from_be_bytes([b[0], b[1]]))),
            Self::Ascii4 => b[..4].iter().try_fold(0usize, |n, &c| {
                c.is_ascii_digit().then(|| n * 10 + usize::from(c - b'0'))
            }),
            Self::Bcd2 => b[..2].iter().try_fold(0usize, |n, &c| {
                let (hi, lo) = (c >> 4, c & 0xF);
                (hi <= 9 && lo <= 9).then(|| n * 100 + usize::from(hi * 10 + lo))
            }),
        }
    }

    fn write(self, len: usize, out: &mut BytesMut) {
        match self {
            Self::Binary2 => out.put_u16(len as u16),
            Self::Ascii4 => {
                for d in [1000, 100, 10, 1] {
                    out.put_u8(b'0' + ((len / d) % 10) as u8);
                }
            }
            Self::Bcd2 => {
                let hi = len / 100;
                let lo = len % 100;
                out.put_u8((((hi / 10) << 4) | (hi % 10)) as u8);
                out.put_u8((((lo / 10) << 4) | (lo % 10)) as u8);
            }
        }
    }
}

/// A 5-byte transport protocol data unit: ID, destination address, source address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tpdu(pub [u8; 5]);

impl Tpdu {
    /// The TPDU of the reply: destination and source addresses swapped.
    pub fn reply(&self) -> Tpdu {
        let t = self.0;
        Tpdu([t[0], t[3], t[4], t[1], t[2]])
    }
}

/// One framed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The TPDU, when the link uses one.
    pub tpdu: Option<Tpdu>,
    /// The ISO 8583 message bytes (give them to [`super::Spec::decode`]).
    pub message: Bytes,
}

/// Why a frame could not be read or written. The connection must be closed after one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The header announced (or the message needs) more than the configured maximum.
    #[error("frame of {len} bytes exceeds the maximum {max}")]
    TooLarge { len: usize, max: usize },
    /// The length header is not a number in its encoding.
    #[error("invalid length header")]
    InvalidHeader,
    /// The frame is shorter than its TPDU.
    #[error("frame of {len} bytes is shorter than its TPDU")]
    TooShort { len: usize },
    /// A frame to send lacks the TPDU the link requires, or has one it does not use.
    #[error("TPDU presence does not match the link configuration")]
    TpduMismatch,
    /// The socket failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Length-header (+ optional TPDU) codec for one link.
#[derive(Debug, Clone)]
pub struct FrameCodec {
    header: LengthHeader,
    tpdu: bool,
    frame_len_max: usize,
}

/// Default maximum frame: 8 KiB is far above any real ISO 8583 message (LLLVAR fields are
/// ≤ 999 bytes) and small enough to bound memory per connection.
pub const FRAME_LEN_MAX_DEFAULT: usize = 8192;

impl FrameCodec {
    /// A codec with the given header, no TPDU, and [`FRAME_LEN_MAX_DEFAULT`].
    pub fn new(header: LengthHeader) -> Self {
        Self {
            header,
            tpdu: false,
            frame_len_max: FRAME_LEN_MAX_DEFAULT,
        }
    }

    /// Frames carry a 5-byte TPDU after the length header.
    pub fn with_tpdu(mut self) -> Self {
        self.tpdu = true;
        self
    }

    /// Sets the largest accepted frame (TPDU + message), capped by what the header can say.
    pub fn with_frame_len_max(mut self, max: usize) -> Self {
        self.frame_len_max = max.min(self.header.capacity());
        self
    }

    /// The enforced maximum frame length.
    pub fn frame_len_max(&self) -> usize {
        self.frame_len_max.min(self.header.capacity())
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        let hlen = self.header.len();
        if src.len() < hlen {
            return Ok(None);
        }
        let len = self
            .header
            .read(&src[..hlen])
            .ok_or(FrameError::InvalidHeader)?;
        let max = self.frame_len_max();
        if len > max {
            return Err(FrameError::TooLarge { len, max });
        }
        if self.tpdu && len < 5 {
            return Err(FrameError::TooShort { len });
        }
        if src.len() < hlen + len {
            src.reserve(hlen + len - src.len());
            return Ok(None);
        }
        src.advance(hlen);
        let mut body = src.split_to(len);
        let tpdu = if self.tpdu {
            let t = body.split_to(5);
            Some(Tpdu([t[0], t[1], t[2], t[3], t[4]]))
        } else {
            None
        };
        Ok(Some(Frame {
            tpdu,
            message: body.freeze(),
        }))
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        if frame.tpdu.is_some() != self.tpdu {
            return Err(FrameError::TpduMismatch);
        }
        let len = frame.message.len() + if self.tpdu { 5 } else { 0 };
        let max = self.frame_len_max();
        if len > max {
            return Err(FrameError::TooLarge { len, max });
        }
        dst.reserve(self.header.len() + len);
        self.header.write(len, dst);
        if let Some(t) = frame.tpdu {
            dst.put_slice(&t.0);
        }
        dst.put_slice(&frame.message);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(header: LengthHeader, tpdu: bool, wire_header: &[u8]) {
        let mut codec = FrameCodec::new(header);
        if tpdu {
            codec = codec.with_tpdu();
        }
        let frame = Frame {
            tpdu: tpdu.then_some(Tpdu([0x60, 0x00, 0x01, 0x00, 0x02])),
            message: Bytes::from_static(b"0800hello"),
        };
        let mut buf = BytesMut::new();
        codec.encode(frame.clone(), &mut buf).unwrap();
        assert_eq!(&buf[..wire_header.len()], wire_header);
        // Feed byte by byte: no frame until the last byte arrives.
        let mut input = BytesMut::new();
        let bytes = buf.to_vec();
        for (i, b) in bytes.iter().enumerate() {
            input.put_u8(*b);
            let got = codec.decode(&mut input).unwrap();
            assert_eq!(got.is_some(), i == bytes.len() - 1);
            if let Some(g) = got {
                assert_eq!(g, frame);
            }
        }
    }

    #[test]
    fn headers_round_trip_with_and_without_tpdu() {
        round_trip(LengthHeader::Binary2, false, &[0x00, 0x09]);
        round_trip(LengthHeader::Binary2, true, &[0x00, 0x0E]);
        round_trip(LengthHeader::Ascii4, false, b"0009");
        round_trip(LengthHeader::Ascii4, true, b"0014");
        round_trip(LengthHeader::Bcd2, false, &[0x00, 0x09]);
        round_trip(LengthHeader::Bcd2, true, &[0x00, 0x14]);
    }

    #[test]
    fn oversized_header_is_rejected_before_buffering() {
        let mut codec = FrameCodec::new(LengthHeader::Binary2).with_frame_len_max(100);
        let mut input = BytesMut::from(&[0x00, 0x65][..]);
        assert!(matches!(
            codec.decode(&mut input),
            Err(FrameError::TooLarge { len: 101, max: 100 })
        ));
        assert!(input.capacity() < 101);
        let mut out = BytesMut::new();
        let big = Frame {
            tpdu: None,
            message: Bytes::from(vec![b'0'; 101]),
        };
        assert!(matches!(
            codec.encode(big, &mut out),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[test]
    fn bad_headers_and_short_tpdu_frames_are_errors() {
        let mut ascii = FrameCodec::new(LengthHeader::Ascii4);
        assert!(matches!(
            ascii.decode(&mut BytesMut::from(&b"00x9"[..])),
            Err(FrameError::InvalidHeader)
        ));
        let mut bcd = FrameCodec::new(LengthHeader::Bcd2);
        assert!(matches!(
            bcd.decode(&mut BytesMut::from(&[0x0A, 0x00][..])),
            Err(FrameError::InvalidHeader)
        ));
        let mut t = FrameCodec::new(LengthHeader::Binary2).with_tpdu();
        assert!(matches!(
            t.decode(&mut BytesMut::from(&[0x00, 0x03, 1, 2, 3][..])),
            Err(FrameError::TooShort { len: 3 })
        ));
    }

    #[test]
    fn tpdu_reply_swaps_addresses() {
        assert_eq!(
            Tpdu([0x60, 0x00, 0x01, 0x00, 0x02]).reply(),
            Tpdu([0x60, 0x00, 0x02, 0x00, 0x01])
        );
    }
}
