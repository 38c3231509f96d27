//! Build a whole image: components, archive and kernel, in one call.

use std::path::PathBuf;

use crate::{
    Bin, Error, ROOT_TASK, Result, Workspace,
    archive::{self, Component},
};

/// What an image is made of: a kernel binary and named user components.
#[derive(Clone, Debug)]
pub struct ImageSpec {
    /// Image name; its files go to [`Workspace::image_dir`].
    pub name: String,
    /// The kernel binary.
    pub kernel: Bin,
    /// Archive entries, as (entry name, binary), in archive order.
    pub components: Vec<(String, Bin)>,
}

impl ImageSpec {
    /// An image called `name` whose kernel is package `kernel_package`'s binary of the same name.
    pub fn new(name: impl Into<String>, kernel_package: impl Into<String>) -> Self {
        ImageSpec {
            name: name.into(),
            kernel: Bin::package(kernel_package),
            components: Vec::new(),
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
}

/// The files of a built image.
#[derive(Clone, Debug)]
pub struct Image {
    /// The kernel ELF to hand QEMU's `-kernel` (a copy private to this image).
    pub kernel: PathBuf,
    /// The component archive embedded in the kernel.
    pub archive: PathBuf,
}

/// Builds the components of `spec`, packs them, builds the kernel around the archive, and
/// copies the kernel to `<image dir>/kernel.elf`.
pub fn build_image(ws: &Workspace, spec: &ImageSpec) -> Result<Image> {
    if !spec.components.iter().any(|(name, _)| name == ROOT_TASK) {
        return Err(Error::Invalid(format!(
            "image `{}` has no `{ROOT_TASK}` component",
            spec.name
        )));
    }
    let bins: Vec<Bin> = spec.components.iter().map(|(_, b)| b.clone()).collect();
    let elfs = ws.build_user(&bins)?;
    let components: Vec<Component> = spec
        .components
        .iter()
        .zip(elfs)
        .map(|((name, _), elf)| Component::new(name.clone(), elf))
        .collect();
    link_image(ws, &spec.name, &spec.kernel, &components)
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
    Ok(Image { kernel, archive })
}
