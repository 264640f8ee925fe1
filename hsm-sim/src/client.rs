//! A network HSM client: the [`Hsm`] trait over the payShield host-command protocol.
//!
//! Why this exists: the switch holds an `Arc<dyn Hsm>`; with this client that HSM can be our
//! `hsm-sim` server (or a payShield for the standard commands) without code changes.
//!
//! - A pool of [`ClientConfig::connections`] TCP connections, used round robin and re-opened
//!   lazily after a failure.
//! - Pipelining: each request gets a unique header (decimal counter of `header_len` digits);
//!   a reader task per connection matches responses to waiting callers by header, so many
//!   requests are in flight on one connection ([`ClientConfig::in_flight_max`] per connection).
//! - Timeouts: a request not answered within [`ClientConfig::timeout_ms`] fails with
//!   [`HsmError::Unavailable`]. That connection is then retired (no new requests on it), so a
//!   late answer can never be matched to a newer request that reused its header.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::card_crypto::CardAlgorithm;
use crate::codec::{frame, split_frame, Request, Response, HEADER_LEN_DEFAULT};
use crate::cvv::CvvKind;
use crate::datakey::DataKey;
use crate::error::HsmError;
use crate::hsm::{
    ArpcMethod, ArqcOutcome, ArqcRequest, CardKeyDerivation, CardMasterKey, Diagnostics,
    GeneratedKey, Hsm, PinBlockIn, PinVerificationMethod, ScriptContext, SsseCardRef,
    TranslatedPin,
};
use crate::keys::{
    Cvk, DataKeyToken, ImkSmc, ImkSmi, KeyScheme, KeyToken, KeyType, MacKey, PinKey, Pvk,
    SsseExternalAuthKey, SsseInternalAuthKey, SssePinUnblockKey, Tpk, TypedKey, Zmk, Zpk,
};
use crate::mac::{MacAlgorithm, MacPadding};
use crate::pin::{account_number_12, EncryptedPinBlock, PinBlockFormat};

/// Client configuration.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// HSM address.
    pub addr: SocketAddr,
    /// Pool size.
    pub connections: usize,
    /// Per-request timeout.
    pub timeout_ms: u64,
    /// Header length (must match the server).
    pub header_len: usize,
    /// Maximum requests in flight per connection.
    pub in_flight_max: usize,
}

impl ClientConfig {
    /// Defaults for `addr`: 4 connections, 2 s timeout, 4-character header, 512 in flight.
    pub fn new(addr: SocketAddr) -> ClientConfig {
        ClientConfig {
            addr,
            connections: 4,
            timeout_ms: 2_000,
            header_len: HEADER_LEN_DEFAULT,
            in_flight_max: 512,
        }
    }
}

/// In-flight bound per connection: the configured maximum, but at most half the header space
/// (a 0-character header allows one request at a time).
fn in_flight_bound(config: &ClientConfig) -> usize {
    let space = 10usize.saturating_pow(config.header_len.min(19) as u32);
    config.in_flight_max.min(space / 2).max(1)
}

type Pending = Arc<Mutex<HashMap<Vec<u8>, oneshot::Sender<Response>>>>;

struct Conn {
    tx: mpsc::Sender<Vec<u8>>,
    pending: Pending,
    alive: Arc<AtomicBool>,
    permits: Arc<Semaphore>,
}

impl Conn {
    async fn open(config: &ClientConfig) -> Result<Arc<Conn>, HsmError> {
        let connect = TcpStream::connect(config.addr);
        let stream = tokio::time::timeout(Duration::from_millis(config.timeout_ms), connect)
            .await
            .map_err(|_| HsmError::Unavailable("connect timeout".into()))?
            .map_err(|e| HsmError::Unavailable(format!("connect: {e}")))?;
        stream
            .set_nodelay(true)
            .map_err(|e| HsmError::Unavailable(format!("nodelay: {e}")))?;
        let (mut rd, mut wr) = stream.into_split();
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(config.in_flight_max.max(1));
        let pending: Pending = Arc::new(Mutex::new(HashMap::new()));
        let alive = Arc::new(AtomicBool::new(true));
        let alive_w = Arc::clone(&alive);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(16 * 1024);
            while let Some(f) = rx.recv().await {
                batch.extend_from_slice(&f);
                while let Ok(more) = rx.try_recv() {
                    batch.extend_from_slice(&more);
                    if batch.len() > 64 * 1024 {
                        break;
                    }
                }
                if wr.write_all(&batch).await.is_err() {
                    alive_w.store(false, Ordering::Release);
                    return;
                }
                batch.clear();
            }
        });
        let pending_r = Arc::clone(&pending);
        let alive_r = Arc::clone(&alive);
        let header_len = config.header_len;
        tokio::spawn(async move {
            let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
            let mut chunk = vec![0u8; 16 * 1024];
            'read: loop {
                let n = match rd.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                buf.extend_from_slice(&chunk[..n]);
                let mut used_total = 0;
                loop {
                    match split_frame(&buf[used_total..]) {
                        Ok(Some((payload, used))) => {
                            if let Ok(resp) = Response::decode(payload, header_len) {
                                let waiter = pending_r
                                    .lock()
                                    .ok()
                                    .and_then(|mut m| m.remove(&resp.header));
                                if let Some(w) = waiter {
                                    let _ = w.send(resp);
                                }
                            }
                            used_total += used;
                        }
                        Ok(None) => break,
                        Err(_) => break 'read,
                    }
                }
                buf.drain(..used_total);
            }
            alive_r.store(false, Ordering::Release);
            if let Ok(mut m) = pending_r.lock() {
                m.clear(); // dropping the senders wakes every waiter with an error
            }
        });
        Ok(Arc::new(Conn {
            tx,
            pending,
            alive,
            permits: Arc::new(Semaphore::new(in_flight_bound(config))),
        }))
    }
}

/// The network HSM client (cheap to share: wrap in `Arc`).
pub struct HsmClient {
    config: ClientConfig,
    slots: Vec<tokio::sync::Mutex<Option<Arc<Conn>>>>,
    next_slot: AtomicUsize,
    next_header: AtomicU64,
}

impl std::fmt::Debug for HsmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HsmClient({})", self.config.addr)
    }
}

impl HsmClient {
    /// A client; connections open on first use.
    pub fn new(config: ClientConfig) -> HsmClient {
        let slots = (0..config.connections.max(1))
            .map(|_| tokio::sync::Mutex::new(None))
            .collect();
        HsmClient {
            config,
            slots,
            next_slot: AtomicUsize::new(0),
            next_header: AtomicU64::new(0),
        }
    }

    async fn conn(&self) -> Result<Arc<Conn>, HsmError> {
        let i = self.next_slot.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let mut slot = self.slots[i].lock().await;
        if let Some(c) = slot.as_ref() {
            if c.alive.load(Ordering::Acquire) {
                return Ok(Arc::clone(c));
            }
        }
        let c = Conn::open(&self.config).await?;
        *slot = Some(Arc::clone(&c));
        Ok(c)
    }

    fn header(&self) -> Vec<u8> {
        let n = self.next_header.fetch_add(1, Ordering::Relaxed);
        let width = self.config.header_len.min(19);
        let modulo = 10u64.saturating_pow(width as u32);
        let mut h = format!("{:0width$}", n % modulo.max(1), width = width).into_bytes();
        h.resize(self.config.header_len, b'0');
        h
    }

    /// Send one command and wait for its response body (`Err` for a non-`00` error code).
    pub async fn call(&self, command: &[u8; 2], body: &[u8]) -> Result<Vec<u8>, HsmError> {
        let conn = self.conn().await?;
        let _permit = conn
            .permits
            .acquire()
            .await
            .map_err(|_| HsmError::Unavailable("closed".into()))?;
        let (tx, rx) = oneshot::channel();
        let header = {
            // A header is unique among this connection's pending requests (the permit bound is
            // below the header space, so a free one always exists).
            let mut pending = conn.pending.lock().map_err(|_| HsmError::Internal)?;
            let mut h = self.header();
            while pending.contains_key(&h) {
                h = self.header();
            }
            pending.insert(h.clone(), tx);
            h
        };
        let req = Request {
            header: header.clone(),
            command: *command,
            body: body.to_vec(),
        };
        let bytes = frame(&req.encode())?;
        if conn.tx.send(bytes).await.is_err() {
            conn.alive.store(false, Ordering::Release);
            return Err(HsmError::Unavailable("connection closed".into()));
        }
        match tokio::time::timeout(Duration::from_millis(self.config.timeout_ms), rx).await {
            Ok(Ok(resp)) => resp.into_result(),
            Ok(Err(_)) => Err(HsmError::Unavailable("connection lost".into())),
            Err(_) => {
                if let Ok(mut m) = conn.pending.lock() {
                    m.remove(&header);
                }
                // A late answer could later match a reused header: retire this connection so
                // no new request is sent on it (requests already in flight still complete).
                conn.alive.store(false, Ordering::Release);
                Err(HsmError::Unavailable("timeout".into()))
            }
        }
    }

    async fn text(&self, command: &[u8; 2], body: String) -> Result<String, HsmError> {
        let out = self.call(command, body.as_bytes()).await?;
        String::from_utf8(out).map_err(|_| HsmError::InvalidInput)
    }

    async fn verify(&self, command: &[u8; 2], body: Vec<u8>) -> Result<bool, HsmError> {
        match self.call(command, &body).await {
            Ok(_) => Ok(true),
            Err(HsmError::VerificationFailed) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

fn alg_char(a: CardAlgorithm) -> char {
    match a {
        CardAlgorithm::Tdes => 'T',
        CardAlgorithm::Sm4 => 'S',
    }
}

fn pan_field(pan: &str, psn: &str) -> Result<String, HsmError> {
    if pan.is_empty() || pan.len() > 19 {
        return Err(HsmError::InvalidAccount);
    }
    let psn2 = match psn.len() {
        0 => "00".to_string(),
        1 => format!("0{psn}"),
        n => psn[n - 2..].to_string(),
    };
    Ok(format!("{:02}{pan}{psn2}", pan.len()))
}

fn script_fields(ctx: &ScriptContext) -> Result<String, HsmError> {
    Ok(format!(
        "{}{}{}",
        pan_field(&ctx.pan, &ctx.psn)?,
        hex::encode_upper(ctx.atc),
        hex::encode_upper(ctx.arqc)
    ))
}

fn pin_key_fields(key: &PinKey) -> String {
    let (kt, tok) = key.parts();
    format!("{}{}", kt.code(), tok)
}

fn parse_kcv(s: &str) -> Result<[u8; 3], HsmError> {
    let mut k = [0u8; 3];
    hex::decode_to_slice(s, &mut k).map_err(|_| HsmError::InvalidInput)?;
    Ok(k)
}

fn split_token_kcv(s: &str) -> Result<(KeyToken, Option<String>, [u8; 3]), HsmError> {
    let (tok, used) = KeyToken::parse_prefix(s.as_bytes())?;
    let rest = s.get(used..).ok_or(HsmError::InvalidInput)?;
    let kcv_at = rest.len().checked_sub(6).ok_or(HsmError::InvalidInput)?;
    let under = if kcv_at > 0 {
        Some(rest[..kcv_at].to_string())
    } else {
        None
    };
    Ok((tok, under, parse_kcv(&rest[kcv_at..])?))
}

#[async_trait]
impl Hsm for HsmClient {
    async fn translate_pin_tpk_to_zpk(
        &self,
        tpk: &Tpk,
        zpk: &Zpk,
        pin: &PinBlockIn,
        out_format: PinBlockFormat,
    ) -> Result<TranslatedPin, HsmError> {
        translate(self, b"CA", tpk.token(), zpk, pin, out_format).await
    }

    async fn translate_pin_zpk_to_zpk(
        &self,
        source: &Zpk,
        destination: &Zpk,
        pin: &PinBlockIn,
        out_format: PinBlockFormat,
    ) -> Result<TranslatedPin, HsmError> {
        translate(self, b"CC", source.token(), destination, pin, out_format).await
    }

    async fn verify_pin(
        &self,
        key: &PinKey,
        pin: &PinBlockIn,
        method: &PinVerificationMethod,
    ) -> Result<bool, HsmError> {
        let account = account_number_12(&pin.pan)?;
        let (tpk, tok) = match key {
            PinKey::Tpk(k) => (true, k.token()),
            PinKey::Zpk(k) => (false, k.token()),
        };
        match method {
            PinVerificationMethod::Ibm3624 {
                pvk,
                decimalisation_table,
                validation_data,
                offset,
                check_length,
            } => {
                let mut v = validation_data.clone();
                while v.len() < 12 {
                    v.push('F');
                }
                let mut o = offset.clone();
                while o.len() < 12 {
                    o.push('F');
                }
                let body = format!(
                    "{tok}{}12{}{}{:02}{account}{decimalisation_table}{v}{o}",
                    pvk.token(),
                    pin.block.to_hex(),
                    pin.format.code(),
                    check_length
                );
                self.verify(if tpk { b"DA" } else { b"EA" }, body.into_bytes())
                    .await
            }
            PinVerificationMethod::VisaPvv { pvk, pvki, pvv } => {
                let body = format!(
                    "{tok}{}{}{}{account}{pvki}{pvv}",
                    pvk.token(),
                    pin.block.to_hex(),
                    pin.format.code()
                );
                self.verify(if tpk { b"DC" } else { b"EC" }, body.into_bytes())
                    .await
            }
        }
    }

    async fn generate_ibm_offset(
        &self,
        key: &PinKey,
        pin: &PinBlockIn,
        pvk: &Pvk,
        decimalisation_table: &str,
        validation_data: &str,
    ) -> Result<String, HsmError> {
        let mut v = validation_data.to_string();
        while v.len() < 12 {
            v.push('F');
        }
        let body = format!(
            "{}{}{}{}04{}{decimalisation_table}{v}",
            pin_key_fields(key),
            pvk.token(),
            pin.block.to_hex(),
            pin.format.code(),
            account_number_12(&pin.pan)?
        );
        let out = self.text(b"BK", body).await?;
        Ok(out.trim_end_matches('F').to_string())
    }

    async fn generate_pvv(
        &self,
        key: &PinKey,
        pin: &PinBlockIn,
        pvk: &Pvk,
        pvki: u8,
    ) -> Result<String, HsmError> {
        let body = format!(
            "{}{}{}{}{}{pvki}",
            pin_key_fields(key),
            pvk.token(),
            pin.block.to_hex(),
            pin.format.code(),
            account_number_12(&pin.pan)?
        );
        self.text(b"FW", body).await
    }

    async fn generate_cvv(
        &self,
        cvk: &Cvk,
        kind: CvvKind,
        pan: &str,
        expiry_yymm: &str,
        service_code: &str,
    ) -> Result<String, HsmError> {
        let sc = kind.effective_service_code(service_code);
        self.text(b"CW", format!("{}{pan};{expiry_yymm}{sc}", cvk.token()))
            .await
    }

    async fn verify_cvv(
        &self,
        cvk: &Cvk,
        kind: CvvKind,
        pan: &str,
        expiry_yymm: &str,
        service_code: &str,
        cvv: &str,
    ) -> Result<bool, HsmError> {
        if cvv.len() != 3 {
            return Err(HsmError::InvalidInput);
        }
        let sc = kind.effective_service_code(service_code);
        self.verify(
            b"CY",
            format!("{}{cvv}{pan};{expiry_yymm}{sc}", cvk.token()).into_bytes(),
        )
        .await
    }

    async fn verify_arqc_and_generate_arpc(
        &self,
        req: &ArqcRequest,
    ) -> Result<ArqcOutcome, HsmError> {
        let (method, tail) = match req.arpc {
            ArpcMethod::None => ('0', String::new()),
            ArpcMethod::Method1 { arc } => ('1', hex::encode_upper(arc)),
            ArpcMethod::Method2 {
                csu,
                proprietary_len,
                proprietary,
            } => {
                let n = usize::from(proprietary_len.min(8));
                (
                    '2',
                    format!(
                        "{}{n}{}",
                        hex::encode_upper(csu),
                        hex::encode_upper(&proprietary[..n])
                    ),
                )
            }
        };
        let body = format!(
            "{}{method}{}{}{}{:04X}{}{}{tail}",
            alg_char(req.algorithm),
            req.imk_ac.token(),
            pan_field(&req.pan, &req.psn)?,
            hex::encode_upper(req.atc),
            req.transaction_data.len(),
            hex::encode_upper(&req.transaction_data),
            hex::encode_upper(req.arqc)
        );
        match self.text(b"XA", body).await {
            Ok(arpc_hex) => {
                let arpc = hex::decode(&arpc_hex).map_err(|_| HsmError::InvalidInput)?;
                Ok(ArqcOutcome {
                    verified: true,
                    arpc: if arpc.is_empty() { None } else { Some(arpc) },
                })
            }
            Err(HsmError::VerificationFailed) => Ok(ArqcOutcome {
                verified: false,
                arpc: None,
            }),
            Err(e) => Err(e),
        }
    }

    async fn issuer_script_mac(
        &self,
        imk_smi: &ImkSmi,
        ctx: &ScriptContext,
        header: [u8; 5],
        data: &[u8],
    ) -> Result<[u8; 4], HsmError> {
        let body = format!(
            "{}{}{}{}{:04X}{}",
            alg_char(ctx.algorithm),
            imk_smi.token(),
            script_fields(ctx)?,
            hex::encode_upper(header),
            data.len(),
            hex::encode_upper(data)
        );
        let out = self.text(b"XC", body).await?;
        let mut m = [0u8; 4];
        hex::decode_to_slice(out, &mut m).map_err(|_| HsmError::InvalidInput)?;
        Ok(m)
    }

    async fn encrypt_pin_change(
        &self,
        imk_smc: &ImkSmc,
        ctx: &ScriptContext,
        key: &PinKey,
        new_pin: &PinBlockIn,
    ) -> Result<Vec<u8>, HsmError> {
        let body = format!(
            "{}{}{}{}{}{}",
            alg_char(ctx.algorithm),
            imk_smc.token(),
            pin_key_fields(key),
            new_pin.block.to_hex(),
            new_pin.format.code(),
            script_fields(ctx)?
        );
        hex::decode(self.text(b"XE", body).await?).map_err(|_| HsmError::InvalidInput)
    }

    async fn verify_ssse_internal_auth(
        &self,
        key: &SsseInternalAuthKey,
        card: &SsseCardRef,
        challenge: &[u8],
        response: &[u8],
    ) -> Result<bool, HsmError> {
        if response.len() != card.algorithm.block_len() {
            return Ok(false);
        }
        let body = format!(
            "{}{}{}{}{:02X}{}{}",
            alg_char(card.algorithm),
            key.token(),
            card.city_code,
            card.card_id,
            challenge.len(),
            hex::encode_upper(challenge),
            hex::encode_upper(response)
        );
        self.verify(b"XG", body.into_bytes()).await
    }

    async fn ssse_external_auth_cryptogram(
        &self,
        key: &SsseExternalAuthKey,
        card: &SsseCardRef,
        card_challenge: &[u8],
    ) -> Result<Vec<u8>, HsmError> {
        let body = format!(
            "{}{}{}{}{:02X}{}",
            alg_char(card.algorithm),
            key.token(),
            card.city_code,
            card.card_id,
            card_challenge.len(),
            hex::encode_upper(card_challenge)
        );
        hex::decode(self.text(b"XI", body).await?).map_err(|_| HsmError::InvalidInput)
    }

    async fn ssse_pin_unblock_mac(
        &self,
        key: &SssePinUnblockKey,
        card: &SsseCardRef,
        challenge: &[u8],
        new_pin_bcd: &[u8],
    ) -> Result<[u8; 4], HsmError> {
        if challenge.len() > 0xFF || new_pin_bcd.len() > 0xFF {
            return Err(HsmError::InvalidInput);
        }
        let mut body = format!(
            "{}{}{}{}{:02X}{}{:02X}{}",
            alg_char(card.algorithm),
            key.token(),
            card.city_code,
            card.card_id,
            challenge.len(),
            hex::encode_upper(challenge),
            new_pin_bcd.len(),
            hex::encode_upper(new_pin_bcd)
        );
        // The body carries the new PIN: wipe it once sent.
        let out = self.call(b"XU", body.as_bytes()).await;
        zeroize::Zeroize::zeroize(&mut body);
        let mut mac = [0u8; 4];
        hex::decode_to_slice(out?, &mut mac).map_err(|_| HsmError::InvalidInput)?;
        Ok(mac)
    }

    async fn generate_mac(
        &self,
        key: &MacKey,
        algorithm: MacAlgorithm,
        padding: MacPadding,
        data: &[u8],
    ) -> Result<Vec<u8>, HsmError> {
        let size = if algorithm == MacAlgorithm::AesCmac {
            '2'
        } else {
            '1'
        };
        let body = mac_body(key, algorithm, padding, size, data, None)?;
        hex::decode(self.call(b"M6", &body).await?).map_err(|_| HsmError::InvalidInput)
    }

    async fn verify_mac(
        &self,
        key: &MacKey,
        algorithm: MacAlgorithm,
        padding: MacPadding,
        data: &[u8],
        mac: &[u8],
    ) -> Result<bool, HsmError> {
        let size = match mac.len() {
            4 => '0',
            8 => '1',
            16 => '2',
            _ => return Err(HsmError::InvalidInput),
        };
        let body = mac_body(key, algorithm, padding, size, data, Some(mac))?;
        self.verify(b"M8", body).await
    }

    async fn generate_key(
        &self,
        key_type: KeyType,
        scheme: KeyScheme,
        export_under: Option<&Zmk>,
    ) -> Result<GeneratedKey, HsmError> {
        let body = match export_under {
            None => format!("0{}{}", key_type.code(), scheme.as_char()),
            Some(z) => format!(
                "1{}{}{}{}",
                key_type.code(),
                scheme.as_char(),
                z.token(),
                scheme.as_char()
            ),
        };
        let out = self.text(b"A0", body).await?;
        let (token, under_zmk, check_value) = split_token_kcv(&out)?;
        Ok(GeneratedKey {
            token,
            under_zmk,
            check_value,
        })
    }

    async fn import_key(
        &self,
        key_type: KeyType,
        zmk: &Zmk,
        key_under_zmk: &str,
        lmk_scheme: KeyScheme,
    ) -> Result<GeneratedKey, HsmError> {
        let out = self
            .text(
                b"A6",
                format!(
                    "{}{}{key_under_zmk}{}",
                    key_type.code(),
                    zmk.token(),
                    lmk_scheme.as_char()
                ),
            )
            .await?;
        let (token, _, check_value) = split_token_kcv(&out)?;
        Ok(GeneratedKey {
            token,
            under_zmk: None,
            check_value,
        })
    }

    async fn export_key(
        &self,
        key_type: KeyType,
        zmk: &Zmk,
        key: &KeyToken,
        zmk_scheme: KeyScheme,
    ) -> Result<(String, [u8; 3]), HsmError> {
        let out = self
            .text(
                b"A8",
                format!(
                    "{}{}{key}{}",
                    key_type.code(),
                    zmk.token(),
                    zmk_scheme.as_char()
                ),
            )
            .await?;
        let at = out.len().checked_sub(6).ok_or(HsmError::InvalidInput)?;
        Ok((out[..at].to_string(), parse_kcv(&out[at..])?))
    }

    async fn form_key_from_components(
        &self,
        key_type: KeyType,
        scheme: KeyScheme,
        components: &[KeyToken],
    ) -> Result<GeneratedKey, HsmError> {
        if !(2..=9).contains(&components.len()) {
            return Err(HsmError::InvalidInput);
        }
        let mut body = format!(
            "{}{}{}",
            components.len(),
            key_type.code(),
            scheme.as_char()
        );
        for c in components {
            body.push_str(&c.to_string());
        }
        let out = self.text(b"A4", body).await?;
        let (token, _, check_value) = split_token_kcv(&out)?;
        Ok(GeneratedKey {
            token,
            under_zmk: None,
            check_value,
        })
    }

    async fn key_check_value(
        &self,
        key_type: KeyType,
        key: &KeyToken,
    ) -> Result<[u8; 3], HsmError> {
        let flag = if key.scheme() == KeyScheme::T {
            '2'
        } else {
            '1'
        };
        parse_kcv(
            &self
                .text(b"BU", format!("FF{flag}{key};{}", key_type.code()))
                .await?,
        )
    }

    async fn random_bytes(&self, len: usize) -> Result<Vec<u8>, HsmError> {
        if len > 999 {
            return Err(HsmError::DataLength);
        }
        hex::decode(self.text(b"XK", format!("{len:03}")).await?)
            .map_err(|_| HsmError::InvalidInput)
    }

    async fn generate_data_key(&self) -> Result<(DataKey, DataKeyToken), HsmError> {
        let mut out = self.call(b"XM", b"").await?;
        let result = (|| {
            let clear = out.get(..64).ok_or(HsmError::InvalidInput)?;
            let mut raw = [0u8; 32];
            hex::decode_to_slice(clear, &mut raw).map_err(|_| HsmError::InvalidInput)?;
            let key = DataKey::from_bytes(raw);
            zeroize::Zeroize::zeroize(&mut raw);
            let token_text = std::str::from_utf8(&out[64..]).map_err(|_| HsmError::InvalidInput)?;
            let token: DataKeyToken = token_text.parse()?;
            Ok((key?, token))
        })();
        zeroize::Zeroize::zeroize(&mut out);
        result
    }

    async fn unwrap_data_key(&self, token: &DataKeyToken) -> Result<DataKey, HsmError> {
        let mut out = self.call(b"XO", token.to_string().as_bytes()).await?;
        let mut raw = [0u8; 32];
        let r = hex::decode_to_slice(&out, &mut raw).map_err(|_| HsmError::InvalidInput);
        zeroize::Zeroize::zeroize(&mut out);
        r?;
        let key = DataKey::from_bytes(raw);
        zeroize::Zeroize::zeroize(&mut raw);
        key
    }

    async fn derive_card_key_under_zmk(
        &self,
        master: &CardMasterKey,
        derivation: &CardKeyDerivation,
        zmk: &Zmk,
    ) -> Result<(String, [u8; 3]), HsmError> {
        let (kt, tok) = master.parts();
        let how = match derivation {
            CardKeyDerivation::Emv {
                algorithm,
                pan,
                psn,
            } => {
                format!("E{}{}", alg_char(*algorithm), pan_field(pan, psn)?)
            }
            CardKeyDerivation::Ssse(card) => format!(
                "S{}{}{}",
                alg_char(card.algorithm),
                card.city_code,
                card.card_id
            ),
        };
        let out = self
            .text(b"XQ", format!("{}{tok}{how}{}", kt.code(), zmk.token()))
            .await?;
        let at = out.len().checked_sub(6).ok_or(HsmError::InvalidInput)?;
        Ok((out[..at].to_string(), parse_kcv(&out[at..])?))
    }

    async fn diagnostics(&self) -> Result<Diagnostics, HsmError> {
        let out = self.text(b"NC", String::new()).await?;
        let (lmk, fw) = out.split_at_checked(16).ok_or(HsmError::InvalidInput)?;
        Ok(Diagnostics {
            lmk_check_value: lmk.chars().take(6).collect(),
            firmware: fw.to_string(),
        })
    }
}

async fn translate(
    client: &HsmClient,
    command: &[u8; 2],
    src: &KeyToken,
    dst: &Zpk,
    pin: &PinBlockIn,
    out_format: PinBlockFormat,
) -> Result<TranslatedPin, HsmError> {
    let account = account_number_12(&pin.pan)?;
    let mut body = format!(
        "{src}{dst}12{}{}{}{account}",
        pin.block.to_hex(),
        pin.format.code(),
        out_format.code()
    );
    if pin.format == PinBlockFormat::Iso4 || out_format == PinBlockFormat::Iso4 {
        body.push_str(&format!(";{:02}{}", pin.pan.len(), pin.pan));
    }
    let out = client.text(command, body).await?;
    let len: u8 = out
        .get(..2)
        .and_then(|s| s.parse().ok())
        .ok_or(HsmError::InvalidInput)?;
    let block_hex = out
        .get(2..out.len().saturating_sub(2))
        .ok_or(HsmError::InvalidInput)?;
    Ok(TranslatedPin {
        block: EncryptedPinBlock::from_hex(block_hex)?,
        pin_length: len,
    })
}

fn mac_body(
    key: &MacKey,
    algorithm: MacAlgorithm,
    padding: MacPadding,
    size: char,
    data: &[u8],
    mac: Option<&[u8]>,
) -> Result<Vec<u8>, HsmError> {
    if data.len() > 0xFFFF {
        return Err(HsmError::DataLength);
    }
    let (kt, tok) = key.parts();
    let mut body = format!(
        "00{size}{}{}{}{tok}{:04X}",
        char::from(algorithm.code()),
        char::from(padding.code()),
        kt.code(),
        data.len()
    )
    .into_bytes();
    body.extend_from_slice(data);
    if let Some(m) = mac {
        body.extend_from_slice(hex::encode_upper(m).as_bytes());
    }
    Ok(body)
}
