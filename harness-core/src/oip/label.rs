//! The label of an answer: Triton's classification strings, and the rule that picks one label
//! out of whatever outputs a server returns.

use super::{InferenceResponse, Tensor, TensorData};

/// The requested-output parameter asking for the top K classes as strings.
pub const CLASSIFICATION_PARAMETER: &str = "classification";

/// One `score:index:label` (or `score:index`) string of a classification output.
#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    pub score: f64,
    pub index: u64,
    pub label: Option<String>,
}

impl Classification {
    /// Parses `score:index:label`; the label may itself contain `:`, and may be absent.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.splitn(3, ':');
        let score = parts.next()?.trim().parse().ok()?;
        let index = parts.next()?.trim().parse().ok()?;
        let label = parts.next().map(str::to_owned).filter(|l| !l.is_empty());
        Some(Self {
            score,
            index,
            label,
        })
    }

    /// The label, or the class index when the server has no labels.
    pub fn into_label(self) -> String {
        self.label.unwrap_or_else(|| self.index.to_string())
    }
}

/// The top-1 label of an answer, by the first rule that applies:
/// 1. the `classification_output` (asked for with `classification`), if named and present:
///    its first `score:index:label` string;
/// 2. the first BYTES output: its first element, read as a classification string when it is one
///    and taken as the label otherwise (a server that answers in words);
/// 3. the first floating-point output: the index of its largest value in the first row.
///
/// A BYTES output comes before logits because only it can name the class; logits give an index.
pub fn top_label(
    response: &InferenceResponse,
    classification_output: Option<&str>,
) -> Option<String> {
    if let Some(name) = classification_output
        && let Some(output) = response.outputs.iter().find(|o| o.name == name)
        && let Some(label) = first_string(output)
    {
        return Some(label);
    }
    if let Some(label) = response.outputs.iter().find_map(first_string) {
        return Some(label);
    }
    response.outputs.iter().find_map(argmax)
}

/// The first element of a BYTES output as a label.
fn first_string(output: &Tensor) -> Option<String> {
    let elements = output.bytes_elements()?.ok()?;
    let first = String::from_utf8(elements.into_iter().next()?).ok()?;
    Some(match Classification::parse(&first) {
        Some(c) => c.into_label(),
        None => first,
    })
}

/// The index of the largest value in the first row of a floating-point output.
fn argmax(output: &Tensor) -> Option<String> {
    let Some(TensorData::Float(values)) = &output.data else {
        return None;
    };
    let row = output
        .shape
        .last()
        .and_then(|&d| usize::try_from(d).ok())
        .filter(|&d| d > 0)
        .unwrap_or(values.len());
    values
        .iter()
        .take(row)
        .enumerate()
        .filter(|(_, v)| !v.is_nan())
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i.to_string())
}
