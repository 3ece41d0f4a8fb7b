//! The saved document and the decision at start: round trip, versions, mismatches, gaps; the
//! file store.

use std::time::{Duration, SystemTime};

use super::*;
use crate::forecast::{ForecastParams, Forecaster, ModelKind};

const MINUTE: Duration = Duration::from_secs(60);

fn learned(season: usize) -> LearnedFor {
    LearnedFor {
        target: "deployment ml/inference".into(),
        interval_ms: 15_000,
        season_length: season,
    }
}

fn params(season: usize) -> ForecastParams {
    ForecastParams {
        kind: if season == 0 {
            ModelKind::Holt
        } else {
            ModelKind::HoltWinters { period: season }
        },
        ..ForecastParams::default()
    }
}

/// A forecaster fed a ramp (and a season of 8 when `season` is 8), saved at `at`.
fn saved(season: usize, at: SystemTime) -> Checkpoint {
    let mut f = Forecaster::new(params(season));
    for t in 0..40 {
        let wave = [0.0, 5.0, 9.0, 5.0, 0.0, -5.0, -9.0, -5.0][t % 8];
        f.observe(20.0 + t as f64 + if season == 8 { wave } else { 0.0 });
    }
    Checkpoint::take(&f, learned(season), at, at).with_recent_errors(vec![4.0, 3.0, 2.0, 1.0, 0.5])
}

/// Equal, floats to within their last bits (serde_json parses without `float_roundtrip`).
fn assert_same(a: &Checkpoint, b: &Checkpoint) {
    let close = |x: f64, y: f64| (x - y).abs() <= 1e-12 * y.abs().max(1.0);
    let (f, g) = (&a.forecaster, &b.forecaster);
    assert!(
        a.recent_errors
            .iter()
            .zip(&b.recent_errors)
            .all(|(x, y)| close(*x, *y))
            && a.recent_errors.len() == b.recent_errors.len(),
        "{:?} vs {:?}",
        a.recent_errors,
        b.recent_errors
    );
    let floats = |s: &crate::forecast::ForecasterState| {
        let mut v = vec![s.level, s.trend];
        v.extend(&s.season);
        v.extend(&s.history);
        v
    };
    assert!(
        floats(f).iter().zip(floats(g)).all(|(x, y)| close(*x, y)),
        "{a:?} vs {b:?}"
    );
    assert_eq!(
        (f.steps, f.season.len(), f.history.len()),
        (g.steps, g.season.len(), g.history.len())
    );
    let meta = |c: &Checkpoint| {
        (
            c.version,
            c.taken_at_unix_ms,
            c.last_observation_unix_ms,
            c.learned_for.clone(),
        )
    };
    assert_eq!(meta(a), meta(b));
}

#[test]
fn a_checkpoint_round_trips_through_json() {
    let at = SystemTime::now();
    let checkpoint = saved(8, at);
    let parsed = Checkpoint::parse(&checkpoint.to_json()).unwrap();
    assert_same(&parsed, &checkpoint);
    let text = String::from_utf8(checkpoint.to_json()).unwrap();
    for key in [
        "\"version\":1",
        "takenAtUnixMs",
        "learnedFor",
        "seasonLength",
        "level",
        "\"recentErrors\":[4.0,3.0,2.0,1.0,0.5]",
    ] {
        assert!(text.contains(key), "{key} in {text}");
    }
}

#[test]
fn a_document_without_recent_errors_reads_as_none() {
    let mut checkpoint = saved(0, SystemTime::now());
    checkpoint.recent_errors.clear();
    let text = String::from_utf8(checkpoint.to_json()).unwrap();
    assert!(!text.contains("recentErrors"), "{text}");
    let parsed = Checkpoint::parse(text.as_bytes()).unwrap();
    assert!(parsed.recent_errors.is_empty());
    assert_same(&parsed, &checkpoint);
}

#[test]
fn unreadable_documents_say_why() {
    let good = String::from_utf8(saved(0, SystemTime::now()).to_json()).unwrap();
    let cases = [
        ("{\"version\": 1,", "EOF"),
        ("[]", "version"),
        (
            &good.replace("\"version\":1", "\"version\":2") as &str,
            "format version 2",
        ),
        (&good.replace("\"level\"", "\"lvl\""), "unknown field"),
        ("\u{0}garbage", "line 1 column 1"),
    ];
    for (text, expected) in cases {
        let err = Checkpoint::parse(text.as_bytes()).unwrap_err().to_string();
        assert!(err.contains(expected), "{text:?}: {err}");
    }
}

#[test]
fn a_recent_state_resumes_with_the_gap_bridged() {
    let t0 = SystemTime::now();
    let checkpoint = saved(0, t0);
    let before = Forecaster::from_state(params(0), checkpoint.forecaster.clone()).unwrap();
    // The next observation 60 s later: three 15-s intervals were missed.
    let resumed = checkpoint.resume(&learned(0), params(0), t0 + MINUTE, 10 * MINUTE);
    let Resumption::Resumed {
        forecaster,
        recent_errors,
        bridged,
    } = resumed
    else {
        panic!("{resumed:?}")
    };
    assert_eq!(bridged, 3);
    // The error memory slid over the three missed intervals.
    assert_eq!(recent_errors, vec![1.0, 0.5]);
    assert_eq!(forecaster.steps(), before.steps() + 3);
    // Bridging follows the trend: what was forecast 4 ahead is now 1 ahead.
    let (want, got) = (before.forecast(4).unwrap(), forecaster.forecast(1).unwrap());
    assert!((want - got).abs() < 1e-9, "{want} vs {got}");
}

#[test]
fn an_old_state_keeps_only_its_season_or_nothing() {
    let t0 = SystemTime::now();
    let late = t0 + 2 * 60 * MINUTE;
    let seasonal = saved(8, t0).resume(&learned(8), params(8), late, 10 * MINUTE);
    let Resumption::SeasonOnly { forecaster } = seasonal else {
        panic!("{seasonal:?}")
    };
    assert!(forecaster.is_seasonal() && forecaster.steps() == 0);
    let plain = saved(0, t0).resume(&learned(0), params(0), late, 10 * MINUTE);
    assert!(matches!(plain, Resumption::Stale), "{plain:?}");
}

#[test]
fn a_state_learned_for_something_else_is_refused() {
    let t0 = SystemTime::now();
    let other_target = LearnedFor {
        target: "deployment ml/other".into(),
        ..learned(0)
    };
    let other_interval = LearnedFor {
        interval_ms: 5_000,
        ..learned(0)
    };
    for (expected, words) in [
        (other_target, "target"),
        (other_interval, "interval"),
        (learned(8), "season"),
    ] {
        let season = expected.season_length;
        match saved(0, t0).resume(&expected, params(season), t0, 10 * MINUTE) {
            Resumption::Mismatch(why) => assert!(why.contains(words), "{why}"),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn inconsistent_values_are_invalid_not_a_crash() {
    let mut checkpoint = saved(8, SystemTime::now());
    checkpoint.forecaster.season.pop();
    let now = SystemTime::now();
    let resumed = checkpoint.resume(&learned(8), params(8), now, MINUTE);
    assert!(matches!(resumed, Resumption::Invalid(_)), "{resumed:?}");
    for bad in [-1.0, f64::NAN] {
        let mut checkpoint = saved(0, now);
        checkpoint.recent_errors[2] = bad;
        match checkpoint.resume(&learned(0), params(0), now, MINUTE) {
            Resumption::Invalid(why) => assert!(why.contains("forecast error"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn the_file_store_writes_reads_back_and_reports_missing() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = StateStore::File(FileStore::new(dir.path().join("state.json")));
    assert_eq!(store.load().await.unwrap(), None);
    let checkpoint = saved(8, SystemTime::now());
    assert_eq!(store.save(&checkpoint).await.unwrap(), Saved::Written);
    let bytes = store.load().await.unwrap().unwrap();
    assert_same(&Checkpoint::parse(&bytes).unwrap(), &checkpoint);
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 1);
    let mut nowhere = FileStore::new(dir.path().join("missing-dir/state.json"));
    let err = nowhere.save(b"{}".to_vec()).await.unwrap_err().to_string();
    assert!(err.contains("missing-dir/state.json"), "{err}");
    nowhere = FileStore::new(dir.path());
    assert!(
        nowhere.load().await.is_err(),
        "a directory is not a state file"
    );
}
