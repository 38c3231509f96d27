//! What `#[derive(Driver)]` reads from a struct: its driver attributes and its resource
//! fields, checked, with one error at the offending span for each misuse.

use kaal_bootinfo::driver::{
    MAX_COMPATIBLE, MAX_COMPATIBLE_BYTES, MAX_NAME_BYTES, MAX_PCI_IDS, PciId,
};
use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{Attribute, Data, DeriveInput, Fields, Ident, LitInt, LitStr, Meta, Type};

use crate::errors::Errors;
use crate::resource::{self, Claimed, Init};

/// A driver struct, checked.
#[derive(Debug)]
pub struct Driver {
    /// The struct's name.
    pub ident: Ident,
    /// `#[driver(name = "...")]`.
    pub name: String,
    /// `#[platform(compatible = "...")]` strings, in order.
    pub compatible: Vec<String>,
    /// `#[pci(vendor = .., device = ..)]` ids, in order.
    pub pci: Vec<PciId>,
    /// How each field is initialised, in field order.
    pub fields: Vec<(Ident, Init)>,
    /// Register regions needed: the highest `#[mmio]` index plus one.
    pub mmio: u8,
    /// IRQ lines needed: the highest `#[irq]` index plus one.
    pub irqs: u8,
    /// `#[dma(bytes = ..)]` sizes, in field order.
    pub dma: Vec<u64>,
}

/// The attributes the derive owns; any other attribute is left alone.
const STRUCT_ATTRIBUTES: [&str; 3] = ["driver", "platform", "pci"];

impl Driver {
    /// Reads and checks a `#[derive(Driver)]` input.
    pub fn from_input(input: &DeriveInput) -> syn::Result<Self> {
        let named = match &input.data {
            Data::Struct(data) => match &data.fields {
                Fields::Named(named) => named,
                other => {
                    return Err(syn::Error::new(
                        if matches!(other, Fields::Unit) {
                            input.ident.span()
                        } else {
                            other.span()
                        },
                        "`#[derive(Driver)]` needs a struct with named fields",
                    ));
                }
            },
            Data::Enum(data) => {
                return Err(syn::Error::new(
                    data.enum_token.span,
                    "`#[derive(Driver)]` needs a struct with named fields, not an enum",
                ));
            }
            Data::Union(data) => {
                return Err(syn::Error::new(
                    data.union_token.span,
                    "`#[derive(Driver)]` needs a struct with named fields, not a union",
                ));
            }
        };
        let mut errors = Errors::default();
        if let Some(where_clause) = &input.generics.where_clause {
            errors.push(syn::Error::new_spanned(
                where_clause,
                "a driver cannot be generic: the broker starts one concrete driver per binary",
            ));
        }
        if !input.generics.params.is_empty() {
            errors.push(syn::Error::new_spanned(
                &input.generics,
                "a driver cannot be generic: the broker starts one concrete driver per binary",
            ));
        }

        let header = Header::from_attributes(&input.attrs, &mut errors);

        let mut claimed = Claimed::default();
        let mut fields = Vec::with_capacity(named.named.len());
        for field in &named.named {
            for attr in &field.attrs {
                if let Some(name) = owned_by(attr, &STRUCT_ATTRIBUTES) {
                    errors.push(syn::Error::new_spanned(
                        attr,
                        format!("`#[{name}]` belongs on the struct, not on a field"),
                    ));
                }
            }
            let init = claimed.field(field, &mut errors);
            // `Fields::Named` fields always have a name.
            if let Some(ident) = &field.ident {
                fields.push((ident.clone(), init));
            }
        }

        let name = header.name.unwrap_or_default();
        if name.is_empty() && !header.driver_seen {
            errors.push(syn::Error::new(
                input.ident.span(),
                "missing `#[driver(name = \"...\")]`: the name `system.toml` gives in `driver = \"...\"`",
            ));
        }
        if header.compatible.is_empty() && header.pci.is_empty() && !header.match_seen {
            errors.push(syn::Error::new(
                input.ident.span(),
                "a driver needs at least one `#[platform(compatible = \"...\")]` or \
                 `#[pci(vendor = .., device = ..)]` attribute: the devices it drives",
            ));
        }
        if !header.compatible.is_empty() && !claimed.mmio_seen() {
            errors.push(syn::Error::new(
                input.ident.span(),
                "a `#[platform]` driver needs at least one `#[mmio]` field of type `Mmio<Registers>` \
                 for its device's registers",
            ));
        }
        errors.finish()?;
        Ok(Self {
            ident: input.ident.clone(),
            name,
            compatible: header.compatible,
            pci: header.pci,
            fields,
            mmio: claimed.mmio_count(),
            irqs: claimed.irq_count(),
            dma: claimed.dma_sizes(),
        })
    }

    /// The identifier of the metadata static: `__KAAL_DRIVER_METADATA_` and the name in
    /// upper case, `-` turned into `_`.
    pub fn static_ident(&self) -> Ident {
        let suffix: String = self
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        Ident::new(
            &format!("__KAAL_DRIVER_METADATA_{suffix}"),
            Span::call_site(),
        )
    }
}

/// If `attr` is one of `names`, which one.
pub fn owned_by<'n>(attr: &Attribute, names: &[&'n str]) -> Option<&'n str> {
    names
        .iter()
        .copied()
        .find(|name| attr.path().is_ident(name))
}

/// The struct-level attributes.
#[derive(Default)]
struct Header {
    name: Option<String>,
    /// A `#[driver]` attribute was seen (even a broken one: no second error for it).
    driver_seen: bool,
    compatible: Vec<String>,
    pci: Vec<PciId>,
    /// A `#[platform]` or `#[pci]` attribute was seen (even a broken one).
    match_seen: bool,
}

impl Header {
    fn from_attributes(attrs: &[Attribute], errors: &mut Errors) -> Self {
        let mut header = Self::default();
        for attr in attrs {
            let result = if attr.path().is_ident("driver") {
                header.driver(attr)
            } else if attr.path().is_ident("platform") {
                header.match_seen = true;
                header.platform(attr)
            } else if attr.path().is_ident("pci") {
                header.match_seen = true;
                header.pci(attr)
            } else if let Some(name) = owned_by(attr, &resource::FIELD_ATTRIBUTES) {
                Err(syn::Error::new_spanned(
                    attr,
                    format!("`#[{name}]` belongs on a field, not on the struct"),
                ))
            } else {
                Ok(())
            };
            errors.check(result);
        }
        header
    }

    fn driver(&mut self, attr: &Attribute) -> syn::Result<()> {
        if self.driver_seen {
            return Err(syn::Error::new_spanned(
                attr,
                "duplicate `#[driver]` attribute: a driver has one name",
            ));
        }
        self.driver_seen = true;
        require_list(attr, "#[driver(name = \"pl031\")]")?;
        let mut name = None;
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("name") {
                if name.is_some() {
                    return Err(meta.error("duplicate key `name`"));
                }
                let literal: LitStr = meta.value()?.parse()?;
                name = Some(check_name(&literal)?);
                Ok(())
            } else {
                Err(unknown_key(&meta, "driver", &["name"]))
            }
        })?;
        match name {
            Some(name) => {
                self.name = Some(name);
                Ok(())
            }
            None => Err(syn::Error::new_spanned(
                attr,
                "missing `name`: write `#[driver(name = \"pl031\")]`",
            )),
        }
    }

    fn platform(&mut self, attr: &Attribute) -> syn::Result<()> {
        require_list(attr, "#[platform(compatible = \"arm,pl031\")]")?;
        let mut compatible = None;
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("compatible") {
                if compatible.is_some() {
                    return Err(meta.error(
                        "duplicate key `compatible`: write one `#[platform]` attribute per string",
                    ));
                }
                let literal: LitStr = meta.value()?.parse()?;
                compatible = Some(literal);
                Ok(())
            } else {
                Err(unknown_key(&meta, "platform", &["compatible"]))
            }
        })?;
        let Some(literal) = compatible else {
            return Err(syn::Error::new_spanned(
                attr,
                "missing `compatible`: write `#[platform(compatible = \"arm,pl031\")]`",
            ));
        };
        let value = literal.value();
        if value.is_empty() || value.len() > MAX_COMPATIBLE_BYTES || value.contains('\0') {
            return Err(syn::Error::new(
                literal.span(),
                format!("a compatible string has 1 to {MAX_COMPATIBLE_BYTES} bytes and no NUL"),
            ));
        }
        if self.compatible.contains(&value) {
            return Err(syn::Error::new(
                literal.span(),
                format!("duplicate compatible string \"{value}\""),
            ));
        }
        if self.compatible.len() == MAX_COMPATIBLE {
            return Err(syn::Error::new_spanned(
                attr,
                format!("a driver has at most {MAX_COMPATIBLE} compatible strings"),
            ));
        }
        self.compatible.push(value);
        Ok(())
    }

    fn pci(&mut self, attr: &Attribute) -> syn::Result<()> {
        require_list(attr, "#[pci(vendor = 0x1af4, device = 0x1001)]")?;
        let (mut vendor, mut device) = (None, None);
        attr.parse_nested_meta(|meta| {
            let (slot, what) = if meta.path.is_ident("vendor") {
                (&mut vendor, "vendor")
            } else if meta.path.is_ident("device") {
                (&mut device, "device")
            } else {
                return Err(unknown_key(&meta, "pci", &["vendor", "device"]));
            };
            if slot.is_some() {
                return Err(meta.error(format!("duplicate key `{what}`")));
            }
            let literal: LitInt = meta.value()?.parse()?;
            let value = literal.base10_parse::<u16>().map_err(|_| {
                syn::Error::new(
                    literal.span(),
                    format!("a PCI {what} id is a 16-bit number, like `0x1af4`"),
                )
            })?;
            *slot = Some(value);
            Ok(())
        })?;
        let (Some(vendor), Some(device)) = (vendor, device) else {
            let missing = if vendor.is_none() { "vendor" } else { "device" };
            return Err(syn::Error::new_spanned(
                attr,
                format!("missing `{missing}`: write `#[pci(vendor = 0x1af4, device = 0x1001)]`"),
            ));
        };
        let id = PciId { vendor, device };
        if self.pci.contains(&id) {
            return Err(syn::Error::new_spanned(
                attr,
                format!("duplicate PCI id {vendor:04x}:{device:04x}"),
            ));
        }
        if self.pci.len() == MAX_PCI_IDS {
            return Err(syn::Error::new_spanned(
                attr,
                format!("a driver has at most {MAX_PCI_IDS} PCI ids"),
            ));
        }
        self.pci.push(id);
        Ok(())
    }
}

/// Rejects `#[name]` and `#[name = ..]` where `#[name(..)]` is needed.
fn require_list(attr: &Attribute, example: &str) -> syn::Result<()> {
    match &attr.meta {
        Meta::List(_) => Ok(()),
        _ => Err(syn::Error::new_spanned(
            attr,
            format!("expected `{example}`"),
        )),
    }
}

/// The error for a key an attribute does not have, at the key.
pub fn unknown_key(
    meta: &syn::meta::ParseNestedMeta<'_>,
    attribute: &str,
    keys: &[&str],
) -> syn::Error {
    let key = meta
        .path
        .get_ident()
        .map_or_else(|| "?".to_owned(), ToString::to_string);
    let expected = keys
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(" or ");
    syn::Error::new_spanned(
        &meta.path,
        format!("unknown `{attribute}` key `{key}`; expected {expected}"),
    )
}

/// Checks a driver name: it names the driver in `system.toml` and in a symbol.
fn check_name(literal: &LitStr) -> syn::Result<String> {
    let name = literal.value();
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        return Err(syn::Error::new(
            literal.span(),
            format!("a driver name has 1 to {MAX_NAME_BYTES} ASCII letters, digits, `-` or `_`"),
        ));
    }
    Ok(name)
}

/// Whether `ty`'s last path segment is `name` (`Mmio<R>`, `kaal_dddk::Mmio<R>`).
pub fn type_is(ty: &Type, name: &str) -> bool {
    match ty {
        Type::Path(path) => path
            .path
            .segments
            .last()
            .is_some_and(|segment| segment.ident == name),
        Type::Group(group) => type_is(&group.elem, name),
        Type::Paren(paren) => type_is(&paren.elem, name),
        _ => false,
    }
}
