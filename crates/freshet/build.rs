//! Embeds the git commit the binary was built from as `FRESHET_GIT_COMMIT`
//! (`git rev-parse --short HEAD`), or `unknown` when there is no git checkout
//! or no `git` (a source tarball, the Docker build context).
//!
//! Cargo reruns this script only when the commit can have changed: when the
//! checkout's `HEAD` file, the branch ref it names or `packed-refs` changes.
//! Rerunning recompiles only this crate, never the dependencies. Without a
//! checkout it reruns only when this file changes.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=FRESHET_GIT_COMMIT");
    // An explicit value wins (for packagers building outside a checkout).
    let commit = std::env::var("FRESHET_GIT_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| {
            for path in watched_git_files() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
            git(&["rev-parse", "--short", "HEAD"])
        })
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=FRESHET_GIT_COMMIT={}", commit.trim());
}

/// Runs git in this crate's directory; `None` unless it succeeds with output.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!text.is_empty()).then_some(text)
}

/// The files whose change means a new commit is checked out: `HEAD`, the
/// loose ref it points to and `packed-refs`, as git resolves them (worktrees
/// keep `HEAD` apart from the shared refs). Only existing files are listed:
/// Cargo reruns a script on every build while a watched file is missing.
fn watched_git_files() -> Vec<PathBuf> {
    let mut names = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
    if let Some(head_ref) = git(&["symbolic-ref", "-q", "HEAD"]) {
        names.push(head_ref);
    }
    names
        .iter()
        .filter_map(|name| git(&["rev-parse", "--git-path", name]))
        .filter_map(|path| PathBuf::from(path).canonicalize().ok())
        .filter(|path| path.is_file())
        .collect()
}
