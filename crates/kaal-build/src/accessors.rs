//! Typed accessors for a component's grants, generated from `system.toml` at build time.
//!
//! At run time a component looks its grants up by name in its start-up record
//! (`kaal_user::startup()`); a misspelt name, or a channel element type or slot count that
//! differs from the description, is only found when the component runs. [`accessors`]
//! turns the grants of one component into Rust source instead: a `Grants` struct with one
//! method per grant, named after it and typed from the description, so that a misspelt
//! grant is a compile error (`no method named ...`) and channel types come from
//! `system.toml`. [`write_accessors`] is the build-script side.

use std::fmt;
use std::path::Path;

use kaal_bootinfo::system::{ChannelSpec, SystemDescription};
use toml::de::DeTable;

use crate::system::{self, BUILTIN_TYPES, SERVICES, SystemTomlError};

/// Why the accessors of a component cannot be generated: it is not in the description,
/// or one of its grants (or element types) has a name that cannot name a method (or a
/// type).
///
/// [`write_accessors`] reports it as a [`SystemTomlError`] pointing at the table that
/// defines the offending name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessorError {
    message: String,
    place: Place,
}

impl AccessorError {
    /// The problem.
    pub fn message(&self) -> &str {
        &self.message
    }

    fn new(message: String, place: Place) -> Self {
        AccessorError { message, place }
    }
}

impl fmt::Display for AccessorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for AccessorError {}

/// Where in `system.toml` an [`AccessorError`] is: the key of `[section.name]`.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Place {
    Nowhere,
    Table { section: &'static str, name: String },
}

impl Place {
    fn table(section: &'static str, name: &str) -> Self {
        Place::Table {
            section,
            name: name.to_owned(),
        }
    }
}

/// Methods of the generated `Grants` that are not grants.
const RESERVED: [(&str, &str); 3] = [
    ("new", "the constructor `Grants::new`"),
    ("startup", "`Grants::startup`, the start-up record"),
    (
        "broker",
        "`Grants::broker`, the broker grant every component has",
    ),
];

/// Rust keywords (strict and reserved, every edition): not usable as method or type
/// names without `r#`.
const KEYWORDS: &[&str] = &[
    "_", "abstract", "as", "async", "await", "become", "box", "break", "const", "continue",
    "crate", "do", "dyn", "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if",
    "impl", "in", "let", "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub",
    "ref", "return", "self", "Self", "static", "struct", "super", "trait", "true", "try", "type",
    "typeof", "unsafe", "unsized", "use", "virtual", "where", "while", "yield",
];

/// `name` as a Rust identifier: ASCII letters, digits and `_`, not starting with a digit,
/// not a keyword.
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !KEYWORDS.contains(&name)
}

/// The method name for grant `name`: the name with `-` replaced by `_`, if that is an
/// identifier and the name starts with a letter or `_`.
fn method_name(name: &str) -> Option<String> {
    let method = name.replace('-', "_");
    (!name.starts_with('-') && is_identifier(&method)).then_some(method)
}

/// A name for a doc comment: on one line, control characters escaped.
fn shown(name: &str) -> String {
    name.escape_debug().to_string()
}

const STARTUP: &str = "::kaal_user::startup::Startup";
const STARTUP_ERROR: &str = "::kaal_user::startup::StartupError";
const CHANNEL_ERROR: &str = "::kaal_user::startup::ChannelError";
const ENDPOINT: &str = "::kaal_user::cap::Cap<::kaal_user::cap::Endpoint>";

/// One accessor method.
struct Accessor {
    /// Grant name (the string the run-time lookup uses).
    name: String,
    /// Method name.
    method: String,
    /// What kind of grant, for messages: "channel `x`".
    what: String,
    /// Where its name is defined.
    place: Place,
    /// Doc comment lines (without `///`).
    doc: Vec<String>,
    /// Return type (the `Ok` type).
    returns: String,
    /// Error type.
    error: &'static str,
    /// Body expression.
    body: String,
}

/// Generates the typed accessors of component `component` of `description`: Rust source
/// of a `Grants` struct with one method per grant of the component, to `include!` in it.
///
/// ```ignore
/// mod grants {
///     include!(concat!(env!("OUT_DIR"), "/grants.rs"));
/// }
///
/// let grants = grants::Grants::new(kaal_user::startup()?);
/// let mut samples = grants.samples()?;   // ChannelProducer<u64, 64>, from system.toml
/// let control = grants.control()?;       // Cap<Endpoint>
/// ```
///
/// `Grants::new(startup)` wraps the component's `kaal_user::startup::Startup`;
/// `grants.startup()` gives it back. Then, in the order the broker grants them:
///
/// | grant in `system.toml` | method | calls |
/// | --- | --- | --- |
/// | (every component) | `broker()` | `startup.broker()` |
/// | `[endpoints.NAME]`, `server = "me"` | `NAME()` | `startup.serve("NAME")` |
/// | `[endpoints.NAME]`, `"me"` in `clients` | `NAME()` | `startup.endpoint("NAME")` |
/// | `[channels.NAME]`, `from = "me"` | `NAME()` | `startup.producer::<T, N>("NAME")` |
/// | `[channels.NAME]`, `to = "me"` | `NAME()` | `startup.consumer::<T, N>("NAME")` |
/// | `devices = ["NAME"]` | `NAME()` | `startup.device("NAME")` |
/// | `irqs = [LINE]` | `irqLINE()` | `startup.irq("irqLINE")` |
///
/// A channel's `T` is its `element`: a built-in `u8` ... `i64` is that primitive type; a
/// `[types.NAME]` type is `crate::NAME`, which the component must define or `pub use` at
/// its crate root (a `#[repr(C)]` struct deriving zerocopy's `FromBytes`, `IntoBytes` and
/// `Immutable`). For each such type the code asserts at compile time that its size and
/// alignment are the declared `size` and `align`. `N` is the channel's `capacity`.
///
/// A method is named after its grant, with `-` replaced by `_` (channel `raw-samples`
/// gives `raw_samples()`); every method has a doc comment saying what it is and which
/// table of `system.toml` grants it. The generated items allow `dead_code` (a component
/// need not use every grant) and `non_snake_case`, and use absolute paths only
/// (`::kaal_user::...`, so the component must depend on `kaal-user` under that name).
///
/// # Errors
///
/// `component` is not a component of `description`; a grant's name, with `-` replaced by
/// `_`, is not a Rust identifier (ASCII letters, digits and `_`, starting with a letter
/// or `_`, not a keyword); two grants would get the same method (a device and a channel
/// of the same name), or a grant would get `new`, `startup` or `broker`; a `[types]`
/// element type's name is not a Rust identifier.
pub fn accessors(
    description: &SystemDescription,
    component: &str,
) -> Result<String, AccessorError> {
    let Some(spec) = description.component(component) else {
        let names: Vec<String> = description
            .components
            .iter()
            .map(|c| format!("`{}`", c.name))
            .collect();
        return Err(AccessorError::new(
            format!(
                "component `{component}` is not in the system description (its components: {})",
                names.join(", ")
            ),
            Place::Nowhere,
        ));
    };
    let me = &spec.name;
    let table = format!("`[components.{}]`", shown(me));

    let mut list: Vec<Accessor> = Vec::new();
    for endpoint in &description.endpoints {
        let server = endpoint.server == *me;
        if !server && !endpoint.clients.iter().any(|c| c == me) {
            continue;
        }
        let name = &endpoint.name;
        let from = format!("`[endpoints.{}]`", shown(name));
        let clients = if endpoint.clients.is_empty() {
            "none".to_owned()
        } else {
            names(&endpoint.clients)
        };
        let (mut doc, lookup) = if server {
            (
                vec![
                    format!(
                        "Endpoint `{}`, which this component serves: the receive capability (`recv`, `reply_recv`).",
                        shown(name)
                    ),
                    String::new(),
                    format!(
                        "From {from} in `system.toml` (`server = \"{}\"`; clients: {clients}).",
                        shown(me)
                    ),
                ],
                "serve",
            )
        } else {
            (
                vec![
                    format!(
                        "Endpoint `{}`, served by component `{}`: a client capability (`call`).",
                        shown(name),
                        shown(&endpoint.server)
                    ),
                    String::new(),
                    format!(
                        "From {from} in `system.toml` (`clients` has `\"{}\"`).",
                        shown(me)
                    ),
                ],
                "endpoint",
            )
        };
        doc.extend(errors_doc(&format!("Startup::{lookup}"), STARTUP_ERROR));
        list.push(Accessor {
            name: name.clone(),
            method: String::new(),
            what: format!("endpoint `{}`", shown(name)),
            place: Place::table("endpoints", name),
            doc,
            returns: ENDPOINT.to_owned(),
            error: STARTUP_ERROR,
            body: format!("self.startup.{lookup}({name:?})"),
        });
    }

    let mut custom: Vec<&ChannelSpec> = Vec::new();
    for channel in &description.channels {
        let producer = channel.producer == *me;
        if !producer && channel.consumer != *me {
            continue;
        }
        let name = &channel.name;
        let element = element_type(channel)?;
        if !BUILTIN_TYPES.iter().any(|(b, _, _)| *b == channel.element)
            && !custom.iter().any(|c| c.element == channel.element)
        {
            custom.push(channel);
        }
        let capacity = channel.capacity;
        let from = format!("`[channels.{}]`", shown(name));
        let (end, lookup, kind, peer) = if producer {
            (
                "producing",
                "producer",
                "ChannelProducer",
                format!("read by component `{}`", shown(&channel.consumer)),
            )
        } else {
            (
                "consuming",
                "consumer",
                "ChannelConsumer",
                format!("written by component `{}`", shown(&channel.producer)),
            )
        };
        let slots = if capacity == 1 { "slot" } else { "slots" };
        let mut doc = vec![
            format!(
                "The {end} end of channel `{}`: {capacity} {slots} of `{element}`, {peer}.",
                shown(name)
            ),
            String::new(),
            format!(
                "From {from} in `system.toml` (`element = \"{}\"`, `capacity = {capacity}`, `{} = \"{}\"`). A channel end can be taken once per run of the component.",
                shown(&channel.element),
                if producer { "from" } else { "to" },
                shown(me)
            ),
        ];
        doc.extend(errors_doc(&format!("Startup::{lookup}"), CHANNEL_ERROR));
        list.push(Accessor {
            name: name.clone(),
            method: String::new(),
            what: format!("channel `{}`", shown(name)),
            place: Place::table("channels", name),
            doc,
            returns: format!("::kaal_user::startup::{kind}<{element}, {capacity}>"),
            error: CHANNEL_ERROR,
            body: format!("self.startup.{lookup}::<{element}, {capacity}>({name:?})"),
        });
    }

    for name in &spec.devices {
        let detail = description.device(name).map_or(String::new(), |d| {
            format!(
                ": compatible `\"{}\"`, index {}",
                shown(&d.compatible),
                d.index
            )
        });
        let mut doc = vec![
            format!(
                "Device `{}`: its registers, mapped, and its interrupt if it has one.",
                shown(name)
            ),
            String::new(),
            format!(
                "Defined in `[devices.{}]`{detail}; granted in `devices` of {table} in `system.toml`.",
                shown(name)
            ),
        ];
        doc.extend(errors_doc("Startup::device", STARTUP_ERROR));
        list.push(Accessor {
            name: name.clone(),
            method: String::new(),
            what: format!("device `{}`", shown(name)),
            place: Place::table("devices", name),
            doc,
            returns: "::kaal_user::startup::Device".to_owned(),
            error: STARTUP_ERROR,
            body: format!("self.startup.device({name:?})"),
        });
    }

    for &line in &spec.irqs {
        let name = format!("irq{line}");
        let mut doc = vec![
            format!("Interrupt line {line}: its handler (`ack`) and notification (`wait`)."),
            String::new(),
            format!("Granted in `irqs` of {table} in `system.toml`."),
        ];
        doc.extend(errors_doc("Startup::irq", STARTUP_ERROR));
        list.push(Accessor {
            what: format!("IRQ {line} (grant `{name}`)"),
            method: String::new(),
            place: Place::table("components", me),
            doc,
            returns: "::kaal_user::startup::Irq".to_owned(),
            error: STARTUP_ERROR,
            body: format!("self.startup.irq({name:?})"),
            name,
        });
    }

    // Method names: valid, not reserved, unique.
    for i in 0..list.len() {
        let a = &list[i];
        let Some(method) = method_name(&a.name) else {
            return Err(AccessorError::new(
                format!(
                    "{} of component `{me}` cannot name an accessor method: `{}` is not a Rust identifier (use ASCII letters, digits, `_` and `-`, starting with a letter or `_`, not a keyword); rename it",
                    a.what,
                    shown(&a.name)
                ),
                a.place.clone(),
            ));
        };
        if let Some((_, taken)) = RESERVED.iter().find(|(r, _)| *r == method) {
            return Err(AccessorError::new(
                format!(
                    "{} of component `{me}` cannot name an accessor method: `{method}` is {taken}; rename it",
                    a.what
                ),
                a.place.clone(),
            ));
        }
        if let Some(earlier) = list[..i].iter().find(|b| b.method == method) {
            return Err(AccessorError::new(
                format!(
                    "{} and {} of component `{me}` would both be accessor method `{method}`; rename one of them",
                    earlier.what, a.what
                ),
                a.place.clone(),
            ));
        }
        list[i].method = method;
    }

    let mut out = String::new();
    let w = &mut out;
    line(
        w,
        format!(
            "// Typed accessors for the grants of component `{}`, generated by",
            shown(me)
        ),
    );
    line(
        w,
        "// `kaal_build::system::write_accessors` from `system.toml`. Do not edit: the build",
    );
    line(w, "// script writes it again when `system.toml` changes.");
    for channel in &custom {
        let ty = format!("crate::{}", channel.element);
        let (bytes, align) = (channel.element_bytes, channel.element_align);
        line(w, "");
        line(
            w,
            format!(
                "// `[types.{}]`: `size = {bytes}`, `align = {align}`.",
                channel.element
            ),
        );
        for (what, function, value, key) in [
            ("size", "size_of", bytes, "size"),
            ("alignment", "align_of", align, "align"),
        ] {
            line(w, "const _: () = ::core::assert!(");
            line(
                w,
                format!("    ::core::mem::{function}::<{ty}>() == {value},"),
            );
            line(
                w,
                format!(
                    "    \"the {what} of `{ty}` is not the `{key} = {value}` of `[types.{}]` in system.toml\",",
                    channel.element
                ),
            );
            line(w, ");");
        }
    }
    line(w, "");
    doc_lines(
        w,
        "",
        &[format!(
            "What component `{}` was granted in `system.toml`: one method per grant, named after it, that looks it up in the start-up record with the types of the description.",
            shown(me)
        )],
    );
    line(w, "#[allow(dead_code)]");
    line(w, "#[derive(Clone, Copy, Debug)]");
    line(w, "pub struct Grants {");
    line(w, format!("    startup: {STARTUP},"));
    line(w, "}");
    line(w, "");
    line(w, "#[allow(dead_code, non_snake_case)]");
    line(w, "impl Grants {");
    doc_lines(
        w,
        "    ",
        &[format!(
            "The grants of component `{}` in its start-up record, `kaal_user::startup()`.",
            shown(me)
        )],
    );
    line(
        w,
        format!("    pub const fn new(startup: {STARTUP}) -> Self {{"),
    );
    line(w, "        Self { startup }");
    line(w, "    }");
    line(w, "");
    line(
        w,
        "    /// The start-up record the grants are looked up in.",
    );
    line(
        w,
        format!("    pub const fn startup(&self) -> &{STARTUP} {{"),
    );
    line(w, "        &self.startup");
    line(w, "    }");
    line(w, "");
    let services: Vec<String> = SERVICES
        .iter()
        .filter(|(_, bit)| spec.services & bit != 0)
        .map(|(name, _)| format!("`{name}`"))
        .collect();
    let services = if services.is_empty() {
        "none".to_owned()
    } else {
        services.join(", ")
    };
    let mut doc = vec![
        "The broker's service endpoint, with the services this component may use.".to_owned(),
        String::new(),
        format!(
            "Every component has it; its services are `services` of {table} in `system.toml`: {services}."
        ),
    ];
    doc.extend(errors_doc("Startup::broker", STARTUP_ERROR));
    method(
        w,
        &doc,
        "broker",
        "::kaal_user::broker::BrokerClient",
        STARTUP_ERROR,
        "self.startup.broker()",
    );
    for a in &list {
        line(w, "");
        method(w, &a.doc, &a.method, &a.returns, a.error, &a.body);
    }
    line(w, "}");
    Ok(out)
}

/// `names` as "`a`, `b`".
fn names(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{}`", shown(n)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `# Errors` section of an accessor's doc comment.
fn errors_doc(lookup: &str, error: &str) -> [String; 4] {
    let why = if error == CHANNEL_ERROR {
        "a `ChannelError` if the start-up record does not hold this channel end, if its ring does not match the element type and capacity, or if the end was already taken"
    } else {
        "a `StartupError` if the start-up record does not hold this grant"
    };
    [
        String::new(),
        "# Errors".to_owned(),
        String::new(),
        format!("As `kaal_user::startup::{lookup}`: {why}."),
    ]
}

/// The Rust type of `channel`'s elements.
fn element_type(channel: &ChannelSpec) -> Result<String, AccessorError> {
    let element = &channel.element;
    if BUILTIN_TYPES.iter().any(|(b, _, _)| b == element) {
        return Ok(element.clone());
    }
    if !is_identifier(element) {
        return Err(AccessorError::new(
            format!(
                "element type `{}` of channel `{}` cannot name a Rust type: a `[types]` type is `crate::NAME`, and `{}` is not a Rust identifier (ASCII letters, digits and `_`, starting with a letter or `_`, not a keyword); rename it",
                shown(element),
                shown(&channel.name),
                shown(element)
            ),
            Place::table("types", element),
        ));
    }
    Ok(format!("crate::{element}"))
}

fn line(out: &mut String, text: impl AsRef<str>) {
    out.push_str(text.as_ref());
    out.push('\n');
}

/// Doc comment lines for `paragraphs` (an empty string separates them), indented by
/// `indent`, wrapped at 92 columns.
fn doc_lines(out: &mut String, indent: &str, paragraphs: &[String]) {
    const WIDTH: usize = 92;
    let empty = format!("{indent}///");
    for paragraph in paragraphs {
        let mut current = empty.clone();
        for word in paragraph.split(' ').filter(|w| !w.is_empty()) {
            if current.len() + 1 + word.len() > WIDTH && current != empty {
                line(out, &current);
                current.clone_from(&empty);
            }
            current.push(' ');
            current.push_str(word);
        }
        line(out, &current);
    }
}

/// One documented method returning `Result<returns, error>`.
fn method(out: &mut String, doc: &[String], name: &str, returns: &str, error: &str, body: &str) {
    doc_lines(out, "    ", doc);
    line(out, format!("    pub fn {name}("));
    line(out, "        &self,");
    line(out, "    ) -> ::core::result::Result<");
    line(out, format!("        {returns},"));
    line(out, format!("        {error},"));
    line(out, "    > {");
    line(out, format!("        {body}"));
    line(out, "    }");
}

/// Build-script helper: reads and checks the `system.toml` at `system_toml` and writes the
/// typed accessors of component `component` ([`accessors`]) to `out_file` (creating its
/// directory; rewriting it only when its contents change).
///
/// It first prints `cargo:rerun-if-changed=<system_toml>`, so that cargo runs the build
/// script again when the description changes. `component` is the component's name in
/// `system.toml` (its `[components.NAME]` table), which need not be its package's name.
/// Memory quotas are not checked against RAM here (the image build does that for the
/// machine it targets).
///
/// A component's `build.rs`, with `kaal-build` as a build dependency:
///
/// ```no_run
/// use std::path::{Path, PathBuf};
///
/// fn main() {
///     let system = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../system.toml");
///     let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap()).join("grants.rs");
///     if let Err(error) = kaal_build::system::write_accessors(&system, "sensor", &out) {
///         // Fails the build with `error: system.toml:LINE:COLUMN: problem`.
///         println!("cargo::error={error}");
///     }
/// }
/// ```
///
/// and in the component, `mod grants { include!(concat!(env!("OUT_DIR"), "/grants.rs")); }`.
///
/// # Errors
///
/// The file cannot be read or is not a valid system description ([`system::load`]), the
/// accessors cannot be generated ([`accessors`]; the error points at the table defining
/// the offending name), or `out_file` cannot be written. Each is shown as
/// `path:line:column: problem` (or `path: problem` when there is no line).
pub fn write_accessors(
    system_toml: &Path,
    component: &str,
    out_file: &Path,
) -> Result<(), SystemTomlError> {
    println!("cargo:rerun-if-changed={}", system_toml.display());
    let text = std::fs::read_to_string(system_toml)
        .map_err(|e| SystemTomlError::io(system_toml, "cannot read the system description", e))?;
    let description = system::parse(system_toml, &text, u64::MAX)?;
    let source = accessors(&description, component)
        .map_err(|e| system::error_at(system_toml, &text, locate(&text, &e.place), e.message))?;
    if std::fs::read(out_file).is_ok_and(|old| old == source.as_bytes()) {
        return Ok(());
    }
    if let Some(dir) = out_file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| SystemTomlError::io(dir, "cannot create the output directory", e))?;
    }
    std::fs::write(out_file, source)
        .map_err(|e| SystemTomlError::io(out_file, "cannot write the accessors", e))
}

/// The byte span of `place` in `text`, if it is found there.
fn locate(text: &str, place: &Place) -> Option<std::ops::Range<usize>> {
    let Place::Table { section, name } = place else {
        return None;
    };
    let root = DeTable::parse(text).ok()?;
    let (key, _) = root
        .get_ref()
        .get(*section)?
        .get_ref()
        .as_table()?
        .get_key_value(name.as_str())?;
    Some(key.span())
}
