//! Project and team slugs: `[a-z0-9][a-z0-9-]{0,62}` (SPEC §2), the same grammar the scope
//! suffix uses, so every project name is addressable by a narrowed scope.

/// Whether `s` is a valid slug.
pub fn is_valid(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// Whether `s` is a valid account username: like a slug, at most 39 characters (GitHub's limit).
pub fn is_valid_username(s: &str) -> bool {
    s.len() <= 39 && is_valid(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert!(is_valid("my-app"));
        assert!(is_valid("0"));
        assert!(is_valid(&"a".repeat(63)));
        assert!(!is_valid(&"a".repeat(64)));
        assert!(!is_valid("-app"));
        assert!(!is_valid("My-app"));
        assert!(!is_valid("my_app"));
        assert!(!is_valid(""));
        assert!(!is_valid("app/x"));
        assert!(!is_valid("äpp"));
    }
}
