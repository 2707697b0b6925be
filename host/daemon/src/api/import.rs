//! `POST /images/create?fromSrc=-&repo=R&tag=T&message=M&changes=C…`: `docker
//! import`, a one-layer image made from the root-filesystem tarball in the body
//! (plain, gzip or zstd), with Dockerfile `changes` applied to its config.
//! Importing from a URL (`fromSrc=http…`) is refused: tests and users here have
//! no internet, and the CLI sends files in the body.

use axum::extract::Request;
use axum::response::Response;
use serde_json::json as j;
use vmrun_images::{ImageError, ImportOptions};

use super::images::{line, new_image_reference, query_values, spool_body};
use super::AppState;
use crate::error::{ApiError, ApiResult};

pub(super) async fn import(
    engine: &AppState,
    q: &super::images::ImagesQuery,
    req: Request,
) -> ApiResult<Response> {
    let source = q.from_src.as_deref().unwrap_or_default();
    if source != "-" {
        return Err(ApiError::bad_request(format!(
            "importing from {source:?} is not supported: send the tarball in the request body (fromSrc=-)"
        )));
    }
    let reference = new_image_reference(q.repo.as_deref(), q.tag.as_deref())?;
    let platform = match &q.platform {
        Some(p) => Some(p.parse::<vmrun_images::Platform>()?),
        None => None,
    };
    let opts = ImportOptions {
        reference,
        message: q.message.clone(),
        changes: query_values(req.uri(), "changes"),
        platform,
    };
    let spool = spool_body(engine, req.into_body(), "the tarball").await?;
    let images = engine.images.clone();
    let imported = tokio::task::spawn_blocking(move || {
        let mut file = spool.reopen().map_err(|source| ImageError::Io {
            context: "reopening the spooled tarball".into(),
            source,
        })?;
        images.import(&mut file, &opts)
    })
    .await
    .map_err(|e| ApiError::internal(format!("import task failed: {e}")))??;
    engine.events.emit(
        "image",
        "import",
        &imported.id,
        &[("name", imported.reference.clone())],
    );
    Ok(Response::builder()
        .header("Content-Type", "application/json")
        .body(axum::body::Body::from(line(&j!({ "status": imported.id }))))
        .unwrap_or_default())
}
