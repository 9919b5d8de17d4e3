"""Validates an SBOM against its standard's published JSON schema.

CycloneDX documents go through the CycloneDX project's own validator (its bundled 1.6
schema, strict mode); SPDX 2.3 documents through jsonschema with the schema beside this file.
Exits 1 naming every violation.
"""

import json
import pathlib
import sys

import jsonschema


def main(path: str) -> int:
    text = pathlib.Path(path).read_text()
    doc = json.loads(text)
    if doc.get("bomFormat") == "CycloneDX":
        from cyclonedx.schema import SchemaVersion
        from cyclonedx.validation.json import JsonStrictValidator

        if doc.get("specVersion") != "1.6":
            print(f"{path}: specVersion is {doc.get('specVersion')!r}, not 1.6")
            return 1
        error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
        if error is not None:
            print(f"{path}: {error}")
            return 1
        print(f"{path}: valid CycloneDX 1.6")
        return 0
    if doc.get("spdxVersion") == "SPDX-2.3":
        schema = json.loads(
            (pathlib.Path(__file__).parent / "spdx-2.3.schema.json").read_text()
        )
        validator = jsonschema.Draft7Validator(schema)
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
        for e in errors[:20]:
            print(f"{path}: {'/'.join(map(str, e.path))}: {e.message}")
        if errors:
            return 1
        print(f"{path}: valid SPDX 2.3")
        return 0
    print(f"{path}: neither CycloneDX nor SPDX 2.3")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
