//! Checks of user-supplied names: slugs, domains, emails, display names, passwords.

use crate::error::ApiError;

/// A lower-case DNS name: labels of a–z, 0–9 and inner hyphens, at least two labels.
pub fn is_hostname(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').count() >= 2
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// An assistant slug doubles as a DNS label under `base_domain`.
pub fn slug(s: &str) -> Result<String, ApiError> {
    let ok = (3..=63).contains(&s.len())
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(s.to_string())
    } else {
        Err(ApiError::Unprocessable(
            "slug: 3 to 63 characters of a-z, 0-9 and inner hyphens".into(),
        ))
    }
}

pub fn domain(s: &str) -> Result<String, ApiError> {
    let d = s.trim().trim_end_matches('.').to_ascii_lowercase();
    if is_hostname(&d) {
        Ok(d)
    } else {
        Err(ApiError::Unprocessable(
            "domain: a DNS name such as chat.example.com".into(),
        ))
    }
}

/// A custom role's name: 1 to 40 characters of a-z, 0-9, `-` and `_`, starting with a letter
/// or digit, and not the name of a built-in role (a role is named by the API either way).
pub fn role_name(s: &str) -> Result<String, ApiError> {
    let ok = (1..=40).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
    if !ok {
        return Err(ApiError::Unprocessable(
            "name: 1 to 40 characters of a-z, 0-9, '-' and '_', starting with a letter or digit"
                .into(),
        ));
    }
    if bastion_core::Role::parse(s).is_some() {
        return Err(ApiError::Unprocessable(format!(
            "name: {s:?} is a built-in role"
        )));
    }
    Ok(s.to_string())
}

/// A billion dollars: an amount above this is a typo.
const MAX_USD: f64 = 1e9;

/// A dollar amount (a spend cap) in millionths of a dollar, the unit amounts are kept in.
pub fn usd_micros(field: &str, usd: Option<f64>) -> Result<Option<i64>, ApiError> {
    match usd {
        None => Ok(None),
        Some(usd) if usd.is_finite() && (0.0..=MAX_USD).contains(&usd) => {
            Ok(Some((usd * 1e6).round() as i64))
        }
        Some(_) => Err(ApiError::Unprocessable(format!(
            "{field}: between 0 and {MAX_USD}"
        ))),
    }
}

/// The inverse of [`usd_micros`], for answers.
pub fn micros_usd(micros: i64) -> f64 {
    micros as f64 / 1e6
}

pub fn display_name(field: &str, s: &str) -> Result<String, ApiError> {
    let t = s.trim();
    if t.is_empty() || t.chars().count() > 200 || t.chars().any(char::is_control) {
        return Err(ApiError::Unprocessable(format!(
            "{field}: 1 to 200 characters, no control characters"
        )));
    }
    Ok(t.to_string())
}

pub fn description(s: &str) -> Result<String, ApiError> {
    if s.chars().count() > 2000 {
        return Err(ApiError::Unprocessable(
            "description: at most 2000 characters".into(),
        ));
    }
    Ok(s.to_string())
}

pub fn email(s: &str) -> Result<String, ApiError> {
    let e = s.trim().to_lowercase();
    let valid = e.len() <= 254
        && !e.chars().any(|c| c.is_whitespace() || c.is_control())
        && match e.split_once('@') {
            Some((local, host)) => {
                !local.is_empty()
                    && !host.contains('@')
                    && host.contains('.')
                    && !host.starts_with('.')
                    && !host.ends_with('.')
            }
            None => false,
        };
    if valid {
        Ok(e)
    } else {
        Err(ApiError::Unprocessable("email: not a valid address".into()))
    }
}

/// Long enough to resist guessing, short enough that hashing it is not a denial of service.
/// The password rules (length, not a common password, not the email): see
/// `bastion_auth::password_policy`.
pub fn new_password(s: &str, email: &str) -> Result<(), ApiError> {
    bastion_auth::password_policy::check(s, email)
        .map_err(|e| ApiError::Unprocessable(format!("password: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames() {
        assert!(is_hostname("chat.example.com"));
        assert!(!is_hostname("localhost"));
        assert!(!is_hostname("Chat.example.com"));
        assert!(!is_hostname("-a.example.com"));
        assert!(!is_hostname("a..com"));
    }

    #[test]
    fn slugs_and_emails() {
        assert!(slug("support-bot").is_ok());
        assert!(slug("ab").is_err());
        assert!(slug("Bad_Slug").is_err());
        assert_eq!(email(" Ann@Example.COM ").unwrap(), "ann@example.com");
        assert!(email("no-at-sign").is_err());
        assert!(email("a@b@c.com").is_err());
    }
}
