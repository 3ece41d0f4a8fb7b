//! The one parser of `journal.jsonl`: the header, then every line in order, streamed (a
//! journal of millions of requests is never held in memory).
//!
//! A last line without its newline is what a `kill -9` during a write leaves: it is ignored and
//! reported ([`ReadSummary::torn_bytes`]). Any other line that does not parse is an error
//! naming the file, the line and the column.

use std::fs::File;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};

use super::{FORMAT_VERSION, Header, JournalError, Line, MAX_INSTANCES, OLDEST_VERSION};

/// What a read found besides the lines.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadSummary {
    /// Complete lines, the header included.
    pub lines: u64,
    /// Bytes of the complete lines (where a torn last line starts).
    pub bytes: u64,
    /// Bytes of a last line cut short, ignored (0 when the file ends with a newline).
    pub torn_bytes: u64,
    /// The largest `lost` count: lines the writer dropped.
    pub lost: u64,
    /// `Some(interrupted)` when the journal holds its run's end.
    pub ended: Option<bool>,
    /// The dispatcher instance ids of the `inst` lines; `n` is `instances[n - 1]`.
    pub instances: Vec<String>,
}

/// Reads a journal: [`JournalReader::open`] parses the header, [`JournalReader::for_each`]
/// the rest.
pub struct JournalReader {
    lines: Lines,
    header: Header,
}

impl JournalReader {
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        let file = File::open(path).map_err(|source| JournalError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut lines = Lines {
            path: path.to_owned(),
            input: BufReader::with_capacity(256 * 1024, file),
            summary: ReadSummary::default(),
            buf: Vec::with_capacity(512),
        };
        let header = match lines.next()? {
            Some(Line::Run(header))
                if (OLDEST_VERSION..=FORMAT_VERSION).contains(&header.version) =>
            {
                *header
            }
            Some(Line::Run(header)) => {
                return Err(lines.malformed(
                    1,
                    &format!(
                        "journal format version {} (this load tester reads versions \
                         {OLDEST_VERSION} to {FORMAT_VERSION})",
                        header.version
                    ),
                ));
            }
            Some(_) => return Err(lines.malformed(1, "the first line is not the run header")),
            None => {
                return Err(lines.malformed(1, "no run header (the run stopped at once?)"));
            }
        };
        Ok(Self { lines, header })
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Calls `apply` with every line after the header, in order, and the instance ids known
    /// at that line (an `enq` line's `i` is valid in it). `apply` returning an error
    /// (a line that is well-formed JSON but makes no sense) stops the read with that error at
    /// that line.
    pub fn for_each(
        self,
        mut apply: impl FnMut(Line, &[String]) -> Result<(), String>,
    ) -> Result<ReadSummary, JournalError> {
        let mut lines = self.lines;
        while let Some(line) = lines.next()? {
            let at = lines.summary.lines;
            match &line {
                Line::Lost { lines: lost } => lines.summary.lost = lines.summary.lost.max(*lost),
                Line::End { interrupted } => lines.summary.ended = Some(*interrupted),
                Line::Run(_) => return Err(lines.malformed(at, "a second run header")),
                Line::Instance { n, id, .. } => {
                    let table = &mut lines.summary.instances;
                    if *n as usize != table.len() + 1 || table.len() >= MAX_INSTANCES {
                        let message = format!(
                            "instance {n} after {} (they are numbered from 1 in order, at most \
                             {MAX_INSTANCES})",
                            table.len()
                        );
                        return Err(lines.malformed(at, &message));
                    }
                    table.push(id.clone());
                }
                Line::Enqueue { i: Some(i), .. } if *i as usize > lines.summary.instances.len() => {
                    let message = format!("instance {i} before its `inst` line");
                    return Err(lines.malformed(at, &message));
                }
                _ => {}
            }
            if let Err(message) = apply(line, &lines.summary.instances) {
                return Err(lines.malformed(at, &message));
            }
        }
        Ok(lines.summary)
    }
}

/// The lines of a journal file.
struct Lines {
    path: PathBuf,
    input: BufReader<File>,
    summary: ReadSummary,
    buf: Vec<u8>,
}

impl Lines {
    /// The next complete line, `None` at the end (after a torn last line, if any).
    fn next(&mut self) -> Result<Option<Line>, JournalError> {
        self.buf.clear();
        let read = self
            .input
            .read_until(b'\n', &mut self.buf)
            .map_err(|source| JournalError::Read {
                path: self.path.clone(),
                source,
            })?;
        if read == 0 {
            return Ok(None);
        }
        if self.buf.last() != Some(&b'\n') {
            self.summary.torn_bytes = read as u64;
            return Ok(None);
        }
        self.summary.lines += 1;
        self.summary.bytes += read as u64;
        let line_no = self.summary.lines;
        serde_json::from_slice(&self.buf[..read - 1]).map_err(|err| {
            // serde_json's message ends with its own position, always line 1 here.
            let message = err.to_string();
            let message = message
                .rsplit_once(" at line ")
                .map_or(message.as_str(), |(text, _)| text)
                .to_owned();
            JournalError::Malformed {
                path: self.path.clone(),
                line: line_no,
                column: err.column(),
                message,
            }
        })
    }

    fn malformed(&self, line: u64, message: &str) -> JournalError {
        JournalError::Malformed {
            path: self.path.clone(),
            line,
            column: 1,
            message: message.to_owned(),
        }
    }
}
