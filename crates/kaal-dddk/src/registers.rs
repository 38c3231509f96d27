//! Register blocks the kit may place over device memory.

use tock_registers::registers::{Aliased, ReadOnly, ReadWrite, WriteOnly};
use tock_registers::{RegisterLongName, UIntLike};

/// A register block: a `#[repr(C)]` struct of register cells declared with
/// [`register_block!`](crate::register_block), which is the only way to implement this
/// trait. [`Mmio`](crate::Mmio) places only such blocks over device memory, so a driver
/// without `unsafe` cannot read device registers as references, functions or other types
/// whose bit patterns a device could make invalid.
pub trait RegisterBlock: crate::__private::Sealed {}

/// A register cell (implemented for `tock-registers`' cells and arrays of them).
pub trait RegisterCell {}

impl<T: UIntLike, R: RegisterLongName> RegisterCell for ReadWrite<T, R> {}
impl<T: UIntLike, R: RegisterLongName> RegisterCell for ReadOnly<T, R> {}
impl<T: UIntLike, R: RegisterLongName> RegisterCell for WriteOnly<T, R> {}
impl<T: UIntLike, R: RegisterLongName, W: RegisterLongName> RegisterCell for Aliased<T, R, W> {}
impl<C: RegisterCell, const N: usize> RegisterCell for [C; N] {}

/// Declares a register block: `tock_registers::register_structs!` for one struct, whose
/// fields must be register cells (checked at compile time), plus its [`RegisterBlock`]
/// implementation.
///
/// ```
/// use kaal_dddk::register_block;
/// use kaal_dddk::tock_registers::registers::{ReadOnly, ReadWrite};
///
/// register_block! {
///     /// PL031 registers.
///     Registers {
///         (0x000 => data: ReadOnly<u32>),
///         (0x004 => match_value: ReadWrite<u32>),
///         (0x008 => _reserved),
///         (0xfe0 => peripheral_id0: ReadOnly<u32>),
///         (0xfe4 => @END),
///     }
/// }
/// fn block<R: kaal_dddk::RegisterBlock>() {}
/// block::<Registers>();
/// ```
///
/// A field that is not a register cell does not compile:
///
/// ```compile_fail
/// kaal_dddk::register_block! {
///     Bad {
///         (0x000 => pointer: &'static u8),
///         (0x008 => @END),
///     }
/// }
/// ```
#[macro_export]
macro_rules! register_block {
    {
        $(#[$attr:meta])* $vis_struct:vis $name:ident { $($fields:tt)* }
    } => {
        $crate::tock_registers::register_structs! {
            $(#[$attr])* $vis_struct $name { $($fields)* }
        }
        $crate::register_block!(@cells $($fields)*);
        impl $crate::__private::Sealed for $name {}
        impl $crate::RegisterBlock for $name {}
    };
    (@cells $(#[$a:meta])* ($offset:expr => @END) $(,)?) => {};
    (@cells $(#[$a:meta])* ($offset:expr => $vis:vis $field:ident: $ty:ty), $($rest:tt)*) => {
        const _: () = $crate::__private::assert_cell::<$ty>();
        $crate::register_block!(@cells $($rest)*);
    };
    (@cells $(#[$a:meta])* ($offset:expr => $padding:ident), $($rest:tt)*) => {
        $crate::register_block!(@cells $($rest)*);
    };
}
