//! `dvc-pulse hash-token` reads the token from standard input when it is not an argument.

use std::io::Write;
use std::process::{Command, Stdio};

#[test]
fn hash_token_reads_standard_input() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dvc-pulse"))
        .arg("hash-token")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    child.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).unwrap();
    assert_eq!(printed.trim(), dvc_pulse_model::auth::hash_token("s3cret"));
    let arg = Command::new(env!("CARGO_BIN_EXE_dvc-pulse"))
        .args(["hash-token", "s3cret"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(arg.stdout).unwrap(), printed);
}
