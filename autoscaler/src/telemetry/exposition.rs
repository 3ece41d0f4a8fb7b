//! A reader for the Prometheus text exposition format (0.0.4), enough to pick counters and
//! gauges out of a `/metrics` page: `name{label="value",...} value [timestamp]`, `#` lines
//! skipped, label values with `\\`, `\"` and `\n` escapes, `NaN` and `±Inf` values.

/// The samples of one `/metrics` page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exposition {
    samples: Vec<Sample>,
}

#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

/// A line that is not a sample.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ExpositionError {
    pub line: usize,
    pub message: String,
}

impl Exposition {
    pub fn parse(text: &str) -> Result<Self, ExpositionError> {
        let mut samples = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            samples.push(parse_sample(line).map_err(|message| ExpositionError {
                line: i + 1,
                message,
            })?);
        }
        Ok(Self { samples })
    }

    /// The sum of every series called `name`; `None` if there is none.
    pub fn sum(&self, name: &str) -> Option<f64> {
        self.sum_matching(name, |_| true)
    }

    /// The sum of the series called `name` whose label `label` equals `value`.
    pub fn sum_where(&self, name: &str, label: &str, value: &str) -> Option<f64> {
        self.sum_matching(name, |labels| {
            labels.iter().any(|(k, v)| k == label && v == value)
        })
    }

    fn sum_matching(&self, name: &str, keep: impl Fn(&[(String, String)]) -> bool) -> Option<f64> {
        self.samples
            .iter()
            .filter(|s| s.name == name && keep(&s.labels))
            .map(|s| s.value)
            .reduce(|a, b| a + b)
    }
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .ok_or("a sample needs a value")?;
    let name = &line[..name_end];
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    {
        return Err(format!("invalid metric name {name:?}"));
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(body) = rest.strip_prefix('{') {
        let (parsed, after) = parse_labels(body)?;
        labels = parsed;
        rest = after;
    }
    let mut fields = rest.split_whitespace();
    let value = fields.next().ok_or("a sample needs a value")?;
    let value = parse_value(value).ok_or_else(|| format!("invalid value {value:?}"))?;
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

type Labels = Vec<(String, String)>;

/// Parses `k="v",...}` and returns the labels and the text after `}`.
fn parse_labels(mut s: &str) -> Result<(Labels, &str), String> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start();
        if let Some(after) = s.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = s.find('=').ok_or("label without '='")?;
        let key = s[..eq].trim().to_owned();
        s = s[eq + 1..].trim_start();
        s = s.strip_prefix('"').ok_or("label value must be quoted")?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            match chars.next() {
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => return Err("unterminated escape".into()),
                },
                Some((_, c)) => value.push(c),
                None => return Err("unterminated label value".into()),
            }
        };
        labels.push((key, value));
        s = s[end + 1..].trim_start();
        s = s.strip_prefix(',').unwrap_or(s);
    }
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_counters_gauges_and_labels() {
        let text = r#"
# HELP dispatcher_enqueued_total Items accepted.
# TYPE dispatcher_enqueued_total counter
dispatcher_enqueued_total 1234
dispatcher_queue_length 17
dispatcher_completed_total{outcome="ok"} 1000
dispatcher_completed_total{outcome="upstream_timeout"} 3 1700000000000
inference_requests_total{outcome="a \"quoted\" \\ value, with comma",x="y"} 2
weird_values{a="1"} NaN
inf_value +Inf
"#;
        let e = Exposition::parse(text).unwrap();
        assert_eq!(e.sum("dispatcher_enqueued_total"), Some(1234.0));
        assert_eq!(e.sum("dispatcher_queue_length"), Some(17.0));
        assert_eq!(e.sum("dispatcher_completed_total"), Some(1003.0));
        assert_eq!(
            e.sum_where("dispatcher_completed_total", "outcome", "ok"),
            Some(1000.0)
        );
        assert_eq!(
            e.sum_where(
                "inference_requests_total",
                "outcome",
                "a \"quoted\" \\ value, with comma"
            ),
            Some(2.0)
        );
        assert_eq!(e.sum_where("inference_requests_total", "x", "y"), Some(2.0));
        assert!(e.sum("weird_values").unwrap().is_nan());
        assert_eq!(e.sum("inf_value"), Some(f64::INFINITY));
        assert_eq!(e.sum("absent"), None);
    }

    #[test]
    fn rejects_garbage_with_its_line() {
        for (text, line) in [
            ("ok 1\nbad{a=1} 2", 2),
            ("x{a=\"1\" 2", 1),
            ("a b", 1),
            ("justaname", 1),
            ("a-b 1", 1),
        ] {
            let err = Exposition::parse(text).expect_err(text);
            assert_eq!(err.line, line, "{text}: {err}");
        }
    }
}
