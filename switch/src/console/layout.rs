//! The frame of every console page: who is logged in, the navigation (only the pages the
//! caller's permissions open), the language switch, and the CSRF token the page's forms carry.
//! [`Page`] is the extractor of a GET: the operator API's [`Caller`] (no session: the login
//! page), the language, and the CSRF cookie the login set.

use super::i18n::{Lang, Tr};
use super::{cookie, html, html_status, CSRF_COOKIE, LANG_COOKIE};
use crate::cms::CmsStore;
use crate::http::HttpState;
use crate::operator::{Caller, Permission};
use askama::Template;
use axum::extract::{FromRequestParts, RawQuery};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use std::sync::Arc;

/// The logged-in operator, as the frame shows them.
#[derive(Debug, Clone)]
pub struct User {
    /// Login name.
    pub username: String,
    /// Institution name.
    pub institution: String,
}

/// What the navigation offers (each from a permission of the caller).
#[derive(Debug, Clone, Copy, Default)]
pub struct Nav {
    /// Live figures: `metrics.read` or `saf.read`.
    pub dashboard: bool,
    /// `transactions.read`.
    pub transactions: bool,
    /// `cards.read`.
    pub cards: bool,
    /// `applications.import`.
    pub batches: bool,
    /// `audit.read`.
    pub audit: bool,
    /// `clearing.read`.
    pub settlement: bool,
    /// `users.read`.
    pub users: bool,
}

impl Nav {
    /// The pages `caller` may open.
    pub fn of(caller: &Caller) -> Self {
        let has = |p| caller.permissions.contains(p);
        Self {
            dashboard: has(Permission::ViewMetrics) || has(Permission::ViewSaf),
            transactions: has(Permission::ViewTransactions),
            cards: has(Permission::ViewCards),
            batches: has(Permission::ImportApplications),
            audit: has(Permission::ReadAuditLog),
            settlement: has(Permission::ViewClearing),
            users: has(Permission::ViewUsers),
        }
    }

    /// The first page the caller may open (the password page when none).
    pub fn first_href(&self) -> String {
        let pages = [
            (self.dashboard, "/console/dashboard"),
            (self.transactions, "/console/transactions"),
            (self.batches, "/console/batches"),
            (self.cards, "/console/cards"),
            (self.settlement, "/console/settlement"),
            (self.audit, "/console/audit"),
            (self.users, "/console/users"),
        ];
        pages
            .iter()
            .find(|(open, _)| *open)
            .map_or("/console/password", |(_, href)| href)
            .to_owned()
    }
}

/// A page's frame, and the caller behind it.
#[derive(Debug, Clone)]
pub struct Page {
    /// Strings of the chosen language.
    pub tr: Tr,
    /// The operator (None on the login page).
    pub user: Option<User>,
    /// The navigation.
    pub nav: Nav,
    /// The session's CSRF token (for the forms).
    pub csrf: String,
    /// This page's path and query (for the language switch to come back to).
    pub here: String,
    /// The section highlighted in the navigation.
    pub section: &'static str,
    /// The caller (None on the login page).
    pub caller: Option<Caller>,
}

impl Page {
    /// The frame of a page without a session (login, refused).
    pub fn anonymous(tr: Tr, here: &str) -> Self {
        Self {
            tr,
            user: None,
            nav: Nav::default(),
            csrf: String::new(),
            here: here.to_owned(),
            section: "",
            caller: None,
        }
    }

    /// The frame of `caller`'s page.
    pub fn of(caller: Caller, tr: Tr, csrf: String, here: &str) -> Self {
        Self {
            tr,
            user: Some(User {
                username: match &caller.principal {
                    crate::operator::Principal::User { username, .. } => username.clone(),
                    crate::operator::Principal::ApiKey { key_id } => key_id.clone(),
                    crate::operator::Principal::Certificate { name, .. } => name.clone(),
                },
                institution: caller.institution.name.clone(),
            }),
            nav: Nav::of(&caller),
            csrf,
            here: here.to_owned(),
            section: "",
            caller: Some(caller),
        }
    }

    /// The same frame with `section` highlighted.
    pub fn in_section(mut self, section: &'static str) -> Self {
        self.section = section;
        self
    }

    /// The caller (every page but login has one).
    pub fn who(&self) -> Option<Caller> {
        self.caller.clone()
    }

    /// The other language's switch link.
    pub fn lang_href(&self) -> String {
        let to = if self.tr.is_en() { "zh" } else { "en" };
        let back: String = form_urlencoded::byte_serialize(self.here.as_bytes()).collect();
        format!("/console/lang?to={to}&back={back}")
    }

    /// A fresh `Idempotency-Key` for a form.
    pub fn idem(&self) -> String {
        super::idempotency_key()
    }
}

impl<S: CmsStore> FromRequestParts<Arc<HttpState<S>>> for Page {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        st: &Arc<HttpState<S>>,
    ) -> Result<Self, Response> {
        let tr = Tr(Lang::of(&parts.headers, None));
        let caller = Caller::from_request_parts(parts, st)
            .await
            .map_err(|r| super::refused(r.status(), &parts.headers))?;
        let csrf = cookie(&parts.headers, CSRF_COOKIE).unwrap_or_default();
        let here = parts
            .uri
            .path_and_query()
            .map_or("/console/", |p| p.as_str())
            .to_owned();
        Ok(Page::of(caller, tr, csrf, &here))
    }
}

/// The page of a refused request (403 or 404 from the API).
#[derive(Template)]
#[template(path = "console/refused.html")]
pub struct Refused {
    /// Frame.
    pub page: Page,
    /// The API's status.
    pub status: u16,
    /// What the API said.
    pub detail: String,
}

/// An error page inside the frame: what the API said, with its status.
pub fn error_page(page: Page, status: StatusCode, detail: String) -> Response {
    html_status(
        status,
        &Refused {
            page,
            status: status.as_u16(),
            detail,
        },
    )
}

/// `GET /console/lang?to=en|zh&back=/console/...`: sets the language cookie and goes back
/// (to a console path only).
pub async fn switch_lang(RawQuery(query): RawQuery) -> Response {
    let q = super::Form::parse(query.as_deref().unwrap_or("").as_bytes());
    let lang = Lang::parse(q.get("to")).unwrap_or_default();
    let back = Some(q.get("back").to_owned())
        .filter(|b| b.starts_with("/console") && !b.contains("//") && !b.contains('\\'))
        .unwrap_or_else(|| "/console/".to_owned());
    let mut r = Redirect::to(&back).into_response();
    let value = format!(
        "{LANG_COOKIE}={}; Path=/console; SameSite=Strict; Max-Age=31536000",
        match lang {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    );
    if let Ok(v) = HeaderValue::from_str(&value) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// Renders a page or, when the template fails, a 500.
pub fn render<T: Template>(t: &T) -> Response {
    html(t)
}
