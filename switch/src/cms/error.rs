//! Errors of the card management service, each with the HTTP status an API maps it to, so the
//! HTTP layer turns them into problem+json without guessing.

use super::lifecycle::TransitionRefused;
use super::photo::PhotoError;
use crate::store::StoreError;
use hsm_sim::HsmError;

/// Why a CMS operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum CmsError {
    /// Bad input (a field, a file).
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The input at fault.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// No such card, application or job.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The life-cycle table does not allow the operation in the card's state.
    #[error(transparent)]
    Refused(#[from] TransitionRefused),
    /// The card changed since the caller read it (HTTP 412 with If-Match).
    #[error("card changed: version is now {current}")]
    VersionMismatch {
        /// The card's current version.
        current: i64,
    },
    /// The state of a record forbids the operation (an application already personalised).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// The photo was refused.
    #[error("photo: {0}")]
    Photo(#[from] PhotoError),
    /// The HSM refused or failed.
    #[error("hsm: {0}")]
    Hsm(#[from] HsmError),
    /// The store failed.
    #[error("store: {0}")]
    Store(StoreError),
    /// Writing the personalisation file failed.
    #[error("personalisation file: {0}")]
    Io(#[from] std::io::Error),
}

impl From<StoreError> for CmsError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => CmsError::NotFound(what),
            StoreError::Conflict(what) => CmsError::Conflict(what),
            other => CmsError::Store(other),
        }
    }
}

impl CmsError {
    /// The HTTP status an API answers with.
    pub fn http_status(&self) -> u16 {
        match self {
            CmsError::Invalid { .. } | CmsError::Photo(_) => 422,
            CmsError::NotFound(_) => 404,
            CmsError::Refused(_) | CmsError::Conflict(_) => 409,
            CmsError::VersionMismatch { .. } => 412,
            CmsError::Hsm(_) => 502,
            CmsError::Store(_) | CmsError::Io(_) => 500,
        }
    }
}
