//! Sample messages for the ISO 8583 benchmarks.

use rust_decimal::Decimal;
use schemas::iso8583::{Error, Mti, OwnedMessage, Spec};

/// The jPOS ISO87APackager test message (0800 with fields 2-64 and 90, 772 bytes).
pub const ISO87A_PACKAGER: &[u8] = include_bytes!("../../schemas/testdata/ISO87APackager.bin");

/// ICC data of a PBOC/EMV online authorisation: ARQC, CID, ATC, IAD, unpredictable number,
/// TVR, dates, amounts, AIP, terminal data... padded with an issuer-proprietary tag so that
/// field 55 is exactly 150 bytes.
pub fn icc_data_150() -> Vec<u8> {
    let mut out = Vec::new();
    let objects: &[(u32, &[u8])] = &[
        (0x9F26, &[0x5B, 0x1A, 0x7C, 0x33, 0x90, 0x2E, 0x41, 0x0D]),
        (0x9F27, &[0x80]),
        (
            0x9F10,
            &[
                0x07, 0x01, 0x01, 0x03, 0xA0, 0x00, 0x00, 0x01, 0x0A, 0x01, 0x00, 0x00, 0x00, 0x00,
                0x00, 0x12, 0x34, 0x56, 0x78,
            ],
        ),
        (0x9F37, &[0x9B, 0xAD, 0xBC, 0xAB]),
        (0x9F36, &[0x00, 0x2A]),
        (0x95, &[0x00, 0x00, 0x00, 0x08, 0x00]),
        (0x9A, &[0x24, 0x06, 0x11]),
        (0x9C, &[0x00]),
        (0x9F02, &[0x00, 0x00, 0x00, 0x01, 0x23, 0x45]),
        (0x5F2A, &[0x01, 0x56]),
        (0x82, &[0x7C, 0x00]),
        (0x9F1A, &[0x01, 0x56]),
        (0x9F03, &[0x00, 0x00, 0x00, 0x00, 0x00, 0x00]),
        (0x9F33, &[0xE0, 0xE1, 0xC8]),
        (0x9F34, &[0x42, 0x03, 0x00]),
        (0x9F35, &[0x14]),
        (0x9F1E, b"KIOSK001"),
        (0x84, &[0xA0, 0x00, 0x00, 0x03, 0x33, 0x01, 0x01, 0x01]),
        (0x9F09, &[0x00, 0x30]),
        (0x9F41, &[0x00, 0x00, 0x00, 0x42]),
    ];
    for (tag, value) in objects {
        schemas::tlv::write(*tag, value, &mut out);
    }
    // DF31 (issuer script results placeholder) fills the rest: tag 2 + length 1 + value.
    let fill = 150 - out.len() - 3;
    schemas::tlv::write(0xDF31, &vec![0u8; fill], &mut out);
    out
}

/// A typical `ssc87` 0200: medical bill paid at a hospital kiosk with card, PIN and ARQC.
pub fn ssc87_0200(spec: &Spec) -> Result<OwnedMessage<'_>, Error> {
    let mut m = spec.message(Mti::new("0200")?);
    m.set_str(2, "6214830012345678")?
        .set_str(3, "190000")?
        .set_amount(4, Decimal::new(12345, 2), 2)?
        .set_str(7, "0611191024")?
        .set_u64(11, 42)?
        .set_str(12, "191024")?
        .set_str(13, "0611")?
        .set_str(14, "2912")?
        .set_str(22, "051")?
        .set_str(23, "001")?
        .set_str(25, "00")?
        .set_str(26, "06")?
        .set_str(32, "10000001")?
        .set_str(35, "6214830012345678=29122010000012300000")?
        .set_str(41, "KIOSK001")?
        .set_str(42, "H11010800001   ")?
        .set_str(49, "156")?
        .set_bytes(52, &[0x3A, 0x1F, 0x88, 0x02, 0x9C, 0x44, 0x71, 0xE0])?
        .set_bytes(55, &icc_data_150())?
        .set_str(60, "0111010001")?
        .set_str(61, "11010519491231002X")?
        .set_path("62.1", b"11")?
        .set_path("62.2", b"H11010800001")?
        .set_path("62.3", b"MZ20240611-0001")?
        .set_path("62.4", b"12345")?
        .set_path("62.5", b"3")?
        .set_bytes(64, &[0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88])?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssc87_sample_is_a_valid_0200_with_a_150_byte_field_55() {
        let spec = schemas::iso8583::spec("ssc87").unwrap();
        let m = ssc87_0200(spec).unwrap();
        let mut wire = Vec::new();
        spec.encode(&m, &mut wire).unwrap();
        let d = spec.decode(&wire).unwrap();
        assert_eq!(d.mti().as_str(), "0200");
        assert_eq!(d.get(55).unwrap().len(), 150);
        assert_eq!(d.get_path("55.9F26").unwrap().len(), 8);
        assert_eq!(d.get_path_str("62.3").unwrap(), "MZ20240611-0001");
    }

    #[test]
    fn iso87a_sample_is_the_jpos_vector() {
        let spec = schemas::iso8583::spec("iso87ascii").unwrap();
        assert_eq!(ISO87A_PACKAGER.len(), 772);
        assert_eq!(spec.decode(ISO87A_PACKAGER).unwrap().fields().count(), 64);
    }
}
