//! The documentation runs as written: the README's quick start and every
//! code block in `docs/` marked to run are fed, verbatim and extracted at
//! test time, to the real `psql` (with `ON_ERROR_STOP=1`, from the repository
//! root, as the reader would) against a fresh server started with the
//! README's `serve` arguments. Documentation that drifts from the product
//! fails here.
//!
//! A Markdown code block is run when the line before its opening fence is a
//! marker comment (invisible when rendered):
//!
//! - `<!-- doc-test: run -->`: a `sql` block fed to one psql session,
//!   which must finish without an error; all run blocks of a file share
//!   that session, in order.
//! - `<!-- doc-test: stream -->` (README only): a `sh` block whose line is
//!   `<generator> | psql <connection>`; the generator runs verbatim and its
//!   output is piped into psql connected to the test server.
//! - `<!-- doc-test: watch -->` (README only): a `sql` block ending in
//!   `\watch`; it runs until its output shows the streamed logins scored.
//!
//! Skipped only when psql (or, for the stream, python3) is missing and
//! `FRESHET_REQUIRE_CLIENTS` is unset.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::psql::{client_available, drain, psql_available, psql_command, run_psql};
use common::{wait_bounded, workspace_root, ServerOptions, TestServer};

/// The comment that marks a code block as run by this test.
const MARKER: &str = "<!-- doc-test:";

/// What the test does with a marked block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Run,
    Stream,
    Watch,
}

#[derive(Debug)]
struct Block {
    kind: Kind,
    lang: String,
    text: String,
    /// 1-based line of the marker, for messages.
    line: usize,
}

/// The marked code blocks of a Markdown file, in order. Panics on a marker
/// that is not directly followed by a fenced block, so markers cannot rot.
fn marked_blocks(path: &Path) -> Vec<Block> {
    let doc = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let lines: Vec<&str> = doc.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(rest) = lines[i].trim().strip_prefix(MARKER) else {
            i += 1;
            continue;
        };
        let word = rest.trim().split([' ', '-']).next().unwrap_or("");
        let kind = match word {
            "run" => Kind::Run,
            "stream" => Kind::Stream,
            "watch" => Kind::Watch,
            other => panic!(
                "{}:{}: unknown doc-test marker {other:?}",
                path.display(),
                i + 1
            ),
        };
        let fence = lines.get(i + 1).map(|l| l.trim()).unwrap_or("");
        let lang = fence.strip_prefix("```").unwrap_or_else(|| {
            panic!(
                "{}:{}: a doc-test marker must be followed by a ``` block",
                path.display(),
                i + 1
            )
        });
        let end = (i + 2..lines.len())
            .find(|&j| lines[j].trim() == "```")
            .unwrap_or_else(|| panic!("{}:{}: unclosed code block", path.display(), i + 2));
        blocks.push(Block {
            kind,
            lang: lang.trim().to_owned(),
            text: lines[i + 2..end].join("\n") + "\n",
            line: i + 1,
        });
        i = end + 1;
    }
    blocks
}

/// The arguments after `serve` in the README's first command, having checked
/// that its first two lines are the promised build-and-serve and test
/// commands.
fn readme_serve_args(readme: &str) -> Vec<String> {
    let mut lines = readme
        .lines()
        .skip_while(|l| l.trim() != "```sh")
        .skip(1)
        .map(|l| l.split(" #").next().unwrap_or("").trim());
    let serve = lines.next().expect("README.md has no ```sh block");
    let test = lines.next().unwrap_or("");
    const SERVE: &str = "cargo run --release -p freshet -- serve";
    let args = serve.strip_prefix(SERVE).unwrap_or_else(|| {
        panic!("README's first command should start with `{SERVE}`, found `{serve}`")
    });
    assert_eq!(
        test, "cargo test --release --workspace",
        "README's second command runs the whole test suite"
    );
    let args: Vec<String> = args.split_whitespace().map(str::to_owned).collect();
    for flag in ["--data-dir", "--listen"] {
        assert!(
            !args.iter().any(|a| a.starts_with(flag)),
            "the README's serve command keeps the default {flag} (the test chooses its own)"
        );
    }
    args
}

/// A fresh server started with the README's `serve` arguments, in the
/// repository root (where the reader runs it), on a temporary data directory
/// and a free port.
fn start_as_the_readme_says() -> TestServer {
    let root = workspace_root();
    let readme = std::fs::read_to_string(root.join("README.md")).expect("read README.md");
    let mut opts = ServerOptions::new();
    opts.extra_args = readme_serve_args(&readme);
    opts.current_dir = Some(root);
    TestServer::start_with(opts)
}

/// Joins the run blocks of `path`, checking they are SQL.
fn run_script(path: &Path, blocks: &[Block]) -> String {
    let mut script = String::new();
    for block in blocks.iter().filter(|b| b.kind == Kind::Run) {
        assert_eq!(
            block.lang,
            "sql",
            "{}:{}: doc-test run blocks are sql",
            path.display(),
            block.line
        );
        script.push_str(&block.text);
    }
    script
}

#[track_caller]
fn assert_contains_all(output: &str, what: &str, needles: &[&str]) {
    for needle in needles {
        assert!(
            output.contains(needle),
            "{what}: expected {needle:?} in psql's output:\n{output}"
        );
    }
}

/// One query's unaligned, tuples-only output (`a|b|c` per row).
#[track_caller]
fn query(server: &TestServer, sql: &str) -> String {
    let mut cmd = psql_command(server, &workspace_root());
    cmd.args(["-At", "-c", sql]);
    let out = run_psql(cmd, "");
    out.assert_success(sql);
    out.stdout.trim().to_owned()
}

#[test]
fn readme_quick_start_runs_as_written() {
    if !psql_available() {
        return;
    }
    let root = workspace_root();
    let readme = root.join("README.md");
    let blocks = marked_blocks(&readme);
    let script = run_script(&readme, &blocks);
    assert!(
        script.contains("\\copy logins_raw") && script.contains("CREATE MODEL"),
        "README.md's run blocks should be the quick start:\n{script}"
    );
    let server = start_as_the_readme_says();

    let out = run_psql(psql_command(&server, &root), &script);
    out.assert_success("README.md quick start");
    // Predictions: whole results from the one-off query, their fields from
    // the dynamic table, and the two logins inserted after it was created.
    assert_contains_all(
        &out.stdout,
        "README.md quick start",
        &[
            "prediction_result",
            "{\"label\":",
            "\"probabilities\":",
            " 1001 ",
            " 1002 ",
            // refresh history: the creation and the manual refresh
            "logins_with_predictions | 1002 | 20 minutes | INCREMENTAL",
            "| SUCCEEDED | CREATION        | FULL",
            "| SUCCEEDED | MANUAL          | INCREMENTAL",
        ],
    );
    // Every login was scored exactly once, and both refreshes are recorded.
    assert_eq!(
        query(
            &server,
            "SELECT count(*), count(DISTINCT login_id), count(prediction_result:label) \
             FROM logins_with_predictions"
        ),
        "1002|1002|1002"
    );
    assert_eq!(
        query(
            &server,
            "SELECT count(*) FROM information_schema.dynamic_table_refresh_history \
             WHERE state = 'SUCCEEDED'"
        ),
        "2"
    );

    stream_and_watch(&server, &root, &blocks);
}

/// The README's "stream more logins" part: its generator line piped into
/// psql, and its `\watch` block run until the streamed logins show up scored.
fn stream_and_watch(server: &TestServer, root: &Path, blocks: &[Block]) {
    let stream = blocks
        .iter()
        .find(|b| b.kind == Kind::Stream)
        .expect("README.md has a <!-- doc-test: stream --> block");
    let watch = blocks
        .iter()
        .find(|b| b.kind == Kind::Watch)
        .expect("README.md has a <!-- doc-test: watch --> block");
    let line = stream
        .text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .expect("the stream block has a command");
    let (generator, consumer) = line
        .split_once('|')
        .expect("the stream line is `<generator> | psql …`");
    assert_eq!(
        consumer.trim(),
        "psql -q -h 127.0.0.1 -p 5433 -U freshet freshet",
        "the stream goes to psql, connected as the README's psql line connects"
    );
    let argv: Vec<&str> = generator.split_whitespace().collect();
    if !client_available(argv[0], "") {
        return;
    }

    let mut gen = Command::new(argv[0])
        .args(&argv[1..])
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `{generator}`: {e}"));
    let mut feeder = psql_command(server, root);
    feeder
        .arg("-q")
        .stdin(Stdio::from(gen.stdout.take().expect("generator stdout")));
    let mut feeder = feeder.spawn().expect("spawn psql for the stream");
    let (feeder_out, feeder_err) = drain(&mut feeder);

    let mut watcher = psql_command(server, root)
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn psql for \\watch");
    let mut watcher_in = watcher.stdin.take().expect("watch stdin");
    watcher_in
        .write_all(watch.text.as_bytes())
        .expect("write the watch block");
    let (lines_tx, lines) = mpsc::channel();
    let watcher_out = watcher.stdout.take().expect("watch stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(watcher_out).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });

    // The quick start left logins 1..=1002; the generator numbers on from
    // there. Seen: a \watch row `logins | newest | …` with at least five
    // streamed logins, all of them present (count = largest id).
    const STREAMED: i64 = 5;
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut seen = String::new();
    let mut done = false;
    while !done && Instant::now() < deadline {
        let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) else {
            if watcher.try_wait().ok().flatten().is_some() {
                break;
            }
            continue;
        };
        let cells: Vec<Option<i64>> = line.split('|').map(|c| c.trim().parse().ok()).collect();
        if let [Some(logins), Some(newest), ..] = cells[..] {
            done = logins == newest && logins >= 1002 + STREAMED;
        }
        seen.push_str(&line);
        seen.push('\n');
    }

    let _ = gen.kill();
    wait_bounded(&mut gen, Duration::from_secs(10));
    let _ = watcher.kill();
    wait_bounded(&mut watcher, Duration::from_secs(10));
    drop(watcher_in);
    let feeder_status = wait_bounded(&mut feeder, Duration::from_secs(30));
    let feeder_err = feeder_err.join().unwrap_or_default();
    let _ = feeder_out.join();
    let mut gen_err = String::new();
    if let Some(mut pipe) = gen.stderr.take() {
        use std::io::Read;
        let _ = pipe.read_to_string(&mut gen_err);
    }
    assert!(
        done,
        "the \\watch block never showed {STREAMED} streamed logins scored.\n\
         watch output:\n{seen}\nstream psql stderr:\n{feeder_err}\ngenerator stderr:\n{gen_err}"
    );
    assert!(
        !feeder_err.contains("ERROR") && feeder_status.is_some_and(|s| s.success()),
        "the stream's psql failed ({feeder_status:?}):\n{feeder_err}"
    );
}

#[test]
fn docs_blocks_marked_to_run_run_as_written() {
    if !psql_available() {
        return;
    }
    let root = workspace_root();
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("read docs/")
        .map(|e| e.expect("docs/ entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    files.sort();
    let mut ran = Vec::new();
    for file in &files {
        let blocks = marked_blocks(file);
        if let Some(b) = blocks.iter().find(|b| b.kind != Kind::Run) {
            panic!(
                "{}:{}: only `run` doc-test blocks are supported in docs/",
                file.display(),
                b.line
            );
        }
        let script = run_script(file, &blocks);
        if script.is_empty() {
            continue;
        }
        let server = start_as_the_readme_says();
        let out = run_psql(psql_command(&server, &root), &script);
        out.assert_success(&file.display().to_string());
        ran.push(file.file_name().unwrap().to_string_lossy().into_owned());
    }
    assert!(
        ran.iter().any(|f| f == "models.md"),
        "docs/models.md should have blocks marked <!-- doc-test: run -->; ran: {ran:?}"
    );
}

#[test]
fn example_model_is_the_login_risk_fixture() {
    let root = workspace_root();
    let example = std::fs::read(root.join("examples/login_risk.onnx")).expect("examples model");
    let fixture =
        std::fs::read(root.join("tests/fixtures/models/login_risk.onnx")).expect("fixture model");
    assert!(
        example == fixture,
        "examples/login_risk.onnx differs from tests/fixtures/models/login_risk.onnx; \
         copy the fixture (see examples/README.md)"
    );
}

#[test]
fn example_csv_is_what_its_generator_writes() {
    let python = std::env::var("FRESHET_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    if !client_available(&python, "") {
        return;
    }
    let root = workspace_root();
    let out = Command::new(&python)
        .args(["examples/logins.py", "csv"])
        .current_dir(&root)
        .output()
        .expect("run examples/logins.py csv");
    assert!(
        out.status.success(),
        "examples/logins.py csv failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let committed = std::fs::read(root.join("examples/logins.csv")).expect("examples/logins.csv");
    assert!(
        out.stdout == committed,
        "examples/logins.csv is not what `python3 examples/logins.py csv` writes; regenerate it"
    );
}
