//! `template.yaml` against the contract and against the code.
//!
//! The contract's routes and CloudTrail channels are written out here: they are the contract.
//! Everything else is derived from the Rust sources, so that code which starts to call a new AWS
//! operation, read a new variable or answer a new route fails here until the template follows:
//!
//! - routes: the `("METHOD", [segments])` arms of each function's router;
//! - environment: the names the function's `main` reads through `kiro::config`;
//! - IAM: the SDK calls (`client.<operation>()`) in the adapters of `shared/src/aws`, restricted
//!   to the port methods the function's code calls, for the ports its `handle` is generic over.
//!
//! The scan is textual (comments and string contents masked, `#[cfg(test)]` items dropped), so
//! it over-approximates rather than misses: a port method is "called" when `.name(` appears in
//! the function's crate or in the shared service code.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::Path;

use kiro_tests::{repo_root, template};
use serde_json::Value as Json;
use serde_yaml::Value;

/// Every function the template declares, by binary.
const FUNCTIONS: [&str; 6] =
    ["create-profile", "assign-tier", "sync-group", "console", "ingest-activity", "publish-events"];

/// The functions whose environment and IAM policy are checked against their code: all of them.
/// (A function left out is held to what its own tests say instead: ingest-activity's policy to
/// sync-group's table and bus grants plus BatchWriteItem, in
/// kiro_writes_its_reports_to_a_bucket_whose_events_reach_ingest_activity.)
const SCANNED: [&str; 6] =
    ["create-profile", "assign-tier", "sync-group", "console", "ingest-activity", "publish-events"];

/// The contract's HTTP routes (tables "Profile" and "Subscriptions and seats": audit reports,
/// usage and activity imports included), with the function that answers each.
const ROUTES: &[(&str, &str, &str)] = &[
    ("create-profile", "POST", "/profile"),
    ("create-profile", "GET", "/profile"),
    ("create-profile", "PATCH", "/profile"),
    ("assign-tier", "POST", "/subscriptions"),
    ("assign-tier", "GET", "/subscriptions"),
    ("assign-tier", "GET", "/subscriptions/{principalType}/{principalId}"),
    ("assign-tier", "PUT", "/subscriptions/{principalType}/{principalId}"),
    ("assign-tier", "DELETE", "/subscriptions/{principalType}/{principalId}"),
    ("assign-tier", "GET", "/seats"),
    ("assign-tier", "GET", "/seats/{userId}"),
    ("assign-tier", "GET", "/directory/users"),
    ("assign-tier", "GET", "/directory/groups"),
    ("assign-tier", "POST", "/audits"),
    ("assign-tier", "GET", "/audits"),
    ("assign-tier", "GET", "/audits/{auditId}"),
    ("assign-tier", "GET", "/usage"),
    ("assign-tier", "GET", "/usage/users"),
    ("assign-tier", "GET", "/activity/imports"),
    // Any other method and path: answered with the contract's 404 body.
    ("assign-tier", "ANY", DEFAULT_ROUTE),
    // The console: everything under /console, with no API Gateway authorizer (it signs its
    // users in itself).
    ("console", "ANY", "/console"),
    ("console", "ANY", "/console/{proxy+}"),
];

/// The routes that API Gateway does not authorize (the contract's console routes).
const UNAUTHORIZED_FUNCTIONS: [&str; 1] = ["console"];

/// API Gateway's catch-all route key (an HttpApi event without `Path` and `Method`).
const DEFAULT_ROUTE: &str = "$default";

/// The contract's configuration table: the least each function must be able to read.
const CONTRACT_ENV: &[(&str, &[&str])] = &[
    ("create-profile", &["TABLE_NAME", "EVENT_BUS_NAME", "SUPPORTED_REGIONS"]),
    ("assign-tier", &["TABLE_NAME", "EVENT_BUS_NAME", "TIER_PRICES_USD", "TIER_CREDITS", "OVERAGE_PRICE_USD"]),
    ("sync-group", &["TABLE_NAME", "EVENT_BUS_NAME", "AUDIT_REVOKE_LIMIT_PERCENT"]),
    (
        "console",
        &[
            "TABLE_NAME",
            "EVENT_BUS_NAME",
            "TIER_PRICES_USD",
            "TIER_CREDITS",
            "OVERAGE_PRICE_USD",
            "CONSOLE_OIDC_ISSUER",
            "CONSOLE_OIDC_CLIENT_ID",
            "CONSOLE_BASE_URL",
            "CONSOLE_USER_CLAIM",
            "CONSOLE_ADMIN_GROUP",
            "CONSOLE_VIEWER_GROUP",
            // An addition to the contract's variables: the bucket of large exports.
            "CONSOLE_EXPORT_BUCKET",
        ],
    ),
    // "it needs no other configuration": the bucket and key come with each event.
    ("ingest-activity", &["TABLE_NAME", "EVENT_BUS_NAME"]),
    // The table's outbox, the bus it publishes to.
    ("publish-events", &["TABLE_NAME", "EVENT_BUS_NAME"]),
];

/// The contract's "Events in": the three channels of an Identity Center membership change.
const CHANNELS: &[(&str, &[&str])] = &[
    ("identitystore.amazonaws.com", &["CreateGroupMembership", "DeleteGroupMembership", "DeleteGroup", "DeleteUser"]),
    ("sso-directory.amazonaws.com", &["AddMemberToGroup", "RemoveMemberFromGroup", "DeleteGroup", "DeleteUser"]),
    ("identitystore-scim.amazonaws.com", &["PatchGroup", "DeleteGroup", "DeleteUser"]),
];

const CLOUDTRAIL: &str = "AWS API Call via CloudTrail";

/// The parameter naming an existing report bucket (empty: the stack creates its own).
const REPORT_BUCKET_PARAM: &str = "ActivityReportBucket";

/// The parameter naming the prefix Kiro writes under in the stack's bucket.
const REPORT_PREFIX_PARAM: &str = "ActivityReportPrefix";

/// The objects of the report bucket ingest-activity may read (an IAM resource path, `*` any run
/// of characters): Kiro's user activity report files, whatever the prefix before `AWSLogs/`.
const REPORT_OBJECTS: &str = "*/KiroLogs/user_report/*";

/// The sample S3 envelopes of events/s3, and whether the report rule must deliver each.
const S3_SAMPLES: &[(&str, bool)] = &[
    ("object-created-user-report.json", true),
    ("object-created-user-report-no-prefix.json", true),
    ("object-created-legacy-by-user-analytic.json", false),
];

/// Resource types each Identity Store action requires, from the Service Authorization Reference
/// (prefix `identitystore`). An action missing here fails the test: look it up and add it.
const IDENTITYSTORE_RESOURCES: &[(&str, &[&str])] = &[
    ("DescribeUser", &["identitystore/*", "user/*"]),
    ("GetUserId", &["identitystore/*", "user/*"]),
    ("ListUsers", &["identitystore/*", "user/*"]),
    ("DescribeGroup", &["identitystore/*", "group/*"]),
    ("GetGroupId", &["identitystore/*", "group/*"]),
    ("ListGroups", &["identitystore/*", "group/*"]),
    ("ListGroupMemberships", &["identitystore/*", "group/*", "membership/*"]),
    ("ListGroupMembershipsForMember", &["identitystore/*", "user/*", "membership/*"]),
    ("IsMemberInGroups", &["identitystore/*", "user/*", "group/*", "membership/*"]),
];

// ------------------------------------------------------------------------------------------------
// Rust sources, read as text.

/// A Rust file. `code` has the same byte offsets as `text`, with comments and the contents of
/// string and char literals blanked, and `#[cfg(test)]` items removed.
struct Source {
    path: String,
    text: String,
    code: String,
}

impl Source {
    fn read(relative: &str) -> Source {
        let path = repo_root().join(relative);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let mut code = mask(&text).into_bytes();
        drop_test_items(&mut code);
        let code = String::from_utf8(code).expect("the mask is ASCII where it changed anything");
        Source { path: relative.to_owned(), text, code }
    }

    fn dir(relative: &str) -> Vec<Source> {
        let mut names: Vec<String> = std::fs::read_dir(repo_root().join(relative))
            .unwrap_or_else(|e| panic!("listing {relative}: {e}"))
            .map(|e| e.expect("a directory entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".rs"))
            .collect();
        names.sort();
        names.iter().map(|n| Source::read(&format!("{relative}/{n}"))).collect()
    }

    /// String literals inside `range`, as written.
    fn literals(&self, range: Range<usize>) -> Vec<&str> {
        let bytes = self.code.as_bytes();
        let mut out = Vec::new();
        let mut i = range.start;
        while i < range.end {
            if bytes[i] == b'"' {
                let end = i + 1 + self.code[i + 1..].find('"').expect("a closing quote");
                out.push(&self.text[i + 1..end]);
                i = end + 1;
            } else {
                i += 1;
            }
        }
        out
    }
}

/// Blanks comments and literal contents (keeping the quotes of string literals).
fn mask(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = b.to_vec();
    let blank = |out: &mut Vec<u8>, r: Range<usize>| {
        for c in &mut out[r] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
    };
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                let end = text[i..].find('\n').map_or(b.len(), |n| i + n);
                blank(&mut out, i..end);
                i = end;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let (mut depth, mut j) = (1, i + 2);
                while depth > 0 && j < b.len() {
                    if b[j..].starts_with(b"/*") {
                        depth += 1;
                        j += 2;
                    } else if b[j..].starts_with(b"*/") {
                        depth -= 1;
                        j += 2;
                    } else {
                        j += 1;
                    }
                }
                blank(&mut out, i..j);
                i = j;
            }
            b'r' if !is_ident(b.get(i.wrapping_sub(1)).copied().unwrap_or(b' '))
                && matches!(b.get(i + 1), Some(b'"' | b'#')) =>
            {
                let hashes = b[i + 1..].iter().take_while(|c| **c == b'#').count();
                if b.get(i + 1 + hashes) != Some(&b'"') {
                    i += 1;
                    continue;
                }
                let open = i + 1 + hashes;
                let close_seq = format!("\"{}", "#".repeat(hashes));
                let close = open + 1 + text[open + 1..].find(&close_seq).expect("a closed raw string");
                blank(&mut out, open + 1..close);
                out[open] = b'"';
                out[close] = b'"';
                i = close + close_seq.len();
            }
            b'"' => {
                let mut j = i + 1;
                while j < b.len() && b[j] != b'"' {
                    j += if b[j] == b'\\' { 2 } else { 1 };
                }
                blank(&mut out, i + 1..j);
                i = j + 1;
            }
            b'\'' => {
                // A char literal ('x', '\n', '→'), or a lifetime ('a) which stays.
                let rest = &text[i + 1..];
                // `len` is the offset of the closing quote in `rest`.
                let len = if rest.starts_with('\\') {
                    rest.get(2..).and_then(|r| r.find('\'')).map(|n| n + 2)
                } else {
                    rest.chars().next().map(char::len_utf8).filter(|&n| rest[n..].starts_with('\''))
                };
                match len {
                    Some(n) => {
                        blank(&mut out, i..i + n + 2);
                        i += n + 2;
                    }
                    None => i += 1,
                }
            }
            _ => i += 1,
        }
    }
    // Blanked multi-byte characters became spaces; what is left outside literals and comments
    // is source code, ASCII in this workspace.
    String::from_utf8_lossy(&out).into_owned()
}

/// Removes every `#[cfg(test)]` item (the unit-test modules) from `code`.
fn drop_test_items(code: &mut [u8]) {
    let attr = b"#[cfg(test)]";
    let mut from = 0;
    while let Some(at) = find_bytes(&code[from..], attr).map(|n| n + from) {
        let after = at + attr.len();
        let end = match code[after..].iter().position(|c| *c == b'{' || *c == b';') {
            Some(n) if code[after + n] == b'{' => matching(code, after + n) + 1,
            Some(n) => after + n + 1,
            None => code.len(),
        };
        for c in &mut code[at..end] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
        from = end;
    }
}

fn find_bytes(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// The index of the bracket closing the one at `open`.
fn matching(code: &[u8], open: usize) -> usize {
    let (o, c) = match code[open] {
        b'{' => (b'{', b'}'),
        b'[' => (b'[', b']'),
        b'(' => (b'(', b')'),
        other => panic!("no bracket at {open}: {:?}", other as char),
    };
    let mut depth = 0;
    for (i, &ch) in code.iter().enumerate().skip(open) {
        if ch == o {
            depth += 1;
        } else if ch == c {
            depth -= 1;
            if depth == 0 {
                return i;
            }
        }
    }
    panic!("unbalanced brackets from {open}")
}

/// Offsets of `word` in `code` as a whole identifier.
fn words<'a>(code: &'a str, word: &'a str) -> impl Iterator<Item = usize> + 'a {
    let b = code.as_bytes();
    code.match_indices(word).map(|(i, _)| i).filter(move |&i| {
        let before = i.checked_sub(1).map(|j| b[j]);
        let after = b.get(i + word.len()).copied();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

fn ident_at(code: &str, at: usize) -> &str {
    let len = code.as_bytes()[at..].iter().take_while(|c| is_ident(**c)).count();
    &code[at..at + len]
}

fn skip_ws(code: &str, at: usize) -> usize {
    at + code.as_bytes()[at..].iter().take_while(|c| c.is_ascii_whitespace()).count()
}

/// A function with a body: its name and the range of its body (braces included).
#[derive(Clone)]
struct FnItem {
    name: String,
    body: Range<usize>,
}

/// Every `fn name(..) { .. }` in `range` (declarations without a body are skipped).
fn fn_items(code: &str, range: Range<usize>) -> Vec<FnItem> {
    let mut out = Vec::new();
    for at in words(code, "fn").filter(|i| range.contains(i)) {
        let name_at = skip_ws(code, at + 2);
        let name = ident_at(code, name_at);
        if name.is_empty() {
            continue; // a `fn(..)` pointer type
        }
        let Some(open) = code[name_at..range.end].find(['{', ';']).map(|n| n + name_at) else { continue };
        if code.as_bytes()[open] == b'{' {
            out.push(FnItem { name: name.to_owned(), body: open..matching(code.as_bytes(), open) + 1 });
        }
    }
    out
}

/// An `impl [Trait for] Type { .. }` block at the start of a line.
struct ImplBlock {
    trait_name: Option<String>,
    self_ty: String,
    body: Range<usize>,
}

fn last_segment(path: &str) -> String {
    let path = path.split('<').next().unwrap_or_default().trim();
    path.rsplit("::").next().unwrap_or_default().trim().to_owned()
}

fn impl_blocks(code: &str) -> Vec<ImplBlock> {
    let b = code.as_bytes();
    let mut out = Vec::new();
    for at in words(code, "impl") {
        let line_start = code[..at].rfind('\n').map_or(0, |n| n + 1);
        if !code[line_start..at].trim().is_empty() {
            continue; // `impl Trait` in a signature
        }
        let open = at + code[at..].find('{').expect("an impl body");
        let mut header = code[at + 4..open].trim();
        if header.starts_with('<') {
            let mut depth = 0;
            let end = header
                .char_indices()
                .find(|&(_, c)| {
                    depth += match c {
                        '<' => 1,
                        '>' => -1,
                        _ => 0,
                    };
                    depth == 0
                })
                .map_or(0, |(i, _)| i + 1);
            header = header[end..].trim();
        }
        let (trait_name, self_ty) = match header.split_once(" for ") {
            Some((t, ty)) => (Some(last_segment(t)), last_segment(ty)),
            None => (None, last_segment(header)),
        };
        out.push(ImplBlock { trait_name, self_ty, body: open..matching(b, open) + 1 });
    }
    out
}

/// Names called in `range`: `name(` not preceded by `.`, plus `self.name(`.
fn calls(code: &str, range: Range<usize>) -> BTreeSet<String> {
    let b = code.as_bytes();
    let mut out = BTreeSet::new();
    let mut i = range.start;
    while i < range.end {
        if is_ident(b[i]) && (i == 0 || !is_ident(b[i - 1])) {
            let name = ident_at(code, i);
            let next = skip_ws(code, i + name.len());
            let before = code[..i].trim_end();
            let method = before.ends_with('.');
            if b.get(next) == Some(&b'(') && (!method || before.ends_with("self.")) {
                out.insert(name.to_owned());
            }
            i += name.len();
        } else {
            i += 1;
        }
    }
    out
}

// ------------------------------------------------------------------------------------------------
// What the code calls.

/// The adapters of `shared/src/aws`: port implementations and the SDK calls behind them.
struct Adapters {
    files: Vec<Source>,
    /// (file, fn) for every function, inherent and trait methods included.
    fns: Vec<(usize, FnItem)>,
    /// port trait → (adapter type, file, methods).
    ports: BTreeMap<String, (String, usize, Vec<FnItem>)>,
    /// adapter type → IAM service prefix of its SDK client.
    service: BTreeMap<String, &'static str>,
    /// `const NAME: &str = "value"` of the adapters.
    consts: BTreeMap<String, String>,
}

impl Adapters {
    fn load() -> Adapters {
        let files = Source::dir("shared/src/aws");
        let mut fns = Vec::new();
        let mut ports = BTreeMap::new();
        let mut service = BTreeMap::new();
        let mut consts = BTreeMap::new();
        for (f, src) in files.iter().enumerate() {
            fns.extend(fn_items(&src.code, 0..src.code.len()).into_iter().map(|item| (f, item)));
            for block in impl_blocks(&src.code) {
                if let Some(t) = block.trait_name {
                    let methods = fn_items(&src.code, block.body.clone());
                    ports.insert(t, (block.self_ty, f, methods));
                }
            }
            let sdk = words(&src.code, "use")
                .filter_map(|at| {
                    let path = src.code[at + 3..].split(';').next().unwrap_or_default().trim();
                    path.strip_prefix("aws_sdk_")?.strip_suffix("::Client").map(str::to_owned)
                })
                .next();
            for at in words(&src.code, "struct") {
                let name = ident_at(&src.code, skip_ws(&src.code, at + 6)).to_owned();
                if let Some(sdk) = &sdk {
                    let prefix = match sdk.as_str() {
                        "dynamodb" => "dynamodb",
                        "identitystore" => "identitystore",
                        "eventbridge" => "events",
                        "ssoadmin" => "sso",
                        "s3" => "s3",
                        other => panic!("{}: IAM prefix of aws_sdk_{other}? add it here", src.path),
                    };
                    service.insert(name, prefix);
                }
            }
            for at in words(&src.code, "const") {
                let decl = &src.code[at..at + src.code[at..].find(';').unwrap_or(0)];
                if decl.contains("&str") {
                    let name = ident_at(&src.code, skip_ws(&src.code, at + 5)).to_owned();
                    if let Some(value) = src.literals(at..at + decl.len()).first() {
                        consts.insert(name, (*value).to_owned());
                    }
                }
            }
        }
        // `use path::NAME as ALIAS;` of a constant: the alias names the same value.
        for src in &files {
            for at in words(&src.code, "use") {
                let path = src.code[at + 3..].split(';').next().unwrap_or_default().trim();
                if let Some((original, alias)) = path.split_once(" as ")
                    && let Some(value) = consts.get(last_segment(original).as_str()).cloned()
                {
                    consts.insert(alias.trim().to_owned(), value);
                }
            }
        }
        Adapters { files, fns, ports, service, consts }
    }

    /// Every function body `method` runs, following calls within the adapters.
    fn closure(&self, file: usize, method: &FnItem) -> Vec<(usize, Range<usize>)> {
        let mut seen: BTreeSet<(usize, usize)> = BTreeSet::new();
        let mut todo = vec![(file, method.body.clone())];
        let mut out = Vec::new();
        while let Some((f, body)) = todo.pop() {
            if !seen.insert((f, body.start)) {
                continue;
            }
            for name in calls(&self.files[f].code, body.clone()) {
                for (g, item) in self.fns.iter().filter(|(_, i)| i.name == name) {
                    todo.push((*g, item.body.clone()));
                }
            }
            out.push((f, body));
        }
        out
    }

    /// The IAM actions and resources `method` of the adapter `ty` needs.
    fn needs(&self, ty: &str, file: usize, method: &FnItem) -> BTreeSet<(String, String)> {
        let prefix = *self.service.get(ty).unwrap_or_else(|| panic!("{ty}: no SDK client found for it"));
        let bodies = self.closure(file, method);
        let mut out = BTreeSet::new();
        for (f, body) in &bodies {
            let code = &self.files[*f].code;
            for at in words(code, "client").filter(|i| body.contains(i)) {
                let dot = skip_ws(code, at + 6);
                if code.as_bytes().get(dot) != Some(&b'.') {
                    continue;
                }
                let op_at = skip_ws(code, dot + 1);
                let op = ident_at(code, op_at);
                let after = skip_ws(code, op_at + op.len());
                if !code[after..].starts_with("()") && !code[after..].starts_with("( )") {
                    continue;
                }
                let chain_end = code[after..].find(".send(").map_or(body.end, |n| after + n);
                let chain = &code[after..chain_end];
                for action in iam_actions(prefix, op, &bodies, &self.files) {
                    let resource = match prefix {
                        "dynamodb" => match chain.find(".index_name(") {
                            Some(n) => format!("index/{}", self.index_name(*f, after + n)),
                            None => "table".to_owned(),
                        },
                        "events" => "bus".to_owned(),
                        // No resource type: IAM takes only "*" for them (sso:ListInstances).
                        "sso" => "*".to_owned(),
                        // The console's large exports, in the stack's export bucket.
                        "s3" if ty == "S3Exports" => "export-objects".to_owned(),
                        // The one bucket ingest-activity reads: Kiro's reports, by the event's key.
                        "s3" => "report-objects".to_owned(),
                        _ => "identity-store".to_owned(),
                    };
                    out.insert((format!("{prefix}:{action}"), resource));
                }
            }
        }
        out
    }

    fn index_name(&self, file: usize, at: usize) -> String {
        let src = &self.files[file];
        let open = at + src.code[at..].find('(').expect("index_name(");
        let arg = &src.code[open + 1..matching(src.code.as_bytes(), open)];
        match src.literals(open..open + arg.len() + 1).first() {
            Some(literal) => (*literal).to_owned(),
            None => {
                let name = arg.trim();
                self.consts.get(name).cloned().unwrap_or_else(|| panic!("{}: index name {name}?", src.path))
            }
        }
    }
}

/// IAM actions of one SDK operation. DynamoDB has no IAM action for a transaction: it needs
/// the action of each kind of item in it.
fn iam_actions(prefix: &str, op: &str, bodies: &[(usize, Range<usize>)], files: &[Source]) -> Vec<String> {
    let pascal: String = op
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect();
    let transaction_items = |kinds: &[(&str, &str)]| -> Vec<String> {
        let found: Vec<String> = kinds
            .iter()
            .filter(|(builder, _)| bodies.iter().any(|(f, r)| files[*f].code[r.clone()].contains(builder)))
            .map(|(_, action)| (*action).to_owned())
            .collect();
        assert!(!found.is_empty(), "{op}: no item builders found next to it");
        found
    };
    match (prefix, op) {
        ("dynamodb", "transact_write_items") => transaction_items(&[
            ("Put::builder", "PutItem"),
            ("Update::builder", "UpdateItem"),
            ("Delete::builder", "DeleteItem"),
            ("ConditionCheck::builder", "ConditionCheckItem"),
        ]),
        ("dynamodb", "transact_get_items") => transaction_items(&[("Get::builder", "GetItem")]),
        _ => vec![pascal],
    }
}

/// What one function's code needs: the ports it is generic over, the adapter methods it calls.
struct FunctionCode {
    /// (IAM action, resource key) pairs.
    needs: BTreeSet<(String, String)>,
    /// Environment variables read (the runtime's `AWS_*` excluded).
    env: BTreeSet<String>,
}

fn function_code(name: &str, adapters: &Adapters) -> FunctionCode {
    let own = Source::dir(&format!("functions/{name}/src"));
    let lib = own.iter().find(|s| s.path.ends_with("/lib.rs")).expect("a lib.rs");
    let main = own.iter().find(|s| s.path.ends_with("/main.rs")).expect("a main.rs");
    let handle = words(&lib.code, "handle")
        .find(|&i| lib.code[..i].trim_end().ends_with("fn"))
        .unwrap_or_else(|| panic!("{name}: no `fn handle` in lib.rs"));
    let signature = &lib.code[handle..handle + lib.code[handle..].find('{').expect("a body")];
    // The ports named in the signature, and their supertraits: a bound on a port may call the
    // methods of the ports it extends (`SeatStore: Outboxes`).
    let supertraits = port_supertraits();
    let mut named: BTreeSet<String> =
        adapters.ports.keys().filter(|port| words(signature, port).next().is_some()).cloned().collect();
    let mut todo: Vec<String> = named.iter().cloned().collect();
    while let Some(port) = todo.pop() {
        for extended in supertraits.get(&port).into_iter().flatten() {
            if adapters.ports.contains_key(extended) && named.insert(extended.clone()) {
                todo.push(extended.clone());
            }
        }
    }
    let mut needs = BTreeSet::new();
    let mut bounds = Vec::new();
    for (port, (ty, file, methods)) in &adapters.ports {
        if !named.contains(port) {
            continue;
        }
        bounds.push(port.clone());
        assert!(
            words(&main.code, ty).next().is_some(),
            "{name}: handle is generic over {port}, but main.rs never builds its adapter {ty}"
        );
        // The ports mirror the policy: a function bound by a port may do what any of its
        // methods does.
        for m in methods {
            needs.extend(adapters.needs(ty, *file, m));
        }
    }
    assert!(!bounds.is_empty(), "{name}: found no port trait in `{signature}`");

    FunctionCode { needs, env: env_read(main) }
}

/// Each port trait of `shared/src/ports.rs` with its supertraits (`trait SeatStore: Outboxes + ..`).
fn port_supertraits() -> BTreeMap<String, Vec<String>> {
    let ports = Source::read("shared/src/ports.rs");
    let code = ports.code.as_str();
    let mut out = BTreeMap::new();
    for at in words(code, "trait") {
        let name_at = skip_ws(code, at + "trait".len());
        let name = ident_at(code, name_at);
        let colon = skip_ws(code, name_at + name.len());
        if name.is_empty() || code.as_bytes().get(colon) != Some(&b':') {
            continue;
        }
        let rest = &code[colon + 1..];
        let bounds = &rest[..rest.find('{').expect("a trait body")];
        let bounds = bounds.split(" where").next().unwrap_or_default();
        let extended = bounds
            .split('+')
            .map(|b| last_segment(b.trim()))
            .filter(|b| !b.is_empty() && !b.starts_with('?'))
            .collect();
        out.insert(name.to_owned(), extended);
    }
    out
}

/// Variables `main` reads: its own literals, and those of the `kiro::config` readers it calls.
fn env_read(main: &Source) -> BTreeSet<String> {
    let config = Source::read("shared/src/config.rs");
    let readers = fn_items(&config.code, 0..config.code.len());
    let is_var = |s: &&str| s.len() > 2 && s.bytes().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_');
    let mut out: BTreeSet<String> =
        main.literals(0..main.code.len()).into_iter().filter(is_var).map(str::to_owned).collect();
    let mut todo: Vec<String> = calls(&main.code, 0..main.code.len()).into_iter().collect();
    let mut seen = BTreeSet::new();
    while let Some(name) = todo.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        for f in readers.iter().filter(|f| f.name == name) {
            out.extend(config.literals(f.body.clone()).into_iter().filter(is_var).map(str::to_owned));
            todo.extend(calls(&config.code, f.body.clone()));
        }
    }
    out.retain(|v| !v.starts_with("AWS_"));
    out
}

// ------------------------------------------------------------------------------------------------
// The template.

/// An intrinsic function in short (`!GetAtt x`) or long (`{"Fn::GetAtt": x}`) form.
fn intrinsic(v: &Value) -> Option<(String, &Value)> {
    match v {
        Value::Tagged(t) => Some((t.tag.to_string().trim_start_matches('!').to_owned(), &t.value)),
        Value::Mapping(m) if m.len() == 1 => {
            let (k, v) = m.iter().next()?;
            let k = k.as_str()?;
            (k == "Ref" || k.starts_with("Fn::")).then(|| (k.trim_start_matches("Fn::").to_owned(), v))
        }
        _ => None,
    }
}

fn ref_of(v: &Value) -> Option<&str> {
    match intrinsic(v)? {
        (name, target) if name == "Ref" => target.as_str(),
        _ => None,
    }
}

/// `!GetAtt X.Arn` / `!GetAtt [X, Arn]` → (X, Arn).
fn get_att(v: &Value) -> Option<(String, String)> {
    let (name, arg) = intrinsic(v)?;
    if name != "GetAtt" {
        return None;
    }
    match arg {
        Value::String(s) => s.split_once('.').map(|(a, b)| (a.to_owned(), b.to_owned())),
        Value::Sequence(s) if s.len() == 2 => Some((s[0].as_str()?.to_owned(), s[1].as_str()?.to_owned())),
        _ => None,
    }
}

fn sub_of(v: &Value) -> Option<&str> {
    match intrinsic(v)? {
        (name, Value::String(s)) if name == "Sub" => Some(s),
        _ => None,
    }
}

/// `!Sub [template, {Name: value, ..}]` → (template, variables).
fn sub_with_vars(v: &Value) -> Option<(&str, &serde_yaml::Mapping)> {
    match intrinsic(v)? {
        (name, Value::Sequence(s)) if name == "Sub" && s.len() == 2 => Some((s[0].as_str()?, s[1].as_mapping()?)),
        _ => None,
    }
}

fn list(v: &Value) -> Vec<&Value> {
    match v {
        Value::Sequence(s) => s.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

fn strs(v: &Value) -> BTreeSet<String> {
    list(v).into_iter().map(|s| s.as_str().unwrap_or_else(|| panic!("a string, not {s:?}")).to_owned()).collect()
}

struct Template {
    root: Value,
}

impl Template {
    fn load() -> Template {
        Template { root: template::load() }
    }

    fn resources(&self) -> &serde_yaml::Mapping {
        self.root["Resources"].as_mapping().expect("Resources")
    }

    fn resource(&self, id: &str) -> &Value {
        let r = &self.root["Resources"][id];
        assert!(!r.is_null(), "template: no resource {id}");
        r
    }

    fn of_type(&self, ty: &str) -> Vec<(String, &Value)> {
        self.resources()
            .iter()
            .filter(|(_, r)| r["Type"] == ty)
            .map(|(k, r)| (k.as_str().expect("a logical id").to_owned(), r))
            .collect()
    }

    /// Logical id of the function whose binary is `binary`.
    fn function_id(&self, binary: &str) -> String {
        let found: Vec<String> = self
            .of_type("AWS::Serverless::Function")
            .into_iter()
            .filter(|(_, f)| f["Metadata"]["BuildProperties"]["Binary"] == binary)
            .map(|(id, _)| id)
            .collect();
        assert_eq!(found.len(), 1, "template: exactly one function builds binary {binary}, found {found:?}");
        found[0].clone()
    }

    fn function(&self, binary: &str) -> &Value {
        self.resource(&self.function_id(binary))
    }

    /// A function property, or the Globals default.
    fn function_prop(&self, binary: &str, prop: &str) -> &Value {
        let own = &self.function(binary)["Properties"][prop];
        if own.is_null() { &self.root["Globals"]["Function"][prop] } else { own }
    }

    /// The environment of a function: Globals merged with its own.
    fn env(&self, binary: &str) -> BTreeMap<String, Value> {
        let mut vars = BTreeMap::new();
        for source in [&self.root["Globals"]["Function"], &self.function(binary)["Properties"]] {
            if let Some(m) = source["Environment"]["Variables"].as_mapping() {
                for (k, v) in m {
                    vars.insert(k.as_str().expect("a variable name").to_owned(), v.clone());
                }
            }
        }
        vars
    }

    /// Logical id of the table the functions use: `TABLE_NAME`'s `!Ref`.
    fn table_id(&self) -> String {
        let env = self.env("assign-tier");
        let table = ref_of(&env["TABLE_NAME"]).expect("TABLE_NAME is a !Ref of the table").to_owned();
        assert_eq!(self.resource(&table)["Type"], "AWS::DynamoDB::Table", "TABLE_NAME names a table");
        table
    }

    /// Logical id of the bus named by `EVENT_BUS_NAME`.
    fn bus_id(&self) -> String {
        let env = self.env("assign-tier");
        let bus_name = env["EVENT_BUS_NAME"].clone();
        let buses: Vec<String> = self
            .of_type("AWS::Events::EventBus")
            .into_iter()
            .filter(|(_, b)| b["Properties"]["Name"] == bus_name)
            .map(|(id, _)| id)
            .collect();
        assert_eq!(buses.len(), 1, "one AWS::Events::EventBus is named like EVENT_BUS_NAME ({bus_name:?})");
        buses[0].clone()
    }

    /// The report bucket the stack creates and the condition it is created on: no
    /// `ActivityReportBucket` given.
    fn report_bucket(&self) -> (String, String) {
        // Kiro's report bucket, and the console's export bucket (checked on its own).
        let mut buckets = self.of_type("AWS::S3::Bucket");
        buckets.retain(|(id, _)| id.as_str() != "ConsoleExportBucket");
        assert_eq!(buckets.len(), 1, "one bucket, Kiro's report bucket: {buckets:?}");
        let (id, bucket) = &buckets[0];
        let condition = bucket["Condition"].as_str().expect("the bucket is created on a condition").to_owned();
        let (function, args) =
            intrinsic(&self.root["Conditions"][condition.as_str()]).expect("the condition is an intrinsic");
        let args = list(args);
        assert_eq!(function, "Equals", "{condition}");
        assert_eq!(args.len(), 2, "{condition}");
        assert_eq!(ref_of(args[0]), Some(REPORT_BUCKET_PARAM), "{condition}: no {REPORT_BUCKET_PARAM} given");
        assert_eq!(args[1], "", "{condition}: no {REPORT_BUCKET_PARAM} given");
        (id.clone(), condition)
    }

    /// Whether `v` is the report bucket's name: the stack's bucket, or `ActivityReportBucket`.
    fn is_report_bucket_name(&self, v: &Value) -> bool {
        let (bucket, condition) = self.report_bucket();
        let Some((function, args)) = intrinsic(v) else { return false };
        let args = list(args);
        function == "If"
            && args.len() == 3
            && args[0].as_str() == Some(condition.as_str())
            && ref_of(args[1]) == Some(bucket.as_str())
            && ref_of(args[2]) == Some(REPORT_BUCKET_PARAM)
    }

    /// (action, resource key) pairs a function's policy allows.
    fn granted(&self, binary: &str) -> BTreeSet<(String, String)> {
        let (table, bus) = (self.table_id(), self.bus_id());
        let resource_key = |r: &Value| -> String {
            if r == "*" {
                return "*".into();
            }
            if let Some((s, vars)) = sub_with_vars(r) {
                let path = s.strip_prefix("arn:${AWS::Partition}:s3:::${Bucket}/");
                if path == Some(REPORT_OBJECTS) && vars.get("Bucket").is_some_and(|b| self.is_report_bucket_name(b)) {
                    return "report-objects".into();
                }
            }
            if sub_of(r) == Some("${ConsoleExportBucket.Arn}/*") {
                return "export-objects".into();
            }
            if let Some((id, attr)) = get_att(r) {
                if attr == "Arn" && id == table {
                    return "table".into();
                }
                if attr == "Arn" && id == bus {
                    return "bus".into();
                }
            }
            if let Some(s) = sub_of(r) {
                if let Some(index) = s.strip_prefix(&format!("${{{table}.Arn}}/index/")) {
                    return format!("index/{index}");
                }
                let store = "arn:${AWS::Partition}:identitystore::${AWS::AccountId}:identitystore/*";
                if s == store {
                    return "identitystore/*".into();
                }
                if let Some(kind) = s.strip_prefix("arn:${AWS::Partition}:identitystore:::") {
                    return kind.to_owned();
                }
            }
            format!("unrecognised resource {r:?}")
        };
        let mut out = BTreeSet::new();
        for policy in list(&self.function(binary)["Properties"]["Policies"]) {
            let statements = &policy["Statement"];
            assert!(
                statements.is_sequence(),
                "{binary}: only inline statements, so that this test sees every grant: {policy:?}"
            );
            for st in list(statements) {
                assert_eq!(st["Effect"], "Allow", "{binary}: {st:?}");
                for key in ["NotAction", "NotResource"] {
                    assert!(st[key].is_null(), "{binary}: {key} grants more than it names: {st:?}");
                }
                for action in strs(&st["Action"]) {
                    assert!(!action.contains('*'), "{binary}: wildcard action {action}");
                    for r in list(&st["Resource"]) {
                        out.insert((action.clone(), resource_key(r)));
                    }
                }
            }
        }
        out
    }
}

/// The code's needs with Identity Store reads expanded to the resource types they require.
fn expand(needs: &BTreeSet<(String, String)>) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (action, resource) in needs {
        match action.strip_prefix("identitystore:") {
            Some(a) => {
                let (_, types) = IDENTITYSTORE_RESOURCES.iter().find(|(n, _)| *n == a).unwrap_or_else(|| {
                    panic!("identitystore:{a}: add its resource types (Service Authorization Reference)")
                });
                out.extend(types.iter().map(|t| (action.clone(), (*t).to_owned())));
            }
            None => {
                out.insert((action.clone(), resource.clone()));
            }
        }
    }
    out
}

fn show(set: &BTreeSet<(String, String)>) -> String {
    set.iter().map(|(a, r)| format!("\n    {a} on {r}")).collect()
}

/// The OpenAPI operations of a path item, and the method of each in a route key.
const OPENAPI_METHODS: &[(&str, &str)] = &[
    ("x-amazon-apigateway-any-method", "ANY"),
    ("get", "GET"),
    ("put", "PUT"),
    ("post", "POST"),
    ("delete", "DELETE"),
    ("patch", "PATCH"),
    ("head", "HEAD"),
    ("options", "OPTIONS"),
];

/// A route the HTTP API's OpenAPI `DefinitionBody` declares itself (the console's), next to
/// those SAM adds to the same body from the HttpApi events.
struct BodyRoute {
    /// `ANY /console/{proxy+}`.
    key: String,
    /// The operation's `security` (`NONE`, `AWS_IAM`), or the API's `DefaultAuthorizer` when it
    /// names none: SAM writes that one into every operation without `security`.
    authorization: String,
    /// The function it reaches: (logical id, binary).
    function: (String, String),
}

/// The routes of the HTTP API's `DefinitionBody`. Each is a Lambda proxy integration of payload
/// format 2.0 (what SAM writes for an HttpApi event) whose URI names the function either by
/// `${Function.Arn}` or, as the console's do, by its fixed `FunctionName`.
fn body_routes(t: &Template) -> Vec<BodyRoute> {
    let apis = t.of_type("AWS::Serverless::HttpApi");
    let (api_id, api) = apis.first().expect("an HTTP API");
    let p = &api["Properties"];
    let body = &p["DefinitionBody"];
    if body.is_null() {
        return Vec::new();
    }
    assert!(p["DefinitionUri"].is_null(), "{api_id}: a DefinitionBody or a DefinitionUri, not both");
    let version = body["openapi"].as_str().unwrap_or_else(|| panic!("{api_id}: DefinitionBody is OpenAPI 3"));
    assert!(version.starts_with("3."), "{api_id}: DefinitionBody is OpenAPI 3, not {version}");
    let default_authorizer = p["Auth"]["DefaultAuthorizer"].as_str().unwrap_or("NONE");
    let mut out = Vec::new();
    for (path, item) in body["paths"].as_mapping().into_iter().flatten() {
        let path = path.as_str().expect("a path");
        for (op, spec) in item.as_mapping().unwrap_or_else(|| panic!("{path}: a path item")) {
            let op = op.as_str().expect("an operation");
            let (_, method) = OPENAPI_METHODS
                .iter()
                .find(|(o, _)| *o == op)
                .unwrap_or_else(|| panic!("{path}: {op} is not an operation API Gateway routes"));
            let key = format!("{method} {path}");
            let integration = &spec["x-amazon-apigateway-integration"];
            assert_eq!(integration["type"], "aws_proxy", "{key}: a Lambda proxy integration");
            assert_eq!(integration["httpMethod"], "POST", "{key}: Lambda is invoked with POST");
            assert_eq!(integration["payloadFormatVersion"], "2.0", "{key}: payload format 2.0");
            let uri = sub_of(&integration["uri"]).unwrap_or_else(|| panic!("{key}: the integration uri is a !Sub"));
            let target = uri
                .strip_prefix("arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/")
                .and_then(|rest| rest.strip_suffix("/invocations"))
                .unwrap_or_else(|| panic!("{key}: uri {uri:?} is a Lambda invocation"));
            let authorization = match list(&spec["security"]).as_slice() {
                [] => default_authorizer.to_owned(),
                [requirement] => {
                    let names: Vec<&str> = requirement
                        .as_mapping()
                        .into_iter()
                        .flatten()
                        .map(|(k, _)| k.as_str().expect("a security scheme"))
                        .collect();
                    assert_eq!(names.len(), 1, "{key}: one security scheme, not {names:?}");
                    names[0].to_owned()
                }
                more => panic!("{key}: alternative security requirements {more:?}"),
            };
            out.push(BodyRoute { key, authorization, function: lambda_target(t, target) });
        }
    }
    out
}

/// The function (logical id, binary) a Lambda ARN in an integration URI names: `${Function.Arn}`,
/// or `arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:<name>` where
/// `<name>` is exactly one function's `FunctionName` (a `!Sub` or a literal).
fn lambda_target(t: &Template, target: &str) -> (String, String) {
    let fid = match target.strip_prefix("${").and_then(|r| r.strip_suffix(".Arn}")) {
        Some(fid) => fid.to_owned(),
        None => {
            let name = target
                .strip_prefix("arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:")
                .unwrap_or_else(|| panic!("{target:?} is a function of this account and Region"));
            let named: Vec<String> = t
                .of_type("AWS::Serverless::Function")
                .into_iter()
                .filter(|(_, f)| {
                    let n = &f["Properties"]["FunctionName"];
                    sub_of(n).or(n.as_str()) == Some(name)
                })
                .map(|(id, _)| id)
                .collect();
            assert_eq!(named.len(), 1, "exactly one function has the FunctionName {name:?}, found {named:?}");
            named[0].clone()
        }
    };
    let f = t.resource(&fid);
    assert_eq!(f["Type"], "AWS::Serverless::Function", "{target} is a function");
    let binary = f["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap_or_else(|| panic!("{fid}: a Binary"));
    (fid, binary.to_owned())
}

// ------------------------------------------------------------------------------------------------
// (a) Routes.

#[test]
fn every_contract_route_is_an_iam_authorized_route_of_its_function_and_there_are_no_others() {
    let t = Template::load();
    let apis = t.of_type("AWS::Serverless::HttpApi");
    assert_eq!(apis.len(), 1, "one HTTP API");
    let (api_id, api) = &apis[0];
    assert!(t.of_type("AWS::Serverless::Api").is_empty(), "no REST API next to the HTTP API");
    assert_eq!(api["Properties"]["Auth"]["DefaultAuthorizer"], "AWS_IAM");
    assert_eq!(api["Properties"]["Auth"]["EnableIamAuthorizer"], true);
    let throttling = &api["Properties"]["DefaultRouteSettings"];
    for key in ["ThrottlingBurstLimit", "ThrottlingRateLimit"] {
        assert!(throttling[key].is_u64(), "HttpApi DefaultRouteSettings.{key} is set");
    }

    let mut declared = BTreeSet::new();
    for (fid, f) in t.of_type("AWS::Serverless::Function") {
        let binary = f["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap_or(&fid).to_owned();
        for (name, event) in f["Properties"]["Events"].as_mapping().into_iter().flatten() {
            if event["Type"] != "HttpApi" {
                continue;
            }
            let p = &event["Properties"];
            assert_eq!(ref_of(&p["ApiId"]), Some(api_id.as_str()), "{fid}.{name:?} is on the HTTP API");
            let authorizer = &p["Auth"]["Authorizer"];
            assert!(authorizer.is_null() || *authorizer == "AWS_IAM", "{fid}.{name:?} keeps AWS_IAM");
            let payload = &p["PayloadFormatVersion"];
            assert!(payload.is_null() || *payload == "2.0", "{fid}.{name:?} uses payload format 2.0");
            let (method, path) = match (p["Method"].as_str(), p["Path"].as_str()) {
                (Some(method), Some(path)) => (method, path),
                (None, None) => ("ANY", DEFAULT_ROUTE),
                other => panic!("{fid}.{name:?}: Method and Path go together, or neither ($default): {other:?}"),
            };
            assert!(
                declared.insert((binary.clone(), method.to_uppercase(), path.to_owned())),
                "{method} {path} declared twice"
            );
        }
    }
    // Routes the API's DefinitionBody declares itself: the console's, which an HttpApi event
    // cannot declare (the API would depend on the function, whose client id depends on the
    // API). Only the contract's console routes go without API Gateway authorization.
    for route in body_routes(&t) {
        let (method, path) = route.key.split_once(' ').expect("METHOD /path");
        let binary = route.function.1;
        let expected = if UNAUTHORIZED_FUNCTIONS.contains(&binary.as_str()) { "NONE" } else { "AWS_IAM" };
        assert_eq!(route.authorization, expected, "{} of {binary}", route.key);
        assert!(declared.insert((binary, method.to_owned(), path.to_owned())), "{} declared twice", route.key);
    }
    // And none outside the body: API Gateway re-imports the body whenever it changes, and routes
    // or integrations declared as resources "may be deleted on stack update"
    // (aws/serverless-application-model#1971).
    for ty in ["AWS::ApiGatewayV2::Route", "AWS::ApiGatewayV2::Integration"] {
        let outside: Vec<String> = t.of_type(ty).into_iter().map(|(id, _)| id).collect();
        assert!(outside.is_empty(), "{ty} resources outside the API's body: {outside:?}");
    }
    let contract: BTreeSet<(String, String, String)> =
        ROUTES.iter().map(|(f, m, p)| ((*f).to_owned(), (*m).to_owned(), (*p).to_owned())).collect();
    let missing: Vec<_> = contract.difference(&declared).collect();
    let extra: Vec<_> = declared.difference(&contract).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "routes missing from the template: {missing:?}; not in the contract: {extra:?}"
    );
}

/// The console's sign-in, as the contract's "Console" asks of production: its routes have no API
/// Gateway authorizer and reach only the console; its issuer is a Cognito user pool that nobody
/// joins by themselves, federated with IAM Identity Center over SAML; its client is public
/// (PKCE, no secret), does the authorization code flow only, and gives users no way to write the
/// claim that names them.
#[test]
fn the_console_signs_in_through_a_cognito_pool_nobody_joins_or_renames_themselves_in() {
    let t = Template::load();
    let console = t.function_id("console");
    let env = t.env("console");
    let params = &t.root["Parameters"];
    let api = t.of_type("AWS::Serverless::HttpApi")[0].0.clone();
    let base = format!("https://${{{api}}}.execute-api.${{AWS::Region}}.${{AWS::URLSuffix}}");
    assert_eq!(sub_of(&env["CONSOLE_BASE_URL"]), Some(base.as_str()), "CONSOLE_BASE_URL is the API's origin");

    // Its routes (in the API's body, reaching it by its FunctionName), and who may invoke it:
    // API Gateway, for this API's /console paths.
    let keys: BTreeSet<String> = body_routes(&t)
        .into_iter()
        .filter(|r| r.function.0 == console)
        .map(|r| {
            assert_eq!(r.authorization, "NONE", "{}: the console signs its users in itself", r.key);
            r.key
        })
        .collect();
    assert_eq!(keys, BTreeSet::from(["ANY /console".to_owned(), "ANY /console/{proxy+}".to_owned()]));
    let permissions: Vec<_> = t
        .of_type("AWS::Lambda::Permission")
        .into_iter()
        .filter(|(_, p)| ref_of(&p["Properties"]["FunctionName"]) == Some(console.as_str()))
        .collect();
    assert_eq!(permissions.len(), 1, "one permission to invoke the console");
    let p = &permissions[0].1["Properties"];
    assert_eq!(
        (&p["Action"], &p["Principal"]),
        (&Value::from("lambda:InvokeFunction"), &Value::from("apigateway.amazonaws.com"))
    );
    let source = sub_of(&p["SourceArn"]).expect("SourceArn is a !Sub");
    let api_arn = format!("arn:${{AWS::Partition}}:execute-api:${{AWS::Region}}:${{AWS::AccountId}}:${{{api}}}/");
    assert!(source.starts_with(&api_arn) && source.ends_with("/console*"), "{source}: this API's /console paths");

    // The issuer: a user pool nobody signs up to.
    let issuer = sub_of(&env["CONSOLE_OIDC_ISSUER"]).expect("CONSOLE_OIDC_ISSUER is a !Sub");
    let pool_id = issuer
        .strip_prefix("https://cognito-idp.${AWS::Region}.amazonaws.com/${")
        .and_then(|rest| rest.strip_suffix('}'))
        .unwrap_or_else(|| panic!("CONSOLE_OIDC_ISSUER {issuer:?} is a user pool's issuer"));
    let pool = t.resource(pool_id);
    assert_eq!(pool["Type"], "AWS::Cognito::UserPool");
    assert_eq!(pool["Properties"]["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"], true, "no self sign-up");
    assert_eq!(pool["Properties"]["DeletionProtection"], "ACTIVE");

    // Its SAML identity provider: Identity Center, the only way in once it exists.
    let providers = t.of_type("AWS::Cognito::UserPoolIdentityProvider");
    assert_eq!(providers.len(), 1, "one identity provider");
    let (provider_id, provider) = &providers[0];
    assert_eq!(provider["Properties"]["ProviderType"], "SAML");
    assert_eq!(ref_of(&provider["Properties"]["UserPoolId"]), Some(pool_id));
    let metadata = ref_of(&provider["Properties"]["ProviderDetails"]["MetadataURL"]).expect("a parameter");
    assert_eq!(metadata, "IdentityCenterSamlMetadataUrl");
    let mapped: BTreeSet<String> = provider["Properties"]["AttributeMapping"]
        .as_mapping()
        .expect("an AttributeMapping")
        .keys()
        .map(|k| k.as_str().expect("a user pool attribute").to_owned())
        .collect();

    // The client: public, code flow only.
    let client_id = ref_of(&env["CONSOLE_OIDC_CLIENT_ID"]).expect("CONSOLE_OIDC_CLIENT_ID is a !Ref");
    let client = t.resource(client_id);
    assert_eq!(client["Type"], "AWS::Cognito::UserPoolClient");
    let c = &client["Properties"];
    assert_eq!(ref_of(&c["UserPoolId"]), Some(pool_id));
    assert_eq!(c["GenerateSecret"], false, "a public client: PKCE, no secret");
    assert_eq!(c["AllowedOAuthFlowsUserPoolClient"], true);
    assert_eq!(strs(&c["AllowedOAuthFlows"]), BTreeSet::from(["code".to_owned()]), "the authorization code flow only");
    let scopes = strs(&c["AllowedOAuthScopes"]);
    assert_eq!(scopes, BTreeSet::from(["openid", "email", "profile"].map(str::to_owned)), "the contract's scopes");
    assert_eq!(c["PreventUserExistenceErrors"], "ENABLED");
    let callback = format!("{base}/console/auth/callback");
    assert_eq!(list(&c["CallbackURLs"]).into_iter().map(sub_of).collect::<Vec<_>>(), [Some(callback.as_str())]);
    let logout = format!("{base}/console");
    assert_eq!(list(&c["LogoutURLs"]).into_iter().map(sub_of).collect::<Vec<_>>(), [Some(logout.as_str())]);
    // Identity Center once its metadata URL is given; until then Cognito's own directory, where
    // nobody exists (no self sign-up) and nobody can sign in.
    let (function, args) = intrinsic(&c["SupportedIdentityProviders"]).expect("an !If on the provider's condition");
    let args = list(args);
    assert_eq!((function.as_str(), args.len()), ("If", 3));
    assert_eq!(args[0].as_str(), provider["Condition"].as_str(), "the provider's condition");
    assert_eq!(list(args[1]).into_iter().map(ref_of).collect::<Vec<_>>(), [Some(provider_id.as_str())]);
    assert_eq!(strs(args[2]), BTreeSet::from(["COGNITO".to_owned()]));

    // The claim naming the user comes from Identity Center, and users cannot write it.
    // Cognito writes every mapped attribute at each federated sign-in, and requires the client
    // to have write access to them (UserPoolClient WriteAttributes: "If your app client does
    // not have write access to a mapped attribute, Amazon Cognito throws an error"), so the
    // client may write exactly the mapped attributes; what it must not do is issue a token that
    // lets a user write them: no aws.cognito.signin.user.admin scope (UpdateUserAttributes needs
    // it) and no sign-in flow but the federated code flow (refresh only).
    let claim_param = ref_of(&env["CONSOLE_USER_CLAIM"]).expect("CONSOLE_USER_CLAIM is a parameter");
    let claim = params[claim_param]["Default"].as_str().expect("a default claim").to_owned();
    assert!(mapped.contains(&claim), "the claim {claim} comes from Identity Center (mapped: {mapped:?})");
    assert!(strs(&c["ReadAttributes"]).contains(&claim), "the ID token carries {claim}");
    assert_eq!(strs(&c["WriteAttributes"]), mapped, "the client writes the mapped attributes and nothing else");
    assert!(!scopes.contains("aws.cognito.signin.user.admin"), "no token may call UpdateUserAttributes");
    assert_eq!(strs(&c["ExplicitAuthFlows"]), BTreeSet::from(["ALLOW_REFRESH_TOKEN_AUTH".to_owned()]));

    // What the admin copies into Identity Center, and the console's address.
    let outputs = &t.root["Outputs"];
    let domain = t.of_type("AWS::Cognito::UserPoolDomain");
    assert_eq!(domain.len(), 1, "one sign-in domain");
    assert_eq!(ref_of(&domain[0].1["Properties"]["UserPoolId"]), Some(pool_id));
    let acs = format!("https://${{{}}}.auth.${{AWS::Region}}.amazoncognito.com/saml2/idpresponse", domain[0].0);
    let expected = [
        ("ConsoleUrl", logout),
        ("ConsoleSamlAcsUrl", acs),
        ("ConsoleSamlAudience", format!("urn:amazon:cognito:sp:${{{pool_id}}}")),
        ("ConsoleOidcIssuer", issuer.to_owned()),
    ];
    for (name, value) in expected {
        assert_eq!(sub_of(&outputs[name]["Value"]), Some(value.as_str()), "output {name}");
    }
}

/// Each function's route table (data it exports, the table its router matches on) is the
/// contract's routes for it, key for key.
#[test]
fn each_function_routes_exactly_the_contract_routes_it_answers() {
    let tables: [(&str, Vec<&str>); 2] = [
        ("create-profile", create_profile::ROUTES.iter().map(|(k, _)| *k).collect()),
        ("assign-tier", assign_tier::ROUTES.iter().map(|(k, _)| *k).collect()),
    ];
    for (binary, keys) in tables {
        let code: BTreeSet<String> = keys.iter().map(|k| (*k).to_owned()).collect();
        assert_eq!(code.len(), keys.len(), "{binary}: a route key twice in its table");
        let contract: BTreeSet<String> = ROUTES
            .iter()
            .filter(|(f, _, p)| *f == binary && *p != DEFAULT_ROUTE)
            .map(|(_, m, p)| format!("{m} {p}"))
            .collect();
        assert_eq!(code, contract, "{binary}: its route table (left) against the contract's routes (right)");
    }
}

/// The path parameters API Gateway sends for `method path` on the route `key`: those of
/// `kiro::http::match_route`, which knows neither `ANY` nor greedy variables. `ANY` takes any
/// method; a final `{name+}` takes the rest of the path, one segment or more, each segment
/// percent-decoded as `match_route` decodes them.
fn gateway_params(key: &str, method: &str, path: &str) -> Option<BTreeMap<String, String>> {
    let (route_method, template) = key.split_once(' ')?;
    let route_method = if route_method == "ANY" { method } else { route_method };
    let (prefix, last) = template.rsplit_once('/')?;
    let Some(greedy) = last.strip_prefix('{').and_then(|l| l.strip_suffix("+}")) else {
        return kiro::http::match_route(&format!("{route_method} {template}"), method, path).map(|p| p.into_map());
    };
    let fixed = prefix.split('/').filter(|s| !s.is_empty()).count();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if segments.len() <= fixed {
        return None;
    }
    let (head, rest) = segments.split_at(fixed);
    let mut params =
        kiro::http::match_route(&format!("{route_method} {prefix}"), method, &format!("/{}", head.join("/")))?
            .into_map();
    let vars: Vec<String> = (0..rest.len()).map(|i| format!("{{s{i}}}")).collect();
    let decoded =
        kiro::http::match_route(&format!("{method} /{}", vars.join("/")), method, &format!("/{}", rest.join("/")))?
            .into_map();
    let rest: Vec<&str> = (0..rest.len()).map(|i| decoded[&format!("s{i}")].as_str()).collect();
    params.insert(greedy.to_owned(), rest.join("/"));
    Some(params)
}

#[test]
fn greedy_and_any_routes_match_as_api_gateway_matches_them() {
    let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    };
    assert_eq!(gateway_params("ANY /console", "GET", "/console"), Some(map(&[])));
    assert_eq!(gateway_params("ANY /console", "POST", "/console/x"), None);
    let proxy = "ANY /console/{proxy+}";
    assert_eq!(gateway_params(proxy, "POST", "/console/subscriptions"), Some(map(&[("proxy", "subscriptions")])));
    assert_eq!(gateway_params(proxy, "GET", "/console/users/u%201/x"), Some(map(&[("proxy", "users/u 1/x")])));
    assert_eq!(gateway_params(proxy, "GET", "/console"), None, "a greedy variable takes one segment or more");
    assert_eq!(gateway_params(proxy, "GET", "/other/x"), None);
    assert_eq!(gateway_params("GET /seats/{userId}", "GET", "/seats/u-1"), Some(map(&[("userId", "u-1")])));
    assert_eq!(gateway_params("GET /seats/{userId}", "PUT", "/seats/u-1"), None);
}

#[test]
fn every_http_fixture_is_a_declared_route() {
    let dir = repo_root().join("events/http");
    let routes: BTreeSet<String> = ROUTES.iter().map(|(_, m, p)| format!("{m} {p}")).collect();
    for entry in std::fs::read_dir(&dir).expect("events/http") {
        let path = entry.expect("an entry").path();
        let raw: Json = serde_json::from_str(&std::fs::read_to_string(&path).expect("readable")).expect("JSON");
        let key = raw["routeKey"].as_str().unwrap_or_default();
        assert!(routes.contains(key), "{}: routeKey {key:?} is not a route", path.display());
        // Its pathParameters are what API Gateway would send for its rawPath on that route.
        let (method, raw_path) = (raw["requestContext"]["http"]["method"].as_str(), raw["rawPath"].as_str());
        let params = gateway_params(key, method.unwrap_or_default(), raw_path.unwrap_or_default())
            .unwrap_or_else(|| panic!("{}: rawPath does not match its routeKey {key}", path.display()));
        let sent: BTreeMap<String, String> = serde_json::from_value(raw["pathParameters"].clone()).unwrap_or_default();
        assert_eq!(sent, params, "{}: pathParameters", path.display());
        assert_eq!(raw["version"], "2.0", "{}", path.display());
    }
}

// ------------------------------------------------------------------------------------------------
// (b) Environment.

#[test]
fn every_variable_the_code_reads_is_set_on_its_function_and_nothing_else_is() {
    let t = Template::load();
    let adapters = Adapters::load();
    for binary in FUNCTIONS {
        assert!(CONTRACT_ENV.iter().any(|(b, _)| *b == binary), "{binary}: its contract variables in CONTRACT_ENV");
    }
    for (binary, contract) in CONTRACT_ENV {
        let set: BTreeSet<String> = t.env(binary).into_keys().collect();
        if !SCANNED.contains(binary) {
            // Not scanned yet (see SCANNED): the template sets at least what the contract says.
            let missing: Vec<_> = contract.iter().filter(|v| !set.contains(**v)).collect();
            assert!(missing.is_empty(), "{binary}: the template does not set {missing:?}");
            continue;
        }
        let read = function_code(binary, &adapters).env;
        for v in *contract {
            assert!(read.contains(*v), "{binary}: the scan of main.rs/config.rs did not find {v} (found {read:?})");
        }
        assert_eq!(set, read, "{binary}: variables set in the template (left) against those its code reads (right)");
    }

    // And each is bound to what the contract says it means.
    let params = &t.root["Parameters"];
    let env = t.env("create-profile");
    assert_eq!(
        ref_of(&env["SUPPORTED_REGIONS"]).map(|p| &params[p]["Default"]),
        Some(&Value::from("us-east-1,eu-central-1"))
    );
    let env = t.env("sync-group");
    let limit = ref_of(&env["AUDIT_REVOKE_LIMIT_PERCENT"]).expect("a parameter");
    assert_eq!(params[limit]["Default"], 25);
    assert_eq!((params[limit]["MinValue"].as_u64(), params[limit]["MaxValue"].as_u64()), (Some(0), Some(100)));
    t.table_id();
    t.bus_id();
    let schedule = &t.function("sync-group")["Properties"]["Events"]["ScheduledAudit"]["Properties"]["Schedule"];
    assert!(ref_of(schedule).is_some_and(|p| !params[p].is_null()), "the audit schedule is a parameter");

    // Pricing and the console's settings: parameters with the contract's defaults, the same
    // parameter wherever a variable is set.
    let defaults = [
        ("TIER_PRICES_USD", "PRO=20,PRO_PLUS=40,POWER=200"),
        ("TIER_CREDITS", "PRO=1000,PRO_PLUS=2000,POWER=10000"),
        ("OVERAGE_PRICE_USD", "0.04"),
        ("CONSOLE_USER_CLAIM", "email"),
        ("CONSOLE_ADMIN_GROUP", "KiroAdmins"),
        ("CONSOLE_VIEWER_GROUP", "KiroViewers"),
    ];
    for (var, default) in defaults {
        let bound: BTreeSet<String> = FUNCTIONS
            .iter()
            .filter_map(|b| {
                let v = t.env(b).get(var)?.clone();
                Some(ref_of(&v).unwrap_or_else(|| panic!("{b}: {var} is a parameter")).to_owned())
            })
            .collect();
        assert_eq!(bound.len(), 1, "{var}: one parameter, {bound:?}");
        let param = bound.into_iter().next().expect("one");
        assert_eq!(params[&param]["Default"], default, "{var}: parameter {param}'s default");
    }
}

// ------------------------------------------------------------------------------------------------
// (c) Permissions.

/// A function's handler is generic over the ports it uses, and the ports are split as the
/// policies are: its policy is exactly what the adapters' methods of those ports call.
#[test]
fn each_function_may_do_exactly_what_its_ports_call() {
    let t = Template::load();
    let adapters = Adapters::load();
    let mut report = String::new();
    for binary in SCANNED {
        let needs = function_code(binary, &adapters).needs;
        assert!(!needs.is_empty(), "{binary}: the scan found no AWS call at all");
        let needs = expand(&needs);
        let granted = t.granted(binary);
        let missing: BTreeSet<_> = needs.difference(&granted).cloned().collect();
        let extra: BTreeSet<_> = granted.difference(&needs).cloned().collect();
        if !missing.is_empty() {
            report += &format!("\n{binary}: its ports call, the policy does not allow:{}", show(&missing));
        }
        if !extra.is_empty() {
            report +=
                &format!("\n{binary}: the policy allows, its ports never call (least privilege):{}", show(&extra));
        }
    }
    assert!(report.is_empty(), "{report}");
}

#[test]
fn the_scan_sees_the_calls_we_know_about() {
    // Pins the scanner itself: if these stop being found, the scan broke, not the code.
    let adapters = Adapters::load();
    let create = function_code("create-profile", &adapters).needs;
    let assign = function_code("assign-tier", &adapters).needs;
    let sync = function_code("sync-group", &adapters).needs;
    let pair = |a: &str, r: &str| (a.to_owned(), r.to_owned());
    for (a, r) in [("dynamodb:GetItem", "table"), ("dynamodb:PutItem", "table"), ("dynamodb:UpdateItem", "table")] {
        assert!(create.contains(&pair(a, r)), "create-profile: {a}");
    }
    assert!(create.iter().all(|(a, _)| a.starts_with("dynamodb:")), "create-profile only touches the table");
    for needs in [&assign, &sync] {
        for (a, r) in [
            ("dynamodb:ConditionCheckItem", "table"),
            ("dynamodb:BatchGetItem", "table"),
            ("dynamodb:Query", "index/gsi1"),
            ("events:PutEvents", "bus"),
            ("identitystore:ListGroupMemberships", "identity-store"),
        ] {
            assert!(needs.contains(&pair(a, r)), "{a} on {r}");
        }
    }
    assert!(assign.contains(&pair("identitystore:GetUserId", "identity-store")));
    assert!(sync.contains(&pair("identitystore:ListGroupMembershipsForMember", "identity-store")));
    assert!(sync.contains(&pair("dynamodb:UpdateItem", "table")), "membership map refresh");
    let console = function_code("console", &adapters).needs;
    for (a, r, why) in [
        ("dynamodb:DeleteItem", "table", "sessions (SessionStore)"),
        ("identitystore:ListGroupMembershipsForMember", "identity-store", "the role check"),
        ("sso:ListInstances", "*", "Instances"),
        ("events:PutEvents", "bus", "EventSink"),
    ] {
        assert!(console.contains(&pair(a, r)), "console: {a} on {r}, for {why}");
    }
    // SeatStore extends Outboxes: whoever writes seats may settle the outboxes it publishes.
    assert!(port_supertraits()["SeatStore"].contains(&"Outboxes".to_owned()));
    // The stream's publisher: the outboxes by id, settled; the bus. Nothing else.
    let publisher = function_code("publish-events", &adapters).needs;
    let expected: BTreeSet<(String, String)> = [
        ("dynamodb:BatchGetItem", "table"),
        ("dynamodb:DeleteItem", "table"),
        ("dynamodb:PutItem", "table"),
        ("events:PutEvents", "bus"),
    ]
    .into_iter()
    .map(|(a, r)| pair(a, r))
    .collect();
    assert_eq!(publisher, expected, "publish-events");
    if SCANNED.contains(&"ingest-activity") {
        let ingest = function_code("ingest-activity", &adapters).needs;
        for (a, r) in
            [("s3:GetObject", "report-objects"), ("dynamodb:BatchWriteItem", "table"), ("events:PutEvents", "bus")]
        {
            assert!(ingest.contains(&pair(a, r)), "ingest-activity: {a} on {r}");
        }
    }
}

// ------------------------------------------------------------------------------------------------
// The table, the functions, the events.

#[test]
fn the_table_keeps_its_data() {
    let t = Template::load();
    let table = t.resource(&t.table_id());
    assert_eq!(table["DeletionPolicy"], "Retain");
    assert_eq!(table["UpdateReplacePolicy"], "Retain");
    let p = &table["Properties"];
    assert_eq!(p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"], true);
    assert_eq!(p["DeletionProtectionEnabled"], true);
    assert_eq!(p["TimeToLiveSpecification"]["Enabled"], true);
    let ttl = p["TimeToLiveSpecification"]["AttributeName"].as_str().expect("a TTL attribute");
    let written = Source::dir("shared/src/aws").iter().any(|s| s.literals(0..s.code.len()).contains(&ttl));
    assert!(written, "the code never writes the TTL attribute {ttl}");
    let adapters = Adapters::load();
    let indexes: BTreeSet<String> = list(&p["GlobalSecondaryIndexes"])
        .into_iter()
        .map(|g| g["IndexName"].as_str().expect("IndexName").to_owned())
        .collect();
    for binary in SCANNED {
        for (_, r) in function_code(binary, &adapters).needs {
            if let Some(index) = r.strip_prefix("index/") {
                assert!(indexes.contains(index), "{binary} queries index {index}, which the table does not declare");
            }
        }
    }
}

#[test]
fn the_functions_are_arm64_cargo_lambda_builds_of_their_binaries() {
    let t = Template::load();
    assert_eq!(t.of_type("AWS::Serverless::Function").len(), FUNCTIONS.len());
    for binary in FUNCTIONS {
        let f = t.function(binary);
        assert_eq!(f["Metadata"]["BuildMethod"], "rust-cargolambda", "{binary}");
        assert_eq!(t.function_prop(binary, "Runtime"), "provided.al2023", "{binary}");
        assert_eq!(t.function_prop(binary, "Handler"), "bootstrap", "{binary}");
        assert_eq!(t.function_prop(binary, "Architectures"), &Value::from(vec!["arm64"]), "{binary}");
        // cargo-lambda builds from the workspace root, where Cargo.toml lists the members.
        assert_eq!(t.function_prop(binary, "CodeUri"), ".", "{binary}");
        assert_eq!(t.function_prop(binary, "LoggingConfig")["LogFormat"], "JSON", "{binary}");
        let manifest = std::fs::read_to_string(repo_root().join(format!("functions/{binary}/Cargo.toml")))
            .unwrap_or_else(|e| panic!("{binary}: functions/{binary}/Cargo.toml: {e}"));
        assert!(manifest.contains(&format!("name = \"{binary}\"")), "package {binary} builds binary {binary}");
        assert!(Path::new(&repo_root().join(format!("functions/{binary}/src/main.rs"))).exists());
    }
}

#[test]
fn sync_group_hears_the_three_channels_the_schedule_and_audit_requests_with_retries_and_a_dlq() {
    let t = Template::load();
    let fid = t.function_id("sync-group");
    let f = t.function("sync-group");
    let events = f["Properties"]["Events"].as_mapping().expect("sync-group has events");
    let dlq = &f["Properties"]["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]["Destination"];
    let (dlq_id, _) = get_att(dlq).expect("failed invocations go to a queue");
    assert_eq!(t.resource(&dlq_id)["Type"], "AWS::SQS::Queue");

    let mut channels = BTreeSet::new();
    let (mut schedules, mut requests) = (0, 0);
    let mut rule_ids = BTreeSet::new();
    for (name, e) in events {
        let name = name.as_str().expect("an event name");
        let p = &e["Properties"];
        assert!(p["RetryPolicy"]["MaximumRetryAttempts"].is_u64(), "{name}: RetryPolicy");
        assert!(p["RetryPolicy"]["MaximumEventAgeInSeconds"].is_u64(), "{name}: RetryPolicy");
        assert_eq!(get_att(&p["DeadLetterConfig"]["Arn"]), Some((dlq_id.clone(), "Arn".into())), "{name}: DLQ");
        rule_ids.insert(format!("{fid}{name}"));
        match e["Type"].as_str() {
            Some("Schedule") => {
                schedules += 1;
                assert!(p["Input"].is_null(), "{name}: the function needs the Scheduled Event envelope");
                assert_ne!(p["Enabled"], false, "{name}");
            }
            Some("EventBridgeRule") if p["Pattern"]["detail-type"] == Value::from(vec![CLOUDTRAIL]) => {
                assert!(p["EventBusName"].is_null(), "{name}: CloudTrail events arrive on the default bus");
                let d = &p["Pattern"]["detail"];
                let source = strs(&d["eventSource"]);
                assert_eq!(source.len(), 1, "{name}: one channel per rule");
                let source = source.into_iter().next().expect("one");
                let (_, names) = CHANNELS
                    .iter()
                    .find(|(s, _)| *s == source)
                    .unwrap_or_else(|| panic!("{name}: {source} is not a channel of the contract"));
                let expected: BTreeSet<String> = names.iter().map(|n| (*n).to_owned()).collect();
                assert_eq!(strs(&d["eventName"]), expected, "{name}: the contract's event names");
                let no_error = serde_json::json!([{"exists": false}]);
                assert_eq!(
                    serde_json::to_value(&d["errorCode"]).expect("JSON"),
                    no_error,
                    "{name}: failed calls filtered"
                );
                assert!(channels.insert(source), "{name}: channel declared twice");
            }
            Some("EventBridgeRule") => {
                requests += 1;
                assert_eq!(ref_of(&p["EventBusName"]), Some(t.bus_id().as_str()), "{name}: on the custom bus");
                assert_eq!(strs(&p["Pattern"]["source"]), BTreeSet::from(["kiro.subscriptions".to_owned()]));
                // Every piece of deferred work the code puts on the bus comes back.
                use kiro::domain::signal::{AUDIT_REQUESTED, FAN_OUT_REQUESTED, NAMES_REQUESTED};
                let own = BTreeSet::from([AUDIT_REQUESTED, NAMES_REQUESTED, FAN_OUT_REQUESTED].map(str::to_owned));
                assert_eq!(strs(&p["Pattern"]["detail-type"]), own, "{name}: audits, seat names, fan-outs");
            }
            other => panic!("sync-group.{name}: unexpected event type {other:?}"),
        }
    }
    assert_eq!(channels.len(), CHANNELS.len(), "every channel has a rule");
    assert_eq!((schedules, requests), (1, 1), "one schedule, one Audit Requested rule");

    // EventBridge may deliver to the DLQ only from these rules, and someone hears about it.
    let policies = t.of_type("AWS::SQS::QueuePolicy");
    let policy = policies
        .iter()
        .find(|(_, p)| list(&p["Properties"]["Queues"]).iter().any(|q| ref_of(q) == Some(dlq_id.as_str())))
        .expect("a queue policy for the DLQ");
    let statement = &policy.1["Properties"]["PolicyDocument"]["Statement"][0];
    assert_eq!(statement["Principal"]["Service"], "events.amazonaws.com");
    let sources: BTreeSet<String> = list(&statement["Condition"]["ArnEquals"]["aws:SourceArn"])
        .into_iter()
        .map(|a| get_att(a).expect("a rule Arn").0)
        .collect();
    // ingest-activity's rule dead-letters to the same queue (see the report bucket's test).
    let ingest = t.function_id("ingest-activity");
    for (name, e) in t.function("ingest-activity")["Properties"]["Events"].as_mapping().into_iter().flatten() {
        if e["Type"] == "EventBridgeRule" {
            rule_ids.insert(format!("{ingest}{}", name.as_str().expect("an event name")));
        }
    }
    assert_eq!(sources, rule_ids, "the DLQ policy names exactly sync-group's and ingest-activity's rules");
    let alarmed = t.of_type("AWS::CloudWatch::Alarm").iter().any(|(_, a)| {
        list(&a["Properties"]["Dimensions"]).iter().any(|d| get_att(&d["Value"]).is_some_and(|(id, _)| id == dlq_id))
    });
    assert!(alarmed, "an alarm watches the DLQ");

    // No other function is triggered by anything but its routes.
    for binary in ["create-profile", "assign-tier"] {
        for (name, e) in t.function(binary)["Properties"]["Events"].as_mapping().into_iter().flatten() {
            assert_eq!(e["Type"], "HttpApi", "{binary}.{name:?}");
        }
    }
    // The console's routes are in the API's DefinitionBody (see the route test): no events at all.
    assert!(t.function("console")["Properties"]["Events"].is_null(), "console: no events");
}

/// The stream records of `events/dynamodb`, and whether the publisher's filter must deliver each.
const STREAM_SAMPLES: &[(&str, bool)] = &[
    ("outbox-inserted.json", true),
    ("outbox-modified.json", false),
    ("outbox-removed.json", false),
    ("seat-inserted.json", false),
];

/// Contract "Deployment shape": seat events may be published by `publish-events`, fed by the
/// table's DynamoDB stream, declared in `template.yaml` as its event source. The table streams
/// its changes; the function takes new outbox items only (its filter, tried on the samples of
/// `events/dynamodb`, agrees with what the handler reads as a new outbox), answers partial batch
/// failures, bisects a failed batch, retries a bounded number of times (a record retried for ever
/// would hold its shard), then describes the batch to a queue an alarm watches; and it touches
/// only the outbox's partition of the table.
#[test]
fn seat_events_go_out_from_the_tables_stream_through_publish_events() {
    let t = Template::load();
    let table = t.table_id();
    let view = t.resource(&table)["Properties"]["StreamSpecification"]["StreamViewType"].as_str();
    // Every view type carries the keys, all the filter and the publisher read.
    assert!(
        matches!(view, Some("KEYS_ONLY" | "NEW_IMAGE" | "NEW_AND_OLD_IMAGES")),
        "the table streams its changes: {view:?}"
    );

    let fid = t.function_id("publish-events");
    let events = t.function("publish-events")["Properties"]["Events"].as_mapping().expect("an event source");
    assert_eq!(events.len(), 1, "publish-events: one event source, the table's stream");
    let (name, e) = events.iter().next().expect("one");
    assert_eq!(e["Type"], "DynamoDB", "{name:?}");
    let p = &e["Properties"];
    assert_eq!(get_att(&p["Stream"]), Some((table.clone(), "StreamArn".to_owned())));
    assert_eq!(p["StartingPosition"], "TRIM_HORIZON", "from the oldest record the stream keeps");
    let batch = p["BatchSize"].as_u64().expect("a BatchSize");
    assert!((1..=100).contains(&batch), "one BatchGetItem reads a batch's outboxes: {batch}");
    let window = p["MaximumBatchingWindowInSeconds"].as_u64().unwrap_or(0);
    assert!(window <= 1, "events go out within about a second: {window}");
    assert_eq!(p["BisectBatchOnFunctionError"], true);
    assert_eq!(strs(&p["FunctionResponseTypes"]), BTreeSet::from(["ReportBatchItemFailures".to_owned()]));
    let retries = p["MaximumRetryAttempts"].as_i64().expect("MaximumRetryAttempts");
    assert!((0..=100).contains(&retries), "a bounded number of retries, not -1: {retries}");

    let on_failure = &p["DestinationConfig"]["OnFailure"];
    assert_eq!(on_failure["Type"], "SQS", "SAM grants SendMessage to the queue");
    let (queue, attr) = get_att(&on_failure["Destination"]).expect("a queue of the stack");
    assert_eq!((t.resource(&queue)["Type"].as_str(), attr.as_str()), (Some("AWS::SQS::Queue"), "Arn"));
    let alarmed = t.of_type("AWS::CloudWatch::Alarm").iter().any(|(_, a)| {
        let watches = list(&a["Properties"]["Dimensions"])
            .iter()
            .any(|d| get_att(&d["Value"]).is_some_and(|(id, attr)| id == queue && attr == "QueueName"));
        let tells: Vec<&str> = list(&a["Properties"]["AlarmActions"]).into_iter().filter_map(ref_of).collect();
        watches && tells == ["AlarmTopic"]
    });
    assert!(alarmed, "an alarm watches {queue} and tells the alarm topic");

    // The filter, as Lambda applies it (EventBridge's pattern syntax), on the sample records.
    let filters = list(&p["FilterCriteria"]["Filters"]);
    assert_eq!(filters.len(), 1, "{name:?}: one filter");
    let pattern: Json =
        serde_json::from_str(filters[0]["Pattern"].as_str().expect("a pattern")).expect("the pattern is JSON");
    let dir = repo_root().join("events/dynamodb");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("events/dynamodb")
        .map(|e| e.expect("an entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    files.sort();
    let listed: Vec<String> = STREAM_SAMPLES.iter().map(|(f, _)| (*f).to_owned()).collect();
    assert_eq!(files, listed, "events/dynamodb holds exactly the samples of STREAM_SAMPLES");
    for (file, delivered) in STREAM_SAMPLES {
        let text = std::fs::read_to_string(dir.join(file)).expect("a sample");
        let raw: Json = serde_json::from_str(&text).expect("JSON");
        let event: aws_lambda_events::event::dynamodb::Event = serde_json::from_str(&text).expect("a stream event");
        for (record, typed) in raw["Records"].as_array().expect("Records").iter().zip(&event.records) {
            assert_eq!(pattern_matches(&pattern, record), *delivered, "{file}: the filter");
            let read = matches!(publish_events::classify(typed), publish_events::Record::NewOutbox(_));
            assert_eq!(read, *delivered, "{file}: what the handler reads as a new outbox");
        }
    }

    // Only the outbox's partition (as create-profile only its profile's).
    let table_statements: Vec<&Value> = list(&t.function("publish-events")["Properties"]["Policies"][0]["Statement"])
        .into_iter()
        .filter(|s| get_att(&s["Resource"]).is_some_and(|(id, _)| id == table))
        .collect();
    assert!(!table_statements.is_empty());
    for s in table_statements {
        assert_eq!(
            strs(&s["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]),
            BTreeSet::from([publish_events::OUTBOX_PARTITIONS.to_owned()]),
            "{fid}: {s:?}"
        );
    }
}

// ------------------------------------------------------------------------------------------------
// The sample events against the rule patterns.

/// EventBridge pattern matching for the subset the template uses: nested objects, lists of
/// exact values, `exists` and `wildcard`. Anything else panics, so the matcher is extended, not
/// bypassed.
fn pattern_matches(pattern: &Json, event: &Json) -> bool {
    let pattern = pattern.as_object().expect("a pattern is an object");
    pattern.iter().all(|(key, p)| {
        let value = event.get(key);
        // A list in the event matches when one of its elements does.
        let strings: Vec<&str> = match value {
            Some(Json::Array(values)) => values.iter().filter_map(Json::as_str).collect(),
            Some(v) => v.as_str().into_iter().collect(),
            None => Vec::new(),
        };
        match p {
            Json::Object(_) => value.is_some_and(|v| v.is_object() && pattern_matches(p, v)),
            Json::Array(alternatives) => alternatives.iter().any(|alt| match alt {
                Json::Object(op) => match (op.len(), op.get("exists"), op.get("wildcard"), op.get("prefix")) {
                    (1, Some(Json::Bool(exists)), _, _) => value.is_some() == *exists,
                    (1, _, Some(Json::String(w)), _) => strings.iter().any(|s| wildcard_matches(w, s)),
                    (1, _, _, Some(Json::String(p))) => strings.iter().any(|s| s.starts_with(p.as_str())),
                    _ => panic!("pattern operator {alt} is not supported by this matcher: extend it"),
                },
                exact => match value {
                    Some(Json::Array(values)) => values.contains(exact),
                    Some(v) => v == exact,
                    None => false,
                },
            }),
            other => panic!("pattern value {other} for {key}: EventBridge wants a list or an object"),
        }
    })
}

/// EventBridge's `wildcard` (as Event Ruler reads it): `*` stands for any run of characters,
/// none and `/` included; every other character for itself. Escapes (`\*`) and consecutive
/// wildcards (which EventBridge refuses) are not supported: extend this if a pattern needs them.
/// IAM reads `*` in a resource ARN the same way.
fn wildcard_matches(pattern: &str, value: &str) -> bool {
    assert!(!pattern.contains('\\') && !pattern.contains("**"), "wildcard {pattern:?}: extend the matcher");
    let parts: Vec<&str> = pattern.split('*').collect();
    let [first, middle @ .., last] = parts.as_slice() else { return pattern == value };
    if value.len() < first.len() + last.len() || !value.starts_with(first) || !value.ends_with(last) {
        return false;
    }
    // Leftmost match of each fixed part, in order, between the first and the last.
    let mut rest = &value[first.len()..value.len() - last.len()];
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

#[test]
fn the_pattern_matcher_follows_eventbridge() {
    let p = serde_json::json!({"detail": {"a": ["x", "y"], "e": [{"exists": false}]}});
    assert!(pattern_matches(&p, &serde_json::json!({"detail": {"a": "y"}})));
    assert!(pattern_matches(&p, &serde_json::json!({"detail": {"a": ["z", "x"]}})));
    assert!(!pattern_matches(&p, &serde_json::json!({"detail": {"a": "y", "e": "Boom"}})));
    assert!(!pattern_matches(&p, &serde_json::json!({"detail": {"b": "x"}})));
    assert!(!pattern_matches(&p, &serde_json::json!({"detail": "x"})));

    let w = serde_json::json!({"k": [{"wildcard": "*/a/*.csv"}, {"wildcard": "a/*.csv"}]});
    assert!(pattern_matches(&w, &serde_json::json!({"k": "p/q/a/r/s.csv"})), "`*` crosses `/`");
    assert!(pattern_matches(&w, &serde_json::json!({"k": "a/s.csv"})), "the second alternative");
    assert!(pattern_matches(&w, &serde_json::json!({"k": "p/a/.csv"})), "`*` may stand for nothing");
    assert!(!pattern_matches(&w, &serde_json::json!({"k": "p/a/s.csv.gz"})));
    assert!(!pattern_matches(&w, &serde_json::json!({"k": "p/b/s.csv"})));
    assert!(!pattern_matches(&w, &serde_json::json!({"k": 3})), "wildcards match strings only");
    assert!(!pattern_matches(&w, &serde_json::json!({})));
    assert!(wildcard_matches("a*b*b", "abb") && !wildcard_matches("a*b*b", "ab"));
    assert!(wildcard_matches("x", "x") && !wildcard_matches("x", "xy"));
}

#[test]
fn each_cloudtrail_sample_matches_exactly_one_rule_and_a_failed_call_none() {
    let t = Template::load();
    let f = t.function("sync-group");
    let rules: Vec<(String, Json)> = f["Properties"]["Events"]
        .as_mapping()
        .expect("events")
        .iter()
        .filter(|(_, e)| e["Type"] == "EventBridgeRule")
        .map(|(n, e)| {
            let name = n.as_str().expect("a name").to_owned();
            (name, serde_json::to_value(&e["Properties"]["Pattern"]).expect("a JSON pattern"))
        })
        .collect();
    let dir = repo_root().join("events/cloudtrail");
    let mut files: Vec<_> =
        std::fs::read_dir(&dir).expect("events/cloudtrail").map(|e| e.expect("entry").path()).collect();
    files.sort();
    let mut used = BTreeSet::new();
    let mut heard = BTreeSet::new();
    for path in files {
        let file = path.file_name().expect("a name").to_string_lossy().into_owned();
        let event: Json = serde_json::from_str(&std::fs::read_to_string(&path).expect("readable")).expect("JSON");
        let hits: Vec<&str> =
            rules.iter().filter(|(_, p)| pattern_matches(p, &event)).map(|(n, _)| n.as_str()).collect();
        used.extend(hits.iter().map(|h| (*h).to_owned()));
        match event["detail-type"].as_str() {
            Some(CLOUDTRAIL) if event["detail"].get("errorCode").is_some() => {
                assert!(hits.is_empty(), "{file}: a failed call must match no rule, matched {hits:?}");
            }
            Some(CLOUDTRAIL) => {
                assert_eq!(hits.len(), 1, "{file}: matched {hits:?}");
                let d = &event["detail"];
                heard.insert((
                    d["eventSource"].as_str().unwrap_or_default().to_owned(),
                    d["eventName"].as_str().unwrap_or_default().to_owned(),
                ));
            }
            Some("Audit Requested" | "Seat Names Requested" | "Fan-out Requested") => {
                assert_eq!(hits, ["AuditRequested"], "{file}")
            }
            // Delivered by the Schedule event, which has no pattern.
            Some("Scheduled Event") => assert!(hits.is_empty(), "{file}: matched {hits:?}"),
            other => panic!("{file}: a sample of unknown kind {other:?}"),
        }
    }
    let unused: Vec<_> = rules.iter().map(|(n, _)| n).filter(|n| !used.contains(*n)).collect();
    assert!(unused.is_empty(), "rules no sample exercises: {unused:?}");
    let channels: BTreeSet<(String, String)> =
        CHANNELS.iter().flat_map(|(s, names)| names.iter().map(move |n| ((*s).to_owned(), (*n).to_owned()))).collect();
    let unheard: Vec<_> = channels.difference(&heard).collect();
    assert!(unheard.is_empty(), "contract events without a sample in events/cloudtrail: {unheard:?}");
}

// ------------------------------------------------------------------------------------------------
// Kiro's activity reports.

/// Contract "Activity": Kiro writes its daily user activity report into a bucket the template
/// declares (or takes as `ActivityReportBucket`), as Kiro's documentation asks of it
/// (https://kiro.dev/docs/enterprise/monitor-and-track/user-activity/): a bucket policy letting
/// Kiro (`q.amazonaws.com`) put objects under the prefix, for this account's Kiro profile in this
/// Region, and nothing more; EventBridge notifications on; a rule that hands ingest-activity the
/// `Object Created` envelopes of `.csv` files under `…/KiroLogs/user_report/` (the samples of
/// events/s3) and never the legacy `by_user_analytic` ones; and a function that may read those
/// files and no other object.
#[test]
fn kiro_writes_its_reports_to_a_bucket_whose_events_reach_ingest_activity() {
    let t = Template::load();
    let params = &t.root["Parameters"];
    let (bucket_id, condition) = t.report_bucket();
    assert_eq!(params[REPORT_BUCKET_PARAM]["Default"], "", "by default the stack creates its bucket");

    // The bucket: private, encrypted, expiring its reports after a parameter's days, telling
    // EventBridge about every object.
    let b = &t.resource(&bucket_id)["Properties"];
    for key in ["BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"] {
        assert_eq!(b["PublicAccessBlockConfiguration"][key], true, "{bucket_id}: {key}");
    }
    let encryption = &b["BucketEncryption"]["ServerSideEncryptionConfiguration"];
    assert_eq!(
        encryption[0]["ServerSideEncryptionByDefault"]["SSEAlgorithm"], "AES256",
        "S3 managed keys: a KMS key would need a key policy for Kiro and kms:Decrypt for ingest-activity"
    );
    assert_eq!(b["NotificationConfiguration"]["EventBridgeConfiguration"]["EventBridgeEnabled"], true);
    let expiring: Vec<&Value> = list(&b["LifecycleConfiguration"]["Rules"])
        .into_iter()
        .filter(|r| r["Status"] == "Enabled" && !r["ExpirationInDays"].is_null())
        .collect();
    assert_eq!(expiring.len(), 1, "one lifecycle rule expires the reports");
    let retention = ref_of(&expiring[0]["ExpirationInDays"]).expect("their days are a parameter");
    assert_eq!(params[retention]["Default"], 400, "{retention}");

    // Its policy: Kiro's one grant, PutObject under the prefix, for this account and its Kiro
    // profile (a codewhisperer ARN) in this Region.
    let policies: Vec<(String, &Value)> = t
        .of_type("AWS::S3::BucketPolicy")
        .into_iter()
        .filter(|(_, p)| ref_of(&p["Properties"]["Bucket"]) == Some(bucket_id.as_str()))
        .collect();
    assert_eq!(policies.len(), 1, "one policy on the report bucket");
    let policy = policies[0].1;
    assert_eq!(policy["Condition"].as_str(), Some(condition.as_str()), "no bucket of the stack's, no policy");
    let statements = list(&policy["Properties"]["PolicyDocument"]["Statement"]);
    let allows: Vec<&Value> = statements.iter().copied().filter(|s| s["Effect"] == "Allow").collect();
    assert_eq!(allows.len(), 1, "the policy allows one thing: Kiro's writes");
    let kiro = allows[0];
    let service: Value = serde_yaml::from_str("Service: q.amazonaws.com").expect("YAML");
    assert_eq!(kiro["Principal"], service, "Kiro's service principal");
    assert_eq!(strs(&kiro["Action"]), BTreeSet::from(["s3:PutObject".to_owned()]), "Kiro only puts objects");
    let under_prefix = format!("arn:${{AWS::Partition}}:s3:::${{{bucket_id}}}/${{{REPORT_PREFIX_PARAM}}}/*");
    assert_eq!(sub_of(&kiro["Resource"]), Some(under_prefix.as_str()), "only under the prefix");
    let prefix = params[REPORT_PREFIX_PARAM]["Default"].as_str().expect("a default prefix");
    assert!(!prefix.is_empty() && !prefix.starts_with('/') && !prefix.ends_with('/'), "{prefix:?}");
    let c = kiro["Condition"].as_mapping().expect("Kiro's grant is conditional");
    assert_eq!(c.len(), 2, "StringEquals aws:SourceAccount and ArnLike aws:SourceArn: {c:?}");
    let account = &kiro["Condition"]["StringEquals"];
    assert_eq!(account.as_mapping().map(serde_yaml::Mapping::len), Some(1));
    assert_eq!(ref_of(&account["aws:SourceAccount"]), Some("AWS::AccountId"));
    let source = &kiro["Condition"]["ArnLike"];
    assert_eq!(source.as_mapping().map(serde_yaml::Mapping::len), Some(1));
    assert_eq!(
        sub_of(&source["aws:SourceArn"]),
        Some("arn:${AWS::Partition}:codewhisperer:${AWS::Region}:${AWS::AccountId}:*"),
        "this account's Kiro profile, in this Region"
    );

    // The function: the contract's variables and nothing else, time and memory for a report of
    // 100,000 rows, failures kept in the dead-letter queue like sync-group's.
    let fid = t.function_id("ingest-activity");
    let f = &t.function("ingest-activity")["Properties"];
    let env: BTreeSet<String> = t.env("ingest-activity").into_keys().collect();
    assert_eq!(env, BTreeSet::from(["TABLE_NAME", "EVENT_BUS_NAME"].map(str::to_owned)), "no other configuration");
    let timeout = t.function_prop("ingest-activity", "Timeout").as_u64().expect("a Timeout");
    assert!((300..=900).contains(&timeout), "ingest-activity: Timeout {timeout}");
    let memory = t.function_prop("ingest-activity", "MemorySize").as_u64().expect("a MemorySize");
    assert!(memory >= 256, "ingest-activity: MemorySize {memory}");
    let dlq =
        t.function("sync-group")["Properties"]["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]["Destination"]
            .clone();
    assert_eq!(f["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]["Destination"], dlq, "on failure: the DLQ");

    // Its one trigger: the rule on the default bus, for the report bucket's objects.
    let events: Vec<(&Value, &Value)> = f["Events"].as_mapping().expect("ingest-activity has events").iter().collect();
    assert_eq!(events.len(), 1, "one trigger, the report rule");
    let (name, e) = events[0];
    let name = name.as_str().expect("an event name");
    assert_eq!(e["Type"], "EventBridgeRule", "{fid}.{name}");
    let p = &e["Properties"];
    assert!(p["EventBusName"].is_null(), "{name}: S3 events arrive on the default bus");
    assert!(p["RetryPolicy"]["MaximumRetryAttempts"].is_u64(), "{name}: RetryPolicy");
    assert!(p["RetryPolicy"]["MaximumEventAgeInSeconds"].is_u64(), "{name}: RetryPolicy");
    assert_eq!(p["DeadLetterConfig"]["Arn"], dlq, "{name}: DLQ");
    let pattern = &p["Pattern"];
    assert_eq!(strs(&pattern["source"]), BTreeSet::from(["aws.s3".to_owned()]));
    assert_eq!(strs(&pattern["detail-type"]), BTreeSet::from(["Object Created".to_owned()]));
    let named = list(&pattern["detail"]["bucket"]["name"]);
    assert!(named.len() == 1 && t.is_report_bucket_name(named[0]), "{name}: the report bucket, {named:?}");
    // The pattern as EventBridge sees it for a bucket named `bucket`.
    let resolved = |bucket: &str| -> Json {
        let mut p = pattern.clone();
        p["detail"]["bucket"]["name"] = Value::Sequence(vec![Value::from(bucket)]);
        serde_json::to_value(&p).expect("a JSON pattern")
    };

    // The samples: the rule delivers exactly those the contract says, for their bucket only.
    let dir = repo_root().join("events/s3");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("events/s3")
        .map(|e| e.expect("an entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    files.sort();
    let listed: Vec<String> = {
        let mut l: Vec<String> = S3_SAMPLES.iter().map(|(f, _)| (*f).to_owned()).collect();
        l.sort();
        l
    };
    assert_eq!(files, listed, "events/s3 holds exactly the samples of S3_SAMPLES");
    let mut delivered = Vec::new();
    for (file, expected) in S3_SAMPLES {
        let event: Json =
            serde_json::from_str(&std::fs::read_to_string(dir.join(file)).expect("readable")).expect("JSON");
        let bucket = event["detail"]["bucket"]["name"].as_str().expect("detail.bucket.name").to_owned();
        let key = event["detail"]["object"]["key"].as_str().expect("detail.object.key").to_owned();
        assert_eq!(pattern_matches(&resolved(&bucket), &event), *expected, "{file}: {key}");
        assert!(!pattern_matches(&resolved("another-bucket"), &event), "{file}: another bucket's object");
        if *expected {
            delivered.push(key);
        }
    }
    // The first one is a report Kiro wrote into the stack's bucket: under the default prefix.
    assert!(delivered[0].starts_with(&format!("{prefix}/")), "{}: Kiro may write it", delivered[0]);

    // And keys around them.
    let sample: Json =
        serde_json::from_str(&std::fs::read_to_string(dir.join(S3_SAMPLES[0].0)).expect("readable")).expect("JSON");
    let bucket = sample["detail"]["bucket"]["name"].as_str().expect("a bucket").to_owned();
    let with_key = |key: &str| {
        let mut e = sample.clone();
        e["detail"]["object"]["key"] = Json::from(key);
        e
    };
    let report = "AWSLogs/111122223333/KiroLogs/user_report/us-east-1/2026/12/01/00";
    for key in [
        format!("a/b/{report}/KIRO_PLUGIN_111122223333_user_report_20261201.csv"),
        format!("x/{report}/KIRO_CLI_111122223333_user_report_20261201_part_2.csv"),
    ] {
        assert!(pattern_matches(&resolved(&bucket), &with_key(&key)), "{key}: a report");
        delivered.push(key);
    }
    for key in [
        format!("kiro/{report}/KIRO_IDE_111122223333_user_report_20261201.csv.gz"),
        format!("kiro/{report}/"),
        "kiro/AWSLogs/111122223333/KiroLogs/by_user_analytic/us-east-1/2026/12/01/00/111122223333_by_user_analytic_20261201.csv".to_owned(),
        "kiro/AWSLogs/111122223333/QDeveloperLogs/by_user_analytic/us-east-1/2026/12/01/00/111122223333_by_user_analytic_20261201.csv".to_owned(),
        "kiro/AWSLogs/111122223333/KiroLogs/GenerateAssistantResponse/us-east-1/2026/12/01/02/log.json.gz".to_owned(),
        "kiro/KiroLogs/user_report/KIRO_IDE_user_report.csv".to_owned(),
    ] {
        assert!(!pattern_matches(&resolved(&bucket), &with_key(&key)), "{key}: not a user activity report");
    }
    let mut deleted = sample.clone();
    deleted["detail-type"] = Json::from("Object Deleted");
    assert!(!pattern_matches(&resolved(&bucket), &deleted), "Object Deleted");

    // What it may read: GetObject on the report files of that bucket (every key the rule
    // delivers), no listing, no other bucket; no other function touches S3.
    let granted = t.granted("ingest-activity");
    let s3: BTreeSet<(String, String)> = granted.iter().filter(|(a, _)| a.starts_with("s3:")).cloned().collect();
    assert_eq!(
        s3,
        BTreeSet::from([("s3:GetObject".to_owned(), "report-objects".to_owned())]),
        "ingest-activity reads the report files and nothing else of S3"
    );
    for key in &delivered {
        assert!(wildcard_matches(REPORT_OBJECTS, key), "{key}: delivered, so it must be readable");
    }
    for binary in FUNCTIONS.iter().filter(|b| **b != "ingest-activity") {
        // The console's only bucket is its export bucket (its own test).
        let reports = t.granted(binary).into_iter().any(|(a, r)| a.starts_with("s3:") && r != "export-objects");
        assert!(!reports, "{binary} touches no report bucket");
    }
    if !SCANNED.contains(&"ingest-activity") {
        // Until its code is scanned: sync-group's seat commits and events, plus BatchWriteItem.
        let mut expected: BTreeSet<(String, String)> = t
            .granted("sync-group")
            .into_iter()
            .filter(|(a, _)| a.starts_with("dynamodb:") || a.starts_with("events:"))
            .collect();
        expected.insert(("dynamodb:BatchWriteItem".to_owned(), "table".to_owned()));
        let rest: BTreeSet<(String, String)> = granted.difference(&s3).cloned().collect();
        assert_eq!(rest, expected, "ingest-activity: the table and the bus as sync-group, plus BatchWriteItem");
    }

    // What the admin enters in Kiro's settings.
    let outputs = &t.root["Outputs"];
    assert!(t.is_report_bucket_name(&outputs["ActivityReportBucketName"]["Value"]), "output ActivityReportBucketName");
    let uri = &outputs["ActivityReportS3Uri"];
    assert_eq!(uri["Condition"].as_str(), Some(condition.as_str()));
    let expected = format!("s3://${{{bucket_id}}}/${{{REPORT_PREFIX_PARAM}}}/");
    assert_eq!(sub_of(&uri["Value"]), Some(expected.as_str()), "output ActivityReportS3Uri");
}

// ------------------------------------------------------------------------------------------------
// The scanner's own rules.

#[test]
fn the_source_mask_hides_comments_and_literals_but_keeps_offsets() {
    let text = "let a = \"{ // }\"; // x { y\nlet c = '{'; /* { */ fn f<'a>(s: &'a str) { r#\"}\"# }";
    let code = mask(text);
    assert_eq!(code.len(), text.len());
    assert_eq!(code.matches('{').count(), 1, "{code}");
    assert_eq!(code.matches('}').count(), 1, "{code}");
    let fns = fn_items(&code, 0..code.len());
    assert_eq!(fns.len(), 1);
    assert_eq!(fns[0].name, "f");
    let mut with_test = b"fn a() {}\n#[cfg(test)]\nmod tests { fn b() { } }\nfn c() {}".to_vec();
    drop_test_items(&mut with_test);
    let names: Vec<String> = fn_items(std::str::from_utf8(&with_test).expect("ASCII"), 0..with_test.len())
        .into_iter()
        .map(|f| f.name)
        .collect();
    assert_eq!(names, ["a", "c"]);
}

/// The local HTTP API of `make dev` (scripts/local_stack.py) routes as API Gateway does from the
/// template's declarations, HttpApi events and the API's DefinitionBody: a declared route wins,
/// with its path parameters (a greedy one takes the rest of the path) and its authorization;
/// any other method and path reaches `$default`, answered by assign-tier with the contract's 404.
#[test]
fn the_local_gateway_routes_like_the_template_default_route_included() {
    let venv_python = repo_root().join(".venv/bin/python");
    let python = if venv_python.exists() { venv_python.display().to_string() } else { "python3".to_owned() };
    let script = r#"
import json, sys
sys.path.insert(0, "scripts")
import local_stack as ls
routes = ls.load_routes(ls.load_template(ls.DEFAULT_TEMPLATE))
out = []
for method, path in [("GET", "/users"), ("DELETE", "/profile"), ("GET", "/"), ("GET", "/seats"),
                     ("PUT", "/subscriptions/GROUP/g-1"), ("GET", "/seats/u-1/x"), ("GET", "/console"),
                     ("POST", "/console/subscriptions"), ("GET", "/console/users/u%201")]:
    route, params = ls.match_route(routes, method, path)
    out.append([method, path, route.key, route.function, params, route.authorization])
print(json.dumps(out))
"#;
    let output =
        std::process::Command::new(python).args(["-c", script]).current_dir(repo_root()).output().expect("python runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let got: Json = serde_json::from_slice(&output.stdout).expect("JSON");
    let expected = serde_json::json!([
        ["GET", "/users", "$default", "assign-tier", {}, "AWS_IAM"],
        ["DELETE", "/profile", "$default", "assign-tier", {}, "AWS_IAM"],
        ["GET", "/", "$default", "assign-tier", {}, "AWS_IAM"],
        ["GET", "/seats", "GET /seats", "assign-tier", {}, "AWS_IAM"],
        ["PUT", "/subscriptions/GROUP/g-1", "PUT /subscriptions/{principalType}/{principalId}", "assign-tier",
            {"principalType": "GROUP", "principalId": "g-1"}, "AWS_IAM"],
        ["GET", "/seats/u-1/x", "$default", "assign-tier", {}, "AWS_IAM"],
        ["GET", "/console", "ANY /console", "console", {}, "NONE"],
        ["POST", "/console/subscriptions", "ANY /console/{proxy+}", "console", {"proxy": "subscriptions"}, "NONE"],
        ["GET", "/console/users/u%201", "ANY /console/{proxy+}", "console", {"proxy": "users/u 1"}, "NONE"],
    ]);
    assert_eq!(got, expected);
}

/// Only the stack speaks as `kiro.subscriptions` on its bus: a bus policy denies `PutEvents` of
/// that source to every principal but the roles of the functions allowed to publish (their
/// policies, which `each_function_may_do_exactly_what_its_ports_call` holds to what their ports
/// call), so nobody else can request a forced repair, forge seat events or flood audits. Admins
/// request audits with `POST /audits` or the console's Run audit.
#[test]
fn only_the_stack_may_put_kiro_subscriptions_events_on_its_bus() {
    let t = Template::load();
    let bus = t.bus_id();
    let policies: Vec<(String, &Value)> = t
        .of_type("AWS::Events::EventBusPolicy")
        .into_iter()
        .filter(|(_, p)| ref_of(&p["Properties"]["EventBusName"]) == Some(bus.as_str()))
        .collect();
    assert_eq!(policies.len(), 1, "one policy on the bus");
    let s = &policies[0].1["Properties"]["Statement"];
    assert_eq!(
        (&s["Effect"], &s["Principal"], &s["Action"]),
        (&Value::from("Deny"), &Value::from("*"), &Value::from("events:PutEvents"))
    );
    assert_eq!(get_att(&s["Resource"]), Some((bus.clone(), "Arn".to_owned())));
    assert_eq!(s["Condition"]["StringEquals"]["events:source"], kiro::domain::signal::OWN_SOURCE);
    let allowed: BTreeSet<String> = list(&s["Condition"]["ArnNotEquals"]["aws:PrincipalArn"])
        .into_iter()
        .map(|r| {
            let (id, attr) = get_att(r).expect("a !GetAtt of a role");
            assert_eq!(attr, "Arn");
            id
        })
        .collect();
    let adapters = Adapters::load();
    let may_publish = |b: &str| t.granted(b).contains(&("events:PutEvents".to_owned(), "bus".to_owned()));
    for binary in SCANNED {
        let publishes = function_code(binary, &adapters).needs.iter().any(|(a, _)| a == "events:PutEvents");
        assert_eq!(may_publish(binary), publishes, "{binary}: allowed to publish exactly when its ports do");
    }
    let publishers: BTreeSet<String> =
        FUNCTIONS.iter().filter(|b| may_publish(b)).map(|b| format!("{}Role", t.function_id(b))).collect();
    assert!(!publishers.is_empty(), "the scan finds the publishing functions");
    assert_eq!(allowed, publishers, "exactly the publishing functions' roles may speak as the stack");
}

/// What an operator expects of the stack: logs kept as long as a parameter says (30 days by
/// default) in log groups the stack owns, API access logs without personal data, the
/// dead-letter alarm telling someone, least privilege down to the partition where a function
/// touches one, and the table encrypted and recoverable.
#[test]
fn the_stack_keeps_its_logs_tells_its_alarms_and_narrows_its_keys() {
    let t = Template::load();
    let params = &t.root["Parameters"];
    assert_eq!(params["LogRetentionDays"]["Default"], 30);
    let log_groups = t.of_type("AWS::Logs::LogGroup");
    let retained = |g: &Value| ref_of(&g["Properties"]["RetentionInDays"]) == Some("LogRetentionDays");
    for binary in FUNCTIONS {
        let function = t.function_id(binary);
        let name = format!("/aws/lambda/${{{function}}}");
        let own: Vec<_> = log_groups
            .iter()
            .filter(|(_, g)| sub_of(&g["Properties"]["LogGroupName"]) == Some(name.as_str()))
            .collect();
        assert_eq!(own.len(), 1, "{binary}: one log group named after its function");
        assert!(retained(own[0].1), "{binary}: its logs are kept LogRetentionDays");
    }

    let api = &t.of_type("AWS::Serverless::HttpApi")[0].1["Properties"]["AccessLogSettings"];
    let (group, attr) = get_att(&api["DestinationArn"]).expect("access logs go to a log group of the stack");
    assert_eq!(attr, "Arn");
    assert!(retained(t.resource(&group)), "access logs are kept LogRetentionDays");
    let format = api["Format"].as_str().expect("a format");
    for field in ["$context.requestId", "$context.routeKey", "$context.status"] {
        assert!(format.contains(field), "access logs carry {field}");
    }
    for personal in ["sourceIp", "userAgent", "userArn", "caller", "user"] {
        assert!(!format.contains(&format!("identity.{personal}")), "access logs leave out identity.{personal}");
    }

    let alarm = &t.resource("DeadLetterQueueAlarm")["Properties"];
    let topics: Vec<String> =
        list(&alarm["AlarmActions"]).into_iter().filter_map(|a| ref_of(a).map(str::to_owned)).collect();
    assert_eq!(topics.len(), 1, "the alarm tells a topic");
    assert_eq!(t.resource(&topics[0])["Type"], "AWS::SNS::Topic");
    let subscriptions = t.of_type("AWS::SNS::Subscription");
    assert!(
        subscriptions.iter().any(|(_, s)| s["Condition"] == "HasAlarmEmail"
            && ref_of(&s["Properties"]["TopicArn"]) == Some(topics[0].as_str())
            && ref_of(&s["Properties"]["Endpoint"]) == Some("AlarmEmail")),
        "an e-mail subscription when AlarmEmail is given"
    );

    // create-profile touches one partition: its policy says so.
    let statements = list(&t.function("create-profile")["Properties"]["Policies"][0]["Statement"]);
    assert!(statements.iter().all(|s| strs(&s["Condition"]["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"])
        == BTreeSet::from(["PROFILE".to_owned()])));

    // sync-group's processes share Identity Store's rate: its code divides by the concurrency it
    // is told, which must be the concurrency Lambda keeps it to.
    let sync = &t.function("sync-group")["Properties"];
    let reserved = ref_of(&sync["ReservedConcurrentExecutions"]).expect("sync-group's concurrency is reserved");
    assert_eq!(ref_of(&t.env("sync-group")["SYNC_GROUP_CONCURRENCY"]), Some(reserved));

    let table = &t.resource(&t.table_id())["Properties"];
    assert_eq!(table["SSESpecification"]["SSEEnabled"], true, "encrypted with a KMS key");
    assert_eq!(table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"], true);
}

#[test]
fn large_exports_go_to_a_private_bucket_that_forgets_them_and_only_the_console_touches() {
    let t = Template::load();
    let bucket = &t.root["Resources"]["ConsoleExportBucket"];
    let block = &bucket["Properties"]["PublicAccessBlockConfiguration"];
    for flag in ["BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"] {
        assert_eq!(block[flag], Value::Bool(true), "{flag}");
    }
    let rule = &bucket["Properties"]["LifecycleConfiguration"]["Rules"][0];
    assert_eq!((rule["Status"].as_str(), rule["ExpirationInDays"].as_u64()), (Some("Enabled"), Some(1)));
    assert_eq!(ref_of(&t.env("console")["CONSOLE_EXPORT_BUCKET"]), Some("ConsoleExportBucket"));
    for binary in FUNCTIONS.iter().filter(|b| **b != "console") {
        let granted = t.granted(binary);
        assert!(granted.iter().all(|(_, r)| r != "export-objects"), "{binary} may not touch the exports");
    }
}
