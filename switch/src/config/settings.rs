//! From the file's sections to the node's settings: the pipeline's configuration, the keys
//! (LMK tokens, typed), the acquirer listeners, the issuer links; and the checks a node refuses
//! to start without (a TAK of the link's MAC algorithm, MACs on bank links, every acquirer
//! proven by a TAK or a trusted in-house listener).

use super::*;

/// The client-certificate mapping of a listener.
pub(super) fn client_institutions(
    l: &ListenerSection,
) -> Result<Option<crate::acquirer::ClientInstitutions>, ConfigError> {
    if l.client_certificates.is_empty() {
        return Ok(None);
    }
    if l.tls_client_ca.is_none() {
        return Err(invalid(
            "[[listener.client_certificate]] needs the listener's tls_client_ca (mutual TLS)",
        ));
    }
    if l.institution.is_some() {
        return Err(invalid(
            "a listener is either one institution's (`institution`) or its client \
             certificates' (`[[listener.client_certificate]]`), not both",
        ));
    }
    let mut map = crate::acquirer::ClientInstitutions::new();
    for c in &l.client_certificates {
        let hash: [u8; 32] = hex::decode(c.spki_sha256.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                invalid(format!(
                    "[[listener.client_certificate]] spki_sha256 of {}: 64 hex digits",
                    c.institution
                ))
            })?;
        map.insert(hash, inst(&c.institution)?)
            .map_err(|e| invalid(e.to_string()))?;
    }
    Ok(Some(map))
}

/// The machine clients of `[[http.client_certificate]]` (empty without them).
pub(super) fn machine_clients(
    h: &HttpSection,
) -> Result<crate::operator::machine::MachineClients, ConfigError> {
    use crate::operator::machine::{MachineClient, MachineClients};
    let mut map = MachineClients::default();
    if h.client_certificates.is_empty() {
        return Ok(map);
    }
    if h.tls_client_ca.is_none() || h.tls_cert.is_none() {
        return Err(invalid(
            "[[http.client_certificate]] needs [http] tls_cert, tls_key and tls_client_ca",
        ));
    }
    for c in &h.client_certificates {
        let hash: [u8; 32] = hex::decode(c.spki_sha256.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                invalid(format!(
                    "[[http.client_certificate]] spki_sha256 of {:?}: 64 hex digits",
                    c.name
                ))
            })?;
        if c.role.trim().is_empty() {
            return Err(invalid(format!(
                "[[http.client_certificate]] {:?} names no role",
                c.name
            )));
        }
        let client = MachineClient {
            name: c.name.clone(),
            institution: inst(&c.institution)?,
            role_id: c.role.clone(),
        };
        map.insert(hash, client).map_err(invalid)?;
    }
    Ok(map)
}

pub(super) fn inst(s: &str) -> Result<InstitutionId, ConfigError> {
    InstitutionId::parse(s).map_err(|_| invalid(format!("institution id {s:?}")))
}

pub(super) fn token<T: std::str::FromStr>(what: &str, s: &str) -> Result<T, ConfigError> {
    s.parse()
        .map_err(|_| invalid(format!("{what}: not a key token")))
}

/// An optional key token of `[keys]`.
fn optional_token<T: std::str::FromStr>(
    what: &str,
    s: &Option<String>,
) -> Result<Option<T>, ConfigError> {
    s.as_deref().map(|t| token(what, t)).transpose()
}

/// The transmission window of `switch.transmission_window_s`: at least a second, and well
/// inside the duplicate keys' retention (a replay inside the window must still find its key).
pub(super) fn transmission_window(seconds: u64) -> Result<Duration, ConfigError> {
    let window = Duration::from_secs(seconds);
    if seconds == 0 || window * 2 > crate::node::housekeeping::DUPLICATE_KEY_RETENTION {
        return Err(invalid(format!(
            "switch.transmission_window_s = {seconds}: must be at least 1 and at most half the duplicate keys' retention"
        )));
    }
    Ok(window)
}

/// The cut-over time of `switch.cutover_at`: `HH:MM`, China Standard Time, before noon (a
/// cut-over is the start of a day's work, not its end).
pub(super) fn cutover_at(text: &str) -> Result<chrono::NaiveTime, ConfigError> {
    chrono::NaiveTime::parse_from_str(text, "%H:%M")
        .ok()
        .filter(|t| chrono::Timelike::hour(t) < 12)
        .ok_or_else(|| invalid(format!("switch.cutover_at = {text:?}: HH:MM before 12:00")))
}

impl NodeConfig {
    /// The bank cut-over's settings (`[switch] cutover_at`).
    pub(crate) fn cutover_config(
        &self,
    ) -> Result<crate::issuer::cutover::CutoverConfig, ConfigError> {
        let mut c = crate::issuer::cutover::CutoverConfig::new(inst(&self.switch.institution)?);
        if let Some(at) = &self.switch.cutover_at {
            c.cutover_at = cutover_at(at)?;
        }
        Ok(c)
    }

    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)?;
        toml::from_str(&text).map_err(|e| ConfigError::Syntax(e.message().to_owned()))
    }

    pub(crate) fn pipeline_config(&self) -> Result<PipelineConfig, ConfigError> {
        let s = &self.switch;
        let mut cfg = PipelineConfig::new(
            inst(&s.institution)?,
            inst(&s.insurance_fund)?,
            inst(&s.social_security_fund)?,
        );
        cfg.social_security_fund_account = s.social_security_fund_account.map(AccountId);
        cfg.bank_timeout = Duration::from_millis(s.bank_timeout_ms);
        cfg.transmission_window = transmission_window(s.transmission_window_s)?;
        if let Some(days) = s.card_days_kept {
            cfg.card_days_kept = days;
        }
        if s.data_dir.as_os_str().is_empty() {
            return Err(invalid(
                "switch.data_dir: a directory (the reversal spool's)",
            ));
        }
        cfg.data_dir = Some(s.data_dir.clone());
        for h in &self.hospitals {
            cfg.hospitals.insert(
                h.code.clone(),
                Hospital {
                    institution: inst(&h.institution)?,
                    level: HospitalLevel(h.level),
                },
            );
        }
        let mut table = PolicyTable::default();
        for p in &self.policies {
            let insurance = InsuranceCategory::from_sql(&p.insurance)
                .ok_or_else(|| invalid(format!("insurance {:?}", p.insurance)))?;
            let policy = Policy::new(p.deductible, p.ratio, p.annual_cap)
                .map_err(|e| invalid(e.to_string()))?;
            table.insert(
                insurance,
                p.medical_category.map(MedicalCategory),
                HospitalLevel(p.hospital_level),
                policy,
            );
        }
        cfg.policy = table;
        if let Some(l) = &self.limits {
            cfg.limits = CardLimits {
                per_transaction_fen_max: l.per_transaction_fen_max,
                daily_fen_max: l.daily_fen_max,
                daily_count_max: l.daily_count_max,
            };
        }
        for b in &self.banks {
            if let Some(max) = b.stand_in_fen_max {
                let daily = b.stand_in_card_daily_fen_max.unwrap_or(max);
                if max <= 0 || daily < max {
                    return Err(invalid(format!(
                        "bank {}: stand-in limits must be positive and the daily one at least the per-transaction one",
                        b.institution
                    )));
                }
                cfg.stand_in.insert(
                    inst(&b.institution)?,
                    StandIn {
                        per_transaction_fen_max: max,
                        per_card_daily_fen_max: daily,
                    },
                );
            }
        }
        Ok(cfg)
    }

    pub(crate) fn keys(&self) -> Result<PipelineKeys, ConfigError> {
        let mut acquirers = HashMap::new();
        for a in &self.acquirers {
            acquirers.insert(
                inst(&a.institution)?,
                AcquirerKeys {
                    tpk: token("tpk", &a.tpk)?,
                    tak: tak_of(
                        &format!("[[acquirer]] {}", a.institution),
                        a.tak.as_deref(),
                        a.mac_algorithm,
                    )?,
                },
            );
        }
        let k = &self.keys;
        Ok(PipelineKeys {
            acquirers,
            issuer: IssuerKeys {
                imk_ac_tdes: k
                    .imk_ac_tdes
                    .as_deref()
                    .map(|t| token("imk_ac_tdes", t))
                    .transpose()?,
                imk_ac_sm4: k
                    .imk_ac_sm4
                    .as_deref()
                    .map(|t| token("imk_ac_sm4", t))
                    .transpose()?,
                imk_smi_tdes: k
                    .imk_smi_tdes
                    .as_deref()
                    .map(|t| token("imk_smi_tdes", t))
                    .transpose()?,
                imk_smi_sm4: k
                    .imk_smi_sm4
                    .as_deref()
                    .map(|t| token("imk_smi_sm4", t))
                    .transpose()?,
                pvk: token("pvk", &k.pvk)?,
                decimalisation_table: k.decimalisation_table.clone(),
                pin_check_length: k.pin_check_length,
            },
            ssse: SsseKeys {
                internal_auth_tdes: optional_token(
                    "ssse_internal_auth_tdes",
                    &k.ssse_internal_auth_tdes,
                )?,
                internal_auth_sm4: optional_token(
                    "ssse_internal_auth_sm4",
                    &k.ssse_internal_auth_sm4,
                )?,
                external_auth_tdes: optional_token(
                    "ssse_external_auth_tdes",
                    &k.ssse_external_auth_tdes,
                )?,
                external_auth_sm4: optional_token(
                    "ssse_external_auth_sm4",
                    &k.ssse_external_auth_sm4,
                )?,
                pin_unblock_tdes: optional_token(
                    "ssse_pin_unblock_tdes",
                    &k.ssse_pin_unblock_tdes,
                )?,
                pin_unblock_sm4: optional_token("ssse_pin_unblock_sm4", &k.ssse_pin_unblock_sm4)?,
                line_protection_tdes: optional_token(
                    "ssse_line_protection_tdes",
                    &k.ssse_line_protection_tdes,
                )?,
                line_protection_sm4: optional_token(
                    "ssse_line_protection_sm4",
                    &k.ssse_line_protection_sm4,
                )?,
            },
        })
    }

    pub(crate) fn listeners(&self) -> Result<Vec<AcquirerListener>, ConfigError> {
        let mut out = Vec::new();
        // One cap for the node: requests in flight across every listener and connection.
        let in_flight = InFlightCap::new(at_least_one(
            "[switch] requests_in_flight_max",
            self.switch.requests_in_flight_max,
            InFlightCap::REQUESTS_MAX_DEFAULT,
        )?);
        for l in &self.listeners {
            let mut a = AcquirerListener::ssc87(l.listen).map_err(|e| invalid(e.to_string()))?;
            a.in_flight = in_flight.clone();
            a.link = LinkContext {
                spec: schemas::iso8583::spec(&l.spec).map_err(|e| invalid(e.to_string()))?,
                identity: match l.institution.as_deref() {
                    Some(i) => AcquirerIdentity::Fixed(inst(i)?),
                    None if l.mac_free_trusted_in_house => {
                        return Err(invalid("a MAC-free listener names its institution"))
                    }
                    None => AcquirerIdentity::ProvenByMac,
                },
                mac_free_trusted_in_house: l.mac_free_trusted_in_house,
            };
            a.header = match l.header.as_str() {
                "binary2" => LengthHeader::Binary2,
                "ascii4" => LengthHeader::Ascii4,
                "bcd2" => LengthHeader::Bcd2,
                other => return Err(invalid(format!("length header {other:?}"))),
            };
            a.tpdu = l.tpdu;
            if let Some(m) = l.frame_len_max {
                a.frame_len_max = m;
            }
            if let Some(m) = l.connections_max {
                a.connections_max = m;
            }
            a.in_flight_per_connection_max = at_least_one(
                "[[listener]] in_flight_per_connection_max",
                l.in_flight_per_connection_max,
                a.in_flight_per_connection_max,
            )?;
            for (name, set, field) in [
                ("idle_timeout_s", l.idle_timeout_s, &mut a.idle_timeout),
                (
                    "handshake_timeout_s",
                    l.handshake_timeout_s,
                    &mut a.handshake_timeout,
                ),
                ("write_timeout_s", l.write_timeout_s, &mut a.write_timeout),
            ] {
                match set {
                    Some(0) => {
                        return Err(invalid(format!("[[listener]] {name} must be at least 1")))
                    }
                    Some(s) => *field = Duration::from_secs(s),
                    None => {}
                }
            }
            a.send_buffer_bytes = l.send_buffer_bytes;
            let mapped = client_institutions(l)?;
            a.tls =
                match (&l.tls_cert, &l.tls_key) {
                    (Some(c), Some(k)) => Some(
                        match (mapped, l.tls_client_ca.as_deref()) {
                            (Some(map), Some(ca)) => {
                                TlsSettings::with_client_institutions(c, k, ca, map)
                            }
                            _ => TlsSettings::from_pem_files(c, k, l.tls_client_ca.as_deref()),
                        }
                        .map_err(|e| invalid(e.to_string()))?,
                    ),
                    (None, None) if !l.client_certificates.is_empty() => return Err(invalid(
                        "[[listener.client_certificate]] needs tls_cert and tls_key (mutual TLS)",
                    )),
                    (None, None) => None,
                    _ => return Err(invalid("tls_cert and tls_key go together")),
                };
            out.push(a);
        }
        Ok(out)
    }

    /// The issuer link of each `[[bank]]` entry.
    pub fn link_configs(&self) -> Result<Vec<IssuerConfig>, ConfigError> {
        let mut out = Vec::new();
        for b in &self.banks {
            let mut lc = IssuerConfig::new(
                inst(&b.institution)?,
                b.address.clone(),
                token("zmk", &b.zmk)?,
            );
            lc.zpk = b.zpk.as_deref().map(|z| token("zpk", z)).transpose()?;
            lc.tak = tak_of(
                &format!("[[bank]] {}", b.institution),
                b.tak.as_deref(),
                b.mac_algorithm,
            )?;
            lc.mac = bank_mac(b)?;
            lc.mac_algorithm = b.mac_algorithm;
            lc.tls = bank_tls(b)?;
            lc.key_exchange_on_sign_on = b.key_exchange_on_sign_on;
            lc.in_flight_max = at_least_one(
                "[[bank]] requests_in_flight_max",
                b.requests_in_flight_max,
                lc.in_flight_max,
            )?;
            lc.answer_checks_in_flight_max = at_least_one(
                "[[bank]] answer_checks_in_flight_max",
                b.answer_checks_in_flight_max,
                lc.answer_checks_in_flight_max,
            )?;
            out.push(lc);
        }
        Ok(out)
    }
}

/// A TAK token of `section` that must be a key of `algorithm` (an SM4 TAK is scheme `G`, an
/// AES one `A`, a 3DES one `U`): a key of another algorithm would MAC differently from the
/// other end.
pub(super) fn tak_of(
    section: &str,
    tak: Option<&str>,
    algorithm: LinkMacAlgorithm,
) -> Result<Option<Tak>, ConfigError> {
    let Some(text) = tak else {
        return Ok(None);
    };
    let tak: Tak = token("tak", text)?;
    let scheme = tak.token().scheme();
    if LinkMacAlgorithm::of_scheme(scheme) != Some(algorithm) {
        return Err(invalid(format!(
            "{section}: tak is a key of scheme {}, not of mac_algorithm = \"{algorithm}\" \
             (scheme {})",
            scheme.as_char(),
            algorithm.key_scheme().as_char()
        )));
    }
    Ok(Some(tak))
}

/// Whether a bank's link MACs its messages: always, unless the bank says `mac = false` and
/// `insecure_no_mac = true` together.
pub(super) fn bank_mac(b: &BankSection) -> Result<bool, ConfigError> {
    match (b.mac, b.insecure_no_mac) {
        (true, false) => Ok(true),
        (false, true) => {
            tracing::warn!(
                bank = %b.institution,
                "bank link without MACs (insecure_no_mac): its answers are accepted unchecked"
            );
            Ok(false)
        }
        (false, false) => Err(invalid(format!(
            "[[bank]] {}: MACs are mandatory on bank links; `mac = false` needs \
             `insecure_no_mac = true` too",
            b.institution
        ))),
        (true, true) => Err(invalid(format!(
            "[[bank]] {}: `insecure_no_mac = true` goes with `mac = false`",
            b.institution
        ))),
    }
}

/// Mutual TLS on a bank's link: all four `tls_*` keys, or none (plain TCP).
pub(super) fn bank_tls(b: &BankSection) -> Result<Option<BankTls>, ConfigError> {
    match (&b.tls_ca, &b.tls_cert, &b.tls_key, &b.tls_server_name) {
        (None, None, None, None) => Ok(None),
        (Some(ca), Some(cert), Some(key), Some(name)) => {
            BankTls::from_pem_files(ca, cert, key, name)
                .map(Some)
                .map_err(|e| invalid(format!("[[bank]] {}: {e}", b.institution)))
        }
        _ => Err(invalid(format!(
            "[[bank]] {}: tls_ca, tls_cert, tls_key and tls_server_name go together",
            b.institution
        ))),
    }
}

/// Refuses an `[[acquirer]]` without a TAK unless a listener marked
/// `mac_free_trusted_in_house` serves that institution alone: elsewhere nothing would prove
/// that its requests come from it (`pipeline::AcquirerIdentity`).
pub(super) fn every_acquirer_has_a_tak(
    keys: &PipelineKeys,
    listeners: &[AcquirerListener],
) -> Result<(), ConfigError> {
    for (id, k) in &keys.acquirers {
        let in_house = listeners
            .iter()
            .any(|l| l.link.mac_free_trusted_in_house && l.link.identity.fixed() == Some(id));
        if k.tak.is_none() && !in_house {
            return Err(invalid(format!(
                "[[acquirer]] {id} has no tak and no listener with mac_free_trusted_in_house \
                 serves it"
            )));
        }
    }
    Ok(())
}
