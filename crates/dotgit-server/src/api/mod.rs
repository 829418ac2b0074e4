//! The platform API under `/v1` (SPEC §5, objects per SPEC §6). Handlers are thin: access was
//! already enforced by the route's declaration in `router.rs`; they validate input, call one
//! store or `ops` function, and shape the answer.

pub mod admin;
pub mod audit;
pub mod check;
pub mod jwt_keys;
pub mod keys;
pub mod projects;
pub mod teams;
pub mod user;

use dotgit_core::clock::rfc3339;

/// RFC 3339 or `null`.
pub(crate) fn ts_opt(t: Option<i64>) -> Option<String> {
    t.map(rfc3339)
}
