//! The code `#[derive(Driver)]` generates: a plain function on token streams, so that it
//! is tested without a compiler in the loop (golden tests in `tests.rs`).

use kaal_bootinfo::driver::{DriverDesc, encode};
use proc_macro2::{Ident, Literal, Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::{DeriveInput, LitInt};

use crate::model::Driver;
use crate::resource::Init;

/// Expands `#[derive(Driver)]` on `input` (the struct item): the code, or the
/// `compile_error!`s of every misuse found, each at its span.
pub fn expand(input: TokenStream) -> TokenStream {
    try_expand(input).unwrap_or_else(syn::Error::into_compile_error)
}

/// Expands `#[derive(Driver)]` on `input`, or says what is wrong with it.
pub fn try_expand(input: TokenStream) -> syn::Result<TokenStream> {
    let input: DeriveInput = syn::parse2(input)?;
    let driver = Driver::from_input(&input)?;
    generate(&driver)
}

/// The `Probe` impl and the metadata static of a checked driver.
fn generate(driver: &Driver) -> syn::Result<TokenStream> {
    let ident = &driver.ident;
    let name = &driver.name;
    let compatible = &driver.compatible;
    let pci = driver.pci.iter().map(|id| {
        let (vendor, device) = (hex16(id.vendor), hex16(id.device));
        quote!((#vendor, #device))
    });
    let mmio = Literal::u8_unsuffixed(driver.mmio);
    let irqs = Literal::u8_unsuffixed(driver.irqs);
    let dma = driver
        .dma
        .iter()
        .map(|bytes| Literal::u64_unsuffixed(*bytes));

    let uses_resources = driver.fields.iter().any(|(_, init)| *init != Init::Default);
    let resources = Ident::new(
        if uses_resources {
            "resources"
        } else {
            "_resources"
        },
        Span::call_site(),
    );
    let fields = driver.fields.iter().map(|(field, init)| {
        let span = field.span();
        match init {
            Init::Mmio(index) => {
                let index = Literal::u8_unsuffixed(*index);
                quote_spanned!(span=> #field: #resources.mmio(#index)?)
            }
            Init::Irq(index) => {
                let index = Literal::u8_unsuffixed(*index);
                quote_spanned!(span=> #field: #resources.irq(#index)?)
            }
            Init::Dma(bytes) => {
                let bytes = Literal::u64_unsuffixed(*bytes);
                quote_spanned!(span=> #field: #resources.dma(#bytes)?)
            }
            Init::Default => quote_spanned!(span=> #field: ::core::default::Default::default()),
        }
    });

    let compatible_refs: Vec<&str> = compatible.iter().map(String::as_str).collect();
    let record = encode(&DriverDesc {
        name,
        compatible: &compatible_refs,
        pci: &driver.pci,
        mmio: driver.mmio,
        irqs: driver.irqs,
        dma: &driver.dma,
    })
    .map_err(|error| {
        syn::Error::new(
            ident.span(),
            format!("cannot record the driver's metadata: {error}"),
        )
    })?;
    let record_len = Literal::usize_unsuffixed(record.len());
    let record = Literal::byte_string(&record);
    let record_ident = driver.static_ident();
    let record_doc = format!(
        " The metadata of driver `{name}`, for `kaal_build::driver::read_metadata` to find \
         in the binary."
    );

    Ok(quote! {
        #[automatically_derived]
        impl ::kaal_dddk::Probe for #ident {
            const METADATA: ::kaal_dddk::DriverMetadata = ::kaal_dddk::DriverMetadata {
                name: #name,
                compatible: &[#(#compatible),*],
                pci: &[#(#pci),*],
                mmio: #mmio,
                irqs: #irqs,
                dma: &[#(#dma),*],
            };

            fn probe(
                #resources: &mut ::kaal_dddk::Resources,
            ) -> ::core::result::Result<Self, ::kaal_dddk::DriverError> {
                ::core::result::Result::Ok(Self {
                    #(#fields,)*
                })
            }
        }

        #[doc = #record_doc]
        #[doc(hidden)]
        #[used]
        static #record_ident: [u8; #record_len] = *#record;
    })
}

/// A `u16` as a hexadecimal literal, as PCI ids are written.
fn hex16(value: u16) -> LitInt {
    LitInt::new(&format!("{value:#06x}"), Span::call_site())
}
