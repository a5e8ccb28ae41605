//! The overview of the organization: counts, the latest bentos and models, the latest events.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use yatai_domain::paging::Page as Range;
use yatai_domain::registry::Kind;
use yatai_domain::Error;
use yatai_service::registry::query::ListSpec;
use yatai_service::registry::{repositories, versions};
use yatai_service::{events, members};

use super::events::{event_rows, EventRow};
use super::registry::{rows_of, VersionRow};
use crate::dashboard::page::{Layout, Page};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/", get(overview))
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    layout: Layout,
    bento_repositories: i64,
    model_repositories: i64,
    bento_versions: i64,
    model_versions: i64,
    members: i64,
    latest_bentos: Vec<VersionRow>,
    latest_models: Vec<VersionRow>,
    events: Vec<EventRow>,
}

/// How many repositories of `kind` there are, and how many versions with the newest `latest`.
async fn registry_counts(
    state: &AppState,
    page: &Page,
    kind: Kind,
    latest: i64,
) -> Result<(i64, i64, Vec<VersionRow>), Error> {
    let counting = ListSpec {
        count: 0,
        ..ListSpec::default()
    };
    let repositories = repositories::list(state, &page.caller, kind, &counting).await?;
    let newest = ListSpec {
        count: latest,
        ..ListSpec::default()
    };
    let found = versions::list(state, &page.caller, kind, None, &newest).await?;
    Ok((
        repositories.total,
        found.total,
        rows_of(&found.versions, &found.related),
    ))
}

/// What the caller may not read is left out of the overview (a token limited to the registry);
/// the service decides.
fn shown_if_allowed<T: Default>(read: Result<T, Error>) -> Result<T, Error> {
    match read {
        Err(Error::Forbidden(_)) => Ok(T::default()),
        other => other,
    }
}

async fn overview(State(state): State<AppState>, page: Page) -> Response {
    let built = async {
        let (bento_repositories, bento_versions, latest_bentos) =
            registry_counts(&state, &page, Kind::Bento, 5).await?;
        let (model_repositories, model_versions, latest_models) =
            registry_counts(&state, &page, Kind::Model, 5).await?;
        let (_, members) = shown_if_allowed(
            members::list(&state, &page.caller, Range { start: 0, count: 0 }).await,
        )?;
        let latest = Range { start: 0, count: 8 };
        let (events, _) = shown_if_allowed(
            events::list(&state, &page.caller, &Default::default(), latest).await,
        )?;
        let events = event_rows(events);
        Ok(OverviewPage {
            layout: page.layout("overview"),
            bento_repositories,
            model_repositories,
            bento_versions,
            model_versions,
            members,
            latest_bentos,
            latest_models,
            events,
        })
    }
    .await;
    page.respond(built)
}
