//! Debug an image with GDB: QEMU paused at reset with its GDB stub, and `gdb-multiarch`
//! connected to it with the symbols of the kernel and of every component.
//!
//! [`debug`] starts QEMU (`-gdb tcp:127.0.0.1:PORT -S`: the CPU waits at the kernel's
//! first instruction) and GDB with a generated startup script ([`startup_script`]). With
//! [`DebugOptions::batch`] GDB runs that script file and exits; QEMU is stopped when GDB
//! exits, whichever way it exits.
//!
//! # One address, many programs
//!
//! Every user program is linked at the same address (`0x400000`) and runs in its own
//! address space, so the address of one component's `main` is, in another process, some
//! other code of that program, or even the other program's own `main`. The startup script
//! therefore never loads two components' symbols at once, and stops at a component's
//! `main` with a *guarded* hardware breakpoint:
//!
//! * `hbreak *MAIN` (a hardware breakpoint matches the virtual address the CPU executes,
//!   whatever the translation regime; nothing is written to memory);
//! * with a condition that reads a few 64-bit words of read-only memory (code or
//!   read-only data) at addresses where this component's ELF file differs from every
//!   other program of the image that could execute `MAIN` ([`ComponentSymbols::guard`]).
//!   The words are chosen on the host, from the ELF files, at addresses every such program
//!   maps, so the condition reads mapped memory in whichever process the breakpoint fires,
//!   and it is true only in a process running this component's program. Read-only
//!   segments never change at run time, so the check is deterministic;
//! * and breakpoint commands that swap in this component's symbol file before the stop
//!   is shown, so that `bt`, `list` and `info symbol` describe the right program.
//!
//! Two archive entries with identical ELF files cannot be told apart (they share their
//! symbols, so backtraces are still right). The GDB commands the script defines are listed
//! in [`startup_script`].

use std::{
    io::Read,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use elf::{
    ElfBytes,
    abi::{PF_W, PF_X, PT_LOAD, STT_FUNC},
    endian::AnyEndian,
};

use crate::{
    Error, Result,
    image::Image,
    process,
    qemu::{Console, QemuConfig},
    tools::{self, GDB},
};

/// The port QEMU's GDB stub listens on unless [`DebugOptions::port`] says otherwise
/// (QEMU's `-s` uses it too).
pub const DEFAULT_PORT: u16 = 1234;

/// Name of the startup script [`debug`] writes next to the image's kernel.
pub const SCRIPT_FILE: &str = "debug.gdb";

/// The symbol of the function a component's `main` is called from, defined by
/// `kaal_user::entry!` and `kaal_user::component!`: where [`ComponentSymbols::main`] is
/// when the program has no `<crate>::main` of its own (the compiler inlined it).
pub const USER_MAIN_SYMBOL: &str = "__kaal_user_main";

/// How to run a debugging session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DebugOptions {
    /// TCP port of QEMU's GDB stub, on 127.0.0.1. Default [`DEFAULT_PORT`].
    pub port: u16,
    /// A GDB script to run after the startup script, in batch mode: GDB exits when it
    /// ends (or when a command of it fails). `None`: an interactive session.
    pub batch: Option<PathBuf>,
    /// Components (archive entries) to stop at the `main` of: the startup script runs
    /// `kaal-break NAME` for each before the session starts.
    pub components: Vec<String>,
    /// Write the serial console to this file instead of the terminal.
    pub serial_log: Option<PathBuf>,
}

impl Default for DebugOptions {
    /// Port [`DEFAULT_PORT`], interactive, no breakpoints, serial on the terminal.
    fn default() -> Self {
        DebugOptions {
            port: DEFAULT_PORT,
            batch: None,
            components: Vec::new(),
            serial_log: None,
        }
    }
}

impl DebugOptions {
    /// Sets the GDB stub's port.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Runs the GDB script `file` in batch mode.
    pub fn batch(mut self, file: impl Into<PathBuf>) -> Self {
        self.batch = Some(file.into());
        self
    }

    /// Stops at the `main` of component `name` (repeatable).
    pub fn component(mut self, name: impl Into<String>) -> Self {
        self.components.push(name.into());
        self
    }

    /// Writes the serial console to `path`.
    pub fn serial_log(mut self, path: impl Into<PathBuf>) -> Self {
        self.serial_log = Some(path.into());
        self
    }
}

/// What GDB needs to know about one program of the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComponentSymbols {
    /// Archive entry name (`root-task` for the root task).
    pub name: String,
    /// Its ELF file.
    pub elf: PathBuf,
    /// Address and symbol name of its `main`: the program's `<crate>::main` if it has
    /// one, else [`USER_MAIN_SYMBOL`]; `None` if it has neither.
    pub main: Option<(u64, String)>,
    /// (address, value) pairs of little-endian 64-bit words of read-only memory that
    /// hold `value` in this program and a different value in every other program of the
    /// image that could execute `main`'s address (see the [module documentation](self)).
    pub guard: Vec<(u64, u64)>,
    /// Programs of the image this one cannot be told apart from at `main` (identical
    /// where both are mapped): a breakpoint at its `main` may also stop in them.
    pub ambiguous_with: Vec<String>,
}

/// The symbols of a whole image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSymbols {
    /// The kernel ELF.
    pub kernel: PathBuf,
    /// The kernel's entry point (its ELF entry, where QEMU starts the CPU).
    pub kernel_entry: u64,
    /// Every program of the archive, in archive order.
    pub components: Vec<ComponentSymbols>,
}

/// One program's ELF file, read for [`symbols`].
#[derive(Clone)]
struct Program {
    /// Archive entry name.
    name: String,
    /// The whole file.
    bytes: Vec<u8>,
    /// Loaded read-only segments with file contents: (address, offset in `bytes`, size).
    read_only: Vec<(u64, usize, u64)>,
    /// Executable segments: (address, size in memory).
    executable: Vec<(u64, u64)>,
    /// `main`, see [`ComponentSymbols::main`].
    main: Option<(u64, String)>,
}

impl Program {
    fn read(name: &str, path: &Path) -> Result<Program> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let bad = |what: &str| Error::Invalid(format!("{}: {what}", path.display()));
        let file = ElfBytes::<AnyEndian>::minimal_parse(&bytes).map_err(|e| bad(&e.to_string()))?;
        let mut read_only = Vec::new();
        let mut executable = Vec::new();
        for segment in file.segments().ok_or_else(|| bad("no program headers"))? {
            if segment.p_type != PT_LOAD {
                continue;
            }
            if segment.p_flags & PF_X != 0 {
                executable.push((segment.p_vaddr, segment.p_memsz));
            }
            let end = segment.p_offset.saturating_add(segment.p_filesz);
            if segment.p_flags & PF_W == 0 && segment.p_filesz > 0 && end <= bytes.len() as u64 {
                read_only.push((segment.p_vaddr, segment.p_offset as usize, segment.p_filesz));
            }
        }
        let stem = path
            .file_name()
            .map(|n| n.to_string_lossy().replace('-', "_"))
            .unwrap_or_default();
        let mut own_main = None;
        let mut user_main = None;
        if let Ok(Some((symbols, strings))) = file.symbol_table() {
            for symbol in symbols.iter() {
                if symbol.st_symtype() != STT_FUNC || symbol.st_value == 0 {
                    continue;
                }
                let Ok(name) = strings.get(symbol.st_name as usize) else {
                    continue;
                };
                if name == USER_MAIN_SYMBOL {
                    user_main = Some((symbol.st_value, name.to_owned()));
                } else if let Some(path) = demangle_path(name)
                    && path.len() == 2
                    && path[0] == stem
                    && path[1] == "main"
                {
                    own_main = Some((symbol.st_value, path.join("::")));
                }
            }
        }
        Ok(Program {
            name: name.to_owned(),
            main: own_main.or(user_main),
            bytes,
            read_only,
            executable,
        })
    }

    /// The 64-bit word at `address` if all of it lies in one read-only segment.
    fn word(&self, address: u64) -> Option<u64> {
        self.read_only.iter().find_map(|&(start, offset, size)| {
            let end = start + size;
            (address >= start && address.checked_add(8)? <= end).then(|| {
                let at = offset + (address - start) as usize;
                u64::from_le_bytes(self.bytes[at..at + 8].try_into().expect("8 bytes"))
            })
        })
    }

    fn executes(&self, address: u64) -> bool {
        self.executable
            .iter()
            .any(|&(start, size)| address >= start && address - start < size)
    }
}

/// The symbol path of a Rust symbol name (legacy `_ZN...E` mangling, hash dropped, or
/// a plain `v0` `_RNv` path of identifiers), e.g. `["sink", "main"]`; `None` for other
/// names.
pub fn demangle_path(symbol: &str) -> Option<Vec<String>> {
    fn idents(mut s: &str, end: Option<char>) -> Option<(Vec<String>, &str)> {
        let mut out = Vec::new();
        loop {
            if let Some(end) = end
                && let Some(rest) = s.strip_prefix(end)
            {
                return Some((out, rest));
            }
            let digits = s.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return end.is_none().then_some((out, s));
            }
            let len: usize = s[..digits].parse().ok()?;
            let rest = &s[digits..];
            // v0 separates an identifier starting with a digit or `_` by one `_`.
            let rest = if end.is_none() {
                rest.strip_prefix('_').unwrap_or(rest)
            } else {
                rest
            };
            out.push(rest.get(..len)?.to_owned());
            s = &rest[len..];
        }
    }
    if let Some(body) = symbol.strip_prefix("_ZN") {
        let (mut path, _) = idents(body, Some('E'))?;
        if path.last().is_some_and(|h| {
            h.len() == 17 && h.starts_with('h') && h[1..].bytes().all(|b| b.is_ascii_hexdigit())
        }) {
            path.pop();
        }
        return (!path.is_empty()).then_some(path);
    }
    // v0: `_RNv` followed by a crate root `C[s<disambiguator>_]<ident>` and nested
    // value-namespace identifiers (`Nv` prefixes come first, one per level).
    let mut body = symbol.strip_prefix("_R")?;
    let mut levels = 0;
    while let Some(rest) = body.strip_prefix("Nv") {
        body = rest;
        levels += 1;
    }
    let mut body = body.strip_prefix('C')?;
    if let Some(rest) = body.strip_prefix('s') {
        body = &rest[rest.find('_')? + 1..];
    }
    let (path, rest) = idents(body, None)?;
    (levels > 0 && path.len() == levels + 1 && rest.is_empty()).then_some(path)
}

/// Reads the kernel's entry and, for every program of `image`, its `main` and the guard
/// words that identify it (see the [module documentation](self)).
pub fn symbols(image: &Image) -> Result<ImageSymbols> {
    let kernel_bytes = std::fs::read(&image.kernel).map_err(|e| Error::io(&image.kernel, e))?;
    let kernel = ElfBytes::<AnyEndian>::minimal_parse(&kernel_bytes)
        .map_err(|e| Error::Invalid(format!("{}: {e}", image.kernel.display())))?;
    let kernel_entry = kernel.ehdr.e_entry;
    let programs = image
        .components
        .iter()
        .map(|c| Program::read(&c.name, &c.elf))
        .collect::<Result<Vec<_>>>()?;
    let components = programs
        .iter()
        .zip(&image.components)
        .map(|(program, component)| {
            let (guard, ambiguous_with) = match &program.main {
                Some((main, _)) => guard(program, &programs, *main),
                None => (Vec::new(), Vec::new()),
            };
            ComponentSymbols {
                name: program.name.clone(),
                elf: component.elf.clone(),
                main: program.main.clone(),
                guard,
                ambiguous_with,
            }
        })
        .collect();
    Ok(ImageSymbols {
        kernel: image.kernel.clone(),
        kernel_entry,
        components,
    })
}

/// Guard words for a breakpoint at `main` of `program` (see [`ComponentSymbols::guard`]),
/// and the programs it cannot be told apart from.
fn guard(program: &Program, all: &[Program], main: u64) -> (Vec<(u64, u64)>, Vec<String>) {
    let others: Vec<&Program> = all
        .iter()
        .filter(|p| p.name != program.name && p.executes(main))
        .collect();
    // Addresses every program that could hit the breakpoint maps read-only, so that the
    // condition never reads unmapped memory, whichever of them hits it.
    let common = |address: u64| {
        program.word(address).is_some() && others.iter().all(|p| p.word(address).is_some())
    };
    let mut guard: Vec<(u64, u64)> = Vec::new();
    let mut ambiguous = Vec::new();
    for other in &others {
        if guard
            .iter()
            .any(|&(address, value)| other.word(address) != Some(value))
        {
            continue;
        }
        let found = program.read_only.iter().find_map(|&(start, _, size)| {
            let first = start.next_multiple_of(8);
            (first..start + size)
                .step_by(8)
                .filter(|&a| common(a))
                .find_map(|a| {
                    let value = program.word(a)?;
                    (other.word(a) != Some(value)).then_some((a, value))
                })
        });
        match found {
            Some(word) => guard.push(word),
            None => ambiguous.push(other.name.clone()),
        }
    }
    guard.sort_unstable();
    (guard, ambiguous)
}

/// Whether `name` can be part of a GDB command name (`kaal-break-NAME`).
fn gdb_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// `path` as one GDB command argument (double-quoted when it has to be).
fn gdb_path(path: &Path) -> String {
    let s = path.display().to_string();
    if s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-+,=@".contains(&b))
    {
        s
    } else {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// The GDB startup script for `symbols`: connects to QEMU's stub on 127.0.0.1:`port`,
/// loads the kernel's symbols, defines the commands below, then runs `kaal-break NAME`
/// for each of `breaks`.
///
/// * `kaal-components`: lists the programs and the addresses of their `main`.
/// * `kaal-break NAME`: a guarded hardware breakpoint at program `NAME`'s `main` that
///   swaps in `NAME`'s symbols when it stops (also `kaal-break-NAME`).
/// * `kaal-symbols NAME`: makes `NAME`'s symbols the loaded user-space ones (also
///   `kaal-symbols-NAME`); `kaal-unload` removes them.
/// * `$kaal_kernel_entry`: the kernel's entry address, where the CPU waits at reset.
///
/// # Errors
///
/// A name of `breaks` is not a program of the image, or has no `main`.
pub fn startup_script(symbols: &ImageSymbols, port: u16, breaks: &[String]) -> Result<String> {
    use std::fmt::Write;
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(
        w,
        "# KaaL debugging session, generated by kaal-build (rewritten by every session).\n\
         set pagination off\nset confirm off\nset print asm-demangle on\n\
         file {}\nset $kaal_kernel_entry = {:#x}\nset $kaal_symbols = -1\n",
        gdb_path(&symbols.kernel),
        symbols.kernel_entry
    );
    let programs: Vec<(usize, &ComponentSymbols)> = symbols
        .components
        .iter()
        .enumerate()
        .filter(|(_, c)| gdb_name(&c.name))
        .collect();
    let _ = writeln!(w, "define kaal-unload");
    for (i, c) in &programs {
        let _ = writeln!(
            w,
            "  if $kaal_symbols == {i}\n    remove-symbol-file {}\n  end",
            gdb_path(&c.elf)
        );
    }
    let _ = writeln!(
        w,
        "  set $kaal_symbols = -1\nend\ndocument kaal-unload\n\
         Remove the user-space symbols loaded by kaal-symbols.\nend\n"
    );
    for (i, c) in &programs {
        let name = &c.name;
        let _ = writeln!(
            w,
            "define kaal-symbols-{name}\n  if $kaal_symbols != {i}\n    kaal-unload\n    \
             add-symbol-file {}\n    set $kaal_symbols = {i}\n  end\nend\n",
            gdb_path(&c.elf)
        );
        let Some((main, symbol)) = &c.main else {
            continue;
        };
        let mut condition: Vec<String> = c
            .guard
            .iter()
            .map(|(address, value)| format!("*(unsigned long long *){address:#x} == {value:#x}ULL"))
            .collect();
        if condition.is_empty() {
            condition.push("1".into());
        }
        let _ = writeln!(
            w,
            "define kaal-break-{name}\n  kaal-symbols-{name}\n  set language c\n  \
             hbreak *{main:#x} if {}\n  set language auto\n  commands\n    \
             kaal-symbols-{name}\n    frame\n  end\nend\ndocument kaal-break-{name}\n\
             Stop at {symbol} of {name} ({main:#x}), in {name}'s address space only.\nend\n",
            condition.join(" && ")
        );
    }
    let _ = writeln!(
        w,
        "define kaal-break\n  if $argc != 1\n    kaal-components\n  else\n    \
         kaal-break-$arg0\n  end\nend\ndocument kaal-break\n\
         kaal-break NAME: stop at the main of program NAME (see kaal-components).\nend\n"
    );
    let _ = writeln!(
        w,
        "define kaal-symbols\n  kaal-symbols-$arg0\nend\ndocument kaal-symbols\n\
         kaal-symbols NAME: use the symbols of program NAME for user-space addresses.\nend\n"
    );
    let _ = writeln!(w, "define kaal-components");
    for (_, c) in &programs {
        let main = match &c.main {
            Some((address, symbol)) => format!("main {symbol} at {address:#x}"),
            None => "no main".into(),
        };
        let _ = writeln!(w, "  echo   {}: {main}\\n", c.name);
    }
    let _ = writeln!(
        w,
        "end\ndocument kaal-components\nList the programs of the image.\nend\n"
    );
    let _ = writeln!(w, "target remote 127.0.0.1:{port}");
    for name in breaks {
        let Some(c) = symbols.components.iter().find(|c| &c.name == name) else {
            let names: Vec<&str> = symbols.components.iter().map(|c| &*c.name).collect();
            return Err(Error::Invalid(format!(
                "no program `{name}` in the image (programs: {})",
                names.join(", ")
            )));
        };
        if c.main.is_none() || !gdb_name(name) {
            return Err(Error::Invalid(format!(
                "program `{name}` has no `main` symbol ({USER_MAIN_SYMBOL})"
            )));
        }
        let _ = writeln!(w, "kaal-break {name}");
    }
    let _ = writeln!(
        w,
        "echo kaal: the CPU waits at the kernel entry; kaal-components lists the programs, \
         kaal-break NAME stops at one's main.\\n"
    );
    Ok(s)
}

/// Writes the startup script of `image` as [`SCRIPT_FILE`] next to its kernel and
/// returns the script's path and the symbols it was made from. Warns on standard error
/// about programs a breakpoint of `options.components` cannot tell apart.
pub fn write_startup_script(
    image: &Image,
    options: &DebugOptions,
) -> Result<(PathBuf, ImageSymbols)> {
    let symbols = symbols(image)?;
    let script = startup_script(&symbols, options.port, &options.components)?;
    for c in &symbols.components {
        if options.components.contains(&c.name) && !c.ambiguous_with.is_empty() {
            eprintln!(
                "kaal-build: warning: {} cannot be told apart from {} at its main: \
                 the breakpoint may stop in either",
                c.name,
                c.ambiguous_with.join(", ")
            );
        }
    }
    let dir = image.kernel.parent().unwrap_or(Path::new("."));
    let path = dir.join(SCRIPT_FILE);
    std::fs::write(&path, script).map_err(|e| Error::io(&path, e))?;
    Ok((path, symbols))
}

/// QEMU's command for a debugging session: `config` booting `image`, the CPU stopped at
/// reset (`-S`), the GDB stub on 127.0.0.1:`options.port`, the serial console on
/// standard output or in `options.serial_log`.
pub fn qemu_command(config: &QemuConfig, image: &Image, options: &DebugOptions) -> Command {
    let mut args = config.args(&image.kernel, Console::Captured);
    if let Some(log) = &options.serial_log
        && let Some(at) = args.iter().position(|a| a == "-serial")
    {
        args[at + 1] = format!("file:{}", log.display()).into();
    }
    let at = args.len() - 2; // before `-kernel PATH`
    let gdb = format!("tcp:127.0.0.1:{}", options.port);
    args.splice(at..at, ["-gdb".into(), gdb.into(), "-S".into()]);
    let mut cmd = Command::new(tools::QEMU);
    cmd.args(args);
    cmd
}

/// GDB's command: `gdb-multiarch` running `script`, then `batch` in batch mode if given.
pub fn gdb_command(script: &Path, batch: Option<&Path>) -> Command {
    let mut cmd = Command::new(GDB);
    cmd.arg("-q");
    if let Some(batch) = batch {
        // No `~/.gdbinit` in batch mode, so that a script runs the same everywhere.
        cmd.args(["-nx", "-batch"]);
        cmd.arg("-x").arg(script).arg("-x").arg(batch);
    } else {
        cmd.arg("-x").arg(script);
    }
    cmd
}

/// A shell that runs QEMU (the arguments after the pid) as long as process `$1` lives,
/// then stops it; it stops it as well when it gets SIGTERM, SIGINT or SIGHUP.
const WATCHDOG: &str = r#"watch=$1; shift
"$@" </dev/null &
qemu=$!
trap 'kill $qemu 2>/dev/null; wait $qemu; exit 0' TERM INT HUP
while kill -0 "$watch" 2>/dev/null && kill -0 "$qemu" 2>/dev/null; do sleep 0.2; done
kill $qemu 2>/dev/null
wait $qemu
exit 0"#;

/// Starts `qemu` under a watchdog that stops it once process `watch` has exited, in a
/// process group of its own, so that Ctrl-C (meant for GDB) does not reach it.
fn start_qemu(qemu: &Command, watch: u32, quiet: bool) -> Result<Child> {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", WATCHDOG, "sh", &watch.to_string()])
        .arg(qemu.get_program())
        .args(qemu.get_args())
        .stdin(Stdio::null());
    if quiet {
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
    }
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    eprintln!("kaal-build: {}", process::display(qemu));
    cmd.spawn().map_err(|source| Error::Spawn {
        command: process::display(qemu),
        source,
    })
}

/// Stops the watchdog (and with it QEMU) and reaps it.
fn stop_qemu(mut watchdog: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &watchdog.id().to_string()])
        .stderr(Stdio::null())
        .status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = watchdog.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = watchdog.kill();
    let _ = watchdog.wait();
}

/// Debugs `image` booted on `config`: installs `gdb-multiarch` if needed
/// ([`tools::ensure_gdb`]), writes the startup script ([`write_startup_script`]), starts
/// QEMU paused at reset with its GDB stub ([`qemu_command`]) and GDB connected to it.
///
/// With [`DebugOptions::batch`], GDB runs the script and exits; QEMU is stopped then, and
/// GDB's exit status is returned. Interactively, on Unix, this process *becomes* GDB
/// (`exec`), so that Ctrl-C interrupts the target instead of ending the session; QEMU is
/// stopped when GDB exits, and the call returns only if GDB cannot be started.
pub fn debug(config: &QemuConfig, image: &Image, options: &DebugOptions) -> Result<ExitStatus> {
    tools::ensure_gdb()?;
    let (script, _) = write_startup_script(image, options)?;
    let qemu = qemu_command(config, image, options);
    let mut gdb = gdb_command(&script, options.batch.as_deref());
    eprintln!("kaal-build: {}", process::display(&gdb));
    if options.batch.is_none() {
        #[cfg(unix)]
        {
            let watchdog = start_qemu(&qemu, std::process::id(), false)?;
            let source = std::os::unix::process::CommandExt::exec(&mut gdb);
            stop_qemu(watchdog);
            return Err(Error::Spawn {
                command: process::display(&gdb),
                source,
            });
        }
    }
    let mut child = gdb.spawn().map_err(|source| Error::Spawn {
        command: process::display(&gdb),
        source,
    })?;
    let watchdog = match start_qemu(&qemu, child.id(), false) {
        Ok(watchdog) => watchdog,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
    };
    let status = child.wait();
    stop_qemu(watchdog);
    status.map_err(|source| Error::Spawn {
        command: process::display(&gdb),
        source,
    })
}

/// What a captured batch session printed.
#[derive(Clone, Debug)]
pub struct DebugOutput {
    /// GDB's exit status; `None` if it was stopped at the timeout.
    pub status: Option<ExitStatus>,
    /// GDB's standard output, then its standard error.
    pub output: String,
    /// How long the session took.
    pub elapsed: Duration,
}

/// Like [`debug`] in batch mode ([`DebugOptions::batch`] must be set), but captures
/// GDB's output and stops GDB (and QEMU) after `timeout`. QEMU's own output is
/// discarded: set [`DebugOptions::serial_log`] to keep the serial console.
pub fn debug_captured(
    config: &QemuConfig,
    image: &Image,
    options: &DebugOptions,
    timeout: Duration,
) -> Result<DebugOutput> {
    let Some(batch) = &options.batch else {
        return Err(Error::Invalid(
            "debug_captured needs a batch script (DebugOptions::batch)".into(),
        ));
    };
    tools::ensure_gdb()?;
    let (script, _) = write_startup_script(image, options)?;
    let qemu = qemu_command(config, image, options);
    let mut gdb = gdb_command(&script, Some(batch));
    gdb.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = gdb.spawn().map_err(|source| Error::Spawn {
        command: process::display(&gdb),
        source,
    })?;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut text);
            }
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let out = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let err = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let watchdog = start_qemu(&qemu, child.id(), true);
    let deadline = started + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline && watchdog.is_ok() => {
                std::thread::sleep(Duration::from_millis(50));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let watchdog = watchdog?;
    stop_qemu(watchdog);
    let mut output = out.join().unwrap_or_default();
    output.push_str(&err.join().unwrap_or_default());
    Ok(DebugOutput {
        status,
        output,
        elapsed: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demangles_rust_paths() {
        assert_eq!(
            demangle_path("_ZN4sink4main17h0123456789abcdefE").unwrap(),
            ["sink", "main"]
        );
        assert_eq!(
            demangle_path("_ZN9kaal_user7runtime15kaal_user_start17hfedcba9876543210E").unwrap(),
            ["kaal_user", "runtime", "kaal_user_start"]
        );
        assert_eq!(
            demangle_path("_RNvCs1234_4sink4main").unwrap(),
            ["sink", "main"]
        );
        assert_eq!(
            demangle_path("_RNvNtCs1234_9kaal_user7runtime4main").as_deref(),
            None,
            "module paths (`Nt`) are not plain value paths"
        );
        assert_eq!(demangle_path("__kaal_user_main"), None);
        assert_eq!(demangle_path("_ZN4sinkE").unwrap(), ["sink"]);
        assert_eq!(demangle_path("_ZN99sinkE"), None);
    }

    /// A program whose read-only memory is `words` from 0x400000 and whose code covers it.
    fn program(name: &str, words: &[u64], main: u64) -> Program {
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        let size = bytes.len() as u64;
        Program {
            name: name.into(),
            bytes,
            read_only: vec![(0x40_0000, 0, size)],
            executable: vec![(0x40_0000, size)],
            main: Some((main, format!("{name}::main"))),
        }
    }

    #[test]
    fn guard_words_tell_the_programs_apart() {
        let sink = program("sink", &[1, 2, 3, 4], 0x40_0010);
        let source = program("source", &[1, 5, 3, 4], 0x40_0010);
        let clock = program("clock", &[1, 2, 6, 4], 0x40_0010);
        let twin = program("twin", &[1, 2, 3, 4], 0x40_0010);
        let short = program("short", &[9], 0x40_0000);
        let all = [sink, source, clock, twin, short];
        let (guard, ambiguous) = guard(&all[0], &all, 0x40_0010);
        // `short` never executes 0x400010; `twin` is the same program.
        assert_eq!(guard, [(0x40_0008, 2), (0x40_0010, 3)]);
        assert_eq!(ambiguous, ["twin"]);
        // Every guard address is mapped in every program that executes `main`.
        for p in all.iter().filter(|p| p.executes(0x40_0010)) {
            assert!(
                guard.iter().all(|&(a, _)| p.word(a).is_some()),
                "{}",
                p.name
            );
        }
        // A word one program lacks is not used: `long` has more memory than the others.
        let long = program("long", &[1, 2, 3, 4, 7], 0x40_0010);
        let other = program("other", &[1, 2, 3, 4], 0x40_0010);
        let (guard, ambiguous) = super::guard(&long, &[long.clone(), other], 0x40_0010);
        assert!(guard.is_empty());
        assert_eq!(ambiguous, ["other"]);
    }

    fn image_symbols() -> ImageSymbols {
        ImageSymbols {
            kernel: "/img/kernel.elf".into(),
            kernel_entry: 0x4020_0000,
            components: vec![
                ComponentSymbols {
                    name: "root-task".into(),
                    elf: "/t/root task".into(),
                    main: Some((0x40_3210, USER_MAIN_SYMBOL.into())),
                    guard: vec![(0x40_0008, 0xaa)],
                    ambiguous_with: Vec::new(),
                },
                ComponentSymbols {
                    name: "sink".into(),
                    elf: "/t/sink".into(),
                    main: Some((0x40_0010, "sink::main".into())),
                    guard: vec![(0x40_0008, 0x1400_0000_9400_03a4), (0x40_0100, 7)],
                    ambiguous_with: Vec::new(),
                },
                ComponentSymbols {
                    name: "data".into(),
                    elf: "/t/data".into(),
                    main: None,
                    guard: Vec::new(),
                    ambiguous_with: Vec::new(),
                },
            ],
        }
    }

    #[test]
    fn startup_script_defines_guarded_breakpoints() {
        let s = startup_script(&image_symbols(), 4321, &["sink".into()]).unwrap();
        assert!(s.contains("file /img/kernel.elf\n"), "{s}");
        assert!(s.contains("set $kaal_kernel_entry = 0x40200000\n"), "{s}");
        assert!(s.contains("target remote 127.0.0.1:4321\n"), "{s}");
        assert!(
            s.contains(
                "  hbreak *0x400010 if *(unsigned long long *)0x400008 == 0x14000000940003a4ULL \
                 && *(unsigned long long *)0x400100 == 0x7ULL\n"
            ),
            "{s}"
        );
        assert!(
            s.contains("  commands\n    kaal-symbols-sink\n    frame\n  end\n"),
            "{s}"
        );
        assert!(
            s.contains("define kaal-symbols-sink\n  if $kaal_symbols != 1\n    kaal-unload\n    add-symbol-file /t/sink\n"),
            "{s}"
        );
        assert!(
            s.contains("  if $kaal_symbols == 0\n    remove-symbol-file \"/t/root task\"\n  end\n"),
            "{s}"
        );
        assert!(s.contains("    kaal-break-$arg0\n"), "{s}");
        assert!(
            !s.contains("kaal-break-data"),
            "no main, no breakpoint: {s}"
        );
        assert!(s.contains("define kaal-symbols-data\n"), "{s}");
        // The breakpoints come after the connection.
        let connect = s.find("target remote").unwrap();
        assert!(s[connect..].contains("\nkaal-break sink\n"), "{s}");
    }

    #[test]
    fn unknown_or_mainless_breaks_are_rejected() {
        let e = startup_script(&image_symbols(), 1, &["nope".into()]).unwrap_err();
        assert!(
            e.to_string().contains("programs: root-task, sink, data"),
            "{e}"
        );
        let e = startup_script(&image_symbols(), 1, &["data".into()]).unwrap_err();
        assert!(e.to_string().contains("no `main`"), "{e}");
    }

    #[test]
    fn qemu_waits_for_gdb_on_the_port() {
        let image = Image {
            kernel: "/img/kernel.elf".into(),
            archive: "/img/components.kaal".into(),
            components: Vec::new(),
        };
        let options = DebugOptions::default()
            .port(4321)
            .serial_log("/tmp/serial.log");
        let shown = process::display(&qemu_command(&QemuConfig::default(), &image, &options));
        assert!(shown.contains(" -serial file:/tmp/serial.log "), "{shown}");
        assert!(
            shown.ends_with(" -gdb tcp:127.0.0.1:4321 -S -kernel /img/kernel.elf"),
            "{shown}"
        );
        let gdb = process::display(&gdb_command(Path::new("/s.gdb"), Some(Path::new("/b.gdb"))));
        assert_eq!(gdb, "gdb-multiarch -q -nx -batch -x /s.gdb -x /b.gdb");
        let gdb = process::display(&gdb_command(Path::new("/s.gdb"), None));
        assert_eq!(gdb, "gdb-multiarch -q -x /s.gdb");
    }
}
