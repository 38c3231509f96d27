//! Field attributes: which resource each field of a driver claims.

use kaal_bootinfo::driver::MAX_DMA_BUFFERS;
use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{Attribute, Field, Ident, LitInt, Meta};

use crate::errors::Errors;
use crate::model::{owned_by, type_is, unknown_key};

/// The field attributes the derive owns.
pub const FIELD_ATTRIBUTES: [&str; 3] = ["mmio", "irq", "dma"];

/// Highest register-region or IRQ-line index: `Resources` records what a probe took in a
/// 64-bit mask.
pub const MAX_INDEX: u8 = 63;

/// How the generated probe initialises a field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Init {
    /// `resources.mmio(index)?`.
    Mmio(u8),
    /// `resources.irq(index)?`.
    Irq(u8),
    /// `resources.dma(bytes)?`.
    Dma(u64),
    /// `Default::default()`.
    Default,
}

/// The resources the fields seen so far claim.
#[derive(Debug, Default)]
pub struct Claimed {
    mmio: Indices,
    irq: Indices,
    dma: Vec<u64>,
}

/// Indices of one kind claimed so far, and by which field.
#[derive(Debug, Default)]
struct Indices {
    owners: Vec<(u8, String)>,
    /// The index an `#[mmio]` or `#[irq]` without one gets: one past the previous.
    next: u16,
    /// An attribute of this kind was seen, even a broken one.
    seen: bool,
}

impl Indices {
    fn claim(
        &mut self,
        kind: &str,
        explicit: Option<&LitInt>,
        span: Span,
        field: &Ident,
    ) -> syn::Result<u8> {
        let range = format!("`#[{kind}]` indices run from 0 to {MAX_INDEX}");
        let index = match explicit {
            Some(literal) => literal
                .base10_parse::<u8>()
                .ok()
                .filter(|index| *index <= MAX_INDEX)
                .ok_or_else(|| syn::Error::new(literal.span(), &range))?,
            None => u8::try_from(self.next)
                .ok()
                .filter(|index| *index <= MAX_INDEX)
                .ok_or_else(|| {
                    syn::Error::new(span, format!("no index after {MAX_INDEX}: {range}"))
                })?,
        };
        if let Some((_, owner)) = self.owners.iter().find(|(taken, _)| *taken == index) {
            return Err(syn::Error::new(
                span,
                format!("duplicate `#[{kind}]` index {index}: field `{owner}` already claims it"),
            ));
        }
        self.owners.push((index, field.to_string()));
        self.next = u16::from(index) + 1;
        Ok(index)
    }

    /// How many the driver needs: the highest index plus one.
    fn count(&self) -> u8 {
        self.owners
            .iter()
            .map(|(index, _)| index.saturating_add(1))
            .max()
            .unwrap_or(0)
    }
}

impl Claimed {
    /// Reads a field's resource attribute (at most one) and claims its resource.
    /// Errors go to `errors`; the field then counts as a plain one.
    pub fn field(&mut self, field: &Field, errors: &mut Errors) -> Init {
        let mut init = Init::Default;
        let mut first: Option<&str> = None;
        for attr in &field.attrs {
            let Some(kind) = owned_by(attr, &FIELD_ATTRIBUTES) else {
                continue;
            };
            if let Some(first) = first {
                errors.push(syn::Error::new_spanned(
                    attr,
                    format!("a field holds one resource: `#[{kind}]` after `#[{first}]`"),
                ));
                continue;
            }
            first = Some(kind);
            match self.attribute(kind, attr, field) {
                Ok(claimed) => init = claimed,
                Err(error) => errors.push(error),
            }
        }
        init
    }

    fn attribute(&mut self, kind: &str, attr: &Attribute, field: &Field) -> syn::Result<Init> {
        // `Fields::Named` fields always have a name.
        let ident = field
            .ident
            .clone()
            .unwrap_or_else(|| Ident::new("_", field.span()));
        match kind {
            "mmio" => {
                self.mmio.seen = true;
                let explicit = index_key(attr, kind)?;
                check_type(field, "Mmio", "#[mmio]", "Mmio<Registers>")?;
                let span = explicit.as_ref().map_or_else(|| attr.span(), LitInt::span);
                let index = self.mmio.claim(kind, explicit.as_ref(), span, &ident)?;
                Ok(Init::Mmio(index))
            }
            "irq" => {
                self.irq.seen = true;
                let explicit = index_key(attr, kind)?;
                check_type(field, "IrqLine", "#[irq]", "IrqLine")?;
                let span = explicit.as_ref().map_or_else(|| attr.span(), LitInt::span);
                let index = self.irq.claim(kind, explicit.as_ref(), span, &ident)?;
                Ok(Init::Irq(index))
            }
            _ => {
                let bytes = dma_bytes(attr)?;
                check_type(field, "DmaBuffer", "#[dma]", "DmaBuffer")?;
                if self.dma.len() == MAX_DMA_BUFFERS {
                    return Err(syn::Error::new_spanned(
                        attr,
                        format!("a driver has at most {MAX_DMA_BUFFERS} DMA buffers"),
                    ));
                }
                self.dma.push(bytes);
                Ok(Init::Dma(bytes))
            }
        }
    }

    /// Register regions needed.
    pub fn mmio_count(&self) -> u8 {
        self.mmio.count()
    }

    /// Whether any `#[mmio]` attribute was seen, even a broken one.
    pub fn mmio_seen(&self) -> bool {
        self.mmio.seen
    }

    /// IRQ lines needed.
    pub fn irq_count(&self) -> u8 {
        self.irq.count()
    }

    /// DMA buffer sizes, in field order.
    pub fn dma_sizes(&self) -> Vec<u64> {
        self.dma.clone()
    }
}

/// `#[kind]` (no index: the next one), `#[kind()]` (the same) or `#[kind(index = N)]`.
fn index_key(attr: &Attribute, kind: &str) -> syn::Result<Option<LitInt>> {
    match &attr.meta {
        Meta::Path(_) => Ok(None),
        Meta::NameValue(_) => Err(syn::Error::new_spanned(
            attr,
            format!("expected `#[{kind}]` or `#[{kind}(index = 1)]`"),
        )),
        Meta::List(_) => {
            let mut index = None;
            attr.parse_nested_meta(|meta| {
                if !meta.path.is_ident("index") {
                    return Err(unknown_key(&meta, kind, &["index"]));
                }
                if index.is_some() {
                    return Err(meta.error("duplicate key `index`"));
                }
                index = Some(meta.value()?.parse::<LitInt>()?);
                Ok(())
            })?;
            Ok(index)
        }
    }
}

/// `#[dma(bytes = N)]`, N > 0.
fn dma_bytes(attr: &Attribute) -> syn::Result<u64> {
    let missing =
        || syn::Error::new_spanned(attr, "`#[dma]` needs a size: write `#[dma(bytes = 65536)]`");
    if !matches!(attr.meta, Meta::List(_)) {
        return Err(missing());
    }
    let mut bytes = None;
    attr.parse_nested_meta(|meta| {
        if !meta.path.is_ident("bytes") {
            return Err(unknown_key(&meta, "dma", &["bytes"]));
        }
        if bytes.is_some() {
            return Err(meta.error("duplicate key `bytes`"));
        }
        let literal: LitInt = meta.value()?.parse()?;
        let value = literal
            .base10_parse::<u64>()
            .ok()
            .filter(|value| *value > 0)
            .ok_or_else(|| {
                syn::Error::new(
                    literal.span(),
                    "a DMA buffer size is a number of bytes from 1 to `u64::MAX`",
                )
            })?;
        bytes = Some(value);
        Ok(())
    })?;
    bytes.ok_or_else(missing)
}

/// Rejects a resource attribute on a field of the wrong type, at the type.
fn check_type(field: &Field, name: &str, attribute: &str, expected: &str) -> syn::Result<()> {
    if type_is(&field.ty, name) {
        return Ok(());
    }
    Err(syn::Error::new_spanned(
        &field.ty,
        format!("a `{attribute}` field has type `{expected}`"),
    ))
}
