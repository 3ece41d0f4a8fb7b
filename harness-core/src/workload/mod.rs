//! The workload file format: how many requests to send in each second of a test.
//!
//! A workload file holds one number per second of the test. Numbers are separated by any mix of
//! commas, spaces, tabs and newlines; `#` starts a comment that runs to the end of the line. A
//! `0` is a second of silence. Anything else (letters, negative numbers, values above
//! [`MAX_RATE`], other separators such as `;`, and decimals where the reader asks for
//! [`Numbers::Whole`]) is an error that names the file, line and column and says what was
//! expected.
//!
//! This is the one parser of the format: the load tester reads whole numbers ([`Workload`]), the
//! autoscaler's simulator reads mean arrival rates, decimals allowed ([`parse_rates`],
//! [`read_rates`]), and both give the same message at the same position for the same mistake.

use std::fmt;
use std::path::Path;

/// The highest rate a single second may ask for. Far above what one generator process sustains
/// against a real service; it exists to catch typos such as a missing separator (`3040`).
pub const MAX_RATE: u32 = 100_000;

/// Which numbers a reader of the format accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Numbers {
    /// Whole requests per second (the load tester sends whole requests).
    Whole,
    /// Decimals too (`2.5`): mean arrival rates, for the simulator.
    Decimal,
}

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
            Problem::NotANumber(t) => {
                write!(f, "expected a number of requests per second, found {t:?}")
            }
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
        parse_rates(text, origin, Numbers::Whole).map(Self::from_whole)
    }

    /// Reads and parses a workload file.
    pub fn load(path: &Path) -> Result<Self, WorkloadError> {
        read_rates(path, Numbers::Whole).map(Self::from_whole)
    }

    /// A workload given as numbers (the `workload` array of `POST /runLoadTest`). JSON numbers
    /// arrive as `f64`; the same rules as in a file apply, and "column" is the 1-based position.
    pub fn from_numbers(numbers: &[f64], origin: impl Into<Origin>) -> Result<Self, WorkloadError> {
        check_numbers(numbers, origin, Numbers::Whole)?;
        Ok(Self::from_whole(numbers.to_vec()))
    }

    /// Rates already checked to be whole numbers in `0..=MAX_RATE`, not all zero.
    fn from_whole(rates: Vec<f64>) -> Self {
        Self {
            rates: rates.into_iter().map(|r| r as u32).collect(),
        }
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

/// Parses the text of a workload file into one rate per second; `origin` names it in errors.
pub fn parse_rates(
    text: &str,
    origin: impl Into<Origin>,
    numbers: Numbers,
) -> Result<Vec<f64>, WorkloadError> {
    let origin = origin.into();
    let mut rates = Vec::new();
    for (index, raw_line) in text.lines().enumerate() {
        let line = raw_line.split('#').next().unwrap_or_default();
        for (column, token) in tokens(line) {
            let rate =
                parse_token(token, numbers).map_err(|(offset, problem)| WorkloadError::Syntax {
                    origin: origin.clone(),
                    line: index + 1,
                    column: column + offset,
                    problem,
                })?;
            rates.push(rate);
        }
    }
    let (line, column) = end_of(text);
    refuse_empty(&rates, origin, line, column)?;
    Ok(rates)
}

/// Reads and parses a workload file; its path names it in errors.
pub fn read_rates(path: &Path, numbers: Numbers) -> Result<Vec<f64>, WorkloadError> {
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
    parse_rates(&text, origin, numbers)
}

/// Checks rates given as numbers (a JSON array) by the rules of the file format; "column" is
/// the 1-based position in the array.
pub fn check_numbers(
    rates: &[f64],
    origin: impl Into<Origin>,
    numbers: Numbers,
) -> Result<(), WorkloadError> {
    let origin = origin.into();
    for (index, &n) in rates.iter().enumerate() {
        let problem = if !n.is_finite() {
            Some(Problem::NotANumber(n.to_string()))
        } else if n < 0.0 {
            Some(Problem::Negative(n.to_string()))
        } else if n.fract() != 0.0 && numbers == Numbers::Whole {
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
    }
    refuse_empty(rates, origin, 1, rates.len() + 1)
}

/// `line`:`column` is where the input ends, for the error of an empty schedule.
fn refuse_empty(
    rates: &[f64],
    origin: Origin,
    line: usize,
    column: usize,
) -> Result<(), WorkloadError> {
    if rates.iter().all(|&r| r == 0.0) {
        return Err(WorkloadError::Empty {
            origin,
            line,
            column,
        });
    }
    Ok(())
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
fn parse_token(token: &str, numbers: Numbers) -> Result<f64, (usize, Problem)> {
    let too_large = || (0, Problem::TooLarge(token.to_owned()));
    if token.bytes().all(|b| b.is_ascii_digit()) {
        return match token.parse::<u64>() {
            Ok(v) if v <= u64::from(MAX_RATE) => Ok(v as f64),
            _ => Err(too_large()),
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
        return match numbers {
            Numbers::Whole => Err((0, Problem::Decimal(token.to_owned()))),
            // Digits and one dot always parse as an f64.
            Numbers::Decimal => match token.parse::<f64>() {
                Ok(v) if v <= f64::from(MAX_RATE) => Ok(v),
                _ => Err(too_large()),
            },
        };
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
mod tests;
