//! The single integration-test binary: the real server in-process over TLS (dotgit-testkit),
//! spoken to by an HTTPS client, plus the real `dotgit` binary for the command line.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod abuse;
mod audit;
mod cli;
mod dashboard;
mod errors;
mod jwt;
mod keys;
mod oauth;
mod platform;
mod tls;
