//! Sign-in: password, then the TOTP step when the account has one, and a button per
//! configured OAuth provider. The script posts to the API's own sign-in routes in cookie
//! mode; a session that only lost its access token is resumed with its refresh token first.

use crate::state::AppState;
use crate::ui::{widgets, Page};
use axum::extract::{Query, State};
use maud::{html, Markup};
use serde::Deserialize;

#[derive(Deserialize)]
pub struct Next {
    next: Option<String>,
}

/// `GET /ui/login`.
pub async fn get(State(state): State<AppState>, Query(q): Query<Next>) -> Page {
    Page(page(&state, q.next.as_deref()))
}

/// Where to go once signed in: a page of the UI, never another site.
pub fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with("/ui/")
                && !n.starts_with("/ui/login")
                && !n.contains("//")
                && !n.contains('\\') =>
        {
            n
        }
        _ => "/ui/",
    }
}

pub fn page(state: &AppState, next: Option<&str>) -> Markup {
    let next = safe_next(next);
    let providers: Vec<&str> = state.oauth.providers().map(|(name, _)| name).collect();
    widgets::bare_page(
        "Sign in",
        html! {
            main.narrow #main data-login data-next=(next) {
                h1 { "Sign in to bastion" }
                form #password-form data-step="password" {
                    (widgets::field("Email", "email", "email", true, ""))
                    div.field {
                        label for="f-password" { "Password" }
                        input #f-password name="password" type="password" autocomplete="current-password" required;
                    }
                    button type="submit" { "Sign in" }
                    (widgets::outcome())
                }
                form #totp-form data-step="totp" hidden {
                    p { "Enter the 6-digit code from your authenticator app." }
                    div.field {
                        label for="f-code" { "Authentication code" }
                        input #f-code name="code" inputmode="numeric" autocomplete="one-time-code"
                            pattern="[0-9]{6}" maxlength="6" required;
                    }
                    button type="submit" { "Verify" }
                    (widgets::outcome())
                }
                @if !providers.is_empty() {
                    section.oauth aria-label="Other ways to sign in" {
                        @for p in providers {
                            a.button href=(format!("/api/v1/auth/oauth/{p}/start?return_to={}", url_escape(next))) {
                                "Sign in with " (p)
                            }
                        }
                    }
                }
            }
        },
    )
}

/// A path as a query value (it is one of ours: `/ui/…` without `//`).
fn url_escape(path: &str) -> String {
    url::form_urlencoded::byte_serialize(path.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_ui_pages_are_returned_to() {
        assert_eq!(safe_next(Some("/ui/assistants/x")), "/ui/assistants/x");
        for bad in [
            "https://evil.test/",
            "//evil.test/ui/",
            "/ui//evil.test",
            "/ui/\\evil",
            "/api/v1/me",
            "/ui/login?next=/ui/",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/ui/", "{bad}");
        }
        assert_eq!(safe_next(None), "/ui/");
    }
}
