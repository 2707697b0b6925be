//! `GET /distribution/{name}/json` against a real registry on 127.0.0.1: the
//! descriptor is the registry's own (digest from `Docker-Content-Digest`), the
//! platforms those of the index or of the image config; unknown names are 404.
//!
//! No docker CLI command to drive it here: the only one that calls it,
//! `docker service create/update`, needs swarm mode, which vmrun does not serve.

use vmrun_e2e::{busybox_tar, require_root, require_tool, Daemon};
use vmrun_test_registry::registry::{Auth, Registry};

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

#[test]
fn distribution_inspect_reports_the_registry_descriptor_and_platforms() {
    if !require_root() || !require_tool("skopeo") {
        return;
    }
    let d = Daemon::start_empty();
    let Some(registry) = Registry::start(Auth::Anonymous) else {
        return;
    };
    let inspect = |name: &str| d.api("GET", &format!("/v1.45/distribution/{name}/json"), None);

    // A single manifest: its own descriptor, the platform from its config.
    registry.skopeo_push(&busybox_tar(), "e2e/bb:1", None);
    let (digest, manifest) = registry.manifest("e2e/bb", "1");
    let single = format!("{}/e2e/bb:1", registry.addr);
    let r = inspect(&single);
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["Descriptor"]["digest"], digest.as_str(), "{v}");
    assert_eq!(v["Descriptor"]["size"], manifest.len(), "{v}");
    assert_eq!(v["Descriptor"]["mediaType"], OCI_MANIFEST, "{v}");
    assert_eq!(
        v["Platforms"],
        serde_json::json!([{ "architecture": "amd64", "os": "linux" }]),
        "{v}"
    );
    // By digest: the same answer.
    let by_digest = inspect(&format!("{}/e2e/bb@{digest}", registry.addr));
    assert_eq!(by_digest.status, 200, "{}", by_digest.text());
    assert_eq!(by_digest.json()["Descriptor"], v["Descriptor"]);

    // A multi-platform index over that manifest: every entry's platform.
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            { "mediaType": OCI_MANIFEST, "digest": digest, "size": manifest.len(),
              "platform": { "architecture": "amd64", "os": "linux" } },
            { "mediaType": OCI_MANIFEST, "digest": digest, "size": manifest.len(),
              "platform": { "architecture": "arm64", "os": "linux", "variant": "v8" } },
        ],
    }))
    .unwrap();
    let index_digest = registry.push_manifest("e2e/bb", "multi", OCI_INDEX, &index);
    let r = inspect(&format!("{}/e2e/bb:multi", registry.addr));
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(
        v["Descriptor"],
        serde_json::json!({ "mediaType": OCI_INDEX, "digest": index_digest, "size": index.len() }),
        "{v}"
    );
    assert_eq!(
        v["Platforms"],
        serde_json::json!([
            { "architecture": "amd64", "os": "linux" },
            { "architecture": "arm64", "os": "linux", "variant": "v8" },
        ]),
        "{v}"
    );

    // Unknown tag and unknown repository: 404 naming the reference.
    for missing in ["e2e/bb:nope", "e2e/nothing"] {
        let name = format!("{}/{missing}", registry.addr);
        let r = inspect(&name);
        assert_eq!(r.status, 404, "{name}: {}", r.text());
        let message = r.json()["message"].as_str().unwrap_or_default().to_owned();
        assert!(message.contains(&name), "{name}: {message}");
        assert!(message.contains("manifest unknown"), "{name}: {message}");
    }
    // A malformed name is 400, as dockerd.
    let r = inspect("BAD");
    assert_eq!(r.status, 400, "{}", r.text());
}
