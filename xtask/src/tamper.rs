//! Deliberately broken inputs for the QEMU suites that check the kernel refuses them:
//! a device tree with one property changed (`dtb_set` in a suite's `suite.txt`) and a
//! root task image with a corrupt program header (`corrupt_root_task`).

use std::path::Path;

use crate::Result;

/// `dtb_set = NODE PROPERTY CELL...`: the property `PROPERTY` of the node at the absolute
/// path `NODE` gets the value `CELL...` (32-bit cells, `0x` hexadecimal or decimal), which
/// must be as long as its old value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DtbEdit {
    /// Absolute path of the node, e.g. `/pl061@9030000`.
    pub node: String,
    /// Name of the property, e.g. `reg`.
    pub property: String,
    /// The new value, big-endian cells.
    pub value: Vec<u8>,
}

impl DtbEdit {
    /// Parses the value of a `dtb_set` line.
    pub fn parse(text: &str) -> Result<Self> {
        let usage = || format!("dtb_set `{text}` is not `/NODE PROPERTY CELL...`");
        let mut words = text.split_whitespace();
        let node = words
            .next()
            .filter(|n| n.starts_with('/'))
            .ok_or_else(usage)?;
        let property = words.next().ok_or_else(usage)?;
        let mut value = Vec::new();
        for cell in words {
            let parsed = match cell.strip_prefix("0x") {
                Some(hex) => u32::from_str_radix(hex, 16),
                None => cell.parse(),
            };
            value.extend_from_slice(
                &parsed
                    .map_err(|_| format!("dtb_set: `{cell}` is not a 32-bit cell"))?
                    .to_be_bytes(),
            );
        }
        if value.is_empty() {
            return Err(usage().into());
        }
        Ok(Self {
            node: node.to_owned(),
            property: property.to_owned(),
            value,
        })
    }
}

const FDT_MAGIC: u32 = 0xd00d_feed;
const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;

fn be32(bytes: &[u8], at: usize) -> Result<u32> {
    let word = bytes
        .get(at..at + 4)
        .ok_or("device tree: truncated structure block")?;
    Ok(u32::from_be_bytes(word.try_into()?))
}

/// The NUL-terminated string at `at` in `bytes`.
fn c_string(bytes: &[u8], at: usize) -> Result<&str> {
    let rest = bytes
        .get(at..)
        .ok_or("device tree: string outside its block")?;
    let len = rest
        .iter()
        .position(|&b| b == 0)
        .ok_or("device tree: unterminated string")?;
    Ok(std::str::from_utf8(&rest[..len])?)
}

/// The device tree `blob` (as QEMU dumps it: header, memory reservations, structure and
/// strings blocks in that order) with `edit` applied, no `FDT_NOP` tokens, and its total
/// size cut to what it uses (QEMU pads a loaded blob, and a 1 MiB one no longer fits
/// below the kernel). The `/memory*` and `/psci` nodes stay: QEMU, loading the blob,
/// overwrites them with `FDT_NOP` tokens and adds its own, so the kernel that boots on
/// it reads a tree with NOPs, as boot loaders that delete nodes leave them.
pub fn edit_dtb(blob: &[u8], edit: &DtbEdit) -> Result<Vec<u8>> {
    let header = |index: usize| be32(blob, index * 4).map(|v| v as usize);
    if header(0)? != FDT_MAGIC as usize {
        return Err("not a device tree blob (bad magic)".into());
    }
    let (struct_at, strings_at) = (header(2)?, header(3)?);
    let (strings_len, struct_len) = (header(8)?, header(9)?);
    if header(4)? > struct_at || struct_at + struct_len > strings_at {
        return Err("device tree: blocks not in the usual order".into());
    }
    let structure = blob
        .get(struct_at..struct_at + struct_len)
        .ok_or("device tree: structure block outside the blob")?;
    let strings = blob
        .get(strings_at..strings_at + strings_len)
        .ok_or("device tree: strings block outside the blob")?;

    let mut out = Vec::with_capacity(struct_len);
    let mut path: Vec<&str> = Vec::new();
    let mut edited = false;
    let mut at = 0;
    loop {
        let start = at;
        let token = be32(structure, at)?;
        at += 4;
        match token {
            FDT_BEGIN_NODE => {
                let name = c_string(structure, at)?;
                at = (at + name.len() + 1).next_multiple_of(4);
                path.push(name);
            }
            FDT_END_NODE => {
                path.pop();
            }
            FDT_PROP => {
                let len = be32(structure, at)? as usize;
                let name = c_string(strings, be32(structure, at + 4)? as usize)?;
                at = (at + 8 + len).next_multiple_of(4);
                let node = format!("/{}", path.get(1..).unwrap_or_default().join("/"));
                if node == edit.node && name == edit.property {
                    if len != edit.value.len() {
                        return Err(format!(
                            "dtb_set: {}/{} is {len} bytes, the new value {}",
                            edit.node,
                            edit.property,
                            edit.value.len()
                        )
                        .into());
                    }
                    out.extend_from_slice(&structure[start..start + 12]);
                    out.extend_from_slice(&edit.value);
                    out.resize(out.len().next_multiple_of(4), 0);
                    edited = true;
                    continue;
                }
            }
            FDT_NOP => continue,
            FDT_END => {
                out.extend_from_slice(&structure[start..at]);
                break;
            }
            other => return Err(format!("device tree: unknown token {other:#x}").into()),
        }
        out.extend_from_slice(&structure[start..at]);
    }
    if !edited {
        return Err(format!(
            "dtb_set: the device tree has no property {} in {}",
            edit.property, edit.node
        )
        .into());
    }

    let mut packed = blob[..struct_at].to_vec();
    let new_struct_len = out.len();
    packed.extend_from_slice(&out);
    let new_strings_at = packed.len();
    packed.extend_from_slice(strings);
    packed.resize(packed.len().next_multiple_of(8), 0);
    let total = packed.len();
    for (index, value) in [(1, total), (3, new_strings_at), (9, new_struct_len)] {
        packed[index * 4..index * 4 + 4].copy_from_slice(&u32::try_from(value)?.to_be_bytes());
    }
    Ok(packed)
}

/// `p_memsz` given to the root task's first loadable segment by `corrupt_root_task =
/// p_memsz`: 128 TiB, beyond any user address space.
const CORRUPT_MEMSZ: u64 = 1 << 47;

/// Copies the ELF image `elf` to `out` with the corruption `what` (a `corrupt_root_task`
/// value): `p_memsz`, the first `PT_LOAD` segment's memory size set to 128 TiB.
pub fn corrupt_elf(elf: &Path, out: &Path, what: &str) -> Result<()> {
    let mut image = std::fs::read(elf).map_err(|e| format!("{}: {e}", elf.display()))?;
    match what {
        "p_memsz" => set_first_load_memsz(&mut image, CORRUPT_MEMSZ)
            .map_err(|e| format!("{}: {e}", elf.display()))?,
        other => {
            return Err(
                format!("corrupt_root_task `{other}` is not a known corruption (p_memsz)").into(),
            );
        }
    }
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(out, image).map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(())
}

/// Sets `p_memsz` of the first `PT_LOAD` program header of the little-endian ELF64 file
/// `image`.
fn set_first_load_memsz(image: &mut [u8], memsz: u64) -> Result<()> {
    const PT_LOAD: u32 = 1;
    let field = |image: &[u8], at: usize, len: usize| -> Result<u64> {
        let bytes = image.get(at..at + len).ok_or("ELF file truncated")?;
        Ok(bytes
            .iter()
            .rev()
            .fold(0u64, |value, &b| value << 8 | u64::from(b)))
    };
    if image.get(..6) != Some(b"\x7fELF\x02\x01") {
        return Err("not a little-endian ELF64 file".into());
    }
    let table = field(image, 32, 8)? as usize;
    let (entry_size, count) = (field(image, 54, 2)? as usize, field(image, 56, 2)? as usize);
    for index in 0..count {
        let header = table + index * entry_size;
        if field(image, header, 4)? == u64::from(PT_LOAD) {
            image
                .get_mut(header + 40..header + 48)
                .ok_or("ELF file truncated")?
                .copy_from_slice(&memsz.to_le_bytes());
            return Ok(());
        }
    }
    Err("no PT_LOAD segment".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// QEMU `virt`'s tree (GICv3, 256 MiB), as the kernel's host tests use it.
    fn virt_dtb() -> Vec<u8> {
        std::fs::read(crate::root().join("crates/kaal-kernel/tests/fixtures/qemu-virt-gicv3.dtb"))
            .unwrap()
    }

    /// Every (path, property, value) of a blob, and whether it has `FDT_NOP` tokens.
    fn walk(blob: &[u8]) -> (Vec<(String, String, Vec<u8>)>, bool) {
        let header = |i: usize| be32(blob, i * 4).unwrap() as usize;
        let structure = &blob[header(2)..header(2) + header(9)];
        let strings = &blob[header(3)..header(3) + header(8)];
        let (mut props, mut nop, mut path, mut at) = (Vec::new(), false, Vec::new(), 0);
        loop {
            let token = be32(structure, at).unwrap();
            at += 4;
            match token {
                FDT_BEGIN_NODE => {
                    let name = c_string(structure, at).unwrap();
                    at = (at + name.len() + 1).next_multiple_of(4);
                    path.push(name);
                }
                FDT_END_NODE => drop(path.pop()),
                FDT_PROP => {
                    let len = be32(structure, at).unwrap() as usize;
                    let name = c_string(strings, be32(structure, at + 4).unwrap() as usize);
                    let value = structure[at + 8..at + 8 + len].to_vec();
                    props.push((path.join("/"), name.unwrap().to_owned(), value));
                    at = (at + 8 + len).next_multiple_of(4);
                }
                FDT_NOP => nop = true,
                _ => return (props, nop),
            }
        }
    }

    #[test]
    fn parses_dtb_set() {
        let edit = DtbEdit::parse("/pl061@9030000 reg 0x0 0x40000000 0 4096").unwrap();
        assert_eq!(edit.node, "/pl061@9030000");
        assert_eq!(edit.property, "reg");
        assert_eq!(
            edit.value,
            [0, 0, 0, 0, 0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0]
        );
        assert!(DtbEdit::parse("pl061 reg 1").is_err());
        assert!(DtbEdit::parse("/pl061 reg").is_err());
        assert!(DtbEdit::parse("/pl061 reg 0x1_0000_0000").is_err());
    }

    #[test]
    fn edits_one_property_and_keeps_the_rest() {
        let blob = virt_dtb();
        let edit = DtbEdit::parse("/pl061@9030000 reg 0 0x40000000 0 0x1000").unwrap();
        let edited = edit_dtb(&blob, &edit).unwrap();
        let (before, _) = walk(&blob);
        let (after, nop) = walk(&edited);
        assert!(!nop);
        assert_eq!(be32(&edited, 4).unwrap() as usize, edited.len());
        let edited_reg =
            |(node, name, _): &(String, String, Vec<u8>)| node == "/pl061@9030000" && name == "reg";
        let reg = after.iter().find(|p| edited_reg(p)).map(|(_, _, v)| v);
        assert_eq!(reg, Some(&edit.value));
        // Everything else is as it was (QEMU's `/memory` and `/psci` too: it overwrites
        // them with NOPs when it loads the blob).
        let kept: Vec<_> = before.iter().filter(|p| !edited_reg(p)).collect();
        let others: Vec<_> = after.iter().filter(|p| !edited_reg(p)).collect();
        assert_eq!(kept, others);
    }

    #[test]
    fn refuses_a_missing_property_or_another_length() {
        let blob = virt_dtb();
        let short = DtbEdit::parse("/pl061@9030000 reg 0x40000000").unwrap();
        assert!(
            edit_dtb(&blob, &short)
                .unwrap_err()
                .to_string()
                .contains("16 bytes")
        );
        let absent = DtbEdit::parse("/nothing@0 reg 1").unwrap();
        assert!(edit_dtb(&blob, &absent).is_err());
    }

    #[test]
    fn corrupts_the_first_load_segment() {
        // ELF64 header and two program headers: PT_PHDR, then PT_LOAD.
        let mut image = vec![0u8; 64 + 2 * 56];
        image[..6].copy_from_slice(b"\x7fELF\x02\x01");
        image[32..40].copy_from_slice(&64u64.to_le_bytes());
        image[54..56].copy_from_slice(&56u16.to_le_bytes());
        image[56..58].copy_from_slice(&2u16.to_le_bytes());
        image[64..68].copy_from_slice(&6u32.to_le_bytes());
        image[120..124].copy_from_slice(&1u32.to_le_bytes());
        set_first_load_memsz(&mut image, CORRUPT_MEMSZ).unwrap();
        assert_eq!(image[120 + 40..120 + 48], CORRUPT_MEMSZ.to_le_bytes());
        assert_eq!(image[64 + 40..64 + 48], [0; 8]);
        assert!(set_first_load_memsz(&mut image[..40], 1).is_err());
    }
}
