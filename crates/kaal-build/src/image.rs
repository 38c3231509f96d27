//! Build a whole image: components, system description, archive and kernel, in one call.

use std::path::{Path, PathBuf};

use crate::{
    Bin, Error, ROOT_TASK, Result, Workspace,
    archive::{self, Component},
    system::{self, SYSTEM_ENTRY},
};

/// RAM a system description is checked against unless [`ImageSpec::ram_bytes`] says
/// otherwise: 256 MiB, what [`crate::qemu::QemuConfig`] gives a machine by default.
pub const DEFAULT_RAM_BYTES: u64 = 256 << 20;

/// File name of the compiled system description in [`Workspace::image_dir`].
pub const SYSTEM_FILE: &str = "system.bin";

/// What an image is made of: a kernel binary, named user components and, for a system
/// the broker builds, its `system.toml`.
#[derive(Clone, Debug)]
pub struct ImageSpec {
    /// Image name; its files go to [`Workspace::image_dir`].
    pub name: String,
    /// The kernel binary.
    pub kernel: Bin,
    /// Archive entries, as (entry name, binary), in archive order.
    pub components: Vec<(String, Bin)>,
    /// The system description (`system.toml`) to check and embed as archive entry
    /// [`SYSTEM_ENTRY`], if any.
    pub system: Option<PathBuf>,
    /// RAM of the machine the image is for, in bytes: the memory quotas of the system
    /// description must fit in it. Default [`DEFAULT_RAM_BYTES`].
    pub ram_bytes: u64,
}

impl ImageSpec {
    /// An image called `name` whose kernel is package `kernel_package`'s binary of the same name.
    pub fn new(name: impl Into<String>, kernel_package: impl Into<String>) -> Self {
        ImageSpec {
            name: name.into(),
            kernel: Bin::package(kernel_package),
            components: Vec::new(),
            system: None,
            ram_bytes: DEFAULT_RAM_BYTES,
        }
    }

    /// Adds archive entry `entry` built from package `package`'s binary of the same name.
    pub fn component(self, entry: impl Into<String>, package: impl Into<String>) -> Self {
        self.component_bin(entry, Bin::package(package))
    }

    /// Adds archive entry `entry` built from `bin`.
    pub fn component_bin(mut self, entry: impl Into<String>, bin: Bin) -> Self {
        self.components.push((entry.into(), bin));
        self
    }

    /// Adds `bin` as the [`ROOT_TASK`] entry.
    pub fn root_task(self, bin: Bin) -> Self {
        self.component_bin(ROOT_TASK, bin)
    }

    /// Embeds the system description at `path` (a `system.toml`, see [`crate::system`]):
    /// [`build_image`] checks it with [`system::compile`] against
    /// [`ram_bytes`](Self::ram_bytes) before it builds anything, checks that every
    /// component it describes runs an archive entry of this image, and adds the binary
    /// description as archive entry [`SYSTEM_ENTRY`], where `kaal_broker::Broker::new`
    /// reads it. A mistake in the file fails the build with `path:line:column: problem`.
    ///
    /// ```no_run
    /// use kaal_build::{Bin, Workspace, image::{ImageSpec, build_image}};
    ///
    /// # fn main() -> Result<(), kaal_build::Error> {
    /// let spec = ImageSpec::new("demo", "kernel")
    ///     .root_task(Bin::package("root-task")) // the broker
    ///     .component("sensor", "sensor")
    ///     .component("monitor", "monitor")
    ///     .system("system.toml")
    ///     .ram_bytes(512 << 20); // the machine `-m 512M` will boot it on
    /// match build_image(&Workspace::new("."), &spec) {
    ///     Ok(image) => println!("{}", image.kernel.display()),
    ///     // e.g. `system.toml:14:6: unknown component `monitr` in `to` of channel `samples` ...`
    ///     Err(e) => eprintln!("{e}"),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn system(mut self, path: impl Into<PathBuf>) -> Self {
        self.system = Some(path.into());
        self
    }

    /// Checks the system description for a machine with `bytes` of RAM (default
    /// [`DEFAULT_RAM_BYTES`]): the memory quotas of all components must fit in it.
    pub fn ram_bytes(mut self, bytes: u64) -> Self {
        self.ram_bytes = bytes;
        self
    }
}

/// The files of a built image.
#[derive(Clone, Debug)]
pub struct Image {
    /// The kernel ELF to hand QEMU's `-kernel` (a copy private to this image).
    pub kernel: PathBuf,
    /// The component archive embedded in the kernel.
    pub archive: PathBuf,
    /// The archive entries that are ELF programs (the root task and the components, not
    /// the system description), in archive order: each entry's name and the path of the
    /// ELF file packed under it, with its symbols ([`crate::debug`] loads them into GDB).
    pub components: Vec<Component>,
}

/// Bytes of memory the loadable segments of the ELF file at `elf` take (the sum of
/// their `p_memsz`): for a kernel image, what the boot loader places in RAM, the
/// embedded component archive included.
pub fn loadable_bytes(elf: &Path) -> Result<u64> {
    let bytes = std::fs::read(elf).map_err(|e| Error::io(elf, e))?;
    let file = ::elf::ElfBytes::<::elf::endian::LittleEndian>::minimal_parse(&bytes)
        .map_err(|e| Error::Invalid(format!("{}: not an ELF file: {e}", elf.display())))?;
    let segments = file
        .segments()
        .ok_or_else(|| Error::Invalid(format!("{}: no program headers", elf.display())))?;
    Ok(segments
        .iter()
        .filter(|s| s.p_type == ::elf::abi::PT_LOAD)
        .map(|s| s.p_memsz)
        .sum())
}

/// Checks the system description of `spec` (first, so that a mistake in it fails fast),
/// builds the components of `spec`, packs them (and the description), builds the kernel
/// around the archive, and copies the kernel to `<image dir>/kernel.elf`.
///
/// # Errors
///
/// The spec has no [`ROOT_TASK`]; its `system.toml` is invalid ([`Error::System`],
/// shown as `path:line:column: problem`) or describes a component whose archive entry
/// the spec does not have; a component or the kernel does not build.
pub fn build_image(ws: &Workspace, spec: &ImageSpec) -> Result<Image> {
    if !spec.components.iter().any(|(name, _)| name == ROOT_TASK) {
        return Err(Error::Invalid(format!(
            "image `{}` has no `{ROOT_TASK}` component",
            spec.name
        )));
    }
    let system = compile_system(ws, spec)?;
    let bins: Vec<Bin> = spec.components.iter().map(|(_, b)| b.clone()).collect();
    let elfs = ws.build_user(&bins)?;
    let mut components: Vec<Component> = spec
        .components
        .iter()
        .zip(elfs)
        .map(|((name, _), elf)| Component::new(name.clone(), elf))
        .collect();
    if let (Some(path), Some((_, description))) = (&spec.system, &system) {
        let images: Vec<(String, std::path::PathBuf)> = components
            .iter()
            .map(|c| (c.name.clone(), c.elf.clone()))
            .collect();
        crate::driver::check_drivers(path, description, &images)?;
    }
    components.extend(system.map(|(entry, _)| entry));
    link_image(ws, &spec.name, &spec.kernel, &components)
}

/// Checks and compiles the system description of `spec`, if it has one, into
/// `<image dir>/`[`SYSTEM_FILE`]; returns the archive entry for it and the description.
fn compile_system(
    ws: &Workspace,
    spec: &ImageSpec,
) -> Result<Option<(Component, kaal_bootinfo::system::SystemDescription)>> {
    let Some(path) = &spec.system else {
        return Ok(None);
    };
    if spec.components.iter().any(|(name, _)| name == SYSTEM_ENTRY) {
        return Err(Error::Invalid(format!(
            "image `{}` has a component called `{SYSTEM_ENTRY}`, the archive entry of its system description",
            spec.name
        )));
    }
    let out = ws.image_dir(&spec.name).join(SYSTEM_FILE);
    let description = system::compile(path, &out, spec.ram_bytes)?;
    for component in &description.components {
        if !spec
            .components
            .iter()
            .any(|(name, _)| *name == component.image)
        {
            return Err(missing_image(path, &component.name, &component.image));
        }
    }
    Ok(Some((Component::new(SYSTEM_ENTRY, out), description)))
}

fn missing_image(path: &Path, component: &str, image: &str) -> Error {
    let what = if component == image {
        format!("component `{component}`")
    } else {
        format!("component `{component}` (image `{image}`)")
    };
    Error::Invalid(format!(
        "{}: {what} is not in the image: build it as archive entry `{image}` (`ImageSpec::component`)",
        path.display()
    ))
}

/// Packs already built `components` and builds `kernel` around them as image `name`.
pub fn link_image(
    ws: &Workspace,
    name: &str,
    kernel: &Bin,
    components: &[Component],
) -> Result<Image> {
    let dir = ws.image_dir(name);
    let archive = dir.join("components.kaal");
    archive::pack(components, &archive)?;
    let built = ws.build_kernel(kernel, &archive)?;
    let kernel = dir.join("kernel.elf");
    std::fs::copy(&built, &kernel).map_err(|e| Error::io(&kernel, e))?;
    let mut programs = Vec::new();
    for component in components {
        if is_elf(&component.elf)? {
            programs.push(component.clone());
        }
    }
    Ok(Image {
        kernel,
        archive,
        components: programs,
    })
}

/// Whether the file at `path` starts with the ELF magic number.
fn is_elf(path: &Path) -> Result<bool> {
    use std::io::Read;
    let mut magic = [0u8; 4];
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    match file.read_exact(&mut magic) {
        Ok(()) => Ok(magic == *b"\x7fELF"),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(Error::io(path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kaal_bootinfo::system::SystemDescription;

    const SYSTEM: &str = r#"[system]
name = "demo"

[components.sensor]
memory_quota = "4 MiB"

[components.monitor]
memory_quota = "4 MiB"

[channels.samples]
element = "u64"
capacity = 64
from = "sensor"
to = "monitor"
"#;

    /// A fresh directory under the system's temporary directory, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(test: &str) -> Self {
            let dir = std::env::temp_dir()
                .join(format!("kaal-build-image-{}-{test}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("scratch directory");
            Scratch(dir)
        }

        fn write(&self, name: &str, text: &str) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, text).expect("write");
            path
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn spec(system: &Path) -> ImageSpec {
        ImageSpec::new("demo", "kernel")
            .root_task(Bin::package("root-task"))
            .component("sensor", "sensor")
            .component("monitor", "monitor")
            .system(system)
    }

    #[test]
    fn defaults_and_builder() {
        let spec = ImageSpec::new("demo", "kernel");
        assert_eq!(spec.system, None);
        assert_eq!(spec.ram_bytes, DEFAULT_RAM_BYTES);
        let spec = spec.system("a/system.toml").ram_bytes(1 << 30);
        assert_eq!(spec.system.as_deref(), Some(Path::new("a/system.toml")));
        assert_eq!(spec.ram_bytes, 1 << 30);
    }

    #[test]
    fn system_is_compiled_into_the_image_dir_as_its_archive_entry() {
        let scratch = Scratch::new("compiled");
        let path = scratch.write("system.toml", SYSTEM);
        let ws = Workspace::new(&scratch.0);
        let (entry, _) = compile_system(&ws, &spec(&path))
            .expect("valid system")
            .expect("an entry");
        assert_eq!(entry.name, SYSTEM_ENTRY);
        assert_eq!(entry.elf, ws.image_dir("demo").join(SYSTEM_FILE));
        let bytes = std::fs::read(&entry.elf).expect("compiled description");
        let description = SystemDescription::decode(&bytes).expect("decodes");
        assert_eq!(description.name, "demo");
        assert_eq!(description.components.len(), 2);
        assert_eq!(description.channels[0].name, "samples");
        // Without a system there is no entry.
        let plain = ImageSpec::new("demo", "kernel").root_task(Bin::package("root-task"));
        assert!(compile_system(&ws, &plain).expect("no system").is_none());
    }

    #[test]
    fn malformed_system_fails_the_build_with_file_line_column() {
        let scratch = Scratch::new("malformed");
        let broken = SYSTEM.replace("to = \"monitor\"", "to = \"monitr\"");
        let path = scratch.write("system.toml", &broken);
        // Checked before anything is built: no cargo runs in the empty scratch dir.
        let e = build_image(&Workspace::new(&scratch.0), &spec(&path)).expect_err("rejected");
        assert!(matches!(e, Error::System(_)), "{e:?}");
        let msg = e.to_string();
        let prefix = format!("{}:14:6: ", path.display());
        assert!(
            msg.starts_with(&prefix),
            "expected `{prefix}...`, got: {msg}"
        );
        assert!(msg.contains("monitr"), "{msg}");
    }

    #[test]
    fn quotas_are_checked_against_the_ram_given() {
        let scratch = Scratch::new("ram");
        let path = scratch.write("system.toml", SYSTEM);
        let ws = Workspace::new(&scratch.0);
        assert!(compile_system(&ws, &spec(&path).ram_bytes(256 << 20)).is_ok());
        let e = build_image(&ws, &spec(&path).ram_bytes(6 << 20)).expect_err("8 MiB > 6 MiB");
        let msg = e.to_string();
        assert!(msg.starts_with(&format!("{}:", path.display())), "{msg}");
    }

    #[test]
    fn a_described_component_missing_from_the_image_is_named() {
        let scratch = Scratch::new("missing");
        let path = scratch.write("system.toml", SYSTEM);
        let spec = ImageSpec::new("demo", "kernel")
            .root_task(Bin::package("root-task"))
            .component("sensor", "sensor")
            .system(&path);
        let e = build_image(&Workspace::new(&scratch.0), &spec).expect_err("no monitor");
        let msg = e.to_string();
        assert!(msg.starts_with(&format!("{}: ", path.display())), "{msg}");
        assert!(
            msg.contains("component `monitor` is not in the image"),
            "{msg}"
        );
    }

    #[test]
    fn a_component_called_system_clashes_with_the_description() {
        let scratch = Scratch::new("clash");
        let path = scratch.write("system.toml", SYSTEM);
        let spec = spec(&path).component(SYSTEM_ENTRY, "x");
        let e = build_image(&Workspace::new(&scratch.0), &spec).expect_err("clash");
        assert!(e.to_string().contains("a component called `system`"), "{e}");
    }
}
