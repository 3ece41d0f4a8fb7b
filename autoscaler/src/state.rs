//! What the HTTP handlers share: the controller's handle and who may use the control
//! endpoints.

use std::net::SocketAddr;

use crate::controller::ControllerHandle;

/// State of the HTTP handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    pub handle: ControllerHandle,
    /// Who may call `/status`, `/pause` and `/resume`.
    pub access: ControlAccess,
}

/// Who may call the control endpoints.
#[derive(Clone, PartialEq, Eq)]
pub enum ControlAccess {
    /// Anyone who reaches the port.
    Open,
    /// Callers with `Authorization: Bearer <token>`.
    Token(String),
    /// Nobody: 403 `control_disabled`.
    Disabled,
}

impl ControlAccess {
    /// What `serve` grants: the token when one is set; otherwise open on a loopback bind or
    /// when `allow_unauthenticated`, and disabled anywhere else, since `/pause` stops scaling.
    pub fn for_bind(bind: SocketAddr, token: Option<String>, allow_unauthenticated: bool) -> Self {
        match token {
            Some(token) => ControlAccess::Token(token),
            None if bind.ip().is_loopback() || allow_unauthenticated => ControlAccess::Open,
            None => ControlAccess::Disabled,
        }
    }
}

/// A library caller's choice: a token, or open.
impl From<Option<String>> for ControlAccess {
    fn from(token: Option<String>) -> Self {
        token.map_or(ControlAccess::Open, ControlAccess::Token)
    }
}

/// Never prints the token.
impl std::fmt::Debug for ControlAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ControlAccess::Open => "Open",
            ControlAccess::Token(_) => "Token(<redacted>)",
            ControlAccess::Disabled => "Disabled",
        })
    }
}
