//! Validation of every name a user chooses: one rule per kind of name.

use crate::{Error, Result};

/// Checks a repository name (the name part of a bento or model tag), as BentoML validates it:
/// lower-case letters, digits, `_`, `-` and `.`, starting with a letter or digit, at most 63 characters.
pub fn validate_repository_name(name: &str) -> Result<()> {
    check(name, "repository name", 63, |c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.')
    })
}

/// Checks a version (the part after `:` in a tag): letters, digits, `_`, `-` and `.`, at most 128 characters.
pub fn validate_version(version: &str) -> Result<()> {
    check(version, "version", 128, |c| {
        c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
    })
}

/// Checks a user, organization or API token name: letters, digits, `_`, `-` and `.`, at most 64 characters.
pub fn validate_name(kind: &str, name: &str) -> Result<()> {
    check(name, kind, 64, |c| {
        c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
    })
}

/// Checks an e-mail address loosely: one `@` with text on both sides and a dot in the domain.
pub fn validate_email(email: &str) -> Result<()> {
    let ok = email.len() <= 254
        && !email.chars().any(char::is_whitespace)
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
        });
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "{email:?} is not a valid e-mail address"
        )))
    }
}

/// Checks a new password: at least 8 characters, at most 1024.
pub fn validate_password(password: &str) -> Result<()> {
    let n = password.chars().count();
    if n < 8 {
        return Err(Error::invalid("password must have at least 8 characters"));
    }
    if n > 1024 {
        return Err(Error::invalid("password must have at most 1024 characters"));
    }
    Ok(())
}

/// The longest description of anything (repository, version, organization, token).
pub const MAX_DESCRIPTION_CHARS: usize = 10_000;

/// Checks a description: free text of at most [`MAX_DESCRIPTION_CHARS`] characters.
pub fn validate_description(what: &str, description: &str) -> Result<()> {
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(Error::invalid(format!(
            "the description of the {what} is longer than {MAX_DESCRIPTION_CHARS} characters"
        )));
    }
    Ok(())
}

/// Checks a label key: 1 to 63 characters of letters, digits, `_`, `-`, `.` and `/`.
pub fn validate_label_key(key: &str) -> Result<()> {
    check(key, "label key", 63, |c| {
        c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/')
    })
}

fn check(value: &str, what: &str, max: usize, allowed: impl Fn(char) -> bool) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid(format!("{what} must not be empty")));
    }
    if value.len() > max {
        return Err(Error::invalid(format!(
            "{what} {value:?} is longer than {max} characters"
        )));
    }
    if let Some(bad) = value.chars().find(|&c| !allowed(c)) {
        return Err(Error::invalid(format!(
            "{what} {value:?} contains the character {bad:?}, which is not allowed"
        )));
    }
    let first = value.chars().next().unwrap_or('a');
    if !first.is_ascii_alphanumeric() {
        return Err(Error::invalid(format!(
            "{what} {value:?} must start with a letter or a digit"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names_follow_bentoml_rules() {
        assert!(validate_repository_name("iris_classifier-2.v1").is_ok());
        assert!(validate_repository_name("Iris").is_err());
        assert!(validate_repository_name("").is_err());
        assert!(validate_repository_name("-x").is_err());
        assert!(validate_repository_name("a/b").is_err());
        assert!(validate_repository_name(&"a".repeat(64)).is_err());
    }

    #[test]
    fn versions_allow_mixed_case() {
        assert!(validate_version("ABCdef123_-.x").is_ok());
        assert!(validate_version("a:b").is_err());
        assert!(validate_version("../etc").is_err());
    }

    #[test]
    fn emails_and_passwords() {
        assert!(validate_email("a@b.io").is_ok());
        assert!(validate_email("a@b").is_err());
        assert!(validate_email("a b@c.io").is_err());
        assert!(validate_email("@c.io").is_err());
        assert!(validate_password("short").is_err());
        assert!(validate_password("long enough").is_ok());
    }

    #[test]
    fn descriptions_are_bounded() {
        assert!(validate_description("repository", &"x".repeat(MAX_DESCRIPTION_CHARS)).is_ok());
        let err = validate_description("repository", &"é".repeat(MAX_DESCRIPTION_CHARS + 1))
            .unwrap_err()
            .to_string();
        assert!(
            err.len() < 200,
            "the message does not echo the input: {err}"
        );
    }

    #[test]
    fn label_keys() {
        assert!(validate_label_key("team/owner").is_ok());
        assert!(validate_label_key("ä").is_err());
    }
}
