//! The authenticated caller of a request: which account, through which credential, with which
//! effective scopes (SPEC §2: granted ∩ what the owner may still do).

use crate::credential::CredentialKind;
use crate::scope::{Action, Resource, Scope, ScopeSet};

/// An account's plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Free plan.
    Free,
    /// Pro plan.
    Pro,
    /// Enterprise plan (mTLS eligible).
    Enterprise,
}

impl Plan {
    /// JSON / storage spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Free => "free",
            Plan::Pro => "pro",
            Plan::Enterprise => "enterprise",
        }
    }
    /// Parses the storage spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "free" => Some(Plan::Free),
            "pro" => Some(Plan::Pro),
            "enterprise" => Some(Plan::Enterprise),
            _ => None,
        }
    }
}

/// Whether an account may currently use its credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountStatus {
    /// Normal.
    Active,
    /// Every credential answers 403 `account_suspended` until lifted.
    Suspended,
}

impl AccountStatus {
    /// JSON / storage spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Active => "active",
            AccountStatus::Suspended => "suspended",
        }
    }
    /// Parses the storage spelling; anything unknown is treated as suspended (fail closed).
    pub fn parse(s: &str) -> Self {
        match s {
            "active" => AccountStatus::Active,
            _ => AccountStatus::Suspended,
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Account id.
    pub account_id: String,
    /// Account username.
    pub username: String,
    /// Account plan.
    pub plan: Plan,
    /// Whether the account is a server operator.
    pub operator: bool,
    /// The credential's kind.
    pub kind: CredentialKind,
    /// The credential's id (never its secret).
    pub credential_id: String,
    /// Effective scopes.
    pub scopes: ScopeSet,
    /// When the credential stops working, if ever (Unix seconds).
    pub expires_at: Option<i64>,
}

impl Principal {
    /// Whether the principal may do `action` on `resource` for `project` (`None`: all projects).
    pub fn allows(&self, resource: Resource, action: Action, project: Option<&str>) -> bool {
        self.scopes.allows(resource, action, project)
    }

    /// `Ok` if allowed, otherwise the exact scope that is missing (for `WWW-Authenticate`).
    pub fn require(
        &self,
        resource: Resource,
        action: Action,
        project: Option<&str>,
    ) -> Result<(), Scope> {
        if self.allows(resource, action, project) {
            Ok(())
        } else {
            Err(Scope {
                resource,
                action,
                project: project.map(str::to_owned),
            })
        }
    }
}
