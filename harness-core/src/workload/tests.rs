//! The format's rules, one table per rule, and the positions errors point at.

use super::*;

fn rates(text: &str) -> Vec<u32> {
    Workload::parse(text, "w.txt")
        .unwrap_or_else(|e| panic!("{text:?}: {e}"))
        .rates
}

fn error(text: &str) -> String {
    Workload::parse(text, "w.txt").expect_err(text).to_string()
}

#[test]
fn accepts_any_mix_of_separators_and_comments() {
    let good: &[(&str, &[u32])] = &[
        ("1,2,3", &[1, 2, 3]),
        ("1 2 3", &[1, 2, 3]),
        ("1\t2\n3\n", &[1, 2, 3]),
        ("1, 2,\t3\r\n4", &[1, 2, 3, 4]),
        ("1,,2", &[1, 2]),
        ("# header\n\n  5 # five\n0, 7 #", &[5, 0, 7]),
        ("0 0 100000", &[0, 0, 100_000]),
        ("007", &[7]),
    ];
    for (text, want) in good {
        assert_eq!(rates(text), *want, "{text:?}");
    }
}

#[test]
fn errors_name_file_line_column_and_expectation() {
    let bad: &[(&str, &str)] = &[
        (
            "1, 2\n3, abc",
            "w.txt:2:4: expected a number of requests per second, found \"abc\"",
        ),
        (
            "1 -5",
            "w.txt:1:3: expected a rate of 0 or more requests per second, found the negative number \"-5\"",
        ),
        (
            "2.5",
            "w.txt:1:1: expected a whole number of requests per second, found the decimal \"2.5\"",
        ),
        (
            "1\n\n 100001",
            "w.txt:3:2: expected at most 100000 requests per second",
        ),
        (
            "99999999999999999999999",
            "w.txt:1:1: expected at most 100000",
        ),
        ("1;2;3", "w.txt:1:2: unexpected separator ';'"),
        ("10|20", "w.txt:1:3: unexpected separator '|'"),
        (
            "5 1e3",
            "w.txt:1:3: expected a number of requests per second",
        ),
        ("", "w.txt:1:1: the schedule is empty"),
        ("# only a comment\n", "w.txt:2:1: the schedule is empty"),
        ("0, 0 0", "w.txt:1:7: the schedule is empty"),
        ("\u{feff}1, 2", "w.txt:1:1: unexpected byte order mark"),
    ];
    for (text, want) in bad {
        let got = error(text);
        assert!(
            got.starts_with(want),
            "{text:?}: got {got:?}, want {want:?}"
        );
    }
}

#[test]
fn columns_count_characters_not_bytes() {
    // "é" is two bytes; the column of "x" is still 5.
    assert!(error("# é\né 1 x").starts_with("w.txt:2:1:"));
    assert!(error("1 é x").starts_with("w.txt:1:3:"));
}

#[test]
fn a_file_that_is_not_utf8_is_refused_where_it_stops_being_text() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.txt");
    std::fs::write(&path, b"1, 2\n\xc3\xa9 3, \xff4\n").unwrap();
    let err = Workload::load(&path).unwrap_err().to_string();
    let want = format!("{}:2:6: invalid UTF-8", path.display());
    assert!(err.starts_with(&want), "{err}");
}

#[test]
fn numbers_from_json_follow_the_same_rules() {
    let ok = Workload::from_numbers(&[1.0, 0.0, 3.0], "request body").unwrap();
    assert_eq!(ok.rates(), [1, 0, 3]);
    assert_eq!(ok.total(), 4);
    assert_eq!(ok.peak(), 3);
    let err = Workload::from_numbers(&[1.0, 2.5], "request body").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("request body:1:2: expected a whole number")
    );
    let err = Workload::from_numbers(&[-1.0], "request body").unwrap_err();
    assert!(err.to_string().contains("negative"));
    assert!(matches!(
        Workload::from_numbers(&[], "request body"),
        Err(WorkloadError::Empty { .. })
    ));
}

#[test]
fn decimals_are_taken_where_the_reader_asks_for_them() {
    let rates = parse_rates("# mean rates\n2.5, 0 .5\n7.", "t.txt", Numbers::Decimal).unwrap();
    assert_eq!(rates, [2.5, 0.0, 0.5, 7.0]);
    // Every other rule, and every message and position, is the whole-number reader's.
    let bad: &[(&str, &str)] = &[
        (
            "1 -2.5",
            "t.txt:1:3: expected a rate of 0 or more requests per second",
        ),
        (
            "1, 2\n3, x4",
            "t.txt:2:4: expected a number of requests per second, found \"x4\"",
        ),
        (
            "1.5.5",
            "t.txt:1:1: expected a number of requests per second",
        ),
        ("NaN", "t.txt:1:1: expected a number of requests per second"),
        (
            "100000.5",
            "t.txt:1:1: expected at most 100000 requests per second",
        ),
        ("1;2", "t.txt:1:2: unexpected separator ';'"),
        ("0 0.0", "t.txt:1:6: the schedule is empty"),
    ];
    for (text, want) in bad {
        let got = parse_rates(text, "t.txt", Numbers::Decimal)
            .expect_err(text)
            .to_string();
        assert!(
            got.starts_with(want),
            "{text:?}: got {got:?}, want {want:?}"
        );
    }
    assert!(check_numbers(&[0.5, 1.0], "body", Numbers::Decimal).is_ok());
    let err = check_numbers(&[0.5], "body", Numbers::Whole).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("body:1:1: expected a whole number")
    );
}

#[test]
fn the_shipped_workload_parses_and_ramps() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../workload.txt");
    let w = Workload::load(&path).unwrap();
    assert!((60..=90).contains(&w.seconds()), "{} s", w.seconds());
    assert!((30..=40).contains(&w.peak()), "peak {}", w.peak());
    let peak_at = w.rates().iter().position(|&r| r == w.peak()).unwrap();
    assert!(w.rates()[0] < w.peak() / 2 && *w.rates().last().unwrap() < w.peak() / 2);
    assert!(peak_at > 10 && peak_at < w.seconds() - 10);
}
