//! `switch demo --describe`: what an outside ISO 8583 client needs to talk to a running demo
//! (addresses, the dialect, the demo keys in clear, institutions, banks and some cards).

use super::{DemoOptions, DemoRunError};
use crate::sim::world::{clear_keys, DemoWorld, DECIMALISATION_TABLE, DEMO_PIN, JOB_CENTRE_ID};
use schemas::domain::InstitutionId;

/// What `switch demo --describe` prints: links, keys (clear, demo only), cards.
pub fn describe(opts: &DemoOptions) -> Result<String, DemoRunError> {
    // The running demo's world: a card's algorithm and insurance follow its number in the
    // whole world, so a smaller world would describe other cards under the same PANs.
    let world = DemoWorld::new(opts.cards_per_bank)?;
    let mut s = String::new();
    s.push_str("# switch demo: how to talk to it\n\n");
    s.push_str(&format!(
        "Acquirer link: tcp://{} - ISO 8583 dialect ssc87 (schemas/iso8583/ssc87.md), 2-byte big-endian length header, no TPDU.\n\
         Every request carries a MAC (field 64, or 128 with a secondary bitmap; ISO 9797-1 algorithm 3, padding 1, over\n\
         the message before it) under the TAK of the institution in its field 32; answers are MACed the same way.\n",
        opts.listen
    ));
    s.push_str(&format!(
        "HTTP: http://{}/health /ready (open); operator API (a session or an API key): /metrics /transactions/{{rrn}} /saf \
         /session /session/password /me /users /users/{{id}}/roles /role-changes /role-changes/{{id}}/approve /role-changes/{{id}}/reject /roles /audit /api-keys /api-keys/{{id}}; \
         card management (demo-issuance, demo-clerk): /application-batches /import-jobs/{{id}} /import-jobs/{{id}}/errors \
         /applications /applications/{{id}} /applications/{{id}}/photo /applications/{{id}}/issue /perso-files \
         /perso-files/{{id}} /cards /cards/{{id}} /cards/{{id}}/{{operation}} /cards/{{id}}/replace /cards/{{id}}/pin-reset \
         /cards/{{id}}/ssse-pin-unblock /cards/{{id}}/records/ef06; \
         settlement (demo-clearing, demo-bank): /clearing/windows /clearing/windows/{{id}} /clearing/windows/close \
         /clearing/windows/{{id}}/reports/{{institution}} /clearing/positions; \
         bank cut-over (demo-clearing): /reconciliations /reconciliations/{{id}}/resolve /cutover\n\
         (log in with POST /session as one of the demo operators below; schemas/openapi/switch.json)\n\
         Operator console (a browser; the same demo operators): http://{}/console/\n\n",
        opts.http, opts.http
    ));
    s.push_str(&super::operators::describe_operators(&world));
    s.push('\n');
    s.push_str("DEMO KEYS - printed in clear on purpose; never use outside the demo:\n");
    s.push_str(&format!(
        "  TPK (PIN blocks, ISO 9564 format 0, every acquirer): {}\n",
        clear_keys::TPK
    ));
    s.push_str(&format!(
        "  IMK-AC 3DES (EMV option A): {}\n  IMK-AC SM4 (PBOC 3.0):      {}\n",
        clear_keys::IMK_AC_TDES,
        clear_keys::IMK_AC_SM4
    ));
    s.push_str(&format!(
        "  PVK (IBM 3624 offsets, decimalisation {DECIMALISATION_TABLE}): {}\n",
        clear_keys::PVK
    ));
    s.push_str(&format!("  Every cardholder's PIN: {DEMO_PIN}\n\n"));
    s.push_str(&format!(
        "Institutions (field 32) and their TAKs (MAC keys, clear, demo only; every kiosk and \
         bank link MACs by {}):\n",
        crate::sim::world::DEMO_MAC_ALGORITHM
    ));
    let tak = |id: &InstitutionId| hex::encode_upper(clear_keys::acquirer_tak(id));
    for h in &world.hospitals {
        s.push_str(&format!(
            "  {}  TAK {}  hospital level {}, code (62.2) {}  {}\n",
            h.id,
            tak(&h.id),
            h.level,
            h.code,
            h.name
        ));
    }
    let job_centre =
        InstitutionId::parse(JOB_CENTRE_ID).map_err(|e| DemoRunError::Other(e.to_string()))?;
    s.push_str(&format!(
        "  {JOB_CENTRE_ID}  TAK {}  job centre\n",
        tak(&job_centre)
    ));
    s.push_str(
        "Banks (issuer hosts the switch signs on to, over mutual TLS: a demo CA and certificates\n\
         made at start, host name `localhost`; MACs under a TAK exchanged at sign-on):\n",
    );
    for (i, b) in world.banks.iter().enumerate() {
        s.push_str(&format!(
            "  {}  BIN {}  127.0.0.1:{}  ZMK {}  {}\n",
            b.id,
            b.bin,
            opts.bank_port_base + i as u16,
            b.zmk_clear,
            b.name
        ));
    }
    s.push_str(&format!(
        "\nCards: {} per bank, PAN = BIN + 7-digit serial from 0000001 + Luhn digit, PSN 00, expiry 3412.\n",
        opts.cards_per_bank
    ));
    s.push_str("Some cards (the first of each bank):\n");
    for c in world.cards.iter().step_by(opts.cards_per_bank.max(1)) {
        s.push_str(&format!(
            "  {}  {:?}  insurance {}  card id {}  cardholder {}\n",
            c.pan.expose_digits(),
            c.algorithm,
            c.insurance.map_or("none", |i| i.as_sql()),
            c.card_identification_code,
            c.citizen_id
        ));
    }
    s.push_str(&format!(
        "\nA hospital bill: 0200, field 3 190000, 4 = 62.4, 52 PIN block under the TPK, 55 the card's\n\
         ARQC data (9F26, 9F27, 9F10, 9F36, 9F02, ...), 60 = 01|410100|01, 62 = category|hospital code|bill no|total|items.\n\
         The 0210 carries 39, 38, 55 (tag 91 = ARPC || ARC) and 63 (pooled | personal | bank | bank id | balance).\n\
         An identity session (job centre): 0100, field 3 330000, 4 = 0, 60 = 03|410100|03, 61 the cardholder's\n\
         citizen ID (EF06), 120 the card id (EF05), 48 = SIA (INTERNAL AUTHENTICATE answer to the session\n\
         challenge) + SCC (GET CHALLENGE); the 0110 carries 48 = SEA (EXTERNAL AUTHENTICATE). See ssc87.md;\n\
         `kiosk identity --switch 127.0.0.1:8583 --acquirer {JOB_CENTRE_ID} --terminal ... --tak-file ...`.\n"
    ));
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 24, finding 9: the cards were described from a smaller world than the demo's,
    /// whose numbering gave other algorithms to the same PANs.
    #[test]
    fn each_card_described_has_the_algorithm_of_the_running_demos_card() {
        let opts = DemoOptions::default();
        let text = describe(&opts).unwrap();
        let demo = DemoWorld::new(opts.cards_per_bank).unwrap();
        let mut shown = 0;
        for line in text
            .lines()
            .skip_while(|l| !l.starts_with("Some cards"))
            .skip(1)
        {
            let mut words = line.split_whitespace();
            let (Some(pan), Some(algorithm)) = (words.next(), words.next()) else {
                break;
            };
            let card = demo
                .cards
                .iter()
                .find(|c| c.pan.expose_digits() == pan)
                .unwrap();
            assert_eq!(algorithm, format!("{:?}", card.algorithm), "{pan}");
            shown += 1;
        }
        assert_eq!(shown, 6);
        assert!(text.contains("6288660200000017  Sm4"), "{text}");
    }
}
