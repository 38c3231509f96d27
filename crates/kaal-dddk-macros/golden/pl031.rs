#[automatically_derived]
impl ::kaal_dddk::Probe for Pl031 {
    const METADATA: ::kaal_dddk::DriverMetadata = ::kaal_dddk::DriverMetadata {
        name: "pl031",
        compatible: &["arm,pl031"],
        pci: &[],
        mmio: 1,
        irqs: 1,
        dma: &[],
    };
    fn probe(
        resources: &mut ::kaal_dddk::Resources,
    ) -> ::core::result::Result<Self, ::kaal_dddk::DriverError> {
        ::core::result::Result::Ok(Self {
            registers: resources.mmio(0)?,
            alarm: resources.irq(0)?,
        })
    }
}
/// The metadata of driver `pl031`, for `kaal_build::driver::read_metadata` to find in the binary.
#[doc(hidden)]
#[used]
static __KAAL_DRIVER_METADATA_PL031: [u8; 37] = *b"KAALDRV1\x01\0\0\0%\0\0\0\x05pl031\x01\tarm,pl031\0\x01\x01\0";
