//! Who is calling: the axum extractor [`Caller`] every protected route takes. It authenticates
//! the request (a pinned TLS client certificate, an API key in `Authorization: Bearer`, or the
//! session cookie), checks the CSRF
//! header on a session's state-changing request, and loads the caller's institution and the
//! union of its roles' permissions. A route then asks [`Caller::require`] for its permission
//! and [`Caller::scope`] for what the caller's institution sees.
//!
//! No credentials, or credentials that open nothing (unknown, revoked, ended, expired): 401.
//! A session's POST or DELETE without the right `X-CSRF-Token`: 403. A permission missing:
//! 403. Nothing of another institution: 404 (see [`super::scope`]).

use super::problem::{store_failed, Problem};
use super::token::{hash_presented, same_hash};
use super::{micros, Permission, PermissionSet, Scope};
use crate::http::HttpState;
use crate::store::{now_us, Institution, Store};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, Method};
use axum::response::{IntoResponse, Response};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use uuid::Uuid;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "switch_session";
/// The header carrying a session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// A session's last-seen time is written at most this often (idle expiry is this precise).
const TOUCH_EVERY_US: i64 = 60_000_000;

/// Who acts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A person, logged in.
    User {
        /// Id.
        user_id: Uuid,
        /// Login name.
        username: String,
    },
    /// A machine client with an API key.
    ApiKey {
        /// The key's public id.
        key_id: String,
    },
    /// A machine client proven by its TLS client certificate (`super::machine`).
    Certificate {
        /// The SHA-256 of its certificate's SPKI, hex.
        spki_sha256: String,
        /// Its name in the configuration.
        name: String,
    },
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who.
    pub principal: Principal,
    /// Its institution (tenant).
    pub institution: Institution,
    /// What its roles allow.
    pub permissions: PermissionSet,
    /// The session's token hash (None for an API key).
    pub session: Option<[u8; 32]>,
    /// Where the request came from.
    pub source: SourceAddr,
}

impl Caller {
    /// Ok when the caller holds `p`, else the 403 problem.
    pub fn require(&self, p: Permission) -> Result<(), Problem> {
        if self.permissions.contains(p) {
            Ok(())
        } else {
            Err(Problem::forbidden(p.as_str()))
        }
    }

    /// What the caller's institution sees.
    pub fn scope(&self) -> Scope {
        Scope::of(&self.institution)
    }

    /// The actor named in the audit log and the owner of idempotency keys.
    pub fn actor(&self) -> String {
        match &self.principal {
            Principal::User { user_id, .. } => format!("user:{user_id}"),
            Principal::ApiKey { key_id } => format!("api_key:{key_id}"),
            Principal::Certificate { spki_sha256, .. } => format!("certificate:{spki_sha256}"),
        }
    }

    /// The user's id (None for an API key).
    pub fn user_id(&self) -> Option<Uuid> {
        match &self.principal {
            Principal::User { user_id, .. } => Some(*user_id),
            Principal::ApiKey { .. } | Principal::Certificate { .. } => None,
        }
    }
}

/// The peer address of the connection ("unknown" where the server does not record it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceAddr(pub String);

/// The peer of a connection of the HTTP face's own listener (`node::http_face`), as axum's
/// `ConnectInfo` carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr {
    /// The peer's address.
    pub addr: SocketAddr,
    /// The SHA-256 of the SPKI of the client certificate its TLS handshake verified, if any.
    pub client_spki: Option<[u8; 32]>,
}

impl SourceAddr {
    fn of(parts: &Parts) -> Self {
        let peer = parts
            .extensions
            .get::<ConnectInfo<PeerAddr>>()
            .map(|c| c.0.addr)
            .or_else(|| {
                parts
                    .extensions
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|c| c.0)
            });
        Self(peer.map_or_else(|| "unknown".to_owned(), |p| p.ip().to_string()))
    }
}

impl<T: Send + Sync> FromRequestParts<T> for SourceAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &T) -> Result<Self, Infallible> {
        Ok(Self::of(parts))
    }
}

impl<S: Store> FromRequestParts<Arc<HttpState<S>>> for Caller {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        st: &Arc<HttpState<S>>,
    ) -> Result<Self, Response> {
        authenticate(parts, st)
            .await
            .map_err(IntoResponse::into_response)
    }
}

/// The session cookie's value, if the request has one.
pub fn session_cookie(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_owned())
}

fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

async fn authenticate<S: Store>(parts: &Parts, st: &HttpState<S>) -> Result<Caller, Problem> {
    let source = SourceAddr::of(parts);
    // The connection's proof first: a pinned client certificate is that machine client,
    // whatever else the request carries (the TLS handshake refused an unpinned one).
    let client_spki = parts
        .extensions
        .get::<ConnectInfo<PeerAddr>>()
        .and_then(|c| c.0.client_spki);
    if let Some(spki) = client_spki {
        if let Some(machine) = st.operator.machines.get(&spki) {
            return by_certificate(st, spki, machine, source).await;
        }
    }
    if let Some(key) = bearer(parts) {
        return by_api_key(st, key, source).await;
    }
    let Some(token) = session_cookie(parts) else {
        return Err(Problem::unauthenticated(
            "log in (POST /session) or send an API key (Authorization: Bearer)",
        ));
    };
    let (caller, csrf) = by_session(st, &token, source).await?;
    if !matches!(parts.method, Method::GET | Method::HEAD) {
        let sent = parts
            .headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(hash_presented);
        if !sent.is_some_and(|h| same_hash(&h, &csrf)) {
            return Err(Problem::new(
                axum::http::StatusCode::FORBIDDEN,
                "csrf",
                "CSRF token missing or wrong",
                format!("a state-changing request of a session carries its {CSRF_HEADER} header"),
            ));
        }
    }
    Ok(caller)
}

/// How long a resolved API key is used without asking the store again: a revocation takes
/// effect within this time, and a Prometheus scrape (an API key) still authenticates while the
/// store is down, when its metrics matter most.
pub const KEY_CACHE_TTL_US: i64 = 60_000_000;
/// Most API keys held resolved.
pub const KEY_CACHE_ENTRIES_MAX: usize = 1024;

/// API keys recently resolved: the hash of the key, the caller it makes, and when it expires.
#[derive(Debug, Default)]
pub struct KeyCache(std::sync::Mutex<std::collections::HashMap<[u8; 32], (Caller, i64)>>);

impl KeyCache {
    fn get(&self, hash: &[u8; 32], now: i64) -> Option<Caller> {
        let map = self.0.lock().ok()?;
        map.get(hash)
            .filter(|(_, until)| *until > now)
            .map(|(c, _)| c.clone())
    }

    /// Forgets a key (revoked on this node: no longer honoured here at once; other nodes
    /// within [`KEY_CACHE_TTL_US`]).
    pub(crate) fn forget(&self, hash: &[u8; 32]) {
        if let Ok(mut map) = self.0.lock() {
            map.remove(hash);
        }
    }

    fn put(&self, hash: [u8; 32], caller: &Caller, now: i64) {
        if let Ok(mut map) = self.0.lock() {
            if map.len() >= KEY_CACHE_ENTRIES_MAX {
                map.retain(|_, (_, until)| *until > now);
                if map.len() >= KEY_CACHE_ENTRIES_MAX {
                    map.clear();
                }
            }
            map.insert(hash, (caller.clone(), now + KEY_CACHE_TTL_US));
        }
    }
}

async fn by_api_key<S: Store>(
    st: &HttpState<S>,
    key: &str,
    source: SourceAddr,
) -> Result<Caller, Problem> {
    let hash = hash_presented(key);
    let now = now_us();
    if let Some(mut caller) = st.operator.keys.get(&hash, now) {
        caller.source = source;
        return Ok(caller);
    }
    let caller = resolve_api_key(st, &hash, source).await?;
    st.operator.keys.put(hash, &caller, now);
    Ok(caller)
}

async fn resolve_api_key<S: Store>(
    st: &HttpState<S>,
    hash: &[u8; 32],
    source: SourceAddr,
) -> Result<Caller, Problem> {
    let record = st
        .store
        .api_key(hash)
        .await
        .map_err(store_failed)?
        .filter(|k| k.revoked_at_us.is_none())
        .ok_or_else(|| Problem::unauthenticated("unknown or revoked API key"))?;
    let mut permissions = PermissionSet::default();
    if let Some(role) = st.store.role(&record.role_id).await.map_err(store_failed)? {
        permissions.add_names(&role.permissions);
    }
    Ok(Caller {
        principal: Principal::ApiKey {
            key_id: record.key_id,
        },
        institution: institution(st, &record.institution).await?,
        permissions,
        session: None,
        source,
    })
}

/// The cache key of a machine client: its SPKI hash under a label of its own, so that it can
/// never be the hash of a presented API key.
fn certificate_cache_key(spki: &[u8; 32]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"operator machine client certificate\0");
    ctx.update(spki);
    let mut key = [0u8; 32];
    key.copy_from_slice(ctx.finish().as_ref());
    key
}

async fn by_certificate<S: Store>(
    st: &HttpState<S>,
    spki: [u8; 32],
    machine: &super::machine::MachineClient,
    source: SourceAddr,
) -> Result<Caller, Problem> {
    let cache_key = certificate_cache_key(&spki);
    let now = now_us();
    if let Some(mut caller) = st.operator.keys.get(&cache_key, now) {
        caller.source = source;
        return Ok(caller);
    }
    let role = st
        .store
        .role(&machine.role_id)
        .await
        .map_err(store_failed)?
        .ok_or_else(|| Problem::unauthenticated("the machine client's role is gone"))?;
    let mut permissions = PermissionSet::default();
    permissions.add_names(&role.permissions);
    let caller = Caller {
        principal: Principal::Certificate {
            spki_sha256: hex::encode(spki),
            name: machine.name.clone(),
        },
        institution: institution(st, &machine.institution).await?,
        permissions,
        session: None,
        source,
    };
    st.operator.keys.put(cache_key, &caller, now);
    Ok(caller)
}

async fn by_session<S: Store>(
    st: &HttpState<S>,
    token: &str,
    source: SourceAddr,
) -> Result<(Caller, [u8; 32]), Problem> {
    let hash = hash_presented(token);
    let now = now_us();
    let policy = st.operator.policy;
    let session = st
        .store
        .session(&hash)
        .await
        .map_err(store_failed)?
        .filter(|s| s.ended_at_us.is_none())
        .filter(|s| now - s.last_seen_at_us <= micros(policy.idle_timeout))
        .filter(|s| now - s.created_at_us <= micros(policy.absolute_timeout))
        .ok_or_else(|| Problem::unauthenticated("no session, or it has ended or expired"))?;
    if now - session.last_seen_at_us > TOUCH_EVERY_US {
        st.store
            .touch_session(&hash, now)
            .await
            .map_err(store_failed)?;
    }
    let user = st
        .store
        .user(session.user_id)
        .await
        .map_err(store_failed)?
        .ok_or_else(|| Problem::unauthenticated("the session's user is gone"))?;
    let mut permissions = PermissionSet::default();
    for role in st
        .store
        .user_roles(user.user_id)
        .await
        .map_err(store_failed)?
    {
        permissions.add_names(&role.permissions);
    }
    let caller = Caller {
        principal: Principal::User {
            user_id: user.user_id,
            username: user.username,
        },
        institution: institution(st, &user.institution).await?,
        permissions,
        session: Some(hash),
        source,
    };
    Ok((caller, session.csrf_hash))
}

async fn institution<S: Store>(
    st: &HttpState<S>,
    id: &schemas::domain::InstitutionId,
) -> Result<Institution, Problem> {
    st.store
        .institutions()
        .await
        .map_err(store_failed)?
        .into_iter()
        .find(|i| i.institution_id == *id)
        .ok_or_else(|| Problem::unauthenticated("the caller's institution is gone"))
}
