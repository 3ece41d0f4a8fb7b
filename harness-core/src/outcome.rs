//! What happened to one dispatched item: the `outcome` of a latency record.
//!
//! On the wire an outcome is a stable snake_case string: `ok`, one of the dispatcher's own
//! failure codes, or the error code an inference pod answered a 4xx with (`invalid_image`,
//! `image_too_large`, ...). In code it is an [`Outcome`], so a typo is a compile error and a
//! `match` sees every case the dispatcher can produce.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The outcome of one item, serialised as its stable code.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// Inference answered with a prediction.
    Ok,
    /// The dispatcher stopped before the item was done (it never left the queue, or an attempt
    /// was cut short).
    Shutdown,
    /// The last attempt timed out.
    UpstreamTimeout,
    /// No TCP connection could be made to the last endpoint tried.
    UpstreamConnectError,
    /// The connection broke during the last attempt.
    UpstreamConnectionError,
    /// Inference was overloaded or not ready (503, 429, 408) on every attempt.
    UpstreamUnavailable,
    /// Inference answered 5xx on every attempt.
    UpstreamServerError,
    /// A 2xx that is not an inference answer, or a status that makes no sense.
    UpstreamBadResponse,
    /// A 4xx without a well-formed error code.
    UpstreamRejected,
    /// The dispatcher could not build the request (a bug: its detail is logged).
    Internal,
    /// A 4xx with this error code from inference's body: the image is bad, and another pod
    /// would say the same.
    Rejected(String),
}

impl Outcome {
    /// The dispatcher's own codes, everything but [`Outcome::Rejected`].
    pub const FIXED: [Outcome; 10] = [
        Outcome::Ok,
        Outcome::Shutdown,
        Outcome::UpstreamTimeout,
        Outcome::UpstreamConnectError,
        Outcome::UpstreamConnectionError,
        Outcome::UpstreamUnavailable,
        Outcome::UpstreamServerError,
        Outcome::UpstreamBadResponse,
        Outcome::UpstreamRejected,
        Outcome::Internal,
    ];

    /// The stable code on the wire and in metric labels.
    pub fn as_str(&self) -> &str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Shutdown => "shutdown",
            Outcome::UpstreamTimeout => "upstream_timeout",
            Outcome::UpstreamConnectError => "upstream_connect_error",
            Outcome::UpstreamConnectionError => "upstream_connection_error",
            Outcome::UpstreamUnavailable => "upstream_unavailable",
            Outcome::UpstreamServerError => "upstream_server_error",
            Outcome::UpstreamBadResponse => "upstream_bad_response",
            Outcome::UpstreamRejected => "upstream_rejected",
            Outcome::Internal => "internal",
            Outcome::Rejected(code) => code,
        }
    }

    /// Reads a code: one of the fixed ones, or else an inference error code.
    pub fn from_code(code: &str) -> Self {
        Self::FIXED
            .into_iter()
            .find(|o| o.as_str() == code)
            .unwrap_or_else(|| Outcome::Rejected(code.to_owned()))
    }

    pub fn is_ok(&self) -> bool {
        *self == Outcome::Ok
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// [`Outcome::from_code`]: every code is an outcome.
impl From<&str> for Outcome {
    fn from(code: &str) -> Self {
        Self::from_code(code)
    }
}

impl From<String> for Outcome {
    fn from(code: String) -> Self {
        Self::from_code(&code)
    }
}

/// Compares with a code as it appears on the wire.
impl PartialEq<&str> for Outcome {
    fn eq(&self, code: &&str) -> bool {
        self.as_str() == *code
    }
}

impl Serialize for Outcome {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Outcome {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        Ok(Self::from_code(&code))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_round_trips_through_its_code() {
        let mut all = Outcome::FIXED.to_vec();
        all.push(Outcome::Rejected("invalid_image".into()));
        for outcome in all {
            let json = serde_json::to_string(&outcome).unwrap();
            assert_eq!(json, format!("\"{}\"", outcome.as_str()));
            assert_eq!(serde_json::from_str::<Outcome>(&json).unwrap(), outcome);
        }
    }

    #[test]
    fn codes_are_the_documented_strings() {
        assert_eq!(Outcome::Ok.to_string(), "ok");
        assert_eq!(Outcome::from_code("ok"), Outcome::Ok);
        assert_eq!(Outcome::from_code("shutdown"), Outcome::Shutdown);
        assert_eq!(
            Outcome::from_code("upstream_timeout"),
            Outcome::UpstreamTimeout
        );
        assert_eq!(
            Outcome::from_code("image_too_large"),
            Outcome::Rejected("image_too_large".into())
        );
        assert!(Outcome::Ok.is_ok() && !Outcome::Shutdown.is_ok());
        assert!(Outcome::Shutdown == "shutdown" && Outcome::Ok != "shutdown");
    }
}
