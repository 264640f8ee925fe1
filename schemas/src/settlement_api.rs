//! The internal settlement API between the switch and clearing (issue 25): the JSON bodies and
//! headers of `clearing api`, which the switch's operator routes call to show settlement
//! windows, net positions and statements. Both crates meet here, so the production switch
//! reads clearing's answers without depending on the `clearing` crate.
//!
//! The connection is mutual TLS: clearing serves only clients whose certificate chains to the
//! switch nodes' CA (GB/T 22239 level 3, every link protected). The switch names, in the
//! [`OPERATOR_HEADER`], [`INSTITUTION_HEADER`] and [`INSTITUTION_KIND_HEADER`] headers, the
//! operator it acts for; clearing trusts them only because the connection proved it is a
//! switch node, and applies the institution's scope again ([`Viewer`]).
//!
//! | method and path | body | answer |
//! |---|---|---|
//! | `GET /v1/windows?before=&limit=` | | [`WindowPage`], newest first |
//! | `GET /v1/windows/{id}` | | [`WindowDetail`] |
//! | `GET /v1/positions` | | [`OpenPositions`] (the open window) |
//! | `POST /v1/windows/close` | [`CloseWindow`] | [`WindowDetail`] of the closed window |
//! | `GET /v1/windows/{id}/reports/{institution}?format=csv\|camt053` | | `text/csv`, `application/xml` |
//!
//! Errors are RFC 9457 problem documents with the `type`s of [`problem`].

use serde::{Deserialize, Serialize};

/// The operator the switch acts for: `user:<uuid>` or `api_key:<id>` (the switch's audit
/// actor).
pub const OPERATOR_HEADER: &str = "x-settlement-operator";
/// The operator's institution (ISO 8583 field 32 form).
pub const INSTITUTION_HEADER: &str = "x-settlement-institution";
/// What the operator's institution is: `switch` (the switch and clearing centre), `bank`, or
/// another kind of the switch's institution table.
pub const INSTITUTION_KIND_HEADER: &str = "x-settlement-institution-kind";
/// Most windows one page lists.
pub const WINDOW_PAGE_MAX: u32 = 200;
/// Longest `reason` of a window close, characters.
pub const REASON_LEN_MAX_CHARS: usize = 500;

/// The `type`s of the API's problem documents (`/problems/<name>`).
pub mod problem {
    /// No such window, or nothing the viewer may see.
    pub const NOT_FOUND: &str = "not-found";
    /// The viewer's institution may not do this (only the clearing centre closes windows).
    pub const FORBIDDEN: &str = "forbidden";
    /// The open window is not the one the request named.
    pub const CONFLICT: &str = "conflict";
    /// A parameter or body is wrong.
    pub const INVALID: &str = "invalid-request";
    /// The operator headers are missing or malformed.
    pub const NO_OPERATOR: &str = "no-operator";
    /// The ledger did not answer.
    pub const UNAVAILABLE: &str = "unavailable";
}

/// What a viewer of settlement data sees, from the kind of its institution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Viewer {
    /// The switch and clearing centre: every institution.
    Centre,
    /// A bank: its own position, instructions and statements.
    Bank(String),
    /// Any other institution: nothing of settlement.
    Nothing,
}

impl Viewer {
    /// The viewer of an institution of `kind` (the switch's institution kinds).
    pub fn of(institution: &str, kind: &str) -> Self {
        match kind {
            "switch" => Viewer::Centre,
            "bank" => Viewer::Bank(institution.to_owned()),
            _ => Viewer::Nothing,
        }
    }

    /// Whether the figures of `institution` are shown.
    pub fn sees(&self, institution: &str) -> bool {
        match self {
            Viewer::Centre => true,
            Viewer::Bank(me) => me == institution,
            Viewer::Nothing => false,
        }
    }
}

/// Open or closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowState {
    /// Postings still land in it.
    Open,
    /// Frozen, settled.
    Closed,
}

/// A settlement window as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowItem {
    /// 1, 2, ...
    pub window_id: i64,
    /// Open or closed.
    pub state: WindowState,
    /// When it opened (µs since the epoch).
    pub opened_at_us: i64,
    /// When it closed.
    pub closed_at_us: Option<i64>,
    /// Postings in it (closed windows; null for an open one, and for a bank, which sees only
    /// its own figures).
    pub posting_count: Option<i64>,
    /// Sum of its postings, fen (as `posting_count`).
    pub posted_total_fen: Option<i64>,
    /// The window digest, SHA-256 hex (closed windows): published to every participant, who
    /// recomputes it from the canonical posting form.
    pub digest_sha256: Option<String>,
}

/// A page of windows, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowPage {
    /// The windows.
    pub items: Vec<WindowItem>,
    /// The `before` of the next page (None: the last page).
    pub next_before: Option<i64>,
}

/// An institution's position in a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetPosition {
    /// Institution.
    pub institution_id: String,
    /// What it paid, fen.
    pub debits_fen: i64,
    /// What it received, fen.
    pub credits_fen: i64,
    /// `credits_fen - debits_fen`: positive, the network owes it.
    pub net_fen: i64,
    /// Its institution digest, SHA-256 hex (closed windows).
    pub digest_sha256: Option<String>,
}

/// One transfer of a window's net settlement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instruction {
    /// 1, 2, ...
    pub instruction_no: i64,
    /// Net debtor.
    pub payer_id: String,
    /// Net creditor.
    pub payee_id: String,
    /// Amount, fen.
    pub amount_fen: i64,
}

/// A window with the positions and instructions the viewer sees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowDetail {
    /// The window.
    pub window: WindowItem,
    /// Net positions (an open window's are live, computed from its postings so far), by
    /// institution.
    pub positions: Vec<NetPosition>,
    /// Settlement instructions (closed windows).
    pub instructions: Vec<Instruction>,
}

/// The open window's positions so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenPositions {
    /// The open window.
    pub window_id: i64,
    /// When it opened.
    pub opened_at_us: i64,
    /// When the positions were read.
    pub as_of_us: i64,
    /// By institution.
    pub positions: Vec<NetPosition>,
}

/// `POST /v1/windows/close`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloseWindow {
    /// Why (audited).
    pub reason: String,
    /// The window the operator means to close; when given and another window is open, the
    /// close is refused (409), so two operators closing "the" window close one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_id: Option<i64>,
}

/// Statement formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementFormat {
    /// CSV statement (`text/csv`).
    Csv,
    /// ISO 20022 camt.053-style XML statement (`application/xml`).
    Camt053,
}

impl StatementFormat {
    /// Parses `csv` or `camt053`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "csv" => Some(StatementFormat::Csv),
            "camt053" => Some(StatementFormat::Camt053),
            _ => None,
        }
    }

    /// The query value.
    pub fn as_str(self) -> &'static str {
        match self {
            StatementFormat::Csv => "csv",
            StatementFormat::Camt053 => "camt053",
        }
    }

    /// The content type of the statement.
    pub fn content_type(self) -> &'static str {
        match self {
            StatementFormat::Csv => "text/csv; charset=utf-8",
            StatementFormat::Camt053 => "application/xml; charset=utf-8",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bank_sees_only_itself_the_centre_all_others_nothing() {
        assert!(Viewer::of("3100000", "switch").sees("01020000"));
        let bank = Viewer::of("01020000", "bank");
        assert!(bank.sees("01020000") && !bank.sees("01030000"));
        for kind in ["hospital", "insurance_fund", "job_centre", ""] {
            assert!(!Viewer::of("3100001", kind).sees("3100001"), "{kind}");
        }
    }

    #[test]
    fn a_close_request_refuses_unknown_fields() {
        let ok: CloseWindow = serde_json::from_str(r#"{"reason":"end of day"}"#).unwrap();
        assert_eq!(ok.window_id, None);
        assert!(serde_json::from_str::<CloseWindow>(r#"{"reason":"x","force":true}"#).is_err());
    }
}
