//! The UI's static files, embedded in the binary. Each is addressed with a digest of its
//! content, so a browser may keep it for a year and a new build is fetched at once.

use axum::extract::Path;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

pub struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
    path: OnceLock<String>,
}

impl Asset {
    const fn new(name: &'static str, content_type: &'static str, body: &'static str) -> Self {
        Asset {
            name,
            content_type,
            body,
            path: OnceLock::new(),
        }
    }

    /// `/ui/static/{digest}/{name}`.
    pub fn path(&self) -> &str {
        self.path.get_or_init(|| {
            let digest = Sha256::digest(self.body.as_bytes());
            format!("/ui/static/{}/{}", &hex::encode(digest)[..12], self.name)
        })
    }
}

pub static JS: Asset = Asset::new(
    "ui.js",
    "text/javascript; charset=utf-8",
    include_str!("../../ui/ui.js"),
);
pub static CSS: Asset = Asset::new(
    "ui.css",
    "text/css; charset=utf-8",
    include_str!("../../ui/ui.css"),
);
pub static ICON: Asset = Asset::new(
    "icon.svg",
    "image/svg+xml",
    include_str!("../../ui/icon.svg"),
);

/// `GET /ui/static/{digest}/{name}`: the file, if the digest is its current one.
pub async fn serve(Path((digest, name)): Path<(String, String)>) -> Response {
    let found = [&JS, &CSS, &ICON]
        .into_iter()
        .find(|a| a.path() == format!("/ui/static/{digest}/{name}"));
    match found {
        Some(a) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(a.content_type),
                ),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=31536000, immutable"),
                ),
            ],
            a.body,
        )
            .into_response(),
        None => crate::error::ApiError::NotFound.into_response(),
    }
}
