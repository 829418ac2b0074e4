//! Scope grammar and matching (SPEC §2): `<resource>:<action>[:<project-slug>]`.
//!
//! What must hold: parsing is strict (lower-case ASCII, known resources and actions, valid
//! slug), nothing is matched loosely at check time, `write` implies `read` on the same resource
//! and project, and a scope without a slug covers every project of the account.

use std::fmt;

/// The things a scope can grant access to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    /// Repositories (projects).
    Repo,
    /// Deployments of projects.
    Deploy,
    /// Teams and their members.
    Team,
    /// The audit log.
    Audit,
    /// Credentials: API keys, JWT keys, OAuth apps and authorizations.
    Keys,
}

impl Resource {
    /// Every resource, in grammar order.
    pub const ALL: [Resource; 5] = [
        Resource::Repo,
        Resource::Deploy,
        Resource::Team,
        Resource::Audit,
        Resource::Keys,
    ];

    /// The grammar's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Repo => "repo",
            Resource::Deploy => "deploy",
            Resource::Team => "team",
            Resource::Audit => "audit",
            Resource::Keys => "keys",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Resource::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// What a scope allows on its resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Read access.
    Read,
    /// Write access; implies read.
    Write,
}

impl Action {
    /// The grammar's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Write => "write",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "read" => Some(Action::Read),
            "write" => Some(Action::Write),
            _ => None,
        }
    }

    /// Whether holding `self` grants `needed`.
    pub fn implies(self, needed: Action) -> bool {
        self == Action::Write || needed == Action::Read
    }
}

/// Why a scope string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    /// The string does not follow the grammar.
    #[error("`{0}` is not a valid scope: expected <resource>:<action>[:<project>] with resource one of repo, deploy, team, audit, keys and action read or write")]
    Invalid(String),
}

/// One parsed scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope {
    /// The resource.
    pub resource: Resource,
    /// The action.
    pub action: Action,
    /// `None` covers every project of the account.
    pub project: Option<String>,
}

impl Scope {
    /// A scope over every project.
    pub fn new(resource: Resource, action: Action) -> Self {
        Scope {
            resource,
            action,
            project: None,
        }
    }

    /// A scope narrowed to one project.
    pub fn for_project(resource: Resource, action: Action, project: &str) -> Self {
        Scope {
            resource,
            action,
            project: Some(project.to_owned()),
        }
    }

    /// Parses one scope strictly; anything off the grammar is an error.
    pub fn parse(s: &str) -> Result<Self, ScopeError> {
        let bad = || ScopeError::Invalid(truncate(s));
        if s.len() > 128 {
            return Err(bad());
        }
        let mut parts = s.split(':');
        let resource = parts.next().and_then(Resource::parse).ok_or_else(bad)?;
        let action = parts.next().and_then(Action::parse).ok_or_else(bad)?;
        let project = match parts.next() {
            None => None,
            Some(p) if crate::slug::is_valid(p) => Some(p.to_owned()),
            Some(_) => return Err(bad()),
        };
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Scope {
            resource,
            action,
            project,
        })
    }

    /// Whether this granted scope allows `action` on `resource` for `project`
    /// (`None` = the request concerns every project, e.g. an unfiltered listing).
    pub fn allows(&self, resource: Resource, action: Action, project: Option<&str>) -> bool {
        self.resource == resource
            && self.action.implies(action)
            && match (&self.project, project) {
                (None, _) => true,
                (Some(mine), Some(wanted)) => mine == wanted,
                (Some(_), None) => false,
            }
    }

    /// Whether this granted scope covers everything `other` grants.
    pub fn covers(&self, other: &Scope) -> bool {
        self.allows(other.resource, other.action, other.project.as_deref())
    }
}

fn truncate(s: &str) -> String {
    let mut out: String = s.chars().take(64).collect();
    if s.chars().count() > 64 {
        out.push('…');
    }
    out
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_to(f)
    }
}

impl Scope {
    /// Writes the scope's text (`resource:action[:project]`): what `Display` shows, and what the
    /// scope lists push straight into one string (they are written on hot routes).
    fn write_to<W: fmt::Write>(&self, out: &mut W) -> fmt::Result {
        out.write_str(self.resource.as_str())?;
        out.write_str(":")?;
        out.write_str(self.action.as_str())?;
        if let Some(p) = &self.project {
            out.write_str(":")?;
            out.write_str(p)?;
        }
        Ok(())
    }

    fn text_len(&self) -> usize {
        self.resource.as_str().len()
            + 1
            + self.action.as_str().len()
            + self.project.as_ref().map_or(0, |p| 1 + p.len())
    }
}

/// A set of granted scopes, kept sorted and free of duplicates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ScopeSet(Vec<Scope>);

impl ScopeSet {
    /// The empty set.
    pub fn empty() -> Self {
        ScopeSet(Vec::new())
    }

    /// Every scope over every project: what an account owner may do on their own account.
    pub fn all() -> Self {
        let mut v = Vec::new();
        for r in Resource::ALL {
            v.push(Scope::new(r, Action::Write));
        }
        ScopeSet::from_scopes(v)
    }

    /// Builds a set from parsed scopes.
    pub fn from_scopes(mut v: Vec<Scope>) -> Self {
        v.sort();
        v.dedup();
        ScopeSet(v)
    }

    /// Parses a list of scope strings; the first bad one is the error.
    pub fn parse_list<S: AsRef<str>>(items: &[S]) -> Result<Self, ScopeError> {
        let v = items
            .iter()
            .map(|s| Scope::parse(s.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ScopeSet::from_scopes(v))
    }

    /// Parses the space-separated form used in storage and in OAuth/JWT `scope` values.
    pub fn parse_space_separated(s: &str) -> Result<Self, ScopeError> {
        let items: Vec<&str> = s.split(' ').filter(|p| !p.is_empty()).collect();
        Self::parse_list(&items)
    }

    /// The space-separated form.
    pub fn to_space_separated(&self) -> String {
        let mut out = String::with_capacity(self.0.iter().map(|s| s.text_len() + 1).sum());
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            // writing into a String cannot fail
            let _ = s.write_to(&mut out);
        }
        out
    }

    /// The scopes as strings, sorted.
    pub fn to_strings(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|s| {
                let mut t = String::with_capacity(s.text_len());
                let _ = s.write_to(&mut t);
                t
            })
            .collect()
    }

    /// The scopes.
    pub fn iter(&self) -> impl Iterator<Item = &Scope> {
        self.0.iter()
    }

    /// Whether the set has no scope.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether some scope allows `action` on `resource` for `project`.
    pub fn allows(&self, resource: Resource, action: Action, project: Option<&str>) -> bool {
        self.0.iter().any(|s| s.allows(resource, action, project))
    }

    /// Whether some scope allows `action` on `resource` for at least one project
    /// (used to admit a listing that is then filtered per project).
    pub fn allows_any_project(&self, resource: Resource, action: Action) -> bool {
        self.0
            .iter()
            .any(|s| s.resource == resource && s.action.implies(action))
    }

    /// Whether every scope of `self` is covered by `other`.
    pub fn is_subset_of(&self, other: &ScopeSet) -> bool {
        self.0.iter().all(|s| other.0.iter().any(|o| o.covers(s)))
    }

    /// Narrows every scope on `resources` to the listed projects (a scope over all projects
    /// becomes one scope per listed project; a scope on an unlisted project is dropped). Scopes on
    /// other resources are kept as they are. Used for the JWT `projects` claim.
    pub fn narrow_to_projects(&self, projects: &[String], resources: &[Resource]) -> ScopeSet {
        let mut out = Vec::new();
        for s in &self.0 {
            if !resources.contains(&s.resource) {
                out.push(s.clone());
                continue;
            }
            match &s.project {
                Some(p) if projects.contains(p) => out.push(s.clone()),
                Some(_) => {}
                None => out.extend(projects.iter().map(|p| Scope {
                    resource: s.resource,
                    action: s.action,
                    project: Some(p.clone()),
                })),
            }
        }
        ScopeSet::from_scopes(out)
    }

    /// The effective scopes of a credential whose grant is `self` and whose owner may still do
    /// `limit`: for every pair of scopes on the same resource, their meet (the weaker action,
    /// the narrower project). For any concrete project the result allows exactly what both allow.
    pub fn intersect(&self, limit: &ScopeSet) -> ScopeSet {
        let mut out = Vec::new();
        for s in &self.0 {
            for l in &limit.0 {
                if s.resource != l.resource {
                    continue;
                }
                let project = match (&s.project, &l.project) {
                    (None, None) => None,
                    (Some(p), None) | (None, Some(p)) => Some(p.clone()),
                    (Some(a), Some(b)) if a == b => Some(a.clone()),
                    (Some(_), Some(_)) => continue,
                };
                let action = if s.action == Action::Write && l.action == Action::Write {
                    Action::Write
                } else {
                    Action::Read
                };
                out.push(Scope {
                    resource: s.resource,
                    action,
                    project,
                });
            }
        }
        // drop scopes another member already covers, so the set reads as the user expects
        let all = out.clone();
        out.retain(|s| !all.iter().any(|o| o != s && o.covers(s)));
        ScopeSet::from_scopes(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> Scope {
        Scope::parse(s).unwrap()
    }

    fn set(items: &[&str]) -> ScopeSet {
        ScopeSet::parse_list(items).unwrap()
    }

    #[test]
    fn parses_the_grammar() {
        assert_eq!(p("repo:read"), Scope::new(Resource::Repo, Action::Read));
        assert_eq!(
            p("repo:read:my-app"),
            Scope::for_project(Resource::Repo, Action::Read, "my-app")
        );
        for bad in [
            "",
            "repo",
            "repo:",
            "repo:admin",
            "Repo:read",
            "repo:READ",
            "repos:read",
            "repo:read:",
            "repo:read:My-App",
            "repo:read:-app",
            "repo:read:a:b",
            "repo:read:my_app",
            " repo:read",
            "repo:read ",
            "*:read",
            "repo:*",
            "admin:write",
        ] {
            assert!(Scope::parse(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(Scope::parse(&format!("repo:read:{}", "a".repeat(64))).is_err());
        assert!(Scope::parse(&format!("repo:read:{}", "a".repeat(63))).is_ok());
    }

    #[test]
    fn write_implies_read_on_same_resource_and_project() {
        let s = set(&["repo:write:my-app"]);
        assert!(s.allows(Resource::Repo, Action::Read, Some("my-app")));
        assert!(s.allows(Resource::Repo, Action::Write, Some("my-app")));
        assert!(!s.allows(Resource::Repo, Action::Read, Some("other")));
        assert!(!s.allows(Resource::Repo, Action::Read, None));
        assert!(!s.allows(Resource::Deploy, Action::Read, Some("my-app")));
        let r = set(&["repo:read"]);
        assert!(r.allows(Resource::Repo, Action::Read, Some("x")));
        assert!(!r.allows(Resource::Repo, Action::Write, Some("x")));
    }

    #[test]
    fn subset_rules() {
        assert!(set(&["repo:read"]).is_subset_of(&set(&["repo:write"])));
        assert!(set(&["repo:write:x"]).is_subset_of(&set(&["repo:write"])));
        assert!(!set(&["repo:write"]).is_subset_of(&set(&["repo:write:x"])));
        assert!(!set(&["repo:write"]).is_subset_of(&set(&["repo:read"])));
        assert!(!set(&["keys:read"]).is_subset_of(&set(&["repo:write"])));
        assert!(ScopeSet::empty().is_subset_of(&ScopeSet::empty()));
    }

    #[test]
    fn intersect_narrows() {
        let granted = set(&["repo:write", "deploy:read"]);
        let limit = set(&["repo:read:x", "deploy:write"]);
        assert_eq!(
            granted.intersect(&limit).to_strings(),
            vec!["repo:read:x", "deploy:read"]
        );
        assert_eq!(granted.intersect(&ScopeSet::all()), granted);
    }

    #[test]
    fn narrowing_to_projects() {
        let s = set(&["repo:write", "deploy:read:a", "deploy:read:b", "team:read"]);
        let n = s.narrow_to_projects(
            &["a".into(), "c".into()],
            &[Resource::Repo, Resource::Deploy],
        );
        assert_eq!(
            n.to_strings(),
            vec!["repo:write:a", "repo:write:c", "deploy:read:a", "team:read"]
        );
        assert!(n.is_subset_of(&s));
    }

    fn arb_scope() -> impl Strategy<Value = Scope> {
        (
            prop::sample::select(Resource::ALL.to_vec()),
            prop::bool::ANY,
            prop::option::of(prop::sample::select(vec!["a", "b", "my-app"])),
        )
            .prop_map(|(r, w, p)| Scope {
                resource: r,
                action: if w { Action::Write } else { Action::Read },
                project: p.map(str::to_owned),
            })
    }

    fn arb_set() -> impl Strategy<Value = ScopeSet> {
        prop::collection::vec(arb_scope(), 0..6).prop_map(ScopeSet::from_scopes)
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(s in arb_scope()) {
            prop_assert_eq!(Scope::parse(&s.to_string()).unwrap(), s);
        }

        #[test]
        fn lists_are_the_scopes_as_displayed(s in arb_set()) {
            let shown: Vec<String> = s.iter().map(|x| x.to_string()).collect();
            prop_assert_eq!(s.to_space_separated(), shown.join(" "));
            prop_assert_eq!(s.to_strings(), shown);
        }

        #[test]
        fn space_separated_round_trip(s in arb_set()) {
            prop_assert_eq!(ScopeSet::parse_space_separated(&s.to_space_separated()).unwrap(), s);
        }

        #[test]
        fn parse_never_panics_and_accepts_only_canonical(s in "\\PC{0,40}") {
            if let Ok(scope) = Scope::parse(&s) {
                prop_assert_eq!(scope.to_string(), s);
            }
        }

        #[test]
        fn subset_is_reflexive_and_transitive(a in arb_set(), b in arb_set(), c in arb_set()) {
            prop_assert!(a.is_subset_of(&a));
            if a.is_subset_of(&b) && b.is_subset_of(&c) {
                prop_assert!(a.is_subset_of(&c));
            }
        }

        #[test]
        fn subset_means_no_new_access(a in arb_set(), b in arb_set(),
                                      r in prop::sample::select(Resource::ALL.to_vec()),
                                      w in prop::bool::ANY,
                                      proj in prop::option::of(prop::sample::select(vec!["a", "b", "my-app", "zzz"]))) {
            let act = if w { Action::Write } else { Action::Read };
            if a.is_subset_of(&b) && a.allows(r, act, proj) {
                prop_assert!(b.allows(r, act, proj));
            }
        }

        #[test]
        fn intersection_is_within_both(a in arb_set(), b in arb_set(),
                                       r in prop::sample::select(Resource::ALL.to_vec()),
                                       w in prop::bool::ANY,
                                       proj in prop::option::of(prop::sample::select(vec!["a", "b", "my-app", "zzz"]))) {
            let act = if w { Action::Write } else { Action::Read };
            let i = a.intersect(&b);
            prop_assert!(i.is_subset_of(&a));
            prop_assert!(i.is_subset_of(&b));
            if let Some(p) = proj {
                // for a concrete project, the intersection allows exactly what both allow
                prop_assert_eq!(i.allows(r, act, Some(p)), a.allows(r, act, Some(p)) && b.allows(r, act, Some(p)));
            }
        }
    }
}
