//! Activation codes: what a device shows (on its screen, or by voice) and its owner types.
//!
//! The default alphabet has 32 symbols and leaves out the look-alikes `0 O 1 I`, so six
//! characters carry 30 bits (32^6 = 1,073,741,824 codes). A digits-only code (10^6) is
//! easier to speak but a million times easier to guess; it is an assistant's explicit
//! choice. Codes are compared by keyed hash ([`CodeHasher`]): the store never holds one in
//! clear, and a leaked table cannot be reversed by trying all 2^30 codes without the key.

use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;

/// The default alphabet: digits 2–9 and letters without I and O.
pub const ALPHABET: &[u8; 32] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
pub const DIGITS: &[u8; 10] = b"0123456789";
/// Characters in a code.
pub const LEN: usize = 6;

/// Which symbols a code is drawn from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CodeKind {
    /// 32 symbols without look-alikes (the default).
    #[default]
    Alphanumeric,
    /// Digits only, for devices that speak their code.
    Digits,
}

impl CodeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CodeKind::Alphanumeric => "alphanumeric",
            CodeKind::Digits => "digits",
        }
    }

    pub fn parse(s: &str) -> Option<CodeKind> {
        match s {
            "alphanumeric" => Some(CodeKind::Alphanumeric),
            "digits" => Some(CodeKind::Digits),
            _ => None,
        }
    }

    fn symbols(self) -> &'static [u8] {
        match self {
            CodeKind::Alphanumeric => ALPHABET,
            CodeKind::Digits => DIGITS,
        }
    }

    /// How many different codes there are.
    pub fn space(self) -> u64 {
        (self.symbols().len() as u64).pow(LEN as u32)
    }
}

/// A fresh random code from the operating system's generator.
pub fn generate(kind: CodeKind) -> String {
    let symbols = kind.symbols();
    let mut rng = rand::rngs::OsRng;
    (0..LEN)
        .map(|_| symbols[rng.gen_range(0..symbols.len())] as char)
        .collect()
}

/// What a person typed, as a code: upper case, without spaces or dashes. `None` when it
/// cannot be a code of either kind (wrong length, other symbols), so no lookup is made.
pub fn normalize(typed: &str) -> Option<String> {
    let code: String = typed
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '\t'))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let ok = code.len() == LEN
        && code
            .bytes()
            .all(|b| ALPHABET.contains(&b) || b.is_ascii_digit());
    ok.then_some(code)
}

/// The probability that `guesses` random guesses hit any of `live` codes of `kind`.
pub fn guess_odds(kind: CodeKind, live: u64, guesses: u64) -> f64 {
    let p = live as f64 / kind.space() as f64;
    1.0 - (1.0 - p).powf(guesses as f64)
}

/// Hashes codes under a secret key (HMAC-SHA256), the form they are stored and looked up in.
pub struct CodeHasher<'k> {
    key: &'k [u8],
}

impl<'k> CodeHasher<'k> {
    pub fn new(key: &'k [u8]) -> Self {
        CodeHasher { key }
    }

    pub fn hash(&self, code: &str) -> String {
        // HMAC accepts a key of any length, so new_from_slice cannot fail.
        let mut mac = match Hmac::<Sha256>::new_from_slice(self.key) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        mac.update(b"bastion activation code|");
        mac.update(code.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_use_their_alphabet_and_have_no_look_alikes() {
        for _ in 0..500 {
            let c = generate(CodeKind::Alphanumeric);
            assert_eq!(c.len(), LEN);
            assert!(c.bytes().all(|b| ALPHABET.contains(&b)), "{c}");
            assert!(!c.contains(['0', 'O', '1', 'I']), "{c}");
            let d = generate(CodeKind::Digits);
            assert!(d.bytes().all(|b| b.is_ascii_digit()), "{d}");
        }
        assert_eq!(ALPHABET.len(), 32);
        let distinct: std::collections::HashSet<u8> = ALPHABET.iter().copied().collect();
        assert_eq!(distinct.len(), 32);
    }

    #[test]
    fn typed_codes_are_normalized_or_refused() {
        assert_eq!(normalize(" ab3-x9z ").as_deref(), Some("AB3X9Z"));
        assert_eq!(normalize("123456").as_deref(), Some("123456"));
        for bad in [
            "",
            "ABCDE",
            "ABCDEFG",
            "ABCDÉF",
            "AB'--X",
            "ab\u{0}def",
            "ＡＢＣＤＥＦ",
        ] {
            assert!(normalize(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn the_documented_odds_hold_for_the_defaults() {
        // 1,000 live codes, 20 failed guesses a day (the per-user daily limit).
        let odds = guess_odds(CodeKind::Alphanumeric, 1_000, 20);
        assert!(odds < 2e-5, "{odds}");
        // Digits only are a million times weaker: the same attacker almost surely wins.
        assert!(guess_odds(CodeKind::Digits, 1_000, 20) > 0.01);
    }

    #[test]
    fn the_hash_depends_on_the_key_and_the_code() {
        let a = CodeHasher::new(b"k1");
        let b = CodeHasher::new(b"k2");
        assert_eq!(a.hash("ABCDEF"), a.hash("ABCDEF"));
        assert_ne!(a.hash("ABCDEF"), a.hash("ABCDEG"));
        assert_ne!(a.hash("ABCDEF"), b.hash("ABCDEF"));
    }
}
