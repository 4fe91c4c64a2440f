//! Gcore's own client, unchanged, against the real binary: tests/gcore_sdk.py drives
//! `dvrclip serve --demo` through the `gcore` Python SDK (streams CRUD, the SDK's
//! error classes for 400/401/404/422, a clip with `vod_required`, its links, the
//! video). `.ci/run` installs the pinned SDK; the test is skipped, saying so, only
//! when `import gcore` fails.

mod common;

use std::process::Command;

use common::*;

#[test]
fn gcore_python_sdk_works_unchanged() {
    const TEST: &str = "gcore_python_sdk_works_unchanged";
    let sdk = Command::new("python3")
        .args(["-c", "import gcore"])
        .output();
    if !sdk.as_ref().is_ok_and(|o| o.status.success()) {
        eprintln!("SKIPPED {TEST}: the gcore SDK is not installed (pip install gcore)");
        return;
    }
    let server = Server::start_with(&["--demo"]);
    // The script clips the last seconds of the demo: let it push a few chunks first.
    wait_for_demo_chunks(server.addr);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/gcore_sdk.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(format!("http://{}", server.addr))
        .arg("demo")
        .output()
        .expect("running python3");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.contains("sdk: ok"),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
