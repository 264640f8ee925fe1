//! The card management system (CMS): cardholders and their applications from the
//! social-security bureau, issuance through the HSM and a card bureau, and the card life
//! cycle, on the switch's own store backends. It drives the hot list the authorization
//! pipeline reads: a card reported lost here is declined 41 with APPLICATION BLOCK there.
//!
//! - [`service::CardManagement`]: the API an HTTP handler or the CLI calls (every call takes
//!   an [`model::Actor`] and is audited);
//! - [`lifecycle`]: the state machine and its one transition table;
//! - [`citizen_id`], [`region`], [`application`], [`photo`]: validation of what the bureau
//!   sends (GB 11643-1999, GB/T 2260, JPEG);
//! - [`import`]: batch import of CSV files with a job record;
//! - [`issuance`], [`perso_file`]: PANs, keys in the HSM, the card bureau's file;
//! - [`store`]: [`store::CmsStore`], implemented by both backends in `store::sql::cms`;
//! - [`card_relay`]: an SSSE PIN unblock or an EF06 update sent to a card at a kiosk over the
//!   authenticated card relay, MACed by the HSM;
//! - [`cli`]: `switch applications import`.

pub mod application;
mod audit;
pub mod card_relay;
pub mod citizen_id;
pub mod cli;
pub mod error;
pub mod import;
pub mod issuance;
pub mod lifecycle;
pub mod model;
pub mod perso_file;
pub mod photo;
pub mod region;
pub mod service;
pub mod store;

pub use error::CmsError;
pub use issuance::{
    BinRange, CounterPin, EmvMasterKeys, IssuanceConfig, PersoBatch, SsseMasterKeys,
};
pub use lifecycle::{CardOperation, Lifecycle};
pub use model::{Actor, Application, ApplicationId, CardholderId, CmsCard, ImportJob, JobState};
pub use service::CardManagement;
pub use store::CmsStore;

/// The service's futures are `Send`, so an axum handler can await them (checked at compile
/// time, never run).
#[cfg(test)]
#[allow(dead_code)]
fn service_futures_are_send(
    c: &CardManagement<crate::store::SqliteStore>,
    a: &Actor,
    batch: &mut PersoBatch,
    pin: &CounterPin,
) {
    fn send<T: Send>(_: T) {}
    let card = crate::store::CardId(1);
    send(c.apply(a, card, CardOperation::Activate, None));
    send(c.import_applications(a, "b", b"", &|_| {}));
    send(c.import_job(uuid::Uuid::nil()));
    send(c.attach_photo(a, ApplicationId(1), b""));
    send(c.reset_pin(a, card, None, pin));
    send(c.personalise(a, batch, ApplicationId(1), pin));
}
