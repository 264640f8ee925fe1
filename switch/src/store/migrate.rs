//! Runs the migrations embedded in `schemas` with sqlx's migrator (which records applied
//! versions and checksums in `_sqlx_migrations`, and refuses a changed migration).

use futures_core::future::BoxFuture;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use std::borrow::Cow;

/// A migration list from `schemas::migrations`.
#[derive(Debug)]
pub struct Embedded(pub &'static [schemas::migrations::Migration]);

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(self) -> BoxFuture<'s, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async move {
            Ok(self
                .0
                .iter()
                .map(|m| {
                    Migration::new(
                        m.version,
                        Cow::Borrowed(m.description),
                        MigrationType::Simple,
                        Cow::Borrowed(m.sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// A migrator over an embedded list.
pub async fn migrator(
    list: &'static [schemas::migrations::Migration],
) -> Result<Migrator, sqlx::migrate::MigrateError> {
    Migrator::new(Embedded(list)).await
}
