//! The `iso8583` tool as a support engineer uses it: decode to JSON or a masked table,
//! encode JSON back to the same bytes, list specs, and fail with one line on bad input.

use std::io::Write;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_iso8583");

fn testdata(name: &str) -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/").to_owned() + name
}

fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn iso8583");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.unwrap_or_default())
        .expect("write stdin");
    drop(input);
    child.wait_with_output().expect("wait")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("utf-8 stdout")
}

#[test]
fn decode_prints_json_with_hex_binary_fields_and_no_bitmap() {
    let o = run(
        &[
            "decode",
            "--spec",
            "iso87ascii",
            "--file",
            &testdata("ISO87APackager.bin"),
        ],
        None,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["mti"], "0800");
    assert_eq!(v["fields"]["2"], "1234567890123456789");
    assert_eq!(v["fields"]["52"], "0001020304050607");
    assert_eq!(v["fields"]["64"], "CAFEBABECAFEBABE");
    assert!(v["fields"].get("1").is_none());
    assert!(stdout(&o).starts_with(r#"{"mti":"0800","fields":{"2":"#));
}

#[test]
fn explain_masks_pan_track_and_pin_block() {
    let o = run(
        &[
            "decode",
            "--spec",
            "iso87ascii",
            "--file",
            &testdata("ISO87APackager.bin"),
            "--explain",
        ],
        None,
    );
    assert!(o.status.success());
    let out = stdout(&o);
    assert!(out.contains("PAN - PRIMARY ACCOUNT NUMBER"));
    assert!(out.contains("123456*********6789"));
    assert!(!out.contains("1234567890123456789"));
    assert!(!out.contains("0001020304050607"), "PIN block shown");
    assert!(!out.contains("=12345678901234567890"), "track 2 shown");
}

#[test]
fn encode_turns_decoded_json_back_into_the_same_bytes() {
    for (spec, file) in [
        ("iso87ascii", "ISO87APackager.bin"),
        ("iso87binary", "ISO87BPackager.bin"),
        ("iso93ascii", "ISO93APackager.bin"),
        ("post", "post.bin"),
    ] {
        let wire = std::fs::read(testdata(file)).unwrap();
        let decoded = run(&["decode", "--spec", spec, "--file", &testdata(file)], None);
        assert!(decoded.status.success(), "{file}");
        let encoded = run(
            &["encode", "--spec", spec, "--binary"],
            Some(&decoded.stdout),
        );
        assert!(
            encoded.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&encoded.stderr)
        );
        assert_eq!(encoded.stdout, wire, "{file}");
    }
}

#[test]
fn encode_writes_upper_case_hex_by_default_and_decode_reads_it() {
    let json = r#"{"mti":"0800","fields":{"7":"0611191024","11":"000001","70":"301"}}"#;
    let o = run(&["encode", "--spec", "ssc87"], Some(json.as_bytes()));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let hex = stdout(&o).trim().to_owned();
    assert!(hex.starts_with("30383030"), "{hex}");
    assert!(hex
        .chars()
        .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c)));
    let back = run(&["decode", "--spec", "ssc87", "--hex", &hex], None);
    assert_eq!(stdout(&back).trim(), json);
}

#[test]
fn decode_strips_a_checked_length_header() {
    let mut framed = vec![0x00, 0x62];
    framed.extend(std::fs::read(testdata("post.bin")).unwrap());
    let path = std::env::temp_dir().join(format!("iso8583-cli-{}.bin", std::process::id()));
    std::fs::write(&path, &framed).unwrap();
    let o = run(
        &[
            "decode",
            "--spec",
            "post",
            "--frame",
            "binary2",
            "--file",
            path.to_str().unwrap(),
        ],
        None,
    );
    std::fs::remove_file(&path).ok();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout(&o).contains(r#""41":"ATM00002""#));
}

#[test]
fn specs_lists_every_embedded_spec() {
    let o = run(&["specs"], None);
    assert!(o.status.success());
    let out = stdout(&o);
    for name in [
        "ssc87",
        "iso87ascii",
        "iso87binary",
        "iso93ascii",
        "iso93binary",
        "post",
        "moov87",
    ] {
        assert!(out.lines().any(|l| l.starts_with(name)), "{name}");
    }
}

#[test]
fn bad_input_exits_non_zero_with_one_line_naming_the_field() {
    let cases: [(&[&str], &[u8], &str); 6] = [
        (
            &["decode", "--spec", "iso87ascii", "--hex", "0800ZZ"],
            b"",
            "hex",
        ),
        (
            &["decode", "--spec", "no-such-spec", "--hex", "00"],
            b"",
            "unknown spec",
        ),
        (
            &[
                "decode",
                "--spec",
                "moov87",
                "--file",
                &testdata("moov/iso_reversal_message_advice_missing_field.dat"),
            ],
            b"",
            "field 32",
        ),
        (&["encode", "--spec", "ssc87"], b"{not json", "invalid JSON"),
        (
            &["encode", "--spec", "ssc87"],
            br#"{"mti":"0800","fields":{"11":"12345X"}}"#,
            "field 11",
        ),
        (&["decode", "--spec", "ssc87"], b"", "required"),
    ];
    for (args, stdin, needle) in cases {
        let o = run(args, Some(stdin));
        assert!(!o.status.success(), "{args:?} succeeded");
        let err = String::from_utf8(o.stderr).unwrap();
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("12345X"), "error echoes the value: {err}");
    }
}
