//! The spec file schema (TOML or JSON) and `extends` inheritance: what a file may say, read
//! and merged with its bases before compilation.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::super::error::SpecError;

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct SpecFile {
    pub(super) name: String,
    #[serde(default)]
    pub(super) description: Option<String>,
    #[serde(default)]
    pub(super) extends: Option<String>,
    #[serde(default)]
    pub(super) strict: Option<bool>,
    #[serde(default)]
    pub(super) encoding: EncodingFile,
    #[serde(default)]
    pub(super) bitmap: Option<BitmapFile>,
    #[serde(default)]
    pub(super) fields: BTreeMap<String, FieldFile>,
    #[serde(default)]
    pub(super) messages: BTreeMap<String, RuleFile>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct EncodingFile {
    pub(super) mti: Option<String>,
    pub(super) prefix: Option<String>,
    pub(super) numeric: Option<String>,
    pub(super) text: Option<String>,
    pub(super) binary: Option<String>,
    pub(super) track: Option<String>,
    pub(super) amount: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BitmapFile {
    pub(super) encoding: String,
    #[serde(default = "yes")]
    pub(super) secondary: bool,
    #[serde(default)]
    pub(super) tertiary: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FieldFile {
    /// ISO notation: `n 6`, `ans..25`, `b...255`.
    pub(super) f: String,
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) enc: Option<String>,
    #[serde(default)]
    pub(super) prefix: Option<String>,
    #[serde(default)]
    pub(super) prefix_width: Option<u8>,
    #[serde(default)]
    pub(super) format: Option<String>,
    #[serde(default)]
    pub(super) mask: Option<String>,
    #[serde(default)]
    pub(super) sub: Option<SubFile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub(super) enum SubFile {
    Positional {
        fields: BTreeMap<String, FieldFile>,
    },
    Tlv {},
    Message {
        bitmap: String,
        #[serde(default)]
        secondary: bool,
        #[serde(default)]
        encoding: EncodingFile,
        fields: BTreeMap<String, FieldFile>,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RuleFile {
    pub(super) mandatory: Vec<u16>,
    #[serde(default)]
    pub(super) optional: Option<Vec<u16>>,
}

// ---------------------------------------------------------------------------------------------
// Loading and inheritance

pub(super) fn read_file(path: &std::path::Path) -> Result<SpecFile, SpecError> {
    let text = std::fs::read_to_string(path).map_err(|source| SpecError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let name = path.display().to_string();
    if path.extension().is_some_and(|e| e == "json") {
        parse_json(&name, &text)
    } else {
        parse_toml(&name, &text)
    }
}

pub(crate) fn parse_toml(name: &str, text: &str) -> Result<SpecFile, SpecError> {
    toml::from_str(text).map_err(|e| SpecError::Syntax {
        name: name.to_owned(),
        message: e.to_string(),
    })
}

pub(super) fn parse_json(name: &str, text: &str) -> Result<SpecFile, SpecError> {
    serde_json::from_str(text).map_err(|e| SpecError::Syntax {
        name: name.to_owned(),
        message: e.to_string(),
    })
}

/// Applies `extends` chains (at most 4 deep): the child's scalars, encodings, fields and
/// rules replace the base's.
pub(crate) fn resolve(
    file: SpecFile,
    dir: Option<&std::path::Path>,
    depth: usize,
) -> Result<SpecFile, SpecError> {
    let Some(base_name) = file.extends.clone() else {
        return Ok(file);
    };
    if depth > 4 {
        return Err(invalid(&file.name, "extends chain deeper than 4"));
    }
    let base = match super::super::registry::embedded_source(&base_name) {
        Some(text) => parse_toml(&base_name, text)?,
        None => match dir {
            Some(dir) => read_file(&dir.join(&base_name))?,
            None => return Err(SpecError::Unknown(base_name)),
        },
    };
    let mut merged = resolve(base, dir, depth + 1)?;
    merged.name = file.name;
    merged.extends = None;
    if file.description.is_some() {
        merged.description = file.description;
    }
    if file.strict.is_some() {
        merged.strict = file.strict;
    }
    if file.bitmap.is_some() {
        merged.bitmap = file.bitmap;
    }
    let e = file.encoding;
    let m = &mut merged.encoding;
    for (dst, src) in [
        (&mut m.mti, e.mti),
        (&mut m.prefix, e.prefix),
        (&mut m.numeric, e.numeric),
        (&mut m.text, e.text),
        (&mut m.binary, e.binary),
        (&mut m.track, e.track),
        (&mut m.amount, e.amount),
    ] {
        if src.is_some() {
            *dst = src;
        }
    }
    merged.fields.extend(file.fields);
    merged.messages.extend(file.messages);
    Ok(merged)
}

pub(super) fn invalid(name: &str, message: impl Into<String>) -> SpecError {
    SpecError::Invalid {
        name: name.to_owned(),
        message: message.into(),
    }
}
