use std::fmt;

use serde::{Deserialize, Serialize};

use super::{FieldError, Timestamp, UserId};

bounded_text!(
    /// How a user is shown to others: 1 to 64 characters.
    DisplayName, allows_empty = false, max = 64
);

/// An email address, trimmed and lowercased so one mailbox is one account.
///
/// The check is deliberately plain (one `@`, a dotted domain, sane lengths): full RFC 5322
/// parsing accepts addresses no mail server delivers to, and the real proof is the mail itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct Email(String);

serialize_as_text!(Email);

impl Email {
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        let email = raw.trim().to_lowercase();
        let invalid = || FieldError::new(field, "must be an email address like name@example.com");
        if email.len() > 254 {
            return Err(invalid());
        }
        let (local, domain) = email.split_once('@').ok_or_else(invalid)?;
        let local_ok = (1..=64).contains(&local.len())
            && local
                .chars()
                .all(|c| !c.is_whitespace() && !c.is_control() && !"@<>()[]\\,;:\"".contains(c));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|label| {
                (1..=63).contains(&label.len())
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        if local_ok && domain_ok {
            Ok(Self(email))
        } else {
            Err(invalid())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Email {
    type Error = FieldError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse("email", &raw)
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A password as typed at signup or login. Never printed, never serialised.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl Password {
    pub const MIN_CHARS: usize = 12;
    pub const MAX_CHARS: usize = 128;

    /// A new password: 12 to 128 characters, and not the account's own email address.
    pub fn new_for(raw: &str, email: Option<&Email>) -> Result<Self, FieldError> {
        let chars = raw.chars().count();
        if !(Self::MIN_CHARS..=Self::MAX_CHARS).contains(&chars) {
            return Err(FieldError::new(
                "password",
                format!(
                    "must be {} to {} characters",
                    Self::MIN_CHARS,
                    Self::MAX_CHARS
                ),
            ));
        }
        if email.is_some_and(|e| raw.trim().to_lowercase() == e.as_str()) {
            return Err(FieldError::new("password", "must not be the email address"));
        }
        Ok(Self(raw.to_owned()))
    }

    /// A password offered at login: only bounded, so hashing cost stays bounded too.
    pub fn offered(raw: &str) -> Result<Self, FieldError> {
        if raw.is_empty() || raw.chars().count() > Self::MAX_CHARS {
            return Err(FieldError::new("password", "must be 1 to 128 characters"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A user's public profile. The password hash lives beside it in storage, never in here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub id: UserId,
    pub email: Email,
    pub display_name: DisplayName,
    pub created_at: Timestamp,
}

impl User {
    pub fn create(email: Email, display_name: DisplayName, now: Timestamp) -> Self {
        Self {
            id: UserId::generate(),
            email,
            display_name,
            created_at: now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_email_is_trimmed_and_lowercased() {
        assert_eq!(
            Email::parse("email", "  Ada@Example.COM ")
                .unwrap()
                .as_str(),
            "ada@example.com"
        );
    }

    #[test]
    fn malformed_emails_are_rejected_naming_the_field() {
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a b@example.com",
            "ada@-x.com",
            "ada@ex..com",
            "a@b@example.com",
        ] {
            assert_eq!(
                Email::parse("email", bad).unwrap_err().field,
                "email",
                "{bad:?}"
            );
        }
        assert!(Email::parse("email", &format!("{}@example.com", "a".repeat(65))).is_err());
    }

    #[test]
    fn a_password_must_be_twelve_to_128_characters() {
        assert!(Password::new_for("short-pass", None).is_err());
        assert!(Password::new_for("twelve chars", None).is_ok());
        assert!(Password::new_for(&"é".repeat(128), None).is_ok());
        assert!(Password::new_for(&"x".repeat(129), None).is_err());
    }

    #[test]
    fn a_password_must_not_be_the_email() {
        let email = Email::parse("email", "someone@example.com").unwrap();
        let error = Password::new_for("SomeOne@Example.com", Some(&email)).unwrap_err();
        assert_eq!(error.field, "password");
    }

    #[test]
    fn a_password_never_prints() {
        let password = Password::new_for("correct horse battery", None).unwrap();
        assert!(!format!("{password:?}").contains("horse"));
    }

    #[test]
    fn a_display_name_is_bounded() {
        assert!(DisplayName::parse("display_name", " Ada ").is_ok());
        assert!(DisplayName::parse("display_name", "").is_err());
        assert!(DisplayName::parse("display_name", &"x".repeat(65)).is_err());
    }
}
