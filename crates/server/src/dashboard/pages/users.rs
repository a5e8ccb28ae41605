//! The admins' user management: the users of the organization, creating one, setting a new
//! password.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use yatai_domain::paging::Page as Range;
use yatai_domain::{Action, Error};
use yatai_service::users;

use super::members::ROLES;
use crate::dashboard::form::{person_fields, Field, FormError, PersonForm, PERSON_FIELDS};
use crate::dashboard::format::exact;
use crate::dashboard::page::{Layout, Page, Submission};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/users", get(list).post(create))
        .route("/users/{name}/reset_password", post(reset_password))
}

/// A user as a table row.
pub struct UserRow {
    pub name: String,
    pub email: String,
    pub created: String,
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    layout: Layout,
    users: Vec<UserRow>,
    /// The inputs of the create form.
    fields: Vec<Field>,
    roles: Vec<String>,
    /// The error of the create form.
    error: FormError,
    /// The user whose password reset failed, and why.
    reset_user: String,
    reset_error: String,
}

impl UsersPage {
    async fn load(state: &AppState, page: &Page) -> Result<UsersPage, Error> {
        // This page is where admins manage users: other members get the refusal the forms would
        // get (the list itself is readable by every member through the API).
        page.caller.authorize(Action::ManageMembers)?;
        let (list, _) = users::list(state, &page.caller, Range::all()).await?;
        Ok(UsersPage {
            layout: page.layout("users"),
            users: list
                .into_iter()
                .map(|u| UserRow {
                    created: exact(u.created_at),
                    name: u.name,
                    email: u.email,
                })
                .collect(),
            fields: person_fields(&[], None),
            roles: ROLES.iter().map(|r| r.to_string()).collect(),
            error: FormError::default(),
            reset_user: String::new(),
            reset_error: String::new(),
        })
    }
}

async fn list(State(state): State<AppState>, page: Page) -> Response {
    let built = UsersPage::load(&state, &page).await;
    page.respond(built)
}

#[derive(Deserialize)]
struct CreateUserForm {
    #[serde(flatten)]
    person: PersonForm,
    #[serde(default)]
    role: String,
}

async fn create(
    State(state): State<AppState>,
    Submission { page, form: f }: Submission<CreateUserForm>,
) -> Response {
    let account = f.person.account();
    let created = users::create(&state, &page.caller, &account, Some(&f.role)).await;
    let mut view = match UsersPage::load(&state, &page).await {
        Ok(v) => v,
        Err(e) => return page.error(e),
    };
    match created {
        Ok(u) => {
            view.layout.flash = format!("User {:?} created.", u.name);
            page.show(&view)
        }
        Err(e) => {
            let fields: Vec<&str> = PERSON_FIELDS.iter().copied().chain(["role"]).collect();
            match FormError::of(e, &fields) {
                Ok(error) => {
                    view.fields = f.person.fields(&error);
                    view.error = error;
                    page.show_with(view.error.status, &view)
                }
                Err(e) => page.error(e),
            }
        }
    }
}

#[derive(Deserialize)]
struct ResetPasswordForm {
    new_password: String,
}

async fn reset_password(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Submission { page, form }: Submission<ResetPasswordForm>,
) -> Response {
    let done = users::reset_password(&state, &page.caller, &name, &form.new_password).await;
    let mut view = match UsersPage::load(&state, &page).await {
        Ok(v) => v,
        Err(e) => return page.error(e),
    };
    match done {
        Ok(_) => {
            view.layout.flash = format!("New password set for {name:?}.");
            page.show(&view)
        }
        Err(e) => match FormError::of(e, &["new_password"]) {
            Ok(error) => {
                view.reset_user = name;
                view.reset_error = error.message;
                page.show_with(error.status, &view)
            }
            Err(e) => page.error(e),
        },
    }
}
