//! `cargo xtask test` step `debug`: a scripted GDB session against the broker suite's
//! image ([`kaal_build::debug`]). It must stop at the kernel's entry and at its Rust
//! entry, then at the `main` of the `sink` component (linked at the same address as the
//! `main` of `source`, which starts first) and print a backtrace with `sink`'s symbols.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    time::Duration,
};

use kaal_build::{
    Bin, Workspace,
    archive::Component,
    debug::{self, DebugOptions},
    image::{Image, link_image},
    qemu::QemuConfig,
    serial, system,
};

use crate::{Result, Tally, args::Args, log_dir, root};

/// The suite whose image the session debugs.
const SUITE: &str = "broker";
/// The component whose `main` the session stops at.
const COMPONENT: &str = "sink";
/// The session's time limit (the image is built before it starts).
const TIMEOUT: Duration = Duration::from_secs(120);
/// Marks the sections of the script's output.
const MARK: &str = "KAAL-CHECK";

/// The batch script: where the CPU waits at reset, the kernel's Rust entry, the
/// component's `main` and its backtrace, each section after a marker line.
fn batch_script() -> String {
    format!(
        "echo {MARK} reset\\n\n\
         info symbol $pc\n\
         printf \"pc %lx entry %lx\\n\", $pc, $kaal_kernel_entry\n\
         hbreak *kaal_kernel_start\n\
         continue\n\
         echo {MARK} kernel\\n\n\
         info symbol $pc\n\
         delete\n\
         kaal-break {COMPONENT}\n\
         continue\n\
         echo {MARK} backtrace\\n\n\
         bt\n\
         echo {MARK} end\\n\n"
    )
}

/// The lines of `output` after marker `name` up to the next marker.
fn section<'a>(output: &'a str, name: &str) -> Vec<&'a str> {
    let marker = format!("{MARK} {name}");
    output
        .lines()
        .skip_while(|l| l.trim() != marker)
        .skip(1)
        .take_while(|l| !l.starts_with(MARK))
        .collect()
}

/// Problems with the kernel-entry part of the session's output (empty: it passed).
fn judge_kernel(output: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let reset = section(output, "reset");
    if !reset
        .iter()
        .any(|l| l.starts_with("_start in section .text.boot"))
    {
        problems.push(format!(
            "at reset, `info symbol $pc` is not the kernel's `_start`: {reset:?}"
        ));
    }
    let at_entry = reset.iter().any(|l| {
        l.strip_prefix("pc ")
            .and_then(|rest| rest.split_once(" entry "))
            .is_some_and(|(pc, entry)| pc == entry.trim())
    });
    if !at_entry {
        problems.push(format!(
            "at reset, the PC is not the kernel's ELF entry: {reset:?}"
        ));
    }
    let kernel = section(output, "kernel");
    if !kernel
        .iter()
        .any(|l| l.starts_with("kaal_kernel_start in section .text"))
    {
        problems.push(format!(
            "no stop at `kaal_kernel_start` after `continue`: {kernel:?}"
        ));
    }
    problems
}

/// Problems with the component part: the backtrace must start at `sink::main` and
/// unwind through the user runtime to `_start`, with no frame of `source`.
fn judge_component(output: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let bt = section(output, "backtrace");
    let frames: Vec<&str> = bt.iter().copied().filter(|l| l.starts_with('#')).collect();
    let main = format!("{COMPONENT}::main");
    if !frames
        .first()
        .is_some_and(|f| f.starts_with("#0") && f.contains(&main))
    {
        problems.push(format!("frame #0 is not `{main}`: {bt:?}"));
    }
    for wanted in ["kaal_user_start", "_start ()"] {
        if !frames.iter().any(|f| f.contains(wanted)) {
            problems.push(format!("no `{wanted}` frame in the backtrace: {bt:?}"));
        }
    }
    if frames.iter().any(|f| f.contains("source::")) {
        problems.push(format!("the backtrace has frames of `source`: {bt:?}"));
    }
    if !output.lines().any(|l| l.trim() == format!("{MARK} end")) {
        problems.push("the script did not run to its end".into());
    }
    problems
}

/// Builds the suite's image as its own image `debug-<suite>`, like the QEMU suites
/// are built: the root task, the binaries of `components.txt`, the system description.
fn build_image() -> Result<Image> {
    let ws = Workspace::new(root().join("tests").join("qemu"));
    let dir = root().join("tests/qemu/suites").join(SUITE);
    let package = format!("suite-{SUITE}");
    let names = std::fs::read_to_string(dir.join("components.txt"))
        .map(|text| serial::parse_expectations(&text))
        .map_err(|e| format!("{}: {e}", dir.join("components.txt").display()))?;
    let mut bins = vec![Bin::package(&package)];
    bins.extend(names.iter().map(|name| Bin::new(&package, name)));
    let elfs = ws.build_user(&bins)?;
    let mut components: Vec<Component> = std::iter::once(kaal_build::ROOT_TASK)
        .chain(names.iter().map(String::as_str))
        .zip(elfs)
        .map(|(name, elf)| Component::new(name, elf))
        .collect();
    let toml = dir.join("system.toml");
    let out: PathBuf = ws.image_dir(&format!("debug-{SUITE}")).join("system.bin");
    system::compile(&toml, &out, 256 << 20)?;
    components.push(Component::new(system::SYSTEM_ENTRY, out));
    Ok(link_image(
        &ws,
        &format!("debug-{SUITE}"),
        &Bin::package("kaal-test-kernel"),
        &components,
    )?)
}

/// A TCP port free on 127.0.0.1 a moment ago.
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Saves `text` as `name` in the log directory; returns where (or why not).
fn save(name: &str, text: &str) -> String {
    let path = log_dir().join(name);
    match std::fs::create_dir_all(log_dir()).and_then(|()| std::fs::write(&path, text)) {
        Ok(()) => path.display().to_string(),
        Err(e) => format!("(not saved: {e})"),
    }
}

/// `cargo xtask test` step: two tests, the kernel stops and the component stop.
pub fn test(_args: &Args) -> Tally {
    match run() {
        Ok(tally) => tally,
        Err(e) => {
            eprintln!("debug: {e}");
            Tally {
                passed: 0,
                failed: 2,
            }
        }
    }
}

fn run() -> Result<Tally> {
    kaal_build::tools::ensure_all()?;
    kaal_build::tools::ensure_gdb()?;
    let image = build_image()?;
    let symbols = debug::symbols(&image)?;
    let main_of = |name: &str| {
        symbols
            .components
            .iter()
            .find(|c| c.name == name)
            .and_then(|c| c.main.clone())
    };
    let sink = main_of(COMPONENT).ok_or("sink has no main symbol")?;
    if main_of("source").is_some_and(|(address, _)| address == sink.0) {
        println!(
            "debug: {} and source::main share address {:#x}",
            sink.1, sink.0
        );
    }
    let dir = image
        .kernel
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let script = dir.join("check.gdb");
    std::fs::write(&script, batch_script()).map_err(|e| format!("{}: {e}", script.display()))?;
    let options = DebugOptions::default()
        .port(free_port()?)
        .batch(&script)
        .serial_log(dir.join("serial.log"));
    let session = debug::debug_captured(&QemuConfig::default(), &image, &options, TIMEOUT)?;
    let mut problems = Vec::new();
    if session.status.is_none() {
        problems.push(format!("GDB did not finish within {} s", TIMEOUT.as_secs()));
    }
    let kernel = judge_kernel(&session.output);
    let component = judge_component(&session.output);
    let mut tally = Tally::default();
    for (what, found) in [("kernel entry", &kernel), ("component main", &component)] {
        let ok = found.is_empty() && problems.is_empty();
        println!(
            "debug: {what:<16} {} ({:.1} s)",
            if ok { "ok" } else { "FAILED" },
            session.elapsed.as_secs_f64()
        );
        for p in problems.iter().chain(found.iter()) {
            println!("    {p}");
        }
        tally += Tally::one(ok);
    }
    if tally.failed > 0 {
        let log = save("debug-session.log", &session.output);
        println!("    GDB output: {log}");
    } else {
        for line in section(&session.output, "backtrace") {
            println!("    | {line}");
        }
    }
    Ok(tally)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
0x0000000040200000 in _start ()
KAAL-CHECK reset
_start in section .text.boot
pc 40200000 entry 40200000
Hardware assisted breakpoint 1 at 0xffffff8040204ca0: file src/boot.rs, line 40.
KAAL-CHECK kernel
kaal_kernel_start in section .text
KAAL-CHECK backtrace
#0  sink::main () at suites/broker/src/bin/sink.rs:10
#1  0x0000000000400a40 in kaal_user::run_component () at src/lib.rs:86
#2  0x000000000040113c in kaal_user::runtime::kaal_user_start () at src/runtime.rs:119
#3  0x000000000040000c in _start ()
Backtrace stopped: previous frame identical to this frame (corrupt stack?)
KAAL-CHECK end
";

    #[test]
    fn a_good_session_passes() {
        assert_eq!(judge_kernel(GOOD), Vec::<String>::new());
        assert_eq!(judge_component(GOOD), Vec::<String>::new());
    }

    #[test]
    fn missing_stops_fail() {
        let no_kernel = GOOD.replace("kaal_kernel_start in section .text", "");
        assert_eq!(judge_kernel(&no_kernel).len(), 1);
        let moved = GOOD.replace("pc 40200000", "pc 40200004");
        assert_eq!(judge_kernel(&moved).len(), 1);
        let wrong = GOOD.replace("sink::main", "source::main");
        assert_eq!(
            judge_component(&wrong).len(),
            2,
            "{:?}",
            judge_component(&wrong)
        );
        let cut = &GOOD[..GOOD.find("#2").unwrap()];
        assert_eq!(judge_component(cut).len(), 3, "{:?}", judge_component(cut));
        assert!(!judge_kernel("").is_empty() && !judge_component("").is_empty());
    }

    #[test]
    fn script_checks_every_stop() {
        let s = batch_script();
        for line in ["hbreak *kaal_kernel_start", "kaal-break sink", "bt"] {
            assert!(s.lines().any(|l| l == line), "{s}");
        }
    }
}
