//! `make bench`: prints the figures of BENCHMARKS.md as Markdown tables, each next to its target.
//!
//! `cargo bench -p kiro-bench --bench figures [-- process|requests|million|console|usage|activity]` runs only
//! those parts (all by default). The host release binaries must be built first
//! ([`process::build_command`], which `make bench` runs).

use std::process::ExitCode;
use std::time::Instant;

use kiro_bench::process;
use kiro_bench::report::{self, Section};
use kiro_bench::requests;

/// Counts the heap while a `HeapWindow` is open (the million-seat audit's own memory); otherwise
/// the system allocator behind one relaxed load.
#[global_allocator]
static HEAP: kiro_bench::memory::Counting = kiro_bench::memory::Counting;

fn main() -> ExitCode {
    // `cargo bench` passes `--bench`; the parts are the other words.
    let parts: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let wants = |part: &str| parts.is_empty() || parts.iter().any(|p| p == part);
    let started = Instant::now();
    println!("## kiro-bench\n\n{}\n", machine());
    let mut sections: Vec<Section> = Vec::new();

    if wants("process") {
        let missing: Vec<String> = process::measured()
            .map(process::release_binary)
            .filter(|p| !p.exists())
            .map(|p| p.display().to_string())
            .collect();
        if !missing.is_empty() {
            eprintln!("missing {}: run `{}` first (`make bench` does)", missing.join(", "), process::build_command());
            return ExitCode::FAILURE;
        }
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
        let measured = rt
            .block_on(async { Ok::<_, String>((process::cold_starts().await?, process::first_invocations().await?)) });
        match measured {
            Ok((cold, first)) => {
                show(cold, &mut sections);
                show(first, &mut sections);
            }
            Err(e) => {
                eprintln!("bench: {e}");
                return ExitCode::FAILURE;
            }
        }
        show(process::artifact_sizes(), &mut sections);
    }

    if wants("requests") {
        // The functions run on a current-thread runtime; so do their handlers here.
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
        show(rt.block_on(requests::direct_subscribe()), &mut sections);
        show(rt.block_on(requests::membership_events()), &mut sections);
        show(rt.block_on(requests::fan_out(10_000)), &mut sections);
        show(rt.block_on(requests::audit(50, 200)), &mut sections);
        show(rt.block_on(requests::audit(100, 1_000)), &mut sections);
        // Groups large enough to have their grant rows spread over 16 partitions.
        show(rt.block_on(requests::audit(20, 5_000)), &mut sections);
    }

    if wants("console") {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
        show(rt.block_on(kiro_bench::console::pages(1_000)), &mut sections);
    }

    if wants("usage") {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
        show(rt.block_on(kiro_bench::usage::summaries(&[10_000, 100_000])), &mut sections);
    }

    if wants("activity") {
        // ingest-activity runs on a current-thread runtime; its reading passes on spawn_blocking.
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
        show(rt.block_on(kiro_bench::activity::report_ingest(100_000)), &mut sections);
    }

    if wants("million") {
        // Issue 17's million seats: last, since they leave this process 3 GiB larger (returned
        // to the kernel at the end, but the other parts' memory figures are better off without).
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
        show(rt.block_on(kiro_bench::million::audit()), &mut sections);
    }

    println!("{}", report::summary(&sections).render());
    println!("Finished in {:.1} s.", started.elapsed().as_secs_f64());
    ExitCode::SUCCESS
}

/// Prints a section as soon as it is measured, and keeps it for the summary.
fn show(section: Section, sections: &mut Vec<Section>) {
    println!("{}", section.render());
    sections.push(section);
}

/// The machine the figures were measured on.
fn machine() -> String {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned()))
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let meminfo = read("/proc/meminfo");
    let mem_kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let rustc = std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    format!(
        "Machine: {cpus} CPUs ({cpu}), {:.1} GiB memory, Linux {} {}; {rustc}.",
        mem_kib as f64 / (1024.0 * 1024.0),
        read("/proc/sys/kernel/osrelease").trim(),
        std::env::consts::ARCH,
    )
}
