use std::io::Write as _;
use std::time::Duration;

use harness_core::wire::{DroppedRecords, LatencyRecord, Outcome};

use super::*;
use crate::metrics::Metrics;
use crate::target::TargetKind;

fn header() -> Header {
    Header {
        version: FORMAT_VERSION,
        run_id: "20260101T000000Z-ab12".into(),
        started_at_ms: 1.7e12,
        dispatcher_url: "http://127.0.0.1:8080/".into(),
        target: TargetInfo {
            kind: TargetKind::Dispatcher,
            url: "http://127.0.0.1:8080/".into(),
            model_name: None,
        },
        arrivals: ArrivalProcess::Poisson,
        seed: Some(7),
        max_requests: Some(10),
        rates: vec![4, 6],
        planned: 10,
        concurrency: 100,
        images: 3,
        record_delivery: RecordDelivery::Auto,
    }
}

fn record(seq: u64) -> LatencyRecord {
    LatencyRecord {
        id: format!("20260101T000000Z-ab12-{seq}"),
        enqueued_at_ms: 1.7e12 + 10.0,
        dispatched_at_ms: Some(1.7e12 + 12.0),
        completed_at_ms: 1.7e12 + 400.5,
        queue_wait_ms: 2.0,
        inference_ms: Some(388.5),
        latency_ms: 390.5,
        attempts: 1,
        outcome: Outcome::Ok,
        http_status: Some(200),
        label: Some("tabby".into()),
        endpoint: Some("http://10.0.0.1:8000".into()),
    }
}

/// One line of every kind after the header.
fn lines() -> Vec<Line> {
    vec![
        Line::Pull {
            status: PullStatus::Active,
        },
        Line::Sent {
            seq: 0,
            lag: 12,
            at: 50_012,
        },
        Line::Cap,
        Line::Instance {
            n: 1,
            id: "7f3a9c".into(),
            obs: false,
        },
        Line::enqueue(
            0,
            &EnqueueOutcome::Accepted,
            Some(1),
            Duration::from_millis(3),
            Duration::from_millis(53),
        ),
        Line::enqueue(
            1,
            &EnqueueOutcome::Rejected {
                code: "queue_full".into(),
            },
            None,
            Duration::from_millis(3),
            Duration::from_millis(300),
        ),
        Line::enqueue(
            2,
            &EnqueueOutcome::Error { kind: "timeout" },
            None,
            Duration::from_secs(10),
            Duration::from_secs(10),
        ),
        Line::direct(
            3,
            &Ok(DirectAnswer::Ok {
                label: Some("tabby".into()),
            }),
            Duration::from_millis(40),
            Duration::from_millis(800),
        ),
        Line::Record(RecordLine::new(0, &record(0), Delivery::Pull)),
        Line::Dropped(DroppedRecords {
            capacity: 1,
            ..Default::default()
        }),
        Line::Sample {
            at: 1.0,
            series: "queue".into(),
            kind: SeriesKind::Queue,
            value: 3.0,
        },
    ]
}

#[tokio::test]
async fn what_is_written_reads_back_line_for_line() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::create(dir.path(), &header(), &Metrics::new()).unwrap();
    for line in lines() {
        journal.write(line);
    }
    journal.end(false).await;
    let reader = JournalReader::open(&dir.path().join(JOURNAL_FILE)).unwrap();
    assert_eq!(reader.header(), &header());
    let mut read = Vec::new();
    let summary = reader
        .for_each(|line, _| {
            read.push(line);
            Ok(())
        })
        .unwrap();
    let mut expected = lines();
    expected.push(Line::End { interrupted: false });
    assert_eq!(read, expected);
    assert_eq!(summary.ended, Some(false));
    assert_eq!(summary.torn_bytes, 0);
    assert_eq!(summary.lines, 1 + expected.len() as u64);
    let stats = journal.stats(10).unwrap();
    assert_eq!((stats.lines, stats.bytes), (summary.lines, summary.bytes));
    assert!(stats.ended && !stats.rebuilt && stats.dropped_lines == 0);
    // The record keeps what the ledger reads.
    assert_eq!(summary.instances, vec!["7f3a9c".to_owned()]);
    let Line::Record(line) = &read[8] else {
        panic!("a record line")
    };
    let again = line.record(record(0).id);
    let original = record(0);
    assert_eq!(
        (again.latency_ms, again.queue_wait_ms, again.inference_ms),
        (
            original.latency_ms,
            original.queue_wait_ms,
            original.inference_ms
        )
    );
    assert_eq!(
        (again.completed_at_ms, again.outcome, again.label),
        (original.completed_at_ms, original.outcome, original.label)
    );
}

#[tokio::test]
async fn lines_reach_the_file_on_sync_and_within_the_flush_period() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(JOURNAL_FILE);
    let journal = Journal::create(dir.path(), &header(), &Metrics::new()).unwrap();
    // The header is on disk before the first send.
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 1);
    journal.write(Line::Cap);
    journal.sync().await;
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 2);
    journal.write(Line::Cap);
    tokio::time::sleep(writer::FLUSH_EVERY * 3).await;
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 3);
}

/// Writes `text` as a journal file and reads it.
fn read_text(text: &str) -> (Result<ReadSummary, JournalError>, usize) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(JOURNAL_FILE);
    std::fs::write(&path, text).unwrap();
    let mut count = 0;
    let summary = JournalReader::open(&path).and_then(|reader| {
        reader.for_each(|_, _| {
            count += 1;
            Ok(())
        })
    });
    (summary, count)
}

fn header_line() -> String {
    serde_json::to_string(&Line::Run(Box::new(header()))).unwrap() + "\n"
}

#[test]
fn a_torn_last_line_is_ignored_and_said() {
    let text = format!(
        "{}{{\"t\":\"cap\"}}\n{{\"t\":\"sent\",\"seq\":3,\"la",
        header_line()
    );
    let (summary, count) = read_text(&text);
    let summary = summary.unwrap();
    assert_eq!(count, 1);
    assert_eq!(
        summary.torn_bytes,
        "{\"t\":\"sent\",\"seq\":3,\"la".len() as u64
    );
    assert_eq!(
        summary.bytes as usize,
        text.len() - summary.torn_bytes as usize
    );
    assert_eq!(summary.ended, None);
}

#[test]
fn any_other_bad_line_names_file_line_and_column() {
    let text = format!(
        "{}{{\"t\":\"cap\"}}\n{{\"t\":\"sent\",\"seq\":-3}}\n{{\"t\":\"cap\"}}\n",
        header_line()
    );
    let (summary, _) = read_text(&text);
    let message = summary.unwrap_err().to_string();
    assert!(message.contains(&format!("{JOURNAL_FILE}:3:")), "{message}");
    let text = format!("{}{{\"t\":\"warp\"}}\n", header_line());
    let message = read_text(&text).0.unwrap_err().to_string();
    assert!(
        message.contains(":2:") && message.contains("warp"),
        "{message}"
    );
    // Instances are numbered in order, and an `enq` names only one already numbered.
    let inst = |n: u32| format!("{{\"t\":\"inst\",\"n\":{n},\"id\":\"x{n}\"}}\n");
    let text = format!("{}{}{}", header_line(), inst(1), inst(3));
    let message = read_text(&text).0.unwrap_err().to_string();
    assert!(message.contains(":3:1: instance 3 after 1"), "{message}");
    let enq = "{\"t\":\"enq\",\"seq\":0,\"since\":1,\"at\":1,\"answer\":\"accepted\",\"i\":2}\n";
    let text = format!("{}{}{enq}", header_line(), inst(1));
    let message = read_text(&text).0.unwrap_err().to_string();
    assert!(message.contains(":3:1: instance 2 before"), "{message}");
    let text = format!("{}{}{}{enq}", header_line(), inst(1), inst(2));
    let summary = read_text(&text).0.unwrap();
    assert_eq!(summary.instances, ["x1", "x2"]);
    // The first line must be the header, of a version this load tester reads.
    let message = read_text("{\"t\":\"cap\"}\n").0.unwrap_err().to_string();
    assert!(
        message.contains(":1:1: the first line is not the run header"),
        "{message}"
    );
    let this = format!("\"version\":{FORMAT_VERSION}");
    let future = header_line().replace(&this, "\"version\":9");
    let message = read_text(&future).0.unwrap_err().to_string();
    assert!(message.contains("format version 9"), "{message}");
    // Version 1 (before instance ids) still reads.
    let old = header_line().replace(&this, "\"version\":1") + "{\"t\":\"cap\"}\n";
    assert_eq!(read_text(&old).1, 1);
    let message = read_text("").0.unwrap_err().to_string();
    assert!(message.contains("no run header"), "{message}");
}

#[tokio::test]
async fn appending_after_a_torn_line_starts_a_line_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(JOURNAL_FILE);
    let mut file = std::fs::File::create(&path).unwrap();
    write!(file, "{}{{\"t\":\"cap\"}}\n{{\"t\":\"se", header_line()).unwrap();
    drop(file);
    let summary = JournalReader::open(&path)
        .unwrap()
        .for_each(|_, _| Ok(()))
        .unwrap();
    let journal = Journal::append(&path, &summary, &Metrics::new()).unwrap();
    journal.write(Line::Cap);
    journal.close().await;
    let (summary, count) = read_text(&std::fs::read_to_string(&path).unwrap());
    let summary = summary.unwrap();
    assert_eq!((count, summary.torn_bytes, summary.ended), (2, 0, None));
    let stats = journal.stats(1).unwrap();
    assert!(stats.rebuilt && stats.torn_line_ignored);
    assert_eq!(stats.lines, 3);
}

#[tokio::test]
async fn a_full_queue_drops_and_counts_instead_of_waiting() {
    // A queue of no room: a line gets through only while the writer waits on it, so a tight
    // loop of writes finds it full nearly every time.
    let dir = tempfile::tempdir().unwrap();
    let metrics = Metrics::new();
    let journal = Journal::create_with_queue(dir.path(), &header(), &metrics, 0).unwrap();
    let total = 100_000;
    for seq in 0..total {
        journal.write(Line::Sent { seq, lag: 0, at: 0 });
    }
    journal.end(false).await;
    let stats = journal.stats(total).unwrap();
    assert!(stats.dropped_lines > 0, "{stats:?}");
    assert_eq!(stats.dropped_lines, metrics.journal_lines_dropped.get());
    let mut sent = 0;
    let summary = JournalReader::open(&dir.path().join(JOURNAL_FILE))
        .unwrap()
        .for_each(|line, _| {
            sent += u64::from(matches!(line, Line::Sent { .. }));
            Ok(())
        })
        .unwrap();
    // Every line is either in the file or counted, and the file says how many were lost.
    assert_eq!(sent + stats.dropped_lines, total);
    assert_eq!(summary.lost, stats.dropped_lines);
    assert_eq!(summary.lines, stats.lines);
}
