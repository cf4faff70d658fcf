//! What the binary says about itself: `freshet --version` and the lines a
//! starting server prints.

mod common;

use std::process::Command;

use common::{workspace_root, ServerOptions, TestServer, FRESHET_BIN};

/// The commit the binary should report: what `build.rs` embeds, computed the
/// same way (`git rev-parse --short HEAD`, `unknown` outside a checkout).
fn expected_commit() -> String {
    if let Some(commit) = std::env::var("FRESHET_GIT_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
    {
        return commit.trim().to_owned();
    }
    Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(workspace_root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

fn version_line() -> String {
    format!(
        "freshet {} (commit {})",
        env!("CARGO_PKG_VERSION"),
        expected_commit()
    )
}

#[test]
fn version_names_the_release_and_the_commit() {
    let out = Command::new(FRESHET_BIN)
        .arg("--version")
        .output()
        .expect("run freshet --version");
    assert!(out.status.success(), "freshet --version failed: {out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), version_line() + "\n");
}

#[test]
fn startup_banner_says_what_is_in_effect() {
    let root = workspace_root();
    let models = root.join("examples");
    let server = TestServer::start_with(ServerOptions::new().model_dir(&models));
    let log = server.log();
    let data_dir = server
        .data_dir()
        .canonicalize()
        .expect("data dir exists once the server runs");
    let models = models.canonicalize().expect("examples/ exists");
    for expected in [
        format!("{} ready\n", version_line()),
        format!(
            "\n  listening  127.0.0.1:{}, TLS off, superuser freshet without password",
            server.port()
        ),
        format!(
            "\n  data dir   {} (WAL fsync OFF: commits are not durable)\n",
            data_dir.display()
        ),
        format!("\n  model dir  {}\n", models.display()),
        "\n  limits     ".to_owned(),
        " refresh workers, 8192 rows per model batch, 1000 refresh-history rows per dynamic table; "
            .to_owned(),
        " query memory (a quarter of ".to_owned(),
        " RAM; beyond it, operators that can spill spill to disk and a statement that still \
         does not fit fails with 53200); \
         "
            .to_owned(),
        " resident table data (beyond it, checkpointed data is read from disk); \
         no limit on connections"
            .to_owned(),
    ] {
        assert!(
            log.contains(&expected),
            "expected {expected:?} in the server's start-up output:\n{log}"
        );
    }
}

#[test]
fn startup_banner_says_when_model_paths_are_off() {
    let server = TestServer::start();
    let log = server.log();
    assert!(
        log.contains("\n  model dir  none: CREATE MODEL … FROM '<path>' is disabled"),
        "start-up output:\n{log}"
    );
}
