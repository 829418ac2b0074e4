//! dotgit-core: the domain of the dotgit authentication service, free of I/O.
//!
//! Scope grammar and matching (SPEC §2), credential shapes and checksums (SPEC §1), the
//! authenticated principal, and the injected clock. Everything here is pure: time and
//! randomness come in as arguments, so every rule is testable without sleeping.

pub mod audit;
pub mod clock;
pub mod credential;
pub mod jwt;
pub mod net;
pub mod principal;
pub mod scope;
pub mod slug;

pub use clock::{Clock, ManualClock, SystemClock};
pub use credential::{CredentialKind, Secret, SecretHash, TokenShape};
pub use principal::{AccountStatus, Plan, Principal};
pub use scope::{Action, Resource, Scope, ScopeError, ScopeSet};
