//! Typed register blocks over granted device memory.

#![allow(unsafe_code)]

use core::marker::PhantomData;
use core::ops::Deref;

use kaal_user::startup::DeviceRegisters;

use crate::{DriverError, RegisterBlock};

/// A register block `R` (declared with [`register_block!`](crate::register_block)) over a
/// device region the broker granted and mapped as device memory. It exists only if the
/// region was granted and is large enough: holding one proves both.
///
/// ```ignore
/// use kaal_dddk::tock_registers::{registers::ReadOnly, interfaces::Readable};
/// kaal_dddk::register_block! {
///     Pl031Registers {
///         (0x000 => data: ReadOnly<u32>),
///         (0x004 => @END),
///     }
/// }
/// let rtc: Mmio<Pl031Registers> = resources.mmio(0)?;
/// let seconds = rtc.data.get();
/// ```
#[derive(Debug)]
pub struct Mmio<R> {
    address: usize,
    physical: u64,
    bytes: u64,
    registers: PhantomData<R>,
}

impl<R: RegisterBlock> Mmio<R> {
    /// The block over region `index`, mapped at `registers`: checked against the size
    /// and alignment of `R`.
    pub fn new(registers: &DeviceRegisters, index: usize) -> Result<Self, DriverError> {
        let needed = size_of::<R>() as u64;
        if needed > registers.bytes() {
            return Err(DriverError::MmioTooSmall {
                index,
                granted: registers.bytes(),
                needed,
            });
        }
        let address = registers.address();
        if address == 0 || !address.is_multiple_of(align_of::<R>()) {
            return Err(DriverError::MmioMisaligned {
                index,
                address,
                align: align_of::<R>(),
            });
        }
        Ok(Self {
            address,
            physical: registers.physical_address(),
            bytes: registers.bytes(),
            registers: PhantomData,
        })
    }

    /// Physical address of the registers.
    pub fn physical_address(&self) -> u64 {
        self.physical
    }

    /// Size of the granted region in bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl<R: RegisterBlock> Deref for Mmio<R> {
    type Target = R;

    fn deref(&self) -> &R {
        // SAFETY: `new` checked that the granted region (mapped by the broker as device
        // memory, read-write, for the component's whole life) covers `size_of::<R>()`
        // bytes at a suitably aligned address. `R: RegisterBlock` is only implemented by
        // `register_block!`, whose fields are checked to be tock-registers cells
        // (`UnsafeCell`s accessed with volatile reads and writes), so a shared reference
        // asserts nothing the device's own changes could break.
        unsafe { &*(self.address as *const R) }
    }
}
