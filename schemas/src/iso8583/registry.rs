//! The specs shipped with the codec, embedded at build time from `schemas/iso8583/`.
//!
//! Each is compiled once on first use and then shared (`&'static Spec`), so looking a spec up
//! on the data path costs an atomic load.

use std::sync::OnceLock;

use super::error::SpecError;
use super::spec::{self, Spec};

macro_rules! embedded {
    ($($name:literal),* $(,)?) => {
        /// Names and TOML sources of the embedded specs.
        const SOURCES: &[(&str, &str)] = &[
            $(($name, include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/iso8583/", $name, ".toml")))),*
        ];
    };
}

embedded!(
    "ssc87",
    "iso87ascii",
    "iso87binary",
    "iso93ascii",
    "iso93binary",
    "post",
    "moov87",
    "moov87_hexlen",
    "moov87_bcdlen",
    "moov87_rbcdlen",
    "moov87_numbcd",
    "moov87_numrbcd",
    "moov87_ebcdic",
);

static COMPILED: [OnceLock<Spec>; SOURCES.len()] = [const { OnceLock::new() }; SOURCES.len()];

/// The TOML source of an embedded spec.
pub(crate) fn embedded_source(name: &str) -> Option<&'static str> {
    SOURCES.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

/// Names of the embedded specs.
pub fn names() -> impl Iterator<Item = &'static str> {
    SOURCES.iter().map(|(n, _)| *n)
}

/// The embedded spec called `name` (`"ssc87"`, `"iso87ascii"` ...).
pub fn spec(name: &str) -> Result<&'static Spec, SpecError> {
    let i = SOURCES
        .iter()
        .position(|(n, _)| *n == name)
        .ok_or_else(|| SpecError::Unknown(name.to_owned()))?;
    if let Some(s) = COMPILED[i].get() {
        return Ok(s);
    }
    let file = spec::parse_toml(name, SOURCES[i].1)?;
    let compiled = spec::compile(&spec::resolve(file, None, 0)?)?;
    let _ = COMPILED[i].set(compiled);
    COMPILED[i]
        .get()
        .ok_or_else(|| SpecError::Unknown(name.to_owned()))
}

/// Looks up an embedded spec by name, or loads a spec file if `name_or_path` ends in
/// `.toml` or `.json` (the loaded spec is leaked: specs are loaded once at start-up).
pub fn spec_or_file(name_or_path: &str) -> Result<&'static Spec, SpecError> {
    if name_or_path.ends_with(".toml") || name_or_path.ends_with(".json") {
        let s = Spec::from_file(name_or_path)?;
        Ok(Box::leak(Box::new(s)))
    } else {
        spec(name_or_path)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_embedded_spec_compiles() {
        for name in super::names() {
            let s = super::spec(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(s.name(), name);
        }
    }
}
