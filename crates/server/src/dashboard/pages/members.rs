//! Members of the organization and their roles: add a user, change a role, remove a member.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use yatai_domain::paging::Page as Range;
use yatai_domain::{Error, Role};
use yatai_service::members;

use crate::dashboard::form::FormError;
use crate::dashboard::page::{Layout, Page, Submission};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/members", get(list).post(set_role))
        .route("/members/role", post(set_role))
        .route("/members/remove", post(remove))
}

/// The roles a member can have, least powerful first.
pub const ROLES: [&str; 3] = [
    Role::Guest.as_str_const(),
    Role::Developer.as_str_const(),
    Role::Admin.as_str_const(),
];

/// A member as a table row.
pub struct MemberRow {
    pub name: String,
    pub email: String,
    pub role: String,
}

#[derive(Template)]
#[template(path = "members.html")]
struct MembersPage {
    layout: Layout,
    /// The user name the add form was sent with (kept after an error).
    username: String,
    members: Vec<MemberRow>,
    roles: Vec<String>,
    error: FormError,
}

impl MembersPage {
    async fn load(state: &AppState, page: &Page) -> Result<MembersPage, Error> {
        let (list, _) = members::list(state, &page.caller, Range::all()).await?;
        Ok(MembersPage {
            layout: page.layout("members"),
            username: String::new(),
            members: list
                .into_iter()
                .map(|(m, user)| MemberRow {
                    name: user.name,
                    email: user.email,
                    role: m.role.to_string(),
                })
                .collect(),
            roles: ROLES.iter().map(|r| r.to_string()).collect(),
            error: FormError::default(),
        })
    }
}

async fn list(State(state): State<AppState>, page: Page) -> Response {
    let built = MembersPage::load(&state, &page).await;
    page.respond(built)
}

#[derive(Deserialize)]
struct MemberForm {
    username: String,
    #[serde(default)]
    role: String,
}

/// Shows the members again after a change, or the form with what was wrong.
async fn after_change(
    state: &AppState,
    page: Page,
    username: String,
    done: Result<(), Error>,
) -> Response {
    let error = match done {
        Ok(()) => return page.redirect("/members"),
        // Wrong input and "the organization must keep an admin" go back to the form; a refusal
        // is a page of its own.
        Err(e) if e.field_name().is_some() || matches!(e, Error::Conflict(_)) => {
            FormError::anywhere(e, &["username", "role"])
        }
        Err(e) => return page.error(e),
    };
    match MembersPage::load(state, &page).await {
        Ok(mut view) => {
            view.username = username;
            view.error = error;
            page.show_with(view.error.status, &view)
        }
        Err(e) => page.error(e),
    }
}

/// Adds a member with a role, or changes a member's role.
async fn set_role(
    State(state): State<AppState>,
    Submission { page, form }: Submission<MemberForm>,
) -> Response {
    let usernames = std::slice::from_ref(&form.username);
    let done = members::set_roles(&state, &page.caller, usernames, &form.role).await;
    after_change(&state, page, form.username, done).await
}

async fn remove(
    State(state): State<AppState>,
    Submission { page, form }: Submission<MemberForm>,
) -> Response {
    let done = members::remove(&state, &page.caller, &form.username).await;
    after_change(&state, page, form.username, done).await
}
