#[automatically_derived]
impl ::kaal_dddk::Probe for E1000Stub {
    const METADATA: ::kaal_dddk::DriverMetadata = ::kaal_dddk::DriverMetadata {
        name: "e1000_stub",
        compatible: &[],
        pci: &[(0x8086, 0x100e)],
        mmio: 0,
        irqs: 0,
        dma: &[],
    };
    fn probe(
        _resources: &mut ::kaal_dddk::Resources,
    ) -> ::core::result::Result<Self, ::kaal_dddk::DriverError> {
        ::core::result::Result::Ok(Self {
            packets: ::core::default::Default::default(),
        })
    }
}
/// The metadata of driver `e1000_stub`, for `kaal_build::driver::read_metadata` to find in the binary.
#[doc(hidden)]
#[used]
static __KAAL_DRIVER_METADATA_E1000_STUB: [u8; 36] = *b"KAALDRV1\x01\0\0\0$\0\0\0\ne1000_stub\0\x01\x86\x80\x0E\x10\0\0\0";
