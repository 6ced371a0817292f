//! The signed-in start page: the caller's assistants, with their role in each.

use crate::error::ApiResult;
use crate::flow::Caller;
use crate::state::AppState;
use crate::ui::frame::Frame;
use crate::ui::Page;
use axum::extract::State;
use maud::html;

/// `GET /ui/`.
pub async fn get(State(state): State<AppState>, caller: Caller) -> ApiResult<Page> {
    let frame = Frame::of(&state, &caller).await?;
    let content = html! {
        @if frame.assistants().is_empty() {
            p.empty { "You are not a member of any assistant yet. An owner or admin can invite you by email." }
        } @else {
            ul.cards {
                @for (id, name, role) in frame.assistants() {
                    li { a href=(format!("/ui/assistants/{id}")) { strong { (name) } span.role { (role) } } }
                }
            }
        }
    };
    Ok(Page(frame.page("Your assistants", "", content)))
}

/// `GET /ui`: the UI's address without its slash.
pub async fn to_home() -> axum::response::Redirect {
    axum::response::Redirect::permanent("/ui/")
}
