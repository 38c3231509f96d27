//! Decoding `ESR_EL1`: what kind of exception happened and why. Pure, host-tested.

/// The exception class (`ESR_EL1.EC`) of a synchronous exception, by the Arm ARM's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExceptionClass {
    /// EC 0x00: unknown reason, including undefined instructions.
    UndefinedInstruction,
    /// EC 0x01: trapped `WFI`/`WFE`.
    TrappedWfiWfe,
    /// EC 0x07: trapped FP/SIMD access.
    TrappedFpSimd,
    /// EC 0x0e: illegal execution state.
    IllegalExecutionState,
    /// EC 0x15: `SVC` from AArch64 (a system call from EL0).
    SupervisorCall,
    /// EC 0x18: trapped `MSR`/`MRS`/system instruction.
    TrappedSystemRegister,
    /// EC 0x20: instruction abort from a lower exception level.
    InstructionAbortLower,
    /// EC 0x21: instruction abort at the same exception level.
    InstructionAbortSame,
    /// EC 0x22: PC alignment fault.
    PcAlignment,
    /// EC 0x24: data abort from a lower exception level.
    DataAbortLower,
    /// EC 0x25: data abort at the same exception level.
    DataAbortSame,
    /// EC 0x26: SP alignment fault.
    SpAlignment,
    /// EC 0x2c: trapped floating-point exception.
    FloatingPoint,
    /// EC 0x2f: SError interrupt.
    SError,
    /// EC 0x3c: `BRK` instruction (also what a Rust `panic` without a handler may run).
    Breakpoint,
    /// Any other class, with its raw value.
    Other(u8),
}

impl ExceptionClass {
    /// Decodes the class from a full `ESR_EL1` value. Inlined: every system call's
    /// entry decodes one (a call and a table-free match cost 12 instructions otherwise).
    #[inline(always)]
    pub fn from_esr(esr: u64) -> Self {
        match ((esr >> 26) & 0x3f) as u8 {
            0x00 => Self::UndefinedInstruction,
            0x01 => Self::TrappedWfiWfe,
            0x07 => Self::TrappedFpSimd,
            0x0e => Self::IllegalExecutionState,
            0x15 => Self::SupervisorCall,
            0x18 => Self::TrappedSystemRegister,
            0x20 => Self::InstructionAbortLower,
            0x21 => Self::InstructionAbortSame,
            0x22 => Self::PcAlignment,
            0x24 => Self::DataAbortLower,
            0x25 => Self::DataAbortSame,
            0x26 => Self::SpAlignment,
            0x2c => Self::FloatingPoint,
            0x2f => Self::SError,
            0x3c => Self::Breakpoint,
            other => Self::Other(other),
        }
    }

    /// A short human-readable name.
    pub fn name(self) -> &'static str {
        match self {
            Self::UndefinedInstruction => "undefined instruction",
            Self::TrappedWfiWfe => "trapped WFI/WFE",
            Self::TrappedFpSimd => "trapped FP/SIMD access",
            Self::IllegalExecutionState => "illegal execution state",
            Self::SupervisorCall => "supervisor call",
            Self::TrappedSystemRegister => "trapped system register access",
            Self::InstructionAbortLower | Self::InstructionAbortSame => "instruction abort",
            Self::PcAlignment => "PC alignment fault",
            Self::DataAbortLower | Self::DataAbortSame => "data abort",
            Self::SpAlignment => "SP alignment fault",
            Self::FloatingPoint => "floating-point exception",
            Self::SError => "SError",
            Self::Breakpoint => "breakpoint",
            Self::Other(_) => "unrecognised exception",
        }
    }

    /// Whether the exception is an instruction or data abort, whose ISS holds a fault
    /// status code.
    pub fn is_abort(self) -> bool {
        matches!(
            self,
            Self::InstructionAbortLower
                | Self::InstructionAbortSame
                | Self::DataAbortLower
                | Self::DataAbortSame
        )
    }
}

/// Decodes the fault status code (`DFSC`/`IFSC`) of an abort into a description and, for
/// translation-table faults, the level.
pub fn fault_status(esr: u64) -> (&'static str, Option<u8>) {
    let code = (esr & 0x3f) as u8;
    let level = Some(code & 0b11);
    match code {
        0b00_0000..=0b00_0011 => ("address size fault", level),
        0b00_0100..=0b00_0111 => ("translation fault", level),
        0b00_1001..=0b00_1011 => ("access flag fault", level),
        0b00_1101..=0b00_1111 => ("permission fault", level),
        0b01_0000 => ("synchronous external abort", None),
        0b10_0001 => ("alignment fault", None),
        0b11_0000 => ("TLB conflict abort", None),
        _ => ("other fault", None),
    }
}

/// For a data abort, whether the access was a write (`ISS.WnR`).
pub fn is_write(esr: u64) -> bool {
    esr & (1 << 6) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_classes_and_fault_status() {
        // A translation fault at level 2 on a read from EL0.
        let esr = (0x24 << 26) | (1 << 25) | 0b00_0110;
        assert_eq!(
            ExceptionClass::from_esr(esr),
            ExceptionClass::DataAbortLower
        );
        assert!(ExceptionClass::from_esr(esr).is_abort());
        assert_eq!(fault_status(esr), ("translation fault", Some(2)));
        assert!(!is_write(esr));
        assert!(is_write(esr | (1 << 6)));
        assert_eq!(fault_status(0b00_1111), ("permission fault", Some(3)));
        assert_eq!(
            ExceptionClass::from_esr(0x15 << 26),
            ExceptionClass::SupervisorCall
        );
        assert_eq!(
            ExceptionClass::from_esr(0),
            ExceptionClass::UndefinedInstruction
        );
        assert_eq!(
            ExceptionClass::from_esr(0x3f << 26),
            ExceptionClass::Other(0x3f)
        );
        assert_eq!(
            ExceptionClass::from_esr(0x3f << 26).name(),
            "unrecognised exception"
        );
    }
}
