//! Software bills of materials for an image, made from the image alone: CycloneDX 1.6 and
//! SPDX 2.3 JSON listing its Python packages (name, version, purl, the lock's sha256 of the
//! file each was installed from, licenses from their metadata) and the OS packages dpkg
//! records. Pure and reproducible: the same image gives the same bytes (the timestamp is the
//! image's own `created`, the document's id derives from its digest).

use serde_json::{json, Value};

use crate::inspect::{Inspection, OsPackage, Package};
use lockship_oci::digest::Digest;

/// Which standard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SbomFormat {
    CycloneDx,
    Spdx,
}

impl SbomFormat {
    /// The media type of the document, as an OCI referrer's artifact type.
    pub fn media_type(self) -> &'static str {
        match self {
            SbomFormat::CycloneDx => "application/vnd.cyclonedx+json",
            SbomFormat::Spdx => "application/spdx+json",
        }
    }
}

/// What the document says about the image besides its contents.
pub struct SbomContext<'a> {
    /// When the image was made (its config's `created`, RFC 3339).
    pub created: &'a str,
    /// The image's name for people (its title label, else what the user named).
    pub name: &'a str,
}

/// The document for `image` in `format`.
pub fn document(format: SbomFormat, image: &Inspection, ctx: &SbomContext<'_>) -> Value {
    match format {
        SbomFormat::CycloneDx => cyclonedx(image, ctx),
        SbomFormat::Spdx => spdx(image, ctx),
    }
}

/// The document as written: pretty JSON and a final newline, the same bytes every time.
pub fn to_bytes(document: &Value) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(document).expect("documents serialize");
    bytes.push(b'\n');
    bytes
}

/// An image's `created` (RFC 3339, any offset or fraction) as the whole-second UTC form both
/// standards require (`2024-01-02T03:04:05Z`); None when it is not a date.
pub fn utc_seconds(created: &str) -> Option<String> {
    let (date, time) = created.split_once('T')?;
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    let d: Vec<&str> = date.split('-').collect();
    let hms = time.get(..8)?;
    let t: Vec<&str> = hms.split(':').collect();
    let ok = d.len() == 3
        && d.iter().all(|p| digits(p))
        && d[0].len() == 4
        && t.len() == 3
        && t.iter().all(|p| p.len() == 2 && digits(p));
    // Only UTC times are taken as they are; an offset would need converting.
    let rest = &time[8..];
    let utc = rest.ends_with('Z')
        && rest[..rest.len() - 1]
            .chars()
            .all(|c| c == '.' || c.is_ascii_digit());
    (ok && utc).then(|| format!("{date}T{hms}Z"))
}

const TOOL: &str = "lockship";
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `pkg:pypi/NAME@VERSION`, the name normalized as the purl spec says for PyPI.
fn python_purl(p: &Package) -> String {
    format!(
        "pkg:pypi/{}@{}",
        lockship_python::lock::normalize_name(&p.name),
        purl_escape(&p.version)
    )
}

/// `pkg:deb/debian/NAME@VERSION?arch=ARCH`.
fn deb_purl(p: &OsPackage) -> String {
    let mut purl = format!(
        "pkg:deb/debian/{}@{}",
        purl_escape(&p.name),
        purl_escape(&p.version)
    );
    if !p.architecture.is_empty() {
        purl.push_str(&format!("?arch={}", purl_escape(&p.architecture)));
    }
    purl
}

/// Percent-encodes what a purl segment may not hold as is (`:` in an epoch, `+`, spaces).
fn purl_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A UUID (version 5 layout) derived from the image digest and the format: one image, one id.
fn uuid(image: &Inspection, format: &str) -> String {
    let h = Digest::of_parts(["lockship-sbom-v1", format, &image.digest]);
    let hex = h.hex();
    format!(
        "{}-{}-5{}-8{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

fn python_packages(image: &Inspection) -> Vec<&Package> {
    image.packages().into_values().collect()
}

fn cyclonedx(image: &Inspection, ctx: &SbomContext<'_>) -> Value {
    let mut components = Vec::new();
    for p in python_packages(image) {
        let purl = python_purl(p);
        let mut c = json!({
            "type": "library",
            "bom-ref": purl,
            "name": p.name,
            "version": p.version,
            "purl": purl,
        });
        if let Some(sha) = &p.sha256 {
            c["hashes"] = json!([{"alg": "SHA-256", "content": sha}]);
        }
        if let Some(expression) = &p.license_expression {
            c["licenses"] = json!([{"expression": expression}]);
        } else if let Some(name) = &p.license {
            c["licenses"] = json!([{"license": {"name": name}}]);
        }
        components.push(c);
    }
    for p in &image.os_packages {
        let purl = deb_purl(p);
        components.push(json!({
            "type": "library",
            "bom-ref": purl,
            "name": p.name,
            "version": p.version,
            "purl": purl,
        }));
    }
    let refs: Vec<&Value> = components.iter().map(|c| &c["bom-ref"]).collect();
    json!({
        "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": format!("urn:uuid:{}", uuid(image, "cyclonedx")),
        "version": 1,
        "metadata": {
            "timestamp": ctx.created,
            "tools": {"components": [{"type": "application", "name": TOOL, "version": VERSION}]},
            "component": {
                "type": "container",
                "bom-ref": "image",
                "name": ctx.name,
                "version": image.digest,
                "properties": [{"name": "platform", "value": image.platform}],
            },
        },
        "components": components,
        "dependencies": [{"ref": "image", "dependsOn": refs}],
    })
}

/// Free text as the characters SPDX ids allow: letters, digits, `.` and `-`.
fn id_chars(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// An SPDX element id, unique by its position `n`.
fn spdx_id(kind: &str, name: &str, n: usize) -> String {
    format!("SPDXRef-{kind}-{}-{n}", id_chars(name))
}

fn spdx(image: &Inspection, ctx: &SbomContext<'_>) -> Value {
    let mut packages = vec![json!({
        "SPDXID": "SPDXRef-image",
        "name": ctx.name,
        "versionInfo": image.digest,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "primaryPackagePurpose": "CONTAINER",
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
    })];
    let mut relationships = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": "SPDXRef-image",
    })];
    // Licenses that are not SPDX expressions go in as LicenseRefs with their text.
    let mut extracted: Vec<Value> = Vec::new();
    let mut refs: Vec<String> = Vec::new();
    for (n, p) in python_packages(image).into_iter().enumerate() {
        let id = spdx_id("Package-python", &p.name, n);
        let declared = match (&p.license_expression, &p.license) {
            (Some(expression), _) => expression.clone(),
            (None, Some(text)) => {
                let license_ref = format!("LicenseRef-{}", id_chars(text));
                if !refs.contains(&license_ref) {
                    refs.push(license_ref.clone());
                    extracted.push(
                        json!({"licenseId": license_ref, "extractedText": text, "name": text}),
                    );
                }
                license_ref
            }
            (None, None) => "NOASSERTION".into(),
        };
        let mut package = json!({
            "SPDXID": id,
            "name": p.name,
            "versionInfo": p.version,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "primaryPackagePurpose": "LIBRARY",
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": declared,
            "copyrightText": "NOASSERTION",
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": python_purl(p),
            }],
        });
        if let Some(sha) = &p.sha256 {
            package["checksums"] = json!([{"algorithm": "SHA256", "checksumValue": sha}]);
        }
        if let Some(file) = &p.file {
            package["packageFileName"] = json!(file);
        }
        packages.push(package);
        relationships.push(json!({
            "spdxElementId": "SPDXRef-image",
            "relationshipType": "CONTAINS",
            "relatedSpdxElement": id,
        }));
    }
    for (n, p) in image.os_packages.iter().enumerate() {
        let id = spdx_id("Package-deb", &p.name, n);
        packages.push(json!({
            "SPDXID": id,
            "name": p.name,
            "versionInfo": p.version,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": deb_purl(p),
            }],
        }));
        relationships.push(json!({
            "spdxElementId": "SPDXRef-image",
            "relationshipType": "CONTAINS",
            "relatedSpdxElement": id,
        }));
    }
    let mut doc = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("{} {}", ctx.name, image.digest),
        "documentNamespace": format!("urn:uuid:{}", uuid(image, "spdx")),
        "creationInfo": {
            "created": ctx.created,
            "creators": [format!("Tool: {TOOL}-{VERSION}")],
        },
        "packages": packages,
        "relationships": relationships,
    });
    if !extracted.is_empty() {
        doc["hasExtractedLicensingInfos"] = json!(extracted);
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_becomes_whole_seconds_utc() {
        assert_eq!(
            utc_seconds("2023-11-14T22:13:20Z").as_deref(),
            Some("2023-11-14T22:13:20Z")
        );
        assert_eq!(
            utc_seconds("2023-11-14T22:13:20.123456789Z").as_deref(),
            Some("2023-11-14T22:13:20Z")
        );
        assert_eq!(utc_seconds("2023-11-14T22:13:20+02:00"), None);
        assert_eq!(utc_seconds("yesterday"), None);
    }

    #[test]
    fn purls_are_normalized_and_escaped() {
        let p = Package {
            name: "Typing_Extensions".into(),
            version: "4.12.2".into(),
            dist_info: String::new(),
            license_expression: None,
            license: None,
            file: None,
            sha256: None,
        };
        assert_eq!(python_purl(&p), "pkg:pypi/typing-extensions@4.12.2");
        let deb = OsPackage {
            name: "libc6".into(),
            version: "1:2.36-9+deb12u4".into(),
            architecture: "amd64".into(),
        };
        assert_eq!(
            deb_purl(&deb),
            "pkg:deb/debian/libc6@1%3A2.36-9%2Bdeb12u4?arch=amd64"
        );
        assert_eq!(
            spdx_id("Package-python", "zope.interface_x", 3),
            "SPDXRef-Package-python-zope.interface-x-3"
        );
    }
}
