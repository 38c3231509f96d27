//! `system.toml`: the description of a KaaL system, checked at build time.
//!
//! A system lists its components (programs from the component archive) with what each
//! may use: memory, devices, interrupt lines, broker services. Channels (ring buffers
//! between two components) and endpoints (IPC between a server and its clients) connect
//! them. [`parse`] checks the file and returns a
//! [`SystemDescription`]; [`compile`] also writes its binary form
//! ([`SystemDescription::encode`]), which the image embeds as the archive entry
//! [`kaal_bootinfo::system::SYSTEM_ENTRY`] and the root task decodes at run time.
//!
//! ```toml
//! [system]
//! name = "demo"
//!
//! [devices.rtc]            # a device-tree node, by compatible string and index (default 0)
//! compatible = "arm,pl031"
//! index = 0
//!
//! [types.Sample]           # element types beyond the built-ins u8 u16 u32 u64 i8 i16 i32 i64
//! size = 16
//! align = 8
//!
//! [components.producer]
//! image = "producer"       # archive entry name; default: the component name
//! priority = 100           # 1..=127 (below the broker's 128), default 100
//! stack_bytes = 65536      # default 64 KiB, a multiple of 4096, > 0
//! heap_bytes = 1048576     # default 1 MiB, a multiple of 4096
//! memory_quota = "8 MiB"   # bytes or a string such as "512 KiB"; default "8 MiB"
//! restart = "always"       # "never" (default) | "always" | { at_most = 3, within_seconds = 10 }
//! devices = ["rtc"]        # names from [devices]
//! irqs = [40]              # bare interrupt lines, 32..=1019
//! services = ["memory", "processes"]   # memory, processes, system-control
//! types = ["Sample"]       # element types from [types] it uses
//! arguments = 0            # x0 at start, default 0
//! core = 1                 # the CPU it runs on, 0..=7 (the kernel runs up to 8), default 0
//!
//! [components.consumer]
//! types = ["Sample"]
//!
//! [channels.samples]
//! element = "Sample"       # a built-in or a [types] name
//! capacity = 1024          # a power of two, 1..=2^30
//! from = "producer"
//! to = "consumer"
//!
//! [endpoints.echo]
//! server = "consumer"
//! clients = ["producer"]
//! ```
//!
//! Sizes (`stack_bytes`, `heap_bytes`, `memory_quota`) are integers or strings of an
//! integer and a unit: `B`, `KiB`, `MiB`, `GiB` or `TiB`. Stack and heap count towards
//! the component's memory quota; the quotas of all components together must fit in RAM.
//!
//! Every error names the file, the line and column of the offending key or value, and
//! the problem: `system.toml:12:1: duplicate component name `producer``.
//!
//! # Typed accessors
//!
//! [`accessors`] generates, for one component, a `Grants` struct with one method per
//! grant of that component, named after the grant and typed from the description
//! (`grants.samples()` is `startup.producer::<u64, 64>("samples")`), so that a misspelt
//! grant name fails to compile instead of failing at run time with
//! `StartupError::NotGranted`. [`write_accessors`] does it from a component's build
//! script:
//!
//! ```no_run
//! // build.rs of the component `sensor`, with `kaal-build` as a build dependency.
//! use std::path::{Path, PathBuf};
//!
//! fn main() {
//!     let system = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../system.toml");
//!     let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap()).join("grants.rs");
//!     if let Err(error) = kaal_build::system::write_accessors(&system, "sensor", &out) {
//!         println!("cargo::error={error}");
//!     }
//! }
//! ```
//!
//! ```ignore
//! // src/main.rs of the component.
//! mod grants {
//!     include!(concat!(env!("OUT_DIR"), "/grants.rs"));
//! }
//!
//! let grants = grants::Grants::new(kaal_user::startup()?);
//! let mut samples = grants.samples()?;   // ChannelProducer<u64, 64>
//! let control = grants.control()?;       // served: Cap<Endpoint>
//! ```

use std::fmt;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};

pub use crate::accessors::{AccessorError, accessors, write_accessors};
use kaal_bootinfo::archive::MAX_NAME_BYTES as MAX_IMAGE_NAME_BYTES;
use kaal_bootinfo::startup::MAX_GRANT_NAME_BYTES;
pub use kaal_bootinfo::system::SYSTEM_ENTRY;
use kaal_bootinfo::system::{
    ChannelSpec, ComponentSpec, DeviceSpec, EndpointSpec, RestartPolicy, SystemDescription,
    services,
};
use toml::Spanned;
use toml::de::{DeArray, DeTable, DeValue};

/// Page size: stacks and heaps are whole pages.
const PAGE_BYTES: u64 = 4096;
/// Lowest and highest component priority.
/// Component priorities: below the root task's 128 (the kernel's default), so that the broker
/// handling a fault or a request always preempts the components it serves.
const PRIORITIES: std::ops::RangeInclusive<i128> = 1..=127;
/// Interrupt lines a component may be granted: the GIC's shared peripheral interrupts.
const IRQS: std::ops::RangeInclusive<i128> = 32..=1019;
/// Largest channel capacity.
const MAX_CAPACITY: i128 = 1 << 30;
/// CPUs a component may be placed on: the kernel runs at most eight. Whether the machine
/// has that many is known only when it runs (the broker then says so and uses CPU 0).
const CORES: std::ops::RangeInclusive<i128> = 0..=7;
const DEFAULT_PRIORITY: u8 = 100;
const DEFAULT_STACK_BYTES: u64 = 64 * 1024;
const DEFAULT_HEAP_BYTES: u64 = 1024 * 1024;
const DEFAULT_MEMORY_QUOTA: u64 = 8 * 1024 * 1024;

/// The element types every system knows: name, size, alignment.
pub(crate) const BUILTIN_TYPES: [(&str, u32, u32); 8] = [
    ("u8", 1, 1),
    ("u16", 2, 2),
    ("u32", 4, 4),
    ("u64", 8, 8),
    ("i8", 1, 1),
    ("i16", 2, 2),
    ("i32", 4, 4),
    ("i64", 8, 8),
];

/// The broker services by their `system.toml` names.
pub(crate) const SERVICES: [(&str, u32); 3] = [
    ("memory", services::MEMORY),
    ("processes", services::PROCESSES),
    ("system-control", services::SYSTEM_CONTROL),
];

const TOP_KEYS: &[&str] = &[
    "system",
    "devices",
    "types",
    "components",
    "channels",
    "endpoints",
];
const SYSTEM_KEYS: &[&str] = &["name"];
const DEVICE_KEYS: &[&str] = &["compatible", "index"];
const TYPE_KEYS: &[&str] = &["size", "align"];
const COMPONENT_KEYS: &[&str] = &[
    "image",
    "priority",
    "stack_bytes",
    "heap_bytes",
    "memory_quota",
    "restart",
    "devices",
    "irqs",
    "services",
    "types",
    "arguments",
    "driver",
    "dma",
    "core",
];
const RESTART_KEYS: &[&str] = &["at_most", "within_seconds"];
const CHANNEL_KEYS: &[&str] = &["element", "capacity", "from", "to"];
const ENDPOINT_KEYS: &[&str] = &["server", "clients"];

/// A problem with a `system.toml`: where it is and what it is.
///
/// Displayed as `path:line:column: problem`, or as `path: problem` when the file
/// could not be read or the output not written (then there is no line).
#[derive(Debug)]
pub struct SystemTomlError {
    path: PathBuf,
    location: Option<(usize, usize)>,
    message: String,
    source: Option<io::Error>,
}

impl SystemTomlError {
    /// The file the problem is in (for I/O problems of [`compile`], possibly the output).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The line (1-based) of the problem, `None` for I/O problems.
    pub fn line(&self) -> Option<usize> {
        self.location.map(|(line, _)| line)
    }

    /// The column (1-based, in characters) of the problem, `None` for I/O problems.
    pub fn column(&self) -> Option<usize> {
        self.location.map(|(_, column)| column)
    }

    /// The problem, without the location.
    pub fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn io(path: &Path, what: &str, source: io::Error) -> Self {
        SystemTomlError {
            path: path.to_path_buf(),
            location: None,
            message: format!("{what}: {source}"),
            source: Some(source),
        }
    }
}

impl fmt::Display for SystemTomlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location {
            Some((line, column)) => write!(
                f,
                "{}:{line}:{column}: {}",
                self.path.display(),
                self.message
            ),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

impl std::error::Error for SystemTomlError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

type Result<T, E = SystemTomlError> = std::result::Result<T, E>;

/// Reads and checks the `system.toml` at `path` for a machine with `ram_bytes` of RAM.
///
/// # Errors
///
/// The file cannot be read, or any problem [`parse`] finds.
pub fn load(path: &Path, ram_bytes: u64) -> Result<SystemDescription> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| SystemTomlError::io(path, "cannot read the system description", e))?;
    parse(path, &text, ram_bytes)
}

/// Reads and checks the `system.toml` at `path` and writes its binary form to `out`
/// (creating the directory), rewriting `out` only when its contents change.
///
/// # Errors
///
/// As [`load`], or `out` cannot be written.
pub fn compile(path: &Path, out: &Path, ram_bytes: u64) -> Result<SystemDescription> {
    let system = load(path, ram_bytes)?;
    let bytes = system.encode();
    if std::fs::read(out).is_ok_and(|old| old == bytes) {
        return Ok(system);
    }
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| SystemTomlError::io(dir, "cannot create the output directory", e))?;
    }
    std::fs::write(out, bytes)
        .map_err(|e| SystemTomlError::io(out, "cannot write the system description", e))?;
    Ok(system)
}

/// Checks the text of a `system.toml` for a machine with `ram_bytes` of RAM and returns
/// the system it describes. `path` is only used in messages.
///
/// # Errors
///
/// The first problem found, with its line and column: TOML syntax (including a key or
/// table defined twice), an unknown key, a value of the wrong type or out of range, a
/// duplicate name, a reference to an undefined component, device or type, a device or
/// IRQ granted twice, a channel from a component to itself, memory quotas beyond RAM,
/// no components.
pub fn parse(path: &Path, text: &str, ram_bytes: u64) -> Result<SystemDescription> {
    let cx = Cx { path, text };
    let root = DeTable::parse(text).map_err(|e| cx.toml_error(&e))?;
    Parser {
        cx,
        ram_bytes,
        types: Vec::new(),
        component_types: Vec::new(),
    }
    .document(root.get_ref())
}

/// A component's `driver = "NAME"`: the driver (by its `#[driver(name = "...")]`) its
/// image must contain, whose device matches must cover the devices the component is
/// granted. Checked against the built image by
/// [`driver::check_drivers`](crate::driver::check_drivers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriverDeclaration {
    /// The component.
    pub component: String,
    /// The driver's name.
    pub driver: String,
    /// Where the value is in the file.
    pub(crate) span: Range<usize>,
}

/// The `driver` keys of a `system.toml` (which [`parse`] has checked).
///
/// # Errors
///
/// The text is not TOML, or a `driver` is not a string.
pub fn driver_declarations(path: &Path, text: &str) -> Result<Vec<DriverDeclaration>> {
    let cx = Cx { path, text };
    let root = DeTable::parse(text).map_err(|e| cx.toml_error(&e))?;
    let mut declarations = Vec::new();
    let Some(components) = root.get_ref().get("components") else {
        return Ok(declarations);
    };
    let Some(components) = components.get_ref().as_table() else {
        return Ok(declarations);
    };
    for (name, table) in components {
        let Some(table) = table.get_ref().as_table() else {
            continue;
        };
        if let Some(driver) = table.get("driver") {
            let text = driver.get_ref().as_str().ok_or_else(|| {
                cx.error(
                    driver.span(),
                    format!(
                        "`driver` of component `{}` must be a string",
                        name.get_ref()
                    ),
                )
            })?;
            declarations.push(DriverDeclaration {
                component: name.get_ref().to_string(),
                driver: text.to_owned(),
                span: driver.span(),
            });
        }
    }
    Ok(declarations)
}

/// An error at byte `span` of `text` (the contents of `path`), or at no line if `span` is
/// `None`.
pub(crate) fn error_at(
    path: &Path,
    text: &str,
    span: Option<Range<usize>>,
    message: impl Into<String>,
) -> SystemTomlError {
    match span {
        Some(span) => Cx { path, text }.error(span, message),
        None => SystemTomlError {
            path: path.to_path_buf(),
            location: None,
            message: message.into(),
            source: None,
        },
    }
}

/// The file being checked, for locating errors.
#[derive(Clone, Copy)]
struct Cx<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Cx<'_> {
    /// Line and column (1-based, columns in characters) of byte `offset`.
    fn line_col(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        (line, before[line_start..].chars().count() + 1)
    }

    fn error(&self, span: Range<usize>, message: impl Into<String>) -> SystemTomlError {
        SystemTomlError {
            path: self.path.to_path_buf(),
            location: Some(self.line_col(span.start)),
            message: message.into(),
            source: None,
        }
    }

    /// Turns a TOML syntax error into ours, naming duplicate tables in our terms.
    fn toml_error(&self, e: &toml::de::Error) -> SystemTomlError {
        let span = e.span().unwrap_or(0..0);
        if e.message() != "duplicate key" {
            return self.error(span, format!("TOML syntax error: {}", e.message()));
        }
        let key = self.text.get(span.clone()).unwrap_or("").trim();
        let start = span.start.min(self.text.len());
        let line_start = self
            .text
            .get(..start)
            .and_then(|before| before.rfind('\n'))
            .map_or(0, |i| i + 1);
        let rest = self.text.get(line_start..).unwrap_or("");
        let line_text = rest.lines().next().unwrap_or("");
        let header = line_text.trim_start();
        if header.starts_with('[') && !header.starts_with("[[") {
            let inner = header.trim_start_matches('[');
            let inner = inner.split(']').next().unwrap_or("");
            let path = split_dotted(inner);
            let indent = line_text.len() - header.len();
            let at = line_start + indent;
            if let [section, name] = path.as_slice() {
                let kind = match section.as_str() {
                    "components" => Some("component"),
                    "devices" => Some("device"),
                    "types" => Some("type"),
                    "channels" => Some("channel"),
                    "endpoints" => Some("endpoint"),
                    _ => None,
                };
                if let Some(kind) = kind {
                    return self.error(at..at, format!("duplicate {kind} name `{name}`"));
                }
            }
            return self.error(at..at, format!("duplicate table [{}]", inner.trim()));
        }
        self.error(span, format!("duplicate key `{key}`"))
    }
}

/// Splits a dotted TOML key (`components."my comp"`) into its parts, for messages.
fn split_dotted(key: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quote = None;
    for c in key.chars() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '.') => parts.push(std::mem::take(&mut current).trim().to_owned()),
            (_, c) => current.push(c),
        }
    }
    parts.push(current.trim().to_owned());
    parts
}

type Value<'i> = Spanned<DeValue<'i>>;
type Key<'i> = Spanned<std::borrow::Cow<'i, str>>;

/// Walks the parsed document.
struct Parser<'a> {
    cx: Cx<'a>,
    ram_bytes: u64,
    /// The declared `[types]`: name, size, alignment.
    types: Vec<(String, u32, u32)>,
    /// The `types` list of each component, in component order.
    component_types: Vec<Vec<String>>,
}

/// The kind of a value for messages: "a string", "an integer", ...
fn kind(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (unit, size) in UNITS {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{} {unit}", bytes / size);
        }
    }
    format!("{bytes} bytes")
}

/// Parses a size string: an integer, optionally followed by a unit.
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '_'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    let number = number.replace('_', "");
    if number.is_empty() {
        return Err(format!(
            "cannot parse size \"{text}\": expected a whole number and a unit such as \"8 MiB\""
        ));
    }
    let multiplier: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        other => {
            return Err(format!(
                "cannot parse size \"{text}\": unknown unit `{other}` (use B, KiB, MiB, GiB or TiB)"
            ));
        }
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .ok_or_else(|| format!("size \"{text}\" is too large"))
}

fn check_keys(cx: &Cx<'_>, table: &DeTable<'_>, allowed: &[&str], what: &str) -> Result<()> {
    for key in table.keys() {
        if !allowed.contains(&key.get_ref().as_ref()) {
            return Err(cx.error(
                key.span(),
                format!(
                    "unknown key `{}` in {what} (expected one of: {})",
                    key.get_ref(),
                    allowed.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

fn get<'t, 'i>(table: &'t DeTable<'i>, key: &str) -> Option<&'t Value<'i>> {
    table.get(key)
}

impl Parser<'_> {
    fn error(&self, span: Range<usize>, message: impl Into<String>) -> SystemTomlError {
        self.cx.error(span, message)
    }

    fn table<'t, 'i>(&self, value: &'t Value<'i>, what: &str) -> Result<&'t DeTable<'i>> {
        value.get_ref().as_table().ok_or_else(|| {
            self.error(
                value.span(),
                format!("{what} must be a table, found {}", kind(value.get_ref())),
            )
        })
    }

    fn string<'t>(&self, value: &'t Value<'_>, what: &str) -> Result<&'t str> {
        value.get_ref().as_str().ok_or_else(|| {
            self.error(
                value.span(),
                format!("{what} must be a string, found {}", kind(value.get_ref())),
            )
        })
    }

    fn boolean(&self, value: &Value<'_>, what: &str) -> Result<bool> {
        value.get_ref().as_bool().ok_or_else(|| {
            self.error(
                value.span(),
                format!(
                    "{what} must be true or false, found {}",
                    kind(value.get_ref())
                ),
            )
        })
    }

    fn integer(&self, value: &Value<'_>, what: &str) -> Result<i128> {
        let int = value.get_ref().as_integer().ok_or_else(|| {
            self.error(
                value.span(),
                format!("{what} must be an integer, found {}", kind(value.get_ref())),
            )
        })?;
        i128::from_str_radix(int.as_str(), int.radix())
            .map_err(|_| self.error(value.span(), format!("{what}: cannot read integer {int}")))
    }

    /// An integer in `range`.
    fn ranged<T: TryFrom<i128>>(
        &self,
        value: &Value<'_>,
        what: &str,
        range: std::ops::RangeInclusive<i128>,
    ) -> Result<T> {
        let n = self.integer(value, what)?;
        if !range.contains(&n) {
            return Err(self.error(
                value.span(),
                format!(
                    "{what} {n} is out of range {}..={}",
                    range.start(),
                    range.end()
                ),
            ));
        }
        T::try_from(n).map_err(|_| self.error(value.span(), format!("{what} {n} is out of range")))
    }

    /// A size in bytes: an integer or a string such as `"8 MiB"`.
    fn size(&self, value: &Value<'_>, what: &str) -> Result<u64> {
        match value.get_ref() {
            DeValue::String(s) => parse_size(s).map_err(|m| self.error(value.span(), m)),
            DeValue::Integer(_) => self.ranged(value, what, 0..=i128::from(u64::MAX)),
            other => Err(self.error(
                value.span(),
                format!(
                    "{what} must be a size in bytes (an integer or a string such as \"8 MiB\"), found {}",
                    kind(other)
                ),
            )),
        }
    }

    fn array<'t, 'i>(&self, value: &'t Value<'i>, what: &str) -> Result<&'t DeArray<'i>> {
        value.get_ref().as_array().ok_or_else(|| {
            self.error(
                value.span(),
                format!("{what} must be an array, found {}", kind(value.get_ref())),
            )
        })
    }

    /// An array of strings, without duplicates.
    fn strings<'t>(
        &self,
        value: &'t Value<'_>,
        what: &str,
    ) -> Result<Vec<(&'t str, Range<usize>)>> {
        let mut out: Vec<(&str, Range<usize>)> = Vec::new();
        for item in self.array(value, what)?.iter() {
            let s = self.string(item, &format!("each entry of {what}"))?;
            if out.iter().any(|(seen, _)| *seen == s) {
                return Err(self.error(item.span(), format!("duplicate entry `{s}` in {what}")));
            }
            out.push((s, item.span()));
        }
        Ok(out)
    }

    /// A name from a table key: not empty, short enough, no NUL.
    fn name(&self, key: &Key<'_>, what: &str) -> Result<String> {
        let name = key.get_ref().as_ref();
        if name.is_empty() {
            return Err(self.error(key.span(), format!("{what} name must not be empty")));
        }
        if name.len() > MAX_GRANT_NAME_BYTES {
            return Err(self.error(
                key.span(),
                format!(
                    "{what} name `{name}` is {} bytes long, more than the limit {MAX_GRANT_NAME_BYTES}",
                    name.len()
                ),
            ));
        }
        if name.contains('\0') {
            return Err(self.error(key.span(), format!("{what} name `{name}` contains NUL")));
        }
        Ok(name.to_owned())
    }

    /// The entries of a section table such as `[components]`, if present.
    fn section<'t, 'i>(
        &self,
        root: &'t DeTable<'i>,
        key: &str,
    ) -> Result<Vec<(&'t Key<'i>, &'t Value<'i>)>> {
        match get(root, key) {
            None => Ok(Vec::new()),
            Some(value) => Ok(self.table(value, &format!("`{key}`"))?.iter().collect()),
        }
    }

    fn document(mut self, root: &DeTable<'_>) -> Result<SystemDescription> {
        check_keys(&self.cx, root, TOP_KEYS, "the top level")?;
        let mut system = SystemDescription::default();

        if let Some(value) = get(root, "system") {
            let table = self.table(value, "[system]")?;
            check_keys(&self.cx, table, SYSTEM_KEYS, "[system]")?;
            if let Some(name) = get(table, "name") {
                system.name = self.string(name, "`name` of [system]")?.to_owned();
            }
        }

        for (key, value) in self.section(root, "devices")? {
            let device = self.device(key, value, &system.devices)?;
            system.devices.push(device);
        }
        for (key, value) in self.section(root, "types")? {
            self.declare_type(key, value)?;
        }

        let components = self.section(root, "components")?;
        if components.is_empty() {
            let span = root
                .get_key_value("components")
                .map_or(0..0, |(k, _)| k.span());
            return Err(self.error(
                span,
                "no components: a system needs at least one [components.NAME] table",
            ));
        }
        let mut quota_total: u64 = 0;
        for (key, value) in components {
            let (component, quota_span) = self.component(key, value, &system)?;
            quota_total = quota_total.saturating_add(component.memory_quota_bytes);
            if quota_total > self.ram_bytes {
                return Err(self.error(
                    quota_span,
                    format!(
                        "memory quotas exceed RAM: with component `{}` ({}) they add up to {} ({quota_total} bytes), more than the {} ({} bytes) of RAM",
                        component.name,
                        human_bytes(component.memory_quota_bytes),
                        human_bytes(quota_total),
                        human_bytes(self.ram_bytes),
                        self.ram_bytes,
                    ),
                ));
            }
            system.components.push(component);
        }

        for (key, value) in self.section(root, "channels")? {
            let channel = self.channel(key, value, &system)?;
            system.channels.push(channel);
        }
        let channel_keys: Vec<_> = self
            .section(root, "channels")?
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        for (key, value) in self.section(root, "endpoints")? {
            if let Some(channel) = channel_keys.iter().find(|k| k.get_ref() == key.get_ref()) {
                let (line, column) = self.cx.line_col(channel.span().start);
                return Err(self.error(
                    key.span(),
                    format!(
                        "duplicate name `{}`: a channel defined at {line}:{column} has the same name",
                        key.get_ref()
                    ),
                ));
            }
            let endpoint = self.endpoint(key, value, &system)?;
            system.endpoints.push(endpoint);
        }
        Ok(system)
    }

    fn device(
        &self,
        key: &Key<'_>,
        value: &Value<'_>,
        earlier: &[DeviceSpec],
    ) -> Result<DeviceSpec> {
        let name = self.name(key, "device")?;
        let what = format!("device `{name}`");
        let table = self.table(value, &format!("[devices.{name}]"))?;
        check_keys(&self.cx, table, DEVICE_KEYS, &what)?;
        let compatible = get(table, "compatible")
            .ok_or_else(|| self.error(key.span(), format!("{what} is missing `compatible`")))?;
        let compatible_span = compatible.span();
        let compatible = self.string(compatible, &format!("`compatible` of {what}"))?;
        if compatible.is_empty() {
            return Err(self.error(
                compatible_span,
                format!("`compatible` of {what} must not be empty"),
            ));
        }
        let index = match get(table, "index") {
            Some(v) => self.ranged(v, &format!("`index` of {what}"), 0..=i128::from(u32::MAX))?,
            None => 0,
        };
        if let Some(same) = earlier
            .iter()
            .find(|d| d.compatible == compatible && d.index == index)
        {
            return Err(self.error(
                key.span(),
                format!(
                    "{what} is the same device as `{}` (compatible \"{compatible}\", index {index})",
                    same.name
                ),
            ));
        }
        Ok(DeviceSpec {
            name,
            compatible: compatible.to_owned(),
            index,
        })
    }

    fn declare_type(&mut self, key: &Key<'_>, value: &Value<'_>) -> Result<()> {
        let name = key.get_ref().as_ref();
        if name.is_empty() {
            return Err(self.error(key.span(), "type name must not be empty"));
        }
        if BUILTIN_TYPES.iter().any(|(b, _, _)| *b == name) {
            return Err(self.error(
                key.span(),
                format!("type `{name}` is built in and cannot be redefined"),
            ));
        }
        let what = format!("type `{name}`");
        let table = self.table(value, &format!("[types.{name}]"))?;
        check_keys(&self.cx, table, TYPE_KEYS, &what)?;
        let field = |f: &str| {
            get(table, f).ok_or_else(|| self.error(key.span(), format!("{what} is missing `{f}`")))
        };
        let size_value = field("size")?;
        let size: u32 = self.ranged(
            size_value,
            &format!("`size` of {what}"),
            1..=i128::from(u32::MAX),
        )?;
        let align_value = field("align")?;
        let align: u32 = self.ranged(align_value, &format!("`align` of {what}"), 1..=1 << 31)?;
        if !align.is_power_of_two() {
            return Err(self.error(
                align_value.span(),
                format!("`align` of {what} is {align}, not a power of two"),
            ));
        }
        if !size.is_multiple_of(align) {
            return Err(self.error(
                size_value.span(),
                format!("`size` of {what} is {size}, not a multiple of its alignment {align}"),
            ));
        }
        self.types.push((name.to_owned(), size, align));
        Ok(())
    }

    /// Checks a component; returns it and where to point at if its quota crosses RAM.
    fn component(
        &mut self,
        key: &Key<'_>,
        value: &Value<'_>,
        system: &SystemDescription,
    ) -> Result<(ComponentSpec, Range<usize>)> {
        let name = self.name(key, "component")?;
        let what = format!("component `{name}`");
        let table = self.table(value, &format!("[components.{name}]"))?;
        check_keys(&self.cx, table, COMPONENT_KEYS, &what)?;
        let of = |field: &str| format!("`{field}` of {what}");

        let image = match get(table, "image") {
            Some(v) => {
                let image = self.string(v, &of("image"))?;
                if image.is_empty() || image.len() > MAX_IMAGE_NAME_BYTES {
                    return Err(self.error(
                        v.span(),
                        format!(
                            "{} must be 1 to {MAX_IMAGE_NAME_BYTES} bytes long, not {}",
                            of("image"),
                            image.len()
                        ),
                    ));
                }
                image.to_owned()
            }
            None => name.clone(),
        };
        let priority = match get(table, "priority") {
            Some(v) => self.ranged(v, &of("priority"), PRIORITIES)?,
            None => DEFAULT_PRIORITY,
        };
        let stack_bytes = match get(table, "stack_bytes") {
            Some(v) => {
                let bytes = self.size(v, &of("stack_bytes"))?;
                if bytes == 0 || !bytes.is_multiple_of(PAGE_BYTES) {
                    return Err(self.error(
                        v.span(),
                        format!(
                            "{} is {bytes}, not a positive multiple of the page size {PAGE_BYTES}",
                            of("stack_bytes")
                        ),
                    ));
                }
                bytes
            }
            None => DEFAULT_STACK_BYTES,
        };
        let heap_bytes = match get(table, "heap_bytes") {
            Some(v) => {
                let bytes = self.size(v, &of("heap_bytes"))?;
                if !bytes.is_multiple_of(PAGE_BYTES) {
                    return Err(self.error(
                        v.span(),
                        format!(
                            "{} is {bytes}, not a multiple of the page size {PAGE_BYTES}",
                            of("heap_bytes")
                        ),
                    ));
                }
                bytes
            }
            None => DEFAULT_HEAP_BYTES,
        };
        let (memory_quota_bytes, quota_span) = match get(table, "memory_quota") {
            Some(v) => (self.size(v, &of("memory_quota"))?, v.span()),
            None => (DEFAULT_MEMORY_QUOTA, key.span()),
        };
        let needed = stack_bytes.saturating_add(heap_bytes);
        if needed > memory_quota_bytes {
            return Err(self.error(
                quota_span,
                format!(
                    "memory quota of {what} ({}) is smaller than its stack and heap ({})",
                    human_bytes(memory_quota_bytes),
                    human_bytes(needed)
                ),
            ));
        }
        let restart = match get(table, "restart") {
            Some(v) => self.restart(v, &of("restart"))?,
            None => RestartPolicy::Never,
        };

        let dma = match get(table, "dma") {
            Some(v) => self.boolean(v, &of("dma"))?,
            None => false,
        };
        let mut devices = Vec::new();
        if let Some(v) = get(table, "devices") {
            for (device, span) in self.strings(v, &of("devices"))? {
                if let Some(spec) = system.device(device)
                    && kaal_bootinfo::system::is_dma_capable(&spec.compatible)
                    && !dma
                {
                    return Err(self.error(
                        span,
                        format!(
                            "device `{device}` ({}) in {} can read and write all memory by DMA (no IOMMU confines it): trust {what} with that by adding `dma = true` to its table",
                            spec.compatible,
                            of("devices")
                        ),
                    ));
                }
                if system.device(device).is_none() {
                    return Err(self.error(
                        span,
                        format!(
                            "unknown device `{device}` in {} (not defined in [devices])",
                            of("devices")
                        ),
                    ));
                }
                if let Some(owner) = system
                    .components
                    .iter()
                    .find(|c| c.devices.iter().any(|d| d == device))
                {
                    return Err(self.error(
                        span,
                        format!(
                            "device `{device}` granted to {what} is already granted to component `{}`",
                            owner.name
                        ),
                    ));
                }
                devices.push(device.to_owned());
            }
        }

        let mut irqs: Vec<u32> = Vec::new();
        if let Some(v) = get(table, "irqs") {
            for item in self.array(v, &of("irqs"))?.iter() {
                let irq: u32 = self.ranged(item, &format!("IRQ line in {}", of("irqs")), IRQS)?;
                if irqs.contains(&irq) {
                    return Err(self.error(
                        item.span(),
                        format!("IRQ {irq} is listed twice in {}", of("irqs")),
                    ));
                }
                if let Some(owner) = system.components.iter().find(|c| c.irqs.contains(&irq)) {
                    return Err(self.error(
                        item.span(),
                        format!(
                            "IRQ {irq} granted to {what} is already granted to component `{}`",
                            owner.name
                        ),
                    ));
                }
                irqs.push(irq);
            }
        }

        let mut service_bits = 0;
        if let Some(v) = get(table, "services") {
            for (service, span) in self.strings(v, &of("services"))? {
                let bit = SERVICES
                    .iter()
                    .find(|(n, _)| *n == service)
                    .map(|(_, bit)| *bit)
                    .ok_or_else(|| {
                        self.error(
                            span,
                            format!(
                                "unknown service `{service}` in {} (expected memory, processes or system-control)",
                                of("services")
                            ),
                        )
                    })?;
                service_bits |= bit;
            }
        }

        let mut types = Vec::new();
        if let Some(v) = get(table, "types") {
            for (ty, span) in self.strings(v, &of("types"))? {
                let known = BUILTIN_TYPES.iter().any(|(b, _, _)| *b == ty)
                    || self.types.iter().any(|(t, _, _)| t == ty);
                if !known {
                    return Err(self.error(
                        span,
                        format!(
                            "unknown type `{ty}` in {} (not defined in [types])",
                            of("types")
                        ),
                    ));
                }
                types.push(ty.to_owned());
            }
        }
        self.component_types.push(types);

        if let Some(v) = get(table, "driver") {
            let driver = self.string(v, &of("driver"))?;
            if driver.is_empty() || driver.len() > 64 {
                return Err(self.error(
                    v.span(),
                    format!("{} must be 1 to 64 bytes long", of("driver")),
                ));
            }
        }

        let arguments = match get(table, "arguments") {
            Some(v) => self.ranged(v, &of("arguments"), 0..=i128::from(u64::MAX))?,
            None => 0,
        };
        let core = match get(table, "core") {
            Some(v) => self.ranged(v, &of("core"), CORES)?,
            None => 0,
        };

        Ok((
            ComponentSpec {
                name,
                image,
                priority,
                stack_bytes,
                heap_bytes,
                memory_quota_bytes,
                restart,
                devices,
                irqs,
                services: service_bits
                    | if dma {
                        kaal_bootinfo::system::services::DMA
                    } else {
                        0
                    },
                arguments,
                core,
            },
            quota_span,
        ))
    }

    fn restart(&self, value: &Value<'_>, what: &str) -> Result<RestartPolicy> {
        match value.get_ref() {
            DeValue::String(s) => match s.as_ref() {
                "never" => Ok(RestartPolicy::Never),
                "always" => Ok(RestartPolicy::Always),
                other => Err(self.error(
                    value.span(),
                    format!(
                        "{what} must be \"never\", \"always\" or {{ at_most = N, within_seconds = S }}, not \"{other}\""
                    ),
                )),
            },
            DeValue::Table(table) => {
                check_keys(&self.cx, table, RESTART_KEYS, what)?;
                let field = |f: &str| {
                    get(table, f).ok_or_else(|| {
                        self.error(value.span(), format!("{what} is missing `{f}`"))
                    })
                };
                let restarts = self.ranged(field("at_most")?, &format!("`at_most` of {what}"), 1..=i128::from(u32::MAX))?;
                let seconds: u64 = self.ranged(
                    field("within_seconds")?,
                    &format!("`within_seconds` of {what}"),
                    1..=i128::from(u64::MAX / 1000),
                )?;
                Ok(RestartPolicy::AtMost {
                    restarts,
                    window_ms: seconds * 1000,
                })
            }
            other => Err(self.error(
                value.span(),
                format!(
                    "{what} must be \"never\", \"always\" or {{ at_most = N, within_seconds = S }}, found {}",
                    kind(other)
                ),
            )),
        }
    }

    /// A component name used by a channel or endpoint; must be defined.
    fn component_ref(
        &self,
        value: &Value<'_>,
        what: &str,
        system: &SystemDescription,
    ) -> Result<String> {
        let name = self.string(value, what)?;
        if system.component(name).is_none() {
            return Err(self.error(
                value.span(),
                format!("unknown component `{name}` in {what} (not defined in [components])"),
            ));
        }
        Ok(name.to_owned())
    }

    fn channel(
        &self,
        key: &Key<'_>,
        value: &Value<'_>,
        system: &SystemDescription,
    ) -> Result<ChannelSpec> {
        let name = self.name(key, "channel")?;
        let what = format!("channel `{name}`");
        let table = self.table(value, &format!("[channels.{name}]"))?;
        check_keys(&self.cx, table, CHANNEL_KEYS, &what)?;
        let of = |field: &str| format!("`{field}` of {what}");
        let field = |f: &str| {
            get(table, f).ok_or_else(|| self.error(key.span(), format!("{what} is missing `{f}`")))
        };

        let producer = self.component_ref(field("from")?, &of("from"), system)?;
        let to = field("to")?;
        let consumer = self.component_ref(to, &of("to"), system)?;
        if producer == consumer {
            return Err(self.error(
                to.span(),
                format!("{what} goes from component `{producer}` to itself"),
            ));
        }

        let capacity_value = field("capacity")?;
        let capacity: u32 = self.ranged(capacity_value, &of("capacity"), 1..=MAX_CAPACITY)?;
        if !capacity.is_power_of_two() {
            return Err(self.error(
                capacity_value.span(),
                format!("{} is {capacity}, not a power of two", of("capacity")),
            ));
        }

        let element_value = field("element")?;
        let element = self.string(element_value, &of("element"))?;
        let (element_bytes, element_align) = if let Some((_, size, align)) =
            BUILTIN_TYPES.iter().find(|(b, _, _)| *b == element)
        {
            (*size, *align)
        } else if let Some((_, size, align)) = self.types.iter().find(|(t, _, _)| t == element) {
            for end in [&producer, &consumer] {
                let index = system.components.iter().position(|c| &c.name == end);
                let listed = index
                    .and_then(|i| self.component_types.get(i))
                    .is_some_and(|types| types.iter().any(|t| t == element));
                if !listed {
                    return Err(self.error(
                            element_value.span(),
                            format!(
                                "element type `{element}` of {what} is unknown to component `{end}`: add it to that component's `types`"
                            ),
                        ));
                }
            }
            (*size, *align)
        } else {
            return Err(self.error(
                    element_value.span(),
                    format!(
                        "unknown element type `{element}` of {what} (neither built in nor defined in [types])"
                    ),
                ));
        };

        Ok(ChannelSpec {
            name,
            element: element.to_owned(),
            element_bytes,
            element_align,
            capacity,
            producer,
            consumer,
        })
    }

    fn endpoint(
        &self,
        key: &Key<'_>,
        value: &Value<'_>,
        system: &SystemDescription,
    ) -> Result<EndpointSpec> {
        let name = self.name(key, "endpoint")?;
        let what = format!("endpoint `{name}`");
        let table = self.table(value, &format!("[endpoints.{name}]"))?;
        check_keys(&self.cx, table, ENDPOINT_KEYS, &what)?;
        let server_value = get(table, "server")
            .ok_or_else(|| self.error(key.span(), format!("{what} is missing `server`")))?;
        let server = self.component_ref(server_value, &format!("`server` of {what}"), system)?;
        let mut clients = Vec::new();
        if let Some(v) = get(table, "clients") {
            let what_clients = format!("`clients` of {what}");
            for (client, span) in self.strings(v, &what_clients)? {
                if system.component(client).is_none() {
                    return Err(self.error(
                        span,
                        format!(
                            "unknown component `{client}` in {what_clients} (not defined in [components])"
                        ),
                    ));
                }
                if client == server {
                    return Err(self.error(
                        span,
                        format!(
                            "component `{client}` is the server of {what} and cannot be its client"
                        ),
                    ));
                }
                clients.push(client.to_owned());
            }
        }
        Ok(EndpointSpec {
            name,
            server,
            clients,
        })
    }
}
