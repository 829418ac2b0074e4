//! `/v1/teams`: teams of the account and their members (other accounts, by username).

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, Caller};
use crate::ops;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use dotgit_core::slug;
use dotgit_store::TeamRow;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A team.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TeamOut {
    /// Slug.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Members' usernames.
    pub members: Vec<String>,
}

/// Create body.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTeam {
    /// Slug, unique in the account.
    pub slug: String,
    /// Display name (default: the slug).
    pub name: Option<String>,
}

fn team_out(t: &TeamRow, members: Vec<String>) -> TeamOut {
    TeamOut {
        slug: t.slug.clone(),
        name: t.name.clone(),
        members,
    }
}

/// Lists teams.
pub async fn list(
    State(s): State<AppState>,
    Caller(p): Caller,
) -> Result<Json<Vec<TeamOut>>, ApiError> {
    let rows = s.store.list_teams(&p.account_id).await?;
    Ok(Json(
        rows.into_iter().map(|(t, m)| team_out(&t, m)).collect(),
    ))
}

/// Creates a team.
pub async fn create(
    State(s): State<AppState>,
    Caller(p): Caller,
    ApiJson(body): ApiJson<CreateTeam>,
) -> Result<(StatusCode, Json<TeamOut>), ApiError> {
    if !slug::is_valid(&body.slug) {
        return Err(ApiError::invalid_request(
            "slug: must match [a-z0-9][a-z0-9-]{0,62}",
        ));
    }
    let name = body.name.unwrap_or_else(|| body.slug.clone());
    ops::check_name("name", &name)?;
    let row = TeamRow {
        account_id: p.account_id.clone(),
        slug: body.slug,
        name,
        created_at: s.now(),
    };
    s.store.create_team(&row).await.map_err(|e| match e {
        dotgit_store::StoreError::Conflict(_) => {
            ApiError::invalid_request(format!("slug: team `{}` already exists", row.slug))
        }
        other => other.into(),
    })?;
    Ok((StatusCode::CREATED, Json(team_out(&row, Vec::new()))))
}

async fn member_id(s: &AppState, username: &str) -> Result<String, ApiError> {
    if !slug::is_valid_username(username) {
        return Err(ApiError::not_found("The account"));
    }
    s.store
        .account_by_username(username)
        .await?
        .map(|a| a.id)
        .ok_or_else(|| ApiError::not_found("The account"))
}

/// Adds a member (idempotent); answers the team.
pub async fn put_member(
    State(s): State<AppState>,
    Caller(p): Caller,
    ApiPath((team, username)): ApiPath<(String, String)>,
) -> Result<Json<TeamOut>, ApiError> {
    if !slug::is_valid(&team) {
        return Err(ApiError::not_found("The team"));
    }
    let member = member_id(&s, &username).await?;
    if !s
        .store
        .put_team_member(&p.account_id, &team, &member, s.now())
        .await?
    {
        return Err(ApiError::not_found("The team"));
    }
    let (t, m) = s
        .store
        .get_team(&p.account_id, &team)
        .await?
        .ok_or_else(|| ApiError::not_found("The team"))?;
    Ok(Json(team_out(&t, m)))
}

/// Removes a member.
pub async fn delete_member(
    State(s): State<AppState>,
    Caller(p): Caller,
    ApiPath((team, username)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let member = member_id(&s, &username).await?;
    if s.store
        .delete_team_member(&p.account_id, &team, &member)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("The team membership"))
    }
}
