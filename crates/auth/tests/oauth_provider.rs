//! The OAuth library against a real OpenID provider from npm (oauth2-mock-server, driven by
//! tests/support/oidc/server.mjs): discovery, PKCE, the code exchange, ID token validation,
//! key rotation, and the GitHub flow against its stand-in.

#[path = "../../../tests/support/oidc/mock.rs"]
mod mock;

use bastion_auth::oauth::{
    IdTokenError, OAuth, OAuthError, ProviderConfig, ProviderKind, StateKey,
};
use mock::{param, MockIdp, CLIENT_ID, CLIENT_SECRET};
use secrecy::SecretString;
use serde_json::json;

const REDIRECT: &str = "http://127.0.0.1:8080/api/v1/auth/oauth/mock/callback";

fn provider(idp: &MockIdp) -> ProviderConfig {
    ProviderConfig {
        name: "mock".into(),
        kind: ProviderKind::Oidc,
        issuer: Some(idp.issuer.clone()),
        client_id: CLIENT_ID.into(),
        client_secret: SecretString::from(CLIENT_SECRET),
        redirect_uri: REDIRECT.into(),
        scopes: None,
        authorize_url: None,
        token_url: None,
        api_base_url: None,
    }
}

fn oauth(cfg: ProviderConfig) -> OAuth {
    OAuth::new(StateKey::new([42u8; 32]), &[cfg], &[]).expect("valid provider")
}

/// start → the provider → verify_state → finish.
async fn sign_in(
    idp: &MockIdp,
    oauth: &OAuth,
    name: &str,
) -> Result<bastion_auth::oauth::ExternalIdentity, OAuthError> {
    let started = oauth.start(name, Some("/ui/after")).await.expect("start");
    let back = idp.authorize(started.location.as_str()).await;
    let state = param(&back, "state").expect("state");
    assert_eq!(state, started.state);
    let flow = oauth.verify_state(name, state).expect("state verifies");
    assert!(oauth.browser_binding_matches(&flow, Some(&started.browser_binding)));
    oauth
        .finish(&flow, param(&back, "code").expect("code"))
        .await
}

#[tokio::test]
async fn an_oidc_sign_in_yields_the_verified_identity() {
    let idp = MockIdp::start(&[REDIRECT]);
    let oauth = oauth(provider(&idp));
    idp.set_identity(json!({"sub": "user-123", "email": "Alice@IdP.test", "email_verified": true}))
        .await;
    let started = oauth.start("mock", None).await.unwrap();
    let q = mock::url_query(started.location.as_str());
    assert_eq!(param(&q, "redirect_uri"), Some(REDIRECT));
    assert_eq!(param(&q, "client_id"), Some(CLIENT_ID));
    assert_eq!(param(&q, "code_challenge_method"), Some("S256"));
    assert_eq!(param(&q, "response_type"), Some("code"));
    assert!(param(&q, "nonce").is_some_and(|n| n.len() >= 43));
    assert!(param(&q, "scope")
        .unwrap()
        .split(' ')
        .any(|s| s == "openid"));
    assert_eq!(started.flow.return_to, "/");

    let id = sign_in(&idp, &oauth, "mock").await.unwrap();
    assert_eq!(id.provider, "mock");
    assert_eq!(id.subject, "user-123");
    assert_eq!(id.email.as_deref(), Some("Alice@IdP.test"));
    assert!(id.email_verified);
    let token = idp.last_token().await;
    assert_eq!(token["redirect_uri"], REDIRECT);
    assert_eq!(token["code_verifier_present"], true);
    assert_eq!(token["client_auth"], "client_secret_basic");
}

#[tokio::test]
async fn every_spoiled_id_token_is_refused_for_its_reason() {
    let idp = MockIdp::start(&[REDIRECT]);
    let oauth = oauth(provider(&idp));
    let cases = [
        (json!({"aud": "someone-else"}), IdTokenError::Audience),
        (
            json!({"aud": [CLIENT_ID, "someone-else"], "azp": CLIENT_ID}),
            IdTokenError::Audience,
        ),
        (json!({"azp": "someone-else"}), IdTokenError::Audience),
        (json!({"iss": "https://evil.example"}), IdTokenError::Issuer),
        (json!({"nonce": "not-the-nonce"}), IdTokenError::Nonce),
        (json!({"drop": ["nonce"]}), IdTokenError::Nonce),
        (json!({"exp_in": -30}), IdTokenError::Expired),
        (json!({"iat_in": 3600}), IdTokenError::IssuedAt),
        (json!({"iat_in": -7200}), IdTokenError::IssuedAt),
        (json!({"sign": "other-key"}), IdTokenError::Signature),
        (json!({"sign": "corrupt"}), IdTokenError::Signature),
        (json!({"sign": "unknown-kid"}), IdTokenError::Signature),
        (json!({"sign": "hs256-public-key"}), IdTokenError::Algorithm),
        (json!({"sign": "none"}), IdTokenError::Algorithm),
        (json!({"omit": true}), IdTokenError::Missing),
    ];
    for (spoil, expected) in cases {
        idp.spoil_next_id_token(spoil.clone()).await;
        let got = sign_in(&idp, &oauth, "mock").await;
        assert_eq!(got, Err(OAuthError::IdToken(expected)), "spoil {spoil}");
    }
    // And the provider still works for a clean token afterwards.
    sign_in(&idp, &oauth, "mock").await.unwrap();
}

#[tokio::test]
async fn a_rotated_signing_key_is_fetched_once_and_accepted() {
    let idp = MockIdp::start(&[REDIRECT]);
    let oauth = oauth(provider(&idp));
    sign_in(&idp, &oauth, "mock").await.unwrap();
    idp.rotate_key().await;
    sign_in(&idp, &oauth, "mock").await.unwrap();
}

#[tokio::test]
async fn a_wrong_pkce_verifier_is_refused_by_the_provider() {
    let idp = MockIdp::start(&[REDIRECT]);
    let oauth = oauth(provider(&idp));
    // The code of one flow redeemed with the state (hence the verifier) of another.
    let first = oauth.start("mock", None).await.unwrap();
    let second = oauth.start("mock", None).await.unwrap();
    let back = idp.authorize(first.location.as_str()).await;
    let code = param(&back, "code").unwrap();
    let other_flow = oauth.verify_state("mock", &second.state).unwrap();
    let got = oauth.finish(&other_flow, code).await;
    assert!(matches!(got, Err(OAuthError::TokenExchange(_))), "{got:?}");
}

#[tokio::test]
async fn github_sign_in_reads_the_primary_verified_email() {
    let idp = MockIdp::start(&[REDIRECT]);
    let cfg = ProviderConfig {
        name: "gh".into(),
        kind: ProviderKind::Github,
        issuer: None,
        authorize_url: Some(format!("{}/github/login/oauth/authorize", idp.issuer)),
        token_url: Some(format!("{}/github/login/oauth/access_token", idp.issuer)),
        api_base_url: Some(format!("{}/github/api", idp.issuer)),
        ..provider(&idp)
    };
    let oauth = oauth(cfg);
    idp.set_identity(json!({"sub": "583231", "email": "octo@idp.test", "email_verified": true}))
        .await;
    let id = sign_in(&idp, &oauth, "gh").await.unwrap();
    assert_eq!(id.subject, "583231");
    assert_eq!(id.verified_email(), Some("octo@idp.test"));
    idp.set_identity(
        json!({"sub": "583232", "email": "unverified@idp.test", "email_verified": false}),
    )
    .await;
    let id = sign_in(&idp, &oauth, "gh").await.unwrap();
    assert_eq!(id.verified_email(), None);
    assert!(!id.email_verified);
}
