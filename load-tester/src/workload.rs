//! The workload: how many requests to send in each second of a test.
//!
//! A workload file holds one whole number per second of the test. Numbers are separated by any
//! mix of commas, spaces, tabs and newlines; `#` starts a comment that runs to the end of the
//! line. A `0` is a second of silence. Anything else (letters, negative numbers, decimals, values
//! above [`MAX_RATE`], other separators such as `;`) is an error that names the file, line and
//! column and says what was expected.

use std::fmt;
use std::path::Path;

/// The highest rate a single second may ask for. Far above what one generator process sustains
/// against a real service; it exists to catch typos such as a missing separator (`3040`).
pub const MAX_RATE: u32 = 100_000;

/// Requests per second for each second of a test, validated: never empty, never all zeros.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    rates: Vec<u32>,
}

/// Where a workload came from, for error messages: a file path or `request body`.
pub type Origin = String;

/// Why a workload was refused.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error("{origin}:{line}:{column}: {problem}")]
    Syntax {
        origin: Origin,
        line: usize,
        column: usize,
        problem: Problem,
    },
    /// Found at the end of the input (`line`:`column` is where it ends).
    #[error(
        "{origin}:{line}:{column}: the schedule is empty: expected at least one second with a \
         rate above 0"
    )]
    Empty {
        origin: Origin,
        line: usize,
        column: usize,
    },
    #[error("{origin}: cannot read the workload file: {source}")]
    Io {
        origin: Origin,
        #[source]
        source: std::io::Error,
    },
}

/// What was wrong with one token of a workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Letters or other characters where a number belongs.
    NotANumber(String),
    Negative(String),
    Decimal(String),
    TooLarge(String),
    /// A character that looks like a separator but is not one of ours.
    Separator(char),
    /// U+FEFF, invisible in most editors: a byte order mark some Windows tools write.
    ByteOrderMark,
    /// The file is not UTF-8 text.
    InvalidUtf8,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::NotANumber(t) => write!(
                f,
                "expected a whole number of requests per second, found {t:?}"
            ),
            Problem::Negative(t) => write!(
                f,
                "expected a rate of 0 or more requests per second, found the negative number {t:?}"
            ),
            Problem::Decimal(t) => write!(
                f,
                "expected a whole number of requests per second, found the decimal {t:?}"
            ),
            Problem::TooLarge(t) => write!(
                f,
                "expected at most {MAX_RATE} requests per second, found {t:?} (a missing separator?)"
            ),
            Problem::Separator(c) => write!(
                f,
                "unexpected separator {c:?}: separate numbers with commas, spaces, tabs or newlines"
            ),
            Problem::ByteOrderMark => f.write_str(
                "unexpected byte order mark (U+FEFF): save the file as UTF-8 without a BOM",
            ),
            Problem::InvalidUtf8 => f.write_str("invalid UTF-8: the file must be UTF-8 text"),
        }
    }
}

impl Workload {
    /// Parses the text of a workload file; `origin` names it in errors.
    pub fn parse(text: &str, origin: impl Into<Origin>) -> Result<Self, WorkloadError> {
        let origin = origin.into();
        let mut rates = Vec::new();
        for (index, raw_line) in text.lines().enumerate() {
            let line = raw_line.split('#').next().unwrap_or_default();
            for (column, token) in tokens(line) {
                let rate =
                    parse_token(token).map_err(|(offset, problem)| WorkloadError::Syntax {
                        origin: origin.clone(),
                        line: index + 1,
                        column: column + offset,
                        problem,
                    })?;
                rates.push(rate);
            }
        }
        let (line, column) = end_of(text);
        Self::from_validated(rates, origin, line, column)
    }

    /// Reads and parses a workload file.
    pub fn load(path: &Path) -> Result<Self, WorkloadError> {
        let origin = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| WorkloadError::Io {
            origin: origin.clone(),
            source,
        })?;
        let text = String::from_utf8(bytes).map_err(|err| {
            let valid = &err.as_bytes()[..err.utf8_error().valid_up_to()];
            // The prefix is valid UTF-8 by definition.
            let (line, column) = end_of(std::str::from_utf8(valid).unwrap_or_default());
            WorkloadError::Syntax {
                origin: origin.clone(),
                line,
                column,
                problem: Problem::InvalidUtf8,
            }
        })?;
        Self::parse(&text, origin)
    }

    /// A workload given as numbers (the `workload` array of `POST /runLoadTest`). JSON numbers
    /// arrive as `f64`; the same rules as in a file apply, and "column" is the 1-based position.
    pub fn from_numbers(numbers: &[f64], origin: impl Into<Origin>) -> Result<Self, WorkloadError> {
        let origin = origin.into();
        let mut rates = Vec::with_capacity(numbers.len());
        for (index, &n) in numbers.iter().enumerate() {
            let problem = if !n.is_finite() {
                Some(Problem::NotANumber(n.to_string()))
            } else if n < 0.0 {
                Some(Problem::Negative(n.to_string()))
            } else if n.fract() != 0.0 {
                Some(Problem::Decimal(n.to_string()))
            } else if n > f64::from(MAX_RATE) {
                Some(Problem::TooLarge(n.to_string()))
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(WorkloadError::Syntax {
                    origin,
                    line: 1,
                    column: index + 1,
                    problem,
                });
            }
            // Checked above: a whole number in 0..=MAX_RATE.
            rates.push(n as u32);
        }
        let end = numbers.len() + 1;
        Self::from_validated(rates, origin, 1, end)
    }

    /// `line`:`column` is where the input ends, for the error of an empty schedule.
    fn from_validated(
        rates: Vec<u32>,
        origin: Origin,
        line: usize,
        column: usize,
    ) -> Result<Self, WorkloadError> {
        if rates.iter().all(|&r| r == 0) {
            return Err(WorkloadError::Empty {
                origin,
                line,
                column,
            });
        }
        Ok(Self { rates })
    }

    /// Requests per second, one entry per second of the test.
    pub fn rates(&self) -> &[u32] {
        &self.rates
    }

    /// Length of the test in seconds.
    pub fn seconds(&self) -> usize {
        self.rates.len()
    }

    /// Requests the whole schedule asks for.
    pub fn total(&self) -> u64 {
        self.rates.iter().map(|&r| u64::from(r)).sum()
    }

    pub fn peak(&self) -> u32 {
        self.rates.iter().copied().max().unwrap_or(0)
    }
}

/// The 1-based line and character column just after the last character of `text`.
fn end_of(text: &str) -> (usize, usize) {
    let line = text.matches('\n').count() + 1;
    let last_line = text.rsplit('\n').next().unwrap_or_default();
    (line, last_line.chars().count() + 1)
}

fn is_separator(c: char) -> bool {
    c == ',' || c.is_whitespace()
}

/// Splits a comment-free line into tokens with their 1-based character column.
fn tokens(line: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut rest = line.char_indices().peekable();
    std::iter::from_fn(move || {
        while rest.next_if(|&(_, c)| is_separator(c)).is_some() {}
        let &(start, _) = rest.peek()?;
        let mut end = line.len();
        while let Some(&(i, c)) = rest.peek() {
            if is_separator(c) {
                end = i;
                break;
            }
            rest.next();
        }
        let column = line[..start].chars().count() + 1;
        Some((column, &line[start..end]))
    })
}

/// Parses one token; on error returns the character offset of the problem within the token.
fn parse_token(token: &str) -> Result<u32, (usize, Problem)> {
    if token.bytes().all(|b| b.is_ascii_digit()) {
        return match token.parse::<u64>() {
            Ok(v) if v <= u64::from(MAX_RATE) => Ok(v as u32),
            _ => Err((0, Problem::TooLarge(token.to_owned()))),
        };
    }
    let numeric = |s: &str| {
        !s.is_empty()
            && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
            && s.bytes().any(|b| b.is_ascii_digit())
    };
    if let Some(rest) = token.strip_prefix('-')
        && numeric(rest)
    {
        return Err((0, Problem::Negative(token.to_owned())));
    }
    if numeric(token) && token.bytes().filter(|&b| b == b'.').count() == 1 {
        return Err((0, Problem::Decimal(token.to_owned())));
    }
    if let Some(offset) = token.chars().position(|c| c == '\u{feff}') {
        return Err((offset, Problem::ByteOrderMark));
    }
    // A digit run interrupted by punctuation such as `;` or `|` is most likely a list written
    // with the wrong separator: point at the separator itself.
    if let Some((offset, c)) = token
        .chars()
        .enumerate()
        .find(|&(_, c)| matches!(c, ';' | '|' | ':' | '/'))
    {
        return Err((offset, Problem::Separator(c)));
    }
    Err((0, Problem::NotANumber(token.to_owned())))
}

#[cfg(test)]
mod tests {
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
                "w.txt:2:4: expected a whole number of requests per second, found \"abc\"",
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
            ("5 1e3", "w.txt:1:3: expected a whole number"),
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
    fn the_shipped_workload_parses_and_ramps() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../workload.txt");
        let w = Workload::load(&path).unwrap();
        assert!((60..=90).contains(&w.seconds()), "{} s", w.seconds());
        assert!((30..=40).contains(&w.peak()), "peak {}", w.peak());
        let peak_at = w.rates().iter().position(|&r| r == w.peak()).unwrap();
        assert!(w.rates()[0] < w.peak() / 2 && *w.rates().last().unwrap() < w.peak() / 2);
        assert!(peak_at > 10 && peak_at < w.seconds() - 10);
    }
}
