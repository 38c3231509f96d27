//! `system.toml`: the valid fixture decodes field by field, defaults apply, and every
//! kind of mistake is reported with the file, line, column and problem.

use std::path::{Path, PathBuf};

use kaal_bootinfo::system::{RestartPolicy, SystemDescription, services};
use kaal_build::system::{SystemTomlError, compile, load, parse};

const RAM: u64 = 256 << 20;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/system.toml")
}

fn err(text: &str) -> SystemTomlError {
    match parse(Path::new("system.toml"), text, RAM) {
        Ok(system) => panic!("accepted:\n{text}\nas {system:#?}"),
        Err(e) => e,
    }
}

/// Asserts that `text` is rejected at `line` (and `column`, if given) with a message
/// containing `problem`.
#[track_caller]
fn rejects_at(text: &str, line: usize, column: Option<usize>, problem: &str) {
    let e = err(text);
    let msg = e.to_string();
    let prefix = match column {
        Some(column) => format!("system.toml:{line}:{column}: "),
        None => format!("system.toml:{line}:"),
    };
    assert!(
        msg.starts_with(&prefix),
        "expected `{prefix}...`, got: {msg}"
    );
    assert!(msg.contains(problem), "expected `{problem}` in: {msg}");
    assert_eq!(e.line(), Some(line));
    assert_eq!(e.path(), Path::new("system.toml"));
}

#[track_caller]
fn rejects(text: &str, line: usize, problem: &str) {
    rejects_at(text, line, None, problem);
}

// ----- the valid fixture -----

#[test]
fn fixture_decodes_field_by_field() {
    let system = load(&fixture(), RAM).expect("fixture is valid");
    assert_eq!(system.name, "demo");

    assert_eq!(system.devices.len(), 2);
    assert_eq!(system.devices[0].name, "rtc");
    assert_eq!(system.devices[0].compatible, "arm,pl031");
    assert_eq!(system.devices[0].index, 0);
    assert_eq!(system.devices[1].name, "uart1");
    assert_eq!(system.devices[1].compatible, "arm,pl011");
    assert_eq!(system.devices[1].index, 1);

    // Components keep the order of the file.
    let names: Vec<_> = system.components.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["producer", "consumer", "shell"]);

    let producer = &system.components[0];
    assert_eq!(producer.image, "producer-elf");
    assert_eq!(producer.priority, 120);
    assert_eq!(producer.stack_bytes, 128 * 1024);
    assert_eq!(producer.heap_bytes, 2 << 20);
    assert_eq!(producer.memory_quota_bytes, 16 << 20);
    assert_eq!(
        producer.restart,
        RestartPolicy::AtMost {
            restarts: 3,
            window_ms: 10_000
        }
    );
    assert_eq!(producer.devices, ["rtc"]);
    assert_eq!(producer.irqs, [40, 41]);
    assert_eq!(producer.services, services::MEMORY | services::PROCESSES);
    assert_eq!(producer.arguments, 0xdead_beef);

    // Defaults.
    let consumer = &system.components[1];
    assert_eq!(consumer.image, "consumer");
    assert_eq!(consumer.priority, 100);
    assert_eq!(consumer.stack_bytes, 65536);
    assert_eq!(consumer.heap_bytes, 1 << 20);
    assert_eq!(consumer.memory_quota_bytes, 8 << 20);
    assert_eq!(consumer.restart, RestartPolicy::Always);
    assert_eq!(consumer.devices, ["uart1"]);
    assert!(consumer.irqs.is_empty());
    assert_eq!(consumer.services, services::SYSTEM_CONTROL);
    assert_eq!(consumer.arguments, 0);

    let shell = &system.components[2];
    assert_eq!(shell.memory_quota_bytes, 4 << 20);
    assert_eq!(shell.restart, RestartPolicy::Never);
    assert_eq!(shell.services, 0);
    assert!(shell.devices.is_empty());

    assert_eq!(system.channels.len(), 2);
    let samples = &system.channels[0];
    assert_eq!(samples.name, "samples");
    assert_eq!(samples.element, "Sample");
    assert_eq!(samples.element_bytes, 16);
    assert_eq!(samples.element_align, 8);
    assert_eq!(samples.capacity, 1024);
    assert_eq!(samples.producer, "producer");
    assert_eq!(samples.consumer, "consumer");
    let bytes = &system.channels[1];
    assert_eq!(bytes.name, "bytes");
    assert_eq!(bytes.element, "u8");
    assert_eq!((bytes.element_bytes, bytes.element_align), (1, 1));
    assert_eq!(bytes.capacity, 1);
    assert_eq!(
        (bytes.producer.as_str(), bytes.consumer.as_str()),
        ("shell", "consumer")
    );

    assert_eq!(system.endpoints.len(), 2);
    assert_eq!(system.endpoints[0].name, "echo");
    assert_eq!(system.endpoints[0].server, "consumer");
    assert_eq!(system.endpoints[0].clients, ["shell", "producer"]);
    assert_eq!(system.endpoints[1].name, "log");
    assert_eq!(system.endpoints[1].server, "shell");
    assert!(system.endpoints[1].clients.is_empty());

    // The binary form decodes to the same description.
    assert_eq!(SystemDescription::decode(&system.encode()), Ok(system));
}

#[test]
fn compile_writes_the_binary_form_only_when_changed() {
    let dir = std::env::temp_dir().join(format!("kaal-system-toml-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = dir.join("nested/system.bin");
    let system = compile(&fixture(), &out, RAM).expect("compiles");
    let bytes = std::fs::read(&out).expect("written");
    assert_eq!(SystemDescription::decode(&bytes), Ok(system.clone()));

    // Unchanged: not rewritten (its modification time stays).
    let before = std::fs::metadata(&out).and_then(|m| m.modified()).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(compile(&fixture(), &out, RAM).unwrap(), system);
    let after = std::fs::metadata(&out).and_then(|m| m.modified()).unwrap();
    assert_eq!(before, after);

    // Changed: rewritten.
    std::fs::write(&out, b"stale").unwrap();
    compile(&fixture(), &out, RAM).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn missing_file_names_the_path() {
    let path = Path::new("/nonexistent/kaal/system.toml");
    let e = load(path, RAM).unwrap_err();
    assert_eq!(e.line(), None);
    let msg = e.to_string();
    assert!(
        msg.starts_with("/nonexistent/kaal/system.toml: cannot read"),
        "{msg}"
    );
    assert!(std::error::Error::source(&e).is_some());
}

#[test]
fn converts_into_the_crate_error() {
    let e = err("[components.a]\npriority = 0\n");
    let text = e.to_string();
    let e: kaal_build::Error = e.into();
    assert!(matches!(e, kaal_build::Error::System(_)));
    assert_eq!(e.to_string(), text);
}

#[test]
fn minimal_system_gets_defaults() {
    let system = parse(Path::new("system.toml"), "[components.solo]\n", RAM).unwrap();
    assert_eq!(system.name, "");
    let solo = &system.components[0];
    assert_eq!(solo.image, "solo");
    assert_eq!(solo.priority, 100);
    assert_eq!(solo.stack_bytes, 65536);
    assert_eq!(solo.heap_bytes, 1048576);
    assert_eq!(solo.memory_quota_bytes, 8 << 20);
    assert_eq!(solo.restart, RestartPolicy::Never);
    assert_eq!(solo.arguments, 0);
    assert_eq!(solo.core, 0);
}

#[test]
fn a_component_is_placed_on_a_core() {
    let system = parse(
        Path::new("system.toml"),
        "[components.a]
core = 3
",
        RAM,
    )
    .unwrap();
    assert_eq!(system.components[0].core, 3);
    let decoded = SystemDescription::decode(&system.encode()).unwrap();
    assert_eq!(decoded.components[0].core, 3);
    rejects_at(
        "[components.a]
core = 8
",
        2,
        Some(8),
        "`core` of component `a` 8 is out of range 0..=7",
    );
    rejects(
        "[components.a]
core = -1
",
        2,
        "out of range 0..=7",
    );
}

#[test]
fn size_strings() {
    let text = r#"
[components.a]
stack_bytes = "4 KiB"
heap_bytes = 0
memory_quota = "1 GiB"
[components.b]
heap_bytes = "8192B"
memory_quota = "1_048_576"
[components.c]
memory_quota = 2_097_152
"#;
    let system = parse(Path::new("system.toml"), text, 4 << 30).unwrap();
    assert_eq!(system.components[0].stack_bytes, 4096);
    assert_eq!(system.components[0].heap_bytes, 0);
    assert_eq!(system.components[0].memory_quota_bytes, 1 << 30);
    assert_eq!(system.components[1].heap_bytes, 8192);
    assert_eq!(system.components[1].memory_quota_bytes, 1 << 20);
    assert_eq!(system.components[2].memory_quota_bytes, 2 << 20);
}

// ----- syntax -----

#[test]
fn toml_syntax_error() {
    rejects_at(
        "[components.a]\npriority = \n",
        2,
        Some(12),
        "TOML syntax error",
    );
}

#[test]
fn duplicate_component_table() {
    rejects_at(
        "[components.producer]\n\n[components.consumer]\n\n[components.producer]\npriority = 1\n",
        5,
        Some(1),
        "duplicate component name `producer`",
    );
}

#[test]
fn duplicate_key_in_a_table() {
    rejects_at(
        "[components.a]\npriority = 1\npriority = 2\n",
        3,
        Some(1),
        "duplicate key `priority`",
    );
}

// ----- unknown keys -----

#[test]
fn unknown_top_level_key() {
    rejects_at(
        "[components.a]\n\n[channel.x]\n",
        3,
        Some(2),
        "unknown key `channel` in the top level",
    );
}

#[test]
fn unknown_key_in_system() {
    rejects_at(
        "[system]\nname = \"x\"\nversion = 2\n[components.a]\n",
        3,
        Some(1),
        "unknown key `version` in [system]",
    );
}

#[test]
fn unknown_key_in_component() {
    rejects_at(
        "[components.a]\npriority = 3\n  prio = 3\n",
        3,
        Some(3),
        "unknown key `prio` in component `a`",
    );
}

#[test]
fn unknown_key_in_channel() {
    rejects(
        "[components.a]\n[components.b]\n[channels.c]\nelement = \"u8\"\ncapacity = 4\nfrom = \"a\"\nto = \"b\"\nsize = 3\n",
        8,
        "unknown key `size` in channel `c`",
    );
}

#[test]
fn unknown_key_in_endpoint() {
    rejects(
        "[components.a]\n[components.b]\n[endpoints.e]\nserver = \"a\"\nclient = [\"b\"]\n",
        5,
        "unknown key `client` in endpoint `e`",
    );
}

#[test]
fn unknown_key_in_device() {
    rejects(
        "[devices.rtc]\ncompatible = \"arm,pl031\"\nirq = 3\n[components.a]\n",
        3,
        "unknown key `irq` in device `rtc`",
    );
}

#[test]
fn unknown_key_in_type() {
    rejects(
        "[types.T]\nsize = 8\nalign = 8\nsigned = true\n[components.a]\n",
        4,
        "unknown key `signed` in type `T`",
    );
}

#[test]
fn unknown_key_in_restart_policy() {
    rejects(
        "[components.a]\nrestart = { at_most = 3, within_ms = 10 }\n",
        2,
        "unknown key `within_ms`",
    );
}

#[test]
fn unknown_key_in_nested_table() {
    rejects(
        "[components.a]\n[components.a.limits]\nx = 1\n",
        2,
        "unknown key `limits` in component `a`",
    );
}

// ----- duplicate names -----

#[test]
fn channel_and_endpoint_with_the_same_name() {
    rejects_at(
        "[components.a]\n[components.b]\n[channels.link]\nelement = \"u8\"\ncapacity = 4\nfrom = \"a\"\nto = \"b\"\n[endpoints.link]\nserver = \"a\"\n",
        8,
        Some(12),
        "duplicate name `link`: a channel defined at 3:11",
    );
}

#[test]
fn duplicate_device_in_a_list() {
    rejects_at(
        "[devices.rtc]\ncompatible = \"arm,pl031\"\n[components.a]\ndevices = [\"rtc\", \"rtc\"]\n",
        4,
        Some(19),
        "duplicate entry `rtc` in `devices` of component `a`",
    );
}

#[test]
fn duplicate_client_in_a_list() {
    rejects(
        "[components.a]\n[components.b]\n[endpoints.e]\nserver = \"a\"\nclients = [\"b\",\n  \"b\"]\n",
        6,
        "duplicate entry `b` in `clients` of endpoint `e`",
    );
}

#[test]
fn duplicate_service_in_a_list() {
    rejects(
        "[components.a]\nservices = [\"memory\", \"memory\"]\n",
        2,
        "duplicate entry `memory` in `services`",
    );
}

#[test]
fn duplicate_type_in_a_list() {
    rejects(
        "[types.T]\nsize = 4\nalign = 4\n[components.a]\ntypes = [\"T\", \"T\"]\n",
        5,
        "duplicate entry `T` in `types`",
    );
}

#[test]
fn same_device_under_two_names() {
    rejects_at(
        "[devices.rtc]\ncompatible = \"arm,pl031\"\n[devices.clock]\ncompatible = \"arm,pl031\"\nindex = 0\n[components.a]\n",
        3,
        Some(10),
        "device `clock` is the same device as `rtc`",
    );
}

// ----- references -----

const TWO: &str = "[components.a]\n[components.b]\n";

#[test]
fn unknown_component_in_channel_from() {
    rejects_at(
        &format!(
            "{TWO}[channels.c]\nelement = \"u8\"\ncapacity = 4\nfrom = \"ghost\"\nto = \"b\"\n"
        ),
        6,
        Some(8),
        "unknown component `ghost` in `from` of channel `c`",
    );
}

#[test]
fn unknown_component_in_channel_to() {
    rejects(
        &format!(
            "{TWO}[channels.c]\nelement = \"u8\"\ncapacity = 4\nfrom = \"a\"\nto = \"ghost\"\n"
        ),
        7,
        "unknown component `ghost` in `to` of channel `c`",
    );
}

#[test]
fn unknown_component_as_endpoint_server() {
    rejects(
        &format!("{TWO}[endpoints.e]\nserver = \"ghost\"\n"),
        4,
        "unknown component `ghost` in `server` of endpoint `e`",
    );
}

#[test]
fn unknown_component_as_endpoint_client() {
    rejects_at(
        &format!("{TWO}[endpoints.e]\nserver = \"a\"\nclients = [\"b\", \"ghost\"]\n"),
        5,
        Some(17),
        "unknown component `ghost` in `clients` of endpoint `e`",
    );
}

#[test]
fn server_as_its_own_client() {
    rejects(
        &format!("{TWO}[endpoints.e]\nserver = \"a\"\nclients = [\"a\"]\n"),
        5,
        "component `a` is the server of endpoint `e` and cannot be its client",
    );
}

#[test]
fn unknown_device() {
    rejects_at(
        "[devices.rtc]\ncompatible = \"arm,pl031\"\n[components.a]\ndevices = [\"rtc\", \"gpu\"]\n",
        4,
        Some(19),
        "unknown device `gpu`",
    );
}

#[test]
fn dma_capable_device_needs_dma_trust() {
    rejects_at(
        "[devices.disk]\ncompatible = \"virtio,mmio\"\nindex = 31\n[components.a]\ndevices = [\"disk\"]\n",
        5,
        Some(12),
        "device `disk` (virtio,mmio) in `devices` of component `a` can read and write all memory by DMA (no IOMMU confines it): trust component `a` with that by adding `dma = true` to its table",
    );
    rejects(
        "[components.a]\ndma = \"yes\"\n",
        2,
        "`dma` of component `a` must be true or false",
    );
    let toml = "[devices.disk]\ncompatible = \"virtio,mmio\"\n[devices.rtc]\ncompatible = \"arm,pl031\"\n[components.a]\ndevices = [\"disk\"]\ndma = true\n[components.b]\ndevices = [\"rtc\"]\n";
    let system = kaal_build::system::parse(std::path::Path::new("system.toml"), toml, 256 << 20)
        .expect("a trusted component may hold a DMA-capable device");
    assert_ne!(
        system.components[0].services & kaal_bootinfo::system::services::DMA,
        0
    );
    assert_eq!(
        system.components[1].services & kaal_bootinfo::system::services::DMA,
        0
    );
}

#[test]
fn device_granted_to_two_components() {
    rejects(
        "[devices.rtc]\ncompatible = \"arm,pl031\"\n[components.a]\ndevices = [\"rtc\"]\n[components.b]\ndevices = [\"rtc\"]\n",
        6,
        "device `rtc` granted to component `b` is already granted to component `a`",
    );
}

#[test]
fn irq_granted_to_two_components() {
    rejects_at(
        "[components.a]\nirqs = [40]\n[components.b]\nirqs = [41, 40]\n",
        4,
        Some(13),
        "IRQ 40 granted to component `b` is already granted to component `a`",
    );
}

#[test]
fn irq_granted_twice_in_one_list() {
    rejects(
        "[components.a]\nirqs = [40, 41, 40]\n",
        2,
        "IRQ 40 is listed twice",
    );
}

#[test]
fn channel_from_a_component_to_itself() {
    rejects(
        &format!(
            "{TWO}[channels.loop]\nelement = \"u8\"\ncapacity = 4\nfrom = \"a\"\nto = \"a\"\n"
        ),
        7,
        "channel `loop` goes from component `a` to itself",
    );
}

// ----- memory -----

#[test]
fn quotas_exceed_ram_at_the_crossing_component() {
    // 256 MiB of RAM: a (100) + b (100) fit, c (100) crosses, d is never reached.
    let text = "[components.a]\nmemory_quota = \"100 MiB\"\n[components.b]\nmemory_quota = \"100 MiB\"\n[components.c]\nmemory_quota = \"100 MiB\"\n[components.d]\nmemory_quota = \"1 GiB\"\n";
    rejects_at(
        text,
        6,
        Some(16),
        "memory quotas exceed RAM: with component `c` (100 MiB) they add up to 300 MiB",
    );
}

#[test]
fn default_quotas_exceed_ram_at_the_component() {
    // Default quota 8 MiB each; 20 MiB of RAM: the third component crosses.
    let text = "[components.a]\n[components.b]\n[components.c]\n";
    let e = parse(Path::new("system.toml"), text, 20 << 20).unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with("system.toml:3:13: "), "{msg}");
    assert!(msg.contains("memory quotas exceed RAM"), "{msg}");
}

#[test]
fn stack_and_heap_exceed_the_quota() {
    rejects(
        "[components.a]\nheap_bytes = \"8 MiB\"\nmemory_quota = \"8 MiB\"\n",
        3,
        "is smaller than its stack and heap",
    );
}

// ----- element types -----

const TYPED: &str = "[types.Sample]\nsize = 16\nalign = 8\n";

#[test]
fn element_type_not_listed_by_the_consumer() {
    rejects_at(
        &format!(
            "{TYPED}[components.a]\ntypes = [\"Sample\"]\n[components.b]\n[channels.c]\nelement = \"Sample\"\ncapacity = 4\nfrom = \"a\"\nto = \"b\"\n"
        ),
        8,
        Some(11),
        "element type `Sample` of channel `c` is unknown to component `b`",
    );
}

#[test]
fn element_type_not_listed_by_the_producer() {
    rejects(
        &format!(
            "{TYPED}[components.a]\n[components.b]\ntypes = [\"Sample\"]\n[channels.c]\nelement = \"Sample\"\ncapacity = 4\nfrom = \"a\"\nto = \"b\"\n"
        ),
        8,
        "element type `Sample` of channel `c` is unknown to component `a`",
    );
}

#[test]
fn element_type_not_defined() {
    rejects(
        &format!(
            "{TWO}[channels.c]\nelement = \"Frame\"\ncapacity = 4\nfrom = \"a\"\nto = \"b\"\n"
        ),
        4,
        "unknown element type `Frame` of channel `c`",
    );
}

#[test]
fn component_lists_an_undefined_type() {
    rejects(
        "[components.a]\ntypes = [\"Frame\"]\n",
        2,
        "unknown type `Frame`",
    );
}

#[test]
fn type_redefines_a_builtin() {
    rejects(
        "[types.u64]\nsize = 8\nalign = 8\n[components.a]\n",
        1,
        "type `u64` is built in",
    );
}

#[test]
fn type_with_bad_alignment() {
    rejects(
        "[types.T]\nsize = 12\nalign = 6\n[components.a]\n",
        3,
        "`align` of type `T` is 6, not a power of two",
    );
}

#[test]
fn type_size_not_a_multiple_of_alignment() {
    rejects(
        "[types.T]\nsize = 12\nalign = 8\n[components.a]\n",
        2,
        "not a multiple of its alignment 8",
    );
}

// ----- bad values -----

#[test]
fn priority_out_of_range() {
    rejects_at(
        "[components.a]\npriority = 0\n",
        2,
        Some(12),
        "`priority` of component `a` 0 is out of range 1..=127",
    );
    rejects(
        "[components.a]\npriority = 255\n",
        2,
        "out of range 1..=127",
    );
}

#[test]
fn priority_of_the_wrong_type() {
    rejects(
        "[components.a]\npriority = \"high\"\n",
        2,
        "`priority` of component `a` must be an integer, found a string",
    );
}

#[test]
fn capacity_not_a_power_of_two() {
    rejects_at(
        &format!(
            "{TWO}[channels.c]\nelement = \"u8\"\ncapacity = 1000\nfrom = \"a\"\nto = \"b\"\n"
        ),
        5,
        Some(12),
        "`capacity` of channel `c` is 1000, not a power of two",
    );
}

#[test]
fn capacity_too_large() {
    rejects(
        &format!(
            "{TWO}[channels.c]\nelement = \"u8\"\ncapacity = 0x8000_0000\nfrom = \"a\"\nto = \"b\"\n"
        ),
        5,
        "out of range 1..=1073741824",
    );
}

#[test]
fn unparsable_size_string() {
    rejects_at(
        "[components.a]\nmemory_quota = \"8 MB\"\n",
        2,
        Some(16),
        "cannot parse size \"8 MB\": unknown unit `MB`",
    );
    rejects(
        "[components.a]\nmemory_quota = \"lots\"\n",
        2,
        "cannot parse size \"lots\"",
    );
}

#[test]
fn stack_not_a_page_multiple() {
    rejects(
        "[components.a]\nstack_bytes = 5000\n",
        2,
        "`stack_bytes` of component `a` is 5000, not a positive multiple of the page size 4096",
    );
}

#[test]
fn stack_of_zero() {
    rejects(
        "[components.a]\nstack_bytes = 0\n",
        2,
        "not a positive multiple of the page size",
    );
}

#[test]
fn heap_not_a_page_multiple() {
    rejects(
        "[components.a]\nheap_bytes = \"1 B\"\n",
        2,
        "`heap_bytes` of component `a` is 1, not a multiple of the page size",
    );
}

#[test]
fn irq_out_of_range() {
    rejects(
        "[components.a]\nirqs = [27]\n",
        2,
        "IRQ line in `irqs` of component `a` 27 is out of range 32..=1019",
    );
}

#[test]
fn unknown_service() {
    rejects(
        "[components.a]\nservices = [\"network\"]\n",
        2,
        "unknown service `network`",
    );
}

#[test]
fn bad_restart_policy() {
    rejects(
        "[components.a]\nrestart = \"sometimes\"\n",
        2,
        "`restart` of component `a` must be \"never\", \"always\" or",
    );
}

#[test]
fn channel_missing_a_key() {
    rejects_at(
        &format!("{TWO}[channels.c]\nelement = \"u8\"\nfrom = \"a\"\nto = \"b\"\n"),
        3,
        Some(11),
        "channel `c` is missing `capacity`",
    );
}

#[test]
fn component_name_too_long() {
    let name = "x".repeat(49);
    rejects(
        &format!("[components.{name}]\n"),
        1,
        "more than the limit 48",
    );
}

#[test]
fn components_must_be_tables() {
    rejects(
        "[components]\na = 1\n",
        2,
        "[components.a] must be a table, found an integer",
    );
}

#[test]
fn no_components_at_all() {
    rejects_at("[system]\nname = \"empty\"\n", 1, Some(1), "no components");
}

#[test]
fn empty_components_table() {
    rejects_at(
        "[system]\nname = \"empty\"\n\n[components]\n",
        4,
        Some(2),
        "no components",
    );
}

#[test]
fn columns_count_characters() {
    // "é" is two bytes but one column (byte offsets would give 13 and 16).
    rejects_at(
        "[components.a]\nimage = \"é\"; priority = 0\n",
        2,
        Some(12),
        "TOML syntax error",
    );
    rejects_at(
        "[types.\"é\"]\nsize = 1\nalign = 1\n[components.a]\ntypes = [\"é\", \"é\"]\n",
        5,
        Some(15),
        "duplicate entry `é` in `types`",
    );
}

#[test]
fn documented_example_is_valid() {
    // The ```toml block of the module documentation.
    let source = include_str!("../src/system.rs");
    let text: String = source
        .lines()
        .skip_while(|l| *l != "//! ```toml")
        .skip(1)
        .take_while(|l| *l != "//! ```")
        .map(|l| {
            format!(
                "{}\n",
                l.trim_start_matches("//!").strip_prefix(' ').unwrap_or("")
            )
        })
        .collect();
    assert!(text.contains("[components.producer]"));
    let system = parse(Path::new("system.toml"), &text, RAM).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(system.components.len(), 2);
    assert_eq!(system.channels[0].element_bytes, 16);
    assert_eq!(system.endpoints[0].clients, ["producer"]);
}
