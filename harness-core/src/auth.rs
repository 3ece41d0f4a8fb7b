//! Who may call a service's control endpoints (start a load test, pause the autoscaler): the one
//! bearer-token policy of the project.
//!
//! With a token, callers must send `Authorization: Bearer <token>` (401 `unauthorized`
//! otherwise). Without one, the control endpoints are open only when the server listens on a
//! loopback address, where only this machine can reach them, or when the operator says so
//! explicitly (`--allow-unauthenticated`); anywhere else they answer 403 `control_disabled`. A
//! service whose whole purpose is its control endpoints may refuse to start instead of serving
//! only 403s (see [`ControlAccess::is_disabled`]).

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api_error::error_response;

/// What a control endpoint requires of its caller.
#[derive(Clone, PartialEq, Eq)]
pub enum ControlAccess {
    /// Callers with `Authorization: Bearer <token>`.
    Token(Arc<str>),
    /// Anyone who can reach the port.
    Open,
    /// No one: no token, and not on a loopback address.
    Disabled,
}

impl ControlAccess {
    /// The policy for a server bound to `bind`: the token when one is set; otherwise open on a
    /// loopback address or when `allow_unauthenticated`, and disabled anywhere else.
    pub fn for_bind(bind: SocketAddr, token: Option<&str>, allow_unauthenticated: bool) -> Self {
        match token {
            Some(token) => ControlAccess::Token(token.into()),
            None if bind.ip().is_loopback() || allow_unauthenticated => ControlAccess::Open,
            None => ControlAccess::Disabled,
        }
    }

    /// A library caller's choice: a token, or open.
    pub fn token_or_open(token: Option<&str>) -> Self {
        token.map_or(ControlAccess::Open, |t| ControlAccess::Token(t.into()))
    }

    pub fn is_disabled(&self) -> bool {
        *self == ControlAccess::Disabled
    }

    /// Whether a request with these headers may pass.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), AccessDenied> {
        match self {
            ControlAccess::Open => Ok(()),
            ControlAccess::Disabled => Err(AccessDenied::Disabled),
            ControlAccess::Token(expected) => {
                let given = headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .unwrap_or_default();
                if constant_time_eq(given.as_bytes(), expected.as_bytes()) {
                    Ok(())
                } else {
                    Err(AccessDenied::Unauthorized)
                }
            }
        }
    }
}

/// Never prints the token.
impl fmt::Debug for ControlAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ControlAccess::Token(_) => "Token(<redacted>)",
            ControlAccess::Open => "Open",
            ControlAccess::Disabled => "Disabled",
        })
    }
}

/// Why a control request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AccessDenied {
    #[error("missing or wrong bearer token")]
    Unauthorized,
    #[error(
        "control endpoints are disabled on a non-loopback address without a token: set \
         AUTH_TOKEN, or ALLOW_UNAUTHENTICATED=true"
    )]
    Disabled,
}

impl AccessDenied {
    pub fn code(self) -> &'static str {
        match self {
            AccessDenied::Unauthorized => "unauthorized",
            AccessDenied::Disabled => "control_disabled",
        }
    }
}

impl IntoResponse for AccessDenied {
    fn into_response(self) -> Response {
        let status = match self {
            AccessDenied::Unauthorized => StatusCode::UNAUTHORIZED,
            AccessDenied::Disabled => StatusCode::FORBIDDEN,
        };
        let mut response = error_response(status, self.code(), self.to_string());
        if self == AccessDenied::Unauthorized {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// The middleware of the control routes:
/// `route_layer(middleware::from_fn_with_state(access, require_control_access))`.
pub async fn require_control_access(
    State(access): State<ControlAccess>,
    request: Request,
    next: Next,
) -> Response {
    match access.check(request.headers()) {
        Ok(()) => next.run(request).await,
        Err(denied) => denied.into_response(),
    }
}

/// Compares without an early exit, so response time does not leak how much of a guess matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::post;
    use tower::ServiceExt;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_policy_without_a_token_is_loopback_only() {
        let open = [
            ("127.0.0.1:1", false),
            ("[::1]:1", false),
            ("0.0.0.0:1", true),
        ];
        for (bind, allow) in open {
            assert_eq!(
                ControlAccess::for_bind(addr(bind), None, allow),
                ControlAccess::Open
            );
        }
        assert!(ControlAccess::for_bind(addr("0.0.0.0:1"), None, false).is_disabled());
        assert_eq!(
            ControlAccess::for_bind(addr("0.0.0.0:1"), Some("s"), false),
            ControlAccess::Token("s".into())
        );
        assert_eq!(
            format!("{:?}", ControlAccess::token_or_open(Some("secret"))),
            "Token(<redacted>)"
        );
    }

    async fn call(access: ControlAccess, authorization: Option<&str>) -> Response {
        let app = Router::new()
            .route("/control", post(|| async { "done" }))
            .route_layer(axum::middleware::from_fn_with_state(
                access,
                require_control_access,
            ));
        let mut request = Request::post("/control");
        if let Some(value) = authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        app.oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn the_layer_lets_in_exactly_who_the_policy_says() {
        let token = ControlAccess::Token("s3cret".into());
        assert_eq!(
            call(token.clone(), Some("Bearer s3cret")).await.status(),
            200
        );
        for wrong in [
            None,
            Some("Bearer s3cre"),
            Some("s3cret"),
            Some("Bearer s3cret2"),
        ] {
            let response = call(token.clone(), wrong).await;
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{wrong:?}");
            assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
        }
        assert_eq!(call(ControlAccess::Open, None).await.status(), 200);
        let disabled = call(ControlAccess::Disabled, Some("Bearer x")).await;
        assert_eq!(disabled.status(), StatusCode::FORBIDDEN);
        let body = axum::body::to_bytes(disabled.into_body(), 1 << 16)
            .await
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["error"]["code"], "control_disabled");
    }
}
