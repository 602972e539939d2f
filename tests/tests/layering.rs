//! The codebase's direction of dependency, checked on the source: `domain` knows nothing of AWS,
//! HTTP or the ports; the application layer (`app`) knows the domain, the ports and the one
//! error type, never an adapter; the adapters (`aws/`, `http.rs`, the functions) depend inward.

use std::collections::BTreeSet;
use std::path::Path;

use kiro_tests::repo_root;

/// `crate::<module>` paths and external crates named in the `.rs` files under `dir`, with the
/// file that names each.
fn dependencies(dir: &Path) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                todo.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("readable");
            let file = path.strip_prefix(repo_root()).unwrap_or(&path).display().to_string();
            // Test modules may use anything.
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            for line in code.lines().map(str::trim).filter(|l| !l.starts_with("//")) {
                for (at, _) in line.match_indices("crate::") {
                    let before = line[..at].chars().last();
                    if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                        continue;
                    }
                    let module: String =
                        line[at + 7..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                    out.insert((format!("crate::{module}"), file.clone()));
                }
                for external in ["aws_sdk_", "aws_config", "aws_lambda_events", "lambda_runtime", "aws_smithy"] {
                    if line.contains(external) {
                        out.insert((external.to_owned(), file.clone()));
                    }
                }
            }
        }
    }
    out
}

fn assert_only(layer: &str, allowed: &[&str]) {
    let found = dependencies(&repo_root().join(layer));
    let wrong: Vec<String> = found
        .iter()
        .filter(|(dep, _)| !allowed.contains(&dep.as_str()))
        .map(|(dep, file)| format!("\n    {file} uses {dep}"))
        .collect();
    assert!(wrong.is_empty(), "{layer} may use only {allowed:?}:{}", wrong.concat());
}

#[test]
fn the_domain_depends_on_nothing_but_itself() {
    assert_only("shared/src/domain", &["crate::domain", "crate::time"]);
}

#[test]
fn the_application_layer_depends_on_the_domain_and_the_ports_only() {
    assert_only(
        "shared/src/app",
        &["crate::app", "crate::domain", "crate::ports", "crate::error", "crate::time", "crate::BoxError"],
    );
}

#[test]
fn the_scan_sees_an_adapter_dependency() {
    // Pins the scanner: the adapters do use the SDK and the HTTP module uses the error type.
    let aws = dependencies(&repo_root().join("shared/src/aws"));
    assert!(aws.iter().any(|(d, _)| d == "aws_sdk_"), "{aws:?}");
    let all = dependencies(&repo_root().join("shared/src"));
    assert!(all.iter().any(|(d, f)| d == "crate::error" && f.ends_with("http.rs")), "{all:?}");
}
