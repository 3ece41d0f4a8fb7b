//! A strict reader of the Prometheus text exposition format 0.0.4, enough to prove that
//! `/metrics` parses and to read samples back.

use std::collections::{BTreeMap, BTreeSet};

/// One sample line: metric name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

fn parse_labels(s: &str, line: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = s;
    while !rest.is_empty() {
        let (name, after) = rest
            .split_once("=\"")
            .unwrap_or_else(|| panic!("label in {line:?}"));
        assert!(is_name(name), "label name {name:?} in {line:?}");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c @ ('\\' | '"'))) => value.push(c),
                    other => panic!("bad escape {other:?} in {line:?}"),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => panic!("unterminated label value in {line:?}"),
            }
        };
        labels.insert(name.to_owned(), value);
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    labels
}

/// Parses the whole text; panics with the offending line on any syntax error, a sample without
/// a `# TYPE`, or a histogram without its `_bucket{le="+Inf"}`, `_sum` and `_count`.
pub fn parse(text: &str) -> Vec<Sample> {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix("# ") {
            let mut parts = comment.splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("HELP"), Some(name), _) => assert!(is_name(name), "{line:?}"),
                (Some("TYPE"), Some(name), Some(kind)) => {
                    assert!(is_name(name), "{line:?}");
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                        "{line:?}"
                    );
                    types.insert(name.to_owned(), kind.to_owned());
                }
                _ => panic!("unexpected comment {line:?}"),
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line:?}"));
        let value = parse_value(value).unwrap_or_else(|| panic!("value in {line:?}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => {
                let labels = labels
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("{line:?}"));
                (name, parse_labels(labels, line))
            }
            None => (series, BTreeMap::new()),
        };
        assert!(is_name(name), "metric name in {line:?}");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .filter(|base| types.get(*base).is_some_and(|t| t == "histogram"))
            .unwrap_or(name);
        assert!(types.contains_key(family), "no # TYPE for {name}");
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    let histograms: BTreeSet<&String> = types
        .iter()
        .filter(|(_, t)| *t == "histogram")
        .map(|(n, _)| n)
        .collect();
    for h in histograms {
        for suffix in ["_sum", "_count"] {
            let name = format!("{h}{suffix}");
            assert!(samples.iter().any(|s| s.name == name), "{name} missing");
        }
        let inf = samples.iter().any(|s| {
            s.name == format!("{h}_bucket") && s.labels.get("le").is_some_and(|le| le == "+Inf")
        });
        assert!(inf, "{h} has no +Inf bucket");
    }
    samples
}

/// The value of the sample `name` whose labels include `labels`, if exactly one matches.
pub fn sample(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).is_some_and(|x| x == v))
        })
        .collect();
    match matching[..] {
        [one] => Some(one.value),
        _ => None,
    }
}

#[test]
fn the_reader_refuses_what_prometheus_would() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\",y=\"q\\\"\"} 3\n";
    let samples = parse(good);
    assert_eq!(sample(&samples, "a_total", &[("y", "q\"")]), Some(3.0));
    for bad in [
        "a_total 3\n",                              // no TYPE
        "# TYPE a counter\na{x=1} 3\n",             // unquoted label
        "# TYPE a counter\na 3 4 5\n",              // junk
        "# TYPE h histogram\nh_sum 1\nh_count 1\n", // no +Inf bucket
    ] {
        let result = std::panic::catch_unwind(|| parse(bad));
        assert!(result.is_err(), "{bad:?} should not parse");
    }
}
