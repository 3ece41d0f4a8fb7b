//! Base URLs of the services the generator talks to (the dispatcher, `--sample-metric`
//! endpoints): parsed once, plain `http://` only, and joined with endpoint paths without
//! losing a path prefix.

use std::str::FromStr;

use reqwest::Url;

/// Why a URL parser refused a text (the `url` crate's error, named through `reqwest::Url`).
pub type UrlParseError = <Url as FromStr>::Err;

/// A URL that cannot be a base URL here.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    #[error("invalid URL {text:?}: {source}")]
    Parse {
        text: String,
        #[source]
        source: UrlParseError,
    },
    #[error("expected an http:// URL (TLS is not supported), got {0:?}")]
    NotHttp(String),
}

/// An `http://` base URL.
pub fn parse_base_url(text: &str) -> Result<Url, UrlError> {
    let url = Url::parse(text).map_err(|source| UrlError::Parse {
        text: text.to_owned(),
        source,
    })?;
    // Plain HTTP only: the generator runs next to the dispatcher (same host, cluster or
    // namespace), and TLS would add its own cost to every measured request.
    if url.scheme() != "http" || url.host().is_none() {
        return Err(UrlError::NotHttp(text.to_owned()));
    }
    Ok(url)
}

/// `base` + `path`, keeping any path prefix of `base` (`http://h/api` + `stats` =
/// `http://h/api/stats`, where `Url::join` would drop `api`).
pub fn endpoint(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    if !url.path().ends_with('/') {
        let with_slash = format!("{}/", url.path());
        url.set_path(&with_slash);
    }
    url.join(path).unwrap_or(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_keeps_path_prefixes() {
        let base = parse_base_url("http://h:1/api").unwrap();
        assert_eq!(endpoint(&base, "stats").as_str(), "http://h:1/api/stats");
        let base = parse_base_url("http://h:1").unwrap();
        assert_eq!(endpoint(&base, "enqueue").as_str(), "http://h:1/enqueue");
    }

    #[test]
    fn only_plain_http_base_urls() {
        assert!(matches!(
            parse_base_url("not a url"),
            Err(UrlError::Parse { .. })
        ));
        assert!(matches!(
            parse_base_url("https://x"),
            Err(UrlError::NotHttp(_))
        ));
    }
}
