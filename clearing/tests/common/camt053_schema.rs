//! camt.053 statements checked against the official ISO 20022 schema, for every test crate
//! that produces them: clearing's tests (`common`) and the switch's (its HTTP tests fetch
//! statements through the operator API), which include this one file with `#[path]` rather
//! than a copy. Every camt.053 a test produces is validated (issue 29, "Must show").
#![allow(dead_code)]

/// The ISO 20022 camt.053.001.08 schema, copied into the repository (schemas/iso20022/).
pub fn camt053_xsd() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/iso20022/camt.053.001.08.xsd")
}

/// Validates camt.053 documents against the official schema with Debian's `xmllint`
/// (libxml2-utils, installed by ops/setup.sh). Panics, naming the document and xmllint's
/// complaint, when one is invalid, and when xmllint is missing (never skips).
pub fn assert_valid_camt053(documents: &[&str]) {
    if documents.is_empty() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let files: Vec<std::path::PathBuf> = documents
        .iter()
        .enumerate()
        .map(|(i, xml)| {
            let path = dir.path().join(format!("statement-{i}.xml"));
            std::fs::write(&path, xml).expect("write statement");
            path
        })
        .collect();
    let out = match std::process::Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(camt053_xsd())
        .args(&files)
        .output()
    {
        Ok(out) => out,
        Err(e) => panic!(
            "camt.053 validation needs xmllint (apt-get install libxml2-utils, or run \
             ops/setup.sh): {e}"
        ),
    };
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let first_bad = documents
            .iter()
            .enumerate()
            .find(|(i, _)| stderr.contains(&format!("statement-{i}.xml fails")))
            .map(|(_, xml)| *xml)
            .unwrap_or(documents[0]);
        panic!("camt.053 fails the ISO 20022 schema:\n{stderr}\n--- document ---\n{first_bad}");
    }
}
