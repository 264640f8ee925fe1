//! The cardholder's photo for the card face, as the public-security ID-photo service supplies
//! it: a baseline or progressive JPEG, checked before it is stored and sealed at rest.
//!
//! Why a structural check and not a decoder: the switch only stores the photo and passes it to
//! the card bureau; it must refuse what is not a JPEG (a PDF, a PNG, a truncated upload) and
//! anything oversized, without pulling an image library into the switch. The check walks the
//! marker segments of ITU-T T.81 (ISO/IEC 10918-1) Annex B: SOI first, length-prefixed segments
//! up to SOS, a frame header (SOF0-SOF15, not DHT/JPG/DAC) with non-zero dimensions before it,
//! and EOI last.
//!
//! At rest the photo is sealed with AES-256-GCM under a data key from the HSM, the same approach
//! as the PAN protector (`store::pan_protector`): [`PhotoSealer`].

use hsm_sim::datakey::DataKey;

/// Largest photo accepted, in bytes (an ID photo of 358×441 is 15-30 KiB).
pub const PHOTO_LEN_MAX_BYTES: usize = 64 * 1024;
/// Associated data of a sealed photo (binds the ciphertext to its column).
const PHOTO_AAD: &[u8] = b"card_application.photo_ciphertext";

/// Why a photo was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhotoError {
    /// Above [`PHOTO_LEN_MAX_BYTES`].
    #[error("photo is {0} bytes, above the {PHOTO_LEN_MAX_BYTES}-byte limit")]
    TooLarge(usize),
    /// Does not start with SOI (FFD8) or end with EOI (FFD9).
    #[error("not a JPEG (missing SOI/EOI marker)")]
    Markers,
    /// A segment's length runs past the data, or a marker is malformed.
    #[error("JPEG header segment malformed at byte {0}")]
    Segment(usize),
    /// No frame header (SOF) with non-zero width and height before the scan.
    #[error("JPEG has no valid frame header before its scan")]
    NoFrame,
    /// Sealing or opening failed.
    #[error("photo encryption failed")]
    Crypto,
}

/// Image dimensions read from the frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JpegInfo {
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
}

/// Checks that `data` is a JPEG within the size limit and returns its dimensions.
pub fn check_jpeg(data: &[u8]) -> Result<JpegInfo, PhotoError> {
    if data.len() > PHOTO_LEN_MAX_BYTES {
        return Err(PhotoError::TooLarge(data.len()));
    }
    if data.len() < 4 || data[..2] != [0xFF, 0xD8] || data[data.len() - 2..] != [0xFF, 0xD9] {
        return Err(PhotoError::Markers);
    }
    let mut at = 2;
    let mut frame = None;
    loop {
        let (&ff, &marker) = (
            data.get(at).ok_or(PhotoError::Segment(at))?,
            data.get(at + 1).ok_or(PhotoError::Segment(at))?,
        );
        if ff != 0xFF || marker == 0x00 || marker == 0xFF {
            return Err(PhotoError::Segment(at));
        }
        let len_bytes = data.get(at + 2..at + 4).ok_or(PhotoError::Segment(at))?;
        let len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
        let body = data
            .get(at + 4..at + 2 + len)
            .filter(|_| len >= 2)
            .ok_or(PhotoError::Segment(at))?;
        // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC): P(1) Y(2) X(2) Nf(1) ...
        if (0xC0..=0xCF).contains(&marker) && ![0xC4, 0xC8, 0xCC].contains(&marker) {
            if body.len() < 6 {
                return Err(PhotoError::Segment(at));
            }
            let height = u16::from_be_bytes([body[1], body[2]]);
            let width = u16::from_be_bytes([body[3], body[4]]);
            if width > 0 && height > 0 {
                frame = Some(JpegInfo { width, height });
            }
        }
        if marker == 0xDA {
            return frame.ok_or(PhotoError::NoFrame);
        }
        at += 2 + len;
    }
}

/// Seals photos for storage and opens them for the personalisation file.
pub struct PhotoSealer {
    key: DataKey,
}

impl std::fmt::Debug for PhotoSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PhotoSealer(****)")
    }
}

impl PhotoSealer {
    /// With a data key unwrapped by the HSM (`Hsm::unwrap_data_key`).
    pub fn new(key: DataKey) -> Self {
        Self { key }
    }

    /// Checks and seals a photo.
    pub fn seal(&self, jpeg: &[u8]) -> Result<Vec<u8>, PhotoError> {
        check_jpeg(jpeg)?;
        self.key
            .seal(jpeg, PHOTO_AAD)
            .map_err(|_| PhotoError::Crypto)
    }

    /// Opens a sealed photo.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, PhotoError> {
        self.key
            .open(sealed, PHOTO_AAD)
            .map_err(|_| PhotoError::Crypto)
    }
}

/// A minimal well-formed JPEG header sequence (SOI, APP0 JFIF, SOF0 `w`×`h`, SOS, EOI) for
/// tests and the demo; not a viewable image.
pub fn sample_jpeg(w: u16, h: u16) -> Vec<u8> {
    let mut v = vec![0xFF, 0xD8];
    v.extend_from_slice(&[0xFF, 0xE0, 0x00, 0x10]);
    v.extend_from_slice(b"JFIF\0\x01\x01\x00\x00\x01\x00\x01\x00\x00");
    v.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x0B, 0x08]);
    v.extend_from_slice(&h.to_be_bytes());
    v.extend_from_slice(&w.to_be_bytes());
    v.extend_from_slice(&[0x01, 0x01, 0x11, 0x00]);
    v.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3F, 0x00]);
    v.extend_from_slice(&[0x12, 0x34, 0x56]);
    v.extend_from_slice(&[0xFF, 0xD9]);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_well_formed_jpeg_passes_with_its_dimensions() {
        assert_eq!(
            check_jpeg(&sample_jpeg(358, 441)),
            Ok(JpegInfo {
                width: 358,
                height: 441
            })
        );
    }

    #[test]
    fn non_jpegs_truncated_and_oversized_photos_are_refused() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        assert_eq!(check_jpeg(png), Err(PhotoError::Markers));
        let good = sample_jpeg(10, 10);
        let mut no_eoi = good.clone();
        no_eoi.truncate(good.len() - 2);
        assert_eq!(check_jpeg(&no_eoi), Err(PhotoError::Markers));
        // SOI ... EOI around garbage.
        assert!(matches!(
            check_jpeg(&[0xFF, 0xD8, 0x01, 0x02, 0x03, 0xFF, 0xD9]),
            Err(PhotoError::Segment(2))
        ));
        // A segment length running past the end.
        let mut long = good.clone();
        long[4..6].copy_from_slice(&[0x7F, 0xFF]);
        assert!(matches!(check_jpeg(&long), Err(PhotoError::Segment(2))));
        // Zero width.
        assert_eq!(check_jpeg(&sample_jpeg(0, 10)), Err(PhotoError::NoFrame));
        let mut big = good.clone();
        big.splice(
            2..2,
            std::iter::repeat_n(0u8, PHOTO_LEN_MAX_BYTES).collect::<Vec<_>>(),
        );
        assert!(matches!(check_jpeg(&big), Err(PhotoError::TooLarge(_))));
    }

    #[test]
    fn a_sealed_photo_hides_its_bytes_and_opens_only_with_its_key() {
        let key = |b| DataKey::from_bytes([b; 32]).unwrap();
        let sealer = PhotoSealer::new(key(7));
        let jpeg = sample_jpeg(358, 441);
        let sealed = sealer.seal(&jpeg).unwrap();
        assert!(!sealed.windows(4).any(|w| w == b"JFIF"));
        assert_eq!(sealer.open(&sealed).unwrap(), jpeg);
        assert_eq!(
            PhotoSealer::new(key(8)).open(&sealed),
            Err(PhotoError::Crypto)
        );
        assert_eq!(sealer.seal(b"not a jpeg"), Err(PhotoError::Markers));
    }
}
