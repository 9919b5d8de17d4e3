//! What a registry sends back, parsed: a manifest or index, and a base image's config turned
//! into the built image's config and manifest.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lockship_oci::image::{assemble, ConfigSpec};
use lockship_oci::registry::parse_manifest;

fuzz_target!(|data: &[u8]| {
    let _ = parse_manifest(data);
    let Ok(config) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let spec = ConfigSpec {
        entrypoint: Some(vec!["/opt/venv/bin/app".into()]),
        env: vec![("PATH".into(), "/opt/venv/bin:/usr/bin".into())],
        user: Some("65532:65532".into()),
        ..ConfigSpec::default()
    };
    let image = assemble(&config, Vec::new(), 0, &spec);
    assert!(serde_json::from_slice::<serde_json::Value>(&image.config).is_ok());
    assert!(serde_json::from_slice::<serde_json::Value>(&image.manifest).is_ok());
});
