//! Gcore's own client, unchanged, against the real binary: tests/gcore_sdk.py drives
//! `dvrclip serve --demo` through the `gcore` Python SDK (streams CRUD and `page`,
//! the SDK's error classes for 400/401/404/422, a clip with `vod_required`, its
//! links, the clip read and deleted, the video listed, renamed and deleted). `.ci/run` installs the pinned SDK; when `import gcore` fails the test
//! fails under CI and is skipped, saying so, elsewhere (`tests/common/require.rs`).

mod common;

use std::process::Command;

use common::*;

#[test]
fn gcore_python_sdk_works_unchanged() {
    let sdk = match Command::new("python3")
        .args(["-c", "import gcore"])
        .output()
    {
        Ok(o) if o.status.success() => Ok(()),
        // The traceback's last line: "ModuleNotFoundError: No module named 'gcore'".
        Ok(o) => Err(String::from_utf8_lossy(&o.stderr)
            .lines()
            .last()
            .unwrap_or("import gcore failed")
            .to_owned()),
        Err(e) => Err(format!("python3 does not run ({e})")),
    };
    if !require("the gcore Python SDK (pip install gcore==0.59.0)", sdk) {
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
