//! The `gateway` binary refuses a bad configuration with exit code 2 and one line naming the key.

use std::{
    io::Read as _,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

/// Runs the binary; kills it (and fails) if it is still running after 10 s, i.e. if it started.
fn run(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(10) {
            child.kill().unwrap();
            panic!("the gateway started instead of refusing its configuration");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    (status.code(), stderr)
}

#[test]
fn a_bad_value_exits_2_naming_the_key() {
    let (code, stderr) = run(&[], &[("GATEWAY__UPSTREAM", "ftp://auth-svc:50051")]);
    assert_eq!(code, Some(2));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("gateway: config: upstream (GATEWAY__UPSTREAM) must look like http://host:port or https://"),
        "{stderr}"
    );
}

#[test]
fn an_unknown_key_or_missing_file_exits_2() {
    let (code, stderr) = run(&[], &[("GATEWAY__LISTEN_ADDR", "0.0.0.0:1")]);
    assert_eq!(code, Some(2));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("listen_addr"), "{stderr}");

    let (code, stderr) = run(&["-f", "/no/such/gateway.yaml"], &[]);
    assert_eq!(code, Some(2));
    assert_eq!(stderr.trim_end(), "gateway: config: file /no/such/gateway.yaml not found");
}
