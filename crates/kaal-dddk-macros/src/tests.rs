//! Golden tests of the code generation: each representative input's expansion,
//! pretty-printed, must equal the checked-in `golden/<case>.rs`. After an intended
//! change, regenerate them with `KAAL_BLESS=1 cargo test -p kaal-dddk-macros` and review
//! the diff. Misuses are checked by their messages here and by their spans in
//! `kaal-dddk`'s trybuild tests.

use std::path::PathBuf;

use kaal_bootinfo::driver::{DriverInfo, DriverInfoOwned, PciId};
use proc_macro2::TokenStream;
use quote::quote;
use syn::{Expr, ExprLit, ExprUnary, Item, Lit, UnOp};

use crate::codegen::{expand, try_expand};

fn golden(case: &str, input: TokenStream) {
    let output = expand(input);
    let file: syn::File = syn::parse2(output).expect("the expansion parses as items");
    let pretty = prettyplease::unparse(&file);
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "golden", &format!("{case}.rs")]
        .iter()
        .collect();
    if std::env::var_os("KAAL_BLESS").is_some() {
        std::fs::write(&path, &pretty).expect("golden file written");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (KAAL_BLESS=1 writes it)", path.display()));
    assert!(
        pretty == expected,
        "expansion of `{case}` differs from {}; KAAL_BLESS=1 rewrites it\n--- got:\n{pretty}",
        path.display()
    );
}

/// The metadata record the expansion of `input` embeds, decoded.
fn record(input: TokenStream) -> DriverInfoOwned {
    let file: syn::File = syn::parse2(expand(input)).unwrap();
    let bytes = file
        .items
        .iter()
        .find_map(|item| match item {
            Item::Static(item)
                if item
                    .ident
                    .to_string()
                    .starts_with("__KAAL_DRIVER_METADATA_") =>
            {
                match &*item.expr {
                    Expr::Unary(ExprUnary {
                        op: UnOp::Deref(_),
                        expr,
                        ..
                    }) => match &**expr {
                        Expr::Lit(ExprLit {
                            lit: Lit::ByteStr(bytes),
                            ..
                        }) => Some(bytes.value()),
                        _ => None,
                    },
                    _ => None,
                }
            }
            _ => None,
        })
        .expect("a metadata static holding a byte string");
    DriverInfo::parse(&bytes)
        .expect("the record parses")
        .into_owned()
}

/// The messages of the errors `input` gets, in order.
fn errors(input: TokenStream) -> Vec<String> {
    try_expand(input)
        .expect_err("the input must be rejected")
        .into_iter()
        .map(|error| error.to_string())
        .collect()
}

fn pl031() -> TokenStream {
    quote! {
        #[derive(Driver)]
        #[driver(name = "pl031")]
        #[platform(compatible = "arm,pl031")]
        pub struct Pl031 {
            #[mmio]
            registers: Mmio<Registers>,
            #[irq]
            alarm: IrqLine,
        }
    }
}

fn virtio_blk() -> TokenStream {
    quote! {
        /// A virtio block device.
        #[derive(Driver, Debug)]
        #[driver(name = "virtio-blk")]
        #[platform(compatible = "virtio,mmio")]
        #[pci(vendor = 0x1af4, device = 0x1001)]
        #[pci(vendor = 0x1af4, device = 0x1042)]
        struct VirtioBlk {
            #[mmio(index = 2)]
            notify: kaal_dddk::Mmio<NotifyRegisters>,
            #[mmio(index = 0)]
            common: Mmio<CommonRegisters>,
            #[mmio]
            device: Mmio<DeviceRegisters>,
            requests: u64,
            #[irq(index = 2)]
            queue: IrqLine,
            #[irq]
            config: IrqLine,
            #[dma(bytes = 65536)]
            ring: DmaBuffer,
            #[dma(bytes = 4096)]
            scratch: ::kaal_dddk::DmaBuffer,
            name: Option<&'static str>,
        }
    }
}

fn pci_only() -> TokenStream {
    quote! {
        #[derive(Driver)]
        #[pci(vendor = 0x8086, device = 0x100e)]
        #[driver(name = "e1000_stub")]
        struct E1000Stub {
            packets: u64,
        }
    }
}

#[test]
fn golden_pl031() {
    golden("pl031", pl031());
}

#[test]
fn golden_virtio_blk() {
    golden("virtio_blk", virtio_blk());
}

#[test]
fn golden_pci_only() {
    golden("pci_only", pci_only());
}

#[test]
fn records_match_the_attributes() {
    assert_eq!(
        record(pl031()),
        DriverInfoOwned {
            name: "pl031".into(),
            compatible: vec!["arm,pl031".into()],
            pci: vec![],
            mmio: 1,
            irqs: 1,
            dma: vec![],
        }
    );
    assert_eq!(
        record(virtio_blk()),
        DriverInfoOwned {
            name: "virtio-blk".into(),
            compatible: vec!["virtio,mmio".into()],
            pci: vec![
                PciId {
                    vendor: 0x1af4,
                    device: 0x1001
                },
                PciId {
                    vendor: 0x1af4,
                    device: 0x1042
                },
            ],
            // Indices 2, 0 and then 0 + 1 = 1.
            mmio: 3,
            // Indices 2 and 3: lines 0 and 1 are left to the device's other users.
            irqs: 4,
            dma: vec![65536, 4096],
        }
    );
    assert_eq!(record(pci_only()).name, "e1000_stub");
}

#[test]
fn static_name_is_the_upper_case_driver_name() {
    let output = expand(virtio_blk()).to_string();
    assert!(
        output.contains("static __KAAL_DRIVER_METADATA_VIRTIO_BLK :"),
        "{output}"
    );
}

#[test]
fn no_unsafe_attributes() {
    for input in [pl031(), virtio_blk(), pci_only()] {
        let output = expand(input).to_string();
        for forbidden in ["no_mangle", "link_section", "export_name", "unsafe"] {
            assert!(!output.contains(forbidden), "{forbidden} in {output}");
        }
    }
}

#[test]
fn unknown_keys() {
    assert_eq!(
        errors(quote! {
            #[driver(nam = "x")]
            #[platform(compatible = "a")]
            struct S { #[mmio(indx = 1)] r: Mmio<R>, #[irq(line = 1)] i: IrqLine, #[dma(size = 1)] d: DmaBuffer }
        }),
        [
            "unknown `driver` key `nam`; expected `name`",
            "unknown `mmio` key `indx`; expected `index`",
            "unknown `irq` key `line`; expected `index`",
            "unknown `dma` key `size`; expected `bytes`",
        ]
    );
    assert_eq!(
        errors(quote! {
            #[driver(name = "x")]
            #[platform(compat = "a")]
            #[pci(vendor = 1, dev = 2)]
            struct S { #[mmio] r: Mmio<R> }
        }),
        [
            "unknown `platform` key `compat`; expected `compatible`",
            "unknown `pci` key `dev`; expected `vendor` or `device`",
        ]
    );
}

#[test]
fn missing_driver_name() {
    assert_eq!(
        errors(quote! {
            #[platform(compatible = "a")]
            struct S { #[mmio] r: Mmio<R> }
        }),
        ["missing `#[driver(name = \"...\")]`: the name `system.toml` gives in `driver = \"...\"`"]
    );
    assert_eq!(
        errors(quote! {
            #[driver]
            #[platform(compatible = "a")]
            struct S { #[mmio] r: Mmio<R> }
        }),
        ["expected `#[driver(name = \"pl031\")]`"]
    );
    assert_eq!(
        errors(quote! {
            #[driver()]
            #[platform(compatible = "a")]
            struct S { #[mmio] r: Mmio<R> }
        }),
        ["missing `name`: write `#[driver(name = \"pl031\")]`"]
    );
}

#[test]
fn bad_values() {
    assert_eq!(
        errors(quote! {
            #[driver(name = "has space")]
            #[driver(name = "again")]
            #[platform(compatible = "")]
            #[platform(compatible = "a", compatible = "b")]
            #[pci(vendor = 0x10000, device = 1)]
            #[pci(vendor = 1)]
            struct S { #[mmio(index = 64)] r: Mmio<R>, #[dma(bytes = 0)] d: DmaBuffer, #[dma] e: DmaBuffer }
        }),
        [
            "a driver name has 1 to 64 ASCII letters, digits, `-` or `_`",
            "duplicate `#[driver]` attribute: a driver has one name",
            "a compatible string has 1 to 128 bytes and no NUL",
            "duplicate key `compatible`: write one `#[platform]` attribute per string",
            "a PCI vendor id is a 16-bit number, like `0x1af4`",
            "missing `device`: write `#[pci(vendor = 0x1af4, device = 0x1001)]`",
            "`#[mmio]` indices run from 0 to 63",
            "a DMA buffer size is a number of bytes from 1 to `u64::MAX`",
            "`#[dma]` needs a size: write `#[dma(bytes = 65536)]`",
        ]
    );
}

#[test]
fn no_match_attribute() {
    assert_eq!(
        errors(quote! {
            #[driver(name = "x")]
            struct S { #[mmio] r: Mmio<R> }
        }),
        [
            "a driver needs at least one `#[platform(compatible = \"...\")]` or `#[pci(vendor = .., device = ..)]` attribute: the devices it drives"
        ]
    );
}

#[test]
fn missing_resource() {
    assert_eq!(
        errors(quote! {
            #[driver(name = "x")]
            #[platform(compatible = "a")]
            struct S { #[irq] i: IrqLine }
        }),
        [
            "a `#[platform]` driver needs at least one `#[mmio]` field of type `Mmio<Registers>` for its device's registers"
        ]
    );
}

#[test]
fn duplicate_resources() {
    assert_eq!(
        errors(quote! {
            #[driver(name = "x")]
            #[platform(compatible = "a")]
            #[platform(compatible = "a")]
            #[pci(vendor = 1, device = 2)]
            #[pci(vendor = 1, device = 2)]
            struct S {
                #[mmio] a: Mmio<R>,
                #[mmio(index = 0)] b: Mmio<R>,
                #[irq(index = 3)] c: IrqLine,
                #[irq(index = 2)] d: IrqLine,
                #[irq] e: IrqLine,
                #[mmio] #[irq] f: Mmio<R>,
            }
        }),
        [
            "duplicate compatible string \"a\"",
            "duplicate PCI id 0001:0002",
            "duplicate `#[mmio]` index 0: field `a` already claims it",
            "duplicate `#[irq]` index 3: field `c` already claims it",
            "a field holds one resource: `#[irq]` after `#[mmio]`",
        ]
    );
}

#[test]
fn wrong_field_types() {
    assert_eq!(
        errors(quote! {
            #[driver(name = "x")]
            #[platform(compatible = "a")]
            struct S {
                #[mmio] a: u32,
                #[irq] b: Mmio<R>,
                #[dma(bytes = 1)] c: Vec<u8>,
                #[mmio] d: &'static Registers,
            }
        }),
        [
            "a `#[mmio]` field has type `Mmio<Registers>`",
            "a `#[irq]` field has type `IrqLine`",
            "a `#[dma]` field has type `DmaBuffer`",
            "a `#[mmio]` field has type `Mmio<Registers>`",
        ]
    );
}

#[test]
fn misplaced_attributes() {
    assert_eq!(
        errors(quote! {
            #[driver(name = "x")]
            #[pci(vendor = 1, device = 2)]
            #[mmio]
            struct S { #[driver(name = "y")] a: u32 }
        }),
        [
            "`#[mmio]` belongs on a field, not on the struct",
            "`#[driver]` belongs on the struct, not on a field",
        ]
    );
}

#[test]
fn wrong_shapes() {
    let message =
        |what: &str| format!("`#[derive(Driver)]` needs a struct with named fields{what}");
    assert_eq!(
        errors(quote! { #[driver(name = "x")] enum E { A } }),
        [message(", not an enum")]
    );
    assert_eq!(
        errors(quote! { #[driver(name = "x")] union U { a: u32 } }),
        [message(", not a union")]
    );
    assert_eq!(
        errors(quote! { #[driver(name = "x")] struct T(u32); }),
        [message("")]
    );
    assert_eq!(
        errors(quote! { #[driver(name = "x")] struct U; }),
        [message("")]
    );
}

#[test]
fn generics() {
    let message = "a driver cannot be generic: the broker starts one concrete driver per binary";
    assert_eq!(
        errors(quote! {
            #[driver(name = "x")]
            #[pci(vendor = 1, device = 2)]
            struct S<R> { #[mmio] r: Mmio<R> }
        }),
        [message]
    );
    assert_eq!(
        errors(quote! {
            #[driver(name = "x")]
            #[pci(vendor = 1, device = 2)]
            struct S<'a> where 'a: 'static { r: &'a u8 }
        }),
        [message, message]
    );
}

#[test]
fn parse_errors_become_compile_errors() {
    let output = expand(quote! { fn not_an_item_for_derive() {} }).to_string();
    assert!(output.contains("compile_error"), "{output}");
}
