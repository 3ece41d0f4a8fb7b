//! What the HTTP handlers share: the controller's handle and who may use the control
//! endpoints (the project's one token policy, [`harness_core::auth`]).

pub use harness_core::auth::ControlAccess;

use crate::controller::ControllerHandle;

/// State of the HTTP handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    pub handle: ControllerHandle,
    /// Who may call `/status`, `/pause` and `/resume`.
    pub access: ControlAccess,
}
