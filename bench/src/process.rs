//! The release binaries, started as Lambda starts a `provided.al2023` bootstrap: a fresh process
//! with the function's environment, polling a (local) Runtime API.
//!
//! - cold start: from just before `spawn` (fork + exec) to the first
//!   `GET /runtime/invocation/next`, with `AWS_ENDPOINT_URL` on a closed port: init must not call
//!   AWS, and here it cannot;
//! - first invocation: from queuing the event to the posted response, against moto;
//! - peak RSS: `VmHWM` of the bootstrap after that invocation, and `/usr/bin/time -v`'s
//!   maximum resident set size once it is stopped (after a second, warm invocation).
//!
//! Beside the functions, in the same loops and as many times, [`ECHO`]: a bare `lambda_runtime`
//! function built by the same `cargo build --release`. Issue 17 wants each function's cold start
//! and peak RSS within 2× of it. And [`FLOOR`]: the echo plus what every function must do (the SDK
//! configuration and a DynamoDB client built as the functions build them, one `GetItem` an event),
//! so that each function's distance from the echo splits into the SDK's share and its own.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use kiro::aws::DynamoStore;
use kiro_tests::runtime_api::{Outcome, RuntimeApi};
use kiro_tests::{Moto, World, fixture, http_event, repo_root};
use serde_json::Value;
use tokio::process::{Child, Command};

use crate::report::{COLD_START_MS, PEAK_RSS_MIB, Row, Section, WITHIN_2X_ECHO};
use crate::{ms, percentile};

pub const BINARIES: [&str; 6] =
    ["create-profile", "assign-tier", "sync-group", "console", "ingest-activity", "publish-events"];
/// `bench/echo`: `lambda_runtime::run` of a handler that answers the payload, on the same
/// current-thread runtime and release profile as the functions: what issue 17 compares them with.
pub const ECHO: &str = "lambda-echo";
/// `bench/floor`: the echo's runtime, plus `kiro::aws::load_sdk_config`, a DynamoDB client made
/// from it, and one `GetItem` of the profile an event: the least a function of ours can cost.
pub const FLOOR: &str = "lambda-sdk-floor";
/// What the functions are compared with: not functions, so no target of their own.
const REFERENCES: [&str; 2] = [ECHO, FLOOR];
/// Every binary started here: the functions, then the echo and the floor.
pub fn measured() -> impl Iterator<Item = &'static str> {
    BINARIES.into_iter().chain(REFERENCES)
}

/// Where `name` is in [`measured`].
fn position(name: &str) -> usize {
    measured().position(|n| n == name).expect("a measured binary")
}

/// What builds them (`make bench` runs it, with any other function): the functions resolve their
/// features as `cargo lambda build` does, the echo and the floor with them (they add no feature
/// of their own).
pub fn build_command() -> String {
    let packages: Vec<String> = measured().map(|b| format!("-p {b}")).collect();
    format!("cargo build --release {}", packages.join(" "))
}

/// Measured starts per binary (after one unmeasured start that warms the page cache).
pub const COLD_STARTS: usize = 25;
/// Fresh processes per binary for the first invocation against moto.
pub const FIRST_INVOCATIONS: usize = 5;
const TIME: &str = "/usr/bin/time";

/// Cargo's target directory (`CARGO_TARGET_DIR`, else `target/` in the repository).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => repo_root().join(dir),
        None => repo_root().join("target"),
    }
}

/// The host release build of `name` (`cargo build --release --bins`).
pub fn release_binary(name: &str) -> PathBuf {
    target_dir().join("release").join(name)
}

/// The bootstrap's environment as Lambda sets it, with nothing of this process's.
fn lambda_command(program: &Path, binary: &Path, name: &str, runtime_api: &str) -> Command {
    let mut cmd = Command::new(program);
    if program != binary {
        cmd.arg("-v").arg(binary);
    }
    kiro_tests::runtime_api::as_lambda(&mut cmd, name, runtime_api)
        // The console's issuer, as its template sets it; never called at start nor for these events.
        .env("CONSOLE_OIDC_ISSUER", "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Bench0000")
        .env("CONSOLE_OIDC_CLIENT_ID", "bench-console-client")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(if program == binary { Stdio::null() } else { Stdio::piped() });
    cmd
}

/// Waits until the bootstrap first polls for work; `None` if it exited or took over 10 s.
async fn first_poll(api: &RuntimeApi, child: &mut Child) -> Option<Instant> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(at) = api.first_next() {
            return Some(at);
        }
        if Instant::now() > deadline || matches!(child.try_wait(), Ok(Some(_))) {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free loopback port")
}

/// One cold start of `binary`.
async fn cold_start(binary: &Path, name: &str, endpoint: &str) -> Result<Duration, String> {
    let api = RuntimeApi::start().await;
    let mut cmd = lambda_command(binary, binary, name, &api.address);
    cmd.env("TABLE_NAME", "kiro-bench").env("AWS_ENDPOINT_URL", endpoint);
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("spawning {}: {e}", binary.display()))?;
    let polled = first_poll(&api, &mut child).await;
    let _ = child.kill().await;
    polled.map(|at| at - started).ok_or_else(|| format!("{name} never polled the Runtime API"))
}

/// Cold starts of every binary and the echo, round robin so that the machine's noise spreads
/// over all of them.
pub async fn cold_starts() -> Result<Section, String> {
    let endpoint = format!("http://127.0.0.1:{}", closed_port());
    let names: Vec<&str> = measured().collect();
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); names.len()];
    for round in 0..=COLD_STARTS {
        for (i, name) in names.iter().enumerate() {
            let d = cold_start(&release_binary(name), name, &endpoint).await?;
            if round > 0 {
                samples[i].push(d);
            }
        }
    }
    let mut s = Section::new("Cold start (host release build)").note(format!(
        "Exec to the first `GET /runtime/invocation/next`; {COLD_STARTS} starts per binary after one unmeasured \
         start, round robin over the functions, `{ECHO}` (a bare `lambda_runtime` function that answers each \
         event with its payload, built by the same `cargo build --release`) and `{FLOOR}` (the echo plus the \
         functions' SDK configuration and a DynamoDB client, built at init as theirs are), `TABLE_NAME` set, \
         `AWS_ENDPOINT_URL` on a closed port ({endpoint}). Each function's ratio is its median over the echo's median \
         (issue 17: within 2×); its ratio over the floor's, and the floor's over the echo's, have no target: they \
         say how much of the distance is the SDK's."
    ));
    let median_and_min = |name: &str| {
        let d = &samples[position(name)];
        (percentile(d, 50.0), percentile(d, 0.0))
    };
    let (echo, echo_min) = median_and_min(ECHO);
    let (floor, floor_min) = median_and_min(FLOOR);
    for (name, d) in measured().zip(&samples) {
        let (p50, p90) = (percentile(d, 50.0), percentile(d, 90.0));
        let (min, max) = (percentile(d, 0.0), percentile(d, 100.0));
        let row = Row::new(format!("{name}: median / p90"), format!("{} / {}", ms(p50), ms(p90))).detail(format!(
            "min {}, max {}",
            ms(min),
            ms(max)
        ));
        let against = |what: &str, reference: &str, median: Duration, fastest: Duration| {
            let ratio = p50.as_secs_f64() / median.as_secs_f64();
            let row = Row::new(format!("{name}: median against the {what}'s"), format!("{ratio:.2}×")).detail(format!(
                "{} / {} ({reference}, median of as many starts in the same rounds); fastest against fastest, which \
                 load on the machine moves less: {:.2}×",
                ms(p50),
                ms(median),
                min.as_secs_f64() / fastest.as_secs_f64()
            ));
            (row, ratio)
        };
        match name {
            ECHO => s.push(row),
            FLOOR => {
                s.push(row);
                s.push(against("echo", ECHO, echo, echo_min).0);
            }
            _ => {
                s.push(row.against(COLD_START_MS, p50.as_secs_f64() * 1e3));
                let (row, ratio) = against("echo", ECHO, echo, echo_min);
                s.push(row.against(WITHIN_2X_ECHO, ratio));
                s.push(against("floor", FLOOR, floor, floor_min).0);
            }
        }
    }
    Ok(s)
}

/// The event each binary is invoked with: a read that reaches DynamoDB; for the echo and the
/// floor, the CloudTrail envelope sync-group is given (2 KB), which they parse and answer (the
/// floor after its `GetItem`).
fn first_event(name: &str) -> Value {
    match name {
        "create-profile" => fixture("http/get-profile.json"),
        "assign-tier" => fixture("http/list-seats.json"),
        // A browser with a session cookie the table does not know: `GetItem(session)`, then the
        // Sign in page.
        "console" => {
            let mut event = fixture("http/console-home.json");
            event["cookies"] = serde_json::json!(["kiro_session=bench-session-token-not-stored"]);
            event
        }
        // An Object Created envelope for a key outside any bucket: `GetItem` of its import
        // marker, then `GetObject` (404): a REJECTED report (`TransactWriteItems`).
        "ingest-activity" => {
            let mut event = fixture("s3/object-created-user-report.json");
            event["detail"]["bucket"]["name"] = serde_json::json!("kiro-bench-no-such-bucket");
            event
        }
        // A batch of the table's stream with one new outbox that is no longer there (as when the
        // audit's sweep published it): `BatchGetItem`, nothing to put on the bus.
        "publish-events" => fixture("dynamodb/outbox-inserted.json"),
        _ => fixture("cloudtrail/identitystore-create-group-membership.json"),
    }
}

/// The status an answer carries: an HTTP status, or sync-group's `signal`; the echo's and the
/// floor's, whether they answered the payload they were given.
fn answer_of(name: &str, outcome: &Outcome) -> Result<String, String> {
    match outcome {
        Outcome::Response(v) if REFERENCES.contains(&name) => {
            if *v == first_event(name) {
                Ok("the payload".to_owned())
            } else {
                Err(format!("{name} answered {v}"))
            }
        }
        Outcome::Response(v) if v.get("statusCode").is_some() => Ok(v["statusCode"].to_string()),
        // publish-events' partial batch response.
        Outcome::Response(v) if v.get("batchItemFailures").is_some() => {
            let failures = v["batchItemFailures"].as_array().map_or(0, Vec::len);
            Ok(format!("{failures} batch item failures"))
        }
        // sync-group's `signal`, ingest-activity's ImportReport `status`.
        Outcome::Response(v) => Ok(v["signal"].as_str().or(v["status"].as_str()).unwrap_or("?").to_owned()),
        Outcome::Error(e) => Err(format!("the invocation failed: {e}")),
    }
}

/// A `kB` field of a process's status: `"VmHWM:"` (peak resident set), `"RssFile:"` (resident
/// pages of mapped files: the binary's and the shared libraries'), `"RssAnon:"` (its own memory).
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix(field))?.split_whitespace().next()?.parse().ok()
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM:")
}

/// The pid of the bootstrap: the child itself, or the child of `/usr/bin/time`.
fn bootstrap_pid(child: &Child, under_time: bool) -> Option<u32> {
    let pid = child.id()?;
    if !under_time {
        return Some(pid);
    }
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    children.split_whitespace().next()?.parse().ok()
}

/// What one fresh process did with its first two invocations.
struct Invocation {
    first: Duration,
    warm: Duration,
    answer: String,
    init_kib: Option<u64>,
    /// At init: resident pages of mapped files, and anonymous ones.
    init_file_kib: Option<u64>,
    init_anon_kib: Option<u64>,
    hwm_kib: Option<u64>,
    /// After the second invocation, just before it is stopped: resident set, its peak, and the
    /// resident pages of mapped files and anonymous ones.
    end: Resident,
    time_kib: Option<u64>,
}

/// A process's resident set as `/proc/<pid>/status` splits it (kB).
#[derive(Debug, Clone, Copy, Default)]
struct Resident {
    rss_kib: Option<u64>,
    hwm_kib: Option<u64>,
    file_kib: Option<u64>,
    anon_kib: Option<u64>,
}

impl Resident {
    fn of(pid: u32) -> Self {
        Resident {
            rss_kib: status_kib(pid, "VmRSS:"),
            hwm_kib: vm_hwm_kib(pid),
            file_kib: status_kib(pid, "RssFile:"),
            anon_kib: status_kib(pid, "RssAnon:"),
        }
    }
}

async fn invoke(api: &RuntimeApi, id: &str, event: Value) -> Result<(Duration, Outcome), String> {
    let started = Instant::now();
    api.invoke(id, event);
    let outcome = api.outcome(id, Duration::from_secs(30)).await.ok_or_else(|| format!("no answer to {id}"))?;
    Ok((started.elapsed(), outcome))
}

async fn first_invocation(name: &str, table: &str, endpoint: &str) -> Result<Invocation, String> {
    let binary = release_binary(name);
    let under_time = Path::new(TIME).exists();
    let program = if under_time { PathBuf::from(TIME) } else { binary.clone() };
    let api = RuntimeApi::start().await;
    let mut cmd = lambda_command(&program, &binary, name, &api.address);
    cmd.env("TABLE_NAME", table).env("AWS_ENDPOINT_URL", endpoint);
    let mut child = cmd.spawn().map_err(|e| format!("spawning {}: {e}", program.display()))?;
    first_poll(&api, &mut child).await.ok_or_else(|| format!("{name} never polled the Runtime API"))?;
    let pid = bootstrap_pid(&child, under_time).ok_or("no bootstrap process")?;
    let init_kib = vm_hwm_kib(pid);
    let (init_file_kib, init_anon_kib) = (status_kib(pid, "RssFile:"), status_kib(pid, "RssAnon:"));
    let (first, outcome) = invoke(&api, "req-1", first_event(name)).await?;
    let answer = answer_of(name, &outcome)?;
    let hwm_kib = vm_hwm_kib(pid);
    let (warm, outcome) = invoke(&api, "req-2", first_event(name)).await?;
    answer_of(name, &outcome)?;
    let end = Resident::of(pid);
    let time_kib = if under_time {
        // SIGTERM to the bootstrap; `time` then reports on it and exits.
        let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status().await;
        let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
            .await
            .map_err(|_| "time -v did not exit".to_owned())?
            .map_err(|e| e.to_string())?;
        let report = String::from_utf8_lossy(&out.stderr);
        report
            .lines()
            .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes):"))
            .and_then(|v| v.trim().parse().ok())
    } else {
        let _ = child.kill().await;
        None
    };
    Ok(Invocation { first, warm, answer, init_kib, init_file_kib, init_anon_kib, hwm_kib, end, time_kib })
}

/// First and warm invocation against moto, and peak RSS, per binary.
pub async fn first_invocations() -> Result<Section, String> {
    let moto = tokio::task::spawn_blocking(Moto::get).await.map_err(|e| e.to_string())?;
    let world = World::new().await;
    let profile = create_profile::Deps {
        store: DynamoStore::new(world.dynamo.clone(), &world.table),
        region: "us-east-1".into(),
        supported_regions: vec!["us-east-1".into()],
    };
    let created = create_profile::handle(&profile, http_event("create-profile.json", None))
        .await
        .map_err(|e| format!("creating the profile: {e}"))?;
    if created.status_code != 201 {
        return Err(format!("creating the profile answered {}", created.status_code));
    }
    let under_time = Path::new(TIME).exists();
    let mut s = Section::new("First invocation against moto, and peak RSS (host release build)").note(format!(
        "{FIRST_INVOCATIONS} fresh processes per binary against moto ({}), table made from template.yaml, \
         profile present. create-profile: `GET /profile` (1 `GetItem`); assign-tier: `GET /seats?tier=PRO&limit=10` \
         (`GetItem` profile, a `Query` of each of the 16 seat partitions of the empty list, one after the other); sync-group: `CreateGroupMembership` for a group nobody subscribed \
         (`GetItem` profile, `GetItem` subscription); console: `GET /console` with an unknown session cookie \
         (`GetItem` session, then the Sign in page); ingest-activity: an Object Created event for a \
         missing bucket (`GetItem` marker, `GetObject` 404, `TransactWriteItems` of the rejected report); \
         publish-events: a stream batch with one new outbox no longer in the table (`BatchGetItem`). Latency is from queuing the event to the posted response, \
         moto's own time included; `{ECHO}` answers the CloudTrail envelope sync-group is given, calling nothing; \
         `{FLOOR}` answers it after one consistent `GetItem` of the profile. \
         RSS: `VmHWM` after the first invocation{}. Each function's ratio is its peak over the echo's (issue 17: \
         within 2×); over the floor's, and the floor's over the echo's, without a target. The split of the resident \
         set is `/proc/<pid>/status` read after the second invocation, just before the process is stopped, in the \
         process of the largest peak: `RssFile` (pages of mapped files: the binary's and the shared libraries') and \
         `RssAnon` (heap, stacks), beside that moment's `VmRSS` and `VmHWM`.",
        moto.endpoint,
        if under_time {
            "; `/usr/bin/time -v` maximum resident set size after the second"
        } else {
            " (`/usr/bin/time` is missing: `apt-get install time` adds its figure)"
        }
    ));
    let mut runs_of: Vec<Vec<Invocation>> = Vec::new();
    for name in measured() {
        let mut runs = Vec::with_capacity(FIRST_INVOCATIONS);
        for _ in 0..FIRST_INVOCATIONS {
            runs.push(first_invocation(name, &world.table, &moto.endpoint).await?);
        }
        runs_of.push(runs);
    }
    let mib = |kib: u64| kib as f64 / 1024.0;
    // Time's figure (after the second invocation) when there is one, else VmHWM after the first.
    let peak_of = |runs: &[Invocation]| {
        let max = |f: fn(&Invocation) -> Option<u64>| runs.iter().filter_map(f).max();
        max(|r| r.time_kib).or(max(|r| r.hwm_kib))
    };
    let echo_peak = peak_of(&runs_of[position(ECHO)]);
    let floor_peak = peak_of(&runs_of[position(FLOOR)]);
    for (name, runs) in measured().zip(&runs_of) {
        let first: Vec<Duration> = runs.iter().map(|r| r.first).collect();
        let warm: Vec<Duration> = runs.iter().map(|r| r.warm).collect();
        s.push(Row::new(format!("{name}: first invocation, median"), ms(percentile(&first, 50.0))).detail(format!(
            "answer {}; warm (second) invocation median {}; max first {}",
            runs[0].answer,
            ms(percentile(&warm, 50.0)),
            ms(percentile(&first, 100.0))
        )));
        let max = |f: fn(&Invocation) -> Option<u64>| runs.iter().filter_map(f).max();
        let Some(peak) = peak_of(runs) else { continue };
        let row = Row::new(format!("{name}: peak RSS"), format!("{:.1} MiB", mib(peak))).detail(format!(
            "max of {FIRST_INVOCATIONS}: at init (first poll) {:.1} MiB (mapped files {:.1} MiB, the binary's pages \
             and the shared libraries'; anonymous {:.1} MiB); VmHWM after the first invocation {:.1} MiB; time -v \
             after the second {}",
            mib(max(|r| r.init_kib).unwrap_or(0)),
            mib(max(|r| r.init_file_kib).unwrap_or(0)),
            mib(max(|r| r.init_anon_kib).unwrap_or(0)),
            mib(max(|r| r.hwm_kib).unwrap_or(0)),
            max(|r| r.time_kib).map_or("n/a".to_owned(), |k| format!("{:.1} MiB", mib(k)))
        ));
        let against = |what: &str, reference: &str, of: Option<u64>| {
            let of = of?;
            let ratio = peak as f64 / of as f64;
            let row =
                Row::new(format!("{name}: peak RSS against the {what}'s"), format!("{ratio:.2}×")).detail(format!(
                    "{:.1} MiB / {:.1} MiB ({reference}, max of as many fresh processes, measured the same way)",
                    mib(peak),
                    mib(of)
                ));
            Some((row, ratio))
        };
        match name {
            ECHO => s.push(row),
            FLOOR => {
                s.push(row);
                if let Some((row, _)) = against("echo", ECHO, echo_peak) {
                    s.push(row);
                }
            }
            _ => {
                s.push(row.against(PEAK_RSS_MIB, mib(peak)));
                if let Some((row, ratio)) = against("echo", ECHO, echo_peak) {
                    s.push(row.against(WITHIN_2X_ECHO, ratio));
                }
                if let Some((row, _)) = against("floor", FLOOR, floor_peak) {
                    s.push(row);
                }
            }
        }
        // The process whose peak is reported above.
        let peaked = runs.iter().max_by_key(|r| r.time_kib.or(r.hwm_kib)).map(|r| r.end).unwrap_or_default();
        if let (Some(file), Some(anon)) = (peaked.file_kib, peaked.anon_kib) {
            let share = |part: u64| 100.0 * part as f64 / (file + anon) as f64;
            s.push(
                Row::new(
                    format!("{name}: resident, mapped files / anonymous"),
                    format!("{:.1} MiB ({:.0}%) / {:.1} MiB", mib(file), share(file), mib(anon)),
                )
                .detail(format!(
                    "after the second invocation: VmRSS {:.1} MiB, VmHWM {:.1} MiB",
                    mib(peaked.rss_kib.unwrap_or(0)),
                    mib(peaked.hwm_kib.unwrap_or(0))
                )),
            );
        }
    }
    Ok(s)
}

/// The sections the functions' binaries are mostly made of: code, the relocations the loader
/// applies at start (position-independent executables), and the data they point into.
const SECTIONS: [&str; 3] = [".text", ".rela.dyn", ".data.rel.ro"];

/// Size of each binary: the Lambda artifact (`make build-arm64`) when present, and the host build,
/// with its largest sections.
pub fn artifact_sizes() -> Section {
    let mut s = Section::new("Artifact size").note(format!(
        "`target/lambda/<function>/bootstrap` is the arm64 artifact of `make build-arm64` (not rebuilt by \
         `make bench`); the host build is the x86_64 release binary measured above, with the sizes of its {} \
         sections (from its ELF section headers).",
        SECTIONS.map(|n| format!("`{n}`")).join(", ")
    ));
    let size = |p: PathBuf| std::fs::metadata(&p).ok().map(|m| m.len());
    let mib = |b: u64| format!("{:.2} MiB ({b} bytes)", b as f64 / (1024.0 * 1024.0));
    for name in measured() {
        let binary = release_binary(name);
        let sections = match std::fs::read(&binary).map(|elf| elf_sections(&elf)) {
            Ok(Some(sections)) => SECTIONS
                .map(|wanted| {
                    let found = sections.iter().find(|(n, _)| n == wanted).map(|&(_, b)| b);
                    format!("{wanted} {}", found.map_or("none".to_owned(), |b| format!("{:.0} KiB", b as f64 / 1024.0)))
                })
                .join(", "),
            Ok(None) => "not an ELF64 little-endian file".to_owned(),
            Err(e) => format!("unreadable: {e}"),
        };
        let host = Row::new(format!("{name}: host release binary"), size(binary).map_or("missing".into(), mib));
        if REFERENCES.contains(&name) {
            s.push(host.detail(format!("{sections}; not a Lambda artifact")));
            continue;
        }
        let arm = size(target_dir().join("lambda").join(name).join("bootstrap"));
        s.push(Row::new(
            format!("{name}: arm64 artifact"),
            arm.map_or("not built (run `make build-arm64`)".to_owned(), mib),
        ));
        s.push(host.detail(sections));
    }
    s
}

/// The name and size of each section of an ELF64 little-endian file, from its section headers;
/// `None` if it is not one or they do not fit in it.
fn elf_sections(elf: &[u8]) -> Option<Vec<(String, u64)>> {
    // Magic, ELFCLASS64, ELFDATA2LSB.
    if elf.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let bytes = |at: usize, n: usize| elf.get(at..at.checked_add(n)?);
    let u16_at = |at| Some(u16::from_le_bytes(bytes(at, 2)?.try_into().ok()?) as usize);
    let u32_at = |at| Some(u32::from_le_bytes(bytes(at, 4)?.try_into().ok()?) as usize);
    let u64_at = |at| Some(u64::from_le_bytes(bytes(at, 8)?.try_into().ok()?));
    // e_shoff, e_shentsize, e_shnum, e_shstrndx.
    let (table, entry, count, names) =
        (usize::try_from(u64_at(0x28)?).ok()?, u16_at(0x3a)?, u16_at(0x3c)?, u16_at(0x3e)?);
    let header = |i: usize| table.checked_add(i.checked_mul(entry)?);
    // sh_offset of the section of section names.
    let strings = usize::try_from(u64_at(header(names)?.checked_add(0x18)?)?).ok()?;
    (0..count)
        .map(|i| {
            let at = header(i)?;
            // sh_name (an offset into the names), sh_size.
            let name = elf.get(strings.checked_add(u32_at(at)?)?..)?.split(|&b| b == 0).next()?;
            Some((String::from_utf8_lossy(name).into_owned(), u64_at(at.checked_add(0x20)?)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This test's own executable is an ELF file too: its section headers name its code.
    #[test]
    fn the_section_headers_name_the_code_and_its_size() {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let sections = elf_sections(&exe).expect("an ELF64 little-endian executable");
        let text = sections.iter().find(|(n, _)| n == ".text").expect("a .text section").1;
        assert!(text > 0 && text < exe.len() as u64, "{text} of {} bytes", exe.len());
        assert!(elf_sections(b"\x7fELF\x02\x01 and then nothing").is_none());
        assert!(elf_sections(b"#!/bin/sh").is_none());
    }
}
