//! The broker's allocators bound to the kernel: untyped splits and merges as retype and
//! revoke calls, and the frames of device memory.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use kaal_abi::Error;
use kaal_user::cap::{self, Cap, Frame4K, Untyped};

use crate::untyped::UntypedBackend;

/// Splits and merges untyped capabilities of the root task's CSpace.
#[derive(Debug, Default)]
pub struct KernelUntyped;

impl UntypedBackend for KernelUntyped {
    type Handle = Cap<Untyped>;
    type Error = Error;

    fn split(
        &mut self,
        parent: Cap<Untyped>,
        child_size_bits: u8,
    ) -> Result<[Cap<Untyped>; 2], Error> {
        let first = cap::allocate_slot()?;
        let second = match cap::allocate_slot() {
            Ok(slot) => slot,
            Err(error) => {
                let _ = cap::free_slot(first);
                return Err(error);
            }
        };
        let retyped = if second == first + 1 {
            parent
                .retype::<Untyped>(child_size_bits, first, 2)
                .map(|_| ())
        } else {
            parent
                .retype::<Untyped>(child_size_bits, first, 1)
                .and_then(|_| {
                    parent
                        .retype::<Untyped>(child_size_bits, second, 1)
                        .map(|_| ())
                })
        };
        if let Err(error) = retyped {
            // Undo a half-done split: the parent loses its children again.
            let _ = parent.revoke();
            let _ = cap::free_slot(first);
            let _ = cap::free_slot(second);
            return Err(error);
        }
        Ok([Cap::from_slot(first), Cap::from_slot(second)])
    }

    fn merge(&mut self, parent: Cap<Untyped>, halves: [Cap<Untyped>; 2]) -> Result<(), Error> {
        parent.revoke()?;
        for half in halves {
            let _ = cap::free_slot(half.slot());
        }
        Ok(())
    }
}

/// One region of device untyped memory, turned into frames from its base up as devices
/// in it are asked for (device untyped memory cannot be split, only retyped in order).
#[derive(Debug)]
struct DeviceRegion {
    untyped: Cap<Untyped>,
    base: u64,
    bytes: u64,
    /// Frames made so far, in address order from `base`.
    frames: Vec<Cap<Frame4K>>,
}

/// The frames of device memory, made once and kept by the broker; components get copies.
#[derive(Debug, Default)]
pub struct DeviceFrames {
    regions: Vec<DeviceRegion>,
    cache: BTreeMap<u64, Cap<Frame4K>>,
}

impl DeviceFrames {
    /// The device untyped regions listed in the boot info.
    pub fn from_boot_info(boot: &kaal_bootinfo::BootInfo<'_>) -> Self {
        let caps = boot.caps();
        let regions = boot
            .untyped()
            .enumerate()
            .skip(caps.untyped.count as usize)
            .take(caps.device_untyped.count as usize)
            .map(|(index, region)| DeviceRegion {
                untyped: Cap::from_slot(u64::from(caps.untyped.start) + index as u64),
                base: region.base,
                bytes: region.size_bytes,
                frames: Vec::new(),
            })
            .collect();
        Self {
            regions,
            cache: BTreeMap::new(),
        }
    }

    /// The frame of the device page at physical address `page` (4 KiB aligned).
    pub fn frame(&mut self, page: u64) -> Result<Cap<Frame4K>, Error> {
        if let Some(&frame) = self.cache.get(&page) {
            return Ok(frame);
        }
        let region = self
            .regions
            .iter_mut()
            .find(|r| r.base <= page && page - r.base < r.bytes)
            .ok_or(Error::InvalidArgument)?;
        let index = ((page - region.base) / 4096) as usize;
        while region.frames.len() <= index {
            let frame: Cap<Frame4K> = region.untyped.retype_one(0)?;
            let address = region.base + region.frames.len() as u64 * 4096;
            region.frames.push(frame);
            self.cache.insert(address, frame);
        }
        Ok(region.frames[index])
    }
}
