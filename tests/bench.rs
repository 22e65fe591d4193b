//! The benchmark commands an operator runs by hand (`tidings bench ...`),
//! run here as the built binary with tiny loads so that they keep working:
//! each starts its own servers, and what it reports must add up (every
//! article accepted, flooded, the chain measured). No timing is asserted.

mod common;

use std::time::Duration;

use common::{Run, run_binary};

const BIN: &str = env!("CARGO_BIN_EXE_tidings");

async fn bench(args: &[&str]) -> Run {
    let all = std::iter::once("bench").chain(args.iter().copied());
    run_binary(BIN, all, Duration::from_secs(120)).await
}

fn expect(run: &Run, lines: &[&str]) {
    assert!(run.ok, "benchmark failed:\n{}\n{}", run.stdout, run.stderr);
    for line in lines {
        assert!(
            run.stdout.lines().any(|l| l.starts_with(line)),
            "no line starting {line:?} in:\n{}",
            run.stdout
        );
    }
}

#[tokio::test]
async fn the_stream_bench_ingests_floods_and_times_the_chain() {
    let run = bench(&[
        "stream",
        "--articles",
        "300",
        "--pipelined",
        "--window",
        "16",
        "--flood",
        "--chain",
        "3",
    ])
    .await;
    expect(
        &run,
        &[
            "ingest: 300 accepted",
            "flood: a backlog of 300 fed onward",
            "chain A-B-C: post on A to readable on C: p50",
        ],
    );
    // The same flood through COMPRESS DEFLATE.
    let run = bench(&["stream", "--articles", "300", "--flood", "--compress-feed"]).await;
    expect(&run, &["flood: a backlog of 300 fed onward"]);
}

#[tokio::test]
async fn the_stream_bench_offers_every_way_a_peer_does() {
    for mode in ["--no-check", "--ihave", "--connections=2"] {
        let run = bench(&["stream", "--articles", "120", mode]).await;
        expect(&run, &["ingest: 120 accepted"]);
    }
}

/// `--groups`: the load is spread over several groups, and what counts
/// the articles (the flood's end, the cancels' toll) counts every group.
#[tokio::test]
async fn the_stream_bench_spreads_its_load_over_groups_when_asked() {
    let run = bench(&["stream", "--articles", "300", "--groups", "3", "--flood"]).await;
    expect(
        &run,
        &["ingest: 300 accepted", "flood: a backlog of 300 fed onward"],
    );
    let run = bench(&["stream", "--articles", "90", "--groups", "3", "--cancels"]).await;
    expect(&run, &["ingest: 90 accepted", "cancels: 90 accepted"]);
    assert!(
        run.stdout.contains("90 articles withdrawn, 0 left"),
        "{}",
        run.stdout
    );
}

/// `--history`: the server under test starts with message-ids in its
/// history, as one that has run for a while, and takes the load after it
/// has built its message-id filter from them.
#[tokio::test]
async fn the_stream_bench_starts_on_a_long_history_when_asked() {
    let run = bench(&["stream", "--articles", "200", "--history", "30000"]).await;
    expect(
        &run,
        &["history: 30000 message-ids written", "ingest: 200 accepted"],
    );
    assert!(
        run.stderr.contains("message-id filter built ids=30000"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn the_stream_bench_measures_the_ceiling_beside_tidings() {
    for mode in ["--ihave", "--pipelined"] {
        let run = bench(&["stream", "--articles", "120", "--ceiling", mode]).await;
        expect(
            &run,
            &[
                "ceiling, nothing stored: 120 accepted",
                "ceiling, one fdatasync per burst: 120 accepted",
                "ingest: 120 accepted",
                "tidings / ceiling (nothing stored):",
                "tidings / ceiling (one fdatasync per burst):",
            ],
        );
    }
}

#[tokio::test]
async fn the_reader_bench_posts_and_reads() {
    let run = bench(&[
        "reader",
        "--articles",
        "400",
        "--groups",
        "4",
        "--single",
        "100",
        "--samples",
        "20",
        "--mix-seconds",
        "1",
        "--idle",
        "10",
        "--compress",
    ])
    .await;
    expect(
        &run,
        &[
            "POST, 1 connection:",
            "POST, 4 connections:",
            "read mix",
            "read mix with COMPRESS DEFLATE",
            "server RSS with 10 idle connections",
        ],
    );
}

#[tokio::test]
async fn a_failed_bench_leaves_no_scratch_directory_behind() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // A port nothing listens on: the run fails once it connects.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let target = format!("127.0.0.1:{port}");
    let run = |args: Vec<&str>| {
        tokio::process::Command::new(BIN)
            .args(args)
            .env("TMPDIR", tmp.path())
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output()
    };
    let failed = tokio::time::timeout(
        Duration::from_secs(60),
        run(vec![
            "bench",
            "stream",
            "--articles",
            "50",
            "--target",
            &target,
        ]),
    )
    .await
    .expect("in time")
    .expect("ran");
    assert!(
        !failed.status.success(),
        "streaming to a closed port succeeded"
    );
    let ok = tokio::time::timeout(
        Duration::from_secs(120),
        run(vec!["bench", "stream", "--articles", "50"]),
    )
    .await
    .expect("in time")
    .expect("ran");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("read tmp")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert!(
        left.is_empty(),
        "left behind in the temporary directory: {left:?}"
    );
}
