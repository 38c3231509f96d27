//! # kaal-dddk-macros: `#[derive(Driver)]` for the KaaL driver development kit
//!
//! Use it through `kaal-dddk`, which re-exports it as `kaal_dddk::Driver` (beside the
//! trait of the same name) and holds the runtime the generated code calls. The
//! crate's `README.md` has the attribute table.
//!
//! The proc-macro entry point is a thin shim: the code generation is a plain function on
//! `proc_macro2` token streams (`codegen::expand`), tested on its own with golden tests
//! that compare its output for representative inputs with checked-in expansions.
#![forbid(unsafe_code)]

use proc_macro::TokenStream;

mod codegen;
mod errors;
mod model;
mod resource;
#[cfg(test)]
mod tests;

/// Derives `kaal_dddk::Probe` for a driver struct from attributes that declare the
/// driver's name, the devices it drives and the resources its fields hold, and records
/// the same facts in the binary for `kaal-build` to read.
///
/// # Attributes
///
/// On the struct:
///
/// * `#[driver(name = "pl031")]` (required, once): the name `system.toml` refers to in
///   `driver = "..."`; 1 to 64 ASCII letters, digits, `-` or `_`.
/// * `#[platform(compatible = "arm,pl031")]` (repeatable): a device-tree `compatible`
///   string the driver drives.
/// * `#[pci(vendor = 0x1af4, device = 0x1001)]` (repeatable): a PCI id it drives.
///
/// A driver has at least one `#[platform]` or `#[pci]` attribute, and a `#[platform]`
/// driver at least one `#[mmio]` field.
///
/// On fields (at most one each):
///
/// * `#[mmio]` or `#[mmio(index = N)]` on a field of type `Mmio<R>`: register region `N`
///   of the driver's grants, as the register block `R` (`Resources::mmio`).
/// * `#[irq]` or `#[irq(index = N)]` on a field of type `IrqLine`: IRQ line `N`
///   (`Resources::irq`).
/// * `#[dma(bytes = 65536)]` on a field of type `DmaBuffer`: a DMA buffer of at least that
///   many bytes (`Resources::dma`).
///
/// An `#[mmio]` or `#[irq]` without an index takes the one after the previous field's of
/// its kind (the first takes 0), as enum discriminants do; indices run from 0 to 63 and
/// each is claimed by one field. Every other field is initialised with
/// `Default::default()`.
///
/// # Generated code
///
/// * `impl kaal_dddk::Probe`: `METADATA` (the name, the matches, the number of register
///   regions and IRQ lines, highest index plus one, and the DMA sizes) and `probe`, which
///   claims each field's resource in field order and builds the struct.
/// * A `#[used]` static `__KAAL_DRIVER_METADATA_<NAME>` (the name upper-cased, `-` as
///   `_`) holding the same metadata as a `kaal_bootinfo::driver` record, which
///   `kaal_build::driver::read_metadata` reads from the driver's ELF without running it.
///
/// No `unsafe` attribute is generated: the driver crate can be `#![forbid(unsafe_code)]`.
///
/// # Example
///
/// ```ignore
/// use kaal_dddk::{Driver, DmaBuffer, IrqLine, Mmio};
///
/// #[derive(Driver)]
/// #[driver(name = "virtio-blk")]
/// #[platform(compatible = "virtio,mmio")]
/// #[pci(vendor = 0x1af4, device = 0x1001)]
/// struct VirtioBlk {
///     #[mmio]
///     registers: Mmio<Registers>,
///     #[irq]
///     interrupt: IrqLine,
///     #[dma(bytes = 65536)]
///     queue: DmaBuffer,
///     requests_served: u64, // Default::default()
/// }
///
/// impl kaal_dddk::Driver for VirtioBlk {}
/// ```
///
/// # Errors
///
/// Each misuse is one compile error at the offending span: an unknown attribute key, a
/// missing or repeated `#[driver(name)]`, no `#[platform]` or `#[pci]`, a `#[platform]`
/// driver without `#[mmio]` field, two fields claiming the same region or line, a
/// resource attribute on a field of another type, an input that is not a struct with
/// named fields, or a generic struct.
#[proc_macro_derive(Driver, attributes(driver, platform, pci, mmio, irq, dma))]
pub fn derive_driver(input: TokenStream) -> TokenStream {
    codegen::expand(input.into()).into()
}
