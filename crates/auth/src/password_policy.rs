//! What a new password must be: long enough to resist offline guessing, short enough that
//! hashing it cannot be used to burn CPU, not one of the passwords attackers try first, and
//! not built from the account's own e-mail address. Length over composition rules, as NIST
//! SP 800-63B advises: no "one digit, one symbol" requirements, which only make passwords
//! harder to remember without making them harder to guess.
//!
//! The list of common passwords is bundled (`data/common-passwords.txt`, sources and licenses
//! in `data/README.md`): a sign-up never waits on a network service.

use std::collections::HashSet;
use std::sync::OnceLock;
use thiserror::Error;

/// The fewest characters (Unicode scalar values, not bytes) a password may have.
pub const MIN_CHARS: usize = 12;
/// The most bytes a password may have: argon2 hashes any length, so without a bound a
/// megabyte "password" costs the server, not the attacker.
pub const MAX_BYTES: usize = 1024;
/// An e-mail local part shorter than this is not looked for inside the password: "jo" would
/// refuse every password that happens to contain those two letters.
const MIN_LOCAL_PART_CHARS: usize = 3;

/// Why a password was refused. The messages are safe to show to the person choosing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum PasswordRejected {
    #[error("the password must be at least {min} characters long")]
    TooShort { min: usize },
    #[error("the password must be at most {max_bytes} bytes long")]
    TooLong { max_bytes: usize },
    #[error("the password is too common")]
    Common,
    #[error("the password must not contain the e-mail address")]
    ContainsEmail,
}

/// Checks a new `password` for the account of `email`.
pub fn check(password: &str, email: &str) -> Result<(), PasswordRejected> {
    // First, before any work proportional to the input.
    if password.len() > MAX_BYTES {
        return Err(PasswordRejected::TooLong {
            max_bytes: MAX_BYTES,
        });
    }
    if password.chars().count() < MIN_CHARS {
        return Err(PasswordRejected::TooShort { min: MIN_CHARS });
    }
    let lowered = password.to_lowercase();
    let local = email
        .rsplit_once('@')
        .map_or(email, |(local, _)| local)
        .trim()
        .to_lowercase();
    if !local.is_empty()
        && (lowered == local
            || (local.chars().count() >= MIN_LOCAL_PART_CHARS && lowered.contains(&local)))
    {
        return Err(PasswordRejected::ContainsEmail);
    }
    if common_passwords().contains(lowered.as_str()) {
        return Err(PasswordRejected::Common);
    }
    Ok(())
}

/// The bundled list, lower-cased, built once on first use (about 40,000 entries).
fn common_passwords() -> &'static HashSet<&'static str> {
    static LIST: OnceLock<HashSet<&'static str>> = OnceLock::new();
    LIST.get_or_init(|| {
        include_str!("../data/common-passwords.txt")
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMAIL: &str = "alice.smith@example.com";

    #[test]
    fn common_passwords_are_refused_whatever_their_case() {
        for p in [
            "password1234",
            "Password1234",
            "PASSWORD1234",
            "qwertyuiop123",
        ] {
            assert_eq!(check(p, EMAIL), Err(PasswordRejected::Common), "{p}");
        }
    }

    #[test]
    fn the_bundled_list_is_loaded_and_lower_case() {
        let list = common_passwords();
        assert!(list.len() > 30_000, "{}", list.len());
        assert!(list.contains("password1234"));
        assert!(list.iter().all(|p| p.chars().count() >= 8));
        assert!(list.iter().all(|p| *p == p.to_lowercase()));
    }

    #[test]
    fn a_long_random_passphrase_is_accepted() {
        assert_eq!(check("correct horse battery staple", EMAIL), Ok(()));
        assert_eq!(check("tQ9#vLm2!rZx8&pW", EMAIL), Ok(()));
    }

    #[test]
    fn eleven_characters_are_too_short_and_twelve_enough() {
        assert_eq!(
            check("vLm2rZx8pWq", EMAIL),
            Err(PasswordRejected::TooShort { min: 12 })
        );
        assert_eq!(check("vLm2rZx8pWqK", EMAIL), Ok(()));
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        // 11 characters, 22 bytes: too short although the byte count passes.
        let eleven = "ééééééééééé";
        assert_eq!(eleven.len(), 22);
        assert_eq!(
            check(eleven, EMAIL),
            Err(PasswordRejected::TooShort { min: 12 })
        );
        // 12 characters of 4 bytes each.
        assert_eq!(check("🦀🔒🌍🎲🦀🔒🌍🎲🦀🔒🌍🎲", EMAIL), Ok(()));
    }

    #[test]
    fn more_than_1024_bytes_is_too_long() {
        assert_eq!(check(&"x7Gq".repeat(256), EMAIL), Ok(()));
        assert_eq!(
            check(&"x7Gq".repeat(257), EMAIL),
            Err(PasswordRejected::TooLong { max_bytes: 1024 })
        );
        // 342 three-byte characters: 1026 bytes although only 342 characters.
        assert_eq!(
            check(&"€".repeat(342), EMAIL),
            Err(PasswordRejected::TooLong { max_bytes: 1024 })
        );
    }

    #[test]
    fn the_email_local_part_is_refused_inside_or_alone() {
        assert_eq!(
            check("alice.smith@example.com", EMAIL),
            Err(PasswordRejected::ContainsEmail)
        );
        assert_eq!(
            check("xX-ALICE.SMITH-2024", EMAIL),
            Err(PasswordRejected::ContainsEmail)
        );
        assert_eq!(
            check("alice.smith.long", "alice.smith.long@example.com"),
            Err(PasswordRejected::ContainsEmail)
        );
    }

    #[test]
    fn a_very_short_local_part_is_not_looked_for() {
        // "jo" inside a strong passphrase says nothing about the account.
        assert_eq!(check("enjoy the blue mountains", "jo@example.com"), Ok(()));
    }
}
