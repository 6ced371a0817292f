//! Where a finished sign-in sends the browser: a path on this site, or a URL whose origin the
//! operator allowed. Everything else is refused, so bastion is never an open redirector
//! (`//evil.com`, `/\evil.com`, `https://evil.com`, `http:evil`, and their encoded forms).

use url::{Origin, Url};

/// The return path used when the start request names none.
pub const DEFAULT_RETURN: &str = "/";
const MAX_LEN: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReturnToError {
    #[error("return_to is too long")]
    TooLong,
    #[error("return_to must be a path on this site starting with a single '/' (no '//', backslashes or control characters)")]
    BadPath,
    #[error("return_to names an origin that is not in oauth_allowed_return_origins")]
    OriginNotAllowed,
}

/// The origins absolute return URLs may point at (`scheme://host[:port]`).
#[derive(Debug, Clone, Default)]
pub struct AllowedOrigins(Vec<Origin>);

impl AllowedOrigins {
    /// Parses each entry; it must be an http(s) origin alone (no path, query or user info).
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        let mut out = Vec::new();
        for e in entries {
            let u = Url::parse(e).map_err(|err| format!("{e:?} is not a URL ({err})"))?;
            if !matches!(u.scheme(), "https" | "http")
                || u.host().is_none()
                || !u.username().is_empty()
                || u.password().is_some()
                || u.path() != "/"
                || u.query().is_some()
                || u.fragment().is_some()
            {
                return Err(format!(
                    "{e:?} must be an origin such as https://app.example.com (scheme, host, optional port; no path)"
                ));
            }
            out.push(u.origin());
        }
        Ok(AllowedOrigins(out))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Checks a requested return target; returns what to redirect to.
pub fn check(requested: Option<&str>, allowed: &AllowedOrigins) -> Result<String, ReturnToError> {
    let s = match requested {
        None | Some("") => return Ok(DEFAULT_RETURN.to_string()),
        Some(s) => s,
    };
    if s.len() > MAX_LEN {
        return Err(ReturnToError::TooLong);
    }
    if s.starts_with('/') {
        // Check the path as given and once percent-decoded: a later hop (a proxy, a UI
        // router) that decodes it must not find `//host` or a backslash either.
        let decoded = percent_decode(s);
        if safe_path(s, false) && decoded.as_deref().is_none_or(|d| safe_path(d, true)) {
            return Ok(s.to_string());
        }
        return Err(ReturnToError::BadPath);
    }
    // Not a path: only an absolute http(s) URL with an allowed origin. Characters that
    // parsers disagree about are refused before parsing.
    if s.chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
    {
        return Err(ReturnToError::BadPath);
    }
    let lower = s.to_ascii_lowercase();
    if !(lower.starts_with("https://") || lower.starts_with("http://")) {
        // `http:evil`, `javascript:…`, `evil.com/x`, `%2F%2Fevil.com`…
        return Err(ReturnToError::BadPath);
    }
    let u = Url::parse(s).map_err(|_| ReturnToError::BadPath)?;
    if !u.username().is_empty() || u.password().is_some() {
        return Err(ReturnToError::OriginNotAllowed);
    }
    if allowed.0.iter().any(|o| *o == u.origin()) {
        Ok(u.to_string())
    } else {
        Err(ReturnToError::OriginNotAllowed)
    }
}

/// A path on this origin: one leading '/', not followed by '/' or '\'; no backslash, no
/// control character anywhere, and no whitespace unless `decoded` (an encoded `%20` is fine).
fn safe_path(p: &str, decoded: bool) -> bool {
    let b = p.as_bytes();
    b.first() == Some(&b'/')
        && !matches!(b.get(1), Some(b'/') | Some(b'\\'))
        && !p
            .chars()
            .any(|c| c.is_control() || c == '\\' || (!decoded && c.is_whitespace()))
}

/// `%XX` decoded once; `None` when nothing was encoded. Undecodable sequences are kept.
fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return None;
    }
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> AllowedOrigins {
        AllowedOrigins::parse(&[
            "https://app.example.com".into(),
            "http://localhost:3000".into(),
        ])
        .unwrap()
    }

    #[test]
    fn local_paths_pass_unchanged() {
        for ok in [
            "/",
            "/ui/",
            "/ui/assistants?tab=members#top",
            "/a/%20b",
            "/caf%C3%A9",
        ] {
            assert_eq!(check(Some(ok), &allowed()).unwrap(), ok);
        }
        assert_eq!(check(None, &allowed()).unwrap(), "/");
        assert_eq!(check(Some(""), &allowed()).unwrap(), "/");
    }

    #[test]
    fn allowed_origins_pass() {
        assert_eq!(
            check(Some("https://app.example.com/after"), &allowed()).unwrap(),
            "https://app.example.com/after"
        );
        assert_eq!(
            check(Some("HTTPS://APP.example.com:443/x"), &allowed()).unwrap(),
            "https://app.example.com/x"
        );
        assert!(check(Some("http://localhost:3000/"), &allowed()).is_ok());
    }

    #[test]
    fn open_redirects_are_refused() {
        for bad in [
            "//evil.com",
            "//evil.com/ui",
            "/\\evil.com",
            "\\\\evil.com",
            "/\\/evil.com",
            "https://evil.com",
            "https://evil.com/",
            "http://app.example.com/", // scheme downgrade: not the allowed origin
            "https://app.example.com:8443/", // another port
            "https://app.example.com.evil.com/",
            "https://app.example.com@evil.com/",
            "https://evil.com#@app.example.com",
            "http:evil",
            "http:/evil.com",
            "https:evil.com",
            "javascript:alert(1)",
            "data:text/html,hi",
            "evil.com",
            "%2F%2Fevil.com",
            "/%2F%2Fevil.com",
            "/%2fevil.com",
            "/%5Cevil.com",
            "/%5cevil.com",
            "/\tevil",
            "/ui\nLocation: https://evil.com",
            "/ui%0d%0aSet-Cookie:x=1",
            " /ui",
            "\u{0}/",
        ] {
            assert!(
                check(Some(bad), &allowed()).is_err(),
                "{bad:?} was accepted"
            );
        }
        assert_eq!(
            check(Some(&format!("/{}", "a".repeat(3000))), &allowed()),
            Err(ReturnToError::TooLong)
        );
    }

    #[test]
    fn only_bare_origins_may_be_allowed() {
        for bad in [
            "https://app.example.com/path",
            "app.example.com",
            "ftp://app.example.com",
            "https://user@app.example.com",
            "https://app.example.com?x",
        ] {
            assert!(AllowedOrigins::parse(&[bad.into()]).is_err(), "{bad}");
        }
        assert!(AllowedOrigins::parse(&["https://app.example.com/".into()]).is_ok());
    }
}
