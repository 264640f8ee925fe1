//! A simulated kiosk: a virtual card in its reader, a PIN pad holding the demo TPK and its
//! acquirer's TAK, and the ISO 8583 messages a hospital or job-centre kiosk sends, each MACed
//! (field 64/128, the layout and algorithms of `crate::wire::mac`: the demo's SM4 CBC-MAC
//! unless told otherwise) so the switch
//! knows which institution sent it (`pipeline::AcquirerIdentity`). Used by `switch demo` for traffic, by
//! the tests, and as the reference an outside client can follow.
//!
//! The card is the real virtual card of card-apdu (PBOC GPO, records, GENERATE AC), so every
//! ARQC is a real cryptogram and every ARPC the switch returns is checked by the card.

use super::world::{DemoCard, DemoError, DemoWorld, DEMO_PIN};
use card_apdu::channel::memory::MemoryChannel;
use card_apdu::kiosk::identity;
use card_apdu::kiosk::pboc::{
    self, IssuerResponse, PaymentOutcome, PaymentRequest, PaymentSession, Terminal,
};
use chrono::{Datelike, Timelike};
use hsm_sim::crypto::WorkingCipher;
use hsm_sim::keys::ClearKey;
use hsm_sim::mac::compute_mac;
use schemas::domain::{InstitutionId, TerminalId};
use schemas::iso8583::{self, Message, Mti, OwnedMessage};

use crate::wire::mac::{LinkMacAlgorithm, MAC_LEN_BYTES};

/// One kiosk.
pub struct Kiosk {
    /// Field 41.
    pub terminal_id: TerminalId,
    /// Field 32.
    pub acquirer: InstitutionId,
    /// Field 62.2, for hospital kiosks.
    pub hospital_code: Option<String>,
    stan: u32,
    rrn_prefix: String,
    /// The acquirer's terminal authentication key, in the kiosk's secure module; `None`: the
    /// kiosk sends its messages without a MAC.
    tak: Option<[u8; 16]>,
    /// The algorithm the kiosk MACs with (its TAK is a key of it).
    mac_algorithm: LinkMacAlgorithm,
}

/// A payment waiting for the switch's answer.
pub struct PendingPayment {
    /// The encoded request (no framing).
    pub request: Vec<u8>,
    /// Its STAN.
    pub stan: u32,
    session: PaymentSession,
}

fn bcd2(v: u32) -> u8 {
    (((v / 10) % 10) << 4 | (v % 10)) as u8
}

impl Kiosk {
    /// A kiosk of `acquirer`; `rrn_prefix` (up to 4 characters) keeps RRNs of different kiosks
    /// apart.
    pub fn new(
        terminal_id: TerminalId,
        acquirer: InstitutionId,
        hospital_code: Option<String>,
        rrn_prefix: &str,
    ) -> Self {
        Self {
            tak: Some(super::world::clear_keys::acquirer_tak(&acquirer)),
            mac_algorithm: super::world::DEMO_MAC_ALGORITHM,
            terminal_id,
            acquirer,
            hospital_code,
            stan: 0,
            rrn_prefix: rrn_prefix.chars().take(4).collect(),
        }
    }

    /// The same kiosk with another TAK (clear, 16 bytes), or none: what an outsider without
    /// the acquirer's key would send.
    pub fn with_tak(mut self, tak: Option<[u8; 16]>) -> Self {
        self.tak = tak;
        self
    }

    /// The same kiosk MACing by `algorithm` (its TAK's bytes taken as a key of it).
    pub fn with_mac_algorithm(mut self, algorithm: LinkMacAlgorithm) -> Self {
        self.mac_algorithm = algorithm;
        self
    }

    /// Encodes `m`, MACed under the kiosk's TAK when it has one: the MAC field set to zeros,
    /// then its 8 bytes replaced by the MAC of everything before them.
    pub fn seal(&self, m: &mut OwnedMessage<'_>) -> Result<Vec<u8>, DemoError> {
        let mut out = Vec::with_capacity(512);
        let Some(tak) = &self.tak else {
            m.spec()
                .encode(m, &mut out)
                .map_err(|_| DemoError::Data("encode"))?;
            return Ok(out);
        };
        m.remove(64).remove(128);
        let field = crate::wire::mac::mac_field(m);
        m.set_bytes(field, &[0u8; 8])
            .map_err(|_| DemoError::Data("mac field"))?;
        m.spec()
            .encode(m, &mut out)
            .map_err(|_| DemoError::Data("encode"))?;
        let key = ClearKey::new(self.mac_algorithm.key_scheme(), tak.to_vec())?;
        let cipher = WorkingCipher::new(&key)?;
        let covered = out.len().saturating_sub(MAC_LEN_BYTES);
        let (algorithm, padding) = self.mac_algorithm.hsm_parameters();
        let mac = compute_mac(&key, &cipher, algorithm, padding, &out[..covered])?;
        let mac = mac.get(..MAC_LEN_BYTES).ok_or(DemoError::Data("mac"))?;
        out[covered..].copy_from_slice(mac);
        Ok(out)
    }

    fn next_stan(&mut self) -> u32 {
        self.stan = self.stan % 999_999 + 1;
        self.stan
    }

    /// A new RRN for the current STAN: prefix, day of year, STAN.
    fn rrn(&self) -> String {
        let day = chrono::Utc::now().ordinal();
        let body = format!("{}{:03}{:06}", self.rrn_prefix, day, self.stan);
        format!("{body:0>12}")
            .chars()
            .rev()
            .take(12)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect()
    }

    fn base(
        &mut self,
        mti: &str,
        processing_code: &str,
        amount_fen: u64,
    ) -> Result<OwnedMessage<'static>, DemoError> {
        let spec = iso8583::spec("ssc87").map_err(|_| DemoError::Data("spec"))?;
        // Field 7 in UTC (the switch checks it against its clock), 12 and 13 the kiosk's local
        // time (China Standard Time).
        let now = chrono::Utc::now() + chrono::Duration::hours(8);
        let stan = self.next_stan();
        let mut m = OwnedMessage::new(spec, Mti::new(mti).map_err(|_| DemoError::Data("mti"))?);
        let r = (|| -> Result<(), iso8583::Error> {
            m.set_str(3, processing_code)?
                .set_u64(4, amount_fen)?
                .set_str(7, &crate::wire::network::transmission_now())?
                .set_u64(11, u64::from(stan))?
                .set_str(12, &now.format("%H%M%S").to_string())?
                .set_str(13, &now.format("%m%d").to_string())?
                .set_str(32, self.acquirer.as_str())?
                .set_str(37, &self.rrn())?
                .set_str(41, self.terminal_id.as_str())?
                .set_str(49, "156")?;
            Ok(())
        })();
        r.map_err(|_| DemoError::Data("request field"))?;
        Ok(m)
    }

    /// Starts a hospital bill payment of `bill_fen` with `card` in the reader: the card makes
    /// its ARQC, the PIN pad its PIN block (`pin`), and the request is encoded.
    pub fn medical_bill(
        &mut self,
        card: &DemoCard,
        reader: &mut MemoryChannel,
        bill_fen: u64,
        bill_no: &str,
        pin: &str,
    ) -> Result<PendingPayment, DemoError> {
        let hospital = self
            .hospital_code
            .clone()
            .ok_or(DemoError::Data("not a hospital kiosk"))?;
        let mut m = self.base("0200", "190000", bill_fen)?;
        let stan = self.stan;
        let r = (|| -> Result<(), iso8583::Error> {
            m.set_path("60.1", b"01")?
                .set_path("60.2", b"410100")?
                .set_path("60.3", b"01")?
                .set_path("62.1", b"11")?
                .set_path("62.2", hospital.as_bytes())?
                .set_path("62.3", bill_no.as_bytes())?
                .set_path("62.4", format!("{bill_fen:012}").as_bytes())?
                .set_path("62.5", b"0001")?;
            Ok(())
        })();
        r.map_err(|_| DemoError::Data("bill fields"))?;
        self.card_present(m, card, reader, bill_fen, pin, stan)
    }

    /// Starts a purchase paid by the card's bank.
    pub fn bank_purchase(
        &mut self,
        card: &DemoCard,
        reader: &mut MemoryChannel,
        amount_fen: u64,
    ) -> Result<PendingPayment, DemoError> {
        let m = self.base("0200", "000000", amount_fen)?;
        let stan = self.stan;
        self.card_present(m, card, reader, amount_fen, DEMO_PIN, stan)
    }

    /// Starts a pre-authorization (0100) of `amount_fen` on the personal medical-insurance
    /// account: the card makes its ARQC, the PIN pad its PIN block.
    pub fn preauthorization(
        &mut self,
        card: &DemoCard,
        reader: &mut MemoryChannel,
        amount_fen: u64,
    ) -> Result<PendingPayment, DemoError> {
        let m = self.base("0100", "000000", amount_fen)?;
        let stan = self.stan;
        self.card_present(m, card, reader, amount_fen, DEMO_PIN, stan)
    }

    /// The advice (0120) of a pre-authorization of `amount_fen` the kiosk stood in for (the
    /// switch was unreachable): the card's PAN and expiry, no PIN and no cryptogram; the switch
    /// places the hold it advises and always answers 0130 `00` (ssc87.md). Complete it with
    /// [`Kiosk::completion_of`] like a 0100.
    pub fn preauthorization_advice(
        &mut self,
        card: &DemoCard,
        amount_fen: u64,
    ) -> Result<Vec<u8>, DemoError> {
        let mut m = self.base("0120", "000000", amount_fen)?;
        let r = (|| -> Result<(), iso8583::Error> {
            m.set_str(2, card.pan.expose_digits())?
                .set_str(14, &card.expiry_yymm)?
                .set_str(22, "051")?;
            Ok(())
        })();
        r.map_err(|_| DemoError::Data("advice fields"))?;
        self.seal(&mut m)
    }

    /// The completion (0220) for `amount_fen` of the pre-authorization `preauthorization` (its
    /// encoded request): field 37 names the pre-authorization's RRN; no card, no PIN.
    pub fn completion_of(
        &mut self,
        preauthorization: &[u8],
        amount_fen: u64,
    ) -> Result<Vec<u8>, DemoError> {
        let spec = iso8583::spec("ssc87").map_err(|_| DemoError::Data("spec"))?;
        let original = spec
            .decode(preauthorization)
            .map_err(|_| DemoError::Data("pre-authorization"))?;
        let rrn = original
            .get_str(37)
            .map_err(|_| DemoError::Data("field 37"))?
            .into_owned();
        let pan = original
            .get_str(2)
            .map_err(|_| DemoError::Data("field 2"))?
            .into_owned();
        let mut m = self.base("0220", "000000", amount_fen)?;
        let r = (|| -> Result<(), iso8583::Error> {
            m.set_str(2, &pan)?.set_str(37, &rrn)?;
            Ok(())
        })();
        r.map_err(|_| DemoError::Data("completion fields"))?;
        self.seal(&mut m)
    }

    /// A refund (0200 `200000`) of `amount_fen` of the bank purchase `purchase` (its encoded
    /// request) on STAN `stan`: the purchase's card, RRN and terminal, a fresh field 7, no PIN
    /// and no chip data (a refund gives money back to the card; ssc87.md).
    pub fn refund_of(
        &self,
        purchase: &[u8],
        stan: u64,
        amount_fen: u64,
    ) -> Result<Vec<u8>, DemoError> {
        let spec = iso8583::spec("ssc87").map_err(|_| DemoError::Data("spec"))?;
        let mut m = spec
            .decode(purchase)
            .map_err(|_| DemoError::Data("purchase"))?
            .to_owned_message();
        let r = (|| -> Result<(), iso8583::Error> {
            m.set_str(3, "200000")?
                .set_u64(4, amount_fen)?
                .set_u64(11, stan)?
                .set_str(7, &crate::wire::network::transmission_now())?;
            Ok(())
        })();
        r.map_err(|_| DemoError::Data("refund fields"))?;
        m.remove(52).remove(55).remove(23);
        self.seal(&mut m)
    }

    fn card_present(
        &mut self,
        mut m: OwnedMessage<'static>,
        card: &DemoCard,
        reader: &mut MemoryChannel,
        amount_fen: u64,
        pin: &str,
        stan: u32,
    ) -> Result<PendingPayment, DemoError> {
        let now = chrono::Utc::now() + chrono::Duration::hours(8);
        let date = [
            bcd2(now.year() as u32 % 100),
            bcd2(now.month()),
            bcd2(now.day()),
        ];
        let time = [bcd2(now.hour()), bcd2(now.minute()), bcd2(now.second())];
        let terminal = Terminal {
            ifd_serial: self
                .terminal_id
                .as_str()
                .as_bytes()
                .try_into()
                .unwrap_or(*b"KIOSK001"),
            ..Terminal::default()
        };
        let session = pboc::start_payment(
            reader,
            &terminal,
            &PaymentRequest::new(amount_fen, date, time),
        )
        .map_err(|e| DemoError::Card(e.to_string()))?;
        let pin_block = DemoWorld::pin_block(&card.pan, pin)?;
        let r = (|| -> Result<(), iso8583::Error> {
            m.set_str(2, card.pan.expose_digits())?
                .set_str(14, &card.expiry_yymm)?
                .set_str(22, "051")?
                .set_str(23, "000")?
                .set_bytes(52, &pin_block)?
                .set_bytes(55, &session.request.field55)?;
            Ok(())
        })();
        r.map_err(|_| DemoError::Data("card fields"))?;
        let request = self.seal(&mut m)?;
        Ok(PendingPayment {
            request,
            stan,
            session,
        })
    }

    /// A balance inquiry on the personal medical-insurance account (60.1 = 04): the card makes
    /// its ARQC over amount 0, the PIN pad its PIN block.
    pub fn personal_balance(
        &mut self,
        card: &DemoCard,
        reader: &mut MemoryChannel,
    ) -> Result<PendingPayment, DemoError> {
        let mut m = self.base("0200", "310000", 0)?;
        let stan = self.stan;
        let r = (|| -> Result<(), iso8583::Error> {
            m.set_path("60.1", b"04")?
                .set_path("60.2", b"410100")?
                .set_path("60.3", b"01")?;
            Ok(())
        })();
        r.map_err(|_| DemoError::Data("balance fields"))?;
        self.card_present(m, card, reader, 0, DEMO_PIN, stan)
    }

    /// A balance inquiry on the card's bank account (field 3 31xxxx without 60.1 = 04): the
    /// switch checks the ARQC and asks the bank, which checks the PIN and answers the balance
    /// in field 54.
    pub fn bank_balance(
        &mut self,
        card: &DemoCard,
        reader: &mut MemoryChannel,
    ) -> Result<PendingPayment, DemoError> {
        let m = self.base("0200", "310000", 0)?;
        let stan = self.stan;
        self.card_present(m, card, reader, 0, DEMO_PIN, stan)
    }

    /// A benefit credit (field 3 21xxxx, 60.1 = 02) of `amount_fen` from the social-security
    /// fund to the card's bank account. Only a job centre (or the fund) may send one; it
    /// carries no PIN, as the cardholder receives money.
    pub fn benefit_credit(
        &mut self,
        card: &DemoCard,
        amount_fen: u64,
    ) -> Result<(Vec<u8>, u32), DemoError> {
        let mut m = self.base("0200", "210000", amount_fen)?;
        let r = (|| -> Result<(), iso8583::Error> {
            m.set_str(2, card.pan.expose_digits())?
                .set_path("60.1", b"02")?
                .set_path("60.2", b"410100")?
                .set_path("60.3", b"01")?;
            Ok(())
        })();
        r.map_err(|_| DemoError::Data("benefit fields"))?;
        self.encoded(&mut m)
    }

    /// Starts a job-centre identity session (0100 `330000`, 60.1 `03`) with the card in
    /// `reader`: the card's EF05/EF06 and its answers to the session challenge and its own
    /// challenge, MACed under the kiosk's TAK (`card_apdu::kiosk::identity`, the same code
    /// the `kiosk` binary runs). Finish with [`Kiosk::finish_identity_session`].
    pub fn identity_session(
        &mut self,
        reader: &mut MemoryChannel,
    ) -> Result<identity::PendingIdentity, DemoError> {
        let stan = self.next_stan();
        let fields = identity::SessionFields {
            acquirer: self.acquirer.as_str().to_owned(),
            terminal: self.terminal_id.as_str().to_owned(),
            stan,
            rrn: self.rrn(),
            transmission_at: crate::wire::network::transmission_now(),
            region: "410100".into(),
        };
        let mac = self.identity_mac()?;
        identity::prepare(reader, &fields, mac.as_ref()).map_err(|e| DemoError::Card(e.to_string()))
    }

    /// Gives the switch's answer to a session: its MAC checked, and on `00` the back end's
    /// EXTERNAL AUTHENTICATE to the card.
    pub fn finish_identity_session(
        &self,
        reader: &mut MemoryChannel,
        pending: &identity::PendingIdentity,
        answer: &[u8],
    ) -> Result<identity::IdentityOutcome, DemoError> {
        let mac = self.identity_mac()?;
        identity::complete(reader, pending, answer, mac.as_ref())
            .map_err(|e| DemoError::Card(e.to_string()))
    }

    fn identity_mac(&self) -> Result<Option<identity::KioskMac>, DemoError> {
        let Some(tak) = &self.tak else {
            return Ok(None);
        };
        let algorithm = identity::KioskMacAlgorithm::parse(self.mac_algorithm.name())
            .ok_or(DemoError::Data("mac algorithm"))?;
        identity::KioskMac::new(algorithm, tak)
            .map(Some)
            .map_err(|e| DemoError::Card(e.to_string()))
    }

    fn encoded(&self, m: &mut OwnedMessage<'static>) -> Result<(Vec<u8>, u32), DemoError> {
        Ok((self.seal(m)?, self.stan))
    }

    /// A reversal (0400) of the request `original` (already encoded), for its full amount.
    pub fn reversal_of(&mut self, original: &[u8]) -> Result<(Vec<u8>, u32), DemoError> {
        let spec = iso8583::spec("ssc87").map_err(|_| DemoError::Data("spec"))?;
        let o = spec
            .decode(original)
            .map_err(|_| DemoError::Data("original"))?;
        let amount = o
            .get_u64(4)
            .map_err(|_| DemoError::Data("original amount"))?;
        let pc = o
            .get_str(3)
            .map_err(|_| DemoError::Data("original pc"))?
            .into_owned();
        let mut m = self.base("0400", &pc, amount)?;
        let r = (|| -> Result<(), iso8583::Error> {
            m.set_str(37, &o.get_str(37)?)?;
            if o.has(2) {
                m.set_str(2, &o.get_str(2)?)?;
            }
            m.set_path("90.1", o.mti().as_str().as_bytes())?
                .set_path("90.2", o.get_str(11)?.as_bytes())?
                .set_path("90.3", o.get_str(7)?.as_bytes())?
                .set_path(
                    "90.4",
                    format!("{:0>11}", self.acquirer.as_str()).as_bytes(),
                )?
                .set_path("90.5", b"00000000000")?;
            Ok(())
        })();
        r.map_err(|_| DemoError::Data("reversal fields"))?;
        self.encoded(&mut m)
    }
}

impl PendingPayment {
    /// Gives the switch's answer to the card: ARPC (tag 91), scripts of template 71, second
    /// GENERATE AC, scripts of template 72 (field 55 is handed over whole; the kiosk picks the
    /// templates out of it, EMV Book 3 §10.10).
    pub fn complete(
        mut self,
        reader: &mut MemoryChannel,
        answer: &Message<'_>,
    ) -> Result<PaymentOutcome, DemoError> {
        let code = answer
            .get_str(39)
            .map_err(|_| DemoError::Data("field 39"))?;
        let arc: [u8; 2] = code
            .as_bytes()
            .try_into()
            .map_err(|_| DemoError::Data("field 39"))?;
        let (iad, scripts) = if answer.has(55) {
            (
                answer.get_path("55.91").ok().map(|v| v.into_owned()),
                answer.get(55).map(|f| vec![f.to_vec()]).unwrap_or_default(),
            )
        } else {
            (None, Vec::new())
        };
        let resp = IssuerResponse {
            arc,
            issuer_authentication_data: iad,
            scripts,
        };
        pboc::complete_payment(reader, &mut self.session, &resp)
            .map_err(|e| DemoError::Card(e.to_string()))
    }
}
