//! `/v1/projects` and their deployments. A credential narrowed to one project
//! (`repo:read:my-app`) sees and touches only that project.

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, Caller};
use crate::ops;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use dotgit_core::clock::rfc3339;
use dotgit_core::{slug, Action, Resource};
use dotgit_store::{DeploymentRow, ProjectRow};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A project.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ProjectOut {
    /// Slug, `[a-z0-9][a-z0-9-]{0,62}`.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// RFC 3339.
    pub created_at: String,
}

/// Create body.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    /// Slug, `[a-z0-9][a-z0-9-]{0,62}`, unique in the account.
    pub slug: String,
    /// Display name (default: the slug).
    pub name: Option<String>,
}

/// A deployment.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DeploymentOut {
    /// Opaque id.
    pub id: String,
    /// Project slug.
    pub project: String,
    /// Git ref.
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// Environment.
    pub environment: String,
    /// `queued`.
    pub status: String,
    /// RFC 3339.
    pub created_at: String,
}

/// Create body.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDeployment {
    /// Git ref to deploy (branch, tag or commit), 1–255 characters.
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// Target environment, a slug such as `production`.
    pub environment: String,
}

fn project_out(p: &ProjectRow) -> ProjectOut {
    ProjectOut {
        slug: p.slug.clone(),
        name: p.name.clone(),
        created_at: rfc3339(p.created_at),
    }
}

fn deployment_out(d: &DeploymentRow) -> DeploymentOut {
    DeploymentOut {
        id: d.id.clone(),
        project: d.project_slug.clone(),
        git_ref: d.git_ref.clone(),
        environment: d.environment.clone(),
        status: d.status.clone(),
        created_at: rfc3339(d.created_at),
    }
}

/// Lists the projects the credential may read.
pub async fn list(
    State(s): State<AppState>,
    Caller(p): Caller,
) -> Result<Json<Vec<ProjectOut>>, ApiError> {
    let rows = s.store.list_projects(&p.account_id).await?;
    Ok(Json(
        rows.iter()
            .filter(|r| p.allows(Resource::Repo, Action::Read, Some(&r.slug)))
            .map(project_out)
            .collect(),
    ))
}

/// Creates a project.
pub async fn create(
    State(s): State<AppState>,
    Caller(p): Caller,
    ApiJson(body): ApiJson<CreateProject>,
) -> Result<(StatusCode, Json<ProjectOut>), ApiError> {
    if !slug::is_valid(&body.slug) {
        return Err(ApiError::invalid_request(
            "slug: must match [a-z0-9][a-z0-9-]{0,62}",
        ));
    }
    p.require(Resource::Repo, Action::Write, Some(&body.slug))
        .map_err(|sc| ApiError::insufficient_scope(&sc))?;
    let name = body.name.unwrap_or_else(|| body.slug.clone());
    ops::check_name("name", &name)?;
    let row = ProjectRow {
        account_id: p.account_id.clone(),
        slug: body.slug,
        name,
        created_at: s.now(),
    };
    s.store.create_project(&row).await.map_err(|e| match e {
        dotgit_store::StoreError::Conflict(_) => {
            ApiError::invalid_request(format!("slug: project `{}` already exists", row.slug))
        }
        other => other.into(),
    })?;
    Ok((StatusCode::CREATED, Json(project_out(&row))))
}

/// One project.
pub async fn get(
    State(s): State<AppState>,
    Caller(p): Caller,
    ApiPath(slug): ApiPath<String>,
) -> Result<Json<ProjectOut>, ApiError> {
    let row = s
        .store
        .get_project(&p.account_id, &slug)
        .await?
        .ok_or_else(|| ApiError::not_found("The project"))?;
    Ok(Json(project_out(&row)))
}

/// Deletes a project and its deployments.
pub async fn delete(
    State(s): State<AppState>,
    Caller(p): Caller,
    ApiPath(slug): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    if s.store.delete_project(&p.account_id, &slug).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("The project"))
    }
}

/// A project's deployments.
pub async fn list_deployments(
    State(s): State<AppState>,
    Caller(p): Caller,
    ApiPath(slug): ApiPath<String>,
) -> Result<Json<Vec<DeploymentOut>>, ApiError> {
    if s.store.get_project(&p.account_id, &slug).await?.is_none() {
        return Err(ApiError::not_found("The project"));
    }
    let rows = s.store.list_deployments(&p.account_id, &slug).await?;
    Ok(Json(rows.iter().map(deployment_out).collect()))
}

/// Starts a deployment.
pub async fn create_deployment(
    State(s): State<AppState>,
    Caller(p): Caller,
    ApiPath(slug): ApiPath<String>,
    ApiJson(body): ApiJson<CreateDeployment>,
) -> Result<(StatusCode, Json<DeploymentOut>), ApiError> {
    let r = &body.git_ref;
    if r.is_empty() || r.len() > 255 || r.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(ApiError::invalid_request(
            "ref: 1 to 255 characters without white space or control characters",
        ));
    }
    if !slug::is_valid(&body.environment) {
        return Err(ApiError::invalid_request(
            "environment: must match [a-z0-9][a-z0-9-]{0,62}",
        ));
    }
    let row = DeploymentRow {
        id: ops::new_id("dep")?,
        account_id: p.account_id.clone(),
        project_slug: slug,
        git_ref: body.git_ref,
        environment: body.environment,
        status: "queued".to_owned(),
        created_at: s.now(),
    };
    if !s.store.create_deployment(&row).await? {
        return Err(ApiError::not_found("The project"));
    }
    Ok((StatusCode::CREATED, Json(deployment_out(&row))))
}

/// One deployment.
pub async fn get_deployment(
    State(s): State<AppState>,
    Caller(p): Caller,
    ApiPath((slug, id)): ApiPath<(String, String)>,
) -> Result<Json<DeploymentOut>, ApiError> {
    let row = s
        .store
        .get_deployment(&p.account_id, &slug, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("The deployment"))?;
    Ok(Json(deployment_out(&row)))
}
