//! Where a value that validation refused is written in the tuning file.
//!
//! serde_yaml gives the line and column of syntax and type errors, but values are range-checked
//! after parsing, when positions are gone. This follows the dotted key of the error
//! (`hpa.behavior.scaleUp.policies[1].periodSeconds`) through the text instead: each segment is
//! a mapping key inside the block (or flow collection) of the one before, and `[n]` makes the
//! next key its n-th occurrence there. It stops at the deepest key it finds (a value left to its
//! default points at its parent), and finds nothing when the first key is not in the file.

use std::ops::Range;

/// A mapping key found in the text (byte offsets).
#[derive(Debug, Clone, Copy)]
struct KeyAt {
    key: usize,
    /// Just after the `:`.
    after_colon: usize,
    /// The value, when it starts on the key's line.
    value: Option<usize>,
    /// Column of the key in its line (in characters, from 0): the indentation of its block.
    indent: usize,
}

/// 1-based line and column (in characters) of the value of `key`, or of the key itself when
/// its value starts on a later line.
pub(crate) fn locate(text: &str, key: &str) -> Option<(usize, usize)> {
    let mut region = 0..text.len();
    let mut nth = 0;
    let mut found = None;
    for segment in key.split('.') {
        let (name, index) = match segment.split_once('[') {
            Some((name, rest)) => (name, rest.trim_end_matches(']').parse().ok()),
            None => (segment, None),
        };
        let Some(at) = find_key(text, region, name, nth) else {
            break;
        };
        found = Some(at);
        region = at.after_colon..children_end(text, &at);
        nth = index.unwrap_or(0);
    }
    let at = found?;
    Some(line_column(text, at.value.unwrap_or(at.key)))
}

/// 1-based line and column (in characters) of byte `offset`.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (
        before.matches('\n').count() + 1,
        before[line_start..].chars().count() + 1,
    )
}

/// The `nth` (from 0) occurrence of `name` as a mapping key within `region`.
fn find_key(text: &str, region: Range<usize>, name: &str, mut nth: usize) -> Option<KeyAt> {
    for (relative, _) in text[region.clone()].match_indices(name) {
        let start = region.start + relative;
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let prefix = &text[line_start..start];
        // Quoted keys: the quote before must close after.
        let (key, mut end) = match prefix.chars().next_back() {
            None | Some(' ' | '\t' | '{' | ',') => (start, start + name.len()),
            Some(quote @ ('"' | '\'')) if text[start + name.len()..].starts_with(quote) => {
                (start - 1, start + name.len() + 1)
            }
            _ => continue,
        };
        let commented = prefix.char_indices().any(|(i, c)| {
            c == '#'
                && prefix[..i]
                    .chars()
                    .next_back()
                    .is_none_or(char::is_whitespace)
        });
        end += text[end..].len() - text[end..].trim_start_matches([' ', '\t']).len();
        if commented || !text[end..].starts_with(':') {
            continue;
        }
        if nth > 0 {
            nth -= 1;
            continue;
        }
        let after_colon = end + 1;
        let rest = &text[after_colon..];
        let value_at = after_colon + (rest.len() - rest.trim_start_matches([' ', '\t']).len());
        let value = match text[value_at..].chars().next() {
            None | Some('\n' | '\r' | '#') => None,
            Some(_) => Some(value_at),
        };
        let indent = text[line_start..key].chars().count();
        return Some(KeyAt {
            key,
            after_colon,
            value,
            indent,
        });
    }
    None
}

/// Where the children of `at` end: the matching bracket of a flow collection, the end of the
/// line of a scalar, or the first later line indented no deeper than the key (a `- ` item at
/// the same indentation still belongs to it).
fn children_end(text: &str, at: &KeyAt) -> usize {
    let line_end = |from: usize| text[from..].find('\n').map_or(text.len(), |i| from + i);
    match at.value {
        Some(value) if text[value..].starts_with(['{', '[']) => flow_end(text, value),
        Some(value) => line_end(value),
        None => {
            let mut line = line_end(at.after_colon);
            while line < text.len() {
                let start = line + 1;
                let content = &text[start..line_end(start)];
                let body = content.trim_start_matches(' ');
                let indent = content.len() - body.len();
                let blank = body.trim().is_empty() || body.starts_with('#');
                if !blank && (indent < at.indent || (indent == at.indent && !body.starts_with('-')))
                {
                    return start;
                }
                line = line_end(start);
            }
            text.len()
        }
    }
}

/// The end of the flow collection opening at `open`: its matching bracket, skipping quoted
/// strings.
fn flow_end(text: &str, open: usize) -> usize {
    let mut depth = 0usize;
    let mut quote = None;
    for (i, c) in text[open..].char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '{' | '[') => depth += 1,
            (None, '}' | ']') => {
                depth -= 1;
                if depth == 0 {
                    return open + i + 1;
                }
            }
            _ => {}
        }
    }
    text.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_values_in_block_and_flow_mappings() {
        let yaml = "\
# maxReplicas: 3 in a comment does not count
maxReplicas: 8
minWarmReplicas: 9
forecastingModel:
  type: holt
  alpha: 0 # too small
breaker: {maxAgeSeconds: 60, dropFraction: 2}
hpa:
  behavior:
    scaleDown:
      policies:
        - {type: Pods, value: 1, periodSeconds: 60}
    scaleUp:
      policies:
      - type: Pods
        periodSeconds: 15
      - type: Percent
        periodSeconds: 0
\"queueDrainSeconds\": -1
";
        let cases = [
            ("maxReplicas", Some((2, 14))),
            ("minWarmReplicas", Some((3, 18))),
            ("forecastingModel.alpha", Some((6, 10))),
            ("breaker.dropFraction", Some((7, 44))),
            (
                "hpa.behavior.scaleUp.policies[1].periodSeconds",
                Some((18, 24)),
            ),
            (
                "hpa.behavior.scaleDown.policies[0].periodSeconds",
                Some((12, 49)),
            ),
            ("queueDrainSeconds", Some((19, 22))),
            // Not written: the parent mapping, or nothing.
            ("forecastingModel.period", Some((4, 1))),
            (
                "hpa.behavior.scaleUp.stabilizationWindowSeconds",
                Some((13, 5)),
            ),
            ("safetyMargin", None),
        ];
        for (key, want) in cases {
            assert_eq!(locate(yaml, key), want, "{key}");
        }
    }

    #[test]
    fn counts_columns_in_characters() {
        assert_eq!(line_column("a: é\nb: x", 9), (2, 4));
        assert_eq!(
            locate("# ü\nsafetyMargin: 0.5", "safetyMargin"),
            Some((2, 15))
        );
    }
}
