//! Network routes.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bollard_stubs::models::{Ipam, IpamConfig, NetworkCreateRequest};
use serde_json::{json as j, Value};
use vmrun_network::{CreateOptions, NetworkInfo};

use super::{json, json_body, AppState};
use crate::error::{ApiError, ApiResult};

/// Network routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/networks", get(list))
        .route("/networks/create", post(create))
        .route("/networks/{id}", get(inspect).delete(remove))
        .route("/networks/{id}/connect", post(connect))
        .route("/networks/{id}/disconnect", post(disconnect))
}

fn model(engine: &crate::engine::Engine, n: &NetworkInfo) -> Value {
    let ipam = Ipam {
        driver: Some("default".into()),
        config: Some(
            n.subnet
                .iter()
                .map(|s| IpamConfig {
                    subnet: Some(s.to_string()),
                    gateway: n.gateway.map(|g| g.to_string()),
                    ..Default::default()
                })
                .collect(),
        ),
        options: None,
    };
    let mut containers = serde_json::Map::new();
    for (cid, ep) in &n.containers {
        let name = engine
            .store
            .resolve(cid)
            .map(|r| r.name)
            .unwrap_or_default();
        containers.insert(
            cid.clone(),
            j!({
                "Name": name,
                "EndpointID": ep.endpoint_id,
                "MacAddress": ep.mac.clone().unwrap_or_default(),
                "IPv4Address": ep.ip.map(|ip| format!("{ip}/{}", ep.prefix_len)).unwrap_or_default(),
                "IPv6Address": "",
            }),
        );
    }
    // Like dockerd: the default bridge shows its device; user networks show only the
    // options they were created with (none here), which compose compares with its own.
    let mut options = HashMap::new();
    if let Some(b) = n
        .bridge
        .as_ref()
        .filter(|_| n.name == vmrun_network::DEFAULT_NETWORK)
    {
        options.insert("com.docker.network.bridge.name".to_string(), b.clone());
    }
    j!({
        "Name": n.name,
        "Id": n.id,
        "Created": n.created.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        "Scope": "local",
        "Driver": n.driver.as_str(),
        "EnableIPv4": true,
        "EnableIPv6": false,
        "IPAM": ipam,
        "Internal": n.internal,
        "Attachable": false,
        "Ingress": false,
        "ConfigFrom": { "Network": "" },
        "ConfigOnly": false,
        "Containers": containers,
        "Options": options,
        "Labels": n.labels,
    })
}

async fn list(
    State(engine): State<AppState>,
    super::query::DockerQuery(q): super::query::DockerQuery<super::query::FiltersQuery>,
) -> ApiResult<Response> {
    let filters = super::parse_filters(q.filters.as_deref())?;
    let nets: Vec<Value> = engine
        .network()?
        .list()
        .iter()
        .filter(|n| network_passes(n, &filters))
        .map(|n| model(&engine, n))
        .collect();
    Ok(json(&nets))
}

/// docker's `network ls` filters: every `label` must hold, and for each other key one of
/// its values must (`name` and `id` by part, `driver`, `type` custom/builtin, `scope`).
fn network_passes(n: &vmrun_network::NetworkInfo, filters: &HashMap<String, Vec<String>>) -> bool {
    let predefined = [
        vmrun_network::DEFAULT_NETWORK,
        vmrun_network::HOST_NETWORK,
        vmrun_network::NONE_NETWORK,
    ]
    .contains(&n.name.as_str());
    filters.iter().all(|(key, values)| {
        let test = |v: &String| match key.as_str() {
            "label" => crate::engine::prune::label_holds(n.labels.iter(), v),
            "name" => n.name.contains(v.as_str()),
            "id" => n.id.starts_with(v.as_str()),
            "driver" => n.driver.as_str() == v,
            "type" => (v == "builtin") == predefined && matches!(v.as_str(), "builtin" | "custom"),
            "scope" => v == "local",
            _ => true,
        };
        if key == "label" {
            values.iter().all(test)
        } else {
            values.iter().any(test)
        }
    })
}

async fn inspect(State(engine): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let n = engine.network()?.inspect(&id)?;
    Ok(json(&model(&engine, &n)))
}

async fn blocking<T: Send + 'static>(
    engine: &Arc<crate::engine::Engine>,
    f: impl FnOnce(&vmrun_network::NetworkManager) -> Result<T, vmrun_network::NetworkError>
        + Send
        + 'static,
) -> ApiResult<T> {
    let net = engine.network()?.clone();
    tokio::task::spawn_blocking(move || f(&net))
        .await
        .map_err(|e| ApiError::internal(format!("network task failed: {e}")))?
        .map_err(ApiError::from)
}

async fn create(State(engine): State<AppState>, body: Bytes) -> ApiResult<Response> {
    let req: NetworkCreateRequest = json_body(&body)?;
    if req.name.is_empty() {
        return Err(ApiError::bad_request("network name is required"));
    }
    if let Some(d) = req
        .driver
        .as_deref()
        .filter(|d| !d.is_empty() && *d != "bridge")
    {
        return Err(ApiError::bad_request(format!(
            "network driver \"{d}\" is not supported: vmrun has bridge networks"
        )));
    }
    let subnet = req
        .ipam
        .as_ref()
        .and_then(|i| i.config.as_ref())
        .and_then(|c| c.first())
        .and_then(|c| c.subnet.clone());
    let subnet = match subnet {
        Some(s) => Some(
            s.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid subnet: {s}")))?,
        ),
        None => None,
    };
    let opts = CreateOptions {
        subnet,
        labels: req.labels.clone().unwrap_or_default().into_iter().collect(),
        internal: req.internal.unwrap_or(false),
    };
    let name = req.name.clone();
    let info = blocking(&engine, move |n| n.create(&name, opts)).await?;
    engine.events.emit(
        "network",
        "create",
        &info.id,
        &[("name", info.name.clone())],
    );
    Ok((
        StatusCode::CREATED,
        axum::Json(j!({ "Id": info.id, "Warning": "" })),
    )
        .into_response())
}

async fn remove(State(engine): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let info = engine.network()?.inspect(&id)?;
    let key = id.clone();
    blocking(&engine, move |n| n.remove(&key)).await?;
    engine
        .events
        .emit("network", "destroy", &info.id, &[("name", info.name)]);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /networks/{id}/connect` body.
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct ConnectBody {
    container: String,
    endpoint_config: Option<EndpointConfig>,
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct EndpointConfig {
    aliases: Option<Vec<String>>,
}

/// `POST /networks/{id}/disconnect` body (`Force` changes nothing here: an endpoint
/// always goes).
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct DisconnectBody {
    container: String,
}

async fn connect(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let req: ConnectBody = json_body(&body)?;
    if req.container.is_empty() {
        return Err(ApiError::bad_request("container is required"));
    }
    let aliases = req
        .endpoint_config
        .and_then(|c| c.aliases)
        .unwrap_or_default();
    engine
        .connect_container(&super::percent_decode(&id), &req.container, aliases)
        .await?;
    Ok(StatusCode::OK.into_response())
}

async fn disconnect(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let req: DisconnectBody = json_body(&body)?;
    if req.container.is_empty() {
        return Err(ApiError::bad_request("container is required"));
    }
    engine
        .disconnect_container(&super::percent_decode(&id), &req.container)
        .await?;
    Ok(StatusCode::OK.into_response())
}
