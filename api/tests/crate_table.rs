//! docs/architecture.md's crate table matches the workspace: one row per member of the root
//! Cargo.toml, and each crate depends on no `kan-*` crate its row does not allow.
// Test code: clippy.toml's allow-unwrap-in-tests covers #[test] functions, not their helpers.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("api/ is inside the workspace")
}

/// path (without the slash) → (crate name, allowed dependency crate names).
fn table() -> BTreeMap<String, (String, BTreeSet<String>)> {
    let doc = std::fs::read_to_string(root().join("docs/architecture.md")).unwrap();
    let mut rows = BTreeMap::new();
    for line in doc.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let path = cells[0].trim_matches('`').trim_end_matches('/').to_string();
        if path == "crds" {
            continue;
        }
        let name = cells[1].split('`').nth(1).unwrap_or_default().to_string();
        rows.insert(path, (name, BTreeSet::new()));
    }
    // Second pass: "may depend on" names paths (api, core, …); map them to crate names.
    let names: BTreeMap<String, String> = rows
        .iter()
        .map(|(p, (n, _))| (p.clone(), n.clone()))
        .collect();
    for line in doc.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let path = cells[0].trim_matches('`').trim_end_matches('/');
        let Some((_, allowed)) = rows.get_mut(path) else {
            continue;
        };
        if cells[3] == "all of the above" {
            allowed.extend(names.values().cloned());
        } else {
            allowed.extend(
                cells[3]
                    .split(',')
                    .filter_map(|p| names.get(p.trim()).cloned()),
            );
        }
    }
    rows
}

fn members() -> Vec<String> {
    let cargo = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let line = cargo
        .lines()
        .find(|l| l.trim_start().starts_with("members"))
        .expect("a members line");
    line.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

#[test]
fn every_workspace_member_has_a_row_and_every_row_is_a_member() {
    let rows: BTreeSet<String> = table().into_keys().collect();
    let members: BTreeSet<String> = members().into_iter().collect();
    assert_eq!(rows, members, "docs/architecture.md vs Cargo.toml members");
}

#[test]
fn each_crate_is_named_as_in_its_row_and_depends_only_on_what_its_row_allows() {
    for (path, (name, allowed)) in table() {
        let manifest = std::fs::read_to_string(root().join(&path).join("Cargo.toml")).unwrap();
        let declared = manifest
            .lines()
            .find_map(|l| l.strip_prefix("name = \""))
            .map(|n| n.trim_end_matches('"'))
            .unwrap_or_default();
        assert_eq!(declared, name, "{path}/Cargo.toml's package name");
        // Only [dependencies]: tests may use more.
        let deps = manifest
            .split("[dependencies]")
            .nth(1)
            .unwrap_or_default()
            .split("\n[")
            .next()
            .unwrap_or_default();
        for dep in deps
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|d| d.starts_with("kan-"))
        {
            assert!(
                allowed.contains(dep),
                "{path} ({name}) depends on {dep}, which docs/architecture.md does not allow"
            );
        }
    }
}
